//! # jangteo-redis
//!
//! Redis adapters for Jangteo, for running several instances of the engine behind one
//! load balancer:
//!
//! - [`RedisCache`] implements [`jangteo_core::cache::SharedCache`]: catalog reads
//!   cached once for every instance, with O(1) invalidation of a namespace;
//! - [`RedisRateLimiter`] implements [`jangteo_core::auth::RateLimiter`]: login
//!   failures counted across instances, so the limit holds however requests are spread.
//!
//! Both run over one [`RedisConnection`] (one multiplexed socket, one circuit breaker),
//! made by [`connect`]:
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use jangteo_redis::{connect, RedisCache, RedisRateLimiter, RedisSettings};
//!
//! let redis = connect(RedisSettings::new("redis://127.0.0.1:6379")).await?;
//! let cache = Arc::new(RedisCache::new(&redis));
//! let limiter = Arc::new(RedisRateLimiter::new(&redis));
//! // EngineBuilder::new(..).rate_limiter(limiter) ...
//! # let _ = (cache, limiter); Ok(()) }
//! ```
//!
//! ## When Redis is down or slow
//!
//! Redis makes the store cheaper and fairer; it is never needed to answer a request,
//! so its failure must not become the store's failure. Every command is bounded by
//! `connect_timeout + response_timeout` (250 ms + 250 ms by default). After any failure
//! a circuit breaker skips Redis for `cooldown` (1 s by default): requests then do not
//! wait at all, and afterwards a single request probes Redis while the others keep
//! skipping it. The cache answers `CoreError::Unavailable` (the engine reads that as a
//! miss and goes to the database); the rate limiter counts in an in-process
//! `InMemoryRateLimiter`, so limits become per instance but logins keep working, and it
//! never returns an error because Redis is down. A warning is logged once per outage
//! and an info line when Redis answers again. Recovery needs no restart: the first
//! successful probe closes the breaker and the shared cache and counters are used again
//! (after a Redis restart without persistence they simply start empty).
//!
//! [`connect`] fails only on settings that can never work (a malformed URL, an empty
//! prefix, zero timeouts). A Redis that is unreachable at start does not fail it: the
//! adapters start degraded, as above, and connect as soon as Redis answers, so the
//! order in which Redis and the servers start does not matter.
//!
//! The breaker and the connection are per [`RedisConnection`]; build the cache and the
//! limiter from the same one so an outage is detected once. This adapter targets a
//! single Redis (or a primary behind a stable address), not Redis Cluster.

#![warn(missing_docs)]

mod cache;
mod limiter;
mod link;
mod settings;

use std::sync::Arc;

use jangteo_core::CoreResult;

pub use cache::RedisCache;
pub use limiter::RedisRateLimiter;
pub use settings::{RedisError, RedisSettings};

use link::Link;

/// A handle on one Redis: the shared connection and its circuit breaker. Cloning is
/// cheap and clones share everything.
#[derive(Debug, Clone)]
pub struct RedisConnection {
    link: Arc<Link>,
}

/// Checks `settings` and opens the connection.
///
/// Returns an error only for settings that cannot work (see [`RedisError`]). If Redis
/// does not answer within the timeouts, the connection is returned anyway in degraded
/// mode (a warning is logged) and recovers by itself once Redis is up. Must be called
/// inside a Tokio runtime with the time driver enabled.
pub async fn connect(settings: RedisSettings) -> Result<RedisConnection, RedisError> {
    let connection = RedisConnection {
        link: Arc::new(Link::new(settings)?),
    };
    if connection.ping().await.is_ok() {
        tracing::info!(settings = ?connection.link.settings, "connected to Redis");
    }
    Ok(connection)
}

impl RedisConnection {
    /// Sends `PING`, through the breaker: for a readiness probe that should report Redis
    /// without ever blocking on it.
    pub async fn ping(&self) -> CoreResult<()> {
        self.link
            .run(|mut con| async move {
                redis::cmd("PING")
                    .query_async::<String>(&mut con)
                    .await
                    .map(drop)
            })
            .await
            .map_err(|d| d.into_core("ping"))
    }

    /// True between a failure and the next successful command: the cache is being
    /// bypassed and the limiter counts per instance.
    pub fn is_degraded(&self) -> bool {
        self.link.is_degraded()
    }

    /// The settings this connection was made with.
    pub fn settings(&self) -> &RedisSettings {
        &self.link.settings
    }

    /// Shorthand for [`RedisCache::new`].
    pub fn cache(&self) -> RedisCache {
        RedisCache::new(self)
    }

    /// Shorthand for [`RedisRateLimiter::new`].
    pub fn rate_limiter(&self) -> RedisRateLimiter {
        RedisRateLimiter::new(self)
    }
}
