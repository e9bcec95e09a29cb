//! Per-step counters and a latency histogram (a sorted vector of microseconds).

use std::collections::BTreeMap;

use crate::client::{Fail, Resp};

/// Most latency samples kept per step and per user; requests beyond it are still
/// counted, only their latency is not kept. Bounds memory on very long runs.
const MAX_SAMPLES: usize = 2_000_000;

/// What happened to one request, as the statistics see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Ok,
    /// 409 `out_of_stock`: a business answer, counted apart from errors.
    OutOfStock,
    Error,
}

/// Counters of one step (or of the whole `get` run).
#[derive(Debug, Default, Clone)]
pub(crate) struct StepStats {
    pub(crate) count: u64,
    pub(crate) ok: u64,
    pub(crate) out_of_stock: u64,
    /// Errors by status code (`500`, `422`, ...) or `timeout` / `transport`.
    pub(crate) errors: BTreeMap<String, u64>,
    pub(crate) bytes: u64,
    lat_us: Vec<u32>,
}

impl StepStats {
    /// Records an answer; `Outcome::OutOfStock` when the caller recognised a 409
    /// `out_of_stock`.
    pub(crate) fn record(&mut self, r: &Result<Resp, Fail>, oos: bool) -> Outcome {
        self.count += 1;
        match r {
            Ok(resp) => {
                self.bytes += resp.body.len() as u64;
                if self.lat_us.len() < MAX_SAMPLES {
                    self.lat_us
                        .push(resp.latency_us.min(u64::from(u32::MAX)) as u32);
                }
                if resp.is_success() {
                    self.ok += 1;
                    Outcome::Ok
                } else if oos {
                    self.out_of_stock += 1;
                    Outcome::OutOfStock
                } else {
                    *self.errors.entry(resp.status.to_string()).or_default() += 1;
                    Outcome::Error
                }
            }
            Err(f) => {
                *self.errors.entry(f.label().to_string()).or_default() += 1;
                Outcome::Error
            }
        }
    }

    pub(crate) fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    pub(crate) fn merge(&mut self, o: StepStats) {
        self.count += o.count;
        self.ok += o.ok;
        self.out_of_stock += o.out_of_stock;
        self.bytes += o.bytes;
        for (k, v) in o.errors {
            *self.errors.entry(k).or_default() += v;
        }
        let room = MAX_SAMPLES
            .saturating_mul(64)
            .saturating_sub(self.lat_us.len());
        self.lat_us.extend(o.lat_us.into_iter().take(room));
    }

    /// Sorts the samples and summarises them over `secs` seconds.
    pub(crate) fn summary(&mut self, secs: f64) -> Summary {
        self.lat_us.sort_unstable();
        let pct = |p: f64| -> f64 {
            if self.lat_us.is_empty() {
                return 0.0;
            }
            // Nearest rank.
            let rank = ((p / 100.0) * self.lat_us.len() as f64).ceil() as usize;
            let i = rank.clamp(1, self.lat_us.len()) - 1;
            f64::from(self.lat_us[i]) / 1000.0
        };
        Summary {
            count: self.count,
            ok: self.ok,
            errors: self.error_count(),
            out_of_stock: self.out_of_stock,
            error_breakdown: self.errors.clone(),
            rps: if secs > 0.0 {
                self.count as f64 / secs
            } else {
                0.0
            },
            p50_ms: pct(50.0),
            p90_ms: pct(90.0),
            p99_ms: pct(99.0),
            max_ms: self
                .lat_us
                .last()
                .map(|v| f64::from(*v) / 1000.0)
                .unwrap_or(0.0),
            mean_bytes: self.bytes.checked_div(self.count).unwrap_or(0),
        }
    }
}

/// A step's figures.
#[derive(Debug, Clone)]
pub(crate) struct Summary {
    pub(crate) count: u64,
    pub(crate) ok: u64,
    pub(crate) errors: u64,
    pub(crate) out_of_stock: u64,
    pub(crate) error_breakdown: BTreeMap<String, u64>,
    pub(crate) rps: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p90_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) max_ms: f64,
    pub(crate) mean_bytes: u64,
}

impl Summary {
    pub(crate) fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "count": self.count,
            "ok": self.ok,
            "errors": self.errors,
            "out_of_stock": self.out_of_stock,
            "error_breakdown": self.error_breakdown,
            "rps": round2(self.rps),
            "p50_ms": round2(self.p50_ms),
            "p90_ms": round2(self.p90_ms),
            "p99_ms": round2(self.p99_ms),
            "max_ms": round2(self.max_ms),
            "mean_bytes": self.mean_bytes,
        })
    }
}

pub(crate) fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// Prints the header of the step table.
pub(crate) fn print_header() {
    println!(
        "{:<14} {:>9} {:>7} {:>7} {:>10} {:>9} {:>9} {:>9} {:>9}",
        "step", "count", "errors", "409oos", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms"
    );
}

/// Prints one row of the step table, and the error breakdown under it.
pub(crate) fn print_row(name: &str, s: &Summary) {
    println!(
        "{:<14} {:>9} {:>7} {:>7} {:>10.1} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
        name, s.count, s.errors, s.out_of_stock, s.rps, s.p50_ms, s.p90_ms, s.p99_ms, s.max_ms
    );
    if !s.error_breakdown.is_empty() {
        let parts: Vec<String> = s
            .error_breakdown
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        println!("{:<14} errors by status: {}", "", parts.join(", "));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::body::Bytes;

    fn resp(status: u16, us: u64) -> Result<Resp, Fail> {
        Ok(Resp {
            status,
            body: Bytes::from_static(b"{}"),
            latency_us: us,
        })
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let mut s = StepStats::default();
        for us in 1..=100u64 {
            s.record(&resp(200, us * 1000), false);
        }
        let sum = s.summary(10.0);
        assert_eq!(sum.count, 100);
        assert_eq!(sum.p50_ms, 50.0);
        assert_eq!(sum.p90_ms, 90.0);
        assert_eq!(sum.p99_ms, 99.0);
        assert_eq!(sum.max_ms, 100.0);
        assert_eq!(sum.rps, 10.0);
    }

    #[test]
    fn errors_and_out_of_stock_are_apart() {
        let mut s = StepStats::default();
        assert_eq!(s.record(&resp(201, 5), false), Outcome::Ok);
        assert_eq!(s.record(&resp(409, 5), true), Outcome::OutOfStock);
        assert_eq!(s.record(&resp(409, 5), false), Outcome::Error);
        assert_eq!(s.record(&resp(500, 5), false), Outcome::Error);
        assert_eq!(s.record(&Err(Fail::Timeout), false), Outcome::Error);
        let mut other = StepStats::default();
        other.record(&resp(500, 5), false);
        s.merge(other);
        let sum = s.summary(1.0);
        assert_eq!(sum.count, 6);
        assert_eq!(sum.ok, 1);
        assert_eq!(sum.out_of_stock, 1);
        assert_eq!(sum.errors, 4);
        assert_eq!(sum.error_breakdown["500"], 2);
        assert_eq!(sum.error_breakdown["409"], 1);
        assert_eq!(sum.error_breakdown["timeout"], 1);
    }
}
