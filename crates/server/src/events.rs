//! The event pipeline of a process: the outbox relay and the consumers.
//!
//! Embedded (no `events.kafka_brokers`): the relay publishes to a [`FanOut`] that calls
//! the consumers in process and broadcasts on the in-process bus.
//!
//! With Kafka: the relay publishes to Kafka; the notification and statistics
//! consumers run as consumer groups (in `serve` when `events.run_workers`, and in
//! `jangteo worker`); every `serve` process also runs its own catalog-cache
//! invalidation consumer, in a group of its own, so each instance drops its in-process
//! cache when another instance changes the catalog.

use std::sync::Arc;
use std::time::Duration;

use jangteo_core::consumers::{
    CatalogCacheInvalidation, FanOut, OrderNotifications, SalesStatistics, StoreNotifier,
};
use jangteo_core::events::{EventHandler, EventPublisher, InProcessBus};
use jangteo_core::Engine;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::ServerError;

/// The Kafka relay's outbox lease: how long a relay that died holds the others back.
const RELAY_LEASE_TTL: Duration = Duration::from_secs(10);

/// What a process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// `serve`: the APIs, plus relay and consumers when `events.run_workers`.
    Server,
    /// `worker`: relay and consumers only.
    Worker,
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// Starts the relay and consumers this process should run; the tasks end when `stop`
/// turns true (the relay drains once more first).
pub(crate) fn start(
    cfg: &Config,
    engine: &Engine,
    role: Role,
    stop: watch::Receiver<bool>,
) -> Result<Vec<JoinHandle<()>>, ServerError> {
    let store = engine.store().clone();
    let run_workers = role == Role::Worker || cfg.events.run_workers;
    let notifier = Arc::new(StoreNotifier::new(store.clone()));
    let workers: Vec<Arc<dyn EventHandler>> = if cfg.events.run_consumers {
        vec![
            Arc::new(OrderNotifications::new(store.clone(), notifier)?),
            Arc::new(SalesStatistics::new(store.clone())),
        ]
    } else {
        Vec::new()
    };
    let poll = Duration::from_millis(cfg.events.relay_poll_ms.max(10));
    let mut tasks = Vec::new();

    if cfg.events.kafka_brokers.is_empty() {
        if role == Role::Worker {
            return Err(ServerError::Usage(
                "`jangteo worker` relays to Kafka: set events.kafka_brokers".into(),
            ));
        }
        if !cfg.events.run_workers {
            // Nothing else could relay this database's outbox: events would pile up.
            return Err(ServerError::Usage(
                "events.run_workers = false needs Kafka (events.kafka_brokers) and `jangteo worker` processes".into(),
            ));
        }
        if !cfg.events.run_consumers {
            // The relay would mark every event sent with nobody to apply it: the
            // notifications and statistics of those orders would be lost for good.
            return Err(ServerError::Usage(
                "events.run_consumers = false needs Kafka (events.kafka_brokers) and consumers in other processes".into(),
            ));
        }
        // The bus keeps its last `capacity` events alive for slow subscribers; the one
        // subscriber here only logs, so a small buffer keeps idle memory down.
        let bus = InProcessBus::new(256);
        let mut rx = bus.subscribe();
        tasks.push(tokio::spawn(async move {
            while let Ok(ev) = rx.recv().await {
                tracing::debug!(event = %ev.event_type, aggregate = %ev.aggregate_id, "event");
            }
        }));
        let mut handlers = if run_workers { workers } else { Vec::new() };
        handlers.push(Arc::new(CatalogCacheInvalidation::new(engine.clone())));
        let publisher: Arc<dyn EventPublisher> = Arc::new(FanOut::new(bus, handlers));
        if run_workers {
            // In-process handlers hold a whole batch in memory while they run, and
            // there is no broker round trip to amortise: small batches.
            let relay = engine
                .outbox_relay(publisher)
                .batch(cfg.events.relay_batch_in_process);
            tasks.push(tokio::spawn(relay.run(poll, stopped(stop))));
        }
        return Ok(tasks);
    }

    kafka::start(
        cfg,
        engine,
        role,
        run_workers,
        workers,
        poll,
        stop,
        &mut tasks,
    )?;
    Ok(tasks)
}

#[cfg(feature = "kafka")]
mod kafka {
    use super::*;
    use jangteo_kafka::{ensure_topics, KafkaConsumer, KafkaPublisher, KafkaSettings};

    pub(crate) fn settings(cfg: &Config) -> KafkaSettings {
        let e = &cfg.events;
        let mut s = KafkaSettings::new(e.kafka_brokers.clone());
        s.topic_prefix = e.topic_prefix.clone();
        s.group_prefix = e.group_prefix.clone();
        s.partitions = e.partitions;
        s.replication_factor = e.replication_factor;
        s.extra = e
            .client_options
            .iter()
            .map(|(k, v)| (k.clone(), v.0.clone()))
            .collect();
        s.message_timeout = Duration::from_millis(e.message_timeout_ms);
        s
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn start(
        cfg: &Config,
        engine: &Engine,
        role: Role,
        run_workers: bool,
        workers: Vec<Arc<dyn EventHandler>>,
        poll: Duration,
        stop: watch::Receiver<bool>,
        tasks: &mut Vec<JoinHandle<()>>,
    ) -> Result<(), ServerError> {
        let settings = settings(cfg);
        let batch = cfg.events.relay_batch;
        settings
            .validate()
            .map_err(|e| ServerError::Usage(e.to_string()))?;
        let mut handlers = if run_workers { workers } else { Vec::new() };
        if role == Role::Server {
            handlers.push(Arc::new(InstanceCacheInvalidation::new(engine.clone())));
        }
        let publisher: Option<Arc<dyn EventPublisher>> = if run_workers {
            Some(Arc::new(
                KafkaPublisher::new(&settings).map_err(|e| ServerError::Usage(e.to_string()))?,
            ))
        } else {
            None
        };
        let engine = engine.clone();
        tasks.push(tokio::spawn(async move {
            // Topics first: consumers subscribed to a missing topic stay idle. A broker
            // that is down at start only delays this; the APIs are already serving and
            // orders wait in the outbox.
            let mut delay = Duration::from_millis(200);
            loop {
                match ensure_topics(&settings).await {
                    Ok(()) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "kafka topics not ready; retrying");
                        tokio::select! {
                            _ = tokio::time::sleep(delay) => {}
                            _ = stopped(stop.clone()) => return,
                        }
                        delay = (delay * 2).min(Duration::from_secs(10));
                    }
                }
            }
            let mut inner = Vec::new();
            if let Some(publisher) = publisher {
                // The relay renews the lease while a batch waits for the broker, so a
                // slow publish keeps it; the TTL is only how long a relay that died
                // (SIGKILL, a lost host) holds events back before another takes over.
                let relay = engine
                    .outbox_relay(publisher)
                    .batch(batch)
                    .lease_ttl(RELAY_LEASE_TTL);
                inner.push(tokio::spawn(relay.run(poll, stopped(stop.clone()))));
            }
            for handler in handlers {
                let mut s = settings.clone();
                if handler.name().starts_with(InstanceCacheInvalidation::PREFIX) {
                    // Only changes from now on matter to a fresh in-process cache.
                    s.extra.push(("auto.offset.reset".into(), "latest".into()));
                }
                match KafkaConsumer::new(&s, handler.clone()) {
                    Ok(c) => {
                        let stop = stopped(stop.clone());
                        inner.push(tokio::spawn(async move {
                            let summary = c.run(stop).await;
                            tracing::info!(?summary, "consumer stopped");
                        }));
                    }
                    Err(e) => {
                        tracing::error!(handler = handler.name(), error = %e, "consumer not started")
                    }
                }
            }
            for t in inner {
                let _ = t.await;
            }
        }));
        Ok(())
    }

    /// The catalog-cache consumer under a per-process name, so every instance has a
    /// consumer group of its own and sees every catalog event.
    #[derive(Debug)]
    struct InstanceCacheInvalidation {
        name: String,
        inner: CatalogCacheInvalidation,
    }

    impl InstanceCacheInvalidation {
        const PREFIX: &'static str = "catalog-cache.";

        fn new(engine: Engine) -> Self {
            InstanceCacheInvalidation {
                name: format!("{}{}", Self::PREFIX, jangteo_core::ids::EventId::new()),
                inner: CatalogCacheInvalidation::new(engine),
            }
        }
    }

    #[async_trait::async_trait]
    impl EventHandler for InstanceCacheInvalidation {
        fn name(&self) -> &str {
            &self.name
        }
        fn wants(&self, event_type: &str) -> bool {
            self.inner.wants(event_type)
        }
        fn aggregate_types(&self) -> Option<&[&str]> {
            self.inner.aggregate_types()
        }
        async fn handle(
            &self,
            event: &jangteo_core::events::DomainEvent,
        ) -> jangteo_core::CoreResult<()> {
            self.inner.handle(event).await
        }
        async fn handle_batch(
            &self,
            events: &[&jangteo_core::events::DomainEvent],
        ) -> jangteo_core::CoreResult<()> {
            self.inner.handle_batch(events).await
        }
    }
}

#[cfg(not(feature = "kafka"))]
mod kafka {
    use super::*;

    #[allow(clippy::too_many_arguments)]
    pub(super) fn start(
        _: &Config,
        _: &Engine,
        _: Role,
        _: bool,
        _: Vec<Arc<dyn EventHandler>>,
        _: Duration,
        _: watch::Receiver<bool>,
        _: &mut Vec<JoinHandle<()>>,
    ) -> Result<(), ServerError> {
        Err(ServerError::Usage(
            "events.kafka_brokers is set but this build has no `kafka` feature".into(),
        ))
    }
}
