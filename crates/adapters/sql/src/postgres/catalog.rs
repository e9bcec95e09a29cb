//! Catalog queries (PostgreSQL).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use jangteo_core::catalog::{
    Category, Cursor, Product, ProductPage, ProductQuery, ProductSort, ProductStatus, Variant,
    VariantSnapshot,
};
use jangteo_core::compliance::ProductFacts;
use jangteo_core::ids::{ProductId, VariantId};
use jangteo_core::money::{Currency, Money};
use jangteo_core::ports::CatalogWrite;
use jangteo_core::{CoreError, CoreResult};
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{PgConnection, Postgres, QueryBuilder, Row};
use uuid::Uuid;

use super::{in_list, Conn, PgReader, PgTx};
use crate::error::{json, map};
use crate::time::{parse, ts};

/// A LIKE pattern matching `term` anywhere, with LIKE's wildcards taken literally.
fn contains_pattern(term: &str) -> String {
    let mut s = String::with_capacity(term.len() + 2);
    s.push('%');
    for c in term.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('%');
    s
}

fn product_from_row(row: &PgRow) -> CoreResult<Product> {
    let jtext = |c: &str| row.try_get::<String, _>(c).map_err(map);
    Ok(Product {
        id: ProductId(row.try_get("id").map_err(map)?),
        handle: row.try_get("handle").map_err(map)?,
        status: ProductStatus::parse(&row.try_get::<String, _>("status").map_err(map)?)?,
        title: serde_json::from_str(&jtext("title")?).map_err(json)?,
        description: serde_json::from_str(&jtext("description")?).map_err(json)?,
        categories: serde_json::from_str(&jtext("categories")?).map_err(json)?,
        media: serde_json::from_str(&jtext("media")?).map_err(json)?,
        facts: crate::facts::from_columns(&jtext("countries")?, &jtext("compliance")?)?,
        variants: Vec::new(),
        created_at: row.try_get("created_at").map_err(map)?,
        updated_at: row.try_get("updated_at").map_err(map)?,
    })
}

const PRODUCT_COLS: &str =
    "p.id, p.handle, p.status, p.title::text AS title, p.description::text AS description,
    p.categories::text AS categories, p.media::text AS media, p.countries::text AS countries,
    p.compliance::text AS compliance, p.created_at, p.updated_at";

/// The prices of variant `v` as one JSON text, `[["KRW", 39000], ...]`, so a variant and
/// its prices come back in one row.
const PRICES_JSON: &str =
    "COALESCE((SELECT json_agg(json_build_array(pr.currency, pr.amount_minor))
      FROM prices pr WHERE pr.variant_id = v.id), '[]'::json)::text AS prices";

fn variant_from_row(r: &PgRow) -> CoreResult<Variant> {
    let raw_prices: Vec<(String, i64)> =
        serde_json::from_str(&r.try_get::<String, _>("prices").map_err(map)?).map_err(json)?;
    let prices = raw_prices
        .into_iter()
        .map(|(c, minor)| Money::from_minor(minor, c.parse::<Currency>()?))
        .collect::<CoreResult<Vec<_>>>()?;
    let options: BTreeMap<String, String> =
        serde_json::from_str(&r.try_get::<String, _>("options").map_err(map)?).map_err(json)?;
    Ok(Variant {
        id: VariantId(r.try_get("id").map_err(map)?),
        sku: r.try_get("sku").map_err(map)?,
        options,
        prices,
        stock: r.try_get("stock").map_err(map)?,
    })
}

async fn attach_variants(
    conn: &mut PgConnection,
    mut products: Vec<Product>,
) -> CoreResult<Vec<Product>> {
    if products.is_empty() {
        return Ok(products);
    }
    let ids: Vec<Uuid> = products.iter().map(|p| p.id.0).collect();
    let mut rows = Vec::new();
    // A product's variants all come from the chunk that holds its id, in order.
    for chunk in ids.chunks(in_list::CHUNK) {
        let (list, size) = in_list::placeholders(1, chunk.len());
        let sql = format!(
            "SELECT v.id, v.product_id, v.sku, v.options::text AS options, v.stock, {PRICES_JSON}
             FROM variants v WHERE v.product_id IN ({list}) ORDER BY v.product_id, v.position"
        );
        let q = in_list::bind_padded(sqlx::query(&sql), chunk, size);
        rows.extend(q.fetch_all(&mut *conn).await.map_err(map)?);
    }
    let mut by_product: HashMap<Uuid, Vec<Variant>> = HashMap::new();
    for r in &rows {
        let pid: Uuid = r.try_get("product_id").map_err(map)?;
        by_product
            .entry(pid)
            .or_default()
            .push(variant_from_row(r)?);
    }
    for p in &mut products {
        p.variants = by_product.remove(&p.id.0).unwrap_or_default();
    }
    Ok(products)
}

async fn product_where(
    conn: &mut PgConnection,
    column: &str,
    value: ProductKey<'_>,
    lock: bool,
) -> CoreResult<Option<Product>> {
    // Inside a write transaction a product is read to be changed: lock its row, then its
    // variants in id order (the order checkout takes stock in), so a concurrent checkout
    // waits instead of having its stock decrement overwritten by the product's save.
    let sql = format!(
        "SELECT {PRODUCT_COLS} FROM products p WHERE p.{column} = $1{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    let q = sqlx::query(&sql);
    let q = match value {
        ProductKey::Id(id) => q.bind(id),
        ProductKey::Handle(h) => q.bind(h),
    };
    let Some(row) = q.fetch_optional(&mut *conn).await.map_err(map)? else {
        return Ok(None);
    };
    let p = product_from_row(&row)?;
    if lock {
        sqlx::query("SELECT 1 FROM variants WHERE product_id = $1 ORDER BY id FOR UPDATE")
            .bind(p.id.0)
            .execute(&mut *conn)
            .await
            .map_err(map)?;
    }
    Ok(attach_variants(conn, vec![p]).await?.pop())
}

enum ProductKey<'a> {
    Id(Uuid),
    Handle(&'a str),
}

pub(crate) async fn product(conn: &mut PgConnection, id: ProductId) -> CoreResult<Option<Product>> {
    product_where(conn, "id", ProductKey::Id(id.0), false).await
}

pub(crate) async fn product_by_handle(
    conn: &mut PgConnection,
    handle: &str,
) -> CoreResult<Option<Product>> {
    product_where(conn, "handle", ProductKey::Handle(handle), false).await
}

/// How a sort key is compared in a keyset cursor.
#[derive(Clone, Copy)]
enum KeyKind {
    Minor,
    Time,
    Text,
}

pub(crate) async fn products(conn: &mut PgConnection, q: &ProductQuery) -> CoreResult<ProductPage> {
    let price_expr = |c: Currency| {
        // The currency code comes from a closed enum, so inlining it is safe.
        format!(
            "(SELECT MIN(pr.amount_minor) FROM prices pr WHERE pr.product_id = p.id AND pr.currency = '{}')",
            c.code()
        )
    };
    let (sort_expr, kind) = match (q.sort, q.currency) {
        (ProductSort::PriceAsc | ProductSort::PriceDesc, Some(c)) => {
            (price_expr(c), KeyKind::Minor)
        }
        // Byte order, as SQLite sorts, whatever the database collation.
        (ProductSort::Handle, _) => ("p.handle COLLATE \"C\"".to_string(), KeyKind::Text),
        _ => ("p.created_at".to_string(), KeyKind::Time),
    };
    let mut qb = QueryBuilder::<Postgres>::new(format!(
        "SELECT {PRODUCT_COLS}, {sort_expr} AS sort_key FROM products p WHERE TRUE"
    ));
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
        // Substring semantics in every script, as on SQLite: the trigram index serves
        // terms of three or more characters; shorter ones scan search_text.
        qb.push(" AND p.search_text LIKE ")
            .push_bind(contains_pattern(term));
    }
    if let Some(cat) = &q.category {
        qb.push(" AND p.id IN (SELECT product_id FROM product_categories WHERE category = ")
            .push_bind(cat.clone())
            .push(")");
    }
    if let Some(c) = q.currency {
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
    let (cmp, dir) = match q.sort {
        ProductSort::Newest | ProductSort::PriceDesc => ("<", "DESC"),
        ProductSort::PriceAsc | ProductSort::Handle => (">", "ASC"),
    };
    if let Some(after) = &q.after {
        qb.push(format!(" AND ({sort_expr} {cmp} "));
        push_key(&mut qb, &after.key, kind)?;
        qb.push(format!(" OR ({sort_expr} = "));
        push_key(&mut qb, &after.key, kind)?;
        qb.push(format!(" AND p.id {cmp} "))
            .push_bind(after.id.0)
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
        last_key = Some(match kind {
            KeyKind::Minor => row.try_get::<i64, _>("sort_key").map_err(map)?.to_string(),
            KeyKind::Time => ts(row.try_get::<DateTime<Utc>, _>("sort_key").map_err(map)?),
            KeyKind::Text => row.try_get::<String, _>("sort_key").map_err(map)?,
        });
    }
    let products = attach_variants(conn, items).await?;
    let next = match (more, products.last(), last_key) {
        (true, Some(p), Some(key)) => Some(Cursor {
            key,
            id: p.id,
            order: q.cursor_order(),
        }),
        _ => None,
    };
    Ok(ProductPage { products, next })
}

fn push_key(qb: &mut QueryBuilder<'_, Postgres>, key: &str, kind: KeyKind) -> CoreResult<()> {
    let invalid = || CoreError::invalid_field("cursor", "invalid_cursor", "cursor is not valid");
    match kind {
        KeyKind::Minor => {
            qb.push_bind(key.parse::<i64>().map_err(|_| invalid())?);
        }
        KeyKind::Time => {
            qb.push_bind(parse(key).map_err(|_| invalid())?);
        }
        KeyKind::Text => {
            qb.push_bind(key.to_string()).push(" COLLATE \"C\"");
        }
    }
    Ok(())
}

pub(crate) async fn categories(conn: &mut PgConnection) -> CoreResult<Vec<Category>> {
    let rows = sqlx::query(
        "SELECT handle, name::text AS name FROM categories ORDER BY handle COLLATE \"C\"",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(map)?;
    rows.iter()
        .map(|r| {
            Ok(Category {
                handle: r.try_get("handle").map_err(map)?,
                name: serde_json::from_str(&r.try_get::<String, _>("name").map_err(map)?)
                    .map_err(json)?,
            })
        })
        .collect()
}

pub(crate) async fn variants(
    conn: &mut PgConnection,
    ids: &[VariantId],
) -> CoreResult<Vec<VariantSnapshot>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut ids: Vec<Uuid> = ids.iter().map(|v| v.0).collect();
    // A repeated id in two chunks would come back twice.
    ids.sort_unstable();
    ids.dedup();
    let mut rows = Vec::new();
    for chunk in ids.chunks(in_list::CHUNK) {
        let (list, size) = in_list::placeholders(1, chunk.len());
        let sql = format!("{} WHERE v.id IN ({list})", snapshot_select());
        let q = in_list::bind_padded(sqlx::query(&sql), chunk, size);
        rows.extend(q.fetch_all(&mut *conn).await.map_err(map)?);
    }
    snapshots_from_rows(&rows)
}

/// The query behind a [`VariantSnapshot`], to be completed with a `WHERE` on `v.id`.
pub(crate) fn snapshot_select() -> String {
    format!(
        "SELECT v.id, v.sku, v.options::text AS options, v.stock, {PRICES_JSON},
                p.id AS pid, p.handle, p.status, p.title::text AS title,
                p.countries::text AS countries, p.compliance::text AS compliance
         FROM variants v JOIN products p ON p.id = v.product_id"
    )
}

/// Snapshots from rows of [`snapshot_select`]; rows whose `id` is NULL (an outer join
/// that found no variant) are skipped.
pub(crate) fn snapshots_from_rows(rows: &[PgRow]) -> CoreResult<Vec<VariantSnapshot>> {
    let mut out = Vec::with_capacity(rows.len());
    // Variants of one product share its facts, decoded once.
    let mut facts: HashMap<Uuid, Arc<ProductFacts>> = HashMap::new();
    for r in rows {
        if r.try_get::<Option<Uuid>, _>("id").map_err(map)?.is_none() {
            continue;
        }
        let pid: Uuid = r.try_get("pid").map_err(map)?;
        let shared = match facts.get(&pid) {
            Some(f) => f.clone(),
            None => {
                let text = |c: &str| r.try_get::<String, _>(c).map_err(map);
                let f = Arc::new(crate::facts::from_columns(
                    &text("countries")?,
                    &text("compliance")?,
                )?);
                facts.insert(pid, f.clone());
                f
            }
        };
        out.push(VariantSnapshot {
            variant: variant_from_row(r)?,
            product_id: ProductId(pid),
            product_handle: r.try_get("handle").map_err(map)?,
            product_title: serde_json::from_str(&r.try_get::<String, _>("title").map_err(map)?)
                .map_err(json)?,
            product_status: ProductStatus::parse(&r.try_get::<String, _>("status").map_err(map)?)?,
            facts: shared,
        });
    }
    Ok(out)
}

/// Categories, variants and prices of a product, replaced as a set. Variants keep
/// their ids (carts and orders refer to them); ones no longer listed go.
async fn write_children(conn: &mut PgConnection, p: &Product) -> CoreResult<()> {
    let pid = p.id.0;
    sqlx::query("DELETE FROM product_categories WHERE product_id = $1")
        .bind(pid)
        .execute(&mut *conn)
        .await
        .map_err(map)?;
    if !p.categories.is_empty() {
        sqlx::query(
            "INSERT INTO product_categories (category, product_id) SELECT c, $2 FROM unnest($1::text[]) AS c",
        )
        .bind(&p.categories)
        .bind(pid)
        .execute(&mut *conn)
        .await
        .map_err(map)?;
    }
    let keep: Vec<Uuid> = p.variants.iter().map(|v| v.id.0).collect();
    sqlx::query("DELETE FROM variants WHERE product_id = $1 AND NOT (id = ANY($2))")
        .bind(pid)
        .bind(&keep)
        .execute(&mut *conn)
        .await
        .map_err(map)?;
    sqlx::query("DELETE FROM prices WHERE product_id = $1")
        .bind(pid)
        .execute(&mut *conn)
        .await
        .map_err(map)?;
    // The kept variants give up their SKUs first (`~` is not a SKU character), so two
    // of them may swap SKUs: SKUs are unique row by row, not at commit.
    sqlx::query("UPDATE variants SET sku = '~' || id::text WHERE product_id = $1")
        .bind(pid)
        .execute(&mut *conn)
        .await
        .map_err(map)?;
    for (pos, v) in p.variants.iter().enumerate() {
        sqlx::query(
            "INSERT INTO variants (id, product_id, position, sku, options, stock) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (id) DO UPDATE SET position = excluded.position, sku = excluded.sku,
               options = excluded.options, stock = excluded.stock",
        )
        .bind(v.id.0)
        .bind(pid)
        .bind(pos as i32)
        .bind(&v.sku)
        .bind(Json(&v.options))
        .bind(v.stock)
        .execute(&mut *conn)
        .await
        .map_err(map)?;
        let currencies: Vec<&str> = v.prices.iter().map(|m| m.currency.code()).collect();
        let amounts: Vec<i64> = v.prices.iter().map(|m| m.minor_units()).collect();
        sqlx::query(
            "INSERT INTO prices (variant_id, product_id, currency, amount_minor)
             SELECT $1, $2, c, a FROM unnest($3::text[], $4::bigint[]) AS t(c, a)",
        )
        .bind(v.id.0)
        .bind(pid)
        .bind(&currencies)
        .bind(&amounts)
        .execute(&mut *conn)
        .await
        .map_err(map)?;
    }
    Ok(())
}

pub(crate) async fn insert_product(conn: &mut PgConnection, p: &Product) -> CoreResult<()> {
    sqlx::query(
        "INSERT INTO products (id, handle, status, title, description, categories, media, countries, compliance,
           search_text, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(p.id.0)
    .bind(&p.handle)
    .bind(p.status.as_str())
    .bind(Json(&p.title))
    .bind(Json(&p.description))
    .bind(Json(&p.categories))
    .bind(Json(&p.media))
    .bind(Json(&p.facts.countries))
    .bind(Json(crate::facts::ComplianceColumn::of(&p.facts)))
    .bind(crate::search::search_text(p))
    .bind(p.created_at)
    .bind(p.updated_at)
    .execute(&mut *conn)
    .await
    .map_err(map)?;
    write_children(conn, p).await
}

pub(crate) async fn update_product(conn: &mut PgConnection, p: &Product) -> CoreResult<()> {
    let r = sqlx::query(
        "UPDATE products SET handle = $1, status = $2, title = $3, description = $4, categories = $5,
           media = $6, countries = $7, compliance = $8, search_text = $9, updated_at = $10 WHERE id = $11",
    )
    .bind(&p.handle)
    .bind(p.status.as_str())
    .bind(Json(&p.title))
    .bind(Json(&p.description))
    .bind(Json(&p.categories))
    .bind(Json(&p.media))
    .bind(Json(&p.facts.countries))
    .bind(Json(crate::facts::ComplianceColumn::of(&p.facts)))
    .bind(crate::search::search_text(p))
    .bind(p.updated_at)
    .bind(p.id.0)
    .execute(&mut *conn)
    .await
    .map_err(map)?;
    if r.rows_affected() == 0 {
        return Err(CoreError::NotFound { entity: "product" });
    }
    write_children(conn, p).await
}

crate::catalog_read!(PgReader);

#[async_trait]
impl jangteo_core::ports::CatalogRead for PgTx {
    async fn product(&mut self, id: ProductId) -> CoreResult<Option<Product>> {
        product_where(self.conn(), "id", ProductKey::Id(id.0), true).await
    }
    async fn product_by_handle(&mut self, handle: &str) -> CoreResult<Option<Product>> {
        product_where(self.conn(), "handle", ProductKey::Handle(handle), true).await
    }
    async fn products(&mut self, query: &ProductQuery) -> CoreResult<ProductPage> {
        products(self.conn(), query).await
    }
    async fn categories(&mut self) -> CoreResult<Vec<Category>> {
        categories(self.conn()).await
    }
    async fn variants(&mut self, ids: &[VariantId]) -> CoreResult<Vec<VariantSnapshot>> {
        variants(self.conn(), ids).await
    }
}

#[async_trait]
impl CatalogWrite for PgTx {
    async fn insert_product(&mut self, product: &Product) -> CoreResult<()> {
        insert_product(self.conn(), product).await
    }
    async fn update_product(&mut self, product: &Product) -> CoreResult<()> {
        update_product(self.conn(), product).await
    }
    async fn delete_product(&mut self, id: ProductId) -> CoreResult<bool> {
        let r = sqlx::query("DELETE FROM products WHERE id = $1")
            .bind(id.0)
            .execute(self.conn())
            .await
            .map_err(map)?;
        Ok(r.rows_affected() == 1)
    }
    async fn upsert_category(&mut self, category: &Category) -> CoreResult<()> {
        sqlx::query("INSERT INTO categories (handle, name) VALUES ($1, $2) ON CONFLICT (handle) DO UPDATE SET name = excluded.name")
            .bind(&category.handle)
            .bind(Json(&category.name))
            .execute(self.conn())
            .await
            .map_err(map)?;
        Ok(())
    }
    async fn take_stock(&mut self, variant: VariantId, qty: i64) -> CoreResult<Option<i64>> {
        // Under READ COMMITTED a concurrent taker makes this wait, then re-check
        // `stock >= qty` against the committed row: the last unit goes to one buyer.
        sqlx::query_scalar(
            "UPDATE variants SET stock = stock - $1 WHERE id = $2 AND stock >= $1 RETURNING stock",
        )
        .bind(qty)
        .bind(variant.0)
        .fetch_optional(self.conn())
        .await
        .map_err(map)
    }
    async fn return_stock(&mut self, variant: VariantId, qty: i64) -> CoreResult<()> {
        sqlx::query("UPDATE variants SET stock = stock + $1 WHERE id = $2")
            .bind(qty)
            .bind(variant.0)
            .execute(self.conn())
            .await
            .map_err(map)?;
        Ok(())
    }
}
