//! Tax and landed cost from rule data.
//!
//! Domestic sale (origin = destination): the destination's rate in force applies to
//! every line, included in shelf prices or added, as the country displays them. Export
//! (origin != destination): zero-rated at origin; the destination's duties and import
//! taxes are estimated from its bands (the landed cost), and charged in the total only
//! where the seller must collect them or the operator ships delivered-duty-paid.
//!
//! Rounding happens per line, by the cart currency, through [`Currency::round`] (the
//! one rounding place); totals are sums of rounded lines, so they always add up.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Serialize;

use super::rules::{in_force, CountryRules};
use super::ExchangeRates;
use crate::error::{CoreError, CoreResult};
use crate::locale::LocalizedText;
use crate::money::{Currency, Money};

/// What tax needs to know about a cart.
#[derive(Debug, Clone, Copy)]
pub struct TaxInput<'a> {
    /// Destination.
    pub country: &'a str,
    /// Origin of the goods.
    pub origin: &'a str,
    /// Day of the decision.
    pub day: NaiveDate,
    /// Cart currency.
    pub currency: Currency,
    /// Line totals, in cart order.
    pub lines: &'a [Money],
    /// Exchange rates (duty bands are set in a currency of their own).
    pub rates: &'a ExchangeRates,
}

/// A landed-cost estimate: what the buyer will face at import.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LandedCost {
    /// Always true: duties are assessed by customs, not by us.
    pub estimate: bool,
    /// Customs duty.
    pub duty: Money,
    /// Import VAT / GST / sales tax.
    pub import_tax: Money,
    /// `duty + import_tax`.
    pub total: Money,
    /// Charged in the order total (seller-collected or delivered duty paid); otherwise
    /// due from the buyer on delivery.
    pub charged: bool,
    /// What the band is (`PMK 96/2023: USD 3 - 1,500, 7.5 % duty + VAT`).
    pub label: LocalizedText,
}

/// Tax of a cart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaxOutcome {
    /// Tax per line, in line order (included in or added to the line).
    pub lines: Vec<Money>,
    /// Sum of `lines`.
    pub tax: Money,
    /// Shelf prices include the tax.
    pub inclusive: bool,
    /// Name of the tax (`VAT`, `PPN`), when one applies.
    pub name: Option<String>,
    /// Rate applied.
    pub rate: Option<Decimal>,
    /// Duties and import taxes added to the total (zero unless charged).
    pub duties: Money,
    /// Import estimate for cross-border carts.
    pub landed_cost: Option<LandedCost>,
    /// A duty band could not be matched for want of an exchange rate: the estimate,
    /// and any tax the seller must collect, are unknown (checkout refuses).
    pub rate_missing: Option<Currency>,
}

impl TaxOutcome {
    /// No tax at all (no rules, or none in force).
    pub fn zero(currency: Currency, lines: usize) -> Self {
        TaxOutcome {
            lines: vec![Money::zero(currency); lines],
            tax: Money::zero(currency),
            inclusive: false,
            name: None,
            rate: None,
            duties: Money::zero(currency),
            landed_cost: None,
            rate_missing: None,
        }
    }
}

/// Tax of one line: included (`gross * r / (1 + r)`) or added (`net * r`), rounded once.
pub fn line_tax(line: Money, rate: Decimal, inclusive: bool) -> CoreResult<Money> {
    let part = if inclusive {
        rate.checked_div(Decimal::ONE + rate)
            .ok_or_else(|| CoreError::invalid("amount_overflow", "tax rate overflow"))?
    } else {
        rate
    };
    line.mul_rate_rounded(part)
}

/// The default tax computation.
pub fn from_rules(rules: &CountryRules, input: &TaxInput<'_>) -> CoreResult<TaxOutcome> {
    let cur = input.currency;
    let mut out = TaxOutcome::zero(cur, input.lines.len());
    if input.country == input.origin {
        let Some(rate) = in_force(&rules.tax, input.day).next() else {
            return Ok(out);
        };
        out.inclusive = rate.prices_include_tax;
        out.name = Some(rate.name.clone());
        out.rate = Some(rate.rate);
        for (i, l) in input.lines.iter().enumerate() {
            let t = line_tax(*l, rate.rate, rate.prices_include_tax)?;
            out.tax = out.tax.checked_add(t)?;
            out.lines[i] = t;
        }
        return Ok(out);
    }
    // Export: zero-rated at origin; estimate what the destination levies.
    let mut goods = Money::zero(cur);
    for l in input.lines {
        goods = goods.checked_add(*l)?;
    }
    if goods.amount.is_zero() {
        return Ok(out);
    }
    // A band bounded in a currency the rate table lacks cannot be decided; it must not
    // be skipped silently, or tax the seller has to collect would go uncharged.
    let in_band_currency = |c: Currency| input.rates.convert(goods.amount, cur, c);
    let mut band = None;
    for b in in_force(&rules.import.duties, input.day) {
        let bounds = [b.above, b.up_to];
        if let Some(m) = bounds
            .iter()
            .flatten()
            .find(|m| in_band_currency(m.currency).is_none())
        {
            out.rate_missing = Some(m.currency);
            return Ok(out);
        }
        let above = b
            .above
            .is_none_or(|a| in_band_currency(a.currency).is_some_and(|v| v > a.amount));
        let below = b
            .up_to
            .is_none_or(|u| in_band_currency(u.currency).is_some_and(|v| v <= u.amount));
        if above && below {
            band = Some(b);
            break;
        }
    }
    let Some(band) = band else {
        return Ok(out);
    };
    let duty = goods.mul_rate_rounded(band.duty_rate)?;
    let import_tax = goods
        .checked_add(duty)?
        .mul_rate_rounded(band.import_tax_rate)?;
    let total = duty.checked_add(import_tax)?;
    let charged = band.collected_by_seller || rules.import.delivered_duty_paid;
    if charged {
        out.duties = total;
    }
    out.landed_cost = Some(LandedCost {
        estimate: true,
        duty,
        import_tax,
        total,
        charged,
        label: band.label.clone(),
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn c() -> impl Strategy<Value = Currency> {
        prop_oneof![
            Just(Currency::KRW),
            Just(Currency::USD),
            Just(Currency::IDR),
            Just(Currency::JPY)
        ]
    }

    #[test]
    fn a_band_in_a_currency_without_a_rate_is_reported_not_skipped() {
        let rules: CountryRules = serde_json::from_value(serde_json::json!({
            "country": "SG", "served": [{"valid_from": "2000-01-01", "source": "t"}],
            "import": {"duties": [{"valid_from": "2000-01-01", "source": "t",
                "up_to": {"amount": "400", "currency": "SGD"}, "duty_rate": "0",
                "import_tax_rate": "0.09", "collected_by_seller": true, "label": {"en": "GST"}}]}
        }))
        .unwrap();
        let lines = [Money::parse("39000", Currency::KRW).unwrap()];
        let input = |rates: &ExchangeRates| {
            from_rules(
                &rules,
                &TaxInput {
                    country: "SG",
                    origin: "KR",
                    day: "2026-11-28".parse().unwrap(),
                    currency: Currency::KRW,
                    lines: &lines,
                    rates,
                },
            )
            .unwrap()
        };
        let none = input(&ExchangeRates::default());
        assert_eq!(none.rate_missing, Some(Currency::SGD));
        assert_eq!(none.duties, Money::zero(Currency::KRW));
        let rates: ExchangeRates = serde_json::from_value(serde_json::json!({
            "base": "KRW", "rates": {"SGD": "0.00094"}, "source": "t"
        }))
        .unwrap();
        let some = input(&rates);
        assert_eq!(some.rate_missing, None);
        // 9 % GST collected by the seller, charged in the total.
        assert_eq!(some.duties, Money::parse("3510", Currency::KRW).unwrap());
    }

    proptest! {
        /// Inclusive price = exclusive part + tax, exactly, for any amount and rate.
        #[test]
        fn inclusive_equals_exclusive_plus_tax(minor in 0i64..10_000_000_000, bp in 0u32..3000, cur in c()) {
            let gross = Money::from_minor(minor, cur).unwrap();
            let rate = Decimal::new(bp as i64, 4);
            let tax = line_tax(gross, rate, true).unwrap();
            let net = gross.checked_sub(tax).unwrap();
            prop_assert_eq!(net.checked_add(tax).unwrap(), gross);
            prop_assert!(!tax.is_negative());
            prop_assert!(tax.amount <= gross.amount);
            // Adding the rate to the net gives back the gross within one rounding step.
            let re = line_tax(net, rate, false).unwrap();
            let step = Decimal::new(1, cur.exponent());
            prop_assert!((net.amount + re.amount - gross.amount).abs() <= step);
        }

        /// Line taxes are rounded once each and the total is their sum: no drift.
        #[test]
        fn tax_total_is_the_sum_of_lines(lines in proptest::collection::vec(1i64..100_000_000, 1..10), bp in 0u32..3000) {
            let rate = Decimal::new(bp as i64, 4);
            let mut rules: CountryRules = serde_json::from_value(serde_json::json!({
                "country": "KR", "served": [{"valid_from": "2000-01-01", "source": "t"}],
                "tax": [{"valid_from": "2000-01-01", "source": "t", "name": "VAT", "rate": rate.to_string(), "prices_include_tax": true}]
            })).unwrap();
            rules.tax[0].rate = rate;
            let money: Vec<Money> = lines.iter().map(|m| Money::from_minor(*m, Currency::KRW).unwrap()).collect();
            let out = from_rules(&rules, &TaxInput {
                country: "KR", origin: "KR", day: "2026-11-28".parse().unwrap(), currency: Currency::KRW,
                lines: &money, rates: &ExchangeRates::default(),
            }).unwrap();
            let sum: i64 = out.lines.iter().map(|m| m.minor_units()).sum();
            prop_assert_eq!(out.tax.minor_units(), sum);
        }
    }
}
