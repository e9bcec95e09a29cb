//! Connection and naming settings shared by the publisher, the consumers and
//! [`ensure_topics`](crate::ensure_topics).

use std::time::Duration;

use crate::error::KafkaError;
use crate::topics::{topic_for, TOPIC_NAMES};

/// Kafka's limit on topic name length.
const MAX_TOPIC_LEN: usize = 249;

/// Settings of the Kafka adapters. Build with [`KafkaSettings::new`] and override the
/// public fields; every field except `brokers` has a default.
#[derive(Clone, PartialEq, Eq)]
pub struct KafkaSettings {
    /// `bootstrap.servers`: comma-separated `host:port` list. Required.
    pub brokers: String,
    /// Prepended to every topic name (default `jangteo.`), so several installations or
    /// test runs can share a cluster: `jangteo.orders`.
    pub topic_prefix: String,
    /// Prepended to every handler name to form its consumer group id (default
    /// `jangteo.`): `jangteo.notifications`.
    pub group_prefix: String,
    /// Partition count of the topics [`ensure_topics`](crate::ensure_topics) creates
    /// (default 3). Existing topics are left as they are.
    pub partitions: i32,
    /// Replication factor of created topics (default 1, enough for a single broker;
    /// use 3 on a production cluster).
    pub replication_factor: i32,
    /// `message.timeout.ms`: how long a published event may wait for its
    /// acknowledgement, retries included, before publishing fails (default 10 s). This
    /// is what bounds [`KafkaPublisher::publish`](crate::KafkaPublisher) when the
    /// broker is down; it must be non-zero (zero means "forever" to librdkafka).
    pub message_timeout: Duration,
    /// `client.id` reported to the broker (default `jangteo`).
    pub client_id: String,
    /// Longest wait between two attempts of a failing handler (default 10 s; the first
    /// retry comes after 100 ms and the wait doubles).
    pub handler_max_backoff: Duration,
    /// How long a consumer may hold offsets of handled events before it commits them
    /// (default 1 s). Committing per message would cost a broker round trip each;
    /// losing uncommitted offsets in a crash only means re-delivery, which handlers
    /// dedupe.
    pub commit_interval: Duration,
    /// Extra librdkafka properties for every client (e.g. `security.protocol`,
    /// `sasl.mechanism`), applied after the adapter's own so they can override them.
    pub extra: Vec<(String, String)>,
}

impl KafkaSettings {
    /// Settings with every default and the given `bootstrap.servers`.
    pub fn new(brokers: impl Into<String>) -> Self {
        KafkaSettings {
            brokers: brokers.into(),
            topic_prefix: "jangteo.".to_string(),
            group_prefix: "jangteo.".to_string(),
            partitions: 3,
            replication_factor: 1,
            message_timeout: Duration::from_secs(10),
            client_id: "jangteo".to_string(),
            handler_max_backoff: Duration::from_secs(10),
            commit_interval: Duration::from_secs(1),
            extra: Vec::new(),
        }
    }

    /// Checks the settings; every constructor of a client calls it, so a typo fails at
    /// start-up rather than as a stream of broker errors.
    pub fn validate(&self) -> Result<(), KafkaError> {
        let invalid = |name, reason: &str| {
            Err(KafkaError::InvalidSetting {
                name,
                reason: reason.to_string(),
            })
        };
        if self.brokers.trim().is_empty() {
            return invalid("brokers", "must not be empty");
        }
        if !self
            .topic_prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return invalid(
                "topic_prefix",
                "topic names may only contain ASCII letters, digits, '.', '_' and '-'",
            );
        }
        let longest = TOPIC_NAMES.iter().map(|t| t.len()).max().unwrap_or(0);
        if self.topic_prefix.len() + longest > MAX_TOPIC_LEN {
            return invalid(
                "topic_prefix",
                "too long: topic names are at most 249 bytes",
            );
        }
        if self.partitions < 1 {
            return invalid("partitions", "must be at least 1");
        }
        if self.replication_factor < 1 {
            return invalid("replication_factor", "must be at least 1");
        }
        if self.message_timeout.is_zero() || self.message_timeout.as_millis() > i32::MAX as u128 {
            return invalid(
                "message_timeout",
                "must be between 1 ms and i32::MAX ms (0 would mean wait forever)",
            );
        }
        if self.handler_max_backoff.is_zero() {
            return invalid("handler_max_backoff", "must not be zero");
        }
        if self.commit_interval.is_zero() {
            return invalid("commit_interval", "must not be zero");
        }
        Ok(())
    }

    /// Full topic of events of this aggregate type: `topic_prefix` + [`topic_for`].
    pub fn topic(&self, aggregate_type: &str) -> String {
        format!("{}{}", self.topic_prefix, topic_for(aggregate_type))
    }

    /// Every topic the adapters use, prefix included, in [`TOPIC_NAMES`] order.
    pub fn all_topics(&self) -> Vec<String> {
        TOPIC_NAMES
            .iter()
            .map(|name| format!("{}{}", self.topic_prefix, name))
            .collect()
    }

    /// The full topic names holding events of `aggregate_types` (`None`: every topic),
    /// each once, in [`TOPIC_NAMES`](crate::TOPIC_NAMES) order.
    pub fn topics_of(&self, aggregate_types: Option<&[&str]>) -> Vec<String> {
        let Some(types) = aggregate_types else {
            return self.all_topics();
        };
        crate::topics::TOPIC_NAMES
            .iter()
            .filter(|name| types.iter().any(|t| crate::topics::topic_for(t) == **name))
            .map(|name| format!("{}{}", self.topic_prefix, name))
            .collect()
    }

    /// Consumer group id of a handler: `group_prefix` + handler name.
    pub fn group_id(&self, handler_name: &str) -> String {
        format!("{}{}", self.group_prefix, handler_name)
    }

    /// A librdkafka configuration with what every client shares.
    pub(crate) fn base_config(&self) -> rdkafka::ClientConfig {
        let mut config = rdkafka::ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("client.id", &self.client_id)
            // librdkafka backs off up to 10 s between reconnects by default; after a
            // broker restart that delays recovery for no benefit at our connection count.
            .set("reconnect.backoff.max.ms", "2000");
        config
    }

    /// Applies [`KafkaSettings::extra`] last, so operators can override anything.
    pub(crate) fn apply_extra(&self, config: &mut rdkafka::ClientConfig) {
        for (key, value) in &self.extra {
            config.set(key, value);
        }
    }
}

impl std::fmt::Debug for KafkaSettings {
    /// Hides the values of `extra`: they carry credentials (`sasl.password`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let extra: Vec<(&str, &str)> = self
            .extra
            .iter()
            .map(|(k, _)| (k.as_str(), "***"))
            .collect();
        f.debug_struct("KafkaSettings")
            .field("brokers", &self.brokers)
            .field("topic_prefix", &self.topic_prefix)
            .field("group_prefix", &self.group_prefix)
            .field("partitions", &self.partitions)
            .field("replication_factor", &self.replication_factor)
            .field("message_timeout", &self.message_timeout)
            .field("client_id", &self.client_id)
            .field("handler_max_backoff", &self.handler_max_backoff)
            .field("commit_interval", &self.commit_interval)
            .field("extra", &extra)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let s = KafkaSettings::new("localhost:9092");
        assert_eq!(s.topic_prefix, "jangteo.");
        assert_eq!(s.group_prefix, "jangteo.");
        assert_eq!(s.partitions, 3);
        assert_eq!(s.replication_factor, 1);
        assert_eq!(s.message_timeout, Duration::from_secs(10));
        assert!(s.validate().is_ok());
        assert_eq!(s.topic("order"), "jangteo.orders");
        assert_eq!(s.group_id("mailer"), "jangteo.mailer");
        assert_eq!(
            s.all_topics(),
            [
                "jangteo.products",
                "jangteo.orders",
                "jangteo.inventory",
                "jangteo.customers",
                "jangteo.misc"
            ]
        );
    }

    #[test]
    fn a_handler_reads_the_topics_of_its_aggregates_only() {
        let s = KafkaSettings::new("localhost:9092");
        assert_eq!(s.topics_of(Some(&["order"])), ["jangteo.orders"]);
        assert_eq!(
            s.topics_of(Some(&["country", "product", "inventory", "exchange_rates"])),
            ["jangteo.products", "jangteo.inventory", "jangteo.misc"],
            "unmapped types share `misc`, listed once"
        );
        assert_eq!(s.topics_of(None), s.all_topics());
        assert!(s.topics_of(Some(&[])).is_empty());
    }

    #[test]
    fn rejects_bad_values() {
        let base = KafkaSettings::new("localhost:9092");
        let cases = [
            KafkaSettings {
                brokers: " ".into(),
                ..base.clone()
            },
            KafkaSettings {
                topic_prefix: "jang teo/".into(),
                ..base.clone()
            },
            KafkaSettings {
                topic_prefix: "x".repeat(245),
                ..base.clone()
            },
            KafkaSettings {
                partitions: 0,
                ..base.clone()
            },
            KafkaSettings {
                replication_factor: 0,
                ..base.clone()
            },
            KafkaSettings {
                message_timeout: Duration::ZERO,
                ..base.clone()
            },
            KafkaSettings {
                commit_interval: Duration::ZERO,
                ..base.clone()
            },
        ];
        for case in cases {
            assert!(
                matches!(case.validate(), Err(KafkaError::InvalidSetting { .. })),
                "{case:?}"
            );
        }
    }

    #[test]
    fn debug_hides_client_option_values() {
        let mut s = KafkaSettings::new("b:9092");
        s.extra.push(("sasl.password".into(), "hunter2".into()));
        let shown = format!("{s:?}");
        assert!(
            shown.contains("sasl.password") && !shown.contains("hunter2"),
            "{shown}"
        );
    }
}
