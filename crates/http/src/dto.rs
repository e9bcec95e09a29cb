//! Wire types of the REST API and their conversions from the domain.
//!
//! They are separate from the domain types so the API can stay stable while the domain
//! changes, and so the OpenAPI document is generated from exactly what is sent.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use jangteo_core::cart::{Address, PricedCart, Totals};
use jangteo_core::catalog::{Category, Product, ProductStatus};
use jangteo_core::compliance::product::Ingredient;
use jangteo_core::compliance::{ComplianceReport, CountryData, ExchangeRates, Violation};
use jangteo_core::customer::Customer;
use jangteo_core::locale::LocaleChain;
use jangteo_core::money::{Currency, Money};
use jangteo_core::order::Order;
use jangteo_core::payment::NextAction;
use jangteo_core::service::compliance::{
    CountryRulesView, ExchangeRatesView, PageStatement, ProductCountryView,
};
use jangteo_core::Engine;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Money: `{"amount": "12900", "currency": "KRW"}`; the amount is a decimal string.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MoneyDto {
    /// Decimal amount as a string.
    #[schema(example = "39000")]
    pub amount: String,
    /// ISO 4217 code.
    #[schema(example = "KRW")]
    pub currency: String,
}

impl From<Money> for MoneyDto {
    fn from(m: Money) -> Self {
        MoneyDto {
            amount: m.amount.to_string(),
            currency: m.currency.code().to_string(),
        }
    }
}

/// An image.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MediaDto {
    /// URL.
    pub url: String,
    /// Alternative text in the response locale.
    pub alt: String,
}

/// A variant in the store.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StoreVariant {
    /// Id.
    pub id: String,
    /// SKU.
    pub sku: String,
    /// Option values.
    pub options: BTreeMap<String, String>,
    /// Price in the requested currency (`?currency=`), or null when not requested or
    /// not set.
    pub price: Option<MoneyDto>,
    /// Every price.
    pub prices: Vec<MoneyDto>,
    /// Units that can be bought now.
    pub available_quantity: i64,
}

/// A product in the store, in one locale.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StoreProduct {
    /// Id.
    pub id: String,
    /// Handle.
    pub handle: String,
    /// Title in `locale`.
    pub title: String,
    /// Description in `locale`.
    pub description: String,
    /// Locale the texts were resolved to.
    pub locale: String,
    /// Category handles.
    pub categories: Vec<String>,
    /// Images.
    pub media: Vec<MediaDto>,
    /// Variants.
    pub variants: Vec<StoreVariant>,
    /// Active ingredients per daily dose (product pages only: listings leave the
    /// compliance data out to stay small).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<IngredientDoc>>)]
    pub ingredients: Option<Vec<Ingredient>>,
    /// Structure/function claims per locale, as entered (not resolved: a country's
    /// label rules depend on how many claims a locale makes). Product pages only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claims: Option<BTreeMap<String, Vec<String>>>,
    /// Per destination country (ISO code): registration, halal status, HS code and the
    /// product's own label statements. Public label data; product pages only.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<BTreeMap<String, CountryDataDoc>>)]
    pub countries: Option<BTreeMap<String, CountryData>>,
    /// With `?country=`: whether the product may be sold there today, why not, and the
    /// statements its page must show there, in the response locale.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<ProductCountryDto>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Changed.
    pub updated_at: DateTime<Utc>,
}

impl StoreProduct {
    /// Renders a product for a locale chain and optional currency: the full product
    /// page, or (`summary`) a listing item without compliance data.
    pub fn render(
        p: &Product,
        chain: &LocaleChain,
        currency: Option<Currency>,
        summary: bool,
    ) -> Self {
        let (locale, title) = p
            .title
            .resolve(chain)
            .map(|(l, t)| (l.to_string(), t.to_string()))
            .unwrap_or_default();
        StoreProduct {
            id: p.id.to_string(),
            handle: p.handle.clone(),
            title,
            description: p.description.text(chain),
            locale,
            categories: p.categories.clone(),
            media: p
                .media
                .iter()
                .map(|m| MediaDto {
                    url: m.url.clone(),
                    alt: m.alt.text(chain),
                })
                .collect(),
            variants: p
                .variants
                .iter()
                .map(|v| StoreVariant {
                    id: v.id.to_string(),
                    sku: v.sku.clone(),
                    options: v.options.clone(),
                    price: currency.and_then(|c| v.price_in(c)).map(Into::into),
                    prices: v.prices.iter().copied().map(Into::into).collect(),
                    available_quantity: v.stock,
                })
                .collect(),
            ingredients: (!summary).then(|| p.facts.ingredients.clone()),
            claims: (!summary).then(|| p.facts.claims.clone()),
            countries: (!summary).then(|| p.facts.countries.clone()),
            country: None,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

/// One broken rule of a destination country (`code` is stable: clients switch on it).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ViolationDto {
    /// `country_not_served`, `not_registered`, `halal_required`,
    /// `ingredient_prohibited`, `dose_limit_exceeded`, `quantity_limit_exceeded`,
    /// `value_limit_exceeded`, `annual_limit_exceeded`, `buyer_id_required`,
    /// `buyer_id_invalid`, `exchange_rate_missing` (carts).
    #[schema(example = "quantity_limit_exceeded")]
    pub code: String,
    /// Explanation in the cart's (or page's) locale.
    pub message: String,
    /// The cart line concerned, if one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line_id: Option<String>,
    /// The product concerned, if one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product_id: Option<String>,
    /// The limit: a number, an amount (`{"amount": "150", "currency": "USD"}`) or a
    /// dose.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<serde_json::Value>,
    /// The value found, in the same form as `limit`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actual: Option<serde_json::Value>,
}

impl From<&Violation> for ViolationDto {
    fn from(v: &Violation) -> Self {
        ViolationDto {
            code: v.code.as_str().into(),
            message: v.message.clone(),
            line_id: v.line_id.map(|l| l.to_string()),
            product_id: v.product_id.map(|p| p.to_string()),
            limit: v.limit.clone(),
            actual: v.actual.clone(),
        }
    }
}

/// The destination's rules applied to a cart.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ComplianceDto {
    /// No violations: the cart may be completed as far as the rules go.
    pub ok: bool,
    /// What must change before checkout.
    pub violations: Vec<ViolationDto>,
}

impl From<&ComplianceReport> for ComplianceDto {
    fn from(r: &ComplianceReport) -> Self {
        ComplianceDto {
            ok: r.ok,
            violations: r.violations.iter().map(Into::into).collect(),
        }
    }
}

/// A statement a product page must show in a country.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StatementDto {
    /// Stable key (`dshea_disclaimer`, `hff_mark`, `product_statement_0`).
    pub key: String,
    /// Text in the response locale.
    pub text: String,
    /// Show it emphasised (bold).
    pub emphasis: bool,
}

impl From<&PageStatement> for StatementDto {
    fn from(s: &PageStatement) -> Self {
        StatementDto {
            key: s.key.clone(),
            text: s.text.clone(),
            emphasis: s.emphasis,
        }
    }
}

/// A product as seen from one destination country today.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProductCountryDto {
    /// Country (ISO 3166-1 alpha-2).
    pub country: String,
    /// The product may be sold there today.
    pub sellable: bool,
    /// Why not.
    pub violations: Vec<ViolationDto>,
    /// Statements the page must show there, in order.
    pub statements: Vec<StatementDto>,
}

impl From<&ProductCountryView> for ProductCountryDto {
    fn from(v: &ProductCountryView) -> Self {
        ProductCountryDto {
            country: v.country.clone(),
            sellable: v.sellable,
            violations: v.violations.iter().map(Into::into).collect(),
            statements: v.statements.iter().map(Into::into).collect(),
        }
    }
}

/// An active ingredient per daily dose (documentation of the wire form).
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct IngredientDoc {
    /// Name.
    #[schema(example = "vitamin D3")]
    name: String,
    /// Amount per daily dose, a decimal string.
    #[schema(example = "25")]
    amount: String,
    /// Unit: `mg`, `mcg`, `IU`, `g`.
    #[schema(example = "mcg")]
    unit: String,
}

/// A registration with a destination's regulator (documentation of the wire form).
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct RegistrationDoc {
    /// Number as issued.
    #[schema(example = "POM SI123456789")]
    number: String,
    /// The local company holding it.
    holder: String,
    /// Last day it is valid.
    expires_on: chrono::NaiveDate,
}

/// A halal certificate (documentation of the wire form).
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct HalalCertificateDoc {
    /// Certificate number.
    certificate_number: String,
    /// Issuing body (`BPJPH`, `JAKIM`).
    issuer: String,
    /// Last day it is valid.
    expires_on: chrono::NaiveDate,
}

/// A product's data for one destination country (documentation of the wire form).
/// Country plugins may define further fields (Korea's `ad_review_id`).
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct CountryDataDoc {
    /// Registration with the destination's regulator.
    registration: Option<RegistrationDoc>,
    /// Absent: unknown. `null`: declared not halal. An object: the certificate.
    halal: Option<HalalCertificateDoc>,
    /// Customs tariff code.
    hs_code: Option<String>,
    /// Statements the product must show there, per locale.
    label_statements: Option<BTreeMap<String, Vec<String>>>,
}

/// A page of products.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProductList<T: ToSchema> {
    /// Products.
    pub products: Vec<T>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// Query of product listings.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProductListQuery {
    /// Free text; every word must match (substring match, any locale, Korean included).
    pub q: Option<String>,
    /// Category handle.
    pub category: Option<String>,
    /// Minimum price (needs `currency`).
    pub min_price: Option<String>,
    /// Maximum price (needs `currency`).
    pub max_price: Option<String>,
    /// Currency for prices, filters and sorts; only products priced in it are listed.
    pub currency: Option<String>,
    /// `newest` (default), `price_asc`, `price_desc`, `handle`.
    pub sort: Option<String>,
    /// Page size, 1-100 (default 20).
    pub limit: Option<u32>,
    /// Cursor from the previous page.
    pub cursor: Option<String>,
    /// Locale (overrides `Accept-Language`).
    pub locale: Option<String>,
    /// Only products that may be sold into this country today (ISO 3166-1 alpha-2).
    pub country: Option<String>,
}

/// The admin listing's filter on top of [`ProductListQuery`] (the store lists published
/// products only).
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProductStatusQuery {
    /// `draft` or `published`; both when absent.
    pub status: Option<String>,
}

/// Query of a rules history.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Versions to return, newest first: 1-100, default 10 (rules documents can be
    /// large).
    pub limit: Option<u32>,
}

/// Query of a product detail.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProductDetailQuery {
    /// Currency of `price`.
    pub currency: Option<String>,
    /// Locale (overrides `Accept-Language`).
    pub locale: Option<String>,
    /// Adds `country`: whether the product may be sold into this country (ISO 3166-1
    /// alpha-2) today, and the statements its page must show there.
    pub country: Option<String>,
}

/// A category in one locale.
#[derive(Debug, Serialize, ToSchema)]
pub struct StoreCategory {
    /// Handle.
    pub handle: String,
    /// Name in the response locale.
    pub name: String,
}

impl StoreCategory {
    /// Renders a category.
    pub fn render(c: &Category, chain: &LocaleChain) -> Self {
        StoreCategory {
            handle: c.handle.clone(),
            name: c.name.text(chain),
        }
    }
}

/// Categories.
#[derive(Debug, Serialize, ToSchema)]
pub struct CategoryList {
    /// Categories.
    pub categories: Vec<StoreCategory>,
}

/// A variant as operators see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminVariant {
    /// Id.
    pub id: String,
    /// SKU.
    pub sku: String,
    /// Options.
    pub options: BTreeMap<String, String>,
    /// Prices.
    pub prices: Vec<MoneyDto>,
    /// On-hand stock.
    pub stock: i64,
}

/// A product as operators see it: every locale, status and per-country data.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminProduct {
    /// Id.
    pub id: String,
    /// Handle.
    pub handle: String,
    /// `draft` or `published`.
    pub status: String,
    /// Title per locale.
    pub title: BTreeMap<String, String>,
    /// Description per locale.
    pub description: BTreeMap<String, String>,
    /// Categories.
    pub categories: Vec<String>,
    /// Media.
    #[schema(value_type = Vec<Object>)]
    pub media: serde_json::Value,
    /// Per-country data.
    #[schema(value_type = BTreeMap<String, CountryDataDoc>)]
    pub countries: BTreeMap<String, CountryData>,
    /// Active ingredients per daily dose.
    #[schema(value_type = Vec<IngredientDoc>)]
    pub ingredients: Vec<Ingredient>,
    /// Claims per locale.
    pub claims: BTreeMap<String, Vec<String>>,
    /// Variants.
    pub variants: Vec<AdminVariant>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Changed.
    pub updated_at: DateTime<Utc>,
}

impl From<&Product> for AdminProduct {
    fn from(p: &Product) -> Self {
        AdminProduct {
            id: p.id.to_string(),
            handle: p.handle.clone(),
            status: match p.status {
                ProductStatus::Draft => "draft".into(),
                ProductStatus::Published => "published".into(),
            },
            title: p.title.0.clone(),
            description: p.description.0.clone(),
            categories: p.categories.clone(),
            media: serde_json::to_value(&p.media).unwrap_or_default(),
            countries: p.facts.countries.clone(),
            ingredients: p.facts.ingredients.clone(),
            claims: p.facts.claims.clone(),
            variants: p
                .variants
                .iter()
                .map(|v| AdminVariant {
                    id: v.id.to_string(),
                    sku: v.sku.clone(),
                    options: v.options.clone(),
                    prices: v.prices.iter().copied().map(Into::into).collect(),
                    stock: v.stock,
                })
                .collect(),
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

/// Body of `POST /store/carts`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCartBody {
    /// Destination country, ISO 3166-1 alpha-2.
    #[schema(example = "KR")]
    pub country: String,
    /// Currency.
    #[schema(example = "KRW")]
    pub currency: String,
    /// Locale.
    #[schema(example = "ko")]
    pub locale: Option<String>,
}

/// Body of `POST /store/carts/{id}/line-items`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddLineBody {
    /// Variant id.
    pub variant_id: String,
    /// Quantity, 1-999.
    pub quantity: i64,
}

/// Body of `PATCH /store/carts/{id}/line-items/{line_id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateLineBody {
    /// New quantity, 1-999.
    pub quantity: i64,
}

/// A postal address.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddressDto {
    /// Recipient.
    pub name: String,
    /// Street.
    pub line1: String,
    /// Second line.
    #[serde(default)]
    pub line2: Option<String>,
    /// City.
    pub city: String,
    /// Region.
    #[serde(default)]
    pub region: Option<String>,
    /// Postal code.
    pub postal_code: String,
    /// ISO 3166-1 alpha-2.
    pub country: String,
    /// Phone.
    #[serde(default)]
    pub phone: Option<String>,
}

impl From<AddressDto> for Address {
    fn from(a: AddressDto) -> Self {
        Address {
            name: a.name,
            line1: a.line1,
            line2: a.line2,
            city: a.city,
            region: a.region,
            postal_code: a.postal_code,
            country: a.country,
            phone: a.phone,
        }
    }
}

impl From<&Address> for AddressDto {
    fn from(a: &Address) -> Self {
        AddressDto {
            name: a.name.clone(),
            line1: a.line1.clone(),
            line2: a.line2.clone(),
            city: a.city.clone(),
            region: a.region.clone(),
            postal_code: a.postal_code.clone(),
            country: a.country.clone(),
            phone: a.phone.clone(),
        }
    }
}

/// Body of `PATCH /store/carts/{id}`. `Debug` is written by hand: identifiers never
/// reach a log in clear.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateCartBody {
    /// Contact e-mail.
    pub email: Option<String>,
    /// Shipping address.
    pub shipping_address: Option<AddressDto>,
    /// Locale.
    pub locale: Option<String>,
    /// Identifiers customs of the destination need, by kind: a value sets one, `null`
    /// removes it (`{"kr_pccc": "P123456789012"}`). They are validated, stored
    /// encrypted and only ever shown masked.
    #[schema(example = json!({"kr_pccc": "P123456789012"}))]
    #[serde(default, deserialize_with = "identifier_values")]
    pub buyer_identifiers: Option<BTreeMap<String, Option<String>>>,
}

/// Identifier values are strings or `null`. Anything else is refused without the value:
/// serde's own message would quote it (`invalid type: integer 3174015505900001`), and
/// identifiers never appear in answers or logs.
fn identifier_values<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<BTreeMap<String, Option<String>>>, D::Error> {
    let raw: Option<BTreeMap<String, serde_json::Value>> = Option::deserialize(d)?;
    raw.map(|m| {
        m.into_iter()
            .map(|(kind, v)| match v {
                serde_json::Value::Null => Ok((kind, None)),
                serde_json::Value::String(s) => Ok((kind, Some(s))),
                _ => Err(serde::de::Error::custom(format!(
                    "buyer_identifiers.{kind}: the value must be a string or null"
                ))),
            })
            .collect()
    })
    .transpose()
}

impl std::fmt::Debug for UpdateCartBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpdateCartBody")
            .field("email", &self.email)
            .field("shipping_address", &self.shipping_address)
            .field("locale", &self.locale)
            .field(
                "buyer_identifiers",
                &jangteo_core::compliance::identifiers::kinds_only(&self.buyer_identifiers),
            )
            .finish()
    }
}

/// Payment choice in a completion. (No `deny_unknown_fields`: provider fields are
/// collected by `flatten`, which serde cannot combine with it.)
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct PaymentBody {
    /// Provider name (default: the store's default provider).
    pub provider: Option<String>,
    /// Provider-specific string fields; the `manual` provider reads `card_number`.
    #[serde(flatten)]
    pub data: BTreeMap<String, String>,
}

/// Body of `POST /store/carts/{id}/complete` (optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteBody {
    /// Payment choice.
    #[serde(default)]
    pub payment: Option<PaymentBody>,
}

/// Totals.
#[derive(Debug, Serialize, ToSchema)]
pub struct TotalsDto {
    /// Sum of lines.
    pub subtotal: MoneyDto,
    /// Shipping.
    pub shipping: MoneyDto,
    /// Tax: included in `subtotal` when `tax_included`, else added to it.
    pub tax: MoneyDto,
    /// Shelf prices include the tax; `total` does not add it again.
    pub tax_included: bool,
    /// Duties and import taxes charged at checkout; absent when none are charged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duties: Option<MoneyDto>,
    /// To pay.
    pub total: MoneyDto,
}

impl From<Totals> for TotalsDto {
    fn from(t: Totals) -> Self {
        TotalsDto {
            subtotal: t.subtotal.into(),
            shipping: t.shipping.into(),
            tax: t.tax.into(),
            tax_included: t.tax_included,
            duties: t.duties.map(Into::into),
            total: t.total.into(),
        }
    }
}

/// The tax applied to a cart.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaxDto {
    /// Name shown to buyers (`VAT`, `PPN`, `GST`).
    #[schema(example = "VAT")]
    pub name: String,
    /// Rate as a decimal fraction string, or null when the policy names no rate.
    #[schema(example = "0.10")]
    pub rate: Option<String>,
}

/// Estimated duties and import taxes of a cross-border cart.
#[derive(Debug, Serialize, ToSchema)]
pub struct LandedCostDto {
    /// Always true: customs assess the final amount.
    pub estimate: bool,
    /// Customs duty.
    pub duty: MoneyDto,
    /// Import VAT / GST / sales tax.
    pub import_tax: MoneyDto,
    /// `duty + import_tax`.
    pub total: MoneyDto,
    /// Charged in the order total (`totals.duties`); otherwise due from the buyer on
    /// delivery.
    pub charged: bool,
    /// What the band is, in the cart's locale.
    pub label: String,
    /// A standard note that this is an estimate, in the cart's locale.
    pub note: String,
}

/// A cart line.
#[derive(Debug, Serialize, ToSchema)]
pub struct CartLineDto {
    /// Line id.
    pub id: String,
    /// Variant.
    pub variant_id: String,
    /// Product.
    pub product_id: String,
    /// Product handle.
    pub product_handle: String,
    /// SKU.
    pub sku: String,
    /// Title in the cart locale.
    pub title: String,
    /// Quantity.
    pub quantity: i64,
    /// Unit price.
    pub unit_price: MoneyDto,
    /// Line total.
    pub line_total: MoneyDto,
    /// Tax of the line (inside `line_total` when `totals.tax_included`).
    pub tax: MoneyDto,
    /// The unit price was converted from the store's base currency with the
    /// operator's exchange rates (the variant has no price in the cart currency).
    pub price_converted: bool,
    /// Stock now.
    pub available_quantity: i64,
}

/// A cart.
#[derive(Debug, Serialize, ToSchema)]
pub struct CartDto {
    /// Id.
    pub id: String,
    /// `open` or `completed`.
    pub status: String,
    /// Destination.
    pub country: String,
    /// Currency.
    pub currency: String,
    /// Locale.
    pub locale: String,
    /// E-mail.
    pub email: Option<String>,
    /// Address.
    pub shipping_address: Option<AddressDto>,
    /// Lines that can be bought.
    pub line_items: Vec<CartLineDto>,
    /// Lines whose variant is gone or has no price in the currency; remove them.
    pub unavailable_line_ids: Vec<String>,
    /// Totals.
    pub totals: TotalsDto,
    /// The tax applied, or null.
    pub tax: Option<TaxDto>,
    /// Estimated duties and import taxes (cross-border carts into a country with duty
    /// bands), or null.
    pub landed_cost: Option<LandedCostDto>,
    /// The destination's rules applied to the cart today.
    pub compliance: ComplianceDto,
    /// Identifiers given for customs, by kind, masked (`**********012`).
    pub buyer_identifiers: BTreeMap<String, String>,
    /// The order it became.
    pub order_id: Option<String>,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
}

impl CartDto {
    /// Renders a priced cart: texts in the cart's locale, identifiers masked.
    pub fn render(p: PricedCart, engine: &Engine) -> Self {
        let chain = engine.cart_chain(&p.cart);
        let locales: Vec<&str> = chain.0.iter().map(String::as_str).collect();
        let c = &p.cart;
        let unavailable = c
            .lines
            .iter()
            .filter(|l| !p.lines.iter().any(|pl| pl.id == l.id))
            .map(|l| l.id.to_string())
            .collect();
        CartDto {
            id: c.id.to_string(),
            status: match c.status {
                jangteo_core::cart::CartStatus::Open => "open".into(),
                jangteo_core::cart::CartStatus::Completed => "completed".into(),
            },
            country: c.country.clone(),
            currency: c.currency.code().into(),
            locale: c.locale.clone(),
            email: c.email.clone(),
            shipping_address: c.shipping_address.as_ref().map(Into::into),
            line_items: p
                .lines
                .iter()
                .map(|l| CartLineDto {
                    id: l.id.to_string(),
                    variant_id: l.variant_id.to_string(),
                    product_id: l.product_id.to_string(),
                    product_handle: l.product_handle.clone(),
                    sku: l.sku.clone(),
                    title: l.title.clone(),
                    quantity: l.quantity,
                    unit_price: l.unit_price.into(),
                    line_total: l.line_total.into(),
                    tax: l.tax.into(),
                    price_converted: l.price_converted,
                    available_quantity: l.available_quantity,
                })
                .collect(),
            unavailable_line_ids: unavailable,
            totals: p.totals.into(),
            tax: p.tax_name.clone().map(|name| TaxDto {
                name,
                rate: p.tax_rate.map(|r| r.to_string()),
            }),
            landed_cost: p.landed_cost.as_ref().map(|l| LandedCostDto {
                estimate: l.estimate,
                duty: l.duty.into(),
                import_tax: l.import_tax.into(),
                total: l.total.into(),
                charged: l.charged,
                label: l.label.text(&chain),
                note: engine.compliance().message(&locales, "landed-cost-note"),
            }),
            compliance: (&p.compliance).into(),
            buyer_identifiers: engine.masked_identifiers(c),
            order_id: c.order_id.map(|o| o.to_string()),
            expires_at: c.expires_at,
        }
    }
}

/// An order line.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderLineDto {
    /// Variant.
    pub variant_id: String,
    /// Product.
    pub product_id: String,
    /// SKU.
    pub sku: String,
    /// Title at checkout.
    pub title: String,
    /// Quantity.
    pub quantity: i64,
    /// Unit price.
    pub unit_price: MoneyDto,
    /// Line total.
    pub line_total: MoneyDto,
    /// Tax of the line (inside `line_total` when `totals.tax_included`); absent on
    /// orders placed without a tax policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tax: Option<MoneyDto>,
}

/// Payment state.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentDto {
    /// Provider.
    pub provider: String,
    /// `pending`, `captured`, `failed`, `refunding` (a cancellation's refund is with
    /// the provider; the order cannot be fulfilled), `refunded`.
    pub status: String,
    /// Provider reference.
    pub reference: Option<String>,
    /// Amount.
    pub amount: MoneyDto,
    /// A pending payment must complete before this moment.
    pub expires_at: Option<DateTime<Utc>>,
    /// References of payments the provider confirmed after the order was canceled
    /// (paid after expiry): each is money to refund by hand. Usually empty.
    pub late_references: Vec<String>,
}

/// Shipping details.
#[derive(Debug, Serialize, ToSchema)]
pub struct FulfillmentDto {
    /// Carrier.
    pub carrier: String,
    /// Tracking number.
    pub tracking_number: String,
    /// When.
    pub fulfilled_at: DateTime<Utc>,
}

/// One status change.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatusChangeDto {
    /// From.
    pub from: Option<String>,
    /// To.
    pub to: String,
    /// When.
    pub at: DateTime<Utc>,
    /// `customer`, `staff`, `provider` or `system`.
    pub actor: String,
    /// Why.
    pub reason: Option<String>,
}

/// An order.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderDto {
    /// Id.
    pub id: String,
    /// Order number.
    pub number: String,
    /// `pending`, `paid`, `fulfilled`, `delivered`, `canceled`, `refunded`.
    pub status: String,
    /// E-mail.
    pub email: String,
    /// Buyer account, if any.
    pub customer_id: Option<String>,
    /// Destination.
    pub country: String,
    /// Currency.
    pub currency: String,
    /// Locale.
    pub locale: String,
    /// Lines.
    pub line_items: Vec<OrderLineDto>,
    /// Totals.
    pub totals: TotalsDto,
    /// Ship to.
    pub shipping_address: AddressDto,
    /// Payment.
    pub payment: PaymentDto,
    /// Shipping.
    pub fulfillment: Option<FulfillmentDto>,
    /// History.
    pub history: Vec<StatusChangeDto>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Changed.
    pub updated_at: DateTime<Utc>,
    /// Guest orders, first answer only: the token to read or cancel this order
    /// (`X-Order-Token` header). Store it; it is not shown again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_token: Option<String>,
    /// Pending payments: what the buyer must do next.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub next_action: Option<NextAction>,
}

impl From<&Order> for OrderDto {
    fn from(o: &Order) -> Self {
        OrderDto {
            id: o.id.to_string(),
            number: o.number.clone(),
            status: o.status.as_str().into(),
            email: o.email.clone(),
            customer_id: o.customer_id.map(|c| c.to_string()),
            country: o.country.clone(),
            currency: o.currency.code().into(),
            locale: o.locale.clone(),
            line_items: o
                .lines
                .iter()
                .map(|l| OrderLineDto {
                    variant_id: l.variant_id.to_string(),
                    product_id: l.product_id.to_string(),
                    sku: l.sku.clone(),
                    title: l.title.clone(),
                    quantity: l.quantity,
                    unit_price: l.unit_price.into(),
                    line_total: l.line_total.into(),
                    tax: l.tax.map(Into::into),
                })
                .collect(),
            totals: o.totals.into(),
            shipping_address: (&o.shipping_address).into(),
            payment: PaymentDto {
                provider: o.payment.provider.clone(),
                status: serde_json::to_value(o.payment.status)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default(),
                reference: o.payment.reference.clone(),
                amount: o.payment.amount.into(),
                expires_at: o.payment_expires_at,
                late_references: o.payment.late_references.clone(),
            },
            fulfillment: o.fulfillment.as_ref().map(|f| FulfillmentDto {
                carrier: f.carrier.clone(),
                tracking_number: f.tracking_number.clone(),
                fulfilled_at: f.fulfilled_at,
            }),
            history: o
                .history
                .iter()
                .map(|h| StatusChangeDto {
                    from: h.from.map(|s| s.as_str().into()),
                    to: h.to.as_str().into(),
                    at: h.at,
                    actor: match &h.actor {
                        jangteo_core::order::Actor::System => "system".into(),
                        jangteo_core::order::Actor::Customer { .. } => "customer".into(),
                        jangteo_core::order::Actor::Staff { email, .. } => format!("staff:{email}"),
                        jangteo_core::order::Actor::Provider { name } => format!("provider:{name}"),
                    },
                    reason: h.reason.clone(),
                })
                .collect(),
            created_at: o.created_at,
            updated_at: o.updated_at,
            order_token: None,
            next_action: None,
        }
    }
}

/// A page of orders.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderList {
    /// Orders, newest first.
    pub orders: Vec<OrderDto>,
    /// Pass as `cursor` for the next page.
    pub next_cursor: Option<String>,
}

/// Query of the admin order listing.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrderListQuery {
    /// Only orders in this state (`pending`, `paid`, ...).
    pub status: Option<String>,
    /// Page size, 1-100 (default 20).
    pub limit: Option<u32>,
    /// Cursor from the previous page.
    pub cursor: Option<String>,
}

/// Query of a buyer's order listing (every state, newest first).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BuyerOrderListQuery {
    /// Page size, 1-100 (default 20).
    pub limit: Option<u32>,
    /// Cursor from the previous page.
    pub cursor: Option<String>,
}

/// Body of a cancellation.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelBody {
    /// Why.
    pub reason: Option<String>,
}

/// Body of `POST /admin/orders/{id}/confirm-payment` (optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmPaymentBody {
    /// Bank transfer reference or receipt number.
    pub reference: Option<String>,
}

/// Body of `POST /admin/orders/{id}/fulfill`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FulfillBody {
    /// Tracking number.
    pub tracking_number: String,
    /// Carrier.
    pub carrier: String,
}

/// Credentials.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CredentialsBody {
    /// E-mail.
    pub email: String,
    /// Password, 8-128 characters.
    pub password: String,
}

/// Body of `POST /store/auth/refresh`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshBody {
    /// Refresh token from login or the previous refresh.
    pub refresh_token: String,
}

/// Body of `POST /store/auth/password` and `POST /admin/auth/password`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChangeBody {
    /// The password in use now.
    pub current_password: String,
    /// The new one, 8-128 characters.
    pub new_password: String,
}

/// Tokens.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    /// JWT access token (Bearer).
    pub access_token: String,
    /// Single-use refresh token.
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
}

/// A user.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserDto {
    /// Id.
    pub id: String,
    /// E-mail.
    pub email: String,
    /// `customer`, `operator` or `admin`.
    pub role: String,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// When an admin disabled the account (it cannot sign in); `null` while enabled.
    pub disabled_at: Option<DateTime<Utc>>,
}

impl From<&Customer> for UserDto {
    fn from(c: &Customer) -> Self {
        UserDto {
            id: c.id.to_string(),
            email: c.email.clone(),
            role: c.role.as_str().into(),
            created_at: c.created_at,
            disabled_at: c.disabled_at,
        }
    }
}

/// Users.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserList {
    /// Users.
    pub users: Vec<UserDto>,
}

/// Body of `PATCH /admin/users/{id}`: only the fields sent change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserBody {
    /// `operator` or `admin`.
    pub role: Option<String>,
    /// `true` disables the account: it cannot sign in and its tokens stop working at
    /// once; `false` enables it again.
    pub disabled: Option<bool>,
    /// A new password (8-128 characters); the account is signed out everywhere.
    pub password: Option<String>,
}

/// Body of `POST /admin/users`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserBody {
    /// E-mail.
    pub email: String,
    /// Password.
    pub password: String,
    /// `operator` or `admin`.
    pub role: String,
}

/// An audit entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditDto {
    /// Sequence.
    pub id: i64,
    /// When.
    pub at: DateTime<Utc>,
    /// Staff e-mail.
    pub actor_email: String,
    /// Staff id.
    pub actor_id: Option<String>,
    /// Action.
    pub action: String,
    /// Target kind.
    pub target_type: String,
    /// Target id.
    pub target_id: String,
    /// Details.
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

/// The audit log.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditList {
    /// Entries, newest first.
    pub entries: Vec<AuditDto>,
    /// Pass as `before` for older entries.
    pub next_before: Option<i64>,
}

/// Query of the audit log.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Page size, 1-500 (default 50).
    pub limit: Option<u32>,
    /// Entries older than this id.
    pub before: Option<i64>,
}

/// Body of `POST /admin/categories`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CategoryBody {
    /// Handle.
    pub handle: String,
    /// Name per locale.
    pub name: BTreeMap<String, String>,
}

/// A category with every locale.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminCategory {
    /// Handle.
    pub handle: String,
    /// Name per locale.
    pub name: BTreeMap<String, String>,
}

/// Liveness / readiness.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthDto {
    /// `ok` or `unavailable`.
    pub status: String,
}

/// What a variant body may set besides its identity (documentation of
/// `jangteo_core::catalog::VariantInput`, which is what the handlers parse).
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct VariantFields {
    /// Option values, e.g. `{"size": "30 sticks"}`.
    options: Option<BTreeMap<String, String>>,
    /// One positive price per currency; replaces the list when given.
    prices: Option<Vec<MoneyDto>>,
    /// On-hand stock, 0-10,000,000; sets the figure when given.
    #[schema(example = 100)]
    stock: Option<i64>,
}

/// A variant of a new product.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct NewVariantBody {
    /// SKU: 1-64 of letters, digits, `-`, `_`, `.`.
    #[schema(example = "RG-30")]
    sku: String,
    #[serde(flatten)]
    fields: VariantFields,
}

/// A variant in a product patch, or the body of a variant patch: every field optional.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct VariantBody {
    /// Existing variant to change; absent to match by SKU or add a variant.
    id: Option<String>,
    /// SKU: 1-64 of letters, digits, `-`, `_`, `.`; required to add a variant.
    #[schema(example = "RG-30")]
    sku: Option<String>,
    #[serde(flatten)]
    fields: VariantFields,
}

/// The optional fields of a product body, on create and patch alike.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct ProductFields {
    /// `draft` (default) or `published`.
    #[schema(example = "published")]
    status: Option<String>,
    /// Description per locale.
    description: Option<BTreeMap<String, String>>,
    /// Category handles (unknown ones are created).
    #[schema(example = json!(["ginseng"]))]
    categories: Option<Vec<String>>,
    /// Media: `[{"url": "...", "alt": {"ko": "..."}}]`.
    #[schema(value_type = Option<Vec<Object>>)]
    media: Option<serde_json::Value>,
    /// Per-country data keyed by ISO code: `{"ID": {"registration": {...}, "halal":
    /// null}}`; each is checked by that country's plugin.
    #[schema(value_type = Option<BTreeMap<String, CountryDataDoc>>)]
    countries: Option<serde_json::Value>,
    /// Active ingredients per daily dose.
    ingredients: Option<Vec<IngredientDoc>>,
    /// Structure/function claims per locale.
    #[schema(example = json!({"en": ["Supports immune function"]}))]
    claims: Option<BTreeMap<String, Vec<String>>>,
}

/// A product create body (documentation of `jangteo_core::catalog::ProductInput`).
/// Unknown fields are refused.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct NewProductBody {
    /// 1-100 of lowercase letters, digits and dashes.
    #[schema(example = "red-ginseng-stick")]
    handle: String,
    /// Title per locale.
    #[schema(example = json!({"ko": "홍삼 스틱", "en": "Red ginseng stick"}))]
    title: BTreeMap<String, String>,
    /// At least one variant.
    #[schema(min_items = 1)]
    variants: Vec<NewVariantBody>,
    #[serde(flatten)]
    fields: ProductFields,
}

/// A product patch: any subset of a create body's fields. Unknown fields are refused.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct ProductPatchBody {
    /// New handle.
    handle: Option<String>,
    /// Title per locale; replaces the map when given.
    title: Option<BTreeMap<String, String>>,
    /// The new set of variants: listed ones are changed or added by id or SKU, unlisted
    /// ones removed.
    variants: Option<Vec<VariantBody>>,
    #[serde(flatten)]
    fields: ProductFields,
}

/// Query of `GET /admin/stats/sales`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SalesQuery {
    /// First UTC day, `YYYY-MM-DD`.
    pub from: chrono::NaiveDate,
    /// Last UTC day (inclusive); at most 366 days after `from`.
    pub to: chrono::NaiveDate,
}

/// Sales of one product on one day in one country and currency (net of refunds).
#[derive(Debug, Serialize, ToSchema)]
pub struct SalesRowDto {
    /// UTC day.
    pub day: chrono::NaiveDate,
    /// Destination country.
    pub country: String,
    /// Product id.
    pub product_id: String,
    /// Orders that contained the product.
    pub orders: i64,
    /// Units.
    pub units: i64,
    /// Revenue (line totals).
    pub revenue: MoneyDto,
}

/// Sales figures.
#[derive(Debug, Serialize, ToSchema)]
pub struct SalesReport {
    /// Rows by day, country, product.
    pub rows: Vec<SalesRowDto>,
}

/// A notification as recorded by the default notifier.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationDto {
    /// Sequence.
    pub id: i64,
    /// Event that caused it.
    pub event_id: String,
    /// Channel (`email`).
    pub channel: String,
    /// Recipient.
    pub recipient: String,
    /// Locale it was rendered in.
    pub locale: String,
    /// Event type it renders.
    pub template: String,
    /// Subject.
    pub subject: String,
    /// Body.
    pub body: String,
    /// When the event happened.
    pub created_at: DateTime<Utc>,
}

/// Page of notifications.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationList {
    /// Newest first.
    pub notifications: Vec<NotificationDto>,
    /// Pass as `before` for older ones.
    pub next_before: Option<i64>,
}

/// A country with a plugin.
#[derive(Debug, Serialize, ToSchema)]
pub struct CountryDto {
    /// ISO 3166-1 alpha-2 code.
    #[schema(example = "KR")]
    pub code: String,
    /// Version of the rules in force; 0 while the plugin's defaults are.
    pub version: i64,
}

/// Countries the store has rules for.
#[derive(Debug, Serialize, ToSchema)]
pub struct CountryList {
    /// By code.
    pub countries: Vec<CountryDto>,
}

/// A country's rule data (documentation of the wire form; every rule carries
/// `valid_from`, optional `valid_to` and a `source` note). Unknown fields are refused.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct CountryRulesDoc {
    /// ISO code; must equal the code in the path.
    #[schema(example = "ID")]
    country: String,
    /// Periods the store sells into the country: `[{"valid_from": "2025-01-01",
    /// "source": "ops"}]`.
    #[schema(value_type = Vec<Object>)]
    served: Vec<serde_json::Value>,
    /// Registration rules: `authority`, `pattern` (regular expression), `example`.
    #[schema(value_type = Option<Vec<Object>>)]
    registration: Option<Vec<serde_json::Value>>,
    /// Halal rules: `non_halal_allowed`.
    #[schema(value_type = Option<Vec<Object>>)]
    halal: Option<Vec<serde_json::Value>>,
    /// Banned ingredients: `ingredient`, `aliases`.
    #[schema(value_type = Option<Vec<Object>>)]
    prohibited_ingredients: Option<Vec<serde_json::Value>>,
    /// Daily-dose caps: `ingredient`, `aliases`, `max: [{amount, unit}]`.
    #[schema(value_type = Option<Vec<Object>>)]
    dose_limits: Option<Vec<serde_json::Value>>,
    /// Page statements: `key`, `when` (`always`, `one_claim`, `several_claims`,
    /// `halal`, `non_halal`), `emphasis`, `text` per locale.
    #[schema(value_type = Option<Vec<Object>>)]
    label_statements: Option<Vec<serde_json::Value>>,
    /// Import rules: `quantity_limits`, `value_limits`, `annual_limits`,
    /// `buyer_identifiers`, `duties`, `delivered_duty_paid`.
    #[schema(value_type = Option<Object>)]
    import: Option<serde_json::Value>,
    /// Sales tax / VAT: `name`, `rate`, `prices_include_tax`.
    #[schema(value_type = Option<Vec<Object>>)]
    tax: Option<Vec<serde_json::Value>>,
}

/// A version of a country's rules.
#[derive(Debug, Serialize, ToSchema)]
pub struct CountryRulesDto {
    /// Country.
    pub country: String,
    /// Version; 0 while the plugin's defaults are in force. Send it back as
    /// `If-Match: "<version>"` to replace exactly this version.
    pub version: i64,
    /// Staff who stored it (null for plugin defaults).
    pub updated_by: Option<String>,
    /// When it was stored.
    pub updated_at: Option<DateTime<Utc>>,
    /// The rules.
    #[schema(value_type = CountryRulesDoc)]
    pub rules: serde_json::Value,
}

impl From<CountryRulesView> for CountryRulesDto {
    fn from(v: CountryRulesView) -> Self {
        CountryRulesDto {
            country: v.country,
            version: v.version,
            updated_by: v.updated_by,
            updated_at: v.updated_at,
            rules: serde_json::to_value(&v.rules).unwrap_or_default(),
        }
    }
}

/// Stored versions of a country's rules.
#[derive(Debug, Serialize, ToSchema)]
pub struct CountryRulesHistory {
    /// Newest first; the plugin's defaults (version 0) are not listed.
    pub versions: Vec<CountryRulesDto>,
}

/// An exchange-rate table: units of each currency per one unit of `base`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExchangeRatesBody {
    /// The currency rates are quoted against.
    #[schema(example = "KRW")]
    pub base: String,
    /// Units of the currency for one unit of `base`, as decimal strings.
    #[schema(example = json!({"USD": "0.00072"}))]
    pub rates: BTreeMap<String, String>,
    /// Where the rates come from (bank, date).
    #[schema(example = "Bank of Korea, 2026-11-27")]
    pub source: String,
    /// First day (UTC) the table is in force: today or later; today when absent.
    #[schema(example = "2026-12-09")]
    pub valid_from: Option<NaiveDate>,
}

impl From<&ExchangeRates> for ExchangeRatesBody {
    fn from(r: &ExchangeRates) -> Self {
        ExchangeRatesBody {
            base: r.base.code().into(),
            rates: r
                .rates
                .iter()
                .map(|(c, v)| (c.code().to_string(), v.to_string()))
                .collect(),
            source: r.source.clone(),
            valid_from: r.valid_from,
        }
    }
}

/// The exchange-rate table in force.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExchangeRatesDto {
    /// Version; 0 when none was ever stored. Send it back as `If-Match: "<version>"`.
    pub version: i64,
    /// Staff who stored it.
    pub updated_by: Option<String>,
    /// When.
    pub updated_at: Option<DateTime<Utc>>,
    /// The table.
    pub rates: ExchangeRatesBody,
    /// The version in force today: `version`, or an earlier one while this table waits
    /// for its `valid_from` (0: none). Absent in the history.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_force_version: Option<i64>,
}

impl From<ExchangeRatesView> for ExchangeRatesDto {
    fn from(v: ExchangeRatesView) -> Self {
        ExchangeRatesDto {
            version: v.version,
            updated_by: v.updated_by,
            updated_at: v.updated_at,
            rates: (&v.rates).into(),
            in_force_version: Some(v.in_force_version),
        }
    }
}

/// Stored exchange-rate tables, newest version first.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExchangeRatesHistory {
    /// Versions.
    pub versions: Vec<ExchangeRatesDto>,
}
