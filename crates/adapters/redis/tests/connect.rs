//! `connect`: what it refuses, and that it accepts a live Redis.

mod common;

use std::time::Duration;

use jangteo_redis::{connect, RedisError, RedisSettings};

#[tokio::test]
async fn malformed_urls_are_refused_with_the_password_hidden() {
    for url in [
        "",
        "not a url",
        "http://127.0.0.1:6379",
        "redis://127.0.0.1:notaport",
        "redis://:hunter2@127.0.0.1:6379/notadb",
    ] {
        match connect(RedisSettings::new(url)).await {
            Err(e @ RedisError::InvalidUrl { .. }) => {
                let msg = e.to_string();
                assert!(msg.starts_with("invalid Redis URL"), "{msg}");
                assert!(!msg.contains("hunter2"), "password leaked: {msg}");
            }
            other => panic!("{url:?}: expected InvalidUrl, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn impossible_settings_are_refused() {
    let url = "redis://127.0.0.1:1";
    let bad = [
        RedisSettings::new(url).with_prefix(""),
        RedisSettings::new(url).with_prefix("has space"),
        RedisSettings {
            connect_timeout: Duration::ZERO,
            ..RedisSettings::new(url)
        },
        RedisSettings {
            response_timeout: Duration::ZERO,
            ..RedisSettings::new(url)
        },
    ];
    for s in bad {
        assert!(
            matches!(
                connect(s.clone()).await,
                Err(RedisError::InvalidSettings(_))
            ),
            "{s:?}"
        );
    }
}

#[tokio::test]
async fn defaults_are_the_documented_ones() {
    let s = RedisSettings::default();
    assert_eq!(s.url, "redis://127.0.0.1:6379");
    assert_eq!(s.prefix, "jangteo");
    assert_eq!(s.connect_timeout, Duration::from_millis(250));
    assert_eq!(s.response_timeout, Duration::from_millis(250));
    assert_eq!(s.cooldown, Duration::from_secs(1));
}

#[tokio::test]
async fn a_live_redis_connects_and_pings() {
    let redis = connect(common::settings("ping")).await.unwrap();
    assert!(!redis.is_degraded());
    redis.ping().await.unwrap();
}
