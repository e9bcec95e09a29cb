//! Domain events, the in-process bus, and the outbox relay.
//!
//! Use cases write events into the outbox in the same transaction as the change. The
//! relay reads committed rows, hands them to an [`EventPublisher`] (the in-process bus
//! in the embedded setup, Kafka in production) and marks them sent only after the
//! publisher succeeded, so delivery is at-least-once and consumers dedupe by event id.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, Notify};

use crate::error::{CoreError, CoreResult};
use crate::ids::EventId;
use crate::ports::Store;

/// Version of the envelope and payload shapes; bumped on breaking changes.
pub const SCHEMA_VERSION: u32 = 1;

/// A domain event in its envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainEvent {
    /// Unique id; consumers dedupe on it.
    pub id: EventId,
    /// `order.placed`, `product.updated`, ...
    #[serde(rename = "type")]
    pub event_type: String,
    /// Payload shape version.
    pub schema_version: u32,
    /// `product`, `order`, `inventory`, `customer`: also the Kafka topic suffix.
    pub aggregate_type: String,
    /// Id of the entity; the partition key, so order is kept per entity.
    pub aggregate_id: String,
    /// When the change happened.
    pub occurred_at: DateTime<Utc>,
    /// Event data.
    pub payload: serde_json::Value,
}

impl DomainEvent {
    /// A new event.
    pub fn new(
        event_type: &str,
        aggregate_type: &str,
        aggregate_id: impl ToString,
        occurred_at: DateTime<Utc>,
        payload: serde_json::Value,
    ) -> Self {
        DomainEvent {
            id: EventId::new(),
            event_type: event_type.to_string(),
            schema_version: SCHEMA_VERSION,
            aggregate_type: aggregate_type.to_string(),
            aggregate_id: aggregate_id.to_string(),
            occurred_at,
            payload,
        }
    }
}

/// Where the relay sends committed events.
#[async_trait]
pub trait EventPublisher: Send + Sync + std::fmt::Debug {
    /// Publishes a batch; returns only when every event is accepted (acknowledged).
    async fn publish(&self, events: &[DomainEvent]) -> CoreResult<()>;
}

/// Something that reacts to events: a notification sender, a statistics projection, a
/// cache invalidator. Transports (the in-process bus, a Kafka consumer group) hand every
/// event over at least once, in batches ([`apply_batch`]); the handler makes repeated
/// deliveries harmless (it records the event ids it applied).
#[async_trait]
pub trait EventHandler: Send + Sync + std::fmt::Debug {
    /// A stable name: the Kafka consumer group suffix and the key under which applied
    /// event ids are recorded.
    fn name(&self) -> &str;
    /// Whether this handler wants events of this type (others are skipped cheaply).
    fn wants(&self, event_type: &str) -> bool;

    /// The aggregate types ([`DomainEvent::aggregate_type`]) of every event this
    /// handler wants, or `None` for any. Transports that keep aggregate types apart
    /// read only these (the Kafka consumer subscribes to their topics alone), so an
    /// event of a type left out here never reaches the handler there.
    fn aggregate_types(&self) -> Option<&[&str]> {
        None
    }
    /// Applies one event. An error means "not applied, deliver again later".
    async fn handle(&self, event: &DomainEvent) -> CoreResult<()>;

    /// Applies several wanted events in delivery order. Transports pass what they have
    /// at hand (a relay batch, the messages a Kafka consumer has fetched), so a handler
    /// that writes can use one transaction for all of them instead of one per event.
    ///
    /// An error means "deliver the whole batch again": events already applied come
    /// back, which handlers absorb as they absorb any repeated delivery. An `Internal`
    /// error means some event can never be applied; [`apply_batch`] then hands the
    /// events over one at a time to skip just that one. The default applies them one
    /// by one and stops at the first error, so nothing after a failed event is applied.
    async fn handle_batch(&self, events: &[&DomainEvent]) -> CoreResult<()> {
        for event in events {
            self.handle(event).await?;
        }
        Ok(())
    }
}

/// What [`apply_batch`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchApplied {
    /// Events applied.
    pub applied: usize,
    /// Events the handler called unusable (`CoreError::Internal`) and that were skipped.
    pub skipped: usize,
}

/// Hands `events` (all wanted by `handler`) to [`EventHandler::handle_batch`]. When the
/// batch holds an event that can never be applied, falls back to one event at a time
/// and skips that one (logged), so it cannot block the events behind it. Any other
/// error is returned: the caller delivers the batch again later.
pub async fn apply_batch(
    handler: &dyn EventHandler,
    events: &[&DomainEvent],
) -> CoreResult<BatchApplied> {
    let result = apply_batch_inner(handler, events).await;
    // Per consumer: applied (redeliveries included: a handler that dedupes still
    // counts them), skipped as unusable, and batches that failed and come again.
    let name = || handler.name().to_string();
    match &result {
        Ok(done) => {
            metrics::counter!("jangteo_events_applied_total", "handler" => name())
                .increment(done.applied as u64);
            // Event age when applied: the consumer's lag, in time rather than offsets.
            let now = chrono::Utc::now();
            let age =
                metrics::histogram!("jangteo_event_age_at_apply_seconds", "handler" => name());
            for e in events {
                let micros = (now - e.occurred_at).num_microseconds().unwrap_or(i64::MAX);
                age.record(micros.max(0) as f64 / 1e6);
            }
            if done.skipped > 0 {
                metrics::counter!("jangteo_events_skipped_total", "handler" => name())
                    .increment(done.skipped as u64);
            }
        }
        Err(_) => metrics::counter!("jangteo_event_batch_failures_total", "handler" => name())
            .increment(1),
    }
    result
}

async fn apply_batch_inner(
    handler: &dyn EventHandler,
    events: &[&DomainEvent],
) -> CoreResult<BatchApplied> {
    if events.is_empty() {
        return Ok(BatchApplied::default());
    }
    match handler.handle_batch(events).await {
        Ok(()) => {
            return Ok(BatchApplied {
                applied: events.len(),
                skipped: 0,
            })
        }
        Err(CoreError::Internal(_)) => {}
        Err(other) => return Err(other),
    }
    let mut done = BatchApplied::default();
    for event in events {
        match handler.handle(event).await {
            Ok(()) => done.applied += 1,
            Err(error @ CoreError::Internal(_)) => {
                tracing::error!(
                    handler = handler.name(),
                    event_id = %event.id,
                    event_type = %event.event_type,
                    %error,
                    "event cannot be applied; skipped"
                );
                done.skipped += 1;
            }
            Err(other) => return Err(other),
        }
    }
    Ok(done)
}

fn _assert_object_safe(_: &dyn EventPublisher, _: &dyn EventHandler) {}

/// The embedded bus: a broadcast channel inside the process.
#[derive(Debug, Clone)]
pub struct InProcessBus {
    tx: broadcast::Sender<Arc<DomainEvent>>,
}

impl InProcessBus {
    /// A bus whose subscribers may lag `capacity` events before they miss some.
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity);
        InProcessBus { tx }
    }

    /// A new subscription receiving every event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<DomainEvent>> {
        self.tx.subscribe()
    }
}

impl Default for InProcessBus {
    fn default() -> Self {
        InProcessBus::new(4096)
    }
}

#[async_trait]
impl EventPublisher for InProcessBus {
    async fn publish(&self, events: &[DomainEvent]) -> CoreResult<()> {
        for e in events {
            // No subscriber is not an error: the event is still recorded in the outbox.
            let _ = self.tx.send(Arc::new(e.clone()));
        }
        Ok(())
    }
}

/// Moves committed outbox rows to a publisher.
#[derive(Debug, Clone)]
pub struct OutboxRelay {
    store: Arc<dyn Store>,
    publisher: Arc<dyn EventPublisher>,
    wake: Arc<Notify>,
    batch: u32,
    holder: String,
    lease_ttl: Duration,
}

impl OutboxRelay {
    /// A relay; `wake` is notified by use cases after they commit, so events leave at
    /// once instead of waiting for the next poll.
    pub fn new(
        store: Arc<dyn Store>,
        publisher: Arc<dyn EventPublisher>,
        wake: Arc<Notify>,
    ) -> Self {
        OutboxRelay {
            store,
            publisher,
            wake,
            // Large batches: a broker acknowledges a batch in about the time it takes
            // for one message, so the backlog drains faster; a quiet outbox sends
            // whatever is there.
            batch: 2000,
            holder: format!("relay-{}", uuid::Uuid::new_v4()),
            lease_ttl: Duration::from_secs(15),
        }
    }

    /// Rows per batch (default 2,000).
    pub fn batch(mut self, batch: u32) -> Self {
        self.batch = batch.max(1);
        self
    }

    /// How long the lease lasts without renewal (default 15 s): how long a relay that
    /// died holds the others back. The relay renews it before every batch and every
    /// third of it while a batch is with the broker, so a slow publish keeps it; only a
    /// relay whose database stops answering for longer loses it, and the batch it had
    /// in flight may then be published again (consumers dedupe).
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl.max(Duration::from_secs(1));
        self
    }

    /// This relay's name in the outbox lease (default: random per relay).
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Publishes everything pending now; returns how many events were sent. Does
    /// nothing while another relay holds the outbox lease.
    ///
    /// Batches overlap: while one batch waits for the broker's acknowledgements, the
    /// previous one is marked sent and the next one is read (leaving out the batch in
    /// flight), so the database work hides behind the broker's. A batch is still
    /// published only after the one before it was acknowledged, which keeps each
    /// entity's events in order.
    pub async fn drain(&self) -> CoreResult<usize> {
        let mut sent = 0;
        // Acknowledged, not yet marked sent.
        let mut acked: Vec<i64> = Vec::new();
        let result = self.drain_overlapped(&mut sent, &mut acked).await;
        // What the broker acknowledged is marked even when a later step failed, so it
        // is not published again.
        if !acked.is_empty() {
            self.store.outbox_mark_sent(&acked).await?;
            sent += acked.len();
        }
        result.map(|()| sent)
    }

    async fn drain_overlapped(&self, sent: &mut usize, acked: &mut Vec<i64>) -> CoreResult<()> {
        let mut next = None;
        loop {
            // Renewed before every batch: a relay that stalls longer than the lease
            // loses it, and the one that takes over may publish a batch again, which
            // consumers absorb by event id.
            if !self
                .store
                .outbox_lease(&self.holder, self.lease_ttl)
                .await?
            {
                return Ok(());
            }
            let rows = match next.take() {
                Some(rows) => rows,
                None => {
                    self.store
                        .outbox_pending_skipping(self.batch, acked)
                        .await?
                }
            };
            if rows.is_empty() {
                return Ok(());
            }
            let t0 = std::time::Instant::now();
            let events: Vec<DomainEvent> = rows.iter().map(|r| r.event.clone()).collect();
            let in_flight: Vec<i64> = rows.iter().map(|r| r.seq).collect();
            let behind = async {
                if !acked.is_empty() {
                    self.store.outbox_mark_sent(acked).await?;
                    *sent += acked.len();
                    acked.clear();
                }
                // A full batch suggests more: read it now, leaving out the one in flight.
                let more = if rows.len() as u32 >= self.batch {
                    Some(
                        self.store
                            .outbox_pending_skipping(self.batch, &in_flight)
                            .await?,
                    )
                } else {
                    None
                };
                Ok::<_, crate::CoreError>((t0.elapsed(), more))
            };
            let publish = async { (self.publisher.publish(&events).await, t0.elapsed()) };
            // The lease is renewed while the broker holds the batch, so it can be short
            // (a relay that dies hands over within one TTL) however slow a publish is.
            // Joined, not raced: a renewal waiting for the database (SQLite's single
            // writer) must not stop `behind` from finishing the write it waits for.
            let finished = Notify::new();
            let work = async {
                let done = tokio::join!(publish, behind);
                finished.notify_one();
                done
            };
            let heartbeat = async {
                loop {
                    tokio::select! {
                        _ = finished.notified() => return,
                        _ = tokio::time::sleep(self.lease_ttl / 3) => {}
                    }
                    match self.store.outbox_lease(&self.holder, self.lease_ttl).await {
                        Ok(true) => {}
                        // Another relay holds it (this one stalled past its TTL): do not
                        // take it back while the batch finishes; the next round asks.
                        Ok(false) => {
                            tracing::warn!(
                                "outbox lease lost during a publish; this batch may go out twice"
                            );
                            return;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "outbox lease not renewed during a publish")
                        }
                    }
                }
            };
            let (((published, published_in), behind), ()) = tokio::join!(work, heartbeat);
            let (behind_in, more) = behind?;
            published?;
            // Monitoring: how many left, and how long each took from the use case to
            // the broker's acknowledgement (the outbox latency budget is on its p99).
            metrics::counter!("jangteo_outbox_published_total").increment(events.len() as u64);
            let acked_at = chrono::Utc::now();
            let delivery = metrics::histogram!("jangteo_outbox_delivery_seconds");
            for e in &events {
                let secs = (acked_at - e.occurred_at)
                    .num_microseconds()
                    .unwrap_or(i64::MAX);
                delivery.record(secs.max(0) as f64 / 1e6);
            }
            *acked = in_flight;
            next = more;
            tracing::debug!(
                rows = rows.len(),
                publish_ms = published_in.as_millis() as u64,
                mark_and_read_ms = behind_in.as_millis() as u64,
                "relay batch"
            );
        }
    }

    /// Runs until `shutdown` resolves: drains on every wake-up and at least every
    /// `poll` (rows written by another process have no wake-up).
    pub async fn run(self, poll: Duration, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut backoff = poll;
        loop {
            match self.drain().await {
                Ok(_) => backoff = poll,
                Err(e) => {
                    metrics::counter!("jangteo_outbox_relay_errors_total").increment(1);
                    tracing::warn!(error = %e, "outbox relay failed; retrying");
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
            tokio::select! {
                _ = &mut shutdown => {
                    // Last drain so events of the final requests are not left behind,
                    // then the lease goes, so a relay elsewhere (the replacement in a
                    // rolling restart) takes over now rather than when it runs out.
                    let _ = self.drain().await;
                    if let Err(e) = self.store.outbox_release_lease(&self.holder).await {
                        tracing::warn!(error = %e, "outbox lease not released; it runs out by itself");
                    }
                    return;
                }
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(backoff) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Records calls; fails events whose type is `bad` (unusable) or `down` (retry).
    #[derive(Debug, Default)]
    struct Probe {
        batches: Mutex<Vec<usize>>,
        singles: Mutex<Vec<String>>,
    }

    #[async_trait]
    impl EventHandler for Probe {
        fn name(&self) -> &str {
            "probe"
        }
        fn wants(&self, _: &str) -> bool {
            true
        }
        async fn handle(&self, event: &DomainEvent) -> CoreResult<()> {
            self.singles
                .lock()
                .unwrap()
                .push(event.aggregate_id.clone());
            match event.event_type.as_str() {
                "bad" => Err(CoreError::Internal("unusable".into())),
                "down" => Err(CoreError::Unavailable("later".into())),
                _ => Ok(()),
            }
        }
        async fn handle_batch(&self, events: &[&DomainEvent]) -> CoreResult<()> {
            self.batches.lock().unwrap().push(events.len());
            if events.iter().any(|e| e.event_type == "bad") {
                return Err(CoreError::Internal("a bad one inside".into()));
            }
            if events.iter().any(|e| e.event_type == "down") {
                return Err(CoreError::Unavailable("later".into()));
            }
            Ok(())
        }
    }

    fn ev(event_type: &str, id: &str) -> DomainEvent {
        DomainEvent::new(event_type, "order", id, Utc::now(), serde_json::Value::Null)
    }

    #[tokio::test]
    async fn a_batch_goes_whole_and_an_unusable_event_is_skipped_alone() {
        let (a, b, bad, down) = (
            ev("ok", "a"),
            ev("ok", "b"),
            ev("bad", "x"),
            ev("down", "d"),
        );
        let probe = Probe::default();
        assert_eq!(
            apply_batch(&probe, &[&a, &b]).await.unwrap(),
            BatchApplied {
                applied: 2,
                skipped: 0
            }
        );
        assert!(probe.singles.lock().unwrap().is_empty(), "one batch call");
        assert_eq!(
            apply_batch(&probe, &[&a, &bad, &b]).await.unwrap(),
            BatchApplied {
                applied: 2,
                skipped: 1
            }
        );
        assert_eq!(*probe.singles.lock().unwrap(), ["a", "x", "b"]);
        assert!(matches!(
            apply_batch(&probe, &[&a, &down]).await,
            Err(CoreError::Unavailable(_))
        ));
        assert_eq!(*probe.batches.lock().unwrap(), [2, 3, 2]);
        assert_eq!(
            apply_batch(&probe, &[]).await.unwrap(),
            BatchApplied::default()
        );
    }

    /// A handler without its own batch method: one event at a time, stopping at the
    /// first failure so nothing after it is applied.
    #[derive(Debug, Default)]
    struct OneByOne(Mutex<Vec<String>>);

    #[async_trait]
    impl EventHandler for OneByOne {
        fn name(&self) -> &str {
            "one-by-one"
        }
        fn wants(&self, _: &str) -> bool {
            true
        }
        async fn handle(&self, event: &DomainEvent) -> CoreResult<()> {
            self.0.lock().unwrap().push(event.aggregate_id.clone());
            if event.event_type == "down" {
                return Err(CoreError::Unavailable("later".into()));
            }
            Ok(())
        }
    }

    #[tokio::test]
    async fn the_default_batch_stops_at_the_first_failure() {
        let h = OneByOne::default();
        let (a, down, b) = (ev("ok", "a"), ev("down", "d"), ev("ok", "b"));
        assert!(h.handle_batch(&[&a, &down, &b]).await.is_err());
        assert_eq!(*h.0.lock().unwrap(), ["a", "d"]);
    }
}
