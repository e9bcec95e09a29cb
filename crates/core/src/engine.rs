//! The engine: the use cases, wired to their ports.
//!
//! Build one with [`EngineBuilder`]; clone it freely (it is an `Arc` inside). Use cases
//! live in the `service` modules as `impl Engine` blocks grouped by aggregate.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::auth::{InMemoryRateLimiter, RateLimiter, TokenService};
use crate::cache::{PageCache, SharedCache};
use crate::catalog::{Product, ProductPage};
use crate::clock::{Clock, SystemClock};
use crate::compliance::registry::{ComplianceRegistry, Plugin};
use crate::compliance::{CountryCompliance, TaxPolicy};
use crate::error::{CoreError, CoreResult};
use crate::events::{DomainEvent, EventPublisher, OutboxRelay};
use crate::payment::PaymentRegistry;
use crate::ports::{AuditEntry, Store, Tx};
use crate::pricing::Pricing;

/// Shared-cache namespace of product list pages.
pub(crate) const PAGES_NS: &str = "catalog-pages";
/// Shared-cache namespace of product details.
pub(crate) const PRODUCTS_NS: &str = "catalog-products";

/// Tunables of the use cases.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// How long an untouched cart lives.
    pub cart_ttl: chrono::Duration,
    /// How long a pending payment may take before the order is canceled and its stock
    /// released (providers may give their own, shorter expiry).
    pub payment_ttl: chrono::Duration,
    /// Locales tried after the caller's, in order.
    pub default_locales: Vec<String>,
    /// `inventory.low` fires when stock falls to or below this.
    pub low_stock_threshold: i64,
    /// Refresh-token lifetime.
    pub refresh_ttl: chrono::Duration,
    /// Failed logins allowed per account and per client address in `login_window`.
    pub login_limit: u32,
    /// Rate-limit window.
    pub login_window: Duration,
    /// How long catalog pages may be served from the cache. Admin writes invalidate at
    /// once; stock figures on listings may lag by at most this much (checkout always
    /// checks stock in the database).
    pub catalog_cache_ttl: Duration,
    /// Prefix of order numbers.
    pub order_prefix: String,
    /// How long catalog pages live in the shared cache (Redis), when there is one.
    /// Catalog writes invalidate it at once, in every instance; stock figures on
    /// listings may lag by at most this much.
    pub shared_cache_ttl: Duration,
    /// Country the goods ship from: import rules apply to every other destination.
    pub origin_country: String,
    /// Currency of the prices that are converted for carts in a currency a variant has
    /// no price in; none: no conversion (such variants cannot be bought in it).
    pub base_currency: Option<crate::money::Currency>,
    /// How soon a rule or exchange-rate change made on another instance is seen here.
    pub rules_refresh: Duration,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            cart_ttl: chrono::Duration::days(7),
            payment_ttl: chrono::Duration::minutes(60),
            default_locales: vec!["en".into(), "ko".into()],
            low_stock_threshold: 5,
            refresh_ttl: chrono::Duration::days(30),
            login_limit: 10,
            login_window: Duration::from_secs(15 * 60),
            catalog_cache_ttl: Duration::from_secs(1),
            order_prefix: "JT".into(),
            shared_cache_ttl: Duration::from_secs(10),
            origin_country: "KR".into(),
            base_currency: Some(crate::money::Currency::KRW),
            rules_refresh: Duration::from_secs(5),
        }
    }
}

pub(crate) struct Inner {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) payments: PaymentRegistry,
    pub(crate) pricing: Pricing,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) tokens: TokenService,
    /// Key for derived secrets (guest order tokens); the JWT secret.
    pub(crate) secret: Vec<u8>,
    pub(crate) limiter: Arc<dyn RateLimiter>,
    pub(crate) relay_wake: Arc<Notify>,
    pub(crate) settings: EngineSettings,
    pub(crate) product_pages: PageCache<ProductPage>,
    pub(crate) product_details: PageCache<Product>,
    pub(crate) shared_cache: Option<Arc<dyn SharedCache>>,
    pub(crate) compliance: Arc<ComplianceRegistry>,
    pub(crate) error_messages: Arc<crate::i18n::Catalog>,
}

/// The engine. Cheap to clone.
#[derive(Clone)]
pub struct Engine(pub(crate) Arc<Inner>);

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("store", &self.0.store)
            .field("payments", &self.0.payments.names())
            .field("settings", &self.0.settings)
            .finish_non_exhaustive()
    }
}

/// Builds an [`Engine`].
#[derive(Debug)]
pub struct EngineBuilder {
    store: Arc<dyn Store>,
    payments: PaymentRegistry,
    pricing: Pricing,
    clock: Arc<dyn Clock>,
    limiter: Arc<dyn RateLimiter>,
    shared_cache: Option<Arc<dyn SharedCache>>,
    jwt_secret: Vec<u8>,
    data_key: Option<Vec<u8>>,
    countries: Vec<Plugin>,
    error_messages: Vec<(String, String)>,
    settings: EngineSettings,
}

impl EngineBuilder {
    /// Starts from a store and a JWT secret (32 bytes or more); everything else has
    /// defaults: no payment provider, zero tax and shipping, the system clock, an
    /// in-memory rate limiter.
    pub fn new(store: Arc<dyn Store>, jwt_secret: impl Into<Vec<u8>>) -> Self {
        EngineBuilder {
            store,
            payments: PaymentRegistry::new(),
            pricing: Pricing::default(),
            clock: Arc::new(SystemClock),
            limiter: Arc::new(InMemoryRateLimiter::default()),
            shared_cache: None,
            jwt_secret: jwt_secret.into(),
            data_key: None,
            countries: Vec::new(),
            error_messages: Vec::new(),
            settings: EngineSettings::default(),
        }
    }

    /// Payment providers.
    pub fn payments(mut self, registry: PaymentRegistry) -> Self {
        self.payments = registry;
        self
    }

    /// Tax and shipping hooks.
    pub fn pricing(mut self, pricing: Pricing) -> Self {
        self.pricing = pricing;
        self
    }

    /// Clock.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Login rate limiter.
    pub fn rate_limiter(mut self, limiter: Arc<dyn RateLimiter>) -> Self {
        self.limiter = limiter;
        self
    }

    /// A cache shared by every instance (Redis), behind the in-process one.
    pub fn shared_cache(mut self, cache: Arc<dyn SharedCache>) -> Self {
        self.shared_cache = Some(cache);
        self
    }

    /// Registers a country plugin (compliance rules and tax). With none registered,
    /// compliance is off: every country is served and tax is zero.
    pub fn country<P>(mut self, plugin: Arc<P>) -> Self
    where
        P: CountryCompliance + TaxPolicy + 'static,
    {
        self.countries.push(Plugin {
            compliance: plugin.clone(),
            tax: plugin,
        });
        self
    }

    /// Problem titles (and field messages) for the error codes a plugin answers with:
    /// `(locale, .ftl source)` pairs of `error-<code> = ...` (and `field-<code> = ...`)
    /// messages, e.g. a payment plugin's `MESSAGES` constant. Without them a plugin's
    /// own code is titled with the bare HTTP reason. [`build`](Self::build) refuses a
    /// source that does not parse, another kind of message id, or one a locale
    /// already has.
    pub fn error_messages(mut self, sources: &[(&str, &str)]) -> Self {
        self.error_messages.extend(
            sources
                .iter()
                .map(|(l, s)| ((*l).to_string(), (*s).to_string())),
        );
        self
    }

    /// The key sealing buyer identifiers at rest (32 bytes or more). Defaults to one
    /// derived from the JWT secret; set a separate one to rotate them independently.
    pub fn data_key(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.data_key = Some(key.into());
        self
    }

    /// Settings.
    pub fn settings(mut self, settings: EngineSettings) -> Self {
        self.settings = settings;
        self
    }

    /// Builds the engine.
    pub fn build(self) -> CoreResult<Engine> {
        let tokens = TokenService::new(&self.jwt_secret, "jangteo", chrono::Duration::minutes(15))?;
        if self.payments.names().is_empty() {
            return Err(CoreError::Internal(
                "register at least one payment provider".into(),
            ));
        }
        let data_key = self.data_key.unwrap_or_else(|| {
            let mut k = self.jwt_secret.clone();
            k.extend_from_slice(b"/data-key");
            k
        });
        if data_key.len() < 32 {
            return Err(CoreError::Internal(
                "the data key needs 32 bytes or more".into(),
            ));
        }
        let compliance = Arc::new(ComplianceRegistry::new(
            self.countries,
            &self.settings.origin_country,
            &data_key,
            self.settings.rules_refresh,
        )?);
        let error_messages = Arc::new(crate::i18n::Catalog::errors_with(&self.error_messages)?);
        let ttl = self.settings.catalog_cache_ttl;
        Ok(Engine(Arc::new(Inner {
            store: self.store,
            payments: self.payments,
            pricing: self.pricing,
            clock: self.clock,
            tokens,
            secret: self.jwt_secret,
            limiter: self.limiter,
            relay_wake: Arc::new(Notify::new()),
            settings: self.settings,
            product_pages: PageCache::new(ttl, 10_000),
            product_details: PageCache::new(ttl, 50_000),
            shared_cache: self.shared_cache,
            compliance,
            error_messages,
        })))
    }
}

impl Engine {
    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.0.store
    }

    /// Problem titles and field messages: the shipped ones and the plugins'
    /// ([`EngineBuilder::error_messages`]).
    pub fn error_messages(&self) -> &crate::i18n::Catalog {
        &self.0.error_messages
    }

    /// Settings in force.
    pub fn settings(&self) -> &EngineSettings {
        &self.0.settings
    }

    /// Access-token service (the HTTP layer verifies bearer tokens with it).
    pub fn tokens(&self) -> &TokenService {
        &self.0.tokens
    }

    /// The current time by the engine's clock.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.0.clock.now()
    }

    /// An outbox relay to a publisher, woken whenever a use case commits events.
    pub fn outbox_relay(&self, publisher: Arc<dyn EventPublisher>) -> OutboxRelay {
        OutboxRelay::new(self.0.store.clone(), publisher, self.0.relay_wake.clone())
    }

    /// Drops cached catalog pages that can no longer be served (expired past their
    /// stale window). Cheap; the server calls it every second so memory held by pages
    /// nobody asks for any more is freed while idle.
    pub fn purge_stale_caches(&self) {
        self.0.product_pages.purge_stale();
        self.0.product_details.purge_stale();
    }

    /// Frees what an idle engine can do without: stale catalog pages and the store's
    /// caches (SQLite page caches). For quiet moments: the caches refill on demand.
    pub async fn release_idle_memory(&self) {
        self.purge_stale_caches();
        self.0.store.release_memory().await;
    }

    /// Drops every cached catalog page (after catalog writes, or on a catalog event
    /// from another instance).
    pub fn invalidate_catalog_cache(&self) {
        self.0.product_pages.invalidate_all();
        self.0.product_details.invalidate_all();
    }

    /// Drops cached catalog pages here and in the shared cache, so every instance
    /// reads the change. A shared-cache failure is logged, not returned: the entries
    /// expire by themselves within `shared_cache_ttl`.
    pub async fn invalidate_catalog_cache_everywhere(&self) {
        // Shared first: clearing the local cache first would let a request in between
        // copy the old shared entry back into it.
        if let Some(shared) = &self.0.shared_cache {
            for ns in [PAGES_NS, PRODUCTS_NS] {
                if let Err(e) = shared.invalidate(ns).await {
                    tracing::warn!(error = %e, "shared cache invalidation failed");
                }
            }
        }
        self.invalidate_catalog_cache();
    }

    /// The shared cache's catalog generations now (`None` without a shared cache, or
    /// when it keeps none or does not answer).
    pub async fn shared_catalog_generation(&self) -> Option<(String, String)> {
        let shared = self.0.shared_cache.as_ref()?;
        let pages = shared.generation(PAGES_NS).await.ok()?;
        let products = shared.generation(PRODUCTS_NS).await.ok()?;
        Some((pages.unwrap_or_default(), products.unwrap_or_default()))
    }

    /// Follows catalog invalidations made by other instances through the shared cache
    /// alone, for deployments without an event stream (several instances on one
    /// database and one Redis, no Kafka): every `interval` it reads the shared
    /// generations and, when they moved, drops this instance's in-process pages, which
    /// would otherwise serve the old catalog for up to two cache lifetimes. Runs until
    /// `stop` resolves.
    pub async fn follow_shared_invalidations(
        &self,
        interval: Duration,
        stop: impl std::future::Future<Output = ()>,
    ) {
        if self.0.shared_cache.is_none() {
            return;
        }
        let watch = async {
            let mut seen = self.shared_catalog_generation().await;
            loop {
                tokio::time::sleep(interval).await;
                let now = self.shared_catalog_generation().await;
                // Moved, or readable again after a gap in which it may have moved
                // (`seen` is then `None`): drop the local pages.
                if now.is_some() && now != seen {
                    self.invalidate_catalog_cache();
                }
                seen = now;
            }
        };
        tokio::select! {
            _ = watch => {}
            _ = stop => {}
        }
    }

    /// A value from the shared cache, or `load`'s (then stored there). Any shared-cache
    /// failure counts as a miss: the database answers.
    pub(crate) async fn shared_or_load<V, F, Fut>(
        &self,
        namespace: &str,
        key: &str,
        load: F,
    ) -> CoreResult<V>
    where
        V: serde::Serialize + serde::de::DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = CoreResult<V>>,
    {
        let Some(shared) = &self.0.shared_cache else {
            return load().await;
        };
        // The lookup's token names the generation the value is loaded under: the store
        // is refused if another instance invalidated in between, so the old value is
        // not served after the change.
        let token = match shared.lookup(namespace, key).await {
            Ok(found) => match found.value.map(|b| serde_json::from_slice(&b)) {
                Some(Ok(v)) => return Ok(v),
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "unreadable shared cache entry");
                    found.token
                }
                None => found.token,
            },
            Err(e) => {
                tracing::debug!(error = %e, "shared cache unavailable; reading the database");
                // Without a token a store could race an invalidation; Redis is
                // failing anyway, so skip it.
                let v = load().await?;
                return Ok(v);
            }
        };
        let v = load().await?;
        if let Ok(bytes) = serde_json::to_vec(&v) {
            if let Err(e) = shared
                .put_if_current(
                    namespace,
                    key,
                    &bytes,
                    self.0.settings.shared_cache_ttl,
                    token.as_deref(),
                )
                .await
            {
                tracing::debug!(error = %e, "shared cache write failed");
            }
        }
        Ok(v)
    }

    /// Is the storage reachable?
    pub async fn ready(&self) -> CoreResult<()> {
        self.0.store.ping().await
    }

    /// [`Engine::ready`] with an answer within `limit`: a database that does not
    /// answer at all (a network partition, a frozen host: no error, no reply) reads
    /// as unavailable instead of holding a health probe until the request timeout.
    /// The check runs as a task of its own that is never cut off: it may be applying
    /// migrations, which must not stop halfway holding their lock.
    pub async fn ready_within(&self, limit: Duration) -> CoreResult<()> {
        let engine = self.clone();
        let check = tokio::spawn(async move { engine.ready().await });
        match tokio::time::timeout(limit, check).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(join)) => Err(CoreError::Internal(format!(
                "readiness check failed: {join}"
            ))),
            Err(_) => Err(CoreError::Unavailable(format!(
                "the database did not answer within {} s",
                limit.as_secs_f32()
            ))),
        }
    }

    /// Commits a transaction with its events and tells the relay.
    pub(crate) async fn commit(
        &self,
        mut tx: Box<dyn Tx>,
        events: &[DomainEvent],
    ) -> CoreResult<()> {
        if !events.is_empty() {
            tx.append_events(events).await?;
        }
        tx.commit().await?;
        if !events.is_empty() {
            self.0.relay_wake.notify_one();
        }
        Ok(())
    }

    /// An audit entry for a staff action.
    pub(crate) fn audit(
        &self,
        staff: &crate::auth::Principal,
        action: &str,
        target_type: &str,
        target_id: impl ToString,
        details: serde_json::Value,
    ) -> AuditEntry {
        AuditEntry {
            id: 0,
            at: self.now(),
            actor_id: Some(staff.id),
            actor_email: staff.email.clone(),
            action: action.to_string(),
            target_type: target_type.to_string(),
            target_id: target_id.to_string(),
            details,
        }
    }
}
