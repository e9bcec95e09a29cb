//! A stopped broker makes publish fail within the message timeout (no hang); after a
//! restart the same publisher and the same running consumer carry on.

mod common;

use std::time::{Duration, Instant};

use common::*;
use jangteo_core::error::CoreError;
use jangteo_core::events::EventPublisher;
use jangteo_kafka::{ensure_topics, KafkaConsumer, KafkaPublisher};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_fails_in_bounded_time_while_the_broker_is_down_and_recovers() {
    // Its own broker: stopping the shared one would break the tests running beside it.
    let mut tansu = Tansu::start_fresh();
    let mut settings = settings_for(&tansu.brokers(), "restart");
    settings.message_timeout = Duration::from_secs(3);
    ensure_topics(&settings).await.expect("create topics");
    let publisher = KafkaPublisher::new(&settings).expect("publisher");
    let recorder = Recorder::new("survivor");
    let consumer = KafkaConsumer::new(&settings, recorder.clone()).expect("consumer");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(consumer.run(async {
        let _ = stopped.await;
    }));

    let aggregates = aggregates(8);
    let before = events(&aggregates, 200);
    publisher.publish(&before).await.expect("publish while up");
    wait_for(
        "events published before the outage",
        Duration::from_secs(30),
        || recorder.applied_ids().len() == before.len(),
    )
    .await;

    tansu.stop();
    let during = events(&aggregates, 200);
    let start = Instant::now();
    let outcome = publisher.publish(&during).await;
    let took = start.elapsed();
    eprintln!("publish with the broker down failed after {took:?}: {outcome:?}");
    match outcome {
        Err(CoreError::Unavailable(message)) => {
            assert!(message.starts_with("kafka: "), "{message}")
        }
        other => panic!("expected Unavailable while the broker is down, got {other:?}"),
    }
    // librdkafka scans for timed-out messages about once a second; the publisher's
    // own guard fires at message_timeout + 5 s.
    assert!(
        took <= settings.message_timeout + Duration::from_secs(5),
        "publish took {took:?} with message_timeout {:?}: not bounded",
        settings.message_timeout
    );

    // Same port, same storage directory: topics, records and committed offsets are back.
    tansu.start();
    // Like the outbox relay: the failed batch is published again until it succeeds
    // (an attempt may still hit the reconnect backoff). This also covers the producer
    // replaced after the failure: librdkafka's locally bumped epoch crashed tansu.
    let start = Instant::now();
    let mut attempts = 0;
    loop {
        attempts += 1;
        match publisher.publish(&during).await {
            Ok(()) => break,
            Err(e) if start.elapsed() < Duration::from_secs(10) => {
                eprintln!("publish after restart, attempt {attempts}: {e}");
            }
            Err(e) => panic!("publish still failing 10 s after the restart: {e}"),
        }
    }
    eprintln!(
        "publish after restart succeeded in {:?} ({attempts} attempt(s))",
        start.elapsed()
    );
    let after = events(&aggregates, 200);
    publisher
        .publish(&after)
        .await
        .expect("publish after recovery");

    // The consumer started before the outage reconnected by itself and got everything.
    let all: Vec<_> = before
        .iter()
        .chain(&during)
        .chain(&after)
        .cloned()
        .collect();
    wait_for(
        "every event after the restart",
        Duration::from_secs(60),
        || {
            let applied = recorder.applied_ids();
            all.iter().all(|e| applied.contains(&e.id))
        },
    )
    .await;
    assert_per_aggregate_order(&all, &recorder.applied());
    let _ = stop.send(());
    let summary = run.await.expect("consumer task");
    eprintln!("consumer across the restart: {summary:?}");
}
