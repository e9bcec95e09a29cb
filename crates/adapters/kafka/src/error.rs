//! The adapter's own error type.
//!
//! Only set-up can fail with it (bad settings, a client librdkafka refuses to create,
//! topics that cannot be created). Publishing fails with
//! [`CoreError::Unavailable`](jangteo_core::error::CoreError::Unavailable) instead,
//! because the outbox relay only knows the core error and retries on it.

/// A configuration or set-up failure of the Kafka adapters.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    /// A [`KafkaSettings`](crate::KafkaSettings) field holds a value that cannot work.
    #[error("invalid kafka setting `{name}`: {reason}")]
    InvalidSetting {
        /// The field name, e.g. `topic_prefix`.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// librdkafka refused the client configuration or a client call (subscribe, admin).
    ///
    /// Carried as text so that no rdkafka type is part of this crate's API.
    #[error("kafka client: {0}")]
    Client(String),
    /// A topic could not be created (and did not exist already).
    #[error("cannot create kafka topic `{topic}`: {reason}")]
    TopicCreation {
        /// Full topic name, prefix included.
        topic: String,
        /// The broker's or client's reason.
        reason: String,
    },
}
