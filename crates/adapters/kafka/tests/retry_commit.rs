//! A failing handler sees the same event again, offsets move only past applied events,
//! and a later run of the same group starts after what was committed.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use jangteo_core::events::EventPublisher;
use jangteo_kafka::{ensure_topics, KafkaConsumer, KafkaPublisher, RunSummary};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

fn start(
    settings: &jangteo_kafka::KafkaSettings,
    recorder: &std::sync::Arc<Recorder>,
) -> (oneshot::Sender<()>, JoinHandle<RunSummary>) {
    let consumer = KafkaConsumer::new(settings, recorder.clone()).expect("consumer");
    let (stop, stopped) = oneshot::channel::<()>();
    let run = tokio::spawn(consumer.run(async {
        let _ = stopped.await;
    }));
    (stop, run)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_events_are_retried_and_committed_only_after_success() {
    let settings = settings("retry");
    ensure_topics(&settings).await.expect("create topics");
    let publisher = KafkaPublisher::new(&settings).expect("publisher");
    let published = events(&aggregates(6), 60);
    publisher.publish(&published).await.expect("publish");
    // Where each event landed, to check committed offsets against.
    let raw = read_raw(&settings, published.len(), Duration::from_secs(30)).await;
    let place: HashMap<String, (String, i32, i64)> = raw
        .iter()
        .map(|m| {
            let v: serde_json::Value =
                serde_json::from_slice(m.payload.as_deref().unwrap()).unwrap();
            (
                v["id"].as_str().unwrap().to_string(),
                (m.topic.clone(), m.partition, m.offset),
            )
        })
        .collect();

    let stuck = &published[25];
    // A later event of the same aggregate: it shares `stuck`'s partition and comes after
    // it, so run 1 never reaches it. (An event of another partition may be handled in
    // run 1 already, or share a retried batch with `stuck`, and be attempted there.)
    let flaky = published[26..]
        .iter()
        .rev()
        .find(|e| e.aggregate_id == stuck.aggregate_id)
        .expect("a later event of the stuck aggregate");
    let recorder = Recorder::new("retrying");
    let group = settings.group_id("retrying");

    // Run 1: `stuck` keeps failing. The runner retries that same message and does not
    // go past it; then the process "stops" while the event is still unapplied.
    recorder.fail(stuck.id, None);
    let (stop, run) = start(&settings, &recorder);
    wait_for(
        "three attempts of the failing event",
        Duration::from_secs(30),
        || recorder.attempts(stuck.id) >= 3,
    )
    .await;
    let later_same_aggregate: Vec<_> = published[26..]
        .iter()
        .filter(|e| e.aggregate_id == stuck.aggregate_id)
        .map(|e| e.id)
        .collect();
    let applied = recorder.applied_ids();
    assert!(!applied.contains(&stuck.id));
    assert!(
        later_same_aggregate
            .iter()
            .all(|id| recorder.attempts(*id) == 0),
        "nothing after the failing event of its aggregate was handed to the handler"
    );
    let _ = stop.send(());
    let first = run.await.expect("run 1");
    assert!(first.retries >= 3, "{first:?}");
    let (topic, partition, offset) = place[&stuck.id.to_string()].clone();
    let offsets = committed(&settings, &group);
    let done = offsets.get(&(topic.clone(), partition)).copied().flatten();
    assert!(
        done.is_none_or(|next| next <= offset),
        "committed {done:?} past the unapplied event at {topic}/{partition}@{offset}"
    );

    // Run 2 (same group): `stuck` is delivered again and now succeeds; `flaky` fails
    // once and is retried within the run. Every event ends up applied, in order.
    recorder.heal(stuck.id);
    recorder.fail(flaky.id, Some(1));
    let (stop, run) = start(&settings, &recorder);
    wait_for("every event applied", Duration::from_secs(60), || {
        recorder.applied_ids().len() == published.len()
    })
    .await;
    let _ = stop.send(());
    let second = run.await.expect("run 2");
    assert!(
        recorder.attempts(stuck.id) >= 4,
        "the failed event came back"
    );
    assert_eq!(
        recorder.attempts(flaky.id),
        2,
        "failed once, applied on the retry"
    );
    assert!(second.retries >= 1, "{second:?}");
    assert_per_aggregate_order(&published, &recorder.applied());
    let offsets = committed(&settings, &group);
    for (place, high) in high_watermarks(&settings) {
        assert_eq!(
            offsets[&place].unwrap_or(0),
            high,
            "all committed for {place:?}"
        );
    }

    // Run 3 (same group) gets only what is new.
    let calls_before = recorder.calls();
    let fresh = events(&aggregates(1), 1);
    publisher.publish(&fresh).await.expect("publish");
    let (stop, run) = start(&settings, &recorder);
    wait_for("the new event", Duration::from_secs(30), || {
        recorder.applied_ids().contains(&fresh[0].id)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = stop.send(());
    let third = run.await.expect("run 3");
    assert_eq!(
        recorder.calls(),
        calls_before + 1,
        "no old event delivered again"
    );
    assert_eq!(third.handled, 1);
}
