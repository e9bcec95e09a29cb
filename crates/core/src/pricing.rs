//! Pricing: turns a cart and catalog snapshots into priced lines and totals.
//!
//! Tax and shipping are hooks behind traits. Until the country-compliance work fills
//! them they return zero, but the totals already flow through them so nothing else has
//! to change when they do.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;

use crate::cart::{Cart, PricedCart, PricedLine, Totals};
use crate::catalog::{ProductStatus, VariantSnapshot};
use crate::error::{CoreError, CoreResult};
use crate::ids::VariantId;
use crate::locale::LocaleChain;
use crate::money::Money;

/// Computes tax on priced lines.
#[async_trait]
pub trait TaxHook: Send + Sync + std::fmt::Debug {
    /// Tax to add to the subtotal.
    async fn tax(&self, cart: &Cart, lines: &[PricedLine], subtotal: Money) -> CoreResult<Money>;
}

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

/// The default hooks: no tax, free shipping.
#[derive(Debug, Clone, Copy, Default)]
pub struct ZeroHooks;

#[async_trait]
impl TaxHook for ZeroHooks {
    async fn tax(&self, cart: &Cart, _: &[PricedLine], _: Money) -> CoreResult<Money> {
        Ok(Money::zero(cart.currency))
    }
}

#[async_trait]
impl ShippingHook for ZeroHooks {
    async fn shipping(&self, cart: &Cart, _: &[PricedLine], _: Money) -> CoreResult<Money> {
        Ok(Money::zero(cart.currency))
    }
}

/// The pricing service.
#[derive(Debug, Clone)]
pub struct Pricing {
    tax: Arc<dyn TaxHook>,
    shipping: Arc<dyn ShippingHook>,
}

impl Default for Pricing {
    fn default() -> Self {
        Pricing {
            tax: Arc::new(ZeroHooks),
            shipping: Arc::new(ZeroHooks),
        }
    }
}

impl Pricing {
    /// Pricing with the given hooks.
    pub fn new(tax: Arc<dyn TaxHook>, shipping: Arc<dyn ShippingHook>) -> Self {
        Pricing { tax, shipping }
    }

    /// Prices every line. With `strict`, a line whose variant is gone, unpublished or
    /// has no price in the cart currency is an error (checkout); otherwise such lines
    /// are left out of the totals and reported in `unavailable` (cart display).
    pub async fn price(
        &self,
        cart: &Cart,
        snapshots: &[VariantSnapshot],
        chain: &LocaleChain,
        strict: bool,
    ) -> CoreResult<PricedCart> {
        let by_id: HashMap<VariantId, &VariantSnapshot> =
            snapshots.iter().map(|s| (s.variant.id, s)).collect();
        let mut lines = Vec::with_capacity(cart.lines.len());
        let mut subtotal = Money::zero(cart.currency);
        for line in &cart.lines {
            let snap = by_id
                .get(&line.variant_id)
                .filter(|s| s.product_status == ProductStatus::Published);
            let price = snap.and_then(|s| s.variant.price_in(cart.currency));
            let (Some(snap), Some(unit_price)) = (snap, price) else {
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
            });
        }
        let tax = self.tax.tax(cart, &lines, subtotal).await?;
        let shipping = self.shipping.shipping(cart, &lines, subtotal).await?;
        let total = subtotal.checked_add(tax)?.checked_add(shipping)?;
        Ok(PricedCart {
            cart: cart.clone(),
            lines,
            totals: Totals {
                subtotal,
                shipping,
                tax,
                total,
            },
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
    use crate::money::Currency;
    use chrono::Utc;
    use proptest::prelude::*;

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
        let err = rt()
            .block_on(Pricing::default().price(&c, std::slice::from_ref(&s), &chain, true))
            .unwrap_err();
        assert!(matches!(
            err,
            CoreError::Conflict {
                code: "line_unavailable",
                ..
            }
        ));
        let lenient = rt()
            .block_on(Pricing::default().price(&c, &[s], &chain, false))
            .unwrap();
        assert!(lenient.lines.is_empty());
        assert_eq!(lenient.totals.total, Money::zero(Currency::USD));
    }

    proptest! {
        #[test]
        fn totals_add_up(items in proptest::collection::vec((1i64..500_000, 1i64..999), 1..20)) {
            let snaps: Vec<_> = items.iter().map(|(p, _)| snapshot(*p, 10)).collect();
            let lines = snaps.iter().zip(&items).map(|(s, (_, q))| LineItem { id: LineId::new(), variant_id: s.variant.id, quantity: *q }).collect();
            let c = cart(lines);
            let priced = rt().block_on(Pricing::default().price(&c, &snaps, &LocaleChain(vec!["ko".into()]), true)).unwrap();
            let expected: i64 = items.iter().map(|(p, q)| p * q).sum();
            prop_assert_eq!(priced.totals.subtotal.minor_units(), expected);
            let sum_lines: i64 = priced.lines.iter().map(|l| l.line_total.minor_units()).sum();
            prop_assert_eq!(sum_lines, expected);
            prop_assert_eq!(priced.totals.total.minor_units(), expected + priced.totals.tax.minor_units() + priced.totals.shipping.minor_units());
        }
    }
}
