//! # jangteo-sql
//!
//! SQL storage for Jangteo. The `sqlite` feature (default) gives [`SqliteStore`], the
//! embedded default: one file, WAL mode, migrations embedded and applied at open; its
//! statements run through rusqlite on the calling thread (see `sqlite/mod.rs` for why).
//! The `postgres` feature gives [`PostgresStore`] on sqlx's pool. Each backend has its
//! own migration folder, managed with sqlx's migrations, since SQL is not portable
//! between the two.
//!
//! ```no_run
//! # async fn demo() -> Result<(), jangteo_sql::SqlError> {
//! let store = jangteo_sql::open("sqlite://./data/jangteo.db", &Default::default()).await?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

use std::sync::Arc;

use jangteo_core::ports::Store;

mod error;
mod facts;
mod impls;
mod outbox;
#[cfg(feature = "postgres")]
mod postgres;
mod search;
#[cfg(feature = "sqlite")]
mod sqlite;
mod time;

pub use error::SqlError;
#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;

/// Connection settings common to the backends.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// Connections for reads (SQLite) or in total (PostgreSQL).
    pub max_connections: u32,
    /// Connections kept open when idle (PostgreSQL).
    pub min_connections: u32,
    /// How long a request waits for a connection before it gets "unavailable" (503).
    pub acquire_timeout: std::time::Duration,
    /// Longest a single statement may run before the server cancels it (PostgreSQL).
    pub statement_timeout: std::time::Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            max_connections: 8,
            min_connections: 1,
            acquire_timeout: std::time::Duration::from_secs(5),
            statement_timeout: std::time::Duration::from_secs(10),
        }
    }
}

/// Opens the store a URL names: `sqlite://path` (or `sqlite::memory:`) with the `sqlite`
/// feature, `postgres://...` with the `postgres` feature. A URL whose backend is not compiled in
/// is a clear error, never a panic.
pub async fn open(url: &str, settings: &PoolSettings) -> Result<Arc<dyn Store>, SqlError> {
    let scheme = url.split(':').next().unwrap_or_default();
    match scheme {
        "sqlite" => open_sqlite(url, settings).await,
        "postgres" | "postgresql" => open_postgres(url, settings).await,
        _ => Err(SqlError::UnsupportedUrl(
            url.split('@').next_back().unwrap_or_default().to_string(),
        )),
    }
}

#[cfg(feature = "sqlite")]
async fn open_sqlite(url: &str, settings: &PoolSettings) -> Result<Arc<dyn Store>, SqlError> {
    Ok(Arc::new(SqliteStore::open(url, settings).await?))
}

#[cfg(not(feature = "sqlite"))]
async fn open_sqlite(_: &str, _: &PoolSettings) -> Result<Arc<dyn Store>, SqlError> {
    Err(SqlError::FeatureNotEnabled("sqlite".into()))
}

#[cfg(feature = "postgres")]
async fn open_postgres(url: &str, settings: &PoolSettings) -> Result<Arc<dyn Store>, SqlError> {
    Ok(Arc::new(PostgresStore::open(url, settings).await?))
}

#[cfg(not(feature = "postgres"))]
async fn open_postgres(_: &str, _: &PoolSettings) -> Result<Arc<dyn Store>, SqlError> {
    Err(SqlError::FeatureNotEnabled("postgres".into()))
}

/// Like [`open`], but a PostgreSQL server that cannot be reached yet is not an error:
/// the store starts unready (every call answers "unavailable", which the HTTP layer
/// turns into 503) and connects and migrates on the first readiness check that reaches
/// the server. Bad URLs and SQLite problems still fail at once.
pub async fn open_or_wait(url: &str, settings: &PoolSettings) -> Result<Arc<dyn Store>, SqlError> {
    match open(url, settings).await {
        #[cfg(feature = "postgres")]
        Err(SqlError::Connect(e)) if !url.starts_with("sqlite") && is_unreachable(&e) => {
            tracing::warn!(error = %e, "database unreachable at start; serving not-ready until it answers");
            Ok(Arc::new(PostgresStore::open_lazy(url, settings)?))
        }
        other => other,
    }
}

#[cfg(feature = "postgres")]
fn is_unreachable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut => true,
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57P")),
        _ => false,
    }
}
