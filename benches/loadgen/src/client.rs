//! A small HTTP/1.1 client layer: one keep-alive client per virtual user, requests
//! with a deadline, and target checks (loopback only).

use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// A keep-alive HTTP/1.1 client. One per virtual user, so each user holds one
/// connection and sends one request at a time, as a browser tab would.
pub(crate) type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// Builds a client that keeps (at most) one idle connection to the target.
pub(crate) fn client() -> HttpClient {
    let mut conn = HttpConnector::new();
    conn.set_nodelay(true);
    conn.set_connect_timeout(Some(Duration::from_secs(5)));
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(1)
        .pool_idle_timeout(Duration::from_secs(60))
        .build(conn)
}

/// A complete response.
#[derive(Debug)]
pub(crate) struct Resp {
    pub(crate) status: u16,
    pub(crate) body: Bytes,
    /// From sending the request to the last byte of the body.
    pub(crate) latency_us: u64,
}

impl Resp {
    pub(crate) fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    pub(crate) fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The `code` of a problem document, if the body is one.
    pub(crate) fn problem_code(&self) -> Option<String> {
        self.json()?.get("code")?.as_str().map(str::to_string)
    }
}

/// A request that got no HTTP response.
#[derive(Debug)]
pub(crate) enum Fail {
    /// No complete answer before the per-request deadline.
    Timeout,
    /// Connect, write or read failed.
    Transport(String),
}

impl Fail {
    /// Short label for the error breakdown.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Fail::Timeout => "timeout",
            Fail::Transport(_) => "transport",
        }
    }
}

impl std::fmt::Display for Fail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fail::Timeout => f.write_str("timed out"),
            Fail::Transport(e) => f.write_str(e),
        }
    }
}

/// Sends one request and reads the whole body, within `timeout`.
pub(crate) async fn send(
    client: &HttpClient,
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
    timeout: Duration,
) -> Result<Resp, Fail> {
    let uri: Uri = uri
        .parse()
        .map_err(|e| Fail::Transport(format!("bad URI {uri}: {e}")))?;
    let mut b = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = match body {
        Some(body) => b
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body))),
        None => b.body(Full::new(Bytes::new())),
    }
    .map_err(|e| Fail::Transport(format!("building the request: {e}")))?;
    let started = Instant::now();
    let fut = async {
        let res = client
            .request(req)
            .await
            .map_err(|e| Fail::Transport(error_chain(&e)))?;
        let status = res.status().as_u16();
        let body = res
            .into_body()
            .collect()
            .await
            .map_err(|e| Fail::Transport(error_chain(&e)))?
            .to_bytes();
        Ok::<_, Fail>((status, body))
    };
    let (status, body) = tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| Fail::Timeout)??;
    Ok(Resp {
        status,
        body,
        latency_us: started.elapsed().as_micros() as u64,
    })
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Checks a base URL (`http://127.0.0.1:8080`) and returns it without a trailing
/// slash. Only loopback targets are accepted: this tool generates real load.
pub(crate) fn base_url(s: &str) -> Result<String, String> {
    let s = s.trim_end_matches('/');
    let uri: Uri = s.parse().map_err(|e| format!("{s}: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!("{s}: only http:// targets are supported"));
    }
    match uri.host() {
        Some("127.0.0.1") | Some("localhost") => {}
        _ => {
            return Err(format!(
                "{s}: only 127.0.0.1 / localhost targets are allowed"
            ))
        }
    }
    if uri.path() != "/" && !uri.path().is_empty() {
        return Err(format!("{s}: give the base URL without a path"));
    }
    Ok(s.to_string())
}

/// Percent-encodes a query value (RFC 3986 unreserved characters pass through).
pub(crate) fn encode_query(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Parses `30s`, `500ms`, `2m` or a bare number of seconds.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, mult_ms) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1u64)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1000)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60_000)
    } else {
        (s, 1000)
    };
    let n: u64 = num
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (e.g. 30s, 500ms, 2m)"))?;
    Ok(Duration::from_millis(n.saturating_mul(mult_ms)))
}

/// A tiny xorshift generator: good enough to pick products, no dependency.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        // splitmix64 of the seed, so nearby seeds give unrelated streams.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("7").unwrap(), Duration::from_secs(7));
        assert!(parse_duration("abc").is_err());
    }

    #[test]
    fn only_loopback_targets() {
        assert_eq!(
            base_url("http://127.0.0.1:8080/").unwrap(),
            "http://127.0.0.1:8080"
        );
        assert!(base_url("http://localhost:1").is_ok());
        assert!(base_url("http://10.0.0.1:8080").is_err());
        assert!(base_url("http://example.com").is_err());
        assert!(base_url("https://127.0.0.1:8443").is_err());
        assert!(base_url("http://127.0.0.1:8080/store").is_err());
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(encode_query("ab-_.~"), "ab-_.~");
        assert_eq!(encode_query("a b/+="), "a%20b%2F%2B%3D");
    }
}
