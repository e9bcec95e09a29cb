//! Cart use cases.

use crate::auth::Principal;
use crate::cart::{
    is_country_code, is_email, Address, Cart, CartStatus, LineItem, PricedCart, MAX_LINES,
};
use crate::engine::Engine;
use crate::error::{CoreError, CoreResult, FieldError};
use crate::ids::{CartId, LineId, VariantId};
use crate::locale::{validate_locale, LocaleChain};
use crate::money::Currency;
use crate::ports::Reads;

/// Body of a cart creation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewCart {
    /// Destination country.
    pub country: String,
    /// Currency.
    pub currency: String,
    /// Locale (defaults to the first store locale).
    pub locale: Option<String>,
}

/// Changes to a cart's contact and address.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct CartUpdate {
    /// Contact e-mail.
    pub email: Option<String>,
    /// Shipping address.
    pub shipping_address: Option<Address>,
    /// Locale.
    pub locale: Option<String>,
    /// Buyer identifiers to set (a value) or remove (`None`), by kind.
    pub buyer_identifiers: Option<crate::service::compliance::IdentifierChanges>,
}

// By hand: identifiers must never reach a log in clear, only their kinds.
impl std::fmt::Debug for CartUpdate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CartUpdate")
            .field("email", &self.email)
            .field("shipping_address", &self.shipping_address)
            .field("locale", &self.locale)
            .field(
                "buyer_identifiers",
                &crate::compliance::identifiers::kinds_only(&self.buyer_identifiers),
            )
            .finish()
    }
}

impl Engine {
    /// The locale chain for a cart.
    pub fn cart_chain(&self, cart: &Cart) -> LocaleChain {
        LocaleChain::negotiate([cart.locale.as_str()], &self.0.settings.default_locales)
    }

    /// Reads the cart's variants and prices it. The connection is given back before
    /// pricing, which may read rules and the buyer's history on connections of its own
    /// (holding one while asking for another can exhaust a small pool).
    pub(crate) async fn priced(
        &self,
        mut reads: Box<dyn Reads>,
        cart: Cart,
    ) -> CoreResult<PricedCart> {
        let ids: Vec<VariantId> = cart.lines.iter().map(|l| l.variant_id).collect();
        let snaps = reads.variants(&ids).await?;
        drop(reads);
        let rules = self.rules_snapshot().await;
        self.price_and_check(&rules, &cart, &snaps, false, None)
            .await
    }

    /// Carts of signed-in buyers are theirs alone; guest carts are reached by id.
    pub(crate) fn check_owner(cart: &Cart, caller: Option<&Principal>) -> CoreResult<()> {
        match (cart.customer_id, caller) {
            (Some(owner), Some(p)) if owner == p.id => Ok(()),
            (Some(_), _) => Err(CoreError::NotFound { entity: "cart" }),
            (None, _) => Ok(()),
        }
    }

    /// Creates a cart.
    pub async fn create_cart(
        &self,
        input: NewCart,
        caller: Option<&Principal>,
    ) -> CoreResult<PricedCart> {
        let mut errors = Vec::new();
        let country = input.country.trim().to_ascii_uppercase();
        if !is_country_code(&country) {
            errors.push(FieldError::new(
                "country",
                "invalid_country",
                "ISO 3166-1 alpha-2 code",
            ));
        }
        let currency = input.currency.parse::<Currency>().map_err(|_| {
            errors.push(FieldError::new(
                "currency",
                "unsupported_currency",
                "unsupported currency",
            ));
        });
        let locale = match input.locale.as_deref() {
            Some(l) => validate_locale(l).map_err(|_| {
                errors.push(FieldError::new(
                    "locale",
                    "invalid_locale",
                    "not a BCP 47 locale tag",
                ));
            }),
            None => Ok(self
                .0
                .settings
                .default_locales
                .first()
                .cloned()
                .unwrap_or_else(|| "en".into())),
        };
        let (Ok(currency), Ok(locale), true) = (currency, locale, errors.is_empty()) else {
            return Err(CoreError::validation(errors));
        };
        let now = self.now();
        let cart = Cart {
            id: CartId::new(),
            country,
            currency,
            locale,
            customer_id: caller.map(|p| p.id),
            email: caller.map(|p| p.email.clone()),
            shipping_address: None,
            buyer_identifiers: Default::default(),
            lines: Vec::new(),
            status: CartStatus::Open,
            order_id: None,
            created_at: now,
            updated_at: now,
            expires_at: now + self.0.settings.cart_ttl,
        };
        let mut tx = self.0.store.begin().await?;
        tx.save_cart(&cart).await?;
        self.commit(tx, &[]).await?;
        // A new cart has no lines: nothing to read for its (zero) totals.
        let rules = self.rules_snapshot().await;
        self.price_and_check(&rules, &cart, &[], false, None).await
    }

    /// A priced cart.
    pub async fn cart(&self, id: CartId, caller: Option<&Principal>) -> CoreResult<PricedCart> {
        let mut r = self.0.store.read().await?;
        let cart = r
            .cart(id)
            .await?
            .ok_or(CoreError::NotFound { entity: "cart" })?;
        Self::check_owner(&cart, caller)?;
        self.priced(r, cart).await
    }

    /// A change that needs no catalog data (address, removal). The cart is still
    /// priced before the commit: a cart that cannot be priced after the change (a
    /// price raised since beyond the largest total) refuses it with nothing saved,
    /// rather than saving it and answering an error.
    async fn change_cart<F>(
        &self,
        id: CartId,
        caller: Option<&Principal>,
        change: F,
    ) -> CoreResult<PricedCart>
    where
        F: FnOnce(&mut Cart) -> CoreResult<()> + Send,
    {
        self.change_cart_inner(id, caller, Vec::new(), |cart, _| change(cart))
            .await
    }

    /// A change that checks variants (stock, prices): every variant of the cart plus
    /// `extra` is read once inside the transaction, and the answer is priced from the
    /// same snapshots.
    async fn change_cart_with<F>(
        &self,
        id: CartId,
        caller: Option<&Principal>,
        extra: Vec<VariantId>,
        change: F,
    ) -> CoreResult<PricedCart>
    where
        F: FnOnce(&mut Cart, &[crate::catalog::VariantSnapshot]) -> CoreResult<()> + Send,
    {
        self.change_cart_inner(id, caller, extra, change).await
    }

    async fn change_cart_inner<F>(
        &self,
        id: CartId,
        caller: Option<&Principal>,
        extra: Vec<VariantId>,
        change: F,
    ) -> CoreResult<PricedCart>
    where
        F: FnOnce(&mut Cart, &[crate::catalog::VariantSnapshot]) -> CoreResult<()> + Send,
    {
        let now = self.now();
        // Taken before the transaction: refreshing it may read the store, which must
        // not wait for a second connection while this one is held.
        let rules = self.rules_snapshot().await;
        let mut tx = self.0.store.begin().await?;
        let mut cart = tx
            .cart(id)
            .await?
            .ok_or(CoreError::NotFound { entity: "cart" })?;
        Self::check_owner(&cart, caller)?;
        cart.ensure_open(now)?;
        let mut ids: Vec<VariantId> = cart.lines.iter().map(|l| l.variant_id).collect();
        ids.extend(
            extra
                .iter()
                .filter(|v| !cart.lines.iter().any(|l| l.variant_id == **v)),
        );
        let snaps = tx.variants(&ids).await?;
        change(&mut cart, &snaps)?;
        cart.updated_at = now;
        // Activity extends the cart's life.
        cart.expires_at = now + self.0.settings.cart_ttl;
        // Priced before the commit (no store read: pricing alone, as checkout prices
        // in its transaction): a line the cart cannot be priced with (a total beyond
        // the largest amount) is refused with nothing saved, instead of being saved
        // and leaving a cart that answers every later read with an error. The rules,
        // which may read the buyer's earlier orders, are applied after the commit.
        let day = self.today();
        let priced = self.price_only(&rules, &cart, &snaps, false, day).await?;
        tx.save_cart(&cart).await?;
        self.commit(tx, &[]).await?;
        self.apply_rules(&rules, &cart, &snaps, priced, None, day)
            .await
    }

    /// Adds a variant to a cart (or raises the quantity of its existing line).
    pub async fn add_line(
        &self,
        id: CartId,
        variant_id: VariantId,
        quantity: i64,
        caller: Option<&Principal>,
    ) -> CoreResult<PricedCart> {
        Cart::check_quantity(quantity)?;
        // A variant without a price in the cart currency can still be bought when its
        // base price converts with the operator's rates.
        let (rates, _) = self.rules_snapshot().await.rates_on(self.today());
        let base = self.0.settings.base_currency;
        self.change_cart_with(id, caller, vec![variant_id], move |cart, snaps| {
            let snap = snaps
                .iter()
                .find(|s| {
                    s.variant.id == variant_id
                        && s.product_status == crate::catalog::ProductStatus::Published
                })
                .ok_or_else(|| {
                    CoreError::invalid_field(
                        "variant_id",
                        "unknown_variant",
                        "no such variant for sale",
                    )
                })?;
            let convertible = base
                .and_then(|b| snap.variant.price_in(b))
                .and_then(|p| rates.convert_money(p, cart.currency))
                .is_some();
            if snap.variant.price_in(cart.currency).is_none() && !convertible {
                return Err(CoreError::invalid_field(
                    "variant_id",
                    "no_price",
                    format!("this variant has no price in {}", cart.currency),
                ));
            }
            let existing = cart.lines.iter_mut().find(|l| l.variant_id == variant_id);
            let new_qty = existing.as_ref().map(|l| l.quantity).unwrap_or(0) + quantity;
            Cart::check_quantity(new_qty)?;
            if new_qty > snap.variant.stock {
                return Err(CoreError::OutOfStock {
                    variant_id: variant_id.to_string(),
                    requested: new_qty,
                    available: snap.variant.stock,
                });
            }
            match existing {
                Some(line) => line.quantity = new_qty,
                None => {
                    if cart.lines.len() >= MAX_LINES {
                        return Err(CoreError::invalid(
                            "too_many_lines",
                            format!("a cart holds at most {MAX_LINES} lines"),
                        ));
                    }
                    cart.lines.push(LineItem {
                        id: LineId::new(),
                        variant_id,
                        quantity,
                    });
                }
            }
            Ok(())
        })
        .await
    }

    /// Sets a line's quantity.
    pub async fn update_line(
        &self,
        id: CartId,
        line_id: LineId,
        quantity: i64,
        caller: Option<&Principal>,
    ) -> CoreResult<PricedCart> {
        Cart::check_quantity(quantity)?;
        self.change_cart_with(id, caller, Vec::new(), move |cart, snaps| {
            let line =
                cart.lines
                    .iter_mut()
                    .find(|l| l.id == line_id)
                    .ok_or(CoreError::NotFound {
                        entity: "line item",
                    })?;
            let stock = snaps
                .iter()
                .find(|s| s.variant.id == line.variant_id)
                .map(|s| s.variant.stock)
                .unwrap_or(0);
            if quantity > line.quantity && quantity > stock {
                return Err(CoreError::OutOfStock {
                    variant_id: line.variant_id.to_string(),
                    requested: quantity,
                    available: stock,
                });
            }
            line.quantity = quantity;
            Ok(())
        })
        .await
    }

    /// Removes a line.
    pub async fn remove_line(
        &self,
        id: CartId,
        line_id: LineId,
        caller: Option<&Principal>,
    ) -> CoreResult<PricedCart> {
        self.change_cart(id, caller, move |cart| {
            let before = cart.lines.len();
            cart.lines.retain(|l| l.id != line_id);
            if cart.lines.len() == before {
                return Err(CoreError::NotFound {
                    entity: "line item",
                });
            }
            Ok(())
        })
        .await
    }

    /// Sets e-mail, shipping address or locale.
    pub async fn update_cart(
        &self,
        id: CartId,
        update: CartUpdate,
        caller: Option<&Principal>,
    ) -> CoreResult<PricedCart> {
        let mut errors = Vec::new();
        if let Some(e) = &update.email {
            if !is_email(e.trim()) {
                errors.push(FieldError::new(
                    "email",
                    "invalid_format",
                    "not an e-mail address",
                ));
            }
        }
        // Country codes are read in either case, as for the cart itself.
        let mut update = update;
        if let Some(a) = &mut update.shipping_address {
            a.country = a.country.trim().to_ascii_uppercase();
            a.validate(&mut errors);
        }
        let locale = match update.locale.as_deref() {
            Some(l) => match validate_locale(l) {
                Ok(l) => Some(l),
                Err(_) => {
                    errors.push(FieldError::new(
                        "locale",
                        "invalid_locale",
                        "not a BCP 47 locale tag",
                    ));
                    None
                }
            },
            None => None,
        };
        if !errors.is_empty() {
            return Err(CoreError::validation(errors));
        }
        self.change_cart(id, caller, move |cart| {
            if let Some(ids) = update.buyer_identifiers {
                self.apply_identifiers(cart, ids)?;
            }
            if let Some(e) = update.email {
                cart.email = Some(e.trim().to_string());
            }
            if let Some(mut a) = update.shipping_address {
                a.country = a.country.to_ascii_uppercase();
                if a.country != cart.country {
                    return Err(CoreError::invalid_field(
                        "shipping_address.country",
                        "country_mismatch",
                        format!(
                            "this cart ships to {}; create a cart for {}",
                            cart.country, a.country
                        ),
                    ));
                }
                cart.shipping_address = Some(a);
            }
            if let Some(l) = locale {
                cart.locale = l;
            }
            Ok(())
        })
        .await
    }

    /// Deletes what storage no longer needs: outbox rows sent a week ago, idempotency
    /// keys older than 15 days (a retry after that is a new request), expired refresh
    /// tokens. Returns how many rows went.
    pub async fn prune_storage(&self) -> CoreResult<u64> {
        let now = self.now();
        self.0
            .store
            .prune(
                now - chrono::Duration::days(7),
                now - chrono::Duration::days(15),
                now,
            )
            .await
    }

    /// Deletes expired open carts; returns how many.
    pub async fn purge_expired_carts(&self) -> CoreResult<u64> {
        let mut tx = self.0.store.begin().await?;
        let n = tx.delete_expired_carts(self.now()).await?;
        self.commit(tx, &[]).await?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_identifier_values() {
        let mut ids = std::collections::BTreeMap::new();
        ids.insert("kr_pccc".to_string(), Some("P123456789012".to_string()));
        let update = CartUpdate {
            buyer_identifiers: Some(ids),
            ..Default::default()
        };
        let shown = format!("{update:?}");
        assert!(shown.contains("kr_pccc"), "{shown}");
        assert!(!shown.contains("123456789012"), "{shown}");
    }
}
