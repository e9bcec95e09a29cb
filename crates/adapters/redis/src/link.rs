//! The one connection both adapters share, with its timeouts and circuit breaker.
//!
//! Why a breaker on top of the connection manager's own reconnects: the manager would
//! make every request wait for a reconnect attempt while Redis is down. With the breaker
//! only one request per cool-down pays that (bounded) wait; the others skip Redis at once
//! and use the fallback. Why rebuild the manager after an outage-type failure: a fresh
//! lazy manager connects on its next use, whatever state the old one's reconnect future
//! ended in, so recovery never depends on the driver's internal retry policy.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::RwLock;
use std::time::{Duration, Instant};

use jangteo_core::CoreError;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ErrorKind, RedisResult, ServerErrorKind};

use crate::settings::{redact, RedisError, RedisSettings};

/// Why an operation did not reach Redis or got no usable answer.
#[derive(Debug)]
pub(crate) enum Down {
    /// The breaker is open: Redis failed recently, the request did not try.
    Skipped,
    /// The request tried and failed (or timed out).
    Failed(String),
}

impl Down {
    pub(crate) fn into_core(self, what: &str) -> CoreError {
        match self {
            Down::Skipped => {
                CoreError::Unavailable(format!("redis {what}: skipped after a recent failure"))
            }
            Down::Failed(e) => CoreError::Unavailable(format!("redis {what}: {e}")),
        }
    }
}

/// Open/closed state, lock-free. `open_until` is 0 when closed, else a deadline in
/// milliseconds since `epoch` (always >= 1).
struct Breaker {
    epoch: Instant,
    open_until: AtomicU64,
    /// An outage is in progress: set on the first failure, cleared on the next success.
    /// Used so the warning is logged once per outage, not once per request.
    down: AtomicBool,
    cooldown: Duration,
}

impl Breaker {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    /// Whether this request may use Redis. While open, exactly one request per cool-down
    /// gets `true` (the probe); it claims the slot by moving the deadline forward.
    fn allow(&self) -> bool {
        let until = self.open_until.load(Ordering::Acquire);
        if until == 0 {
            return true;
        }
        let now = self.now_ms();
        if now < until {
            return false;
        }
        let next = now + self.cooldown.as_millis() as u64;
        self.open_until
            .compare_exchange(until, next, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    fn success(&self) {
        self.open_until.store(0, Ordering::Release);
        metrics::gauge!("jangteo_redis_up").set(1.0);
        if self.down.swap(false, Ordering::AcqRel) {
            tracing::info!("Redis is reachable again: shared cache and rate limits restored");
        }
    }

    fn failure(&self, error: &str) {
        let next = self.now_ms() + self.cooldown.as_millis() as u64;
        self.open_until.store(next, Ordering::Release);
        // Monitoring: Redis down means per-instance login limits and no shared cache.
        metrics::gauge!("jangteo_redis_up").set(0.0);
        metrics::counter!("jangteo_redis_failures_total").increment(1);
        if !self.down.swap(true, Ordering::AcqRel) {
            tracing::warn!(
                error,
                cooldown_ms = self.cooldown.as_millis() as u64,
                "Redis is unavailable: the shared cache is bypassed and login rate limits \
                 are per instance until it answers again"
            );
        }
    }
}

/// Client, manager and breaker for one Redis.
pub(crate) struct Link {
    pub(crate) settings: RedisSettings,
    client: redis::Client,
    config: ConnectionManagerConfig,
    manager: RwLock<ConnectionManager>,
    breaker: Breaker,
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Link")
            .field("settings", &self.settings)
            .field("degraded", &self.is_degraded())
            .finish_non_exhaustive()
    }
}

impl Link {
    /// Checks the settings and builds a lazy manager. Must run inside a Tokio runtime
    /// (the manager spawns a task). Does not touch the network.
    pub(crate) fn new(settings: RedisSettings) -> Result<Link, RedisError> {
        settings.validate()?;
        let invalid_url = |e: redis::RedisError| RedisError::InvalidUrl {
            url: redact(&settings.url),
            reason: e.to_string(),
        };
        let client = redis::Client::open(settings.url.as_str()).map_err(invalid_url)?;
        // No retries inside the manager: a failed attempt fails the request now, and the
        // breaker decides when to try again.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.connect_timeout))
            .set_response_timeout(Some(settings.response_timeout))
            .set_number_of_retries(0);
        let manager = ConnectionManager::new_lazy_with_config(client.clone(), config.clone())
            .map_err(invalid_url)?;
        Ok(Link {
            breaker: Breaker {
                epoch: Instant::now(),
                open_until: AtomicU64::new(0),
                down: AtomicBool::new(false),
                cooldown: settings.cooldown,
            },
            settings,
            client,
            config,
            manager: RwLock::new(manager),
        })
    }

    pub(crate) fn is_degraded(&self) -> bool {
        self.breaker.down.load(Ordering::Acquire)
    }

    /// Runs `op` on the shared connection, bounded by the operation timeout, and feeds
    /// the outcome to the breaker.
    pub(crate) async fn run<T, F, Fut>(&self, op: F) -> Result<T, Down>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        if !self.breaker.allow() {
            metrics::counter!("jangteo_redis_skipped_total").increment(1);
            return Err(Down::Skipped);
        }
        let con = self
            .manager
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        match tokio::time::timeout(self.settings.op_timeout(), op(con)).await {
            Ok(Ok(v)) => {
                self.breaker.success();
                Ok(v)
            }
            Ok(Err(e)) => {
                let msg = e.to_string();
                self.breaker.failure(&msg);
                if !answered(&e) {
                    self.rebuild();
                }
                Err(Down::Failed(msg))
            }
            Err(_) => {
                let msg = format!("no answer within {:?}", self.settings.op_timeout());
                self.breaker.failure(&msg);
                self.rebuild();
                Err(Down::Failed(msg))
            }
        }
    }

    /// Replaces the manager with a fresh lazy one that connects on its next use.
    fn rebuild(&self) {
        match ConnectionManager::new_lazy_with_config(self.client.clone(), self.config.clone()) {
            Ok(m) => *self.manager.write().unwrap_or_else(|e| e.into_inner()) = m,
            Err(e) => tracing::warn!(error = %e, "could not rebuild the Redis connection"),
        }
    }
}

/// The server answered with an error (the connection itself is fine): no reason to
/// reconnect, though the breaker still backs off.
fn answered(e: &redis::RedisError) -> bool {
    matches!(
        e.kind(),
        ErrorKind::Extension
            | ErrorKind::UnexpectedReturnType
            | ErrorKind::Server(
                ServerErrorKind::ResponseError
                    | ServerErrorKind::ExecAbort
                    | ServerErrorKind::NoScript
                    | ServerErrorKind::CrossSlot
                    | ServerErrorKind::NoPerm
            )
    )
}
