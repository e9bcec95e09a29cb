//! The SQLite store: one writer connection, a pool of readers, WAL.
//!
//! SQLite allows one writer at a time. Rather than letting concurrent transactions
//! collide on the write lock (and fail with SQLITE_BUSY on lock upgrade), every
//! read-write transaction goes through a pool of exactly one connection, so writers queue
//! in the pool and never deadlock; readers use their own pool and, thanks to WAL, never
//! wait for the writer.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use jangteo_core::ports::{OutboxRow, Reads, Store, Tx};
use jangteo_core::CoreResult;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqliteConnection, SqlitePool, Transaction};

use crate::error::{map, SqlError};
use crate::PoolSettings;

mod catalog;
mod commerce;
mod compliance;
mod outbox;
mod projections;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// SQLite storage.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    readers: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at a `sqlite://` URL and applies the
    /// migrations. `sqlite::memory:` gives a private in-memory database (one connection
    /// serves reads and writes then, since each connection would see its own).
    pub async fn open(url: &str, settings: &PoolSettings) -> Result<Self, SqlError> {
        let memory = url.contains(":memory:") || url.contains("mode=memory");
        let opts = SqliteConnectOptions::from_str(url)
            .map_err(SqlError::Connect)?
            .create_if_missing(true)
            .journal_mode(if memory {
                SqliteJournalMode::Memory
            } else {
                SqliteJournalMode::Wal
            })
            // NORMAL in WAL mode is durable across application crashes; only a power
            // loss can drop the last transactions. That is the usual trade for a store.
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5))
            .pragma("temp_store", "memory")
            // 4 MiB of page cache per connection (9 connections by default): the
            // catalog fits many times over, and idle memory stays small.
            .pragma("cache_size", "-4000");
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(settings.acquire_timeout.max(Duration::from_secs(30)))
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(opts.clone())
            .await
            .map_err(SqlError::Connect)?;
        MIGRATOR.run(&writer).await.map_err(SqlError::Migrate)?;
        let readers = if memory {
            writer.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(settings.max_connections.max(1))
                .acquire_timeout(settings.acquire_timeout)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(opts.read_only(true))
                .await
                .map_err(SqlError::Connect)?
        };
        Ok(SqliteStore { writer, readers })
    }

    /// Closes the pools (checkpointing the WAL).
    pub async fn close(&self) {
        self.readers.close().await;
        self.writer.close().await;
    }
}

/// A read-write transaction on the writer connection.
pub(crate) struct SqliteTx {
    tx: Transaction<'static, Sqlite>,
}

/// A reader connection.
pub(crate) struct SqliteReader {
    conn: PoolConnection<Sqlite>,
}

pub(crate) trait Conn: Send {
    fn conn(&mut self) -> &mut SqliteConnection;
}

impl Conn for SqliteTx {
    fn conn(&mut self) -> &mut SqliteConnection {
        &mut self.tx
    }
}

impl Conn for SqliteReader {
    fn conn(&mut self) -> &mut SqliteConnection {
        &mut self.conn
    }
}

#[async_trait]
impl Tx for SqliteTx {
    async fn commit(self: Box<Self>) -> CoreResult<()> {
        self.tx.commit().await.map_err(map)
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn begin(&self) -> CoreResult<Box<dyn Tx>> {
        // IMMEDIATE takes the write lock now, so a concurrent writer from another
        // process waits on busy_timeout instead of failing on lock upgrade later.
        let tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(map)?;
        Ok(Box::new(SqliteTx { tx }))
    }

    async fn read(&self) -> CoreResult<Box<dyn Reads>> {
        let conn = self.readers.acquire().await.map_err(map)?;
        Ok(Box::new(SqliteReader { conn }))
    }

    async fn outbox_pending(&self, limit: u32) -> CoreResult<Vec<OutboxRow>> {
        let mut conn = self.readers.acquire().await.map_err(map)?;
        outbox::pending(&mut conn, limit).await
    }

    async fn outbox_mark_sent(&self, seqs: &[i64]) -> CoreResult<()> {
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(map)?;
        outbox::mark_sent(&mut tx, seqs).await?;
        tx.commit().await.map_err(map)
    }

    async fn outbox_lease(&self, holder: &str, ttl: Duration) -> CoreResult<bool> {
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(map)?;
        let now = chrono::Utc::now();
        let until = now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::seconds(15));
        let got = outbox::lease(&mut tx, holder, now, until).await?;
        tx.commit().await.map_err(map)?;
        Ok(got)
    }

    async fn prune(
        &self,
        sent_before: chrono::DateTime<chrono::Utc>,
        keys_before: chrono::DateTime<chrono::Utc>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> CoreResult<u64> {
        use crate::time::ts;
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(map)?;
        let mut n = 0;
        for (sql, t) in [
            (
                "DELETE FROM outbox WHERE sent_at IS NOT NULL AND sent_at < ?",
                sent_before,
            ),
            (
                "DELETE FROM idempotency_keys WHERE created_at < ?",
                keys_before,
            ),
            ("DELETE FROM refresh_tokens WHERE expires_at < ?", now),
            (
                "DELETE FROM processed_events WHERE applied_at < ?",
                keys_before,
            ),
        ] {
            n += sqlx::query(sql)
                .bind(ts(t))
                .execute(&mut *tx)
                .await
                .map_err(map)?
                .rows_affected();
        }
        tx.commit().await.map_err(map)?;
        Ok(n)
    }

    async fn close(&self) {
        SqliteStore::close(self).await;
    }

    async fn ping(&self) -> CoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.readers)
            .await
            .map_err(map)?;
        Ok(())
    }
}
