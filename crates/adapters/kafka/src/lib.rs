//! Kafka adapters for Jangteo, on rdkafka (librdkafka).
//!
//! * [`KafkaPublisher`]: the [`EventPublisher`](jangteo_core::events::EventPublisher)
//!   the outbox relay hands committed events to. One topic per aggregate type
//!   (`{topic_prefix}{products|orders|inventory|customers|misc}`, see [`topic_for`]),
//!   message key = `aggregate_id`, value = the JSON envelope of `docs/events.md`
//!   (the `DomainEvent` as serialized), headers `event_type` and `event_id`.
//! * [`KafkaConsumer`] / [`run_consumer`]: a consumer group per
//!   [`EventHandler`](jangteo_core::events::EventHandler), committing offsets only after
//!   the handler applied the event.
//! * [`ensure_topics`]: creates the topics, for brokers that do not auto-create them.
//!
//! Delivery is at-least-once end to end: the relay republishes a batch that failed
//! half-way and a consumer that crashes before committing sees events again, so
//! handlers dedupe by event id.
//!
//! ```no_run
//! use std::sync::Arc;
//! use jangteo_core::events::EventHandler;
//! use jangteo_kafka::{ensure_topics, run_consumer, KafkaPublisher, KafkaSettings};
//!
//! async fn wire(handler: Arc<dyn EventHandler>) -> Result<(), jangteo_kafka::KafkaError> {
//!     let settings = KafkaSettings::new("127.0.0.1:9092");
//!     ensure_topics(&settings).await?;
//!     // Give this to `engine.outbox_relay(publisher)`.
//!     let _publisher = Arc::new(KafkaPublisher::new(&settings)?);
//!     let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//!     let consumer = tokio::spawn(async move {
//!         run_consumer(&settings, handler, async { let _ = stopped.await; }).await
//!     });
//!     // ... later, on shutdown:
//!     let _ = stop.send(());
//!     let _summary = consumer.await.expect("consumer task")?;
//!     Ok(())
//! }
//! ```
#![warn(missing_docs)]

mod consumer;
mod context;
mod error;
mod publisher;
mod settings;
mod topics;

pub use consumer::{run_consumer, KafkaConsumer, RunSummary};
pub use error::KafkaError;
pub use publisher::{KafkaPublisher, HEADER_EVENT_ID, HEADER_EVENT_TYPE};
pub use settings::KafkaSettings;
pub use topics::{ensure_topics, topic_for, TOPIC_NAMES};
