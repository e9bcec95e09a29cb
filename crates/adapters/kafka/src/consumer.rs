//! Consumer groups feeding [`EventHandler`]s.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jangteo_core::events::{apply_batch, DomainEvent, EventHandler};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError as RdError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::types::RDKafkaErrorCode;

use crate::context::TracingContext;
use crate::error::KafkaError;
use crate::settings::KafkaSettings;

/// First wait before a failed handler is called again with the same event.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// Commit at the latest after this many handled messages, whatever the interval.
const COMMIT_EVERY: u64 = 500;
/// Most messages handed to the handler at once. A batch is whatever librdkafka has
/// already fetched, so it is one message when traffic is light and grows with a backlog;
/// the bound keeps one transaction (and one retry) of a handler small.
const MAX_BATCH: usize = 256;
/// Pause after a consumer error so a persistent one does not spin the loop.
const ERROR_PAUSE: Duration = Duration::from_millis(200);

/// What a [`KafkaConsumer::run`] did, for logs and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunSummary {
    /// Events the handler applied (returned `Ok`).
    pub handled: u64,
    /// Events the handler did not want ([`EventHandler::wants`] returned false).
    pub ignored: u64,
    /// Messages that were not a [`DomainEvent`] and were skipped.
    pub malformed: u64,
    /// Failed handler calls that were retried.
    pub retries: u64,
}

/// One handler's consumer group member: reads the topics of the handler's
/// [`EventHandler::aggregate_types`] ([`KafkaSettings::topics_of`]; all of them when it
/// names none) in group `group_prefix + handler.name()`, calls the
/// handler for each event it wants, and commits an offset only after the handler
/// succeeded (at-least-once; the handler dedupes by event id).
///
/// Messages go to the handler in batches of what is already fetched
/// ([`EventHandler::handle_batch`], at most 256), in fetch order, so events of one
/// aggregate (one partition) are applied in publish order and a handler that writes can
/// apply a batch in one transaction. A handler error retries the same batch with a
/// doubling backoff until it succeeds or the run is shut down: an event that failed to
/// apply is never skipped, so a handler that fails for good stalls its group and says
/// so in the logs. If that lasts longer than `max.poll.interval.ms` (5 min) librdkafka
/// leaves the group; the partitions go elsewhere and the uncommitted events are
/// delivered again.
pub struct KafkaConsumer {
    consumer: StreamConsumer<TracingContext>,
    handler: Arc<dyn EventHandler>,
    group_id: String,
    max_backoff: Duration,
    commit_interval: Duration,
}

impl std::fmt::Debug for KafkaConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaConsumer")
            .field("group_id", &self.group_id)
            .field("handler", &self.handler.name())
            .finish_non_exhaustive()
    }
}

/// Whether processing of a message ended normally or was cut short by shutdown.
enum Outcome {
    Done,
    Stopped,
}

impl KafkaConsumer {
    /// Creates the consumer and subscribes it; the topics must exist
    /// ([`ensure_topics`](crate::ensure_topics)), as brokers that do not auto-create
    /// topics leave a subscription to a missing topic idle.
    pub fn new(
        settings: &KafkaSettings,
        handler: Arc<dyn EventHandler>,
    ) -> Result<Self, KafkaError> {
        settings.validate()?;
        if handler.name().is_empty() {
            return Err(KafkaError::InvalidSetting {
                name: "handler name",
                reason: "the handler name is the consumer group suffix; it must not be empty"
                    .to_string(),
            });
        }
        let group_id = settings.group_id(handler.name());
        let mut config = settings.base_config();
        config
            .set("group.id", &group_id)
            // Offsets are committed by the runner after the handler succeeded; automatic
            // commits could commit a message whose handler then fails or crashes.
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            // A new group starts from the oldest retained event, not from "now":
            // a handler added later still sees history.
            .set("auto.offset.reset", "earliest");
        settings.apply_extra(&mut config);
        let consumer: StreamConsumer<TracingContext> =
            config
                .create_with_context(TracingContext)
                .map_err(|e| KafkaError::Client(e.to_string()))?;
        // Only the topics of the aggregates the handler reads: a consumer of order
        // events does not fetch and parse every catalog event just to drop it.
        let topics = settings.topics_of(handler.aggregate_types());
        if topics.is_empty() {
            return Err(KafkaError::InvalidSetting {
                name: "handler aggregate types",
                reason: format!("handler `{}` lists no aggregate type", handler.name()),
            });
        }
        let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&topics)
            .map_err(|e| KafkaError::Client(e.to_string()))?;
        Ok(KafkaConsumer {
            consumer,
            handler,
            group_id,
            max_backoff: settings.handler_max_backoff,
            commit_interval: settings.commit_interval,
        })
    }

    /// The consumer group id (`group_prefix + handler name`).
    pub fn group_id(&self) -> &str {
        &self.group_id
    }

    /// Consumes until `shutdown` resolves, then commits what was handled and leaves the
    /// group. A handler call in progress when `shutdown` resolves is finished first
    /// (handlers need not be cancellation-safe); a failed one is not retried.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> RunSummary {
        tokio::pin!(shutdown);
        let mut summary = RunSummary::default();
        let mut uncommitted = 0u64;
        let mut last_commit = Instant::now();
        loop {
            let commit_due = last_commit + self.commit_interval;
            let received = tokio::select! {
                biased;
                _ = &mut shutdown => break,
                _ = tokio::time::sleep_until(commit_due.into()), if uncommitted > 0 => {
                    // Idle with handled but uncommitted messages: commit them now
                    // rather than only when the next message arrives.
                    self.commit(CommitMode::Async);
                    uncommitted = 0;
                    last_commit = Instant::now();
                    continue;
                }
                received = self.consumer.recv() => received,
            };
            let first = match received {
                Ok(message) => message,
                Err(error) => {
                    tracing::warn!(group = %self.group_id, %error, "kafka consumer error");
                    tokio::select! {
                        _ = &mut shutdown => break,
                        _ = tokio::time::sleep(ERROR_PAUSE) => continue,
                    }
                }
            };
            let mut batch = vec![first];
            // Whatever else is fetched already joins the batch; nothing waits for more.
            while batch.len() < MAX_BATCH {
                match ready_now(self.consumer.recv()) {
                    Some(Ok(message)) => batch.push(message),
                    // An error is reported by the next `recv` above.
                    Some(Err(_)) | None => break,
                }
            }
            if let Outcome::Stopped = self.process(&batch, &mut summary, &mut shutdown).await {
                break;
            }
            for message in &batch {
                match self.consumer.store_offset_from_message(message) {
                    Ok(()) => uncommitted += 1,
                    // The partition was revoked while the handler ran; its new owner
                    // will deliver the message again, which the handler dedupes.
                    Err(error) => tracing::debug!(%error, "offset not stored"),
                }
            }
            if uncommitted >= COMMIT_EVERY || last_commit.elapsed() >= self.commit_interval {
                self.commit(CommitMode::Async);
                uncommitted = 0;
                last_commit = Instant::now();
            }
        }
        // The last commit waits for the broker, and dropping the consumer leaves the
        // group (also a blocking round trip): do both off the async worker threads.
        let group = self.group_id.clone();
        let consumer = self.consumer;
        let closing = tokio::task::spawn_blocking(move || {
            commit(&consumer, CommitMode::Sync);
            drop(consumer);
        });
        if let Err(error) = closing.await {
            tracing::warn!(%group, %error, "closing the kafka consumer failed");
        }
        tracing::info!(%group, ?summary, "kafka consumer stopped");
        summary
    }

    fn commit(&self, mode: CommitMode) {
        commit(&self.consumer, mode)
    }

    /// Applies a batch of messages: parse, filter, call the handler until it succeeds.
    async fn process(
        &self,
        messages: &[BorrowedMessage<'_>],
        summary: &mut RunSummary,
        shutdown: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
    ) -> Outcome {
        let mut events = Vec::with_capacity(messages.len());
        for message in messages {
            let parsed = message
                .payload()
                .ok_or_else(|| "empty message".to_string())
                .and_then(|bytes| {
                    serde_json::from_slice::<DomainEvent>(bytes).map_err(|e| e.to_string())
                });
            match parsed {
                Ok(event) if self.handler.wants(&event.event_type) => events.push(event),
                Ok(_) => summary.ignored += 1,
                Err(error) => {
                    // Retrying cannot fix bytes; skipping (and committing) keeps one bad
                    // message from blocking its partition for good.
                    tracing::error!(
                        group = %self.group_id,
                        topic = message.topic(),
                        partition = message.partition(),
                        offset = message.offset(),
                        %error,
                        "skipping a kafka message that is not a domain event"
                    );
                    summary.malformed += 1;
                }
            }
        }
        if events.is_empty() {
            return Outcome::Done;
        }
        let events: Vec<&DomainEvent> = events.iter().collect();
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1u32;
        loop {
            // An event the handler calls unusable (a payload it can never apply) is
            // skipped inside: retrying it would stall the partition for good, and a
            // stalled member is eventually evicted and the next one stalls too.
            match apply_batch(self.handler.as_ref(), &events).await {
                Ok(done) => {
                    summary.handled += done.applied as u64;
                    summary.malformed += done.skipped as u64;
                    return Outcome::Done;
                }
                Err(error) => {
                    tracing::warn!(
                        group = %self.group_id,
                        first_event_id = %events[0].id,
                        events = events.len(),
                        attempt,
                        retry_in = ?backoff,
                        %error,
                        "event handler failed; retrying the same events"
                    );
                    summary.retries += 1;
                    tokio::select! {
                        _ = shutdown.as_mut() => return Outcome::Stopped,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(self.max_backoff);
                    attempt = attempt.saturating_add(1);
                }
            }
        }
    }
}

/// Polls `future` once: its output if it is ready now, else `None` (and the future is
/// dropped). Used on `recv`, which is cancellation safe, to take messages librdkafka has
/// already fetched without waiting for more.
fn ready_now<F: Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(output) => Some(output),
        std::task::Poll::Pending => None,
    }
}

/// Commits the stored offsets; "nothing to commit" is not an error.
fn commit(consumer: &StreamConsumer<TracingContext>, mode: CommitMode) {
    match consumer.commit_consumer_state(mode) {
        Ok(()) | Err(RdError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
        Err(error) => tracing::warn!(%error, "kafka offset commit failed"),
    }
}

/// Runs a consumer for `handler` until `shutdown` resolves: [`KafkaConsumer::new`] then
/// [`KafkaConsumer::run`]. Fails only when the consumer cannot be set up.
pub async fn run_consumer(
    settings: &KafkaSettings,
    handler: Arc<dyn EventHandler>,
    shutdown: impl Future<Output = ()>,
) -> Result<RunSummary, KafkaError> {
    let consumer = KafkaConsumer::new(settings, handler)?;
    Ok(consumer.run(shutdown).await)
}
