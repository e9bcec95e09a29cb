//! Messages that are not domain events are skipped (and committed), not retried.

mod common;

use std::time::Duration;

use common::*;
use jangteo_core::events::EventPublisher;
use jangteo_kafka::{ensure_topics, KafkaConsumer, KafkaPublisher};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_are_skipped_and_do_not_block_the_partition() {
    let settings = settings("malformed");
    ensure_topics(&settings).await.expect("create topics");
    let published = events(&[("order", "order-1".to_string())], 2);
    let topic = settings.topic("order");

    // A foreign producer writes junk between two real events of the same key, so all
    // land in one partition: the second event is only reachable past the junk.
    let publisher = KafkaPublisher::new(&settings).expect("publisher");
    publisher.publish(&published[..1]).await.expect("publish");
    let raw: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &settings.brokers)
        .create()
        .expect("producer");
    let junk: [&[u8]; 4] = [
        b"not json at all",
        br#"{"id": 1, "type": "order.placed"}"#,
        b"",
        br#"{"id":"0193c5a2-7f41-7d2e-9b1a-3c8e4f2a1b07","type":"order.placed","schema_version":1,"aggregate_type":"order","aggregate_id":"order-1","occurred_at":"not a time","payload":{}}"#,
    ];
    for bytes in junk {
        raw.send(
            FutureRecord::to(&topic).key("order-1").payload(bytes),
            Duration::from_secs(5),
        )
        .await
        .expect("send junk");
    }
    // A message without any value (a tombstone) is junk too.
    raw.send(
        FutureRecord::<str, [u8]>::to(&topic).key("order-1"),
        Duration::from_secs(5),
    )
    .await
    .expect("send tombstone");
    publisher.publish(&published[1..]).await.expect("publish");

    let recorder = Recorder::new("skipper");
    let consumer = KafkaConsumer::new(&settings, recorder.clone()).expect("consumer");
    let group = consumer.group_id().to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(consumer.run(async {
        let _ = stopped.await;
    }));
    wait_for("both real events", Duration::from_secs(30), || {
        recorder.applied_ids().len() == 2
    })
    .await;
    let _ = stop.send(());
    let summary = run.await.expect("consumer task");
    assert_eq!(summary.malformed, 5, "{summary:?}");
    assert_eq!(summary.handled, 2);
    assert_eq!(recorder.calls(), 2, "junk never reaches the handler");
    assert_per_aggregate_order(&published, &recorder.applied());

    // The junk's offsets were committed too: nothing is left for the group.
    let offsets = committed(&settings, &group);
    for (place, high) in high_watermarks(&settings) {
        assert_eq!(
            offsets[&place].unwrap_or(0),
            high,
            "all committed for {place:?}"
        );
    }
}
