//! `jangteo`: the server binary.
//!
//! `jangteo serve --demo` runs the embedded store (SQLite, in-process events) with demo
//! data; the same binary runs production backends chosen by configuration.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use jangteo_core::payment::PaymentRegistry;
use jangteo_core::{Engine, EngineBuilder, EngineSettings};
use jangteo_http::HttpSettings;
use tokio::net::TcpListener;
use tokio::sync::watch;

mod config;
mod demo;
mod events;
mod memory;
mod monitoring;

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
        /// APIs to serve: `store`, `admin`, or both (`store,admin`, the default).
        #[arg(long, value_delimiter = ',')]
        apis: Option<Vec<String>>,
        /// Data folder (SQLite file, generated secrets).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Runs the outbox relay and the event consumers (notifications, sales
    /// statistics) without the APIs; needs Kafka. Several may run at once: one relays
    /// at a time (a lease in the database), consumers share the work by partition.
    Worker,
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
    #[error("{0}")]
    Usage(String),
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

/// Opens the database. `wait`: a PostgreSQL server that is down does not stop the
/// start; the store stays unready (503, `/health/ready` false) until it answers.
async fn open_store(
    cfg: &Config,
    wait: bool,
) -> Result<Arc<dyn jangteo_core::ports::Store>, ServerError> {
    std::fs::create_dir_all(&cfg.server.data_dir)
        .map_err(io(format!("creating {}", cfg.server.data_dir.display())))?;
    let settings = jangteo_sql::PoolSettings {
        max_connections: cfg.database.max_connections,
        min_connections: cfg.database.min_connections,
        acquire_timeout: Duration::from_secs(cfg.database.acquire_timeout_secs),
        statement_timeout: Duration::from_millis(cfg.database.statement_timeout_ms),
    };
    let url = cfg.database_url();
    if wait {
        Ok(jangteo_sql::open_or_wait(&url, &settings).await?)
    } else {
        Ok(jangteo_sql::open(&url, &settings).await?)
    }
}

type RedisParts = Option<(
    Arc<dyn jangteo_core::cache::SharedCache>,
    Arc<dyn jangteo_core::auth::RateLimiter>,
)>;

/// The Redis cache and rate limiter, when `cache.url` is set. A Redis that is down at
/// start is not an error: the adapters start degraded and connect when it answers.
#[cfg(feature = "redis")]
async fn redis_parts(cfg: &Config) -> Result<RedisParts, ServerError> {
    if cfg.cache.url.0.is_empty() {
        return Ok(None);
    }
    let mut s = jangteo_redis::RedisSettings::new(cfg.cache.url.0.clone())
        .with_prefix(cfg.cache.prefix.clone());
    s.response_timeout = Duration::from_millis(cfg.cache.timeout_ms.max(1));
    let conn = jangteo_redis::connect(s)
        .await
        .map_err(|e| ServerError::Usage(format!("cache.url: {e}")))?;
    Ok(Some((
        Arc::new(conn.cache()),
        Arc::new(conn.rate_limiter()),
    )))
}

#[cfg(not(feature = "redis"))]
async fn redis_parts(cfg: &Config) -> Result<RedisParts, ServerError> {
    if cfg.cache.url.0.is_empty() {
        Ok(None)
    } else {
        Err(ServerError::Usage(
            "cache.url is set but this build has no `redis` feature".into(),
        ))
    }
}

async fn build_engine(
    cfg: &Config,
    store: Arc<dyn jangteo_core::ports::Store>,
) -> Result<Engine, ServerError> {
    let e = &cfg.engine;
    let origin = cfg.compliance.origin_country.trim().to_ascii_uppercase();
    if origin.len() != 2 || !origin.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(ServerError::Usage(format!(
            "compliance.origin_country: `{origin}` is not an ISO 3166-1 alpha-2 code"
        )));
    }
    let settings = EngineSettings {
        cart_ttl: chrono::Duration::hours(e.cart_ttl_hours.clamp(1, 24 * 365)),
        payment_ttl: chrono::Duration::minutes(e.payment_ttl_minutes.clamp(1, 60 * 24 * 30)),
        default_locales: e.default_locales.clone(),
        low_stock_threshold: e.low_stock_threshold,
        login_limit: cfg.auth.login_limit,
        login_window: Duration::from_secs(cfg.auth.login_window_secs),
        catalog_cache_ttl: Duration::from_millis(e.catalog_cache_ms),
        order_prefix: e.order_prefix.clone(),
        shared_cache_ttl: Duration::from_secs(cfg.cache.ttl_secs.max(1)),
        origin_country: origin,
        base_currency: match cfg.compliance.base_currency.trim() {
            "" => None,
            c => Some(c.parse().map_err(|_| {
                ServerError::Usage(format!(
                    "compliance.base_currency: unsupported currency `{c}`"
                ))
            })?),
        },
        rules_refresh: Duration::from_secs(cfg.compliance.rules_refresh_secs.max(1)),
        ..EngineSettings::default()
    };
    // Payment plugins are registered here, by name, explicitly.
    let payments =
        PaymentRegistry::new().register(jangteo_payment_manual::ManualConfig::default().build());
    let mut builder = EngineBuilder::new(store, jwt_secret(cfg)?)
        .payments(payments)
        .settings(settings);
    // Country plugins, by code, explicitly: adding a country is a line here and a
    // dependency in Cargo.toml.
    for code in &cfg.compliance.countries {
        builder = match code.trim().to_ascii_uppercase().as_str() {
            "KR" => builder.country(Arc::new(jangteo_country_kr::Korea)),
            "ID" => builder.country(Arc::new(jangteo_country_id::Indonesia)),
            "MY" => builder.country(Arc::new(jangteo_country_my::Malaysia)),
            "SG" => builder.country(Arc::new(jangteo_country_sg::Singapore)),
            "US" => builder.country(Arc::new(jangteo_country_us::UnitedStates)),
            "JP" => builder.country(Arc::new(jangteo_country_jp::Japan)),
            "CN" => builder.country(Arc::new(jangteo_country_cn::China)),
            other => {
                return Err(ServerError::Usage(format!(
                    "compliance.countries: no plugin for `{other}` in this build"
                )))
            }
        };
    }
    if !cfg.compliance.data_key.0.is_empty() {
        builder = builder.data_key(cfg.compliance.data_key.0.as_bytes().to_vec());
    }
    if let Some((cache, limiter)) = redis_parts(cfg).await? {
        builder = builder.shared_cache(cache).rate_limiter(limiter);
    }
    // Everything the builder checks comes from the configuration (secret length,
    // country plugins, origin country), so its refusal is a configuration error.
    builder
        .build()
        .map_err(|e| ServerError::Usage(format!("engine settings: {e}")))
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

/// Which listeners `serve` opens (`server.apis`): (store, admin).
fn apis(cfg: &Config) -> Result<(bool, bool), ServerError> {
    let (mut store, mut admin) = (false, false);
    for api in &cfg.server.apis {
        match api.trim() {
            "store" => store = true,
            "admin" => admin = true,
            other => {
                return Err(ServerError::Usage(format!(
                    "server.apis: `{other}` is not an API; use `store`, `admin` or both"
                )))
            }
        }
    }
    if !store && !admin {
        return Err(ServerError::Usage(
            "server.apis is empty: serve needs `store`, `admin` or both (`jangteo worker` runs the events alone)".into(),
        ));
    }
    Ok((store, admin))
}

/// Binds one API's listener and serves it until `stop`; `None` when the API is off.
async fn listen(
    on: bool,
    addr: std::net::SocketAddr,
    app: impl FnOnce() -> axum::Router,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<Option<(String, tokio::task::JoinHandle<std::io::Result<()>>)>, ServerError> {
    if !on {
        return Ok(None);
    }
    let l = TcpListener::bind(addr)
        .await
        .map_err(io(format!("binding {addr}")))?;
    let url = format!("http://{}", l.local_addr().map_err(io("listener address"))?);
    let srv = axum::serve(
        l,
        app().into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(stop);
    Ok(Some((url, tokio::spawn(async move { srv.await }))))
}

/// The `server.metrics_addr` listener, when set (and a recorder is installed).
async fn metrics_listener(
    cfg: &Config,
    engine: &Engine,
    metrics: Option<jangteo_http::MetricsSource>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<Option<(String, tokio::task::JoinHandle<std::io::Result<()>>)>, ServerError> {
    let (Some(addr), Some(source)) = (cfg.server.metrics_addr, metrics) else {
        return Ok(None);
    };
    listen(
        true,
        addr,
        || jangteo_http::metrics_router(engine.clone(), source),
        stop,
    )
    .await
}

/// How often an instance without Kafka reads the shared cache's catalog generations:
/// another instance's catalog change is served here within this plus one request.
const SHARED_INVALIDATION_POLL: Duration = Duration::from_millis(250);

async fn serve(cfg: Config, demo_mode: bool, started: Instant) -> Result<(), ServerError> {
    let (store_on, admin_on) = apis(&cfg)?;
    let store = open_store(&cfg, true).await?;
    let engine = build_engine(&cfg, store).await?;
    // Before anything records (the relay, the consumers, the first requests).
    let metrics = monitoring::install().map(|h| monitoring::source(h, engine.clone()));

    let bootstrapped = std::env::var("JANGTEO_BOOTSTRAP_ADMIN_EMAIL").is_ok()
        && std::env::var("JANGTEO_BOOTSTRAP_ADMIN_PASSWORD").is_ok();
    if engine.ready().await.is_ok() {
        prepare(&engine, demo_mode).await?;
    } else {
        // The database is down: serve not-ready now and finish preparing once it
        // answers, so a server started before its database heals by itself.
        let engine = engine.clone();
        tokio::spawn(async move {
            loop {
                match prepare(&engine, demo_mode).await {
                    Ok(()) => return,
                    Err(ServerError::Core(jangteo_core::CoreError::Unavailable(e))) => {
                        tracing::info!(error = %e, "waiting for the database");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "preparing the store failed");
                        return;
                    }
                }
            }
        });
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    let wait_stop = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    // Events stop after the listeners: the relay's last drain then sees what the final
    // requests committed.
    let (events_stop_tx, events_stop_rx) = watch::channel(false);
    let event_tasks = events::start(&cfg, &engine, events::Role::Server, events_stop_rx)?;

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

    memory::spawn(engine.clone(), stop_rx.clone());

    if cfg.events.kafka_brokers.is_empty() && !cfg.cache.url.0.is_empty() {
        // Several instances on one database and one Redis without Kafka: only the
        // instance holding the outbox lease sees the catalog events, so the others
        // learn of a change from the shared cache's generations instead.
        let engine = engine.clone();
        let stop = wait_stop(stop_rx.clone());
        tokio::spawn(async move {
            engine
                .follow_shared_invalidations(SHARED_INVALIDATION_POLL, stop)
                .await
        });
    }

    let http = HttpSettings {
        request_timeout: Duration::from_secs(cfg.server.request_timeout_secs),
        trust_forwarded_for: cfg.server.trust_forwarded_for,
        cors_origins: cfg.server.cors_origins.clone(),
        metrics: metrics.clone(),
        ..HttpSettings::default()
    };
    let store_srv = listen(
        store_on,
        cfg.server.store_addr,
        || jangteo_http::store_router(engine.clone(), &http),
        wait_stop(stop_rx.clone()),
    )
    .await?;
    let admin_srv = listen(
        admin_on,
        cfg.server.admin_addr,
        || jangteo_http::admin_router(engine.clone(), &http),
        wait_stop(stop_rx.clone()),
    )
    .await?;
    let metrics_srv = metrics_listener(&cfg, &engine, metrics, wait_stop(stop_rx.clone())).await?;

    tracing::info!(
        startup_ms = started.elapsed().as_millis() as u64,
        "jangteo ready"
    );
    println!("Jangteo is running ({} ms)", started.elapsed().as_millis());
    match &store_srv {
        Some((url, _)) => {
            println!("  store API  {url}/store/products   (OpenAPI: {url}/openapi.json)")
        }
        None => println!("  store API  off (server.apis)"),
    }
    match &admin_srv {
        Some((url, _)) => {
            println!("  admin API  {url}/admin/products   (OpenAPI: {url}/openapi.json)")
        }
        None => println!("  admin API  off (server.apis)"),
    }
    if let Some((url, _)) = &metrics_srv {
        println!("  metrics    {url}/metrics");
    }
    if demo_mode && !bootstrapped {
        println!("  demo admin {} / {}", DEMO_ADMIN.0, DEMO_ADMIN.1);
    }
    println!("Press Ctrl-C to stop.");

    shutdown_signal().await;
    tracing::info!("shutting down: finishing in-flight requests");
    let _ = stop_tx.send(true);
    let grace = Duration::from_secs(cfg.server.shutdown_grace_secs);
    let _ = tokio::time::timeout(grace, async {
        for (_, task) in [store_srv, admin_srv, metrics_srv].into_iter().flatten() {
            let _ = task.await;
        }
        let _ = events_stop_tx.send(true);
        for t in event_tasks {
            let _ = t.await;
        }
    })
    .await;
    engine.store().close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Creates the bootstrap (or demo) admin and loads the demo catalog; both are no-ops
/// when already done.
async fn prepare(engine: &Engine, demo_mode: bool) -> Result<(), ServerError> {
    engine.ready().await?;
    let bootstrap = (
        std::env::var("JANGTEO_BOOTSTRAP_ADMIN_EMAIL"),
        std::env::var("JANGTEO_BOOTSTRAP_ADMIN_PASSWORD"),
    );
    if let (Ok(email), Ok(password)) = bootstrap {
        if engine.bootstrap_admin(&email, &password).await? {
            tracing::info!(%email, "bootstrap admin created");
        }
    } else if demo_mode && engine.bootstrap_admin(DEMO_ADMIN.0, DEMO_ADMIN.1).await? {
        tracing::info!(email = DEMO_ADMIN.0, "demo admin created");
    }
    if demo_mode {
        let n = demo::seed(&engine.clone()).await?;
        if n > 0 {
            tracing::info!(products = n, "demo catalog loaded");
        }
    }
    Ok(())
}

/// `jangteo worker`: relay and consumers until SIGTERM.
async fn worker(cfg: Config) -> Result<(), ServerError> {
    let store = open_store(&cfg, true).await?;
    let engine = build_engine(&cfg, store).await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let metrics = monitoring::install().map(|h| monitoring::source(h, engine.clone()));
    let tasks = events::start(&cfg, &engine, events::Role::Worker, stop_rx.clone())?;
    let mut stop_metrics = stop_rx;
    let metrics_srv = metrics_listener(&cfg, &engine, metrics, async move {
        let _ = stop_metrics.wait_for(|s| *s).await;
    })
    .await?;
    tracing::info!("jangteo worker running");
    if let Some((url, _)) = &metrics_srv {
        println!("  metrics    {url}/metrics");
    }
    println!("Jangteo worker running. Press Ctrl-C to stop.");
    shutdown_signal().await;
    let _ = stop_tx.send(true);
    let grace = Duration::from_secs(cfg.server.shutdown_grace_secs);
    let _ = tokio::time::timeout(grace, async {
        for t in tasks {
            let _ = t.await;
        }
        if let Some((_, t)) = metrics_srv {
            let _ = t.await;
        }
    })
    .await;
    engine.store().close().await;
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
            apis,
            data_dir,
        } => {
            if let Some(a) = store_addr {
                cfg.server.store_addr = *a;
            }
            if let Some(a) = apis {
                cfg.server.apis = a.clone();
            }
            if let Some(a) = admin_addr {
                cfg.server.admin_addr = *a;
            }
            if let Some(d) = data_dir {
                cfg.server.data_dir = d.clone();
            }
            *demo
        }
        Command::Worker => false,
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
            Command::Worker => worker(cfg).await,
            Command::Migrate { .. } => {
                open_store(&cfg, false).await?;
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
        // A setting that cannot work exits 2, as an unreadable file does, so a deploy
        // script can tell a bad configuration from a database that is not up yet.
        Err(
            e @ (ServerError::Config(_)
            | ServerError::Usage(_)
            | ServerError::Sql(
                jangteo_sql::SqlError::UnsupportedUrl(_)
                | jangteo_sql::SqlError::FeatureNotEnabled(_),
            )),
        ) => {
            eprintln!("jangteo: {e}");
            std::process::ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("jangteo: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
