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
use rusqlite::{params, Connection, Row};

use super::q::{self, col, Sql};
use super::{Conn, SqliteReader, SqliteTx};
use crate::error::json;
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

fn product_from_row(row: &Row<'_>) -> CoreResult<Product> {
    let get = |c: &str| col::<String>(row, c);
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

/// The prices of variant `v` as one JSON text, `[["KRW", 39000], ...]`, so a variant
/// and its prices come back in one row.
const PRICES_JSON: &str = "(SELECT json_group_array(json_array(pr.currency, pr.amount_minor))
      FROM prices pr WHERE pr.variant_id = v.id) AS prices";

/// A variant from a row with `id`, `sku`, `options`, `stock` and [`PRICES_JSON`].
fn variant_from_row(r: &Row<'_>) -> CoreResult<Variant> {
    let text = |c: &str| col::<String>(r, c);
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
        stock: col(r, "stock")?,
    })
}

/// Loads the variants (with prices) of the given products, in position order.
fn load_variants(
    conn: &Connection,
    product_ids: &[String],
) -> CoreResult<HashMap<String, Vec<Variant>>> {
    let mut out: HashMap<String, Vec<Variant>> = HashMap::new();
    if product_ids.is_empty() {
        return Ok(out);
    }
    let mut sql = Sql::new(format!(
        "SELECT v.id, v.product_id, v.sku, v.options, v.stock, {PRICES_JSON} FROM variants v WHERE v.product_id IN ("
    ));
    sql.bind_list(product_ids.iter().cloned())
        .push(") ORDER BY v.product_id, v.position");
    sql.all(conn, |r| {
        let pid: String = col(r, "product_id")?;
        out.entry(pid).or_default().push(variant_from_row(r)?);
        Ok(())
    })?;
    Ok(out)
}

fn attach_variants(conn: &Connection, mut products: Vec<Product>) -> CoreResult<Vec<Product>> {
    let ids: Vec<String> = products.iter().map(|p| p.id.to_string()).collect();
    let mut variants = load_variants(conn, &ids)?;
    for p in &mut products {
        p.variants = variants.remove(&p.id.to_string()).unwrap_or_default();
    }
    Ok(products)
}

fn product_where(conn: &Connection, column: &str, value: &str) -> CoreResult<Option<Product>> {
    let sql = format!("SELECT {PRODUCT_COLS} FROM products p WHERE p.{column} = ?");
    let Some(p) = q::one(conn, &sql, [value], product_from_row)? else {
        return Ok(None);
    };
    Ok(attach_variants(conn, vec![p])?.pop())
}

pub(crate) fn product(conn: &Connection, id: ProductId) -> CoreResult<Option<Product>> {
    product_where(conn, "id", &id.to_string())
}

pub(crate) fn product_by_handle(conn: &Connection, handle: &str) -> CoreResult<Option<Product>> {
    product_where(conn, "handle", handle)
}

pub(crate) fn products(conn: &Connection, q: &ProductQuery) -> CoreResult<ProductPage> {
    let mut qb = Sql::new(format!("SELECT {PRODUCT_COLS}"));
    // The sort key of each row, for the next cursor.
    let price_expr =
        "(SELECT MIN(pr.amount_minor) FROM prices pr WHERE pr.product_id = p.id AND pr.currency = ";
    match (q.sort, q.currency) {
        (ProductSort::PriceAsc | ProductSort::PriceDesc, Some(c)) => {
            qb.push(", ")
                .push(price_expr)
                .bind(c.code().to_string())
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
            qb.push(" AND p.status = ").bind(st.as_str().to_string());
        }
        (_, false) => {
            qb.push(" AND p.status = 'published'");
        }
        (None, true) => {}
    }
    for term in &q.terms {
        if term.chars().count() >= TRIGRAM_MIN_CHARS {
            qb.push(" AND p.rid IN (SELECT rowid FROM products_fts WHERE products_fts MATCH ")
                .bind(fts_literal(term))
                .push(")");
        } else {
            qb.push(" AND instr(p.search_text, ")
                .bind(term.clone())
                .push(") > 0");
        }
    }
    if let Some(cat) = &q.category {
        qb.push(" AND p.id IN (SELECT product_id FROM product_categories WHERE category = ")
            .bind(cat.clone())
            .push(")");
    }
    if let Some(c) = q.currency {
        // A buyer browsing in a currency only sees what can be bought in it.
        qb.push(
            " AND EXISTS (SELECT 1 FROM prices pr WHERE pr.product_id = p.id AND pr.currency = ",
        )
        .bind(c.code().to_string());
        if let Some(min) = q.min_price_minor {
            qb.push(" AND pr.amount_minor >= ").bind(min);
        }
        if let Some(max) = q.max_price_minor {
            qb.push(" AND pr.amount_minor <= ").bind(max);
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
        qb.push(&format!(" AND ({sort_expr} {cmp} "));
        push_key(&mut qb, &after.key, numeric)?;
        qb.push(&format!(" OR ({sort_expr} = "));
        push_key(&mut qb, &after.key, numeric)?;
        qb.push(&format!(" AND p.id {cmp} "))
            .bind(after.id.to_string())
            .push("))");
    }
    qb.push(&format!(" ORDER BY sort_key {dir}, p.id {dir} LIMIT "))
        .bind(i64::from(q.limit) + 1);
    let mut more = false;
    let mut items = Vec::with_capacity(q.limit as usize);
    let mut last_key = None;
    qb.all(conn, |row| {
        if items.len() == q.limit as usize {
            more = true;
            return Ok(());
        }
        items.push(product_from_row(row)?);
        last_key = Some(if numeric {
            col::<i64>(row, "sort_key")?.to_string()
        } else {
            col::<String>(row, "sort_key")?
        });
        Ok(())
    })?;
    let products = attach_variants(conn, items)?;
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

fn push_key(qb: &mut Sql, key: &str, numeric: bool) -> CoreResult<()> {
    if numeric {
        let n: i64 = key.parse().map_err(|_| {
            CoreError::invalid_field("cursor", "invalid_cursor", "cursor is not valid")
        })?;
        qb.bind(n);
    } else {
        qb.bind(key.to_string());
    }
    Ok(())
}

pub(crate) fn categories(conn: &Connection) -> CoreResult<Vec<Category>> {
    q::all(
        conn,
        "SELECT handle, name FROM categories ORDER BY handle",
        [],
        |r| {
            let name: LocalizedText =
                serde_json::from_str(&col::<String>(r, "name")?).map_err(json)?;
            Ok(Category {
                handle: col(r, "handle")?,
                name,
            })
        },
    )
}

pub(crate) fn variants(conn: &Connection, ids: &[VariantId]) -> CoreResult<Vec<VariantSnapshot>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    // One statement: carts and checkout call this inside the write transaction, where
    // every statement lengthens the time the single writer is held.
    let mut sql = Sql::new(format!(
        "SELECT v.id, v.sku, v.options, v.stock, {PRICES_JSON}, p.id AS pid, p.handle, p.status, p.title,
                p.countries, p.compliance
         FROM variants v JOIN products p ON p.id = v.product_id WHERE v.id IN ("
    ));
    sql.bind_list(ids.iter().map(|i| i.to_string())).push(")");
    // Variants of one product share its facts, decoded once.
    let mut facts: HashMap<String, Arc<ProductFacts>> = HashMap::new();
    sql.all(conn, |r| {
        let text = |c: &str| col::<String>(r, c);
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
        Ok(VariantSnapshot {
            variant: variant_from_row(r)?,
            product_id: parse_id(&pid)?,
            product_handle: text("handle")?,
            product_title: serde_json::from_str(&text("title")?).map_err(json)?,
            product_status: ProductStatus::parse(&text("status")?)?,
            facts: shared,
        })
    })
}

fn write_children(conn: &Connection, p: &Product, rid: i64) -> CoreResult<()> {
    let pid = p.id.to_string();
    q::exec(
        conn,
        "DELETE FROM product_categories WHERE product_id = ?",
        [&pid],
    )?;
    for c in &p.categories {
        q::exec(
            conn,
            "INSERT INTO product_categories (category, product_id) VALUES (?, ?)",
            [c, &pid],
        )?;
    }
    // Variants no longer listed go; listed ones are inserted or updated in place so
    // that their ids (referenced by carts and orders) stay stable.
    let mut del = Sql::new("DELETE FROM variants WHERE product_id = ");
    del.bind(pid.clone());
    if !p.variants.is_empty() {
        del.push(" AND id NOT IN (")
            .bind_list(p.variants.iter().map(|v| v.id.to_string()))
            .push(")");
    }
    del.exec(conn)?;
    q::exec(conn, "DELETE FROM prices WHERE product_id = ?", [&pid])?;
    // The kept variants give up their SKUs first (`~` is not a SKU character), so two
    // of them may swap SKUs: SKUs are unique row by row, not at commit.
    q::exec(
        conn,
        "UPDATE variants SET sku = '~' || id WHERE product_id = ?",
        [&pid],
    )?;
    for (pos, v) in p.variants.iter().enumerate() {
        let vid = v.id.to_string();
        q::exec(
            conn,
            "INSERT INTO variants (id, product_id, position, sku, options, stock) VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT (id) DO UPDATE SET position = excluded.position, sku = excluded.sku,
               options = excluded.options, stock = excluded.stock",
            params![
                vid,
                pid,
                pos as i64,
                v.sku,
                serde_json::to_string(&v.options).map_err(json)?,
                v.stock
            ],
        )?;
        for price in &v.prices {
            q::exec(
                conn,
                "INSERT INTO prices (variant_id, product_id, currency, amount_minor) VALUES (?, ?, ?, ?)",
                params![vid, pid, price.currency.code(), price.minor_units()],
            )?;
        }
    }
    q::exec(conn, "DELETE FROM products_fts WHERE rowid = ?", [rid])?;
    q::exec(
        conn,
        "INSERT INTO products_fts (rowid, body) VALUES (?, ?)",
        params![rid, crate::search::search_text(p)],
    )?;
    Ok(())
}

/// Writes a product's own row (`insert` or update by id); the row's `rid` when it
/// exists. The column values are shared by both statements, in the same order.
fn write_row(conn: &Connection, p: &Product, insert: bool) -> CoreResult<Option<i64>> {
    let (countries, compliance) = crate::facts::to_columns(&p.facts)?;
    let mut args: Vec<String> = vec![
        p.handle.clone(),
        p.status.as_str().to_string(),
        serde_json::to_string(&p.title).map_err(json)?,
        serde_json::to_string(&p.description).map_err(json)?,
        serde_json::to_string(&p.categories).map_err(json)?,
        serde_json::to_string(&p.media).map_err(json)?,
        countries,
        compliance,
        crate::search::search_text(p),
        ts(p.updated_at),
        p.id.to_string(),
    ];
    let sql = if insert {
        args.push(ts(p.created_at));
        "INSERT INTO products (handle, status, title, description, categories, media, countries, compliance,
           search_text, updated_at, id, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING rid"
    } else {
        "UPDATE products SET handle = ?, status = ?, title = ?, description = ?, categories = ?, media = ?,
           countries = ?, compliance = ?, search_text = ?, updated_at = ? WHERE id = ? RETURNING rid"
    };
    q::one(conn, sql, rusqlite::params_from_iter(args), |r| {
        col(r, "rid")
    })
}

pub(crate) fn insert_product(conn: &Connection, p: &Product) -> CoreResult<()> {
    let rid = write_row(conn, p, true)?
        .ok_or_else(|| CoreError::Storage("insert returned no row".into()))?;
    write_children(conn, p, rid)
}

pub(crate) fn update_product(conn: &Connection, p: &Product) -> CoreResult<()> {
    let rid = write_row(conn, p, false)?.ok_or(CoreError::NotFound { entity: "product" })?;
    write_children(conn, p, rid)
}

pub(crate) fn delete_product(conn: &Connection, id: ProductId) -> CoreResult<bool> {
    let rid: Option<i64> = q::one(
        conn,
        "DELETE FROM products WHERE id = ? RETURNING rid",
        [id.to_string()],
        |r| col(r, "rid"),
    )?;
    let Some(rid) = rid else { return Ok(false) };
    q::exec(conn, "DELETE FROM products_fts WHERE rowid = ?", [rid])?;
    Ok(true)
}

crate::catalog_read!(SqliteTx, sync);
crate::catalog_read!(SqliteReader, sync);

#[async_trait]
impl CatalogWrite for SqliteTx {
    async fn insert_product(&mut self, product: &Product) -> CoreResult<()> {
        insert_product(self.conn(), product)
    }
    async fn update_product(&mut self, product: &Product) -> CoreResult<()> {
        update_product(self.conn(), product)
    }
    async fn delete_product(&mut self, id: ProductId) -> CoreResult<bool> {
        delete_product(self.conn(), id)
    }
    async fn upsert_category(&mut self, category: &Category) -> CoreResult<()> {
        q::exec(
            self.conn(),
            "INSERT INTO categories (handle, name) VALUES (?, ?) ON CONFLICT (handle) DO UPDATE SET name = excluded.name",
            params![category.handle, serde_json::to_string(&category.name).map_err(json)?],
        )?;
        Ok(())
    }
    async fn take_stock(&mut self, variant: VariantId, qty: i64) -> CoreResult<Option<i64>> {
        q::one(
            self.conn(),
            "UPDATE variants SET stock = stock - ?1 WHERE id = ?2 AND stock >= ?1 RETURNING stock",
            params![qty, variant.to_string()],
            |r| col(r, "stock"),
        )
    }
    async fn return_stock(&mut self, variant: VariantId, qty: i64) -> CoreResult<()> {
        q::exec(
            self.conn(),
            "UPDATE variants SET stock = stock + ? WHERE id = ?",
            params![qty, variant.to_string()],
        )?;
        Ok(())
    }
}
