//! `RedisRateLimiter` against a real Redis (`JANGTEO_TEST_REDIS_URL`).

mod common;

use std::time::Duration;

use jangteo_core::auth::RateLimiter;
use jangteo_core::CoreError;
use jangteo_redis::{connect, RedisRateLimiter};
use redis::AsyncCommands;

const MINUTE: Duration = Duration::from_secs(60);

fn retry_after(r: Result<(), CoreError>) -> Option<u64> {
    match r {
        Ok(()) => None,
        Err(CoreError::RateLimited { retry_after_secs }) => Some(retry_after_secs),
        Err(e) => panic!("the limiter must only ever answer RateLimited, got {e:?}"),
    }
}

#[tokio::test]
async fn blocks_after_limit_failures_per_key() {
    let limiter = connect(common::settings("limit"))
        .await
        .unwrap()
        .rate_limiter();
    for _ in 0..3 {
        limiter.check("k", 3, MINUTE).await.unwrap();
        limiter.acquire("k", u32::MAX, MINUTE).await.unwrap();
    }
    assert!(retry_after(limiter.check("k", 3, MINUTE).await).is_some());
    limiter.check("k", 4, MINUTE).await.unwrap();
    limiter.check("other", 3, MINUTE).await.unwrap();
}

#[tokio::test]
async fn counts_are_shared_by_two_instances() {
    let settings = common::settings("shared-limit");
    let one = RedisRateLimiter::new(&connect(settings.clone()).await.unwrap());
    let two = RedisRateLimiter::new(&connect(settings).await.unwrap());
    one.acquire("login:acct:a@b.co", u32::MAX, MINUTE)
        .await
        .unwrap();
    two.acquire("login:acct:a@b.co", u32::MAX, MINUTE)
        .await
        .unwrap();
    one.check("login:acct:a@b.co", 3, MINUTE).await.unwrap();
    two.acquire("login:acct:a@b.co", u32::MAX, MINUTE)
        .await
        .unwrap();
    assert!(retry_after(one.check("login:acct:a@b.co", 3, MINUTE).await).is_some());
    assert!(retry_after(two.check("login:acct:a@b.co", 3, MINUTE).await).is_some());

    one.reset("login:acct:a@b.co").await.unwrap();
    two.check("login:acct:a@b.co", 3, MINUTE).await.unwrap();
}

#[tokio::test]
async fn the_window_expires() {
    let limiter = connect(common::settings("window"))
        .await
        .unwrap()
        .rate_limiter();
    let window = Duration::from_millis(400);
    limiter.acquire("k", u32::MAX, window).await.unwrap();
    limiter.acquire("k", u32::MAX, window).await.unwrap();
    assert_eq!(retry_after(limiter.check("k", 2, window).await), Some(1));
    tokio::time::sleep(Duration::from_millis(550)).await;
    limiter.check("k", 2, window).await.unwrap();
    // A new window starts with the next failure.
    limiter.acquire("k", u32::MAX, window).await.unwrap();
    limiter.check("k", 2, window).await.unwrap();
}

#[tokio::test]
async fn the_window_starts_at_the_first_failure_and_is_not_extended() {
    let settings = common::settings("fixed-window");
    let key = format!("{}:ratelimit:k", settings.prefix);
    let limiter = connect(settings).await.unwrap().rate_limiter();
    let window = Duration::from_secs(10);
    limiter.acquire("k", u32::MAX, window).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    limiter.acquire("k", u32::MAX, window).await.unwrap();

    let mut raw = common::raw(&common::redis_url()).await;
    let count: i64 = raw.get(&key).await.unwrap();
    assert_eq!(count, 2);
    let pttl: i64 = raw.pttl(&key).await.unwrap();
    assert!(
        (1..=9_750).contains(&pttl),
        "the second failure must not restart the window: pttl {pttl}"
    );
}

#[tokio::test]
async fn retry_after_is_the_time_left_in_the_window() {
    let limiter = connect(common::settings("retry"))
        .await
        .unwrap()
        .rate_limiter();
    limiter.acquire("k", u32::MAX, MINUTE).await.unwrap();
    let secs = retry_after(limiter.check("k", 1, MINUTE).await).unwrap();
    assert!((59..=60).contains(&secs), "{secs}");

    let window = Duration::from_millis(2_500);
    limiter.acquire("short", u32::MAX, window).await.unwrap();
    let secs = retry_after(limiter.check("short", 1, window).await).unwrap();
    assert_eq!(secs, 3, "rounded up, never 0");
}

#[tokio::test]
async fn reset_forgets_a_key() {
    let settings = common::settings("reset");
    let key = format!("{}:ratelimit:k", settings.prefix);
    let limiter = connect(settings).await.unwrap().rate_limiter();
    for _ in 0..5 {
        limiter.acquire("k", u32::MAX, MINUTE).await.unwrap();
    }
    limiter.acquire("kept", u32::MAX, MINUTE).await.unwrap();
    assert!(retry_after(limiter.check("k", 5, MINUTE).await).is_some());
    limiter.reset("k").await.unwrap();
    limiter.check("k", 5, MINUTE).await.unwrap();
    let mut raw = common::raw(&common::redis_url()).await;
    let exists: bool = raw.exists(&key).await.unwrap();
    assert!(!exists, "reset deletes the counter");
    assert!(retry_after(limiter.check("kept", 1, MINUTE).await).is_some());
    limiter.reset("never-seen").await.unwrap();
}

/// Attempts sent at once, from two instances: exactly `limit` are counted and pass,
/// whatever the interleaving; a released attempt frees its place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempts_at_once_pass_only_up_to_the_limit() {
    let settings = common::settings("burst");
    let one = RedisRateLimiter::new(&connect(settings.clone()).await.unwrap());
    let two = RedisRateLimiter::new(&connect(settings).await.unwrap());
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let l = if i % 2 == 0 { one.clone() } else { two.clone() };
            tokio::spawn(async move { l.acquire("k", 10, MINUTE).await })
        })
        .collect();
    let mut passed = 0;
    for t in tasks {
        passed += usize::from(retry_after(t.await.unwrap()).is_none());
    }
    assert_eq!(passed, 10);
    one.release("k").await.unwrap();
    two.acquire("k", 10, MINUTE).await.unwrap();
    assert!(retry_after(one.acquire("k", 10, MINUTE).await).is_some());
}
