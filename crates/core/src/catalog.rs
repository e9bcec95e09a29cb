//! Catalog: products, variants, prices, categories, and the inputs that create and
//! change them.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::compliance::product::{
    check_common, check_product_level, parse_country_data, CountryData, Ingredient, ProductFacts,
};
use crate::error::{CoreError, CoreResult, FieldError};
use crate::ids::{ProductId, VariantId};
use crate::locale::LocalizedText;
use crate::money::{Currency, Money, MoneyInput};

/// Most variants one product may have; more is a data error, not a catalog.
pub const MAX_VARIANTS: usize = 100;
/// Largest stock figure accepted for one variant.
pub const MAX_STOCK: i64 = 10_000_000;

/// Whether buyers can see a product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProductStatus {
    /// Visible to operators only.
    Draft,
    /// Visible in the store.
    Published,
}

impl ProductStatus {
    /// Storage form.
    pub fn as_str(self) -> &'static str {
        match self {
            ProductStatus::Draft => "draft",
            ProductStatus::Published => "published",
        }
    }

    /// Parses the storage form.
    pub fn parse(s: &str) -> CoreResult<Self> {
        match s {
            "draft" => Ok(ProductStatus::Draft),
            "published" => Ok(ProductStatus::Published),
            other => Err(CoreError::invalid_field(
                "status",
                "invalid_value",
                format!("unknown status `{other}`"),
            )),
        }
    }
}

/// A reference to a media file (image) kept by a media store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaRef {
    /// Where the file can be fetched (absolute URL or a path under the media base URL).
    pub url: String,
    /// Alternative text per locale.
    #[serde(default)]
    pub alt: LocalizedText,
}

/// A sellable variant of a product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Variant {
    /// Id.
    pub id: VariantId,
    /// Stock keeping unit, unique across the catalog.
    pub sku: String,
    /// Option values, e.g. `{"size": "30 sticks"}`.
    pub options: BTreeMap<String, String>,
    /// One price per currency.
    pub prices: Vec<Money>,
    /// On-hand stock available for sale. Checkout decrements it; cancellations return it.
    pub stock: i64,
}

impl Variant {
    /// The price in a currency, if set.
    pub fn price_in(&self, currency: Currency) -> Option<Money> {
        self.prices.iter().copied().find(|p| p.currency == currency)
    }
}

/// A product with its variants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    /// Id.
    pub id: ProductId,
    /// URL-friendly unique name.
    pub handle: String,
    /// Draft or published.
    pub status: ProductStatus,
    /// Title per locale.
    pub title: LocalizedText,
    /// Description per locale.
    pub description: LocalizedText,
    /// Category handles.
    pub categories: Vec<String>,
    /// Images.
    pub media: Vec<MediaRef>,
    /// Compliance data: ingredients and claims, and per destination country its
    /// registration, halal status and label statements (checked by the country's
    /// plugin when saved).
    #[serde(flatten)]
    pub facts: ProductFacts,
    /// Variants, in display order.
    pub variants: Vec<Variant>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

impl Product {
    /// Lowest price in a currency over the variants.
    pub fn min_price(&self, currency: Currency) -> Option<Money> {
        self.variants
            .iter()
            .filter_map(|v| v.price_in(currency))
            .min_by(|a, b| a.amount.cmp(&b.amount))
    }
}

/// A category.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Category {
    /// Unique handle.
    pub handle: String,
    /// Display name per locale.
    pub name: LocalizedText,
}

/// A variant as seen by carts and checkout, with the product fields they need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VariantSnapshot {
    /// The variant.
    pub variant: Variant,
    /// Its product.
    pub product_id: ProductId,
    /// Product handle.
    pub product_handle: String,
    /// Product title.
    pub product_title: LocalizedText,
    /// Product status: drafts cannot be bought.
    pub product_status: ProductStatus,
    /// The product's compliance data (shared by its variants).
    pub facts: std::sync::Arc<ProductFacts>,
}

/// Variant fields in a create or patch body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariantInput {
    /// Existing variant to change (patch); absent to match by SKU or create.
    #[serde(default)]
    pub id: Option<VariantId>,
    /// SKU (required when creating).
    #[serde(default)]
    pub sku: Option<String>,
    /// Options.
    #[serde(default)]
    pub options: Option<BTreeMap<String, String>>,
    /// Prices; replaces the list when given.
    #[serde(default)]
    pub prices: Option<Vec<MoneyInput>>,
    /// On-hand stock; sets the figure when given.
    #[serde(default)]
    pub stock: Option<i64>,
}

/// A product create body, or a patch (every field optional) over an existing product.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductInput {
    /// Handle: lowercase letters, digits and dashes.
    #[serde(default)]
    pub handle: Option<String>,
    /// Status (default draft on create).
    #[serde(default)]
    pub status: Option<ProductStatus>,
    /// Title per locale.
    #[serde(default)]
    pub title: Option<LocalizedText>,
    /// Description per locale.
    #[serde(default)]
    pub description: Option<LocalizedText>,
    /// Category handles.
    #[serde(default)]
    pub categories: Option<Vec<String>>,
    /// Media.
    #[serde(default)]
    pub media: Option<Vec<MediaRef>>,
    /// Per-country data objects (`{"ID": {"registration": {...}, "halal": null}}`),
    /// checked against each country's schema.
    #[serde(default)]
    pub countries: Option<BTreeMap<String, serde_json::Value>>,
    /// Active ingredients per daily dose.
    #[serde(default)]
    pub ingredients: Option<Vec<Ingredient>>,
    /// Structure/function claims per locale.
    #[serde(default)]
    pub claims: Option<BTreeMap<String, Vec<String>>>,
    /// Variants. On patch the list is the new set: listed ones (by id or SKU) are
    /// changed or added, unlisted ones are removed.
    #[serde(default)]
    pub variants: Option<Vec<VariantInput>>,
}

/// Checks a handle: 1-100 chars of `a-z0-9-`, not starting or ending with a dash.
pub fn validate_handle(field: &str, handle: &str, errors: &mut Vec<FieldError>) {
    let ok = !handle.is_empty()
        && handle.len() <= 100
        && handle
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !handle.starts_with('-')
        && !handle.ends_with('-');
    if !ok {
        errors.push(FieldError::new(
            field,
            "invalid_format",
            "1-100 characters of lowercase letters, digits and dashes, not starting or ending with a dash",
        ));
    }
}

/// A product's handle: as [`validate_handle`], and never in the form of a product id,
/// since `/products/{id_or_handle}` reads an id first and a handle written like one (32
/// hex digits, with or without dashes) could never be reached by it. Category handles
/// are never read as ids, so they keep the plain rule.
fn validate_product_handle(handle: &str, errors: &mut Vec<FieldError>) {
    let before = errors.len();
    validate_handle("handle", handle, errors);
    if errors.len() == before && handle.parse::<crate::ids::ProductId>().is_ok() {
        errors.push(FieldError::new(
            "handle",
            "invalid_format",
            "a handle must not have the form of a product id (a UUID)",
        ));
    }
}

fn validate_sku(field: &str, sku: &str, errors: &mut Vec<FieldError>) {
    let ok = !sku.is_empty()
        && sku.len() <= 64
        && sku
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if !ok {
        errors.push(FieldError::new(
            field,
            "invalid_format",
            "1-64 characters of letters, digits, `-`, `_`, `.`",
        ));
    }
}

fn validate_prices(field: &str, prices: &[MoneyInput], errors: &mut Vec<FieldError>) -> Vec<Money> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    if prices.len() > Currency::ALL.len() {
        errors.push(FieldError::new(
            field,
            "too_many",
            "at most one price per currency",
        ));
    }
    for (i, p) in prices.iter().enumerate() {
        match p.to_money() {
            Ok(m) if m.is_negative() || m.amount.is_zero() => errors.push(FieldError::new(
                format!("{field}[{i}].amount"),
                "out_of_range",
                "price must be positive",
            )),
            Ok(m) => {
                if !seen.insert(m.currency) {
                    errors.push(FieldError::new(
                        format!("{field}[{i}].currency"),
                        "duplicate",
                        "one price per currency",
                    ));
                }
                out.push(m);
            }
            Err(e) => errors.push(FieldError::new(
                format!("{field}[{i}]"),
                "invalid_value",
                e.to_string(),
            )),
        }
    }
    out
}

fn validate_stock(field: &str, stock: i64, errors: &mut Vec<FieldError>) {
    if !(0..=MAX_STOCK).contains(&stock) {
        errors.push(FieldError::new(
            field,
            "out_of_range",
            format!("stock must be between 0 and {MAX_STOCK}"),
        ));
    }
}

fn validate_options(field: &str, options: &BTreeMap<String, String>, errors: &mut Vec<FieldError>) {
    if options.len() > 10 {
        errors.push(FieldError::new(field, "too_many", "at most 10 options"));
    }
    for (k, v) in options {
        if k.is_empty() || k.chars().count() > 50 || v.chars().count() > 100 {
            errors.push(FieldError::new(
                format!("{field}.{k}"),
                "invalid_value",
                "option names up to 50 and values up to 100 characters",
            ));
        }
    }
}

/// Checks what creates and patches share; returns the parsed `countries` when given, so
/// they are parsed once.
fn validate_common(
    input: &ProductInput,
    errors: &mut Vec<FieldError>,
) -> Option<BTreeMap<String, CountryData>> {
    if let Some(h) = &input.handle {
        validate_product_handle(h, errors);
    }
    if let Some(t) = &input.title {
        t.validate("title", 300, true, errors);
    }
    if let Some(d) = &input.description {
        d.validate("description", 20_000, false, errors);
    }
    if let Some(cats) = &input.categories {
        if cats.len() > 20 {
            errors.push(FieldError::new(
                "categories",
                "too_many",
                "at most 20 categories",
            ));
        }
        for (i, c) in cats.iter().enumerate() {
            validate_handle(&format!("categories[{i}]"), c, errors);
        }
    }
    if let Some(media) = &input.media {
        if media.len() > 50 {
            errors.push(FieldError::new(
                "media",
                "too_many",
                "at most 50 media files",
            ));
        }
        for (i, m) in media.iter().enumerate() {
            if m.url.is_empty() || m.url.len() > 2048 || m.url.chars().any(char::is_whitespace) {
                errors.push(FieldError::new(
                    format!("media[{i}].url"),
                    "invalid_format",
                    "a URL or path without spaces",
                ));
            } else if !media_scheme_allowed(&m.url) {
                // Store fronts put these in `src` and `href`: `javascript:` or `data:`
                // there would run or show whatever an admin account typed.
                errors.push(FieldError::new(
                    format!("media[{i}].url"),
                    "invalid_format",
                    "an http or https URL, or a path",
                ));
            }
        }
    }
    if input.ingredients.is_some() || input.claims.is_some() {
        check_product_level(
            input.ingredients.as_deref().unwrap_or_default(),
            input.claims.as_ref().unwrap_or(&BTreeMap::new()),
            errors,
        );
    }
    input
        .countries
        .as_ref()
        .map(|countries| parse_countries(countries, errors))
}

/// Parses `countries.CC` objects into their common schema (country plugins check the
/// rest when the product is saved).
fn parse_countries(
    countries: &BTreeMap<String, serde_json::Value>,
    errors: &mut Vec<FieldError>,
) -> BTreeMap<String, CountryData> {
    let mut out = BTreeMap::new();
    for (code, v) in countries {
        let path = format!("countries.{code}");
        if code.len() != 2 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
            errors.push(FieldError::new(
                path.clone(),
                "invalid_country",
                "ISO 3166-1 alpha-2 code",
            ));
        }
        if !v.is_object() {
            errors.push(FieldError::new(path, "invalid_type", "must be an object"));
            continue;
        }
        let mut local = Vec::new();
        if let Some(d) = parse_country_data(v, &path, &mut local) {
            check_common(&d, &path, &mut local);
            out.insert(code.clone(), d);
        }
        errors.extend(local);
    }
    out
}

impl ProductInput {
    /// Validates a create body and builds the product.
    pub fn into_new_product(self, now: DateTime<Utc>) -> CoreResult<Product> {
        let mut errors = Vec::new();
        let countries = validate_common(&self, &mut errors);
        if self.handle.is_none() {
            errors.push(FieldError::new("handle", "required", "handle is required"));
        }
        if self.title.is_none() {
            errors.push(FieldError::new("title", "required", "title is required"));
        }
        let inputs = self.variants.clone().unwrap_or_default();
        if inputs.is_empty() {
            errors.push(FieldError::new(
                "variants",
                "required",
                "at least one variant",
            ));
        }
        let variants = build_variants(&[], &inputs, &mut errors);
        if !errors.is_empty() {
            return Err(CoreError::validation(errors));
        }
        Ok(Product {
            id: ProductId::new(),
            handle: self.handle.unwrap_or_default(),
            status: self.status.unwrap_or(ProductStatus::Draft),
            title: self.title.unwrap_or_default(),
            description: self.description.unwrap_or_default(),
            categories: dedup(self.categories.unwrap_or_default()),
            media: self.media.unwrap_or_default(),
            facts: ProductFacts {
                countries: countries.unwrap_or_default(),
                ingredients: self.ingredients.unwrap_or_default(),
                claims: self.claims.unwrap_or_default(),
            },
            variants,
            created_at: now,
            updated_at: now,
        })
    }

    /// Validates a patch and applies it to a copy of `current`.
    pub fn apply_to(self, current: &Product, now: DateTime<Utc>) -> CoreResult<Product> {
        let mut errors = Vec::new();
        let countries = validate_common(&self, &mut errors);
        let mut next = current.clone();
        if let Some(v) = self.variants.as_ref() {
            if v.is_empty() {
                errors.push(FieldError::new(
                    "variants",
                    "required",
                    "at least one variant",
                ));
            }
            next.variants = build_variants(&current.variants, v, &mut errors);
        }
        if !errors.is_empty() {
            return Err(CoreError::validation(errors));
        }
        if let Some(h) = self.handle {
            next.handle = h;
        }
        if let Some(s) = self.status {
            next.status = s;
        }
        if let Some(t) = self.title {
            next.title = t;
        }
        if let Some(d) = self.description {
            next.description = d;
        }
        if let Some(c) = self.categories {
            next.categories = dedup(c);
        }
        if let Some(m) = self.media {
            next.media = m;
        }
        if let Some(c) = countries {
            next.facts.countries = c;
        }
        if let Some(i) = self.ingredients {
            next.facts.ingredients = i;
        }
        if let Some(c) = self.claims {
            next.facts.claims = c;
        }
        next.updated_at = now;
        Ok(next)
    }
}

/// Applies a variant patch (`PATCH .../variants/{id}`) to one variant.
pub fn patch_variant(current: &Variant, input: &VariantInput) -> CoreResult<Variant> {
    let mut errors = Vec::new();
    let v = build_one(Some(current), input, "", &mut errors);
    if !errors.is_empty() {
        return Err(CoreError::validation(errors));
    }
    Ok(v)
}

fn build_one(
    existing: Option<&Variant>,
    input: &VariantInput,
    prefix: &str,
    errors: &mut Vec<FieldError>,
) -> Variant {
    let field = |f: &str| {
        if prefix.is_empty() {
            f.to_string()
        } else {
            format!("{prefix}.{f}")
        }
    };
    let mut v = existing.cloned().unwrap_or(Variant {
        id: VariantId::new(),
        sku: String::new(),
        options: BTreeMap::new(),
        prices: Vec::new(),
        stock: 0,
    });
    match (&input.sku, existing) {
        (Some(s), _) => {
            validate_sku(&field("sku"), s, errors);
            v.sku = s.clone();
        }
        (None, None) => errors.push(FieldError::new(field("sku"), "required", "sku is required")),
        (None, Some(_)) => {}
    }
    if let Some(o) = &input.options {
        validate_options(&field("options"), o, errors);
        v.options = o.clone();
    }
    if let Some(p) = &input.prices {
        v.prices = validate_prices(&field("prices"), p, errors);
    }
    if let Some(s) = input.stock {
        validate_stock(&field("stock"), s, errors);
        v.stock = s;
    }
    v
}

/// A path (no scheme) or an `http`/`https` URL.
fn media_scheme_allowed(url: &str) -> bool {
    let before_path = url.split(['/', '?', '#']).next().unwrap_or_default();
    match before_path.split_once(':') {
        None => true,
        Some((scheme, _)) => {
            scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")
        }
    }
}

fn build_variants(
    current: &[Variant],
    inputs: &[VariantInput],
    errors: &mut Vec<FieldError>,
) -> Vec<Variant> {
    if inputs.len() > MAX_VARIANTS {
        errors.push(FieldError::new(
            "variants",
            "too_many",
            format!("at most {MAX_VARIANTS} variants"),
        ));
        return current.to_vec();
    }
    let mut out = Vec::with_capacity(inputs.len());
    let mut skus = BTreeSet::new();
    let mut ids = BTreeSet::new();
    for (i, input) in inputs.iter().enumerate() {
        let prefix = format!("variants[{i}]");
        let existing = match input.id {
            Some(id) if !ids.insert(id) => {
                errors.push(FieldError::new(
                    format!("{prefix}.id"),
                    "duplicate",
                    "each variant is listed once",
                ));
                None
            }
            Some(id) => {
                let found = current.iter().find(|v| v.id == id);
                if found.is_none() {
                    errors.push(FieldError::new(
                        format!("{prefix}.id"),
                        "not_found",
                        "no such variant on this product",
                    ));
                }
                found
            }
            None => input
                .sku
                .as_ref()
                .and_then(|s| current.iter().find(|v| &v.sku == s)),
        };
        let v = build_one(existing, input, &prefix, errors);
        if !skus.insert(v.sku.clone()) {
            errors.push(FieldError::new(
                format!("{prefix}.sku"),
                "duplicate",
                "SKUs must be unique",
            ));
        }
        out.push(v);
    }
    out
}

fn dedup(v: Vec<String>) -> Vec<String> {
    let mut seen = BTreeSet::new();
    v.into_iter().filter(|s| seen.insert(s.clone())).collect()
}

/// Sort orders for product listings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProductSort {
    /// Newest first (default).
    #[default]
    Newest,
    /// Cheapest first in the query currency.
    PriceAsc,
    /// Dearest first in the query currency.
    PriceDesc,
    /// By handle, A to Z (stable and locale-independent).
    Handle,
}

impl ProductSort {
    /// Parses the query-string form.
    pub fn parse(s: &str) -> CoreResult<Self> {
        match s {
            "newest" | "" => Ok(ProductSort::Newest),
            "price_asc" => Ok(ProductSort::PriceAsc),
            "price_desc" => Ok(ProductSort::PriceDesc),
            "handle" => Ok(ProductSort::Handle),
            _ => Err(CoreError::invalid_field(
                "sort",
                "invalid_value",
                "one of newest, price_asc, price_desc, handle",
            )),
        }
    }
}

/// A product search as storage runs it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProductQuery {
    /// Free text, matched as substrings in every locale's title and description, the
    /// handle and SKUs. Every whitespace-separated term must match.
    pub terms: Vec<String>,
    /// Category handle.
    pub category: Option<String>,
    /// Currency for price filters and price sorts.
    pub currency: Option<Currency>,
    /// Minimum price in minor units of `currency` (some variant at or above).
    pub min_price_minor: Option<i64>,
    /// Maximum price in minor units of `currency` (some variant at or below).
    pub max_price_minor: Option<i64>,
    /// Sort.
    pub sort: ProductSort,
    /// Page size, 1..=100.
    pub limit: u32,
    /// Position after which to continue, from a previous page.
    pub after: Option<Cursor>,
    /// Whether drafts are listed (admin only).
    pub include_drafts: bool,
    /// Only products in this status (admin only; implies drafts may be listed).
    pub status: Option<ProductStatus>,
}

impl ProductQuery {
    /// What a cursor of this query's pages is bound to: the sort, and for price sorts
    /// the currency.
    pub fn cursor_order(&self) -> String {
        let currency = self.currency.map(|c| c.code()).unwrap_or_default();
        match self.sort {
            ProductSort::Newest => "newest".into(),
            ProductSort::Handle => "handle".into(),
            ProductSort::PriceAsc => format!("price_asc:{currency}"),
            ProductSort::PriceDesc => format!("price_desc:{currency}"),
        }
    }
}

/// A keyset position: the sort key of the last item and its id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// Sort key as text (timestamp, minor units or handle).
    pub key: String,
    /// Id of the last item, the tiebreaker.
    pub id: ProductId,
    /// The ordering the key belongs to ([`ProductQuery::cursor_order`]): a cursor
    /// reused with another sort or currency would compare a price with a handle and
    /// page silently wrong, so it is refused instead.
    #[serde(default)]
    pub order: String,
}

impl Cursor {
    /// Opaque string form for clients.
    pub fn encode(&self) -> String {
        use base64::Engine as _;
        let json = serde_json::to_vec(self).unwrap_or_default();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    }

    /// Parses the opaque form; any tampering is a 400, not a 500.
    pub fn decode(s: &str) -> CoreResult<Self> {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s.as_bytes())
            .map_err(|_| {
                CoreError::invalid_field("cursor", "invalid_cursor", "cursor is not valid")
            })?;
        let bad = || CoreError::invalid_field("cursor", "invalid_cursor", "cursor is not valid");
        let cursor: Cursor = serde_json::from_slice(&bytes).map_err(|_| bad())?;
        // No stored text holds NUL, so no cursor made here does; PostgreSQL would refuse
        // to compare with it where SQLite just finds nothing.
        if cursor.key.contains('\0') {
            return Err(bad());
        }
        Ok(cursor)
    }
}

/// One page of products.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductPage {
    /// Products in order.
    pub products: Vec<Product>,
    /// Where the next page starts, if there is one.
    pub next: Option<Cursor>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handle_may_not_look_like_a_product_id() {
        let check = |h: &str| {
            let mut errors = Vec::new();
            validate_product_handle(h, &mut errors);
            errors.is_empty()
        };
        assert!(check("red-ginseng-stick-30"));
        assert!(check("cafebabe"));
        assert!(!check("cafebabecafebabecafebabecafebabe"));
        assert!(!check("00000000-0000-0000-0000-000000000001"));
        assert!(
            check("00000000-0000-0000-0000-00000000000"),
            "one digit short"
        );
        // Categories are never read as ids: an imported UUID-like handle stays valid.
        let mut errors = Vec::new();
        validate_handle(
            "categories[0]",
            "cafebabecafebabecafebabecafebabe",
            &mut errors,
        );
        assert!(errors.is_empty(), "{errors:?}");
    }

    fn input() -> ProductInput {
        serde_json::from_value(serde_json::json!({
            "handle": "red-ginseng-stick", "status": "published",
            "title": {"ko": "홍삼 스틱", "en": "Red ginseng stick"},
            "categories": ["ginseng", "ginseng"],
            "variants": [{"sku": "RG-30", "prices": [{"amount": "39000", "currency": "KRW"}], "stock": 100}]
        }))
        .unwrap()
    }

    #[test]
    fn create_validates_and_builds() {
        let p = input().into_new_product(Utc::now()).unwrap();
        assert_eq!(p.categories, vec!["ginseng"]);
        assert_eq!(p.variants[0].stock, 100);
        assert_eq!(p.min_price(Currency::KRW).unwrap().minor_units(), 39000);
    }

    #[test]
    fn create_reports_every_bad_field() {
        let mut i = input();
        i.handle = Some("Bad Handle".into());
        i.variants = Some(vec![
            VariantInput {
                sku: Some("A".into()),
                stock: Some(-1),
                ..Default::default()
            },
            VariantInput {
                sku: Some("A".into()),
                prices: Some(vec![MoneyInput {
                    amount: "1.5".into(),
                    currency: "KRW".into(),
                }]),
                ..Default::default()
            },
        ]);
        let CoreError::Invalid { fields, .. } = i.into_new_product(Utc::now()).unwrap_err() else {
            panic!()
        };
        let names: Vec<_> = fields.iter().map(|f| f.field.as_str()).collect();
        assert!(names.contains(&"handle"), "{names:?}");
        assert!(names.contains(&"variants[0].stock"), "{names:?}");
        assert!(names.contains(&"variants[1].prices[0]"), "{names:?}");
        assert!(names.contains(&"variants[1].sku"), "{names:?}");
    }

    #[test]
    fn patch_keeps_variant_ids_matched_by_sku() {
        let p = input().into_new_product(Utc::now()).unwrap();
        let patch: ProductInput = serde_json::from_value(serde_json::json!({
            "variants": [{"sku": "RG-30", "stock": 5}, {"sku": "RG-60", "prices": [{"amount": "70000", "currency": "KRW"}]}]
        }))
        .unwrap();
        let next = patch.apply_to(&p, Utc::now()).unwrap();
        assert_eq!(next.variants[0].id, p.variants[0].id);
        assert_eq!(next.variants[0].stock, 5);
        assert_eq!(next.variants[0].prices, p.variants[0].prices);
        assert_eq!(next.variants.len(), 2);
        assert_eq!(next.title, p.title);
    }

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let c = Cursor {
            key: "123".into(),
            id: ProductId::new(),
            order: "newest".into(),
        };
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        assert!(Cursor::decode("!!!").is_err());
        assert!(Cursor::decode("e30").is_err());
        let nul = Cursor {
            key: "a\0b".into(),
            id: ProductId::new(),
            order: "handle".into(),
        };
        assert!(Cursor::decode(&nul.encode()).is_err());
    }

    #[test]
    fn media_urls_are_http_or_paths() {
        let mut i = input();
        i.media = Some(
            [
                "https://cdn.example.com/a.jpg",
                "HTTP://cdn.example.com/b.jpg",
                "/media/c.jpg",
                "media/d.jpg?v=2",
                "//cdn.example.com/e.jpg",
                "javascript:alert(1)",
                "data:image/png;base64,AAAA",
                "JavaScript:alert(1)//x",
                "vbscript:x",
            ]
            .iter()
            .map(|u| MediaRef {
                url: u.to_string(),
                alt: Default::default(),
            })
            .collect(),
        );
        let CoreError::Invalid { fields, .. } = i.into_new_product(Utc::now()).unwrap_err() else {
            panic!()
        };
        let names: Vec<_> = fields.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(
            names,
            [
                "media[5].url",
                "media[6].url",
                "media[7].url",
                "media[8].url"
            ]
        );
    }

    #[test]
    fn a_variant_listed_twice_is_a_field_error() {
        let p = input().into_new_product(Utc::now()).unwrap();
        let id = p.variants[0].id;
        let patch: ProductInput = serde_json::from_value(serde_json::json!({
            "variants": [{"id": id, "sku": "RG-30"}, {"id": id, "sku": "RG-31"}]
        }))
        .unwrap();
        let CoreError::Invalid { fields, .. } = patch.apply_to(&p, Utc::now()).unwrap_err() else {
            panic!()
        };
        assert_eq!(fields[0].field, "variants[1].id");
        assert_eq!(fields[0].code, "duplicate");
    }
}
