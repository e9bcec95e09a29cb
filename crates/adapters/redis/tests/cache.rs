//! `RedisCache` against a real Redis (`JANGTEO_TEST_REDIS_URL`).

mod common;

use std::time::Duration;

use jangteo_core::cache::SharedCache;
use jangteo_redis::{connect, RedisCache};
use redis::AsyncCommands;

const MINUTE: Duration = Duration::from_secs(60);

#[tokio::test]
async fn put_then_get_round_trips_bytes() {
    let redis = connect(common::settings("roundtrip")).await.unwrap();
    assert!(!redis.is_degraded());
    let cache = RedisCache::new(&redis);

    assert_eq!(cache.get("products", "p1").await.unwrap(), None, "empty");
    let bytes = [0u8, 255, 10, 13, b':', 0xC3, 0x28];
    cache.put("products", "p1", &bytes, MINUTE).await.unwrap();
    assert_eq!(
        cache.get("products", "p1").await.unwrap().as_deref(),
        Some(&bytes[..])
    );
    assert_eq!(cache.get("products", "p2").await.unwrap(), None);

    cache.put("products", "p1", b"newer", MINUTE).await.unwrap();
    assert_eq!(
        cache.get("products", "p1").await.unwrap().as_deref(),
        Some(&b"newer"[..]),
        "overwrite"
    );
    cache.put("products", "empty", b"", MINUTE).await.unwrap();
    assert_eq!(
        cache.get("products", "empty").await.unwrap(),
        Some(vec![]),
        "an empty value is a hit, not a miss"
    );
    cache
        .put("products", "zero", b"x", Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(cache.get("products", "zero").await.unwrap(), None);
}

#[tokio::test]
async fn values_expire_with_their_ttl() {
    let redis = connect(common::settings("ttl")).await.unwrap();
    let cache = RedisCache::new(&redis);
    cache
        .put("ns", "short", b"v", Duration::from_millis(300))
        .await
        .unwrap();
    cache.put("ns", "long", b"v", MINUTE).await.unwrap();
    assert!(cache.get("ns", "short").await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(cache.get("ns", "short").await.unwrap(), None, "expired");
    assert!(cache.get("ns", "long").await.unwrap().is_some());
}

#[tokio::test]
async fn invalidate_drops_one_namespace_and_not_another() {
    let redis = connect(common::settings("invalidate")).await.unwrap();
    let cache = RedisCache::new(&redis);
    for k in ["a", "b", "c"] {
        cache.put("products", k, b"p", MINUTE).await.unwrap();
        cache.put("categories", k, b"c", MINUTE).await.unwrap();
    }
    cache.invalidate("products").await.unwrap();
    for k in ["a", "b", "c"] {
        assert_eq!(cache.get("products", k).await.unwrap(), None);
        assert_eq!(
            cache.get("categories", k).await.unwrap().as_deref(),
            Some(&b"c"[..])
        );
    }
    // The namespace works again after invalidation, and invalidating twice is fine.
    cache.put("products", "a", b"p2", MINUTE).await.unwrap();
    assert_eq!(
        cache.get("products", "a").await.unwrap().as_deref(),
        Some(&b"p2"[..])
    );
    cache.invalidate("products").await.unwrap();
    cache.invalidate("products").await.unwrap();
    assert_eq!(cache.get("products", "a").await.unwrap(), None);
    // Invalidating a namespace never used is not an error.
    cache.invalidate("never-used").await.unwrap();
    assert_eq!(cache.get("never-used", "a").await.unwrap(), None);
}

#[tokio::test]
async fn two_instances_share_values_and_invalidations() {
    // Two connections, as two engine processes would have.
    let settings = common::settings("shared");
    let one = RedisCache::new(&connect(settings.clone()).await.unwrap());
    let two = RedisCache::new(&connect(settings).await.unwrap());

    one.put("products", "p1", b"from one", MINUTE)
        .await
        .unwrap();
    assert_eq!(
        two.get("products", "p1").await.unwrap().as_deref(),
        Some(&b"from one"[..])
    );
    two.put("products", "p2", b"from two", MINUTE)
        .await
        .unwrap();
    assert_eq!(
        one.get("products", "p2").await.unwrap().as_deref(),
        Some(&b"from two"[..])
    );

    let before = one.generation("products").await.unwrap();
    assert!(before.is_some(), "a used namespace has a generation");
    two.invalidate("products").await.unwrap();
    assert_eq!(one.get("products", "p1").await.unwrap(), None);
    assert_eq!(one.get("products", "p2").await.unwrap(), None);
    // What an instance without an event stream watches to learn of it.
    let after = one.generation("products").await.unwrap();
    assert!(
        after.is_some() && after != before,
        "{before:?} -> {after:?}"
    );
    assert_eq!(two.generation("products").await.unwrap(), after);

    // Another prefix is another cache.
    let other = RedisCache::new(&connect(common::settings("shared-other")).await.unwrap());
    one.put("products", "p1", b"v", MINUTE).await.unwrap();
    assert_eq!(other.get("products", "p1").await.unwrap(), None);
}

#[tokio::test]
async fn keys_follow_the_documented_layout() {
    let settings = common::settings("layout");
    let prefix = settings.prefix.clone();
    let redis = connect(settings).await.unwrap();
    let cache = RedisCache::new(&redis);
    cache.put("products", "p1", b"v", MINUTE).await.unwrap();

    let mut raw = common::raw(&common::redis_url()).await;
    let gen_key = format!("{prefix}:products:gen");
    let generation: String = raw.get(&gen_key).await.unwrap();
    let value_key = format!("{prefix}:products:{generation}:p1");
    let value: Vec<u8> = raw.get(&value_key).await.unwrap();
    assert_eq!(value, b"v");
    let ttl: i64 = raw.pttl(&value_key).await.unwrap();
    assert!(
        (1..=60_000).contains(&ttl),
        "value expires with its TTL: {ttl}"
    );
    let gen_ttl: i64 = raw.pttl(&gen_key).await.unwrap();
    assert_eq!(gen_ttl, -1, "the generation itself never expires");

    cache.invalidate("products").await.unwrap();
    let next: i64 = raw.get(&gen_key).await.unwrap();
    assert_eq!(next, generation.parse::<i64>().unwrap() + 1, "one INCR");
}

#[tokio::test]
async fn a_lost_generation_key_never_resurrects_old_values() {
    let settings = common::settings("lost-gen");
    let prefix = settings.prefix.clone();
    let cache = RedisCache::new(&connect(settings).await.unwrap());
    cache.put("products", "p1", b"old", MINUTE).await.unwrap();

    // As if evicted under memory pressure.
    let mut raw = common::raw(&common::redis_url()).await;
    let _: () = raw.del(format!("{prefix}:products:gen")).await.unwrap();
    assert_eq!(cache.get("products", "p1").await.unwrap(), None);

    cache.put("products", "p2", b"new", MINUTE).await.unwrap();
    assert_eq!(
        cache.get("products", "p1").await.unwrap(),
        None,
        "old stays gone"
    );
    assert_eq!(
        cache.get("products", "p2").await.unwrap().as_deref(),
        Some(&b"new"[..])
    );

    // Invalidating a namespace whose generation was lost also starts a fresh one.
    let _: () = raw.del(format!("{prefix}:products:gen")).await.unwrap();
    cache.invalidate("products").await.unwrap();
    assert_eq!(cache.get("products", "p2").await.unwrap(), None);
}

#[tokio::test]
async fn a_value_loaded_before_an_invalidation_is_not_stored_after_it() {
    let settings = common::settings("lookup-race");
    let reader = RedisCache::new(&connect(settings.clone()).await.unwrap());
    let writer = RedisCache::new(&connect(settings).await.unwrap());

    // A miss on a namespace never used still names a generation.
    let miss = reader.lookup("products", "p1").await.unwrap();
    assert_eq!(miss.value, None);
    let token = miss.token.expect("a generation token");
    // Another instance changes the catalog and invalidates while this one loads.
    writer.invalidate("products").await.unwrap();
    reader
        .put_if_current("products", "p1", b"stale", MINUTE, Some(&token))
        .await
        .unwrap();
    assert_eq!(
        reader.lookup("products", "p1").await.unwrap().value,
        None,
        "the stale value was dropped"
    );
    // Loaded after the invalidation, it is stored and served.
    let fresh = reader.lookup("products", "p1").await.unwrap();
    reader
        .put_if_current("products", "p1", b"fresh", MINUTE, fresh.token.as_deref())
        .await
        .unwrap();
    let hit = writer.lookup("products", "p1").await.unwrap();
    assert_eq!(hit.value.as_deref(), Some(&b"fresh"[..]));
    assert_eq!(hit.token, fresh.token, "the generation did not move");
    assert_eq!(
        writer.get("products", "p1").await.unwrap().as_deref(),
        Some(&b"fresh"[..]),
        "get and lookup read the same entries"
    );
}
