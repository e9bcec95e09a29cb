//! `loadgen`: a load driver for a running Jangteo (loopback targets only).
//!
//! ```text
//! loadgen seed --products 1000 --variants 4        # catalog for the benchmarks
//! loadgen mix --users 50 --duration 30s            # browse -> cart -> checkout
//! loadgen get --path '/store/products?limit=20' --connections 50 --duration 10s
//! ```
//!
//! Every virtual user (or connection) has its own HTTP/1.1 keep-alive connection and
//! sends one request at a time (a closed loop). Latency is measured from sending the
//! request to the last byte of the body. Every run is bounded in users, time and, for
//! `seed`, products.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

mod client;
mod get;
mod mix;
mod seed;
mod stats;

const DEFAULT_STORE: &str = "http://127.0.0.1:8080";
const DEFAULT_ADMIN: &str = "http://127.0.0.1:8081";
/// Longest run accepted.
const MAX_DURATION: Duration = Duration::from_secs(3600);

#[derive(Debug, Parser)]
#[command(
    name = "loadgen",
    version,
    about = "Load driver for a running Jangteo (127.0.0.1 only)"
)]
struct Cli {
    /// Runtime worker threads (0: one per core).
    #[arg(long, global = true, default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=64))]
    threads: u16,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// N virtual users looping browse -> cart -> checkout.
    Mix {
        /// Store API base URL.
        #[arg(long, default_value = DEFAULT_STORE)]
        store: String,
        /// Concurrent virtual users.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=5000))]
        users: u32,
        /// How long to run (30s, 500ms, 2m).
        #[arg(long, default_value = "30s", value_parser = client::parse_duration)]
        duration: Duration,
        /// Which part of the loop to run.
        #[arg(long, value_enum, default_value_t = mix::Flow::Full)]
        flow: mix::Flow,
        /// Only buy variants with at least this many units in stock.
        #[arg(long, default_value_t = 1000)]
        min_stock: i64,
        /// Listing pages (100 products each) read to find variants to buy.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
        pool_pages: u32,
        /// Per-request deadline.
        #[arg(long, default_value = "10s", value_parser = client::parse_duration)]
        timeout: Duration,
        /// Also write the figures as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Run id used in e-mails and idempotency keys (default: the current time).
        #[arg(long)]
        run_id: Option<u64>,
        /// `--flow complete`: carts each user fills before the clock starts.
        #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=100000))]
        prepared: u32,
    },
    /// Creates products through the admin API (re-runnable: existing handles are
    /// skipped).
    Seed {
        /// Admin API base URL.
        #[arg(long, default_value = DEFAULT_ADMIN)]
        admin: String,
        /// Staff e-mail.
        #[arg(long, default_value = "admin@jangteo.local")]
        admin_email: String,
        /// Staff password.
        #[arg(long, default_value = "jangteo-demo-admin")]
        admin_password: String,
        /// Products to create.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=200_000))]
        products: u32,
        /// Variants per product.
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=100))]
        variants: u32,
        /// Creations in flight.
        #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=64))]
        concurrency: u32,
        /// Number of the first product (handles are `<prefix>-<number>`).
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
        start: u32,
        /// Stock of every variant.
        #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(i64).range(0..=10_000_000))]
        stock: i64,
        /// Handle and SKU prefix.
        #[arg(long, default_value = "loadgen")]
        prefix: String,
        /// Per-request deadline.
        #[arg(long, default_value = "30s", value_parser = client::parse_duration)]
        timeout: Duration,
    },
    /// A fixed-URL GET load (the fallback when wrk is not installed).
    Get {
        /// Base URL.
        #[arg(long, default_value = DEFAULT_STORE)]
        url: String,
        /// Path and query, e.g. `/store/products?limit=20`.
        #[arg(long, default_value = "/store/products?limit=20")]
        path: String,
        /// Concurrent keep-alive connections.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=5000))]
        connections: u32,
        /// How long to run.
        #[arg(long, default_value = "10s", value_parser = client::parse_duration)]
        duration: Duration,
        /// Per-request deadline.
        #[arg(long, default_value = "10s", value_parser = client::parse_duration)]
        timeout: Duration,
        /// Also write the figures as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
    },
}

fn check_duration(d: Duration, what: &str) -> Result<(), String> {
    if d.is_zero() || d > MAX_DURATION {
        return Err(format!("{what} must be between 1 ms and {MAX_DURATION:?}"));
    }
    Ok(())
}

async fn run(cmd: Command) -> Result<(), String> {
    match cmd {
        Command::Mix {
            store,
            users,
            duration,
            flow,
            min_stock,
            pool_pages,
            timeout,
            json,
            run_id,
            prepared,
        } => {
            check_duration(duration, "--duration")?;
            check_duration(timeout, "--timeout")?;
            let run_id = run_id.unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0)
            });
            mix::run(mix::MixArgs {
                store: client::base_url(&store)?,
                users: users as usize,
                duration,
                flow,
                min_stock,
                pool_pages: pool_pages as usize,
                timeout,
                json,
                seed: run_id,
                prepared: prepared as usize,
            })
            .await
        }
        Command::Seed {
            admin,
            admin_email,
            admin_password,
            products,
            variants,
            concurrency,
            start,
            stock,
            prefix,
            timeout,
        } => {
            check_duration(timeout, "--timeout")?;
            check_prefix(&prefix)?;
            seed::run(seed::SeedArgs {
                admin: client::base_url(&admin)?,
                email: admin_email,
                password: admin_password,
                products: products as usize,
                variants: variants as usize,
                concurrency: concurrency as usize,
                start: start as usize,
                stock,
                prefix,
                timeout,
            })
            .await
        }
        Command::Get {
            url,
            path,
            connections,
            duration,
            timeout,
            json,
        } => {
            check_duration(duration, "--duration")?;
            check_duration(timeout, "--timeout")?;
            get::run(get::GetArgs {
                url: client::base_url(&url)?,
                path,
                connections: connections as usize,
                duration,
                timeout,
                json,
            })
            .await
        }
    }
}

/// The prefix becomes part of handles (`a-z0-9-`) and SKUs.
fn check_prefix(prefix: &str) -> Result<(), String> {
    let ok = !prefix.is_empty()
        && prefix.len() <= 40
        && prefix
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !prefix.starts_with('-')
        && !prefix.ends_with('-');
    if !ok {
        return Err(format!(
            "--prefix `{prefix}`: 1-40 characters of a-z, 0-9 and `-`, not starting or ending with `-`"
        ));
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if cli.threads > 0 {
        rt.worker_threads(usize::from(cli.threads));
    }
    let rt = match rt.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loadgen: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}
