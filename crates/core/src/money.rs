//! Money: a decimal amount with an ISO 4217 currency whose exponent is enforced.
//!
//! Amounts are `rust_decimal::Decimal`, never `f64`. Storage keeps them as integer minor
//! units (`amount * 10^exponent`) so databases compare and sum them exactly. Rounding to a
//! currency's practical precision happens in exactly one place: [`Currency::round`].

use std::fmt;
use std::str::FromStr;

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

use crate::error::CoreError;

/// A supported currency. The exponent is the *practical* number of decimals: IDR has two
/// in ISO 4217 but nobody prices in sen, so it is treated as 0 (as KRW, JPY, VND).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Currency {
    /// South Korean won.
    KRW,
    /// US dollar.
    USD,
    /// Indonesian rupiah.
    IDR,
    /// Japanese yen.
    JPY,
    /// Vietnamese dong.
    VND,
    /// Singapore dollar.
    SGD,
    /// Malaysian ringgit.
    MYR,
    /// Chinese yuan.
    CNY,
    /// Thai baht.
    THB,
    /// Euro.
    EUR,
}

impl Currency {
    /// Every supported currency, in a stable order.
    pub const ALL: [Currency; 10] = [
        Currency::KRW,
        Currency::USD,
        Currency::IDR,
        Currency::JPY,
        Currency::VND,
        Currency::SGD,
        Currency::MYR,
        Currency::CNY,
        Currency::THB,
        Currency::EUR,
    ];

    /// ISO code.
    pub fn code(self) -> &'static str {
        match self {
            Currency::KRW => "KRW",
            Currency::USD => "USD",
            Currency::IDR => "IDR",
            Currency::JPY => "JPY",
            Currency::VND => "VND",
            Currency::SGD => "SGD",
            Currency::MYR => "MYR",
            Currency::CNY => "CNY",
            Currency::THB => "THB",
            Currency::EUR => "EUR",
        }
    }

    /// Practical number of decimals.
    pub fn exponent(self) -> u32 {
        match self {
            Currency::KRW | Currency::JPY | Currency::VND | Currency::IDR => 0,
            _ => 2,
        }
    }

    /// Rounds an amount to this currency's precision, half away from zero (commercial
    /// rounding). This is the only rounding place in the engine.
    pub fn round(self, amount: Decimal) -> Decimal {
        amount.round_dp_with_strategy(self.exponent(), RoundingStrategy::MidpointAwayFromZero)
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for Currency {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Currency::ALL
            .into_iter()
            .find(|c| c.code().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                CoreError::invalid(
                    "unsupported_currency",
                    format!("unsupported currency `{s}`"),
                )
            })
    }
}

impl TryFrom<String> for Currency {
    type Error = CoreError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> Self {
        c.code().to_string()
    }
}

/// The largest amount any single money value may hold (in major units). Far above any
/// real order (10^15 won is more than Korea's GDP) yet well inside `i64` minor units, so
/// storage never overflows.
pub const MAX_AMOUNT: i64 = 1_000_000_000_000_000;

/// An amount in a currency. Construct through [`Money::new`], which enforces the
/// currency's exponent and the range, so every `Money` in the system is valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Money {
    /// Decimal amount, serialized as a string (`"12900"`, `"29.90"`).
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    /// Currency.
    pub currency: Currency,
}

impl Money {
    /// A validated amount: not more decimals than the currency allows, within range.
    /// Negative amounts are allowed (discounts, refunds); callers reject them where prices
    /// must be positive.
    pub fn new(amount: Decimal, currency: Currency) -> Result<Self, CoreError> {
        if amount.normalize().scale() > currency.exponent() {
            return Err(CoreError::invalid(
                "invalid_amount",
                format!(
                    "{currency} takes at most {} decimals, got {amount}",
                    currency.exponent()
                ),
            ));
        }
        if amount.abs() > Decimal::from(MAX_AMOUNT) {
            return Err(CoreError::invalid(
                "invalid_amount",
                format!("amount {amount} is out of range"),
            ));
        }
        let mut amount = amount.normalize();
        amount.rescale(currency.exponent());
        Ok(Money { amount, currency })
    }

    /// Zero in a currency.
    pub fn zero(currency: Currency) -> Self {
        let mut amount = Decimal::ZERO;
        amount.rescale(currency.exponent());
        Money { amount, currency }
    }

    /// Parses `"29.90"` in a currency.
    pub fn parse(amount: &str, currency: Currency) -> Result<Self, CoreError> {
        let d = Decimal::from_str_exact(amount.trim()).map_err(|_| {
            CoreError::invalid(
                "invalid_amount",
                format!("`{amount}` is not a decimal amount"),
            )
        })?;
        Money::new(d, currency)
    }

    /// Amount in minor units (cents, won), as stored.
    pub fn minor_units(&self) -> i64 {
        let mut scaled = self.amount * Decimal::from(10i64.pow(self.currency.exponent()));
        scaled.rescale(0);
        // In range by construction (MAX_AMOUNT * 100 < i64::MAX).
        i64::try_from(scaled).unwrap_or(i64::MAX)
    }

    /// From minor units as stored.
    pub fn from_minor(minor: i64, currency: Currency) -> Result<Self, CoreError> {
        Money::new(Decimal::new(minor, currency.exponent()), currency)
    }

    /// Checked addition; currencies must match.
    pub fn checked_add(self, other: Money) -> Result<Money, CoreError> {
        self.same_currency(other)?;
        let sum = self
            .amount
            .checked_add(other.amount)
            .ok_or_else(|| CoreError::invalid("amount_overflow", "amount overflow"))?;
        Money::new(sum, self.currency)
    }

    /// Checked subtraction; currencies must match.
    pub fn checked_sub(self, other: Money) -> Result<Money, CoreError> {
        self.same_currency(other)?;
        let diff = self
            .amount
            .checked_sub(other.amount)
            .ok_or_else(|| CoreError::invalid("amount_overflow", "amount overflow"))?;
        Money::new(diff, self.currency)
    }

    /// Checked multiplication by a quantity.
    pub fn checked_mul(self, qty: i64) -> Result<Money, CoreError> {
        let product = self
            .amount
            .checked_mul(Decimal::from(qty))
            .ok_or_else(|| CoreError::invalid("amount_overflow", "amount overflow"))?;
        Money::new(product, self.currency)
    }

    /// Multiplies by a rate (tax, exchange) and rounds once, per currency.
    pub fn mul_rate_rounded(self, rate: Decimal) -> Result<Money, CoreError> {
        let product = self
            .amount
            .checked_mul(rate)
            .ok_or_else(|| CoreError::invalid("amount_overflow", "amount overflow"))?;
        Money::new(self.currency.round(product), self.currency)
    }

    /// True when below zero.
    pub fn is_negative(&self) -> bool {
        self.amount.is_sign_negative() && !self.amount.is_zero()
    }

    fn same_currency(&self, other: Money) -> Result<(), CoreError> {
        if self.currency != other.currency {
            return Err(CoreError::invalid(
                "currency_mismatch",
                format!("cannot combine {} with {}", self.currency, other.currency),
            ));
        }
        Ok(())
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount, self.currency)
    }
}

/// Wire form of money as it arrives in JSON: `{"amount": "12900", "currency": "KRW"}`.
/// Kept separate from [`Money`] so that validation errors carry a field path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoneyInput {
    /// Decimal string.
    pub amount: String,
    /// ISO code.
    pub currency: String,
}

impl MoneyInput {
    /// Validates into [`Money`].
    pub fn to_money(&self) -> Result<Money, CoreError> {
        let currency: Currency = self.currency.parse()?;
        Money::parse(&self.amount, currency)
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let input = MoneyInput::deserialize(d)?;
        input.to_money().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn krw_rejects_decimals_and_usd_takes_two() {
        assert!(Money::parse("12900.5", Currency::KRW).is_err());
        assert_eq!(
            Money::parse("12900", Currency::KRW).unwrap().minor_units(),
            12900
        );
        assert_eq!(
            Money::parse("29.9", Currency::USD).unwrap().minor_units(),
            2990
        );
        assert_eq!(
            Money::parse("29.90", Currency::USD)
                .unwrap()
                .amount
                .to_string(),
            "29.90"
        );
        assert!(Money::parse("29.901", Currency::USD).is_err());
        // Trailing zeros beyond the exponent are not extra precision.
        assert_eq!(
            Money::parse("100.00", Currency::KRW)
                .unwrap()
                .amount
                .to_string(),
            "100"
        );
        assert_eq!(
            Money::parse("459000", Currency::IDR).unwrap().minor_units(),
            459000
        );
    }

    #[test]
    fn rejects_garbage_and_out_of_range() {
        assert!(Money::parse("abc", Currency::KRW).is_err());
        assert!(Money::parse("1e5", Currency::KRW).is_err());
        assert!(Money::parse("10000000000000000000", Currency::KRW).is_err());
        assert!("XXX".parse::<Currency>().is_err());
        assert_eq!("krw".parse::<Currency>().unwrap(), Currency::KRW);
    }

    #[test]
    fn mixing_currencies_is_an_error() {
        let a = Money::parse("1", Currency::KRW).unwrap();
        let b = Money::parse("1", Currency::USD).unwrap();
        assert!(a.checked_add(b).is_err());
    }

    #[test]
    fn rounding_is_half_away_from_zero_per_currency() {
        let m = Money::parse("1005", Currency::KRW).unwrap();
        // 10% of 1005 = 100.5 -> 101 won
        assert_eq!(
            m.mul_rate_rounded(Decimal::new(1, 1)).unwrap().amount,
            Decimal::from(101)
        );
        let u = Money::parse("0.05", Currency::USD).unwrap();
        // 0.05 * 0.5 = 0.025 -> 0.03
        assert_eq!(
            u.mul_rate_rounded(Decimal::new(5, 1))
                .unwrap()
                .amount
                .to_string(),
            "0.03"
        );
    }

    #[test]
    fn serializes_amount_as_string() {
        let m = Money::parse("29.90", Currency::USD).unwrap();
        assert_eq!(
            serde_json::to_value(m).unwrap(),
            serde_json::json!({"amount": "29.90", "currency": "USD"})
        );
        let back: Money =
            serde_json::from_value(serde_json::json!({"amount": "29.90", "currency": "USD"}))
                .unwrap();
        assert_eq!(back, m);
        assert!(serde_json::from_value::<Money>(
            serde_json::json!({"amount": "1.5", "currency": "KRW"})
        )
        .is_err());
    }

    fn currency() -> impl Strategy<Value = Currency> {
        proptest::sample::select(Currency::ALL.to_vec())
    }

    proptest! {
        #[test]
        fn minor_units_round_trip(minor in -1_000_000_000_000i64..1_000_000_000_000i64, c in currency()) {
            let m = Money::from_minor(minor, c).unwrap();
            prop_assert_eq!(m.minor_units(), minor);
        }

        #[test]
        fn sums_are_exact(parts in proptest::collection::vec(0i64..10_000_000, 1..40), c in currency()) {
            let mut total = Money::zero(c);
            for p in &parts {
                total = total.checked_add(Money::from_minor(*p, c).unwrap()).unwrap();
            }
            prop_assert_eq!(total.minor_units(), parts.iter().sum::<i64>());
        }

        #[test]
        fn line_total_is_price_times_quantity(minor in 0i64..100_000_000, qty in 1i64..1000, c in currency()) {
            let price = Money::from_minor(minor, c).unwrap();
            prop_assert_eq!(price.checked_mul(qty).unwrap().minor_units(), minor * qty);
        }

        #[test]
        fn rounding_is_idempotent(minor in -1_000_000_000i64..1_000_000_000, scale in 0u32..6, c in currency()) {
            let d = Decimal::new(minor, scale);
            let once = c.round(d);
            prop_assert_eq!(c.round(once), once);
            prop_assert!(once.normalize().scale() <= c.exponent());
        }
    }
}
