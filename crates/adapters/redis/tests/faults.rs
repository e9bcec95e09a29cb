//! A Redis that dies, stalls, or is not there at start: requests never hang, the
//! limiter keeps limiting, and the adapters recover on their own. Each test runs its
//! own `redis-server` child so it can kill it without disturbing the other tests.

mod common;

use std::time::Duration;

use common::{eventually, quick, RedisServer};
use jangteo_core::auth::RateLimiter;
use jangteo_core::cache::SharedCache;
use jangteo_core::CoreError;
use jangteo_redis::{connect, RedisCache, RedisConnection, RedisRateLimiter, RedisSettings};

const MINUTE: Duration = Duration::from_secs(60);
/// "Within about a second": the default timeouts allow 500 ms per request.
const FAST: Duration = Duration::from_secs(1);
const RECOVERY: Duration = Duration::from_secs(10);

struct Instance {
    redis: RedisConnection,
    cache: RedisCache,
    limiter: RedisRateLimiter,
}

async fn instance(url: &str) -> Instance {
    let settings = RedisSettings {
        // Shorter than the default so recovery is quick to observe.
        cooldown: Duration::from_millis(300),
        ..RedisSettings::new(url).with_prefix(common::unique_prefix("faults"))
    };
    let redis = quick("connect", FAST, connect(settings)).await.unwrap();
    Instance {
        cache: RedisCache::new(&redis),
        limiter: RedisRateLimiter::new(&redis),
        redis,
    }
}

/// Two instances of the engine on the same Redis and prefix.
async fn pair(url: &str) -> (Instance, Instance) {
    let a = instance(url).await;
    let redis = connect(a.redis.settings().clone()).await.unwrap();
    let b = Instance {
        cache: RedisCache::new(&redis),
        limiter: RedisRateLimiter::new(&redis),
        redis,
    };
    (a, b)
}

fn limited(r: Result<(), CoreError>) -> bool {
    match r {
        Ok(()) => false,
        Err(CoreError::RateLimited { .. }) => true,
        Err(e) => panic!("the limiter must never fail because of Redis, got {e:?}"),
    }
}

/// While Redis is gone: every call answers fast, the cache misses or errs, and the
/// limiter still limits, per instance.
async fn assert_degraded_but_working(a: &Instance, b: &Instance, key: &str) {
    for i in 0..10 {
        let got = quick("cache get", FAST, a.cache.get("ns", "k")).await;
        assert!(
            matches!(got, Ok(None) | Err(CoreError::Unavailable(_))),
            "get #{i}: {got:?}"
        );
        let put = quick("cache put", FAST, a.cache.put("ns", "k", b"v", MINUTE)).await;
        assert!(
            matches!(put, Ok(()) | Err(CoreError::Unavailable(_))),
            "{put:?}"
        );
        let inv = quick("invalidate", FAST, a.cache.invalidate("ns")).await;
        assert!(
            matches!(inv, Ok(()) | Err(CoreError::Unavailable(_))),
            "{inv:?}"
        );
    }
    assert!(a.redis.is_degraded());
    assert!(quick("ping", FAST, a.redis.ping()).await.is_err());

    for _ in 0..3 {
        assert!(!limited(
            quick("check", FAST, a.limiter.check(key, 3, MINUTE)).await
        ));
        quick("record", FAST, a.limiter.acquire(key, u32::MAX, MINUTE))
            .await
            .unwrap();
    }
    assert!(
        limited(quick("check", FAST, a.limiter.check(key, 3, MINUTE)).await),
        "the fallback limits"
    );
    // The fallback is per instance: the other one has not seen these failures.
    assert!(!limited(b.limiter.check(key, 3, MINUTE).await));
    quick("reset", FAST, b.limiter.reset("other"))
        .await
        .unwrap();
}

/// Back to normal: values stored are read back by the other instance, and failures
/// recorded by one are seen by the other.
async fn assert_recovers(a: &Instance, b: &Instance, round: &str) {
    let recovered = eventually(RECOVERY, || async {
        a.cache.put("ns", round, b"again", MINUTE).await.is_ok()
            && b.cache.get("ns", round).await.ok().flatten().as_deref() == Some(&b"again"[..])
    })
    .await;
    assert!(recovered, "the cache did not recover within {RECOVERY:?}");
    assert!(eventually(RECOVERY, || async { b.redis.ping().await.is_ok() }).await);
    assert!(!a.redis.is_degraded() && !b.redis.is_degraded());

    let key = format!("shared-{round}");
    for _ in 0..3 {
        a.limiter.acquire(&key, u32::MAX, MINUTE).await.unwrap();
    }
    assert!(
        limited(b.limiter.check(&key, 3, MINUTE).await),
        "the shared counter is used again"
    );
    b.limiter.reset(&key).await.unwrap();
    assert!(!limited(a.limiter.check(&key, 3, MINUTE).await));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_redis_fails_fast_and_the_adapters_recover_after_a_restart() {
    let mut server = RedisServer::start();
    let (a, b) = pair(&server.url()).await;
    assert_recovers(&a, &b, "before").await;

    server.kill();
    assert_degraded_but_working(&a, &b, "outage-1").await;
    // Failures counted during the outage still count once Redis is back.
    server.restart();
    assert_recovers(&a, &b, "after-restart").await;
    assert!(limited(a.limiter.check("outage-1", 3, MINUTE).await));

    // And a second outage behaves the same.
    server.kill();
    assert_degraded_but_working(&a, &b, "outage-2").await;
    server.restart();
    assert_recovers(&a, &b, "after-second-restart").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_redis_times_out_fast_and_recovers() {
    let mut server = RedisServer::start();
    let (a, b) = pair(&server.url()).await;
    assert_recovers(&a, &b, "before").await;

    server.pause(true);
    assert_degraded_but_working(&a, &b, "stalled").await;
    server.pause(false);
    assert_recovers(&a, &b, "resumed").await;
    server.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_down_at_start_does_not_fail_the_start() {
    let mut server = RedisServer::not_started();
    let (a, b) = pair(&server.url()).await;
    assert!(a.redis.is_degraded(), "starts degraded");
    assert_degraded_but_working(&a, &b, "at-start").await;

    server.restart();
    assert_recovers(&a, &b, "started").await;
}
