//! Publishes N events the way the outbox relay does (sequential batches of 500, each
//! awaited until every event is acknowledged) and prints events/s and the per-batch
//! latency percentiles. A measurement, not a test.
//!
//! ```text
//! JANGTEO_TEST_KAFKA_BROKERS=127.0.0.1:9092 \
//!   cargo run --release -p jangteo-kafka --example relay_throughput -- [events] [batch]
//! ```
//!
//! Topics get a fresh `bench.<time>.` prefix, so runs do not mix.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chrono::Utc;
use jangteo_core::events::{DomainEvent, EventPublisher};
use jangteo_core::ids::EventId;
use jangteo_kafka::{ensure_topics, KafkaPublisher, KafkaSettings};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let total: usize = args
        .next()
        .map_or(20_000, |a| a.parse().expect("events: a number"));
    let batch: usize = args
        .next()
        .map_or(500, |a| a.parse().expect("batch: a number"));
    let brokers = std::env::var("JANGTEO_TEST_KAFKA_BROKERS")
        .or_else(|_| std::env::var("JANGTEO_KAFKA_BROKERS"))
        .expect("set JANGTEO_TEST_KAFKA_BROKERS (host:port of the broker)")
        .replace("tcp://", "");

    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let mut settings = KafkaSettings::new(brokers);
    settings.topic_prefix = format!("bench.{stamp}.");
    ensure_topics(&settings).await.expect("create topics");
    let publisher = KafkaPublisher::new(&settings).expect("publisher");

    // Order-sized payloads over 1,000 aggregates of the four types.
    let kinds = ["order", "product", "inventory", "customer"];
    let aggregates: Vec<String> = (0..1_000).map(|_| EventId::new().to_string()).collect();
    let events: Vec<DomainEvent> = (0..total)
        .map(|i| {
            let kind = kinds[i % kinds.len()];
            DomainEvent::new(
                &format!("{kind}.updated"),
                kind,
                &aggregates[i % aggregates.len()],
                Utc::now(),
                serde_json::json!({
                    "seq": i,
                    "email": "minji@example.com",
                    "totals": {"total": {"amount": "78000", "currency": "KRW"}},
                    "lines": [{"sku": "RG-STICK-30", "quantity": 2,
                               "unit_price": {"amount": "39000", "currency": "KRW"}}],
                }),
            )
        })
        .collect();

    // One warm-up batch: connection set-up and the idempotent producer id are not
    // steady-state costs.
    publisher
        .publish(&events[..1.min(events.len())])
        .await
        .expect("warm-up");

    let mut latencies: Vec<Duration> = Vec::with_capacity(total / batch + 1);
    let start = Instant::now();
    for chunk in events.chunks(batch) {
        let t = Instant::now();
        publisher.publish(chunk).await.expect("publish");
        latencies.push(t.elapsed());
    }
    let elapsed = start.elapsed();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "{total} events in {} batches of {batch}: {:.2?} total, {:.0} events/s; \
         batch latency p50 {:.2?}, p99 {:.2?}, max {:.2?}",
        latencies.len(),
        elapsed,
        total as f64 / elapsed.as_secs_f64(),
        pct(0.50),
        pct(0.99),
        latencies.last().copied().unwrap_or_default(),
    );
}
