//! Shared helpers of the integration tests. They run against a real Kafka-protocol
//! broker (tansu in CI): set `JANGTEO_TEST_KAFKA_BROKERS`; tests never skip.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use chrono::Utc;
use jangteo_core::error::{CoreError, CoreResult};
use jangteo_core::events::{DomainEvent, EventHandler};
use jangteo_core::ids::EventId;
use jangteo_kafka::KafkaSettings;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// The broker under test, `host:port[,host:port]` (a `tcp://` scheme is dropped).
pub fn brokers() -> String {
    let value = std::env::var("JANGTEO_TEST_KAFKA_BROKERS").unwrap_or_default();
    if value.trim().is_empty() {
        panic!("JANGTEO_TEST_KAFKA_BROKERS is not set: run ./scripts/test or scripts/stack up");
    }
    value
        .split(',')
        .map(|b| b.trim().trim_start_matches("tcp://"))
        .collect::<Vec<_>>()
        .join(",")
}

/// A name no other test (or earlier run against the same broker) uses.
pub fn unique(tag: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{tag}-{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Settings for `brokers` with prefixes private to this test.
pub fn settings_for(brokers: &str, tag: &str) -> KafkaSettings {
    let id = unique(tag);
    let mut settings = KafkaSettings::new(brokers);
    settings.topic_prefix = format!("test.{id}.");
    settings.group_prefix = format!("test.{id}.");
    // Short so that a test waiting for the last commit does not wait long.
    settings.commit_interval = Duration::from_millis(200);
    settings.handler_max_backoff = Duration::from_millis(500);
    settings
}

/// Settings for the shared test broker with prefixes private to this test.
pub fn settings(tag: &str) -> KafkaSettings {
    settings_for(&brokers(), tag)
}

/// `count` aggregate ids of mixed types: (aggregate_type, aggregate_id).
pub fn aggregates(count: usize) -> Vec<(&'static str, String)> {
    const TYPES: [&str; 4] = ["order", "product", "inventory", "customer"];
    (0..count)
        .map(|i| (TYPES[i % TYPES.len()], EventId::new().to_string()))
        .collect()
}

/// `count` events spread round-robin over `aggregates`, each payload carrying its
/// sequence number.
pub fn events(aggregates: &[(&'static str, String)], count: usize) -> Vec<DomainEvent> {
    (0..count)
        .map(|i| {
            let (kind, id) = &aggregates[i % aggregates.len()];
            DomainEvent::new(
                &format!("{kind}.updated"),
                kind,
                id,
                Utc::now(),
                serde_json::json!({ "seq": i, "note": "test event" }),
            )
        })
        .collect()
}

/// Polls `done` until it holds, panicking with `what` after `timeout`.
pub async fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A handler that records every call, applied events in order, and fails on demand.
#[derive(Debug)]
pub struct Recorder {
    name: String,
    state: Mutex<RecorderState>,
    /// Aggregate types it declares (`EventHandler::aggregate_types`); unset = any.
    aggregates: std::sync::OnceLock<Vec<&'static str>>,
}

#[derive(Debug, Default)]
struct RecorderState {
    /// Successfully applied events, in order, duplicates included.
    applied: Vec<DomainEvent>,
    /// Calls per event id, failed ones included.
    attempts: HashMap<EventId, u32>,
    /// Events that fail while listed here: `None` = always, `Some(n)` = n more times.
    failing: HashMap<EventId, Option<u32>>,
    /// Event types the handler wants; empty = all.
    wants: Vec<String>,
}

impl Recorder {
    pub fn new(name: &str) -> Arc<Self> {
        Arc::new(Recorder {
            name: name.to_string(),
            state: Mutex::new(RecorderState::default()),
            aggregates: std::sync::OnceLock::new(),
        })
    }

    /// Makes `id` fail until [`Recorder::heal`] (`times: None`) or `times` more times.
    pub fn fail(&self, id: EventId, times: Option<u32>) {
        self.state.lock().unwrap().failing.insert(id, times);
    }

    pub fn heal(&self, id: EventId) {
        self.state.lock().unwrap().failing.remove(&id);
    }

    pub fn only(&self, event_type: &str) {
        self.state
            .lock()
            .unwrap()
            .wants
            .push(event_type.to_string());
    }

    /// Declares the aggregate types the handler reads (before its consumer is made).
    pub fn only_aggregates(&self, types: &[&'static str]) {
        self.aggregates.set(types.to_vec()).expect("declared once");
    }

    pub fn applied(&self) -> Vec<DomainEvent> {
        self.state.lock().unwrap().applied.clone()
    }

    pub fn applied_ids(&self) -> std::collections::HashSet<EventId> {
        self.state
            .lock()
            .unwrap()
            .applied
            .iter()
            .map(|e| e.id)
            .collect()
    }

    pub fn attempts(&self, id: EventId) -> u32 {
        self.state
            .lock()
            .unwrap()
            .attempts
            .get(&id)
            .copied()
            .unwrap_or(0)
    }

    pub fn calls(&self) -> u32 {
        self.state.lock().unwrap().attempts.values().sum()
    }
}

#[async_trait]
impl EventHandler for Recorder {
    fn name(&self) -> &str {
        &self.name
    }

    fn wants(&self, event_type: &str) -> bool {
        let state = self.state.lock().unwrap();
        state.wants.is_empty() || state.wants.iter().any(|w| w == event_type)
    }

    fn aggregate_types(&self) -> Option<&[&str]> {
        self.aggregates.get().map(|types| types.as_slice())
    }

    async fn handle(&self, event: &DomainEvent) -> CoreResult<()> {
        let mut state = self.state.lock().unwrap();
        *state.attempts.entry(event.id).or_default() += 1;
        match state.failing.get_mut(&event.id) {
            Some(None) => return Err(CoreError::Unavailable("test: failing on purpose".into())),
            Some(Some(0)) => {}
            Some(Some(left)) => {
                *left -= 1;
                return Err(CoreError::Unavailable("test: failing on purpose".into()));
            }
            None => {}
        }
        state.applied.push(event.clone());
        Ok(())
    }
}

/// Asserts that, per aggregate, the first applications of `applied` follow the order
/// of `published`, and that every published event was applied.
pub fn assert_per_aggregate_order(published: &[DomainEvent], applied: &[DomainEvent]) {
    let mut seen = std::collections::HashSet::new();
    let mut got: HashMap<&str, Vec<EventId>> = HashMap::new();
    for e in applied {
        if seen.insert(e.id) {
            got.entry(e.aggregate_id.as_str()).or_default().push(e.id);
        }
    }
    let mut want: HashMap<&str, Vec<EventId>> = HashMap::new();
    for e in published {
        want.entry(e.aggregate_id.as_str()).or_default().push(e.id);
    }
    for (aggregate, ids) in &want {
        assert_eq!(
            got.get(aggregate),
            Some(ids),
            "events of aggregate {aggregate} not applied exactly in publish order"
        );
    }
}

/// One message as a plain client sees it.
#[derive(Debug, Clone)]
pub struct RawMessage {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

/// Reads `count` messages of the settings' topics with a throwaway consumer group.
pub async fn read_raw(
    settings: &KafkaSettings,
    count: usize,
    timeout: Duration,
) -> Vec<RawMessage> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &settings.brokers)
        .set("group.id", unique("raw-reader"))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("raw consumer");
    let topics = settings.all_topics();
    let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics).expect("subscribe");
    let mut out = Vec::with_capacity(count);
    let deadline = Instant::now() + timeout;
    while out.len() < count {
        let left = deadline.saturating_duration_since(Instant::now());
        let message = match tokio::time::timeout(left, consumer.recv()).await {
            Ok(Ok(m)) => m,
            Ok(Err(e)) => panic!("raw consumer error: {e}"),
            Err(_) => panic!("read only {} of {count} messages in {timeout:?}", out.len()),
        };
        let headers = message
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                    .collect()
            })
            .unwrap_or_default();
        out.push(RawMessage {
            topic: message.topic().to_string(),
            partition: message.partition(),
            offset: message.offset(),
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().map(<[u8]>::to_vec),
            headers,
        });
    }
    out
}

/// Committed offset of `group` per (topic, partition), `None` when nothing committed.
pub fn committed(settings: &KafkaSettings, group: &str) -> HashMap<(String, i32), Option<i64>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &settings.brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("offset reader");
    let mut tpl = TopicPartitionList::new();
    for topic in settings.all_topics() {
        for partition in 0..settings.partitions {
            tpl.add_partition(&topic, partition);
        }
    }
    let tpl = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed offsets");
    tpl.elements()
        .iter()
        .map(|e| {
            let offset = match e.offset() {
                Offset::Offset(n) => Some(n),
                _ => None,
            };
            ((e.topic().to_string(), e.partition()), offset)
        })
        .collect()
}

/// High watermark (next offset) per (topic, partition).
pub fn high_watermarks(settings: &KafkaSettings) -> HashMap<(String, i32), i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &settings.brokers)
        .create()
        .expect("watermark reader");
    let mut out = HashMap::new();
    for topic in settings.all_topics() {
        for partition in 0..settings.partitions {
            let (_, high) = consumer
                .fetch_watermarks(&topic, partition, Duration::from_secs(10))
                .expect("watermarks");
            out.insert((topic.clone(), partition), high);
        }
    }
    out
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// The tansu binary: `JANGTEO_TEST_TANSU`, else `tansu` on PATH, else ~/.cargo/bin.
fn tansu_binary() -> PathBuf {
    if let Ok(path) = std::env::var("JANGTEO_TEST_TANSU") {
        return PathBuf::from(path);
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("tansu"))
                .find(|p| p.is_file())
        })
        .unwrap_or_default();
    if let Some(path) = on_path {
        return path;
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let cargo_bin = home.join(".cargo/bin/tansu");
    assert!(
        cargo_bin.is_file(),
        "tansu not found: put it on PATH, set JANGTEO_TEST_TANSU, or `cargo install tansu`"
    );
    cargo_bin
}

/// A private tansu broker (sqlite storage in its own directory), killed on drop.
#[derive(Debug)]
pub struct Tansu {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Tansu {
    /// Starts a broker in a fresh temporary directory on a free port.
    pub fn start_fresh() -> Tansu {
        let dir = std::env::temp_dir().join(unique("jangteo-tansu"));
        std::fs::create_dir_all(&dir).expect("tansu dir");
        let mut tansu = Tansu {
            dir,
            port: free_port(),
            child: None,
        };
        tansu.start();
        tansu
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// (Re)starts the broker on the same port and directory; waits until it accepts
    /// connections.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "tansu already running");
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("tansu.log"))
            .expect("tansu log");
        let child = Command::new(tansu_binary())
            .current_dir(&self.dir)
            .args(["broker", "--kafka-cluster-id", "jangteo"])
            .args(["--kafka-listener-url", &url])
            .args(["--kafka-advertised-listener-url", &url])
            .args(["--storage-engine", "sqlite://tansu.db"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn tansu");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "tansu exited with {status}; log:\n{}",
                    std::fs::read_to_string(self.dir.join("tansu.log")).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "tansu did not listen within 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the broker (no clean shutdown: the harder case) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        self.stop();
        // JANGTEO_TEST_KEEP_TANSU=1 keeps the directory (database and tansu.log) for
        // a post-mortem.
        if std::env::var_os("JANGTEO_TEST_KEEP_TANSU").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("kept tansu directory {}", self.dir.display());
        }
    }
}
