//! Giving memory back after bursts of work.
//!
//! Under load the server fills caches that are worth their memory only while busy:
//! catalog pages past their stale window, and SQLite's page caches (4 MiB per
//! connection). Every second this task drops stale catalog pages; once the process
//! has been quiet for a second (at most 2 % of one core) after at least 200 ms of
//! CPU work since the last release, it also asks the store to shrink its caches and
//! glibc to return free memory to the system. glibc keeps freed memory in its
//! per-thread arenas, so without that last step the freed caches stayed resident:
//! 66 MiB after the benchmark's load, 30 MiB with it (docs/performance.md). The quiet
//! check reads the process's CPU time from `/proc/self/stat`; where that does not
//! exist (not Linux), only stale pages are dropped.

use std::time::Duration;

use jangteo_core::Engine;
use tokio::sync::watch;

/// `/proc` counts CPU time in clock ticks: 100 per second on Linux (USER_HZ).
const QUIET_TICKS: u64 = 2;
const BUSY_TICKS: u64 = 20;

pub(crate) fn spawn(engine: Engine, mut stop: watch::Receiver<bool>) {
    tokio::spawn(async move {
        let mut last = cpu_ticks();
        let mut busy = 0;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            engine.purge_stale_caches();
            let (Some(before), Some(now)) = (last, cpu_ticks()) else {
                continue;
            };
            last = Some(now);
            let used = now.saturating_sub(before);
            busy += used;
            if used <= QUIET_TICKS && busy >= BUSY_TICKS {
                engine.release_idle_memory().await;
                trim_heap();
                tracing::debug!(busy_ticks = busy, "idle: released cache memory");
                busy = 0;
            }
        }
    });
}

/// Returns free heap memory to the system (glibc only; other allocators return it
/// themselves or not at all).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn trim_heap() {
    // SAFETY: malloc_trim takes no pointers and is thread-safe: it locks each arena
    // while it releases that arena's free pages.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim_heap() {}

/// User + system CPU time of this process, in clock ticks.
pub(crate) fn cpu_ticks() -> Option<u64> {
    parse_stat(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

fn parse_stat(stat: &str) -> Option<u64> {
    // The command name (field 2) may contain spaces and parentheses; the fields after
    // its closing parenthesis start at field 3 (state). utime and stime are fields
    // 14 and 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut f = rest.split_whitespace().skip(11);
    let utime: u64 = f.next()?.parse().ok()?;
    let stime: u64 = f.next()?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cpu_time_after_an_odd_command_name() {
        let stat = "4242 (jang teo) x) S 1 4242 4242 0 -1 4194560 1234 0 0 0 150 27 0 0 20 0 6 0 900 1000 200";
        assert_eq!(parse_stat(stat), Some(177));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn this_process_has_a_cpu_time() {
        if cfg!(target_os = "linux") {
            assert!(cpu_ticks().is_some());
        }
    }
}
