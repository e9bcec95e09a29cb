//! `jangteo`: the server binary.
//!
//! `jangteo serve --demo` runs the embedded store (SQLite, in-process events) with demo
//! data; the same binary runs production backends chosen by configuration.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use jangteo_core::events::InProcessBus;
use jangteo_core::payment::PaymentRegistry;
use jangteo_core::{Engine, EngineBuilder, EngineSettings};
use jangteo_http::HttpSettings;
use tokio::net::TcpListener;
use tokio::sync::watch;

mod config;
mod demo;

use config::Config;

#[derive(Debug, Parser)]
#[command(name = "jangteo", version, about = "Jangteo headless commerce engine")]
struct Cli {
    /// TOML configuration file.
    #[arg(long, global = true, env = "JANGTEO_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the store and admin APIs.
    Serve {
        /// Loads the demo catalog into an empty store (and a demo admin account).
        #[arg(long)]
        demo: bool,
        /// Store API address.
        #[arg(long)]
        store_addr: Option<std::net::SocketAddr>,
        /// Admin API address.
        #[arg(long)]
        admin_addr: Option<std::net::SocketAddr>,
        /// Data folder (SQLite file, generated secrets).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Applies database migrations and exits.
    Migrate {
        /// Data folder.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

/// Demo admin, created only with `--demo` when no bootstrap admin is configured.
const DEMO_ADMIN: (&str, &str) = ("admin@jangteo.local", "jangteo-demo-admin");

#[derive(Debug, thiserror::Error)]
enum ServerError {
    #[error("configuration: {0}")]
    Config(#[from] Box<figment::Error>),
    #[error("{0}")]
    Sql(#[from] jangteo_sql::SqlError),
    #[error("{0}")]
    Core(#[from] jangteo_core::CoreError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ServerError {
    let context = context.into();
    move |source| ServerError::Io { context, source }
}

fn init_tracing(cfg: &Config) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&cfg.log.level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if cfg.log.format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// The JWT secret: configured, or generated once into the data folder.
fn jwt_secret(cfg: &Config) -> Result<Vec<u8>, ServerError> {
    if !cfg.auth.jwt_secret.0.is_empty() {
        return Ok(cfg.auth.jwt_secret.0.clone().into_bytes());
    }
    let path = cfg.server.data_dir.join("jwt-secret");
    if let Ok(s) = std::fs::read_to_string(&path) {
        if s.trim().len() >= 32 {
            return Ok(s.trim().as_bytes().to_vec());
        }
    }
    let secret = format!(
        "{}{}",
        jangteo_core::auth::random_token()?,
        jangteo_core::auth::random_token()?
    );
    write_private(&path, &secret).map_err(io(format!("writing {}", path.display())))?;
    Ok(secret.into_bytes())
}

#[cfg(unix)]
fn write_private(path: &std::path::Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(content.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &std::path::Path, content: &str) -> std::io::Result<()> {
    std::fs::write(path, content)
}

async fn open_store(cfg: &Config) -> Result<Arc<dyn jangteo_core::ports::Store>, ServerError> {
    std::fs::create_dir_all(&cfg.server.data_dir)
        .map_err(io(format!("creating {}", cfg.server.data_dir.display())))?;
    let settings = jangteo_sql::PoolSettings {
        max_connections: cfg.database.max_connections,
        min_connections: cfg.database.min_connections,
        acquire_timeout: Duration::from_secs(cfg.database.acquire_timeout_secs),
        statement_timeout: Duration::from_millis(cfg.database.statement_timeout_ms),
    };
    Ok(jangteo_sql::open(&cfg.database_url(), &settings).await?)
}

fn build_engine(
    cfg: &Config,
    store: Arc<dyn jangteo_core::ports::Store>,
) -> Result<Engine, ServerError> {
    let e = &cfg.engine;
    let settings = EngineSettings {
        cart_ttl: chrono::Duration::hours(e.cart_ttl_hours.clamp(1, 24 * 365)),
        payment_ttl: chrono::Duration::minutes(e.payment_ttl_minutes.clamp(1, 60 * 24 * 30)),
        default_locales: e.default_locales.clone(),
        low_stock_threshold: e.low_stock_threshold,
        login_limit: cfg.auth.login_limit,
        login_window: Duration::from_secs(cfg.auth.login_window_secs),
        catalog_cache_ttl: Duration::from_millis(e.catalog_cache_ms),
        order_prefix: e.order_prefix.clone(),
        ..EngineSettings::default()
    };
    // Payment plugins are registered here, by name, explicitly.
    let payments =
        PaymentRegistry::new().register(jangteo_payment_manual::ManualConfig::default().build());
    Ok(EngineBuilder::new(store, jwt_secret(cfg)?)
        .payments(payments)
        .settings(settings)
        .build()?)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

async fn serve(cfg: Config, demo_mode: bool, started: Instant) -> Result<(), ServerError> {
    let store = open_store(&cfg).await?;
    let engine = build_engine(&cfg, store)?;

    let bootstrap = (
        std::env::var("JANGTEO_BOOTSTRAP_ADMIN_EMAIL"),
        std::env::var("JANGTEO_BOOTSTRAP_ADMIN_PASSWORD"),
    );
    let bootstrapped = bootstrap.0.is_ok() && bootstrap.1.is_ok();
    if let (Ok(email), Ok(password)) = bootstrap {
        if engine.bootstrap_admin(&email, &password).await? {
            tracing::info!(%email, "bootstrap admin created");
        }
    } else if demo_mode && engine.bootstrap_admin(DEMO_ADMIN.0, DEMO_ADMIN.1).await? {
        tracing::info!(email = DEMO_ADMIN.0, "demo admin created");
    }
    if demo_mode {
        let n = demo::seed(&engine).await?;
        if n > 0 {
            tracing::info!(products = n, "demo catalog loaded");
        }
    }

    // Events: the outbox relay feeds the in-process bus; a subscriber logs them.
    let bus = InProcessBus::default();
    let mut rx = bus.subscribe();
    tokio::spawn(async move {
        while let Ok(ev) = rx.recv().await {
            tracing::debug!(event = %ev.event_type, aggregate = %ev.aggregate_id, "event");
        }
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let wait_stop = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let relay = engine.outbox_relay(Arc::new(bus));
    let relay_task =
        tokio::spawn(relay.run(Duration::from_millis(500), wait_stop(stop_rx.clone())));

    // Expiry sweeper: pending payments past their window release their stock.
    let sweeper_engine = engine.clone();
    let mut sweeper_stop = stop_rx.clone();
    tokio::spawn(async move {
        loop {
            if let Err(e) = sweeper_engine.expire_pending_orders().await {
                tracing::warn!(error = %e, "expiring pending orders failed");
            }
            if let Err(e) = sweeper_engine.purge_expired_carts().await {
                tracing::warn!(error = %e, "purging carts failed");
            }
            if let Err(e) = sweeper_engine.prune_storage().await {
                tracing::warn!(error = %e, "pruning storage failed");
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(30)) => {}
                _ = sweeper_stop.wait_for(|s| *s) => return,
            }
        }
    });

    let http = HttpSettings {
        request_timeout: Duration::from_secs(cfg.server.request_timeout_secs),
        trust_forwarded_for: cfg.server.trust_forwarded_for,
        cors_origins: cfg.server.cors_origins.clone(),
        ..HttpSettings::default()
    };
    let store_app = jangteo_http::store_router(engine.clone(), &http);
    let admin_app = jangteo_http::admin_router(engine.clone(), &http);
    let store_l = TcpListener::bind(cfg.server.store_addr)
        .await
        .map_err(io(format!("binding {}", cfg.server.store_addr)))?;
    let admin_l = TcpListener::bind(cfg.server.admin_addr)
        .await
        .map_err(io(format!("binding {}", cfg.server.admin_addr)))?;
    let store_url = format!(
        "http://{}",
        store_l.local_addr().map_err(io("store address"))?
    );
    let admin_url = format!(
        "http://{}",
        admin_l.local_addr().map_err(io("admin address"))?
    );

    let store_srv = axum::serve(
        store_l,
        store_app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(wait_stop(stop_rx.clone()));
    let admin_srv = axum::serve(
        admin_l,
        admin_app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(wait_stop(stop_rx.clone()));
    let store_task = tokio::spawn(async move { store_srv.await });
    let admin_task = tokio::spawn(async move { admin_srv.await });

    tracing::info!(
        startup_ms = started.elapsed().as_millis() as u64,
        "jangteo ready"
    );
    println!("Jangteo is running ({} ms)", started.elapsed().as_millis());
    println!("  store API  {store_url}/store/products   (OpenAPI: {store_url}/openapi.json)");
    println!("  admin API  {admin_url}/admin/products   (OpenAPI: {admin_url}/openapi.json)");
    if demo_mode && !bootstrapped {
        println!("  demo admin {} / {}", DEMO_ADMIN.0, DEMO_ADMIN.1);
    }
    println!("Press Ctrl-C to stop.");

    shutdown_signal().await;
    tracing::info!("shutting down: finishing in-flight requests");
    let _ = stop_tx.send(true);
    let grace = Duration::from_secs(cfg.server.shutdown_grace_secs);
    let _ = tokio::time::timeout(grace, async {
        let _ = store_task.await;
        let _ = admin_task.await;
        let _ = relay_task.await;
    })
    .await;
    engine.store().close().await;
    tracing::info!("stopped");
    Ok(())
}

fn main() -> std::process::ExitCode {
    let started = Instant::now();
    let cli = Cli::parse();
    let (mut cfg, unknown) = match Config::load(cli.config.as_ref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("jangteo: configuration error: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let demo_mode = match &cli.command {
        Command::Serve {
            demo,
            store_addr,
            admin_addr,
            data_dir,
        } => {
            if let Some(a) = store_addr {
                cfg.server.store_addr = *a;
            }
            if let Some(a) = admin_addr {
                cfg.server.admin_addr = *a;
            }
            if let Some(d) = data_dir {
                cfg.server.data_dir = d.clone();
            }
            *demo
        }
        Command::Migrate { data_dir } => {
            if let Some(d) = data_dir {
                cfg.server.data_dir = d.clone();
            }
            false
        }
    };
    init_tracing(&cfg);
    for k in unknown {
        tracing::warn!(key = %k, "unknown configuration key ignored");
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("jangteo: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        match cli.command {
            Command::Serve { .. } => serve(cfg, demo_mode, started).await,
            Command::Migrate { .. } => {
                open_store(&cfg).await?;
                println!(
                    "migrations applied to {}",
                    cfg.database_url()
                        .split('@')
                        .next_back()
                        .unwrap_or_default()
                );
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("jangteo: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
