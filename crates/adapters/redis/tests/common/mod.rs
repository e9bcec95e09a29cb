//! Helpers shared by the integration tests: where the test Redis is, unique key
//! prefixes, and a private `redis-server` child for the fault tests.

#![allow(dead_code)]

use std::future::Future;
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use jangteo_redis::RedisSettings;

/// The shared test Redis. Never skips: a test that silently passes without Redis
/// would hide exactly the failures these tests exist for.
pub(crate) fn redis_url() -> String {
    std::env::var("JANGTEO_TEST_REDIS_URL").unwrap_or_else(|_| {
        panic!("JANGTEO_TEST_REDIS_URL is not set: run ./scripts/test or scripts/stack up")
    })
}

/// A prefix no other test (or earlier run) uses, so tests can run in parallel against
/// one Redis.
pub(crate) fn unique_prefix(test: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "jt-test-{test}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Settings for the shared test Redis with a unique prefix.
pub(crate) fn settings(test: &str) -> RedisSettings {
    RedisSettings::new(redis_url()).with_prefix(unique_prefix(test))
}

/// A raw connection for looking at keys behind the adapters' backs.
pub(crate) async fn raw(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Polls `check` until it returns true or `limit` passes.
pub(crate) async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < limit {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Runs `fut` and panics if it took longer than `limit` (a stalled request).
pub(crate) async fn quick<T>(what: &str, limit: Duration, fut: impl Future<Output = T>) -> T {
    let start = Instant::now();
    let out = fut.await;
    let took = start.elapsed();
    assert!(took < limit, "{what} took {took:?}, more than {limit:?}");
    out
}

/// A free TCP port on loopback (free when asked; good enough for tests).
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `redis-server` of our own, killed on drop, that can be stopped and restarted on
/// the same port.
pub(crate) struct RedisServer {
    pub(crate) port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server on a free port and waits until it accepts connections.
    pub(crate) fn start() -> RedisServer {
        let mut s = RedisServer {
            port: free_port(),
            child: None,
        };
        s.restart();
        s
    }

    /// A handle on a port where nothing runs yet; [`RedisServer::restart`] starts it.
    pub(crate) fn not_started() -> RedisServer {
        RedisServer {
            port: free_port(),
            child: None,
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// (Re)starts the server on its port.
    pub(crate) fn restart(&mut self) {
        assert!(self.child.is_none(), "server already running");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (scripts/stack install)");
        self.child = Some(child);
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "redis-server did not open port {} within 10 s",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: no goodbye to clients, like a crashed host.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGSTOP / SIGCONT: the server keeps its sockets open but answers nothing, like
    /// an overloaded or swapping host.
    pub(crate) fn pause(&self, paused: bool) {
        let pid = self.child.as_ref().expect("server not running").id();
        let signal = if paused { "-STOP" } else { "-CONT" };
        let status = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill {signal} {pid} failed");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            // A stopped process still dies of SIGKILL.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
