//! The operator-maintained exchange-rate table: converts prices a variant lacks in the
//! cart currency, and amounts of limits and duty bands into the cart currency.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::error::FieldError;
use crate::money::{Currency, Money};

/// Rates as units of each currency per one unit of `base`
/// (`base: KRW, rates: {USD: "0.00072"}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExchangeRates {
    /// The currency rates are quoted against.
    pub base: Currency,
    /// Units of the currency for one unit of `base`.
    #[serde(deserialize_with = "each_currency_once")]
    pub rates: BTreeMap<Currency, Decimal>,
    /// Where the rates come from (bank, date).
    #[serde(default)]
    pub source: String,
    /// First day (UTC) the table is in force. A table stored with a later day waits for
    /// it (customs rates such as Indonesia's weekly *kurs pajak* are published ahead);
    /// absent when stored: the day it is stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<chrono::NaiveDate>,
}

impl Default for ExchangeRates {
    fn default() -> Self {
        ExchangeRates {
            base: Currency::USD,
            rates: BTreeMap::new(),
            source: String::new(),
            valid_from: None,
        }
    }
}

impl ExchangeRates {
    /// Units of `c` per unit of base.
    fn per_base(&self, c: Currency) -> Option<Decimal> {
        if c == self.base {
            Some(Decimal::ONE)
        } else {
            self.rates.get(&c).copied()
        }
    }

    /// Converts an amount without rounding (limits are compared unrounded); `None`
    /// when a rate is missing.
    pub fn convert(&self, amount: Decimal, from: Currency, to: Currency) -> Option<Decimal> {
        if from == to {
            return Some(amount);
        }
        let f = self.per_base(from)?;
        let t = self.per_base(to)?;
        amount.checked_mul(t)?.checked_div(f)
    }

    /// Converts money and rounds once, by the target currency.
    pub fn convert_money(&self, m: Money, to: Currency) -> Option<Money> {
        let v = self.convert(m.amount, m.currency, to)?;
        Money::new(to.round(v), to).ok()
    }

    /// Checks the table before it is put in force.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut e = Vec::new();
        for (c, r) in &self.rates {
            // Real rates between the currencies served sit far inside these bounds; a
            // rate beyond them is a typo, and would overflow conversions of large sums.
            let (min, max) = (Decimal::new(1, 9), Decimal::from(1_000_000_000));
            if *r <= Decimal::ZERO {
                e.push(FieldError::new(
                    format!("rates.{c}"),
                    "out_of_range",
                    "a rate is positive",
                ));
            } else if *r < min || *r > max {
                e.push(FieldError::new(
                    format!("rates.{c}"),
                    "out_of_range",
                    "a rate is between 0.000000001 and 1000000000",
                ));
            }
            if *c == self.base && *r != Decimal::ONE {
                e.push(FieldError::new(
                    format!("rates.{c}"),
                    "invalid_value",
                    "the base currency's rate is 1",
                ));
            }
        }
        e
    }
}

/// A rate map in which no currency appears twice. Currency codes are read in any case,
/// so `"USD"` and `"usd"` name one currency: a plain map would keep whichever came
/// last and silently drop the other rate.
fn each_currency_once<'de, D>(d: D) -> Result<BTreeMap<Currency, Decimal>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    struct Rates;
    impl<'de> serde::de::Visitor<'de> for Rates {
        type Value = BTreeMap<Currency, Decimal>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an object of currency codes to rates")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut rates = BTreeMap::new();
            while let Some((currency, rate)) = map.next_entry::<Currency, Decimal>()? {
                if rates.insert(currency, rate).is_some() {
                    return Err(serde::de::Error::custom(format!(
                        "rates: {currency} is listed twice"
                    )));
                }
            }
            Ok(rates)
        }
    }
    d.deserialize_map(Rates)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_currency_listed_twice_in_any_case_is_refused() {
        let table = |rates: &str| {
            serde_json::from_str::<ExchangeRates>(&format!(
                r#"{{"base": "KRW", "rates": {rates}, "valid_from": "2026-01-01"}}"#
            ))
        };
        let err = table(r#"{"USD": "0.00072", "usd": "0.5"}"#).unwrap_err();
        assert!(err.to_string().contains("USD is listed twice"), "{err}");
        assert!(table(r#"{"USD": "0.00072", "USD": "0.5"}"#).is_err());
        assert!(table(r#"{"USD": "0.00072", "idr": "11.5"}"#).is_ok());
    }
    use proptest::prelude::*;

    fn table() -> ExchangeRates {
        let mut rates = BTreeMap::new();
        rates.insert(Currency::USD, "0.00072".parse().unwrap());
        rates.insert(Currency::IDR, "11.5".parse().unwrap());
        ExchangeRates {
            base: Currency::KRW,
            rates,
            source: "test".into(),
            valid_from: None,
        }
    }

    #[test]
    fn rates_are_positive_and_within_bounds() {
        let mut t = table();
        assert!(t.validate().is_empty());
        t.rates.insert(Currency::USD, Decimal::ZERO);
        t.rates
            .insert(Currency::IDR, "99999999999999999999999999".parse().unwrap());
        t.rates
            .insert(Currency::JPY, "0.0000000001".parse().unwrap());
        let mut fields: Vec<_> = t.validate().into_iter().map(|f| f.field).collect();
        fields.sort();
        assert_eq!(fields, ["rates.IDR", "rates.JPY", "rates.USD"]);
    }

    #[test]
    fn converts_through_the_base_and_rounds_by_target() {
        let t = table();
        let usd = t
            .convert_money(Money::parse("39000", Currency::KRW).unwrap(), Currency::USD)
            .unwrap();
        assert_eq!(usd.amount.to_string(), "28.08");
        let idr = t
            .convert_money(Money::parse("10.00", Currency::USD).unwrap(), Currency::IDR)
            .unwrap();
        // 10 USD = 13,888.9 KRW = 159,722.2 IDR, whole rupiah.
        assert_eq!(idr.amount.to_string(), "159722");
        assert!(t
            .convert_money(Money::parse("1", Currency::KRW).unwrap(), Currency::JPY)
            .is_none());
    }

    proptest! {
        #[test]
        fn converted_money_is_always_valid(minor in 0i64..1_000_000_000) {
            let t = table();
            let m = Money::from_minor(minor, Currency::KRW).unwrap();
            for to in [Currency::USD, Currency::IDR, Currency::KRW] {
                let c = t.convert_money(m, to).unwrap();
                prop_assert_eq!(c.currency, to);
                prop_assert_eq!(to.round(c.amount), c.amount);
            }
        }
    }
}
