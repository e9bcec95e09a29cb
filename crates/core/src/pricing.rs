//! Pricing: turns a cart and catalog snapshots into priced lines, tax and totals.
//!
//! Unit prices come from the variant's price in the cart currency, or, when it has
//! none, from its base-currency price converted with the operator's exchange-rate table
//! and rounded once by the cart currency. Tax comes from the destination's
//! [`TaxPolicy`]; shipping from a [`ShippingHook`].

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::NaiveDate;

use crate::cart::{Cart, PricedCart, PricedLine, Totals};
use crate::catalog::{ProductStatus, Variant, VariantSnapshot};
use crate::compliance::tax::TaxInput;
use crate::compliance::{ComplianceReport, CountryRules, ExchangeRates, TaxOutcome, TaxPolicy};
use crate::error::{CoreError, CoreResult};
use crate::ids::VariantId;
use crate::locale::LocaleChain;
use crate::money::{Currency, Money};

/// Computes the shipping charge.
#[async_trait]
pub trait ShippingHook: Send + Sync + std::fmt::Debug {
    /// Shipping charge for the cart.
    async fn shipping(
        &self,
        cart: &Cart,
        lines: &[PricedLine],
        subtotal: Money,
    ) -> CoreResult<Money>;
}

/// The default hook: free shipping.
#[derive(Debug, Clone, Copy, Default)]
pub struct FreeShipping;

#[async_trait]
impl ShippingHook for FreeShipping {
    async fn shipping(&self, cart: &Cart, _: &[PricedLine], _: Money) -> CoreResult<Money> {
        Ok(Money::zero(cart.currency))
    }
}

/// What pricing needs besides the cart: rates, the base currency, the destination's
/// tax policy and rules, the origin and the day.
#[derive(Debug, Clone, Copy)]
pub struct PriceContext<'a> {
    /// Exchange rates for converted prices.
    pub rates: &'a ExchangeRates,
    /// Currency of the prices conversion starts from; none: no conversion.
    pub base_currency: Option<Currency>,
    /// The destination's tax policy and rules; none: no tax.
    pub tax: Option<(&'a dyn TaxPolicy, &'a CountryRules)>,
    /// Origin country of the goods.
    pub origin: &'a str,
    /// Day of the decision.
    pub day: NaiveDate,
}

/// The pricing service.
#[derive(Debug, Clone)]
pub struct Pricing {
    shipping: Arc<dyn ShippingHook>,
}

impl Default for Pricing {
    fn default() -> Self {
        Pricing {
            shipping: Arc::new(FreeShipping),
        }
    }
}

/// A variant's unit price in `currency`: its own, or its base price converted.
pub fn unit_price(
    variant: &Variant,
    currency: Currency,
    ctx: &PriceContext<'_>,
) -> Option<(Money, bool)> {
    if let Some(p) = variant.price_in(currency) {
        return Some((p, false));
    }
    let base = variant.price_in(ctx.base_currency?)?;
    ctx.rates.convert_money(base, currency).map(|m| (m, true))
}

impl Pricing {
    /// Pricing with a shipping hook.
    pub fn new(shipping: Arc<dyn ShippingHook>) -> Self {
        Pricing { shipping }
    }

    /// Prices every line. With `strict`, a line whose variant is gone, unpublished or
    /// has no price in the cart currency is an error (checkout); otherwise such lines
    /// are left out of the totals (cart display). The compliance report is left empty
    /// for the caller to fill.
    pub async fn price(
        &self,
        cart: &Cart,
        snapshots: &[VariantSnapshot],
        chain: &LocaleChain,
        strict: bool,
        ctx: &PriceContext<'_>,
    ) -> CoreResult<PricedCart> {
        let by_id: HashMap<VariantId, &VariantSnapshot> =
            snapshots.iter().map(|s| (s.variant.id, s)).collect();
        let mut lines = Vec::with_capacity(cart.lines.len());
        let mut subtotal = Money::zero(cart.currency);
        for line in &cart.lines {
            let snap = by_id
                .get(&line.variant_id)
                .filter(|s| s.product_status == ProductStatus::Published);
            let price = snap.and_then(|s| unit_price(&s.variant, cart.currency, ctx));
            let (Some(snap), Some((unit_price, converted))) = (snap, price) else {
                if strict {
                    return Err(CoreError::conflict(
                        "line_unavailable",
                        format!(
                            "line {} is no longer available in {}",
                            line.id, cart.currency
                        ),
                    ));
                }
                continue;
            };
            let line_total = unit_price.checked_mul(line.quantity)?;
            subtotal = subtotal.checked_add(line_total)?;
            lines.push(PricedLine {
                id: line.id,
                variant_id: line.variant_id,
                product_id: snap.product_id,
                product_handle: snap.product_handle.clone(),
                sku: snap.variant.sku.clone(),
                title: snap.product_title.text(chain),
                quantity: line.quantity,
                unit_price,
                line_total,
                available_quantity: snap.variant.stock,
                tax: Money::zero(cart.currency),
                price_converted: converted,
            });
        }
        let totals: Vec<Money> = lines.iter().map(|l| l.line_total).collect();
        let outcome = match ctx.tax {
            Some((policy, rules)) => policy.tax(
                rules,
                &TaxInput {
                    country: &cart.country,
                    origin: ctx.origin,
                    day: ctx.day,
                    currency: cart.currency,
                    lines: &totals,
                    rates: ctx.rates,
                },
            )?,
            None => TaxOutcome::zero(cart.currency, lines.len()),
        };
        if let Some(c) = outcome.rate_missing {
            tracing::error!(country = %cart.country, currency = %c, "no exchange rate to apply the destination's duty bands");
            if strict {
                return Err(CoreError::conflict(
                    "exchange_rate_missing",
                    format!("the exchange-rate table has no {c} rate; duties and taxes for {} cannot be computed", cart.country),
                ));
            }
        }
        if outcome.lines.len() != lines.len() {
            return Err(CoreError::Internal(format!(
                "tax policy for {} returned {} line taxes for {} lines",
                cart.country,
                outcome.lines.len(),
                lines.len()
            )));
        }
        for (l, t) in lines.iter_mut().zip(&outcome.lines) {
            l.tax = *t;
        }
        let shipping = self.shipping.shipping(cart, &lines, subtotal).await?;
        let mut total = subtotal.checked_add(shipping)?;
        if !outcome.inclusive {
            total = total.checked_add(outcome.tax)?;
        }
        let duties = (!outcome.duties.amount.is_zero()).then_some(outcome.duties);
        if let Some(d) = duties {
            total = total.checked_add(d)?;
        }
        Ok(PricedCart {
            cart: cart.clone(),
            lines,
            totals: Totals {
                subtotal,
                shipping,
                tax: outcome.tax,
                tax_included: outcome.inclusive,
                duties,
                total,
            },
            tax_name: outcome.name,
            tax_rate: outcome.rate,
            landed_cost: outcome.landed_cost,
            compliance: ComplianceReport::of(Vec::new()),
            rate_missing: outcome.rate_missing,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cart::{CartStatus, LineItem};
    use crate::catalog::Variant;
    use crate::ids::{CartId, LineId, ProductId};
    use crate::locale::LocalizedText;
    use chrono::Utc;
    use proptest::prelude::*;
    use rust_decimal::Decimal;

    fn snapshot(minor: i64, stock: i64) -> VariantSnapshot {
        VariantSnapshot {
            variant: Variant {
                id: VariantId::new(),
                sku: format!("SKU-{minor}"),
                options: Default::default(),
                prices: vec![Money::from_minor(minor, Currency::KRW).unwrap()],
                stock,
            },
            product_id: ProductId::new(),
            product_handle: "p".into(),
            product_title: LocalizedText::single("ko", "홍삼"),
            product_status: ProductStatus::Published,
            facts: Default::default(),
        }
    }

    fn cart(lines: Vec<LineItem>) -> Cart {
        let now = Utc::now();
        Cart {
            id: CartId::new(),
            country: "KR".into(),
            currency: Currency::KRW,
            locale: "ko".into(),
            customer_id: None,
            email: None,
            shipping_address: None,
            buyer_identifiers: Default::default(),
            lines,
            status: CartStatus::Open,
            order_id: None,
            created_at: now,
            updated_at: now,
            expires_at: now,
        }
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    }

    fn rates() -> ExchangeRates {
        let mut r = std::collections::BTreeMap::new();
        r.insert(Currency::USD, "0.00072".parse().unwrap());
        ExchangeRates {
            base: Currency::KRW,
            rates: r,
            source: "test".into(),
            valid_from: None,
        }
    }

    fn ctx<'a>(
        rates: &'a ExchangeRates,
        base: Option<Currency>,
        tax: Option<(&'a dyn TaxPolicy, &'a CountryRules)>,
    ) -> PriceContext<'a> {
        PriceContext {
            rates,
            base_currency: base,
            tax,
            origin: "KR",
            day: "2026-11-28".parse().unwrap(),
        }
    }

    #[derive(Debug)]
    struct RulesTax;
    impl TaxPolicy for RulesTax {}

    fn vat(rate: &str, inclusive: bool) -> CountryRules {
        serde_json::from_value(serde_json::json!({
            "country": "KR", "served": [{"valid_from": "2000-01-01", "source": "t"}],
            "tax": [{"valid_from": "2000-01-01", "source": "t", "name": "VAT", "rate": rate, "prices_include_tax": inclusive}]
        }))
        .unwrap()
    }

    #[test]
    fn strict_pricing_refuses_a_missing_currency() {
        let s = snapshot(1000, 5);
        let mut c = cart(vec![LineItem {
            id: LineId::new(),
            variant_id: s.variant.id,
            quantity: 1,
        }]);
        c.currency = Currency::USD;
        let chain = LocaleChain(vec!["ko".into()]);
        let r = rates();
        let err = rt()
            .block_on(Pricing::default().price(
                &c,
                std::slice::from_ref(&s),
                &chain,
                true,
                &ctx(&r, None, None),
            ))
            .unwrap_err();
        assert!(matches!(
            err,
            CoreError::Conflict {
                code: "line_unavailable",
                ..
            }
        ));
        let lenient = rt()
            .block_on(Pricing::default().price(
                &c,
                std::slice::from_ref(&s),
                &chain,
                false,
                &ctx(&r, None, None),
            ))
            .unwrap();
        assert!(lenient.lines.is_empty());
        assert_eq!(lenient.totals.total, Money::zero(Currency::USD));
        // With a base currency the price is converted from the won price and flagged.
        let converted = rt()
            .block_on(Pricing::default().price(
                &c,
                &[s],
                &chain,
                true,
                &ctx(&r, Some(Currency::KRW), None),
            ))
            .unwrap();
        assert_eq!(
            converted.lines[0].unit_price,
            Money::parse("0.72", Currency::USD).unwrap()
        );
        assert!(converted.lines[0].price_converted);
    }

    #[test]
    fn inclusive_tax_is_inside_the_total_and_exclusive_is_added() {
        let s = snapshot(11_000, 5);
        let c = cart(vec![LineItem {
            id: LineId::new(),
            variant_id: s.variant.id,
            quantity: 3,
        }]);
        let chain = LocaleChain(vec!["ko".into()]);
        let r = rates();
        let inc = vat("0.10", true);
        let p = rt()
            .block_on(Pricing::default().price(
                &c,
                std::slice::from_ref(&s),
                &chain,
                true,
                &ctx(&r, None, Some((&RulesTax, &inc))),
            ))
            .unwrap();
        assert_eq!(p.totals.tax, Money::parse("3000", Currency::KRW).unwrap());
        assert!(p.totals.tax_included);
        assert_eq!(
            p.totals.total,
            Money::parse("33000", Currency::KRW).unwrap()
        );
        let exc = vat("0.10", false);
        let p = rt()
            .block_on(Pricing::default().price(
                &c,
                &[s],
                &chain,
                true,
                &ctx(&r, None, Some((&RulesTax, &exc))),
            ))
            .unwrap();
        assert_eq!(p.totals.tax, Money::parse("3300", Currency::KRW).unwrap());
        assert_eq!(
            p.totals.total,
            Money::parse("36300", Currency::KRW).unwrap()
        );
    }

    proptest! {
        #[test]
        fn totals_add_up(items in proptest::collection::vec((1i64..500_000, 1i64..999), 1..20), bp in 0u32..2500, inclusive: bool) {
            let snaps: Vec<_> = items.iter().map(|(p, _)| snapshot(*p, 10)).collect();
            let lines = snaps.iter().zip(&items).map(|(s, (_, q))| LineItem { id: LineId::new(), variant_id: s.variant.id, quantity: *q }).collect();
            let c = cart(lines);
            let r = rates();
            let mut rules = vat("0.1", inclusive);
            rules.tax[0].rate = Decimal::new(bp as i64, 4);
            let priced = rt().block_on(Pricing::default().price(&c, &snaps, &LocaleChain(vec!["ko".into()]), true, &ctx(&r, None, Some((&RulesTax, &rules))))).unwrap();
            let expected: i64 = items.iter().map(|(p, q)| p * q).sum();
            prop_assert_eq!(priced.totals.subtotal.minor_units(), expected);
            let sum_lines: i64 = priced.lines.iter().map(|l| l.line_total.minor_units()).sum();
            prop_assert_eq!(sum_lines, expected);
            let sum_tax: i64 = priced.lines.iter().map(|l| l.tax.minor_units()).sum();
            prop_assert_eq!(sum_tax, priced.totals.tax.minor_units());
            let added = if inclusive { 0 } else { priced.totals.tax.minor_units() };
            prop_assert_eq!(priced.totals.total.minor_units(), expected + added + priced.totals.shipping.minor_units());
        }
    }
}
