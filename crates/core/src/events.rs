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

use crate::error::CoreResult;
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
/// cache invalidator. Transports (the in-process bus, a Kafka consumer group) call
/// [`EventHandler::handle`] for every event at least once; the handler makes repeated
/// deliveries harmless (it records the event ids it applied).
#[async_trait]
pub trait EventHandler: Send + Sync + std::fmt::Debug {
    /// A stable name: the Kafka consumer group suffix and the key under which applied
    /// event ids are recorded.
    fn name(&self) -> &str;
    /// Whether this handler wants events of this type (others are skipped cheaply).
    fn wants(&self, event_type: &str) -> bool;
    /// Applies one event. An error means "not applied, deliver again later".
    async fn handle(&self, event: &DomainEvent) -> CoreResult<()>;
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

    /// How long the lease lasts without renewal (default 15 s). Must exceed the longest
    /// publish of one batch, or another relay may take over mid-batch and publish it
    /// again (consumers dedupe, but per-entity order may suffer).
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
    pub async fn drain(&self) -> CoreResult<usize> {
        let mut sent = 0;
        loop {
            // Renewed before every batch: a relay that stalls longer than the lease
            // loses it, and the one that takes over may publish a batch again, which
            // consumers absorb by event id.
            if !self
                .store
                .outbox_lease(&self.holder, self.lease_ttl)
                .await?
            {
                return Ok(sent);
            }
            let rows = self.store.outbox_pending(self.batch).await?;
            if rows.is_empty() {
                return Ok(sent);
            }
            let events: Vec<DomainEvent> = rows.iter().map(|r| r.event.clone()).collect();
            self.publisher.publish(&events).await?;
            let seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
            self.store.outbox_mark_sent(&seqs).await?;
            sent += rows.len();
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
                    tracing::warn!(error = %e, "outbox relay failed; retrying");
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
            tokio::select! {
                _ = &mut shutdown => {
                    // Last drain so events of the final requests are not left behind.
                    let _ = self.drain().await;
                    return;
                }
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(backoff) => {}
            }
        }
    }
}
