//! A standard client nobody here wrote (Python confluent-kafka) reads and validates
//! what the publisher wrote: `tests/python/read_events.py`.
//!
//! Needs a Python with confluent-kafka: `${JANGTEO_TEST_PYTHON:-python3}`, e.g.
//! `python3 -m venv target/pyenv && target/pyenv/bin/pip install -r
//! crates/adapters/kafka/tests/python/requirements.txt` and
//! `JANGTEO_TEST_PYTHON=target/pyenv/bin/python`.

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;

use chrono::Utc;
use common::*;
use jangteo_core::events::{DomainEvent, EventPublisher};
use jangteo_kafka::{ensure_topics, KafkaPublisher};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_kafka_reads_every_event_with_a_valid_envelope() {
    let settings = settings("python");
    ensure_topics(&settings).await.expect("create topics");
    let mut published = events(&aggregates(12), 240);
    published.push(DomainEvent::new(
        "cart.abandoned",
        "cart",
        "cart-1",
        Utc::now(),
        serde_json::json!({"cart_id": "cart-1", "lines": [{"sku": "RG-30", "quantity": 2}]}),
    ));
    KafkaPublisher::new(&settings)
        .expect("publisher")
        .publish(&published)
        .await
        .expect("publish");

    let python = std::env::var("JANGTEO_TEST_PYTHON").unwrap_or_else(|_| "python3".to_string());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/read_events.py");
    let output = tokio::task::spawn_blocking({
        let (python, script, settings) = (python.clone(), script.clone(), settings.clone());
        let expect = published.len().to_string();
        move || {
            Command::new(&python)
                .arg(&script)
                .env("JANGTEO_KAFKA_BROKERS", &settings.brokers)
                .env("JANGTEO_KAFKA_TOPICS", settings.all_topics().join(","))
                .env("JANGTEO_KAFKA_EXPECT", expect)
                .env("JANGTEO_KAFKA_TIMEOUT", "60")
                .output()
        }
    })
    .await
    .expect("join")
    .unwrap_or_else(|e| panic!("cannot run `{python}` (set JANGTEO_TEST_PYTHON): {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if output.status.code() == Some(3) {
        panic!(
            "confluent_kafka is not importable by `{python}`: {stderr}\nInstall it: \
             python3 -m venv target/pyenv && target/pyenv/bin/pip install -r \
             crates/adapters/kafka/tests/python/requirements.txt, then set \
             JANGTEO_TEST_PYTHON=target/pyenv/bin/python"
        );
    }
    assert!(
        output.status.success(),
        "{} failed ({}):\n{stderr}\n{stdout}",
        script.display(),
        output.status
    );
    let seen: HashSet<String> = stdout
        .lines()
        .filter_map(|line| line.strip_prefix("EVENT "))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_string)
        .collect();
    let want: HashSet<String> = published.iter().map(|e| e.id.to_string()).collect();
    assert_eq!(
        seen, want,
        "the Python reader saw exactly the published event ids"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l == format!("OK {}", published.len())),
        "{stdout}"
    );
}
