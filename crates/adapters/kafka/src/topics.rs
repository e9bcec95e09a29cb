//! Topic naming and creation.
//!
//! One topic per aggregate type rather than one per event type: Kafka keeps order only
//! within a partition, and `order.placed` must stay before `order.paid` of the same
//! order, so all events of one aggregate share a topic and (keyed by aggregate id) a
//! partition.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

use crate::error::KafkaError;
use crate::settings::KafkaSettings;

/// Every topic name (without prefix): one per aggregate type of the catalogue in
/// `docs/events.md`, then `misc`.
pub const TOPIC_NAMES: [&str; 5] = ["products", "orders", "inventory", "customers", "misc"];

/// Topic name (without prefix) of events of an aggregate type.
///
/// `product` → `products`, `order` → `orders`, `inventory` → `inventory`,
/// `customer` → `customers`; any other aggregate type → `misc`. The fallback is a fixed
/// topic rather than a name derived from the type so that a new aggregate type can
/// never make the relay publish to a topic nobody created (the publish would time out
/// and block the outbox) or subscribed to; add a mapping here when a new aggregate
/// type deserves its own topic.
pub fn topic_for(aggregate_type: &str) -> &'static str {
    match aggregate_type {
        "product" => "products",
        "order" => "orders",
        "inventory" => "inventory",
        "customer" => "customers",
        _ => "misc",
    }
}

/// Creates every topic of [`KafkaSettings::all_topics`] with `partitions` and
/// `replication_factor`; topics that exist already are left alone, so this is safe to
/// call at every start. Brokers that do not auto-create topics (tansu, most managed
/// clusters) need it before the first publish or subscription.
pub async fn ensure_topics(settings: &KafkaSettings) -> Result<(), KafkaError> {
    settings.validate()?;
    let mut config = settings.base_config();
    settings.apply_extra(&mut config);
    let admin: AdminClient<DefaultClientContext> = config
        .create()
        .map_err(|e| KafkaError::Client(e.to_string()))?;
    let wait = settings.message_timeout.max(Duration::from_secs(5));
    // Topics that exist need no CreateTopics call: on managed clusters the application
    // often lacks that permission, and the broker refuses the call even for existing
    // topics, which would keep the relay and consumers from ever starting.
    let existing = existing_topics(config.clone(), wait).await;
    let names: Vec<String> = settings
        .all_topics()
        .into_iter()
        .filter(|n| !existing.contains(n))
        .collect();
    if names.is_empty() {
        return Ok(());
    }
    let topics: Vec<NewTopic<'_>> = names
        .iter()
        .map(|name| {
            NewTopic::new(
                name,
                settings.partitions,
                TopicReplication::Fixed(settings.replication_factor),
            )
        })
        .collect();
    let options = AdminOptions::new()
        .request_timeout(Some(wait))
        .operation_timeout(Some(wait));
    // The admin request has its own timeout; the outer one only guards against a
    // request that never gets a response object at all.
    let results = tokio::time::timeout(wait * 2, admin.create_topics(&topics, &options))
        .await
        .map_err(|_| KafkaError::Client("creating topics timed out".to_string()))?
        .map_err(|e| KafkaError::Client(e.to_string()))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(KafkaError::TopicCreation {
                    topic,
                    reason: code.to_string(),
                })
            }
        }
    }
    Ok(())
}

/// Names of the topics the cluster has; empty when the metadata cannot be read (then
/// every topic is created, as before). librdkafka's metadata call blocks, so it runs on
/// a blocking thread with a client of its own.
async fn existing_topics(
    config: rdkafka::ClientConfig,
    wait: Duration,
) -> std::collections::HashSet<String> {
    let fetched = tokio::task::spawn_blocking(move || {
        let producer: rdkafka::producer::BaseProducer = config.create().ok()?;
        let metadata = rdkafka::producer::Producer::client(&producer)
            .fetch_metadata(None, wait)
            .ok()?;
        Some(
            metadata
                .topics()
                .iter()
                .filter(|t| t.error().is_none())
                .map(|t| t.name().to_string())
                .collect::<std::collections::HashSet<_>>(),
        )
    })
    .await;
    fetched.ok().flatten().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregate_types_map_to_topics() {
        assert_eq!(topic_for("product"), "products");
        assert_eq!(topic_for("order"), "orders");
        assert_eq!(topic_for("inventory"), "inventory");
        assert_eq!(topic_for("customer"), "customers");
        assert_eq!(topic_for("cart"), "misc");
        assert_eq!(topic_for("Order"), "misc");
        for name in TOPIC_NAMES {
            assert!(name.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
        }
    }
}
