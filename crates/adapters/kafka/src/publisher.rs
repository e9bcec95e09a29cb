//! The outbox relay's Kafka publisher.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use jangteo_core::error::{CoreError, CoreResult};
use jangteo_core::events::{DomainEvent, EventPublisher};
use rdkafka::error::KafkaError as RdError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;

use crate::context::TracingContext;
use crate::error::KafkaError;
use crate::settings::KafkaSettings;
use crate::topics::{topic_for, TOPIC_NAMES};

/// Message header carrying the event type, so consumers can filter without parsing.
pub const HEADER_EVENT_TYPE: &str = "event_type";
/// Message header carrying the event id, for deduplication without parsing.
pub const HEADER_EVENT_ID: &str = "event_id";

/// How long to wait before offering a message again when librdkafka's local queue is
/// full: long enough for delivery reports to free room, short next to a batch.
const QUEUE_FULL_PAUSE: Duration = Duration::from_millis(5);

type EventProducer = FutureProducer<TracingContext>;

/// Publishes domain events to Kafka: one topic per aggregate type
/// ([`KafkaSettings::topic`]), the aggregate id as key (so one entity's events share a
/// partition and keep their order), the event's JSON envelope as value, and the
/// [`HEADER_EVENT_TYPE`] / [`HEADER_EVENT_ID`] headers.
///
/// The producer is idempotent with `acks=all`: librdkafka's retries neither duplicate
/// nor reorder messages within a partition. Duplicates can still come from the relay
/// retrying a batch that failed half-way; consumers dedupe by event id.
pub struct KafkaPublisher {
    /// Replaced after any failed delivery and after a fatal error; see
    /// [`KafkaPublisher::retire`].
    producer: Mutex<Arc<EventProducer>>,
    settings: KafkaSettings,
    /// Full topic names, indexed like [`TOPIC_NAMES`], built once.
    topics: Vec<String>,
}

impl std::fmt::Debug for KafkaPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaPublisher")
            .field("brokers", &self.settings.brokers)
            .field("topic_prefix", &self.settings.topic_prefix)
            .finish_non_exhaustive()
    }
}

impl KafkaPublisher {
    /// A publisher; connects lazily (no broker round trip here), so it can be built
    /// while the broker is still starting.
    pub fn new(settings: &KafkaSettings) -> Result<Self, KafkaError> {
        settings.validate()?;
        let producer = create_producer(settings)?;
        Ok(KafkaPublisher {
            producer: Mutex::new(Arc::new(producer)),
            topics: settings.all_topics(),
            settings: settings.clone(),
        })
    }

    /// The current producer, recreated first if the old one hit a fatal error (the
    /// idempotent producer then refuses every message until it is replaced).
    fn producer(&self) -> CoreResult<Arc<EventProducer>> {
        let current = Arc::clone(&self.lock());
        if let Some((code, reason)) = current.client().fatal_error() {
            tracing::error!(%code, reason, "kafka producer hit a fatal error; recreating it");
            self.replace(&current)
                .map_err(|e| CoreError::Unavailable(format!("kafka: {e}")))?;
            return Ok(Arc::clone(&self.lock()));
        }
        Ok(current)
    }

    /// Replaces `used` (if still current) by a fresh producer after a failed delivery.
    ///
    /// After a message timeout, librdkafka's idempotent producer bumps its epoch
    /// locally and sends later batches with the new epoch. Kafka accepts that, but
    /// brokers that track producer epochs only from InitProducerId reject it; tansu
    /// 0.6 (our test broker) even crashes its storage on it. A fresh producer gets its
    /// id and epoch from the broker instead. Retrying the batch with a new producer id
    /// can only add duplicates, which consumers drop by event id.
    fn retire(&self, used: &Arc<EventProducer>) {
        if let Err(error) = self.replace(used) {
            tracing::warn!(%error, "cannot recreate the kafka producer");
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Arc<EventProducer>> {
        self.producer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Swaps in a new producer unless another call already replaced `used`.
    fn replace(&self, used: &Arc<EventProducer>) -> Result<(), KafkaError> {
        let mut guard = self.lock();
        if !Arc::ptr_eq(&guard, used) {
            return Ok(());
        }
        let old = std::mem::replace(&mut *guard, Arc::new(create_producer(&self.settings)?));
        drop(guard);
        // Dropping the last handle purges what is left and joins librdkafka's threads:
        // keep that off the async workers when there is a tokio runtime to hand it to.
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(move || drop(old))),
            Err(_) => drop(old),
        }
        Ok(())
    }

    fn full_topic(&self, aggregate_type: &str) -> &str {
        let name = topic_for(aggregate_type);
        let index = TOPIC_NAMES.iter().position(|t| *t == name).unwrap_or(0);
        &self.topics[index]
    }

    /// Enqueues one event, waiting while the local queue is full (until `deadline`).
    async fn enqueue(
        &self,
        producer: &EventProducer,
        event: &DomainEvent,
        deadline: Instant,
    ) -> CoreResult<DeliveryFuture> {
        let payload = serde_json::to_vec(event)
            .map_err(|e| CoreError::Internal(format!("kafka: cannot serialize event: {e}")))?;
        let id = event.id.to_string();
        let headers = OwnedHeaders::new_with_capacity(2)
            .insert(Header {
                key: HEADER_EVENT_TYPE,
                value: Some(event.event_type.as_str()),
            })
            .insert(Header {
                key: HEADER_EVENT_ID,
                value: Some(id.as_str()),
            });
        let mut record = FutureRecord::to(self.full_topic(&event.aggregate_type))
            .key(event.aggregate_id.as_str())
            .payload(&payload)
            .headers(headers);
        loop {
            match producer.send_result(record) {
                Ok(delivery) => return Ok(delivery),
                Err((RdError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    // Many batches in flight (or a broker that stopped acknowledging):
                    // wait for delivery reports to make room rather than fail at once.
                    if Instant::now() >= deadline {
                        return Err(unavailable(format!(
                            "local queue still full after {:?}",
                            self.settings.message_timeout
                        )));
                    }
                    record = back;
                    tokio::time::sleep(QUEUE_FULL_PAUSE).await;
                }
                Err((error, _)) => {
                    return Err(unavailable(format!("cannot enqueue event {id}: {error}")))
                }
            }
        }
    }
}

fn unavailable(message: String) -> CoreError {
    CoreError::Unavailable(format!("kafka: {message}"))
}

fn create_producer(settings: &KafkaSettings) -> Result<EventProducer, KafkaError> {
    let mut config = settings.base_config();
    config
        // Idempotence keeps librdkafka's own retries from duplicating or reordering
        // messages within a partition; it requires (and sets) acks=all, stated here
        // for the reader.
        .set("enable.idempotence", "true")
        .set("acks", "all")
        // The bound on a publish while the broker is unreachable.
        .set(
            "message.timeout.ms",
            settings.message_timeout.as_millis().to_string(),
        )
        // librdkafka's default; batches of up to 500 events fill a request well within it.
        .set("linger.ms", "5");
    settings.apply_extra(&mut config);
    config
        .create_with_context(TracingContext)
        .map_err(|e| KafkaError::Client(e.to_string()))
}

#[async_trait]
impl EventPublisher for KafkaPublisher {
    /// Enqueues the whole batch first, then waits for every acknowledgement: awaiting
    /// each send alone would cost a linger + round trip per event.
    async fn publish(&self, events: &[DomainEvent]) -> CoreResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        let producer = self.producer()?;
        let timeout = self.settings.message_timeout;
        let deadline = Instant::now() + timeout;
        let mut deliveries = Vec::with_capacity(events.len());
        for event in events {
            // On an error here some events of the batch may be out already; the relay
            // publishes the whole batch again and consumers drop the duplicates.
            match self.enqueue(&producer, event, deadline).await {
                Ok(delivery) => deliveries.push((event.id, delivery)),
                Err(error) => {
                    self.retire(&producer);
                    return Err(error);
                }
            }
        }
        // message.timeout.ms already bounds every delivery; this outer limit only
        // guards against a delivery report that never arrives.
        let awaited = tokio::time::timeout(timeout + Duration::from_secs(5), async {
            let mut failed = 0usize;
            let mut first = None;
            for (id, delivery) in deliveries {
                let error = match delivery.await {
                    Ok(Ok(_)) => continue,
                    Ok(Err((error, _))) => error.to_string(),
                    Err(_) => "delivery report dropped".to_string(),
                };
                failed += 1;
                first.get_or_insert_with(|| format!("event {id}: {error}"));
            }
            (failed, first)
        })
        .await;
        if !matches!(awaited, Ok((0, _))) {
            self.retire(&producer);
        }
        match awaited {
            Ok((0, _)) => Ok(()),
            Ok((failed, first)) => Err(unavailable(format!(
                "{failed} of {} events not acknowledged; first: {}",
                events.len(),
                first.unwrap_or_default()
            ))),
            Err(_) => Err(unavailable(format!(
                "no delivery report within {:?}",
                timeout + Duration::from_secs(5)
            ))),
        }
    }
}
