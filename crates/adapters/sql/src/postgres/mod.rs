//! The PostgreSQL store: one pool, READ COMMITTED transactions, native types.
//!
//! Concurrency rests on single conditional statements rather than on isolation level:
//! stock is taken with `UPDATE ... WHERE stock >= qty`, which PostgreSQL re-checks on the
//! newest row version after waiting for a concurrent writer, so two checkouts can never
//! both take the last unit; order transitions are `UPDATE ... WHERE status = expected`.
//! Rows are locked in one global order by the use cases (variants by id), so concurrent
//! checkouts do not deadlock.

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use jangteo_core::cart::Cart;
use jangteo_core::catalog::VariantSnapshot;
use jangteo_core::ids::CartId;
use jangteo_core::ports::{OutboxRow, PlacedOrder, Placement, Reads, Store, Tx};
use jangteo_core::CoreResult;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgConnection, PgPool, Postgres, Transaction};

use crate::error::{map, SqlError};
use crate::PoolSettings;

mod catalog;
mod commerce;
mod compliance;
mod in_list;
mod outbox;
mod projections;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// PostgreSQL storage.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    /// False until the migrations ran (a store opened while the database was down);
    /// until then every call answers "unavailable" instead of failing on missing tables.
    migrated: Arc<AtomicBool>,
}

impl PostgresStore {
    /// Connects to a `postgres://` URL, checks the server, and applies the migrations
    /// (under PostgreSQL's migration lock, so several instances may start at once).
    ///
    /// Every connection gets `statement_timeout` (a runaway query is cancelled rather
    /// than holding a connection forever) and `idle_in_transaction_session_timeout`.
    pub async fn open(url: &str, settings: &PoolSettings) -> Result<Self, SqlError> {
        let pool = pool_options(settings)
            .min_connections(settings.min_connections.min(settings.max_connections))
            .idle_timeout(Some(Duration::from_secs(300)))
            .max_lifetime(Some(Duration::from_secs(1800)))
            .connect_with(connect_options(url, settings)?)
            .await
            .map_err(SqlError::Connect)?;
        check_server(&pool).await?;
        MIGRATOR.run(&pool).await.map_err(SqlError::Migrate)?;
        Ok(PostgresStore {
            pool,
            migrated: Arc::new(AtomicBool::new(true)),
        })
    }

    /// Opens without connecting: the pool connects on first use, and the migrations
    /// run on the first [`Store::ping`] that reaches the server. The server uses this
    /// when the database is down at start, so it comes up not-ready and heals.
    pub fn open_lazy(url: &str, settings: &PoolSettings) -> Result<Self, SqlError> {
        let pool = pool_options(settings).connect_lazy_with(connect_options(url, settings)?);
        Ok(PostgresStore {
            pool,
            migrated: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Applies pending migrations (for a store opened lazily).
    pub async fn migrate(&self) -> Result<(), SqlError> {
        check_server(&self.pool).await?;
        MIGRATOR.run(&self.pool).await.map_err(SqlError::Migrate)?;
        self.migrated.store(true, Ordering::Release);
        Ok(())
    }

    /// Until the migrations ran (a store opened while the database was down), every
    /// call first tries them, so any process, not only one serving readiness checks,
    /// heals once the database answers.
    async fn ensure_migrated(&self) -> CoreResult<()> {
        if self.migrated.load(Ordering::Acquire) {
            return Ok(());
        }
        self.migrate()
            .await
            .map_err(|e| jangteo_core::CoreError::Unavailable(format!("database not ready: {e}")))
    }

    /// Creates a fresh UTF-8 database next to the one `admin_url` names and returns its
    /// URL. For test suites and tools that need a throwaway database per run.
    pub async fn create_database(admin_url: &str, name: &str) -> Result<String, SqlError> {
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(SqlError::Unsuitable(format!("bad database name `{name}`")));
        }
        let opts = PgConnectOptions::from_str(admin_url).map_err(SqlError::Connect)?;
        let mut conn = sqlx::ConnectOptions::connect(&opts)
            .await
            .map_err(SqlError::Connect)?;
        // template0: the only template a different encoding or locale may be given for.
        sqlx::query(&format!(
            "CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8'"
        ))
        .execute(&mut conn)
        .await
        .map_err(SqlError::Connect)?;
        let mut url = url_without_database(admin_url);
        url.push('/');
        url.push_str(name);
        Ok(url)
    }
}

/// A pooled connection idle at least this long is pinged before it is handed out.
const PING_WHEN_IDLE: Duration = Duration::from_secs(1);

/// Pool sizing and how a connection is checked before use.
///
/// A connection that died with a server restart must be noticed and replaced, so the
/// pool heals without restarting the process. sqlx's `test_before_acquire` pings on
/// every acquire: a round trip for each transaction, about one in eight of a checkout's
/// (sqlx also pings on release, in the background). Only connections that sat idle
/// are pinged instead: a restart leaves connections idle for longer than the second
/// it takes, and one still used within that second fails its statement, answers 503
/// with `Retry-After`, and is closed when its release ping fails.
fn pool_options(settings: &PoolSettings) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(settings.max_connections.max(1))
        .acquire_timeout(settings.acquire_timeout)
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_WHEN_IDLE {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
}

/// Connection options: the URL plus the session settings every connection gets.
fn connect_options(url: &str, settings: &PoolSettings) -> Result<PgConnectOptions, SqlError> {
    let timeout_ms = settings.statement_timeout.as_millis().max(1).to_string();
    Ok(PgConnectOptions::from_str(url)
        .map_err(SqlError::Connect)?
        .application_name("jangteo")
        .options([
            ("statement_timeout", timeout_ms.as_str()),
            // A transaction left open by a stuck client must not hold row locks.
            ("idle_in_transaction_session_timeout", "60000"),
        ]))
}

/// Refuses a database whose encoding is not UTF-8: pg_trgm would not index Korean text
/// and two-syllable searches would silently find nothing.
async fn check_server(pool: &PgPool) -> Result<(), SqlError> {
    let encoding: String = sqlx::query_scalar(
        "SELECT pg_encoding_to_char(encoding) FROM pg_database WHERE datname = current_database()",
    )
    .fetch_one(pool)
    .await
    .map_err(SqlError::Connect)?;
    if encoding != "UTF8" {
        return Err(SqlError::Unsuitable(format!(
            "database encoding is {encoding}; Jangteo needs UTF8 (createdb -E UTF8 --locale=C.UTF-8)"
        )));
    }
    Ok(())
}

/// A read-write transaction.
pub(crate) struct PgTx {
    tx: Transaction<'static, Postgres>,
}

/// A pooled connection for reads.
pub(crate) struct PgReader {
    conn: PoolConnection<Postgres>,
}

pub(crate) trait Conn: Send {
    fn conn(&mut self) -> &mut PgConnection;
}

impl Conn for PgTx {
    fn conn(&mut self) -> &mut PgConnection {
        &mut self.tx
    }
}

impl Conn for PgReader {
    fn conn(&mut self) -> &mut PgConnection {
        &mut self.conn
    }
}

#[async_trait]
impl Tx for PgTx {
    async fn cart_for_checkout(
        &mut self,
        id: CartId,
    ) -> CoreResult<Option<(Cart, Vec<VariantSnapshot>)>> {
        commerce::cart_for_checkout(self.conn(), id).await
    }

    async fn place_order(&mut self, placed: &PlacedOrder<'_>) -> CoreResult<Placement> {
        commerce::place_order(self.conn(), placed).await
    }

    async fn commit(self: Box<Self>) -> CoreResult<()> {
        self.tx.commit().await.map_err(map)
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn begin(&self) -> CoreResult<Box<dyn Tx>> {
        self.ensure_migrated().await?;
        let tx = self.pool.begin().await.map_err(map)?;
        Ok(Box::new(PgTx { tx }))
    }

    async fn read(&self) -> CoreResult<Box<dyn Reads>> {
        self.ensure_migrated().await?;
        let conn = self.pool.acquire().await.map_err(map)?;
        Ok(Box::new(PgReader { conn }))
    }

    async fn outbox_pending(&self, limit: u32) -> CoreResult<Vec<OutboxRow>> {
        self.outbox_pending_skipping(limit, &[]).await
    }

    async fn outbox_pending_skipping(
        &self,
        limit: u32,
        skip: &[i64],
    ) -> CoreResult<Vec<OutboxRow>> {
        self.ensure_migrated().await?;
        let mut conn = self.pool.acquire().await.map_err(map)?;
        outbox::pending(&mut conn, limit, skip).await
    }

    async fn outbox_backlog(&self) -> CoreResult<jangteo_core::ports::OutboxBacklog> {
        self.ensure_migrated().await?;
        let mut conn = self.pool.acquire().await.map_err(map)?;
        outbox::backlog(&mut conn).await
    }

    async fn outbox_mark_sent(&self, seqs: &[i64]) -> CoreResult<()> {
        let mut conn = self.pool.acquire().await.map_err(map)?;
        outbox::mark_sent(&mut conn, seqs).await
    }

    async fn outbox_lease(&self, holder: &str, ttl: Duration) -> CoreResult<bool> {
        self.ensure_migrated().await?;
        let mut conn = self.pool.acquire().await.map_err(map)?;
        outbox::lease(&mut conn, holder, ttl).await
    }

    async fn outbox_release_lease(&self, holder: &str) -> CoreResult<()> {
        let mut conn = self.pool.acquire().await.map_err(map)?;
        outbox::release(&mut conn, holder).await
    }

    async fn prune(
        &self,
        sent_before: chrono::DateTime<chrono::Utc>,
        keys_before: chrono::DateTime<chrono::Utc>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> CoreResult<u64> {
        let mut tx = self.pool.begin().await.map_err(map)?;
        let mut n = 0;
        for (sql, t) in [
            (
                "DELETE FROM outbox WHERE sent_at IS NOT NULL AND sent_at < $1",
                sent_before,
            ),
            (
                "DELETE FROM idempotency_keys WHERE created_at < $1",
                keys_before,
            ),
            ("DELETE FROM refresh_tokens WHERE expires_at < $1", now),
            (
                "DELETE FROM processed_events WHERE applied_at < $1",
                keys_before,
            ),
        ] {
            n += sqlx::query(sql)
                .bind(t)
                .execute(&mut *tx)
                .await
                .map_err(map)?
                .rows_affected();
        }
        tx.commit().await.map_err(map)?;
        Ok(n)
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    async fn ping(&self) -> CoreResult<()> {
        self.ensure_migrated().await?;
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(map)?;
        Ok(())
    }
}

/// `postgres://u@h:p/db?x=y` -> `postgres://u@h:p` (query options dropped).
fn url_without_database(url: &str) -> String {
    let base = url.split('?').next().unwrap_or(url);
    match base.find("://") {
        Some(i) => match base[i + 3..].find('/') {
            Some(j) => base[..i + 3 + j].to_string(),
            None => base.to_string(),
        },
        None => base.to_string(),
    }
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    /// Released migrations keep their bytes (see the SQLite twin of this test).
    #[test]
    fn released_migrations_never_change() {
        let released = [
            (1, "86e28d0e5f1eb8f6ff0af3a956429619aa35bd8f4de882b1da9292301847c1b4ea1b29eb9e461ff2ed176f0e7e4300be"),
            (2, "f99e205c0fd5f7562a5051c06c95c2c39180709a7fc0c3a3d2e8482ef8459968d0f2fa5f4541dd97b2be0b2c2aae79e4"),
            (3, "d6f74209a5f1668eaf1d42d37806fbc0ccf4b7b8e610efc20fac3173144160f1ee34c2165a7393f01bfddd2db0aaebe5"),
            (4, "cd2803951f4779d18402d07483ef6ed459f6759fcfb1d200451617482d6942a9ea486823662f3327f984b225abac7932"),
            (5, "e5e6df209755856c4101ef890fae3e66d961cfd2b0219aa8a4775aaf96b84de7ebca5e7927bff0d9747a6d262ddbdf17"),
        ];
        crate::sqlite::migrate::assert_released_unchanged(&super::MIGRATOR, "postgres", &released);
    }
}
