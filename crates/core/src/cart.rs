//! Carts: created for a country, currency and locale; lines; contact and address.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{CoreError, CoreResult, FieldError};
use crate::ids::{CartId, CustomerId, LineId, OrderId, ProductId, VariantId};
use crate::money::{Currency, Money};

/// Largest quantity of one line.
pub const MAX_LINE_QUANTITY: i64 = 999;
/// Most lines in one cart.
pub const MAX_LINES: usize = 100;

/// A postal address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Address {
    /// Recipient.
    pub name: String,
    /// Street line.
    pub line1: String,
    /// Second line.
    #[serde(default)]
    pub line2: Option<String>,
    /// City.
    pub city: String,
    /// Province / state / 시·도.
    #[serde(default)]
    pub region: Option<String>,
    /// Postal code.
    pub postal_code: String,
    /// ISO 3166-1 alpha-2.
    pub country: String,
    /// Phone, E.164 or local digits.
    #[serde(default)]
    pub phone: Option<String>,
}

impl Address {
    /// Checks lengths and formats.
    pub fn validate(&self, errors: &mut Vec<FieldError>) {
        let f = |n: &str| format!("shipping_address.{n}");
        for (name, value, max) in [
            ("name", &self.name, 200),
            ("line1", &self.line1, 300),
            ("city", &self.city, 200),
            ("postal_code", &self.postal_code, 20),
        ] {
            if value.trim().is_empty() {
                errors.push(FieldError::new(
                    f(name),
                    "required",
                    format!("{name} is required"),
                ));
            } else if value.chars().count() > max {
                errors.push(FieldError::new(
                    f(name),
                    "too_long",
                    format!("at most {max} characters"),
                ));
            }
        }
        for (name, value) in [("line2", &self.line2), ("region", &self.region)] {
            if value.as_ref().is_some_and(|v| v.chars().count() > 300) {
                errors.push(FieldError::new(
                    f(name),
                    "too_long",
                    "at most 300 characters",
                ));
            }
        }
        if !is_country_code(&self.country) {
            errors.push(FieldError::new(
                f("country"),
                "invalid_country",
                "ISO 3166-1 alpha-2 code",
            ));
        }
        if let Some(p) = &self.phone {
            let digits = p.chars().filter(char::is_ascii_digit).count();
            if !(6..=15).contains(&digits)
                || p.chars()
                    .any(|c| !(c.is_ascii_digit() || " +-()".contains(c)))
            {
                errors.push(FieldError::new(
                    f("phone"),
                    "invalid_format",
                    "6 to 15 digits, with + - ( ) and spaces",
                ));
            }
        }
    }
}

/// Two uppercase ASCII letters.
pub fn is_country_code(s: &str) -> bool {
    s.len() == 2 && s.bytes().all(|b| b.is_ascii_uppercase())
}

/// A plausible e-mail address (one `@`, a dot in the domain, no spaces, <= 254 chars).
pub fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && s.len() <= 254
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Lifecycle of a cart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CartStatus {
    /// Being filled.
    Open,
    /// Turned into an order.
    Completed,
}

/// A cart line. Prices are not stored: they are read from the catalog when the cart is
/// priced, so a price change shows up before checkout, not after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineItem {
    /// Id.
    pub id: LineId,
    /// Variant bought.
    pub variant_id: VariantId,
    /// Quantity, 1..=999.
    pub quantity: i64,
}

/// A cart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cart {
    /// Id.
    pub id: CartId,
    /// Destination country (ISO alpha-2).
    pub country: String,
    /// Currency every line is priced in.
    pub currency: Currency,
    /// Locale for texts.
    pub locale: String,
    /// Owner when a signed-in buyer created it.
    pub customer_id: Option<CustomerId>,
    /// Contact e-mail (required at checkout).
    pub email: Option<String>,
    /// Where to ship.
    pub shipping_address: Option<Address>,
    /// Identifiers customs need (`kr_pccc`, `id_nik`), validated and sealed.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub buyer_identifiers: crate::compliance::identifiers::SealedIdentifiers,
    /// Lines.
    pub lines: Vec<LineItem>,
    /// Open or completed.
    pub status: CartStatus,
    /// The order it became.
    pub order_id: Option<OrderId>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Changed.
    pub updated_at: DateTime<Utc>,
    /// After this moment the cart is gone.
    pub expires_at: DateTime<Utc>,
}

impl Cart {
    /// Fails unless the cart can still be changed at `now`.
    pub fn ensure_open(&self, now: DateTime<Utc>) -> CoreResult<()> {
        if self.status == CartStatus::Completed {
            return Err(CoreError::conflict(
                "cart_completed",
                "this cart has already been checked out",
            ));
        }
        if self.expires_at <= now {
            return Err(CoreError::conflict(
                "cart_expired",
                "this cart has expired; create a new one",
            ));
        }
        Ok(())
    }

    /// Validates a quantity for a line.
    pub fn check_quantity(q: i64) -> CoreResult<()> {
        if !(1..=MAX_LINE_QUANTITY).contains(&q) {
            return Err(CoreError::invalid_field(
                "quantity",
                "out_of_range",
                format!("quantity must be between 1 and {MAX_LINE_QUANTITY}"),
            ));
        }
        Ok(())
    }
}

/// A priced line, as shown to the buyer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PricedLine {
    /// Line id.
    pub id: LineId,
    /// Variant.
    pub variant_id: VariantId,
    /// Product.
    pub product_id: ProductId,
    /// Product handle.
    pub product_handle: String,
    /// SKU.
    pub sku: String,
    /// Product title in the cart's locale.
    pub title: String,
    /// Quantity.
    pub quantity: i64,
    /// Unit price now.
    pub unit_price: Money,
    /// `unit_price * quantity`.
    pub line_total: Money,
    /// Tax of the line (included in `line_total` when `Totals::tax_included`).
    pub tax: Money,
    /// The unit price was converted from the base currency with the exchange-rate
    /// table (the variant has no price in the cart currency).
    pub price_converted: bool,
    /// Stock on hand now (so the UI can warn).
    pub available_quantity: i64,
}

/// The totals of a cart or order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Sum of line totals.
    pub subtotal: Money,
    /// Shipping charge.
    pub shipping: Money,
    /// Tax: included in the subtotal when `tax_included`, else added to it.
    pub tax: Money,
    /// Shelf prices include the tax (KR, ID, SG, JP); the total does not add it again.
    #[serde(default)]
    pub tax_included: bool,
    /// Duties and import taxes charged at checkout (seller-collected or delivered duty
    /// paid); absent when none are charged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duties: Option<Money>,
    /// Amount to pay: subtotal + shipping + tax (unless included) + duties.
    pub total: Money,
}

/// A cart with prices and totals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PricedCart {
    /// The cart.
    pub cart: Cart,
    /// Priced lines, in cart order.
    pub lines: Vec<PricedLine>,
    /// Totals.
    pub totals: Totals,
    /// Name and rate of the tax applied, when one is.
    pub tax_name: Option<String>,
    /// Rate of that tax.
    pub tax_rate: Option<rust_decimal::Decimal>,
    /// Duties and import taxes the buyer will face, for cross-border carts.
    pub landed_cost: Option<crate::compliance::LandedCost>,
    /// The destination's rules applied to this cart today.
    pub compliance: crate::compliance::ComplianceReport,
    /// A currency the destination's duty bands are bounded in that the exchange-rate
    /// table lacks: duties and taxes cannot be computed (checkout refuses; the cart
    /// view reports it as a violation).
    pub rate_missing: Option<crate::money::Currency>,
}
