//! Helpers for tests that run the `jangteo` binary.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `jangteo` process and its two base URLs.
pub struct Server {
    pub child: Child,
    pub store: String,
    pub admin: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `jangteo serve --demo` on free ports with a bootstrap admin.
pub fn start(data: &std::path::Path) -> Server {
    start_with(data, &[])
}

/// Like [`start`], with extra environment (backend URLs, settings).
pub fn start_with(data: &std::path::Path, env: &[(&str, String)]) -> Server {
    let srv = start_args(data, env, &[]);
    assert!(!srv.store.is_empty() && !srv.admin.is_empty());
    srv
}

/// Like [`start_with`], with extra `serve` flags; a URL of an API that is off is empty.
pub fn start_args(data: &std::path::Path, env: &[(&str, String)], args: &[&str]) -> Server {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_jangteo"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.args(["serve", "--demo", "--data-dir"])
        .arg(data)
        .args(args);
    // Free ports unless the caller chose an address.
    for flag in ["--store-addr", "--admin-addr"] {
        if !args.contains(&flag) {
            cmd.args([flag, "127.0.0.1:0"]);
        }
    }
    let mut child = cmd
        .env("JANGTEO_BOOTSTRAP_ADMIN_EMAIL", "boss@shop.kr")
        .env("JANGTEO_BOOTSTRAP_ADMIN_PASSWORD", "boss-password-1")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start jangteo");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut store, mut admin) = (String::new(), String::new());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "server did not print its URLs");
        let line = lines.next().expect("server exited early").unwrap();
        if line.contains("Press Ctrl-C") {
            break;
        }
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .map(|u| {
                u.split("/store")
                    .next()
                    .unwrap()
                    .split("/admin")
                    .next()
                    .unwrap()
                    .to_string()
            });
        if line.contains("store API") {
            store = url.unwrap_or_default();
        } else if line.contains("admin API") {
            admin = url.unwrap_or_default();
        }
    }
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Server {
        child,
        store,
        admin,
    }
}

/// One HTTP/1.1 request; (status, body). Panics when the server cannot be reached.
pub fn http(
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    let r = try_http(base, method, path, token, body, &[])
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    (r.status, r.body)
}

/// A response: status, raw header block, body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

impl Response {
    /// A header's value (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }
}

/// One HTTP/1.1 request with extra headers; I/O errors are returned.
pub fn try_http(
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> std::io::Result<Response> {
    let addr = base.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let body = body.unwrap_or("");
    let mut extra = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    for (k, v) in headers {
        extra.push_str(&format!("{k}: {v}\r\n"));
    }
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let status = out
        .get(9..12)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not HTTP: {out:?}")))?;
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    Ok(Response {
        status,
        headers: head.to_string(),
        body: body.to_string(),
    })
}

/// Parses a JSON body.
pub fn json(s: &str) -> serde_json::Value {
    // Responses are small; a chunked body has size lines around the JSON.
    let start = s.find(['{', '[']).unwrap_or(0);
    let end = s.rfind(['}', ']']).map(|i| i + 1).unwrap_or(s.len());
    serde_json::from_str(&s[start..end]).unwrap_or_else(|e| panic!("{e}: {s}"))
}

/// The value of one series in a Prometheus exposition (`name{labels} value`), matched
/// by its name and every given `label="value"` pair; summed over series that match.
/// `None` when no series matches.
pub fn metric(exposition: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = None;
    for line in exposition.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (series_name, series_labels) = series.split_once('{').unwrap_or((series, ""));
        if series_name != name {
            continue;
        }
        if labels
            .iter()
            .all(|(k, v)| series_labels.contains(&format!("{k}=\"{v}\"")))
        {
            *found.get_or_insert(0.0) += value.parse::<f64>().unwrap();
        }
    }
    found
}

/// `GET /metrics` of a base URL, checked to be the Prometheus text format.
pub fn scrape(base: &str) -> String {
    let r = try_http(base, "GET", "/metrics", None, None, &[]).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.header("content-type")
            .unwrap_or_default()
            .starts_with("text/plain"),
        "{r:?}"
    );
    r.body
}

/// An access token of the bootstrap admin.
pub fn login(srv: &Server) -> String {
    let (st, body) = http(
        &srv.admin,
        "POST",
        "/admin/auth/login",
        None,
        Some(r#"{"email":"boss@shop.kr","password":"boss-password-1"}"#),
    );
    assert_eq!(st, 200, "{body}");
    json(&body)["access_token"].as_str().unwrap().to_string()
}

/// Creates a published product with one variant; returns (product id, variant id).
pub fn product(srv: &Server, token: &str, handle: &str, stock: i64) -> (String, String) {
    let body = serde_json::json!({
        "handle": handle, "status": "published",
        "title": {"ko": "한빛 홍삼정 스틱", "en": "Hanbit Red Ginseng Stick"},
        "variants": [{"sku": handle.to_uppercase(), "prices": [{"amount": "39000", "currency": "KRW"}], "stock": stock}]
    });
    let (st, b) = http(
        &srv.admin,
        "POST",
        "/admin/products",
        Some(token),
        Some(&body.to_string()),
    );
    assert_eq!(st, 201, "{b}");
    let v = json(&b);
    (
        v["id"].as_str().unwrap().to_string(),
        v["variants"][0]["id"].as_str().unwrap().to_string(),
    )
}

/// A guest cart with one line, e-mail and address, ready to complete.
pub fn ready_cart(srv: &Server, variant: &str, qty: i64) -> String {
    let (st, b) = http(
        &srv.store,
        "POST",
        "/store/carts",
        None,
        Some(r#"{"country":"KR","currency":"KRW","locale":"ko"}"#),
    );
    assert_eq!(st, 201, "{b}");
    let cart = json(&b)["id"].as_str().unwrap().to_string();
    let line = serde_json::json!({"variant_id": variant, "quantity": qty}).to_string();
    let (st, b) = http(
        &srv.store,
        "POST",
        &format!("/store/carts/{cart}/line-items"),
        None,
        Some(&line),
    );
    assert_eq!(st, 200, "{b}");
    let contact = r#"{"email":"buyer@example.com","shipping_address":{"name":"김민지","line1":"세종대로 110","city":"서울","postal_code":"04524","country":"KR","phone":"+82 10-1234-5678"}}"#;
    let (st, b) = http(
        &srv.store,
        "PATCH",
        &format!("/store/carts/{cart}"),
        None,
        Some(contact),
    );
    assert_eq!(st, 200, "{b}");
    cart
}

/// Completes a cart with the manual provider; (status, body), or an I/O error.
pub fn complete(srv: &Server, cart: &str) -> std::io::Result<Response> {
    complete_with(srv, cart, &[])
}

/// Like [`complete`], with extra headers (an `Idempotency-Key`).
pub fn complete_with(
    srv: &Server,
    cart: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<Response> {
    try_http(
        &srv.store,
        "POST",
        &format!("/store/carts/{cart}/complete"),
        None,
        Some(r#"{"payment":{"provider":"manual"}}"#),
        headers,
    )
}

/// Current stock of a product's first variant, from the admin API (no cache).
pub fn stock(srv: &Server, token: &str, product: &str) -> i64 {
    let (st, b) = http(
        &srv.admin,
        "GET",
        &format!("/admin/products/{product}"),
        Some(token),
        None,
    );
    assert_eq!(st, 200, "{b}");
    json(&b)["variants"][0]["stock"].as_i64().unwrap()
}

/// Polls `f` until it returns true or `secs` pass.
/// Sends SIGTERM and waits (at most 25 s) for the process to exit; its exit status.
pub fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(25);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn eventually(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(
            Instant::now() < deadline,
            "timed out after {secs} s waiting for: {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The shared test PostgreSQL (started by ./scripts/test).
pub fn postgres_admin_url() -> String {
    std::env::var("JANGTEO_TEST_POSTGRES_URL").expect(
        "JANGTEO_TEST_POSTGRES_URL is not set: run ./scripts/test, or `scripts/stack up` and source its env",
    )
}

/// A private set of servers (PostgreSQL, Redis, tansu) for a test that stops and
/// starts them; `scripts/stack` in a folder of its own, torn down on drop.
pub struct Stack {
    dir: std::path::PathBuf,
    pub postgres: String,
    pub redis: String,
    pub kafka: String,
}

fn stack_script() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/stack")
}

impl Stack {
    pub fn up() -> Stack {
        let dir = std::env::temp_dir().join(format!(
            "jangteo-fault-{}-{}",
            std::process::id(),
            uuid_ish()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let ok = stack_command(&dir, &["up"]);
        assert!(
            ok,
            "scripts/stack up failed (PostgreSQL 15, redis-server and tansu must be installed; ./scripts/test installs them):\n{}",
            std::fs::read_to_string(dir.join("stack.out")).unwrap_or_default()
        );
        let read = |f: &str| {
            std::fs::read_to_string(dir.join(f))
                .unwrap()
                .trim()
                .to_string()
        };
        Stack {
            postgres: format!(
                "postgres://postgres@127.0.0.1:{}/postgres",
                read("postgres.port")
            ),
            redis: format!("redis://127.0.0.1:{}", read("redis.port")),
            kafka: format!("127.0.0.1:{}", read("kafka.port")),
            dir,
        }
    }

    fn run(&self, action: &str, service: &str) {
        assert!(
            stack_command(&self.dir, &[action, service]),
            "scripts/stack {action} {service}: {}",
            std::fs::read_to_string(self.dir.join("stack.out")).unwrap_or_default()
        );
    }

    pub fn stop(&self, service: &str) {
        self.run("stop", service);
    }

    pub fn start(&self, service: &str) {
        self.run("start", service);
    }

    /// Stops every PostgreSQL process of this stack with SIGSTOP: the database then
    /// neither answers nor refuses (connections are accepted by the kernel and hang),
    /// as behind a network partition.
    pub fn freeze_postgres(&self) {
        assert!(self.signal_postgres("STOP"), "could not SIGSTOP PostgreSQL");
    }

    /// Lets a frozen PostgreSQL run on (SIGCONT).
    pub fn thaw_postgres(&self) {
        assert!(self.signal_postgres("CONT"), "could not SIGCONT PostgreSQL");
    }

    /// Sends a signal to the postmaster and its children; false if there were none
    /// or `kill` failed.
    fn signal_postgres(&self, signal: &str) -> bool {
        let pidfile = self.dir.join("pg/postmaster.pid");
        let Some(postmaster) = std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|s| s.lines().next().map(|l| l.trim().to_string()))
        else {
            return false;
        };
        let children = Command::new("pgrep")
            .args(["-P", &postmaster])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let mut pids: Vec<&str> = children.split_whitespace().collect();
        pids.push(&postmaster);
        Command::new("kill")
            .arg(format!("-{signal}"))
            .args(&pids)
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // A test that failed while PostgreSQL was frozen would otherwise leave
        // `down` waiting for a server that cannot stop.
        self.signal_postgres("CONT");
        stack_command(&self.dir, &["down"]);
    }
}

/// Runs `scripts/stack` with its output in `{dir}/stack.out`. Not through pipes: the
/// servers it starts in the background would hold a pipe open and a reader would wait
/// for them forever.
fn stack_command(dir: &std::path::Path, args: &[&str]) -> bool {
    let log = dir.join("stack.out");
    let out = std::fs::File::create(&log).ok();
    let mut cmd = Command::new("bash");
    cmd.arg(stack_script())
        .args(args)
        .env("JANGTEO_STACK_DIR", dir);
    match out.and_then(|f| f.try_clone().ok().map(|g| (f, g))) {
        Some((f, g)) => {
            cmd.stdout(f).stderr(g);
        }
        None => {
            cmd.stdout(Stdio::null()).stderr(Stdio::null());
        }
    }
    cmd.stdin(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// A unique-enough suffix for names.
pub fn uuid_ish() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{t:x}{}",
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

/// Creates a fresh UTF-8 database on the server `admin_url` names; returns its URL.
pub fn fresh_database(admin_url: &str) -> String {
    let name = format!("jt_{}", uuid_ish());
    let out = Command::new("psql")
        .args([admin_url, "-qc"])
        .arg(format!(
            "CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8'"
        ))
        .output()
        .expect("psql");
    assert!(
        out.status.success(),
        "createdb: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    format!("{}/{name}", admin_url.rsplit_once('/').unwrap().0)
}

/// Runs one SQL query with psql and returns its unaligned output.
pub fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([url, "-XAtqc", sql])
        .output()
        .expect("psql");
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
