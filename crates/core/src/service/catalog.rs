//! Catalog use cases: search, read, and the operator's writes.

use std::sync::Arc;

use serde_json::json;

use crate::auth::Principal;
use crate::catalog::{
    patch_variant, Category, Cursor, Product, ProductInput, ProductPage, ProductQuery, ProductSort,
    ProductStatus, VariantInput,
};
use crate::engine::{Engine, PAGES_NS, PRODUCTS_NS};
use crate::error::{CoreError, CoreResult, FieldError};
use crate::events::DomainEvent;
use crate::ids::{ProductId, VariantId};
use crate::money::{Currency, Money};
use crate::ports::Tx;

/// Longest search string accepted.
pub const MAX_QUERY_CHARS: usize = 200;
/// Most search terms used.
pub const MAX_TERMS: usize = 8;

/// A product search as it arrives from a client, unvalidated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProductSearch {
    /// Free text.
    pub q: Option<String>,
    /// Category handle.
    pub category: Option<String>,
    /// Currency of the price filters and sorts.
    pub currency: Option<String>,
    /// Minimum price (decimal string).
    pub min_price: Option<String>,
    /// Maximum price (decimal string).
    pub max_price: Option<String>,
    /// `newest`, `price_asc`, `price_desc`, `handle`.
    pub sort: Option<String>,
    /// Page size (default 20, at most 100).
    pub limit: Option<u32>,
    /// Opaque cursor from a previous page.
    pub cursor: Option<String>,
    /// Admin listings include drafts.
    pub include_drafts: bool,
    /// Admin listings: `draft` or `published` only.
    pub status: Option<String>,
    /// Only products sellable in this country today (ISO alpha-2).
    pub country: Option<String>,
}

impl ProductSearch {
    /// Validates into a storage query.
    pub fn to_query(&self) -> CoreResult<ProductQuery> {
        let mut errors = Vec::new();
        let q = self.q.as_deref().unwrap_or("").trim();
        if q.chars().count() > MAX_QUERY_CHARS {
            errors.push(FieldError::new(
                "q",
                "too_long",
                format!("at most {MAX_QUERY_CHARS} characters"),
            ));
        }
        // Control characters never belong in a search; quotes and operators are fine
        // because storage treats every term as a literal.
        let terms: Vec<String> = q
            .split_whitespace()
            .map(|t| {
                t.chars()
                    .filter(|c| !c.is_control())
                    .collect::<String>()
                    .to_lowercase()
            })
            .filter(|t| !t.is_empty())
            .take(MAX_TERMS)
            .collect();
        let currency = match self.currency.as_deref().filter(|c| !c.is_empty()) {
            Some(c) => match c.parse::<Currency>() {
                Ok(c) => Some(c),
                Err(_) => {
                    errors.push(FieldError::new(
                        "currency",
                        "unsupported_currency",
                        "unsupported currency",
                    ));
                    None
                }
            },
            None => None,
        };
        let mut price = |field: &str, v: &Option<String>| -> Option<i64> {
            let v = v.as_deref().filter(|s| !s.is_empty())?;
            let Some(c) = currency else {
                errors.push(FieldError::new(
                    field,
                    "currency_required",
                    "price filters need `currency`",
                ));
                return None;
            };
            match Money::parse(v, c) {
                Ok(m) if !m.is_negative() => Some(m.minor_units()),
                _ => {
                    errors.push(FieldError::new(
                        field,
                        "invalid_amount",
                        format!("not a valid {c} amount"),
                    ));
                    None
                }
            }
        };
        let min_price_minor = price("min_price", &self.min_price);
        let max_price_minor = price("max_price", &self.max_price);
        let sort = match ProductSort::parse(self.sort.as_deref().unwrap_or("")) {
            Ok(s) => s,
            Err(_) => {
                errors.push(FieldError::new(
                    "sort",
                    "invalid_value",
                    "one of newest, price_asc, price_desc, handle",
                ));
                ProductSort::Newest
            }
        };
        if matches!(sort, ProductSort::PriceAsc | ProductSort::PriceDesc) && currency.is_none() {
            errors.push(FieldError::new(
                "currency",
                "currency_required",
                "price sorts need `currency`",
            ));
        }
        let limit = self.limit.unwrap_or(20);
        if !(1..=100).contains(&limit) {
            errors.push(FieldError::new(
                "limit",
                "out_of_range",
                "between 1 and 100",
            ));
        }
        let after = match self.cursor.as_deref().filter(|c| !c.is_empty()) {
            Some(c) => match Cursor::decode(c) {
                Ok(c) => Some(c),
                Err(_) => {
                    errors.push(FieldError::new(
                        "cursor",
                        "invalid_cursor",
                        "cursor is not valid",
                    ));
                    None
                }
            },
            None => None,
        };
        if let Some(c) = self.category.as_deref() {
            if c.len() > 100 {
                errors.push(FieldError::new(
                    "category",
                    "too_long",
                    "at most 100 characters",
                ));
            }
        }
        let status = match self.status.as_deref().filter(|s| !s.is_empty()) {
            Some(s) => match ProductStatus::parse(s) {
                Ok(st) => Some(st),
                Err(_) => {
                    errors.push(FieldError::new(
                        "status",
                        "invalid_value",
                        "draft or published",
                    ));
                    None
                }
            },
            None => None,
        };
        let query = ProductQuery {
            status,
            terms,
            category: self.category.clone().filter(|c| !c.is_empty()),
            currency,
            min_price_minor,
            max_price_minor,
            sort,
            limit,
            after,
            include_drafts: self.include_drafts,
        };
        if query
            .after
            .as_ref()
            .is_some_and(|c| c.order != query.cursor_order())
        {
            errors.push(FieldError::new(
                "cursor",
                "invalid_cursor",
                "this cursor belongs to another sort or currency; start again without it",
            ));
        }
        if !errors.is_empty() {
            return Err(CoreError::validation(errors));
        }
        Ok(query)
    }
}

fn product_payload(p: &Product) -> serde_json::Value {
    json!({
        "id": p.id, "handle": p.handle, "status": p.status.as_str(),
        "categories": p.categories,
        "variants": p.variants.iter().map(|v| json!({"id": v.id, "sku": v.sku, "stock": v.stock, "prices": v.prices})).collect::<Vec<_>>(),
    })
}

impl Engine {
    /// Searches products. Results are cached briefly; see
    /// [`crate::engine::EngineSettings::catalog_cache_ttl`].
    pub async fn search_products(&self, search: &ProductSearch) -> CoreResult<Arc<ProductPage>> {
        let query = search.to_query()?;
        let country = match search
            .country
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty())
        {
            Some(c) => {
                let c = c.to_ascii_uppercase();
                if !crate::cart::is_country_code(&c) {
                    return Err(CoreError::invalid_field(
                        "country",
                        "invalid_country",
                        "ISO 3166-1 alpha-2 code",
                    ));
                }
                Some(c)
            }
            None => None,
        };
        let Some(country) = country.filter(|_| self.0.compliance.enabled()) else {
            let key = format!("{query:?}");
            let store = &self.0.store;
            return self
                .0
                .product_pages
                .get_or_load(&key, || {
                    self.shared_or_load(PAGES_NS, &key, || async {
                        store.read().await?.products(&query).await
                    })
                })
                .await;
        };
        // The decision depends on the day (registrations expire) and the rule version,
        // so both are part of the key; a rule change also drops the cache.
        let snap = self.rules_snapshot().await;
        let version = snap.rules.get(&country).map_or(-1, |(_, v)| *v);
        let key = format!("{query:?}|{country}|{}|{version}", self.today());
        self.0
            .product_pages
            .get_or_load(&key, || {
                self.shared_or_load(PAGES_NS, &key, || self.load_sellable(query, &country, snap))
            })
            .await
    }

    /// Fills a page with products sellable in `country`. Storage is asked for just the
    /// number still missing, so the last product scanned is always the last returned
    /// or filtered out, and the storage cursor after it continues the listing exactly.
    /// A bound on products scanned keeps a country with few sellable products from
    /// reading the whole catalog in one request: the page is then short, with a cursor.
    async fn load_sellable(
        &self,
        mut query: ProductQuery,
        country: &str,
        snap: Arc<crate::compliance::registry::RulesSnapshot>,
    ) -> CoreResult<ProductPage> {
        const MAX_SCANNED: usize = 500;
        // A country not served today lists nothing: answer at once instead of scanning
        // the catalog page by page to find that out.
        let served = self.0.compliance.plugin(country).is_some()
            && snap
                .rules(country)
                .is_some_and(|r| crate::compliance::evaluate::served(r, self.today()));
        if !served {
            return Ok(ProductPage {
                products: Vec::new(),
                next: None,
            });
        }
        let want = query.limit as usize;
        let mut out = Vec::with_capacity(want);
        let mut scanned = 0;
        let mut r = self.0.store.read().await?;
        loop {
            // Ask for at least a few, so sparse countries scan in fewer round trips.
            query.limit = (want - out.len()).max(want.min(20)) as u32;
            let page = r.products(&query).await?;
            scanned += page.products.len();
            let got = page.products.len();
            let mut sellable = self.sellable_in(&snap, country, page.products);
            if out.len() + sellable.len() > want {
                // More passed than needed: storage is asked again for the exact rest,
                // so the cursor stays exact.
                query.limit = (want - out.len()) as u32;
                let exact = r.products(&query).await?;
                out.extend(self.sellable_in(&snap, country, exact.products));
                out.truncate(want);
                return Ok(ProductPage {
                    products: out,
                    next: exact.next,
                });
            }
            out.append(&mut sellable);
            match page.next {
                Some(next) if out.len() < want && scanned < MAX_SCANNED && got > 0 => {
                    query.after = Some(next)
                }
                next => {
                    return Ok(ProductPage {
                        products: out,
                        next,
                    })
                }
            }
        }
    }

    /// A product by id or handle. Drafts are visible only with `include_drafts`.
    pub async fn product(
        &self,
        id_or_handle: &str,
        include_drafts: bool,
    ) -> CoreResult<Arc<Product>> {
        let store = &self.0.store;
        let product = self
            .0
            .product_details
            .get_or_load(id_or_handle, || {
                self.shared_or_load(PRODUCTS_NS, id_or_handle, || async {
                    let mut r = store.read().await?;
                    let found = match id_or_handle.parse::<ProductId>() {
                        Ok(id) => r.product(id).await?,
                        // No handle holds NUL (PostgreSQL would refuse even to compare
                        // with one, where SQLite just finds nothing): not found either way.
                        Err(_) if id_or_handle.len() <= 100 && !id_or_handle.contains('\0') => {
                            r.product_by_handle(id_or_handle).await?
                        }
                        Err(_) => None,
                    };
                    found.ok_or(CoreError::NotFound { entity: "product" })
                })
            })
            .await?;
        if !include_drafts && product.status != ProductStatus::Published {
            return Err(CoreError::NotFound { entity: "product" });
        }
        Ok(product)
    }

    /// All categories.
    pub async fn categories(&self) -> CoreResult<Vec<Category>> {
        self.0.store.read().await?.categories().await
    }

    async fn ensure_categories(&self, tx: &mut Box<dyn Tx>, handles: &[String]) -> CoreResult<()> {
        if handles.is_empty() {
            return Ok(());
        }
        let existing = tx.categories().await?;
        for h in handles {
            if !existing.iter().any(|c| &c.handle == h) {
                // A new category gets its handle as a provisional name; operators
                // rename it with `upsert_category`.
                let name = crate::locale::LocalizedText::single("en", h);
                tx.upsert_category(&Category {
                    handle: h.clone(),
                    name,
                })
                .await?;
            }
        }
        Ok(())
    }

    fn low_stock_events(&self, p: &Product, events: &mut Vec<DomainEvent>) {
        events.extend(
            p.variants
                .iter()
                .filter_map(|v| self.low_stock_event(p.id, v.id, &v.sku, v.stock)),
        );
    }

    /// `inventory.low` when `stock` is at or below the threshold.
    pub(crate) fn low_stock_event(
        &self,
        product_id: ProductId,
        variant_id: VariantId,
        sku: &str,
        stock: i64,
    ) -> Option<DomainEvent> {
        (stock <= self.0.settings.low_stock_threshold).then(|| {
            DomainEvent::new(
                "inventory.low",
                "inventory",
                variant_id,
                self.now(),
                json!({"variant_id": variant_id, "product_id": product_id, "sku": sku, "stock": stock}),
            )
        })
    }

    /// `inventory.adjusted` for every variant whose stock an operator changed, and
    /// `inventory.low` for those that are now at or below the threshold.
    fn stock_change_events(
        &self,
        before: &Product,
        after: &Product,
        events: &mut Vec<DomainEvent>,
    ) {
        let now = self.now();
        for v in &after.variants {
            let previous = before
                .variants
                .iter()
                .find(|c| c.id == v.id)
                .map(|c| c.stock);
            if previous == Some(v.stock) {
                continue;
            }
            events.push(DomainEvent::new(
                "inventory.adjusted",
                "inventory",
                v.id,
                now,
                json!({"variant_id": v.id, "product_id": after.id, "sku": v.sku, "stock": v.stock, "previous": previous}),
            ));
            events.extend(self.low_stock_event(after.id, v.id, &v.sku, v.stock));
        }
    }

    /// Creates a product (operator).
    pub async fn create_product(
        &self,
        staff: &Principal,
        input: ProductInput,
    ) -> CoreResult<Product> {
        let product = input.into_new_product(self.now())?;
        let rules = self.rules_snapshot().await;
        self.check_product_facts(&rules, &product, None)?;
        let mut tx = self.0.store.begin().await?;
        self.ensure_categories(&mut tx, &product.categories).await?;
        tx.insert_product(&product).await?;
        tx.append_audit(&self.audit(
            staff,
            "product.create",
            "product",
            product.id,
            json!({"handle": product.handle}),
        ))
        .await?;
        let mut events = vec![DomainEvent::new(
            "product.created",
            "product",
            product.id,
            self.now(),
            product_payload(&product),
        )];
        self.low_stock_events(&product, &mut events);
        self.commit(tx, &events).await?;
        self.invalidate_catalog_cache_everywhere().await;
        Ok(product)
    }

    /// Changes a product (operator); the body is any subset of the create body.
    pub async fn update_product(
        &self,
        staff: &Principal,
        id: ProductId,
        patch: ProductInput,
    ) -> CoreResult<Product> {
        // Read before the transaction: a rules reload inside it would ask for a second
        // connection while holding the writer.
        let rules = self.rules_snapshot().await;
        let mut tx = self.0.store.begin().await?;
        let current = tx
            .product(id)
            .await?
            .ok_or(CoreError::NotFound { entity: "product" })?;
        let summary = serde_json::to_value(&patch).unwrap_or_default();
        let next = patch.apply_to(&current, self.now())?;
        self.check_product_facts(&rules, &next, Some(&current))?;
        self.ensure_categories(&mut tx, &next.categories).await?;
        tx.update_product(&next).await?;
        tx.append_audit(&self.audit(staff, "product.update", "product", id, summary))
            .await?;
        let mut events = vec![DomainEvent::new(
            "product.updated",
            "product",
            id,
            self.now(),
            product_payload(&next),
        )];
        self.stock_change_events(&current, &next, &mut events);
        self.commit(tx, &events).await?;
        self.invalidate_catalog_cache_everywhere().await;
        Ok(next)
    }

    /// Changes one variant's stock, prices, options or SKU (operator).
    pub async fn update_variant(
        &self,
        staff: &Principal,
        product_id: ProductId,
        variant_id: VariantId,
        input: VariantInput,
    ) -> CoreResult<Product> {
        let mut tx = self.0.store.begin().await?;
        let current = tx
            .product(product_id)
            .await?
            .ok_or(CoreError::NotFound { entity: "product" })?;
        let idx = current
            .variants
            .iter()
            .position(|v| v.id == variant_id)
            .ok_or(CoreError::NotFound { entity: "variant" })?;
        let mut next = current.clone();
        next.variants[idx] = patch_variant(&current.variants[idx], &input)?;
        if let Some(sku) = &input.sku {
            if current
                .variants
                .iter()
                .enumerate()
                .any(|(i, v)| i != idx && &v.sku == sku)
            {
                return Err(CoreError::validation(vec![FieldError::new(
                    "sku",
                    "duplicate",
                    "SKUs must be unique",
                )]));
            }
        }
        next.updated_at = self.now();
        tx.update_product(&next).await?;
        let summary = serde_json::to_value(&input).unwrap_or_default();
        tx.append_audit(&self.audit(staff, "variant.update", "variant", variant_id, summary))
            .await?;
        let mut events = vec![DomainEvent::new(
            "product.updated",
            "product",
            product_id,
            self.now(),
            product_payload(&next),
        )];
        self.stock_change_events(&current, &next, &mut events);
        self.commit(tx, &events).await?;
        self.invalidate_catalog_cache_everywhere().await;
        Ok(next)
    }

    /// Deletes a product (operator). Orders keep their own copy of the lines.
    pub async fn delete_product(&self, staff: &Principal, id: ProductId) -> CoreResult<()> {
        let mut tx = self.0.store.begin().await?;
        let current = tx
            .product(id)
            .await?
            .ok_or(CoreError::NotFound { entity: "product" })?;
        tx.delete_product(id).await?;
        tx.append_audit(&self.audit(
            staff,
            "product.delete",
            "product",
            id,
            json!({"handle": current.handle}),
        ))
        .await?;
        let events = [DomainEvent::new(
            "product.deleted",
            "product",
            id,
            self.now(),
            json!({"id": id, "handle": current.handle}),
        )];
        self.commit(tx, &events).await?;
        self.invalidate_catalog_cache_everywhere().await;
        Ok(())
    }

    /// Creates or renames a category (operator).
    pub async fn upsert_category(
        &self,
        staff: &Principal,
        category: Category,
    ) -> CoreResult<Category> {
        let mut errors = Vec::new();
        crate::catalog::validate_handle("handle", &category.handle, &mut errors);
        category.name.validate("name", 100, true, &mut errors);
        if !errors.is_empty() {
            return Err(CoreError::validation(errors));
        }
        let mut tx = self.0.store.begin().await?;
        tx.upsert_category(&category).await?;
        tx.append_audit(&self.audit(
            staff,
            "category.upsert",
            "category",
            &category.handle,
            json!({"name": category.name}),
        ))
        .await?;
        self.commit(tx, &[]).await?;
        self.invalidate_catalog_cache_everywhere().await;
        Ok(category)
    }
}
