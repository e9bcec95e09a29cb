//! Country compliance: may this product be sold into country X today, are these cart
//! lines allowed, has the buyer given what the destination needs, and what tax and
//! duties apply.
//!
//! A country is a plugin: mostly data ([`CountryRules`], every rule dated and sourced)
//! plus Rust code where data cannot say it (identifier checksums, special cases). The
//! engine calls it at three moments:
//!
//! 1. **listing**: [`CountryCompliance::listing`] decides whether a product is shown in
//!    `?country=CC` on a given day;
//! 2. **cart**: [`CountryCompliance::check_cart`] returns the violations shown with the
//!    cart;
//! 3. **checkout**: [`CountryCompliance::check_checkout`] adds what needs the buyer's
//!    history (yearly limits), evaluated in the order's transaction.
//!
//! Sales rules of the destination (registration, halal, ingredients, doses, label
//! statements) always apply. Import rules (quantities, values, identifiers, duties)
//! apply only when the store's origin country differs from the destination.
//!
//! The default methods implement the data-driven rules ([`evaluate`], [`tax`]); a plugin
//! overrides a method only to add what its data cannot express.

pub mod contract;
pub mod evaluate;
pub mod fx;
pub mod identifiers;
pub mod product;
pub mod registry;
pub mod rules;
pub mod tax;

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::Serialize;

use crate::error::{CoreResult, FieldError};
use crate::ids::{LineId, ProductId};
use crate::money::Money;

pub use fx::ExchangeRates;
pub use product::{CountryData, ProductFacts};
pub use registry::ComplianceRegistry;
pub use rules::CountryRules;
pub use tax::{LandedCost, TaxOutcome};

/// Stable violation codes (API contract: clients switch on them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ViolationCode {
    /// The store does not sell into this country (no plugin, or not on this day).
    CountryNotServed,
    /// The product lacks a valid registration for the destination.
    NotRegistered,
    /// The destination requires halal certification the product lacks.
    HalalRequired,
    /// The product contains an ingredient banned there.
    IngredientProhibited,
    /// A daily dose is above the destination's cap.
    DoseLimitExceeded,
    /// More units than a personal import allows.
    QuantityLimitExceeded,
    /// The order value is above a personal-import limit.
    ValueLimitExceeded,
    /// The buyer's yearly import total would pass the limit.
    AnnualLimitExceeded,
    /// The destination needs a buyer identifier the cart lacks.
    BuyerIdRequired,
    /// A buyer identifier is malformed or not accepted there.
    BuyerIdInvalid,
    /// The destination's duties are bounded in a currency the exchange-rate table has
    /// no rate for, so they cannot be computed; checkout answers 409
    /// `exchange_rate_missing` until an operator adds the rate.
    ExchangeRateMissing,
}

impl ViolationCode {
    /// The code as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ViolationCode::CountryNotServed => "country_not_served",
            ViolationCode::NotRegistered => "not_registered",
            ViolationCode::HalalRequired => "halal_required",
            ViolationCode::IngredientProhibited => "ingredient_prohibited",
            ViolationCode::DoseLimitExceeded => "dose_limit_exceeded",
            ViolationCode::QuantityLimitExceeded => "quantity_limit_exceeded",
            ViolationCode::ValueLimitExceeded => "value_limit_exceeded",
            ViolationCode::AnnualLimitExceeded => "annual_limit_exceeded",
            ViolationCode::BuyerIdRequired => "buyer_id_required",
            ViolationCode::BuyerIdInvalid => "buyer_id_invalid",
            ViolationCode::ExchangeRateMissing => "exchange_rate_missing",
        }
    }
}

/// One broken rule. `message` is filled in the buyer's locale by the registry; `args`
/// feed the message template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// Stable code.
    pub code: ViolationCode,
    /// Localized explanation.
    pub message: String,
    /// The cart line concerned, if one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line_id: Option<LineId>,
    /// The product concerned, if one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product_id: Option<ProductId>,
    /// The limit (a number, an amount, or a dose).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<serde_json::Value>,
    /// The value found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actual: Option<serde_json::Value>,
    /// Template arguments (`ingredient`, `kinds`, `authority`).
    #[serde(skip)]
    pub args: BTreeMap<&'static str, String>,
}

impl Violation {
    /// A violation with no line and no figures.
    pub fn new(code: ViolationCode) -> Self {
        Violation {
            code,
            message: String::new(),
            line_id: None,
            product_id: None,
            limit: None,
            actual: None,
            args: BTreeMap::new(),
        }
    }

    /// Attaches a line and product.
    pub fn on_line(mut self, line: Option<LineId>, product: ProductId) -> Self {
        self.line_id = line;
        self.product_id = Some(product);
        self
    }

    /// Attaches the limit and the value found.
    pub fn figures(mut self, limit: impl Serialize, actual: impl Serialize) -> Self {
        self.limit = serde_json::to_value(limit).ok();
        self.actual = serde_json::to_value(actual).ok();
        self
    }

    /// Adds a template argument.
    pub fn arg(mut self, name: &'static str, value: impl ToString) -> Self {
        self.args.insert(name, value.to_string());
        self
    }
}

/// The verdict shown with a cart and returned by a refused checkout.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ComplianceReport {
    /// No violations.
    pub ok: bool,
    /// What is wrong.
    pub violations: Vec<Violation>,
}

impl ComplianceReport {
    /// A report of these violations.
    pub fn of(violations: Vec<Violation>) -> Self {
        ComplianceReport {
            ok: violations.is_empty(),
            violations,
        }
    }
}

/// One cart line as compliance sees it.
#[derive(Debug, Clone, Copy)]
pub struct LineFacts<'a> {
    /// Line id (none when a product is checked alone).
    pub line_id: Option<LineId>,
    /// Product.
    pub product_id: ProductId,
    /// What the product says about itself.
    pub product: &'a ProductFacts,
    /// Units.
    pub quantity: i64,
    /// Line total in the cart currency.
    pub line_total: Money,
}

/// One of a buyer's earlier live orders, as cumulative limits count it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PastOrder {
    /// When it was placed.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Goods value.
    pub subtotal: Money,
    /// Units per product.
    pub units: Vec<(ProductId, i64)>,
}

impl From<&crate::order::Order> for PastOrder {
    fn from(o: &crate::order::Order) -> Self {
        PastOrder {
            created_at: o.created_at,
            subtotal: o.totals.subtotal,
            units: o.lines.iter().map(|l| (l.product_id, l.quantity)).collect(),
        }
    }
}

/// A buyer's earlier imports into the destination, identified by one identifier kind
/// (the consignee's customs code, resident id): what yearly limits and limits over a
/// window of days add the cart to, so splitting an order cannot dodge a limit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuyerHistory {
    /// The identifier kind the orders were matched by.
    pub identifier: String,
    /// The buyer's live orders since the earliest day any limit looks back to.
    pub orders: Vec<PastOrder>,
}

impl BuyerHistory {
    /// Orders placed in the `days` days ending on `day` (inclusive).
    pub fn within(&self, day: NaiveDate, days: u32) -> impl Iterator<Item = &PastOrder> {
        let first = day - chrono::Duration::days(i64::from(days.max(1)) - 1);
        self.orders
            .iter()
            .filter(move |o| o.created_at.date_naive() >= first && o.created_at.date_naive() <= day)
    }
}

/// A cart as compliance sees it. `Debug` shows identifier kinds only, never values.
#[derive(Clone, Copy)]
pub struct CartFacts<'a> {
    /// Destination.
    pub country: &'a str,
    /// Where the goods ship from.
    pub origin: &'a str,
    /// The day decisions are made for.
    pub day: NaiveDate,
    /// Lines.
    pub lines: &'a [LineFacts<'a>],
    /// Goods value in the cart currency.
    pub subtotal: Money,
    /// Identifiers the buyer gave, opened, by kind.
    pub identifiers: &'a BTreeMap<String, String>,
    /// Exchange rates for limits in other currencies.
    pub rates: &'a ExchangeRates,
    /// The buyer's history (checkout only).
    pub history: Option<&'a BuyerHistory>,
}

impl std::fmt::Debug for CartFacts<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CartFacts")
            .field("country", &self.country)
            .field("origin", &self.origin)
            .field("day", &self.day)
            .field("lines", &self.lines)
            .field("subtotal", &self.subtotal)
            .field("identifiers", &self.identifiers.keys().collect::<Vec<_>>())
            .field("history", &self.history)
            .finish_non_exhaustive()
    }
}

impl CartFacts<'_> {
    /// Goods cross a border: import rules apply.
    pub fn cross_border(&self) -> bool {
        self.origin != self.country
    }
}

/// A country's compliance rules. Implement it (usually only [`country`] and
/// [`default_rules`], plus identifier checks) in a `plugins/country-xx` crate.
///
/// [`country`]: CountryCompliance::country
/// [`default_rules`]: CountryCompliance::default_rules
pub trait CountryCompliance: Send + Sync + std::fmt::Debug {
    /// ISO 3166-1 alpha-2 code.
    fn country(&self) -> &'static str;

    /// The rule data this plugin ships; operators may replace it at run time.
    fn default_rules(&self) -> CountryRules;

    /// Identifier kinds this country defines (`kr_pccc`), checked by
    /// [`validate_identifier`](CountryCompliance::validate_identifier).
    fn identifier_kinds(&self) -> &'static [&'static str] {
        &[]
    }

    /// Checks an identifier's format (and checksum) on `day`; returns its normalized
    /// form (`p123456789012` -> `P123456789012`) or why it is invalid.
    fn validate_identifier(
        &self,
        kind: &str,
        value: &str,
        day: NaiveDate,
    ) -> Result<String, String> {
        let _ = (value, day);
        Err(format!("{kind} is not an identifier of {}", self.country()))
    }

    /// Extra fields of `countries.CC` this plugin defines, beyond the common ones.
    fn extra_product_fields(&self) -> &'static [&'static str] {
        &[]
    }

    /// Checks a product's data for this country when an operator saves it on `day`.
    fn check_product_data(
        &self,
        rules: &CountryRules,
        data: &CountryData,
        day: NaiveDate,
        path: &str,
        errors: &mut Vec<FieldError>,
    ) {
        evaluate::check_country_data(rules, data, self.extra_product_fields(), day, path, errors);
    }

    /// Moment 1: why the product cannot be sold there on `day` (empty: it can).
    fn listing(
        &self,
        rules: &CountryRules,
        product: &ProductFacts,
        day: NaiveDate,
    ) -> Vec<Violation> {
        evaluate::listing(rules, product, day)
    }

    /// Moment 2: what is wrong with the cart.
    fn check_cart(&self, rules: &CountryRules, cart: &CartFacts<'_>) -> Vec<Violation> {
        evaluate::cart(rules, cart)
    }

    /// Moment 3: the cart checks plus those needing the buyer's history.
    fn check_checkout(&self, rules: &CountryRules, cart: &CartFacts<'_>) -> Vec<Violation> {
        let mut v = self.check_cart(rules, cart);
        v.extend(evaluate::annual(rules, cart));
        v
    }
}

/// Tax and duties for a country. The default derives everything from the rule data.
pub trait TaxPolicy: Send + Sync + std::fmt::Debug {
    /// Tax per line, landed cost, and what the total must include.
    fn tax(&self, rules: &CountryRules, input: &tax::TaxInput<'_>) -> CoreResult<TaxOutcome> {
        tax::from_rules(rules, input)
    }
}
