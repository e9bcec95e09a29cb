//! Prometheus metrics of this process: what the engine and the routers record through
//! the `metrics` facade, plus gauges read when scraped (outbox backlog, database
//! reachable, resident memory). Served at `GET /metrics` on the admin listener, and on
//! `server.metrics_addr` for processes without one (`jangteo worker`, `--apis store`).

use std::time::Duration;

use jangteo_core::Engine;
use jangteo_http::MetricsSource;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Histogram buckets of every `*_seconds` metric: request times from a millisecond,
/// outbox delivery and consumer lag up to minutes (a broker outage).
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// How long a scrape waits for the database's gauges before reporting it down.
const SCRAPE_DB_TIMEOUT: Duration = Duration::from_secs(3);

/// Installs the process-wide recorder; `None` (logged) if one is installed already.
pub(crate) fn install() -> Option<PrometheusHandle> {
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
        .ok()?;
    match builder.install_recorder() {
        Ok(handle) => {
            // Histograms buffer samples until upkeep folds them in; without the
            // exporter's own HTTP listener that is ours to schedule.
            let upkeep = handle.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    upkeep.run_upkeep();
                }
            });
            describe();
            metrics::gauge!("jangteo_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
            Some(handle)
        }
        Err(e) => {
            tracing::warn!(error = %e, "metrics recorder not installed");
            None
        }
    }
}

/// `# HELP` lines: what each series means, for whoever reads the exposition or builds
/// dashboards from it (docs/deploy.md, "Monitoring", lists the same).
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    for (name, help) in [
        (
            "jangteo_http_requests_total",
            "Requests answered, by API, method, route template and status.",
        ),
        (
            "jangteo_checkouts_total",
            "Checkouts that placed an order, by provider and outcome: paid, pending, declined, canceled (meanwhile), unrecorded (provider answer not written).",
        ),
        (
            "jangteo_payment_provider_errors_total",
            "Checkouts whose provider call failed (order left pending), by provider.",
        ),
        (
            "jangteo_payment_webhooks_total",
            "Provider webhooks by provider and outcome: paid, failed, ignored, refused.",
        ),
        (
            "jangteo_outbox_published_total",
            "Events this process's relay published and the broker acknowledged.",
        ),
        (
            "jangteo_outbox_relay_errors_total",
            "Relay rounds that failed (broker or database down); retried with backoff.",
        ),
        (
            "jangteo_events_applied_total",
            "Events a consumer applied in this process (redeliveries included), by handler.",
        ),
        (
            "jangteo_events_skipped_total",
            "Events a consumer could never apply and skipped (logged), by handler.",
        ),
        (
            "jangteo_event_batch_failures_total",
            "Event batches a consumer failed to apply; delivered again, by handler.",
        ),
        (
            "process_cpu_seconds_total",
            "User and system CPU time of this process in whole seconds.",
        ),
        (
            "jangteo_redis_failures_total",
            "Redis operations that failed or timed out (the fallback answered).",
        ),
        (
            "jangteo_redis_skipped_total",
            "Redis operations skipped while the breaker is open after a failure.",
        ),
    ] {
        describe_counter!(name, help);
    }
    for (name, help) in [
        (
            "jangteo_http_request_duration_seconds",
            "Time to answer, by API, method and route template.",
        ),
        (
            "jangteo_outbox_delivery_seconds",
            "From an event to the broker's acknowledgement of it.",
        ),
        (
            "jangteo_event_age_at_apply_seconds",
            "Event age when a consumer applied it (its lag), by handler.",
        ),
    ] {
        describe_histogram!(name, Unit::Seconds, help);
    }
    for (name, help) in [
        (
            "jangteo_outbox_unsent",
            "Committed events not yet acknowledged by the broker (all relays).",
        ),
        (
            "jangteo_outbox_oldest_unsent_age_seconds",
            "Age in seconds of the oldest unsent event; 0 when none waits.",
        ),
        (
            "jangteo_database_up",
            "1 when the database answered the last scrape, else 0.",
        ),
        (
            "jangteo_redis_up",
            "1 after Redis last answered, 0 after it last failed (cache.url only).",
        ),
        (
            "process_resident_memory_bytes",
            "Resident memory of this process in bytes.",
        ),
        (
            "jangteo_build_info",
            "Always 1; the version label says which build runs.",
        ),
    ] {
        describe_gauge!(name, help);
    }
}

/// What `GET /metrics` answers: the gauges read now, then every series.
pub(crate) fn source(handle: PrometheusHandle, engine: Engine) -> MetricsSource {
    MetricsSource(std::sync::Arc::new(move || {
        let (handle, engine) = (handle.clone(), engine.clone());
        Box::pin(async move {
            // A database that does not answer (a network partition: no error, no
            // reply) must not hang the scrape, or `jangteo_database_up` would never
            // read 0 and the alert on it never fire. The read runs as a task of its
            // own that is never cut off: readiness may be applying migrations, which
            // must not stop halfway holding their lock.
            let read = tokio::spawn(async move { read_gauges(&engine).await });
            if tokio::time::timeout(SCRAPE_DB_TIMEOUT, read).await.is_err() {
                metrics::gauge!("jangteo_database_up").set(0.0);
            }
            read_process_gauges();
            handle.render()
        })
    }))
}

async fn read_gauges(engine: &Engine) {
    let up = engine.ready().await.is_ok();
    metrics::gauge!("jangteo_database_up").set(if up { 1.0 } else { 0.0 });
    if up {
        // A growing backlog is how a broker outage (or a stopped relay) shows.
        if let Ok(b) = engine.store().outbox_backlog().await {
            metrics::gauge!("jangteo_outbox_unsent").set(b.unsent as f64);
            let age = b.oldest.map_or(0.0, |t| {
                (chrono::Utc::now() - t).num_milliseconds().max(0) as f64 / 1000.0
            });
            metrics::gauge!("jangteo_outbox_oldest_unsent_age_seconds").set(age);
        }
    }
}

/// Memory and CPU time of this process (no I/O beyond `/proc`).
fn read_process_gauges() {
    if let Some(bytes) = resident_bytes() {
        metrics::gauge!("process_resident_memory_bytes").set(bytes as f64);
    }
    if let Some(ticks) = crate::memory::cpu_ticks() {
        // Clock ticks of user and system time, 100 a second on Linux (USER_HZ).
        metrics::counter!("process_cpu_seconds_total").absolute(ticks / 100);
    }
}

/// Resident memory from `/proc/self/statm` (Linux only; counted in 4 KiB pages, the
/// page size of the x86-64 and common arm64 kernels).
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}
