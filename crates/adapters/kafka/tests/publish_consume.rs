//! The publisher's messages as a plain client sees them, and a consumer group reading
//! them back in order.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::*;
use jangteo_core::events::{DomainEvent, EventPublisher};
use jangteo_kafka::{ensure_topics, KafkaConsumer, KafkaPublisher};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_events_arrive_keyed_and_in_order_per_aggregate() {
    let settings = settings("roundtrip");
    ensure_topics(&settings).await.expect("create topics");
    // Idempotent: a second call finds every topic existing and is fine with it.
    ensure_topics(&settings)
        .await
        .expect("topics exist already");

    let aggregates = aggregates(20);
    let published = events(&aggregates, 2_000);
    let publisher = KafkaPublisher::new(&settings).expect("publisher");
    let start = Instant::now();
    for batch in published.chunks(500) {
        publisher.publish(batch).await.expect("publish");
    }
    eprintln!("published 2000 events in {:?}", start.elapsed());

    // What any client sees: topic per aggregate type, key = aggregate id, the envelope
    // as value, the two headers, one partition per aggregate, publish order within it.
    let read_start = Instant::now();
    let raw = read_raw(&settings, published.len(), Duration::from_secs(60)).await;
    eprintln!("a plain consumer read them in {:?}", read_start.elapsed());
    let by_id: HashMap<String, &DomainEvent> =
        published.iter().map(|e| (e.id.to_string(), e)).collect();
    let mut partition_of: HashMap<&str, (String, i32)> = HashMap::new();
    let mut last_offset: HashMap<&str, i64> = HashMap::new();
    let mut raw_order: HashMap<&str, Vec<(i64, String)>> = HashMap::new();
    for message in &raw {
        let value: serde_json::Value =
            serde_json::from_slice(message.payload.as_deref().expect("payload")).expect("json");
        for field in [
            "id",
            "type",
            "schema_version",
            "aggregate_type",
            "aggregate_id",
            "occurred_at",
            "payload",
        ] {
            assert!(
                value.get(field).is_some(),
                "envelope lacks `{field}`: {value}"
            );
        }
        let id = value["id"].as_str().expect("id string");
        let event = by_id.get(id).expect("a published event");
        assert_eq!(
            value,
            serde_json::to_value(event).unwrap(),
            "envelope = DomainEvent as JSON"
        );
        assert_eq!(
            message.key.as_deref(),
            Some(event.aggregate_id.as_bytes()),
            "key"
        );
        assert_eq!(message.topic, settings.topic(&event.aggregate_type));
        let header = |name: &str| {
            message
                .headers
                .iter()
                .find(|(k, _)| k == name)
                .and_then(|(_, v)| v.clone())
                .map(|v| String::from_utf8(v).unwrap())
        };
        assert_eq!(
            header("event_type").as_deref(),
            Some(event.event_type.as_str())
        );
        assert_eq!(header("event_id"), Some(event.id.to_string()));
        let place = (message.topic.clone(), message.partition);
        let aggregate = event.aggregate_id.as_str();
        assert_eq!(
            partition_of
                .entry(aggregate)
                .or_insert_with(|| place.clone()),
            &place,
            "one aggregate, one partition"
        );
        if let Some(previous) = last_offset.insert(aggregate, message.offset) {
            assert!(
                previous < message.offset,
                "offsets grow within the partition"
            );
        }
        raw_order
            .entry(aggregate)
            .or_default()
            .push((message.offset, id.to_string()));
    }
    for (aggregate, mut got) in raw_order {
        got.sort();
        let want: Vec<String> = published
            .iter()
            .filter(|e| e.aggregate_id == aggregate)
            .map(|e| e.id.to_string())
            .collect();
        let got: Vec<String> = got.into_iter().map(|(_, id)| id).collect();
        assert_eq!(got, want, "offset order = publish order for {aggregate}");
    }
    assert_eq!(raw.len(), published.len(), "no duplicates");

    // The consumer runner applies exactly what was published, in order per aggregate.
    let recorder = Recorder::new("roundtrip");
    let consumer = KafkaConsumer::new(&settings, recorder.clone()).expect("consumer");
    let group = consumer.group_id().to_string();
    assert_eq!(group, format!("{}roundtrip", settings.group_prefix));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(consumer.run(async {
        let _ = stopped.await;
    }));
    wait_for("2000 applied events", Duration::from_secs(60), || {
        recorder.applied().len() >= published.len()
    })
    .await;
    eprintln!(
        "the consumer runner applied them in {:?}",
        read_start.elapsed()
    );
    let _ = stop.send(());
    let summary = run.await.expect("consumer task");
    let applied = recorder.applied();
    assert_eq!(applied.len(), published.len(), "each event exactly once");
    for event in &applied {
        assert_eq!(
            Some(&event),
            by_id.get(&event.id.to_string()),
            "applied as published"
        );
    }
    assert_per_aggregate_order(&published, &applied);
    assert_eq!(summary.handled, 2_000);
    assert_eq!((summary.malformed, summary.retries), (0, 0));

    // Everything was committed on shutdown.
    let committed = committed(&settings, &group);
    for (place, high) in high_watermarks(&settings) {
        let done = committed.get(&place).copied().flatten().unwrap_or(0);
        assert_eq!(done, high, "committed offset of {place:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_filter_skips_unwanted_types_and_unknown_aggregates_go_to_misc() {
    let settings = settings("filter");
    ensure_topics(&settings).await.expect("create topics");
    let publisher = KafkaPublisher::new(&settings).expect("publisher");
    let now = chrono::Utc::now();
    let events = vec![
        DomainEvent::new("order.placed", "order", "o-1", now, serde_json::json!({})),
        DomainEvent::new("order.paid", "order", "o-1", now, serde_json::json!({})),
        DomainEvent::new("cart.abandoned", "cart", "c-1", now, serde_json::json!({})),
        DomainEvent::new("order.paid", "order", "o-2", now, serde_json::json!({})),
    ];
    publisher.publish(&events).await.expect("publish");
    publisher
        .publish(&[])
        .await
        .expect("an empty batch is fine");

    let raw = read_raw(&settings, 4, Duration::from_secs(30)).await;
    let misc = raw
        .iter()
        .find(|m| m.key.as_deref() == Some(b"c-1".as_slice()))
        .expect("cart event");
    assert_eq!(misc.topic, format!("{}misc", settings.topic_prefix));

    let recorder = Recorder::new("paid-only");
    recorder.only("order.paid");
    let consumer = KafkaConsumer::new(&settings, recorder.clone()).expect("consumer");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(consumer.run(async {
        let _ = stopped.await;
    }));
    wait_for("both order.paid events", Duration::from_secs(30), || {
        recorder.applied().len() >= 2
    })
    .await;
    // The two unwanted events are read (and committed) without calling the handler.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = stop.send(());
    let summary = run.await.expect("consumer task");
    assert_eq!(
        recorder.calls(),
        2,
        "the handler is not called for unwanted types"
    );
    assert_eq!((summary.handled, summary.ignored), (2, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_reads_only_the_topics_of_its_aggregate_types() {
    let settings = settings("aggregates");
    ensure_topics(&settings).await.expect("create topics");
    let publisher = KafkaPublisher::new(&settings).expect("publisher");
    let published = events(&aggregates(8), 40);
    publisher.publish(&published).await.expect("publish");
    let orders: Vec<_> = published
        .iter()
        .filter(|e| e.aggregate_type == "order")
        .collect();
    assert_eq!(orders.len(), 10);

    let recorder = Recorder::new("orders-only");
    recorder.only_aggregates(&["order"]);
    let consumer = KafkaConsumer::new(&settings, recorder.clone()).expect("consumer");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(consumer.run(async {
        let _ = stopped.await;
    }));
    wait_for("the order events", Duration::from_secs(30), || {
        recorder.applied_ids().len() >= orders.len()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = stop.send(());
    let summary = run.await.expect("consumer task");
    // The other 30 events were never fetched: not even read and dropped as unwanted.
    assert_eq!((summary.handled, summary.ignored), (10, 0), "{summary:?}");
    assert!(recorder
        .applied()
        .iter()
        .all(|e| e.aggregate_type == "order"));
    let committed = committed(&settings, &settings.group_id("orders-only"));
    let orders_topic = settings.topic("order");
    let with_offsets: Vec<_> = committed
        .iter()
        .filter(|(_, offset)| offset.is_some_and(|o| o > 0))
        .map(|((topic, _), _)| topic.as_str())
        .collect();
    assert!(
        !with_offsets.is_empty() && with_offsets.iter().all(|t| *t == orders_topic),
        "offsets only on {orders_topic}: {committed:?}"
    );
}
