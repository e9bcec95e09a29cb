//! Catalog queries.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use jangteo_core::catalog::{
    Category, Cursor, Product, ProductPage, ProductQuery, ProductSort, ProductStatus, Variant,
    VariantSnapshot,
};
use jangteo_core::compliance::ProductFacts;
use jangteo_core::ids::{ProductId, VariantId};
use jangteo_core::locale::LocalizedText;
use jangteo_core::money::{Currency, Money};
use jangteo_core::ports::CatalogWrite;
use jangteo_core::{CoreError, CoreResult};
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};

use super::{Conn, SqliteReader, SqliteTx};
use crate::error::{json, map};
use crate::time::{parse, ts};

/// Terms this long or longer go through the trigram index; shorter ones (two-syllable
/// Korean words such as 홍삼) are matched by scanning the lowercased search column,
/// because FTS5's trigram tokenizer cannot match fewer than three characters.
const TRIGRAM_MIN_CHARS: usize = 3;

/// Quotes a term as an FTS5 string literal, so operators and quotes in user input are
/// matched literally.
fn fts_literal(term: &str) -> String {
    format!("\"{}\"", term.replace('"', "\"\""))
}

fn parse_id<T: std::str::FromStr>(s: &str) -> CoreResult<T> {
    s.parse()
        .map_err(|_| CoreError::Storage(format!("bad id `{s}` in storage")))
}

fn product_from_row(row: &SqliteRow) -> CoreResult<Product> {
    let get = |c: &str| row.try_get::<String, _>(c).map_err(map);
    Ok(Product {
        id: parse_id(&get("id")?)?,
        handle: get("handle")?,
        status: ProductStatus::parse(&get("status")?)?,
        title: serde_json::from_str(&get("title")?).map_err(json)?,
        description: serde_json::from_str(&get("description")?).map_err(json)?,
        categories: serde_json::from_str(&get("categories")?).map_err(json)?,
        media: serde_json::from_str(&get("media")?).map_err(json)?,
        facts: crate::facts::from_columns(&get("countries")?, &get("compliance")?)?,
        variants: Vec::new(),
        created_at: parse(&get("created_at")?)?,
        updated_at: parse(&get("updated_at")?)?,
    })
}

const PRODUCT_COLS: &str =
    "p.id, p.handle, p.status, p.title, p.description, p.categories, p.media, p.countries, p.compliance, p.created_at, p.updated_at";

/// Loads the variants (with prices) of the given products, in position order.
/// The prices of variant `v` as one JSON text, `[["KRW", 39000], ...]`, so a variant
/// and its prices travel in one row (rows cross a thread boundary one by one in sqlx's
/// SQLite driver, which made listings spend most of their time moving price rows).
const PRICES_JSON: &str = "(SELECT json_group_array(json_array(pr.currency, pr.amount_minor))
      FROM prices pr WHERE pr.variant_id = v.id) AS prices";

/// A variant from a row with `id`, `sku`, `options`, `stock` and [`PRICES_JSON`].
fn variant_from_row(r: &SqliteRow) -> CoreResult<Variant> {
    let text = |c: &str| r.try_get::<String, _>(c).map_err(map);
    let raw_prices: Vec<(String, i64)> = serde_json::from_str(&text("prices")?).map_err(json)?;
    let prices = raw_prices
        .into_iter()
        .map(|(c, minor)| Money::from_minor(minor, c.parse::<Currency>()?))
        .collect::<CoreResult<Vec<_>>>()?;
    let options: BTreeMap<String, String> =
        serde_json::from_str(&text("options")?).map_err(json)?;
    Ok(Variant {
        id: parse_id(&text("id")?)?,
        sku: text("sku")?,
        options,
        prices,
        stock: r.try_get("stock").map_err(map)?,
    })
}

async fn load_variants(
    conn: &mut SqliteConnection,
    product_ids: &[String],
) -> CoreResult<HashMap<String, Vec<Variant>>> {
    let mut out: HashMap<String, Vec<Variant>> = HashMap::new();
    if product_ids.is_empty() {
        return Ok(out);
    }
    let mut qb = QueryBuilder::<Sqlite>::new(format!(
        "SELECT v.id, v.product_id, v.sku, v.options, v.stock, {PRICES_JSON} FROM variants v WHERE v.product_id IN ("
    ));
    let mut sep = qb.separated(", ");
    for id in product_ids {
        sep.push_bind(id);
    }
    qb.push(") ORDER BY v.product_id, v.position");
    for r in qb.build().fetch_all(&mut *conn).await.map_err(map)? {
        let pid: String = r.try_get("product_id").map_err(map)?;
        out.entry(pid).or_default().push(variant_from_row(&r)?);
    }
    Ok(out)
}

async fn attach_variants(
    conn: &mut SqliteConnection,
    mut products: Vec<Product>,
) -> CoreResult<Vec<Product>> {
    let ids: Vec<String> = products.iter().map(|p| p.id.to_string()).collect();
    let mut variants = load_variants(conn, &ids).await?;
    for p in &mut products {
        p.variants = variants.remove(&p.id.to_string()).unwrap_or_default();
    }
    Ok(products)
}

async fn product_where(
    conn: &mut SqliteConnection,
    column: &str,
    value: &str,
) -> CoreResult<Option<Product>> {
    let sql = format!("SELECT {PRODUCT_COLS} FROM products p WHERE p.{column} = ?");
    let Some(row) = sqlx::query(&sql)
        .bind(value)
        .fetch_optional(&mut *conn)
        .await
        .map_err(map)?
    else {
        return Ok(None);
    };
    let p = product_from_row(&row)?;
    Ok(attach_variants(conn, vec![p]).await?.pop())
}

pub(crate) async fn product(
    conn: &mut SqliteConnection,
    id: ProductId,
) -> CoreResult<Option<Product>> {
    product_where(conn, "id", &id.to_string()).await
}

pub(crate) async fn product_by_handle(
    conn: &mut SqliteConnection,
    handle: &str,
) -> CoreResult<Option<Product>> {
    product_where(conn, "handle", handle).await
}

pub(crate) async fn products(
    conn: &mut SqliteConnection,
    q: &ProductQuery,
) -> CoreResult<ProductPage> {
    let mut qb = QueryBuilder::<Sqlite>::new(format!("SELECT {PRODUCT_COLS}"));
    // The sort key of each row, for the next cursor.
    let price_expr =
        "(SELECT MIN(pr.amount_minor) FROM prices pr WHERE pr.product_id = p.id AND pr.currency = ";
    match (q.sort, q.currency) {
        (ProductSort::PriceAsc | ProductSort::PriceDesc, Some(c)) => {
            qb.push(", ")
                .push(price_expr)
                .push_bind(c.code())
                .push(") AS sort_key");
        }
        (ProductSort::Handle, _) => {
            qb.push(", p.handle AS sort_key");
        }
        _ => {
            qb.push(", p.created_at AS sort_key");
        }
    }
    qb.push(" FROM products p WHERE 1 = 1");
    match (q.status, q.include_drafts) {
        (Some(st), true) => {
            qb.push(" AND p.status = ").push_bind(st.as_str());
        }
        (_, false) => {
            qb.push(" AND p.status = 'published'");
        }
        (None, true) => {}
    }
    for term in &q.terms {
        if term.chars().count() >= TRIGRAM_MIN_CHARS {
            qb.push(" AND p.rid IN (SELECT rowid FROM products_fts WHERE products_fts MATCH ")
                .push_bind(fts_literal(term))
                .push(")");
        } else {
            qb.push(" AND instr(p.search_text, ")
                .push_bind(term.clone())
                .push(") > 0");
        }
    }
    if let Some(cat) = &q.category {
        qb.push(" AND p.id IN (SELECT product_id FROM product_categories WHERE category = ")
            .push_bind(cat.clone())
            .push(")");
    }
    if let Some(c) = q.currency {
        // A buyer browsing in a currency only sees what can be bought in it.
        qb.push(
            " AND EXISTS (SELECT 1 FROM prices pr WHERE pr.product_id = p.id AND pr.currency = ",
        )
        .push_bind(c.code());
        if let Some(min) = q.min_price_minor {
            qb.push(" AND pr.amount_minor >= ").push_bind(min);
        }
        if let Some(max) = q.max_price_minor {
            qb.push(" AND pr.amount_minor <= ").push_bind(max);
        }
        qb.push(")");
    }
    let sort_expr = match (q.sort, q.currency) {
        (ProductSort::PriceAsc | ProductSort::PriceDesc, Some(c)) => {
            format!("{price_expr}'{}')", c.code())
        }
        (ProductSort::Handle, _) => "p.handle".to_string(),
        _ => "p.created_at".to_string(),
    };
    let (cmp, dir) = match q.sort {
        ProductSort::Newest | ProductSort::PriceDesc => ("<", "DESC"),
        ProductSort::PriceAsc | ProductSort::Handle => (">", "ASC"),
    };
    let numeric = matches!(q.sort, ProductSort::PriceAsc | ProductSort::PriceDesc);
    if let Some(after) = &q.after {
        qb.push(format!(" AND ({sort_expr} {cmp} "));
        push_key(&mut qb, &after.key, numeric)?;
        qb.push(format!(" OR ({sort_expr} = "));
        push_key(&mut qb, &after.key, numeric)?;
        qb.push(format!(" AND p.id {cmp} "))
            .push_bind(after.id.to_string())
            .push("))");
    }
    qb.push(format!(" ORDER BY sort_key {dir}, p.id {dir} LIMIT "))
        .push_bind(i64::from(q.limit) + 1);
    let rows = qb.build().fetch_all(&mut *conn).await.map_err(map)?;
    let more = rows.len() > q.limit as usize;
    let mut items = Vec::with_capacity(rows.len().min(q.limit as usize));
    let mut last_key = None;
    for row in rows.iter().take(q.limit as usize) {
        items.push(product_from_row(row)?);
        last_key = Some(if numeric {
            row.try_get::<i64, _>("sort_key").map_err(map)?.to_string()
        } else {
            row.try_get::<String, _>("sort_key").map_err(map)?
        });
    }
    let products = attach_variants(conn, items).await?;
    let next = match (more, products.last(), last_key) {
        (true, Some(p), Some(key)) => Some(Cursor { key, id: p.id }),
        _ => None,
    };
    Ok(ProductPage { products, next })
}

fn push_key(qb: &mut QueryBuilder<'_, Sqlite>, key: &str, numeric: bool) -> CoreResult<()> {
    if numeric {
        let n: i64 = key.parse().map_err(|_| {
            CoreError::invalid_field("cursor", "invalid_cursor", "cursor is not valid")
        })?;
        qb.push_bind(n);
    } else {
        qb.push_bind(key.to_string());
    }
    Ok(())
}

pub(crate) async fn categories(conn: &mut SqliteConnection) -> CoreResult<Vec<Category>> {
    let rows = sqlx::query("SELECT handle, name FROM categories ORDER BY handle")
        .fetch_all(&mut *conn)
        .await
        .map_err(map)?;
    rows.iter()
        .map(|r| {
            let name: LocalizedText =
                serde_json::from_str(&r.try_get::<String, _>("name").map_err(map)?)
                    .map_err(json)?;
            Ok(Category {
                handle: r.try_get("handle").map_err(map)?,
                name,
            })
        })
        .collect()
}

pub(crate) async fn variants(
    conn: &mut SqliteConnection,
    ids: &[VariantId],
) -> CoreResult<Vec<VariantSnapshot>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    // One round trip: carts and checkout call this inside the write transaction, where
    // every statement lengthens the time the single writer is held.
    let mut qb = QueryBuilder::<Sqlite>::new(format!(
        "SELECT v.id, v.sku, v.options, v.stock, {PRICES_JSON}, p.id AS pid, p.handle, p.status, p.title,
                p.countries, p.compliance
         FROM variants v JOIN products p ON p.id = v.product_id WHERE v.id IN ("
    ));
    let mut sep = qb.separated(", ");
    for id in ids {
        sep.push_bind(id.to_string());
    }
    qb.push(")");
    let rows = qb.build().fetch_all(&mut *conn).await.map_err(map)?;
    let mut out = Vec::with_capacity(rows.len());
    // Variants of one product share its facts, decoded once.
    let mut facts: HashMap<String, Arc<ProductFacts>> = HashMap::new();
    for r in &rows {
        let text = |c: &str| r.try_get::<String, _>(c).map_err(map);
        let pid = text("pid")?;
        let shared = match facts.get(&pid) {
            Some(f) => f.clone(),
            None => {
                let f = Arc::new(crate::facts::from_columns(
                    &text("countries")?,
                    &text("compliance")?,
                )?);
                facts.insert(pid.clone(), f.clone());
                f
            }
        };
        out.push(VariantSnapshot {
            variant: variant_from_row(r)?,
            product_id: parse_id(&pid)?,
            product_handle: text("handle")?,
            product_title: serde_json::from_str(&text("title")?).map_err(json)?,
            product_status: ProductStatus::parse(&text("status")?)?,
            facts: shared,
        });
    }
    Ok(out)
}

async fn write_children(conn: &mut SqliteConnection, p: &Product, rid: i64) -> CoreResult<()> {
    let pid = p.id.to_string();
    sqlx::query("DELETE FROM product_categories WHERE product_id = ?")
        .bind(&pid)
        .execute(&mut *conn)
        .await
        .map_err(map)?;
    for c in &p.categories {
        sqlx::query("INSERT INTO product_categories (category, product_id) VALUES (?, ?)")
            .bind(c)
            .bind(&pid)
            .execute(&mut *conn)
            .await
            .map_err(map)?;
    }
    // Variants no longer listed go; listed ones are inserted or updated in place so
    // that their ids (referenced by carts and orders) stay stable.
    let mut qb = QueryBuilder::<Sqlite>::new("DELETE FROM variants WHERE product_id = ");
    qb.push_bind(&pid);
    if !p.variants.is_empty() {
        qb.push(" AND id NOT IN (");
        let mut sep = qb.separated(", ");
        for v in &p.variants {
            sep.push_bind(v.id.to_string());
        }
        qb.push(")");
    }
    qb.build().execute(&mut *conn).await.map_err(map)?;
    sqlx::query("DELETE FROM prices WHERE product_id = ?")
        .bind(&pid)
        .execute(&mut *conn)
        .await
        .map_err(map)?;
    for (pos, v) in p.variants.iter().enumerate() {
        let vid = v.id.to_string();
        sqlx::query(
            "INSERT INTO variants (id, product_id, position, sku, options, stock) VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT (id) DO UPDATE SET position = excluded.position, sku = excluded.sku,
               options = excluded.options, stock = excluded.stock",
        )
        .bind(&vid)
        .bind(&pid)
        .bind(pos as i64)
        .bind(&v.sku)
        .bind(serde_json::to_string(&v.options).map_err(json)?)
        .bind(v.stock)
        .execute(&mut *conn)
        .await
        .map_err(map)?;
        for price in &v.prices {
            sqlx::query("INSERT INTO prices (variant_id, product_id, currency, amount_minor) VALUES (?, ?, ?, ?)")
                .bind(&vid)
                .bind(&pid)
                .bind(price.currency.code())
                .bind(price.minor_units())
                .execute(&mut *conn)
                .await
                .map_err(map)?;
        }
    }
    sqlx::query("DELETE FROM products_fts WHERE rowid = ?")
        .bind(rid)
        .execute(&mut *conn)
        .await
        .map_err(map)?;
    sqlx::query("INSERT INTO products_fts (rowid, body) VALUES (?, ?)")
        .bind(rid)
        .bind(crate::search::search_text(p))
        .execute(&mut *conn)
        .await
        .map_err(map)?;
    Ok(())
}

fn product_values(p: &Product) -> CoreResult<[String; 8]> {
    let (countries, compliance) = crate::facts::to_columns(&p.facts)?;
    Ok([
        serde_json::to_string(&p.title).map_err(json)?,
        serde_json::to_string(&p.description).map_err(json)?,
        serde_json::to_string(&p.categories).map_err(json)?,
        serde_json::to_string(&p.media).map_err(json)?,
        countries,
        compliance,
        crate::search::search_text(p),
        ts(p.updated_at),
    ])
}

pub(crate) async fn insert_product(conn: &mut SqliteConnection, p: &Product) -> CoreResult<()> {
    let [title, description, categories, media, countries, compliance, search, updated] =
        product_values(p)?;
    let rid: i64 = sqlx::query_scalar(
        "INSERT INTO products (id, handle, status, title, description, categories, media, countries, compliance,
           search_text, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING rid",
    )
    .bind(p.id.to_string())
    .bind(&p.handle)
    .bind(p.status.as_str())
    .bind(title)
    .bind(description)
    .bind(categories)
    .bind(media)
    .bind(countries)
    .bind(compliance)
    .bind(search)
    .bind(ts(p.created_at))
    .bind(updated)
    .fetch_one(&mut *conn)
    .await
    .map_err(map)?;
    write_children(conn, p, rid).await
}

pub(crate) async fn update_product(conn: &mut SqliteConnection, p: &Product) -> CoreResult<()> {
    let [title, description, categories, media, countries, compliance, search, updated] =
        product_values(p)?;
    let rid: Option<i64> = sqlx::query_scalar(
        "UPDATE products SET handle = ?, status = ?, title = ?, description = ?, categories = ?, media = ?,
           countries = ?, compliance = ?, search_text = ?, updated_at = ? WHERE id = ? RETURNING rid",
    )
    .bind(&p.handle)
    .bind(p.status.as_str())
    .bind(title)
    .bind(description)
    .bind(categories)
    .bind(media)
    .bind(countries)
    .bind(compliance)
    .bind(search)
    .bind(updated)
    .bind(p.id.to_string())
    .fetch_optional(&mut *conn)
    .await
    .map_err(map)?;
    let rid = rid.ok_or(CoreError::NotFound { entity: "product" })?;
    write_children(conn, p, rid).await
}

pub(crate) async fn delete_product(conn: &mut SqliteConnection, id: ProductId) -> CoreResult<bool> {
    let rid: Option<i64> = sqlx::query_scalar("DELETE FROM products WHERE id = ? RETURNING rid")
        .bind(id.to_string())
        .fetch_optional(&mut *conn)
        .await
        .map_err(map)?;
    let Some(rid) = rid else { return Ok(false) };
    sqlx::query("DELETE FROM products_fts WHERE rowid = ?")
        .bind(rid)
        .execute(&mut *conn)
        .await
        .map_err(map)?;
    Ok(true)
}

crate::catalog_read!(SqliteTx);
crate::catalog_read!(SqliteReader);

#[async_trait]
impl CatalogWrite for SqliteTx {
    async fn insert_product(&mut self, product: &Product) -> CoreResult<()> {
        insert_product(self.conn(), product).await
    }
    async fn update_product(&mut self, product: &Product) -> CoreResult<()> {
        update_product(self.conn(), product).await
    }
    async fn delete_product(&mut self, id: ProductId) -> CoreResult<bool> {
        delete_product(self.conn(), id).await
    }
    async fn upsert_category(&mut self, category: &Category) -> CoreResult<()> {
        sqlx::query("INSERT INTO categories (handle, name) VALUES (?, ?) ON CONFLICT (handle) DO UPDATE SET name = excluded.name")
            .bind(&category.handle)
            .bind(serde_json::to_string(&category.name).map_err(json)?)
            .execute(self.conn())
            .await
            .map_err(map)?;
        Ok(())
    }
    async fn take_stock(&mut self, variant: VariantId, qty: i64) -> CoreResult<Option<i64>> {
        sqlx::query_scalar(
            "UPDATE variants SET stock = stock - ?1 WHERE id = ?2 AND stock >= ?1 RETURNING stock",
        )
        .bind(qty)
        .bind(variant.to_string())
        .fetch_optional(self.conn())
        .await
        .map_err(map)
    }
    async fn return_stock(&mut self, variant: VariantId, qty: i64) -> CoreResult<()> {
        sqlx::query("UPDATE variants SET stock = stock + ? WHERE id = ?")
            .bind(qty)
            .bind(variant.to_string())
            .execute(self.conn())
            .await
            .map_err(map)?;
        Ok(())
    }
}
