//! The registered country plugins and the rule data in force.
//!
//! Plugins ship default rules; operators replace them through the admin API, which
//! stores a new version of the `country_rules` document. Every instance re-reads the
//! latest versions at most `refresh` after a change elsewhere (and at once after a
//! change it made itself), so a rule edit needs no redeploy and no restart.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use fluent_bundle::FluentArgs;

use super::fx::ExchangeRates;
use super::identifiers::IdentifierVault;
use super::product::ProductFacts;
use super::rules::CountryRules;
use super::{CountryCompliance, TaxPolicy, Violation};
use crate::error::{CoreError, CoreResult, FieldError};
use crate::i18n::Catalog;
use crate::ports::Store;

/// Document kind of country rules.
pub const RULES_KIND: &str = "country_rules";
/// Document kind of the exchange-rate table.
pub const RATES_KIND: &str = "exchange_rates";
/// Key of the one exchange-rate table.
pub const RATES_KEY: &str = "default";

pub(crate) const MESSAGES: &[(&str, &str)] = &[
    ("en", include_str!("../../locales/en/compliance.ftl")),
    ("ko", include_str!("../../locales/ko/compliance.ftl")),
    ("id", include_str!("../../locales/id/compliance.ftl")),
];

/// A registered plugin.
#[derive(Debug, Clone)]
pub struct Plugin {
    /// Its compliance rules.
    pub compliance: Arc<dyn CountryCompliance>,
    /// Its tax policy.
    pub tax: Arc<dyn TaxPolicy>,
}

/// Rules and rates in force, as one immutable snapshot (cheap to clone).
#[derive(Debug, Clone, Default)]
pub struct RulesSnapshot {
    /// Effective rules per country, with their stored version (0: plugin default).
    pub rules: HashMap<String, (Arc<CountryRules>, i64)>,
    /// The stored exchange-rate tables that may be in force now or later.
    pub rates: RateTables,
}

impl RulesSnapshot {
    /// A country's rules.
    pub fn rules(&self, country: &str) -> Option<&Arc<CountryRules>> {
        self.rules.get(country).map(|(r, _)| r)
    }

    /// The exchange-rate table in force on `day`, with its version (0: none).
    pub fn rates_on(&self, day: NaiveDate) -> (Arc<ExchangeRates>, i64) {
        self.rates.on(day)
    }
}

/// One stored exchange-rate table and the first day it is in force.
#[derive(Debug, Clone)]
pub struct DatedRates {
    /// The table.
    pub table: Arc<ExchangeRates>,
    /// Its stored version.
    pub version: i64,
    /// First day in force: its `valid_from`, or the day it was stored.
    pub from: NaiveDate,
}

/// The exchange-rate tables that can be in force today or later: the one in force
/// and those scheduled ahead (older ones can never be in force again, since a new
/// table never starts before the day it is stored).
#[derive(Debug, Clone, Default)]
pub struct RateTables(pub Vec<DatedRates>);

/// How far ahead a table may be scheduled (`valid_from` at most this many days after
/// the day it is stored): what bounds how far back the registry must read.
pub const RATE_MAX_DAYS_AHEAD: i64 = 92;

impl RateTables {
    /// The table in force on `day`: of the tables whose first day has come, the one
    /// that started last, the newest version on a tie (a correction stored the same
    /// day). A table scheduled for a later day stays out until then; before any table
    /// there are no rates (prices only in their own currencies).
    pub fn on(&self, day: NaiveDate) -> (Arc<ExchangeRates>, i64) {
        self.in_force(day)
            .map(|t| (t.table.clone(), t.version))
            .unwrap_or_else(|| (Arc::new(ExchangeRates::default()), 0))
    }

    fn in_force(&self, day: NaiveDate) -> Option<&DatedRates> {
        self.0
            .iter()
            .filter(|t| t.from <= day)
            .max_by_key(|t| (t.from, t.version))
    }

    /// Reads the stored tables newest first, in growing pages, until none of the
    /// older ones could still be in force on `today` or later: a table stored before
    /// `from - RATE_MAX_DAYS_AHEAD` of the one in force today starts before it. Keeps
    /// only the table in force and the later ones.
    async fn load(r: &mut dyn crate::ports::Reads, today: NaiveDate) -> CoreResult<Self> {
        let mut limit = 20u32;
        loop {
            let docs = r.document_history(RATES_KIND, RATES_KEY, limit).await?;
            let complete = docs.len() < limit as usize;
            let oldest_stored = docs.last().map(|d| d.created_at.date_naive());
            let mut tables = Vec::new();
            for d in docs {
                match serde_json::from_value::<ExchangeRates>(d.doc) {
                    Ok(x) => tables.push(DatedRates {
                        from: x.valid_from.unwrap_or(d.created_at.date_naive()),
                        table: Arc::new(x),
                        version: d.version,
                    }),
                    Err(e) => tracing::error!(version = d.version, error = %e,
                        "stored exchange rates are unreadable; leaving that version out"),
                }
            }
            let all = RateTables(tables);
            let current = all.in_force(today).map(|t| (t.from, t.version));
            let settled = match (current, oldest_stored) {
                (Some((from, _)), Some(oldest)) => {
                    oldest < from - chrono::Duration::days(RATE_MAX_DAYS_AHEAD)
                }
                _ => false,
            };
            if complete || settled {
                let kept = all
                    .0
                    .into_iter()
                    .filter(|t| match current {
                        Some(c) => (t.from, t.version) >= c,
                        None => true,
                    })
                    .collect();
                return Ok(RateTables(kept));
            }
            limit = limit.saturating_mul(4);
        }
    }
}

struct State {
    snapshot: Arc<RulesSnapshot>,
    loaded_at: Option<Instant>,
}

/// The country plugins of an engine, their rule data, the exchange rates, the
/// identifier vault and the violation messages.
pub struct ComplianceRegistry {
    plugins: BTreeMap<String, Plugin>,
    defaults: HashMap<String, (Arc<CountryRules>, i64)>,
    origin: String,
    vault: IdentifierVault,
    messages: Catalog,
    refresh: Duration,
    state: RwLock<State>,
    reload: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for ComplianceRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComplianceRegistry")
            .field("countries", &self.plugins.keys().collect::<Vec<_>>())
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl ComplianceRegistry {
    /// A registry of `plugins` for a store shipping from `origin`; `data_key` seals
    /// buyer identifiers.
    pub fn new(
        plugins: Vec<Plugin>,
        origin: &str,
        data_key: &[u8],
        refresh: Duration,
    ) -> CoreResult<Self> {
        let mut map = BTreeMap::new();
        let mut rules = HashMap::new();
        for p in plugins {
            let code = p.compliance.country().to_string();
            let defaults = p.compliance.default_rules();
            let errors = defaults.validate(&code);
            if !errors.is_empty() {
                return Err(CoreError::Internal(format!(
                    "plugin {code} ships invalid rules: {errors:?}"
                )));
            }
            rules.insert(code.clone(), (Arc::new(defaults), 0));
            if map.insert(code.clone(), p).is_some() {
                return Err(CoreError::Internal(format!("two plugins for {code}")));
            }
        }
        Ok(ComplianceRegistry {
            plugins: map,
            // Parsed and checked once: every refresh starts from these.
            defaults: rules.clone(),
            origin: origin.to_string(),
            vault: IdentifierVault::new(data_key),
            messages: Catalog::load("compliance", MESSAGES)?,
            refresh,
            state: RwLock::new(State {
                snapshot: Arc::new(RulesSnapshot {
                    rules,
                    rates: RateTables::default(),
                }),
                loaded_at: None,
            }),
            reload: tokio::sync::Mutex::new(()),
        })
    }

    /// With no plugin registered, compliance is off: every country is served, tax is
    /// zero (an embedder that sells one product line at home may want exactly that).
    pub fn enabled(&self) -> bool {
        !self.plugins.is_empty()
    }

    /// Origin country of shipments.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The rules a plugin ships (version 0), parsed once at start.
    pub fn default_rules(&self, country: &str) -> Option<Arc<CountryRules>> {
        self.defaults.get(country).map(|(r, _)| r.clone())
    }

    /// The plugin of a country.
    pub fn plugin(&self, country: &str) -> Option<&Plugin> {
        self.plugins.get(country)
    }

    /// Countries with a plugin.
    pub fn countries(&self) -> impl Iterator<Item = &str> {
        self.plugins.keys().map(String::as_str)
    }

    /// The identifier vault.
    pub fn vault(&self) -> &IdentifierVault {
        &self.vault
    }

    /// The current snapshot, re-read from the store when older than the refresh
    /// period. A store failure keeps the last good snapshot (rules change rarely; a
    /// request that needs the database fails on its own).
    pub async fn snapshot(&self, store: &dyn Store, today: NaiveDate) -> Arc<RulesSnapshot> {
        if let Some(s) = self.fresh() {
            return s;
        }
        let _guard = self.reload.lock().await;
        if let Some(s) = self.fresh() {
            return s;
        }
        match self.load(store, today).await {
            Ok(s) => {
                let s = Arc::new(s);
                let mut st = self.state.write().unwrap_or_else(|e| e.into_inner());
                st.snapshot = s.clone();
                st.loaded_at = Some(Instant::now());
                s
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not re-read country rules; keeping the last ones");
                self.state
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .snapshot
                    .clone()
            }
        }
    }

    fn fresh(&self) -> Option<Arc<RulesSnapshot>> {
        let st = self.state.read().unwrap_or_else(|e| e.into_inner());
        st.loaded_at
            .filter(|t| t.elapsed() < self.refresh)
            .map(|_| st.snapshot.clone())
    }

    /// Forces a re-read on next use (after this instance stored a new version).
    pub fn invalidate(&self) {
        self.state
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .loaded_at = None;
    }

    async fn load(&self, store: &dyn Store, today: NaiveDate) -> CoreResult<RulesSnapshot> {
        let mut r = store.read().await?;
        let docs = r.latest_documents(RULES_KIND).await?;
        let mut rules = self.defaults.clone();
        for d in docs {
            if !self.plugins.contains_key(&d.key) {
                continue;
            }
            match serde_json::from_value::<CountryRules>(d.doc) {
                Ok(parsed) => {
                    rules.insert(d.key, (Arc::new(parsed), d.version));
                }
                // Stored data was validated when saved; one unreadable now means the
                // schema changed under it. Defaults are safer than nothing.
                Err(e) => tracing::error!(country = %d.key, version = d.version, error = %e,
                    "stored country rules are unreadable; using the plugin's defaults"),
            }
        }
        let rates = RateTables::load(&mut *r, today).await?;
        Ok(RulesSnapshot { rules, rates })
    }

    /// Validates an identifier for a cart into `country` with that country's plugin;
    /// returns the normalized value. Kinds another country defines are refused: a cart
    /// keeps only the personal identifiers its destination's customs ask for.
    pub fn validate_identifier(
        &self,
        country: &str,
        kind: &str,
        value: &str,
        day: NaiveDate,
    ) -> Result<String, String> {
        let plugin = self
            .plugins
            .get(country)
            .filter(|p| p.compliance.identifier_kinds().contains(&kind))
            .ok_or_else(|| format!("`{kind}` is not an identifier that {country} asks for"))?;
        if value.chars().count() > 64 {
            return Err("too long".into());
        }
        plugin
            .compliance
            .validate_identifier(kind, value.trim(), day)
    }

    /// Checks a product's per-country data with each country's plugin, as an operator
    /// saves it (the common shape was checked when the input was parsed).
    pub fn check_product(
        &self,
        snapshot: &RulesSnapshot,
        facts: &ProductFacts,
        day: NaiveDate,
        errors: &mut Vec<FieldError>,
    ) {
        for (code, data) in &facts.countries {
            if let (Some(p), Some(rules)) = (self.plugins.get(code), snapshot.rules(code)) {
                p.compliance.check_product_data(
                    rules,
                    data,
                    day,
                    &format!("countries.{code}"),
                    errors,
                );
            }
        }
    }

    /// Moment 1 for one product: empty when sellable in `country` on `day`.
    pub fn listing(
        &self,
        snapshot: &RulesSnapshot,
        country: &str,
        product: &ProductFacts,
        day: NaiveDate,
    ) -> Vec<Violation> {
        if !self.enabled() {
            return Vec::new();
        }
        match (self.plugins.get(country), snapshot.rules(country)) {
            (Some(p), Some(rules)) => p.compliance.listing(rules, product, day),
            _ => vec![Violation::new(super::ViolationCode::CountryNotServed)],
        }
    }

    /// Fills each violation's message in the first locale of `chain` that has it.
    pub fn localize(&self, violations: &mut [Violation], chain: &[&str], country: &str) {
        for v in violations {
            let mut args = FluentArgs::new();
            args.set("country", country.to_string());
            for (k, val) in &v.args {
                args.set(*k, val.clone());
            }
            let id = format!("violation-{}", v.code.as_str());
            v.message = match self.messages.render(chain, &id, None, &args) {
                Ok((text, _)) => text,
                Err(e) => {
                    tracing::error!(error = %e, "violation message failed to render");
                    v.code.as_str().to_string()
                }
            };
        }
    }

    /// A message of the compliance catalog (labels such as `landed-cost-label`).
    pub fn message(&self, chain: &[&str], id: &str) -> String {
        self.messages
            .render(chain, id, None, &FluentArgs::new())
            .map(|(t, _)| t)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(version: i64, from: &str, usd: &str) -> DatedRates {
        let doc = serde_json::json!({"base": "KRW", "rates": {"USD": usd}});
        DatedRates {
            table: Arc::new(serde_json::from_value(doc).unwrap()),
            version,
            from: from.parse().unwrap(),
        }
    }

    /// The table that started last is in force; a same-day correction (a newer version
    /// with the same day) replaces it; one scheduled ahead waits, even when a
    /// correction of the current week was stored after it.
    #[test]
    fn the_table_that_started_last_is_in_force() {
        let tables = RateTables(vec![
            table(4, "2026-12-07", "0.00074"), // correction of this week, stored after 3
            table(3, "2026-12-09", "0.00080"), // next week, published ahead
            table(2, "2026-12-02", "0.00073"), // same-day correction of 1
            table(1, "2026-12-02", "0.00072"),
        ]);
        let on = |day: &str| tables.on(day.parse().unwrap()).1;
        assert_eq!(on("2026-12-01"), 0, "no table before the first");
        assert_eq!(on("2026-12-02"), 2);
        assert_eq!(on("2026-12-07"), 4);
        assert_eq!(on("2026-12-08"), 4);
        assert_eq!(on("2026-12-09"), 3);
        assert_eq!(on("2027-01-01"), 3);
        assert!(tables.on("2026-12-01".parse().unwrap()).0.rates.is_empty());
    }
}
