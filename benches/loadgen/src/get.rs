//! `loadgen get`: a fixed-URL closed-loop load, the fallback when `wrk` is missing.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use hyper::Method;

use crate::client::{client, send};
use crate::stats::{self, StepStats};

/// Settings of a `get` run.
#[derive(Debug)]
pub(crate) struct GetArgs {
    pub(crate) url: String,
    pub(crate) path: String,
    pub(crate) connections: usize,
    pub(crate) duration: Duration,
    pub(crate) timeout: Duration,
    pub(crate) json: Option<PathBuf>,
}

pub(crate) async fn run(a: GetArgs) -> Result<(), String> {
    if !a.path.starts_with('/') {
        return Err(format!("--path must start with `/`: {}", a.path));
    }
    let uri = format!("{}{}", a.url, a.path);
    println!(
        "loadgen get: {uri}, {} connections, {:?}",
        a.connections, a.duration
    );
    let started = Instant::now();
    let deadline = started + a.duration;
    let mut tasks = Vec::with_capacity(a.connections);
    for _ in 0..a.connections {
        let uri = uri.clone();
        let timeout = a.timeout;
        tasks.push(tokio::spawn(async move {
            let c = client();
            let mut st = StepStats::default();
            let mut failures_in_a_row = 0u32;
            while Instant::now() < deadline {
                let r = send(&c, Method::GET, &uri, &[], None, timeout).await;
                if r.is_err() {
                    failures_in_a_row = failures_in_a_row.saturating_add(1);
                    if failures_in_a_row > 3 {
                        let ms = u64::from(failures_in_a_row.min(50)) * 10;
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                    }
                } else {
                    failures_in_a_row = 0;
                }
                st.record(&r, false);
            }
            st
        }));
    }
    let mut total = StepStats::default();
    for t in tasks {
        total.merge(
            t.await
                .map_err(|e| format!("a connection task failed: {e}"))?,
        );
    }
    let secs = started.elapsed().as_secs_f64();
    let s = total.summary(secs);
    println!("  elapsed {secs:.2} s, mean body {} bytes", s.mean_bytes);
    stats::print_header();
    stats::print_row("GET", &s);
    if let Some(path) = &a.json {
        let mut doc = s.to_json();
        doc["mode"] = "get".into();
        doc["uri"] = uri.into();
        doc["connections"] = a.connections.into();
        doc["elapsed_s"] = stats::round2(secs).into();
        std::fs::write(path, serde_json::to_vec_pretty(&doc).unwrap_or_default())
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    Ok(())
}
