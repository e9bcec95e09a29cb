//! The `jangteo` binary as an operator runs it: demo start, restart, SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Server {
    child: Child,
    store: String,
    admin: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(data: &std::path::Path) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_jangteo"))
        .args([
            "serve",
            "--demo",
            "--store-addr",
            "127.0.0.1:0",
            "--admin-addr",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(data)
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
    while store.is_empty() || admin.is_empty() {
        assert!(Instant::now() < deadline, "server did not print its URLs");
        let line = lines.next().expect("server exited early").unwrap();
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
            store = url.unwrap();
        } else if line.contains("admin API") {
            admin = url.unwrap();
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

fn http(
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    let addr = base.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let body = body.unwrap_or("");
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out[9..12].parse().unwrap();
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn json(s: &str) -> serde_json::Value {
    // Responses are small; a chunked body has size lines around the JSON.
    let start = s.find(['{', '[']).unwrap_or(0);
    let end = s.rfind(['}', ']']).map(|i| i + 1).unwrap_or(s.len());
    serde_json::from_str(&s[start..end]).unwrap_or_else(|e| panic!("{e}: {s}"))
}

fn login(srv: &Server) -> String {
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

#[test]
fn demo_store_serves_restarts_and_stops_gracefully() {
    let dir = std::env::temp_dir().join(format!("jangteo-bin-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let srv = start(&dir);
    assert_eq!(http(&srv.store, "GET", "/health/ready", None, None).0, 200);
    let (st, body) = http(
        &srv.store,
        "GET",
        "/store/products?limit=100&locale=ko",
        None,
        None,
    );
    assert_eq!(st, 200);
    let n = json(&body)["products"].as_array().unwrap().len();
    assert!(n >= 45, "demo catalog has {n} published products");
    let token = login(&srv);
    let (st, body) = http(&srv.admin, "GET", "/admin/audit-log", Some(&token), None);
    assert_eq!(st, 200, "{body}");
    assert_eq!(
        http(&srv.admin, "GET", "/admin/products", None, None).0,
        401
    );
    let (st, doc) = http(&srv.admin, "GET", "/openapi.json", None, None);
    assert_eq!(st, 200);
    assert!(json(&doc)["paths"].get("/admin/products").is_some());

    // SIGTERM: the process drains and exits cleanly.
    let pid = srv.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let mut srv = srv;
    let deadline = Instant::now() + Duration::from_secs(25);
    let status = loop {
        if let Some(s) = srv.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status}");
    drop(srv);

    // A restart keeps data, does not load the demo twice, and old tokens still work
    // (the generated JWT secret is kept in the data folder).
    let srv = start(&dir);
    let (_, body) = http(&srv.store, "GET", "/store/products?limit=100", None, None);
    assert_eq!(json(&body)["products"].as_array().unwrap().len(), n);
    assert_eq!(
        http(&srv.admin, "GET", "/admin/users", Some(&token), None).0,
        200
    );
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_database_urls_fail_clearly() {
    let migrate = |url: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_jangteo"))
            .args(["migrate"])
            .env("JANGTEO__DATABASE__URL", url)
            .env("JANGTEO__DATABASE__ACQUIRE_TIMEOUT_SECS", "2")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{url} must fail");
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let err = migrate("mysql://jangteo@127.0.0.1/jangteo");
    assert!(err.contains("unsupported database URL"), "{err}");
    // Nothing listens on this port: `migrate` reports it instead of waiting forever.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = migrate(&format!("postgres://jangteo:pw@127.0.0.1:{port}/jangteo"));
    assert!(err.contains("cannot connect"), "{err}");
    assert!(!err.contains(":pw@"), "the password must not be printed: {err}");
}
