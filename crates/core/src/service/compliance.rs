//! Compliance use cases: rule data (read, replace, history), exchange rates, the
//! country view of a product, and the compliance report of a cart.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::Serialize;
use serde_json::json;

use crate::auth::Principal;
use crate::cart::{Cart, PricedCart};
use crate::catalog::{Product, VariantSnapshot};
use crate::compliance::identifiers::mask;
use crate::compliance::registry::{RulesSnapshot, RATES_KEY, RATES_KIND, RULES_KIND};
use crate::compliance::rules::{in_force, StatementWhen};
use crate::compliance::{
    BuyerHistory, CartFacts, ComplianceRegistry, ComplianceReport, CountryRules, ExchangeRates,
    LineFacts, Violation,
};
use crate::engine::Engine;
use crate::error::{CoreError, CoreResult, FieldError};
use crate::events::DomainEvent;
use crate::locale::LocaleChain;
use crate::ports::RuleDocument;
use crate::pricing::PriceContext;

/// A country's rules as stored, with where they come from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CountryRulesView {
    /// Country.
    pub country: String,
    /// Stored version; 0 when the plugin's defaults are in force.
    pub version: i64,
    /// Who stored this version.
    pub updated_by: Option<String>,
    /// When.
    pub updated_at: Option<DateTime<Utc>>,
    /// The rules.
    pub rules: CountryRules,
}

/// The exchange-rate table in force.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExchangeRatesView {
    /// Version; 0 when none was ever stored.
    pub version: i64,
    /// Who stored it.
    pub updated_by: Option<String>,
    /// When.
    pub updated_at: Option<DateTime<Utc>>,
    /// The table.
    pub rates: ExchangeRates,
    /// The version in force today: this one, or an earlier one while this one waits
    /// for its `valid_from` (0: none).
    pub in_force_version: i64,
}

/// A statement the product page must show in a country.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PageStatement {
    /// Stable key (`dshea_disclaimer`).
    pub key: String,
    /// Text in the page's locale.
    pub text: String,
    /// Show emphasised (bold).
    pub emphasis: bool,
}

/// What a country requires on a product's page, and whether it may be sold there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProductCountryView {
    /// Country.
    pub country: String,
    /// May be sold there today.
    pub sellable: bool,
    /// Why not.
    pub violations: Vec<Violation>,
    /// Statements to show, in order.
    pub statements: Vec<PageStatement>,
}

/// Whose earlier orders count, and over which time range (`[from, to)`).
struct HistoryScope {
    /// Identifier kind the buyer is recognized by.
    kind: String,
    /// Its lookup key (keyed hash).
    key: String,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
}

/// What a change of cart identifiers asks: a value sets a kind, `None` removes it.
pub type IdentifierChanges = BTreeMap<String, Option<String>>;

impl Engine {
    /// The compliance registry (plugins, vault, messages).
    pub fn compliance(&self) -> &Arc<ComplianceRegistry> {
        &self.0.compliance
    }

    /// Today, by the engine clock, in UTC: the day rules are evaluated for.
    pub fn today(&self) -> NaiveDate {
        self.now().date_naive()
    }

    pub(crate) async fn rules_snapshot(&self) -> Arc<RulesSnapshot> {
        self.0
            .compliance
            .snapshot(self.0.store.as_ref(), self.today())
            .await
    }

    fn known_country(&self, code: &str) -> CoreResult<()> {
        if self.0.compliance.plugin(code).is_none() {
            return Err(CoreError::NotFound { entity: "country" });
        }
        Ok(())
    }

    /// Countries with a plugin and the version of their rules in force.
    pub async fn countries(&self) -> CoreResult<Vec<(String, i64)>> {
        let snap = self.rules_snapshot().await;
        Ok(self
            .0
            .compliance
            .countries()
            .map(|c| (c.to_string(), snap.rules.get(c).map_or(0, |(_, v)| *v)))
            .collect())
    }

    /// A country's rules in force (operator).
    pub async fn country_rules(&self, code: &str) -> CoreResult<CountryRulesView> {
        self.known_country(code)?;
        let mut r = self.0.store.read().await?;
        let latest = r.document_history(RULES_KIND, code, 1).await?.pop();
        Ok(match latest {
            Some(d) => CountryRulesView {
                country: code.to_string(),
                version: d.version,
                updated_by: d.actor_email,
                updated_at: Some(d.created_at),
                rules: serde_json::from_value(d.doc)
                    .map_err(|e| CoreError::Internal(format!("stored rules unreadable: {e}")))?,
            },
            None => CountryRulesView {
                country: code.to_string(),
                version: 0,
                updated_by: None,
                updated_at: None,
                rules: self
                    .0
                    .compliance
                    .default_rules(code)
                    .map(|r| (*r).clone())
                    .ok_or(CoreError::NotFound { entity: "country" })?,
            },
        })
    }

    /// Earlier versions of a country's rules, newest first (operator).
    pub async fn country_rules_history(
        &self,
        code: &str,
        limit: u32,
    ) -> CoreResult<Vec<RuleDocument>> {
        self.known_country(code)?;
        self.document_history(RULES_KIND, code, limit).await
    }

    /// Replaces a country's rules with a new version (operator). With
    /// `expected_version`, refuses when someone stored another version meanwhile.
    pub async fn put_country_rules(
        &self,
        staff: &Principal,
        code: &str,
        doc: serde_json::Value,
        expected_version: Option<i64>,
    ) -> CoreResult<CountryRulesView> {
        self.known_country(code)?;
        let rules = CountryRules::from_json(&doc, code).map_err(CoreError::validation)?;
        let normalized = serde_json::to_value(&rules)
            .map_err(|e| CoreError::Internal(format!("rules do not serialize: {e}")))?;
        let stored = self
            .store_version(
                staff,
                (RULES_KIND, code),
                normalized,
                expected_version,
                (
                    "country_rules.replace",
                    "country",
                    "compliance.rules_updated",
                ),
                json!({"country": code}),
            )
            .await?;
        Ok(CountryRulesView {
            country: code.to_string(),
            version: stored.version,
            updated_by: stored.actor_email,
            updated_at: Some(stored.created_at),
            rules,
        })
    }

    /// Stores the next version of a rule document with its audit entry and event, in
    /// one transaction, then makes this instance re-read. `expected_version` guards
    /// against overwriting an edit made since the caller read the document.
    async fn store_version(
        &self,
        staff: &Principal,
        (kind, key): (&str, &str),
        doc: serde_json::Value,
        expected_version: Option<i64>,
        (action, target_type, event_type): (&str, &str, &str),
        summary: serde_json::Value,
    ) -> CoreResult<RuleDocument> {
        let now = self.now();
        let mut tx = self.0.store.begin().await?;
        let current = tx
            .document_history(kind, key, 1)
            .await?
            .pop()
            .map_or(0, |d| d.version);
        if expected_version.is_some_and(|v| v != current) {
            return Err(CoreError::conflict(
                "version_conflict",
                format!("{kind} {key} is at version {current}; reload and apply your change again"),
            ));
        }
        let stored = RuleDocument {
            kind: kind.into(),
            key: key.into(),
            version: current + 1,
            doc,
            created_at: now,
            actor_email: Some(staff.email.clone()),
        };
        tx.insert_document(&stored).await?;
        let mut details = summary;
        details["version"] = json!(stored.version);
        details["previous"] = json!(current);
        tx.append_audit(&self.audit(staff, action, target_type, key, details.clone()))
            .await?;
        let event = DomainEvent::new(event_type, "country", key, now, details);
        self.commit(tx, &[event]).await?;
        self.rules_changed().await;
        Ok(stored)
    }

    /// After a rule or rate change (here or, through the event, elsewhere): re-read
    /// them and drop cached listings that were filtered by the old ones.
    pub async fn rules_changed(&self) {
        self.0.compliance.invalidate();
        self.invalidate_catalog_cache_everywhere().await;
    }

    /// The newest stored exchange-rate table, which `If-Match` refers to, and which
    /// version is in force today (operator).
    pub async fn exchange_rates(&self) -> CoreResult<ExchangeRatesView> {
        let latest = self
            .0
            .store
            .read()
            .await?
            .document_history(RATES_KIND, RATES_KEY, 1)
            .await?
            .pop();
        let in_force_version = self.rules_snapshot().await.rates_on(self.today()).1;
        Ok(match latest {
            Some(d) => ExchangeRatesView {
                version: d.version,
                updated_by: d.actor_email,
                updated_at: Some(d.created_at),
                rates: serde_json::from_value(d.doc)
                    .map_err(|e| CoreError::Internal(format!("stored rates unreadable: {e}")))?,
                in_force_version,
            },
            None => ExchangeRatesView {
                version: 0,
                updated_by: None,
                updated_at: None,
                rates: ExchangeRates::default(),
                in_force_version,
            },
        })
    }

    /// Stored exchange-rate tables, newest version first (operator): which rates were
    /// in force when, for customs declarations and disputes.
    pub async fn exchange_rates_history(&self, limit: u32) -> CoreResult<Vec<RuleDocument>> {
        self.document_history(RATES_KIND, RATES_KEY, limit).await
    }

    /// Up to `limit` (1-100) stored versions of a document, newest first.
    async fn document_history(
        &self,
        kind: &str,
        key: &str,
        limit: u32,
    ) -> CoreResult<Vec<RuleDocument>> {
        if !(1..=100).contains(&limit) {
            return Err(CoreError::invalid_field(
                "limit",
                "out_of_range",
                "between 1 and 100",
            ));
        }
        self.0
            .store
            .read()
            .await?
            .document_history(kind, key, limit)
            .await
    }

    /// Stores a new exchange-rate table (operator), in force from its `valid_from`
    /// (today when absent, or when it is the past day of the newest stored table, as a
    /// table read and sent back has; never another past day, since orders already
    /// placed keep the rates they were priced with; at most 92 days ahead).
    pub async fn put_exchange_rates(
        &self,
        staff: &Principal,
        mut rates: ExchangeRates,
        expected_version: Option<i64>,
    ) -> CoreResult<ExchangeRatesView> {
        let today = self.today();
        let mut errors = rates.validate();
        let latest =
            today + chrono::Duration::days(crate::compliance::registry::RATE_MAX_DAYS_AHEAD);
        // A table read with GET and sent back edited carries the stored table's day,
        // which may have passed since: that day means "as before, from now on". Any
        // other past day is refused (orders already placed keep their rates).
        let stored_day = match rates.valid_from {
            Some(day) if day < today => self.exchange_rates().await?.rates.valid_from,
            _ => None,
        };
        match rates.valid_from {
            Some(day) if day < today && stored_day == Some(day) => rates.valid_from = Some(today),
            Some(day) if day < today || day > latest => errors.push(FieldError::new(
                "valid_from",
                "out_of_range",
                format!("from today ({today}) to {latest}, or the stored table's day"),
            )),
            Some(_) => {}
            None => rates.valid_from = Some(today),
        }
        if !errors.is_empty() {
            return Err(CoreError::validation(errors));
        }
        let doc = serde_json::to_value(&rates)
            .map_err(|e| CoreError::Internal(format!("rates do not serialize: {e}")))?;
        let stored = self
            .store_version(
                staff,
                (RATES_KIND, RATES_KEY),
                doc,
                expected_version,
                (
                    "exchange_rates.replace",
                    "exchange_rates",
                    "compliance.rates_updated",
                ),
                json!({"base": rates.base, "valid_from": rates.valid_from}),
            )
            .await?;
        let in_force_version = self.rules_snapshot().await.rates_on(today).1;
        Ok(ExchangeRatesView {
            version: stored.version,
            updated_by: stored.actor_email,
            updated_at: Some(stored.created_at),
            rates,
            in_force_version,
        })
    }

    /// Whether and how a product may be shown in `country` today, with the statements
    /// its page must carry there, in the chain's first locale that has them.
    pub async fn product_country_view(
        &self,
        product: &Product,
        country: &str,
        chain: &LocaleChain,
    ) -> CoreResult<ProductCountryView> {
        let country = country.trim().to_ascii_uppercase();
        if !crate::cart::is_country_code(&country) {
            return Err(CoreError::invalid_field(
                "country",
                "invalid_country",
                "ISO 3166-1 alpha-2 code",
            ));
        }
        let snap = self.rules_snapshot().await;
        let day = self.today();
        let reg = &self.0.compliance;
        let mut violations = reg.listing(&snap, &country, &product.facts, day);
        let locales: Vec<&str> = chain.0.iter().map(String::as_str).collect();
        reg.localize(&mut violations, &locales, &country);
        let mut statements = Vec::new();
        if let Some(rules) = snap.rules(&country) {
            let data = product.facts.country(&country);
            // The claims of the page's language decide the wording (the US disclaimer
            // differs for one claim and several): the first locale of the chain that
            // has claims, as the page shows them.
            let claims = locales
                .iter()
                .find_map(|l| product.facts.claims.get(*l))
                .or_else(|| product.facts.claims.values().next())
                .map_or(0, Vec::len);
            let halal = data.and_then(|d| d.halal.as_ref());
            for s in in_force(&rules.label_statements, day) {
                let applies = match s.when {
                    StatementWhen::Always => true,
                    StatementWhen::OneClaim => claims == 1,
                    StatementWhen::SeveralClaims => claims > 1,
                    // An expired certificate certifies nothing: the page must not say
                    // halal (the listing check already keeps the product off sale).
                    StatementWhen::Halal => {
                        matches!(halal, Some(Some(c)) if c.expires_on >= day)
                    }
                    StatementWhen::NonHalal => matches!(halal, Some(None)),
                };
                if !applies {
                    continue;
                }
                let certificate = match halal {
                    Some(Some(c)) => c.certificate_number.as_str(),
                    _ => "",
                };
                let registration = data
                    .and_then(|d| d.registration.as_ref())
                    .map_or("", |r| r.number.as_str());
                statements.push(PageStatement {
                    key: s.key.clone(),
                    text: s
                        .text
                        .text(chain)
                        .replace("{certificate}", certificate)
                        .replace("{registration}", registration),
                    emphasis: s.emphasis,
                });
            }
            if let Some(d) = data {
                let own = locales
                    .iter()
                    .find_map(|l| d.label_statements.get(*l))
                    .or_else(|| d.label_statements.values().next());
                for (i, text) in own.into_iter().flatten().enumerate() {
                    statements.push(PageStatement {
                        key: format!("product_statement_{i}"),
                        text: text.clone(),
                        emphasis: false,
                    });
                }
            }
        }
        Ok(ProductCountryView {
            country,
            sellable: violations.is_empty(),
            violations,
            statements,
        })
    }

    /// Validates and seals identifier changes into a cart (called inside the cart
    /// change, so a refused identifier changes nothing).
    pub(crate) fn apply_identifiers(
        &self,
        cart: &mut Cart,
        changes: IdentifierChanges,
    ) -> CoreResult<()> {
        let day = self.today();
        let reg = &self.0.compliance;
        let mut errors = Vec::new();
        let mut sealed = Vec::new();
        for (kind, value) in changes {
            let field = format!("buyer_identifiers.{kind}");
            match value {
                None => {
                    cart.buyer_identifiers.remove(&kind);
                }
                Some(v) => match reg.validate_identifier(&cart.country, &kind, &v, day) {
                    Ok(normalized) => {
                        sealed.push((kind.clone(), reg.vault().seal(&kind, &normalized)?))
                    }
                    // The reason never echoes the value: it may be logged.
                    Err(reason) => errors.push(FieldError::new(field, "buyer_id_invalid", reason)),
                },
            }
        }
        if !errors.is_empty() {
            return Err(CoreError::validation(errors));
        }
        for (k, s) in sealed {
            cart.buyer_identifiers.insert(k, s);
        }
        Ok(())
    }

    /// The cart's identifiers, masked for display.
    pub fn masked_identifiers(&self, cart: &Cart) -> BTreeMap<String, String> {
        let vault = self.0.compliance.vault();
        cart.buyer_identifiers
            .iter()
            .map(|(k, s)| {
                (
                    k.clone(),
                    vault
                        .open(k, s)
                        .map(|v| mask(&v))
                        .unwrap_or_else(|_| "?".into()),
                )
            })
            .collect()
    }

    /// Prices a cart (lines, tax, duties, shipping) without the destination's other
    /// rules: no buyer history is read, so a transaction may call it without asking the
    /// pool for a second connection.
    pub(crate) async fn price_only(
        &self,
        snap: &RulesSnapshot,
        cart: &Cart,
        snapshots: &[VariantSnapshot],
        strict: bool,
        day: NaiveDate,
    ) -> CoreResult<PricedCart> {
        let chain = self.cart_chain(cart);
        let reg = &self.0.compliance;
        let plugin = reg.plugin(&cart.country);
        let rules = snap.rules(&cart.country);
        let (rates, _) = snap.rates_on(day);
        let ctx = PriceContext {
            rates: &rates,
            base_currency: self.0.settings.base_currency,
            tax: plugin.zip(rules).map(|(p, r)| (p.tax.as_ref(), r.as_ref())),
            origin: reg.origin(),
            day,
        };
        self.0
            .pricing
            .price(cart, snapshots, &chain, strict, &ctx)
            .await
    }

    /// Prices a cart and applies the destination's rules: checkout passes the buyer's
    /// history read under lock in the order's transaction; the cart view (`history`
    /// none) reads it without a lock, so the buyer sees the verdict checkout will give.
    pub(crate) async fn price_and_check(
        &self,
        snap: &RulesSnapshot,
        cart: &Cart,
        snapshots: &[VariantSnapshot],
        strict: bool,
        history: Option<&BuyerHistory>,
    ) -> CoreResult<PricedCart> {
        let day = self.today();
        let priced = self.price_only(snap, cart, snapshots, strict, day).await?;
        self.apply_rules(snap, cart, snapshots, priced, history, day)
            .await
    }

    /// The destination's rules applied to a cart priced by [`Self::price_only`]: its
    /// compliance report filled in.
    pub(crate) async fn apply_rules(
        &self,
        snap: &RulesSnapshot,
        cart: &Cart,
        snapshots: &[VariantSnapshot],
        mut priced: PricedCart,
        history: Option<&BuyerHistory>,
        day: NaiveDate,
    ) -> CoreResult<PricedCart> {
        let chain = self.cart_chain(cart);
        let reg = &self.0.compliance;
        let plugin = reg.plugin(&cart.country);
        let rules = snap.rules(&cart.country);
        if !reg.enabled() {
            return Ok(priced);
        }
        let mut violations = match (plugin, rules) {
            (Some(p), Some(rules)) => {
                let by_id: BTreeMap<_, _> = snapshots.iter().map(|s| (s.variant.id, s)).collect();
                let lines: Vec<LineFacts<'_>> = priced
                    .lines
                    .iter()
                    .filter_map(|l| {
                        by_id.get(&l.variant_id).map(|s| LineFacts {
                            line_id: Some(l.id),
                            product_id: l.product_id,
                            product: &s.facts,
                            quantity: l.quantity,
                            line_total: l.line_total,
                        })
                    })
                    .collect();
                let ids = reg.vault().open_all(&cart.buyer_identifiers)?;
                let viewed = match history {
                    Some(_) => None,
                    None => self.buyer_history_for_view(rules, cart).await?,
                };
                let history = history.or(viewed.as_ref());
                let facts = CartFacts {
                    country: &cart.country,
                    origin: reg.origin(),
                    day,
                    lines: &lines,
                    subtotal: priced.totals.subtotal,
                    identifiers: &ids,
                    rates: &snap.rates_on(day).0,
                    history,
                };
                if history.is_some() {
                    p.compliance.check_checkout(rules, &facts)
                } else {
                    p.compliance.check_cart(rules, &facts)
                }
            }
            _ => vec![Violation::new(
                crate::compliance::ViolationCode::CountryNotServed,
            )],
        };
        if let Some(c) = priced.rate_missing {
            // Checkout will refuse; the cart says so first.
            violations.push(
                Violation::new(crate::compliance::ViolationCode::ExchangeRateMissing)
                    .arg("currency", c.code()),
            );
        }
        let locales: Vec<&str> = chain.0.iter().map(String::as_str).collect();
        reg.localize(&mut violations, &locales, &cart.country);
        priced.compliance = ComplianceReport::of(violations);
        Ok(priced)
    }

    /// Which of the cart's identifiers counts the buyer's earlier imports, its lookup
    /// key, and the time range the destination's cumulative limits look back over.
    /// `None` for domestic carts, destinations without such limits, or carts without
    /// the identifier (the identifier rules report that).
    fn history_scope(&self, rules: &CountryRules, cart: &Cart) -> CoreResult<Option<HistoryScope>> {
        let reg = &self.0.compliance;
        if cart.country == reg.origin() {
            return Ok(None);
        }
        let day = self.today();
        let imp = &rules.import;
        // A yearly limit names its identifier; otherwise the recipient is whoever the
        // destination's identifier rule accepts, in its order of preference.
        let kind = in_force(&imp.annual_limits, day)
            .map(|a| a.identifier.clone())
            .chain(in_force(&imp.buyer_identifiers, day).flat_map(|r| r.any_of.clone()))
            .find(|k| cart.buyer_identifiers.contains_key(k));
        let Some(kind) = kind else {
            return Ok(None);
        };
        let window = in_force(&imp.quantity_limits, day)
            .filter_map(|q| q.window_days)
            .chain(in_force(&imp.value_limits, day).filter_map(|v| v.window_days))
            .max();
        let yearly = in_force(&imp.annual_limits, day).next().is_some();
        let midnight = |d: NaiveDate| d.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
        let mut from = None;
        if yearly {
            from = NaiveDate::from_ymd_opt(day.year(), 1, 1).and_then(midnight);
        }
        if let Some(w) = window {
            let start = midnight(day - chrono::Duration::days(i64::from(w.max(1)) - 1));
            from = match (from, start) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        let Some(to) = midnight(day + chrono::Duration::days(1)) else {
            return Ok(None);
        };
        // No cumulative limit: an empty range, but the key is still recorded on the
        // order, so a limit added later counts orders placed from now on.
        let from = from.unwrap_or(to);
        let value = reg.vault().open(&kind, &cart.buyer_identifiers[&kind])?;
        let key = reg.vault().lookup_key(&kind, &value);
        Ok(Some(HistoryScope {
            kind,
            key,
            from,
            to,
        }))
    }

    /// The buyer's earlier imports that the destination's cumulative limits add up,
    /// read in the order's transaction under a lock on the buyer, so two checkouts of
    /// one buyer cannot both pass. Returns the history and the key to record on the
    /// order.
    pub(crate) async fn buyer_history(
        &self,
        snap: &RulesSnapshot,
        tx: &mut dyn crate::ports::Tx,
        cart: &Cart,
    ) -> CoreResult<(BuyerHistory, Option<String>)> {
        let Some(rules) = snap.rules(&cart.country) else {
            return Ok((BuyerHistory::default(), None));
        };
        let Some(HistoryScope {
            kind,
            key,
            from,
            to,
        }) = self.history_scope(rules, cart)?
        else {
            return Ok((BuyerHistory::default(), None));
        };
        if from >= to {
            return Ok((BuyerHistory::default(), Some(key)));
        }
        tx.lock_buyer(&key).await?;
        let orders = tx.buyer_orders(&key, from, to).await?;
        Ok((
            BuyerHistory {
                identifier: kind,
                orders,
            },
            Some(key),
        ))
    }

    /// The same history for showing a cart (no lock: checkout decides).
    async fn buyer_history_for_view(
        &self,
        rules: &CountryRules,
        cart: &Cart,
    ) -> CoreResult<Option<BuyerHistory>> {
        let Some(HistoryScope {
            kind,
            key,
            from,
            to,
        }) = self.history_scope(rules, cart)?
        else {
            return Ok(None);
        };
        if from >= to {
            return Ok(None);
        }
        let orders = self
            .0
            .store
            .read()
            .await?
            .buyer_orders(&key, from, to)
            .await?;
        Ok(Some(BuyerHistory {
            identifier: kind,
            orders,
        }))
    }

    /// The compliance data of products read for a listing, filtered to those sellable
    /// in `country` today.
    pub(crate) fn sellable_in(
        &self,
        snap: &RulesSnapshot,
        country: &str,
        products: Vec<Product>,
    ) -> Vec<Product> {
        let day = self.today();
        products
            .into_iter()
            .filter(|p| {
                self.0
                    .compliance
                    .listing(snap, country, &p.facts, day)
                    .is_empty()
            })
            .collect()
    }

    /// Checks a product's per-country data with the plugins (operator writes); on an
    /// update (`before`), only the countries whose data the update changes.
    pub(crate) fn check_product_facts(
        &self,
        snap: &RulesSnapshot,
        product: &Product,
        before: Option<&Product>,
    ) -> CoreResult<()> {
        let mut errors = Vec::new();
        self.0
            .compliance
            .check_product(snap, &product.facts, self.today(), &mut errors);
        if let Some(before) = before {
            // A country's data the change leaves alone is not judged again: when rules
            // change (a new registration format), existing products must stay editable
            // (unpublished, retitled); the listing check keeps them off sale there until
            // their data is brought up to date.
            let untouched = |field: &str| {
                field
                    .strip_prefix("countries.")
                    .and_then(|rest| rest.split('.').next())
                    .is_some_and(|code| {
                        before.facts.countries.get(code) == product.facts.countries.get(code)
                    })
            };
            errors.retain(|e| !untouched(&e.field));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(CoreError::validation(errors))
        }
    }
}
