//! The login rate limiter, counted in Redis so every instance sees the same failures.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use jangteo_core::auth::{InMemoryRateLimiter, RateLimiter};
use jangteo_core::{CoreError, CoreResult};
use redis::Script;

use crate::link::Link;
use crate::RedisConnection;

/// `KEYS[1]` counter. Returns `{count, pttl}`: the count of failures in the current
/// window and the milliseconds left in it.
const CHECK: &str = "local n = tonumber(redis.call('GET', KEYS[1]) or '0') \
     return {n, redis.call('PTTL', KEYS[1])}";

/// `KEYS[1]` counter, `ARGV[1]` window in milliseconds, `ARGV[2]` limit. Returns
/// `{1, 0}` when the attempt was counted, `{0, pttl}` when the limit was reached (and
/// nothing counted). Check and count are one script, so attempts sent at once cannot
/// all pass before any is counted. The window starts at the first attempt: the expiry
/// is set only when the counter is new (or, defensively, when it has somehow lost its
/// expiry), atomically with the increment, so a crash between the two can never leave
/// a counter that blocks forever.
const ACQUIRE: &str = "local n = redis.call('INCR', KEYS[1]) \
     if n == 1 or redis.call('PTTL', KEYS[1]) == -1 then \
       redis.call('PEXPIRE', KEYS[1], ARGV[1]) \
     end \
     if n > tonumber(ARGV[2]) then \
       redis.call('DECR', KEYS[1]) \
       return {0, redis.call('PTTL', KEYS[1])} \
     end \
     return {1, 0}";

/// `KEYS[1]` counter: one attempt taken back, never below zero, expiry untouched.
const RELEASE: &str = "if tonumber(redis.call('GET', KEYS[1]) or '0') > 0 then \
       redis.call('DECR', KEYS[1]) \
     end \
     return 0";

/// [`RateLimiter`] with fixed-window counters in Redis, shared by every instance, so an
/// attacker cannot multiply the limit by spreading attempts over instances.
///
/// Counters live under `{prefix}:ratelimit:{key}` and expire with their window.
/// [`check`](RateLimiter::check) answers `RateLimited` with the counter's remaining
/// time, rounded up to whole seconds.
///
/// It never fails because Redis is unavailable: while Redis is down or slow (and during
/// the breaker's cool-down) it counts in an in-process [`InMemoryRateLimiter`], so
/// logins keep working with per-instance limits. Failures counted there during an
/// outage keep counting after Redis returns, until their window ends: `check` refuses
/// when either count is over the limit, so an outage never resets anyone's count.
#[derive(Debug, Clone)]
pub struct RedisRateLimiter {
    link: Arc<Link>,
    fallback: Arc<InMemoryRateLimiter>,
    scripts: Arc<Scripts>,
}

#[derive(Debug)]
struct Scripts {
    check: Script,
    acquire: Script,
    release: Script,
}

impl RedisRateLimiter {
    /// A limiter over `connection`, with its own in-process fallback.
    pub fn new(connection: &RedisConnection) -> Self {
        RedisRateLimiter {
            link: connection.link.clone(),
            fallback: Arc::new(InMemoryRateLimiter::default()),
            scripts: Arc::new(Scripts {
                check: Script::new(CHECK),
                acquire: Script::new(ACQUIRE),
                release: Script::new(RELEASE),
            }),
        }
    }

    fn key(&self, key: &str) -> String {
        format!("{}:ratelimit:{key}", self.link.settings.prefix)
    }
}

fn window_ms(window: Duration) -> i64 {
    (window.as_millis().min(i64::MAX as u128) as i64).max(1)
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn check(&self, key: &str, limit: u32, window: Duration) -> CoreResult<()> {
        // Failures counted locally during an outage still count.
        self.fallback.check(key, limit, window).await?;
        let redis_key = self.key(key);
        let script = &self.scripts.check;
        let answer = self
            .link
            .run(|mut con| async move {
                script
                    .key(redis_key)
                    .invoke_async::<(u64, i64)>(&mut con)
                    .await
            })
            .await;
        match answer {
            Ok((count, pttl)) if count >= u64::from(limit) => {
                // -1: no expiry (cannot happen through `acquire`); assume a window.
                let ms = if pttl >= 0 {
                    pttl as u64
                } else {
                    window_ms(window) as u64
                };
                Err(CoreError::RateLimited {
                    retry_after_secs: ms.div_ceil(1000).max(1),
                })
            }
            Ok(_) => Ok(()),
            // Already checked against the fallback above.
            Err(_) => Ok(()),
        }
    }

    async fn acquire(&self, key: &str, limit: u32, window: Duration) -> CoreResult<()> {
        // Attempts counted locally during an outage still count.
        self.fallback.check(key, limit, window).await?;
        let redis_key = self.key(key);
        let ms = window_ms(window);
        let script = &self.scripts.acquire;
        let answer = self
            .link
            .run(|mut con| async move {
                script
                    .key(redis_key)
                    .arg(ms)
                    .arg(limit)
                    .invoke_async::<(i64, i64)>(&mut con)
                    .await
            })
            .await;
        match answer {
            Ok((1, _)) => Ok(()),
            Ok((_, pttl)) => {
                let ms = if pttl >= 0 { pttl as u64 } else { ms as u64 };
                Err(CoreError::RateLimited {
                    retry_after_secs: ms.div_ceil(1000).max(1),
                })
            }
            // Redis is down or slow: count in this instance instead.
            Err(_) => self.fallback.acquire(key, limit, window).await,
        }
    }

    async fn release(&self, key: &str) -> CoreResult<()> {
        let redis_key = self.key(key);
        let script = &self.scripts.release;
        let released = self
            .link
            .run(|mut con| async move { script.key(redis_key).invoke_async::<i64>(&mut con).await })
            .await;
        // Taken back where Redis could not be reached; an attempt counted just before an
        // outage began stays counted there until its window ends (a stricter limit, never
        // a looser one).
        if released.is_err() {
            self.fallback.release(key).await?;
        }
        Ok(())
    }

    async fn reset(&self, key: &str) -> CoreResult<()> {
        self.fallback.reset(key).await?;
        let redis_key = self.key(key);
        // If Redis is down the counter stays until its window ends: the user just signed
        // in successfully, so the worst case is an earlier block on later failures.
        let _ = self
            .link
            .run(|mut con| async move {
                redis::cmd("DEL")
                    .arg(redis_key)
                    .query_async::<i64>(&mut con)
                    .await
            })
            .await;
        Ok(())
    }
}
