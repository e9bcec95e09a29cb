//! The SQLite store: one writer connection, a small pool of readers, WAL.
//!
//! SQLite allows one writer at a time. Rather than letting concurrent transactions
//! collide on the write lock (and fail with SQLITE_BUSY on lock upgrade), every
//! read-write transaction takes the one writer connection behind an async mutex, so
//! writers queue in FIFO order and never deadlock; readers use their own connections
//! and, thanks to WAL, never wait for the writer.
//!
//! Statements run **on the calling task's thread** (rusqlite), not on a connection
//! thread. The statements of this store take microseconds (they are all index
//! lookups and small writes), and handing each one to another thread and back cost
//! far more: with sqlx's SQLite driver, which runs every connection on its own worker
//! thread, half the server's CPU under write load went to the scheduler, and the
//! writer stayed locked while each statement's result waited in the async run queue
//! (docs/performance.md, "The SQLite write path"). The schema is still managed with
//! sqlx's migrations (`migrate.rs`).

use std::path::PathBuf;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use async_trait::async_trait;
use jangteo_core::ports::{OutboxRow, Reads, Store, Tx};
use jangteo_core::{CoreError, CoreResult};
use rusqlite::{Connection, OpenFlags};
use tokio::sync::{Mutex, OwnedMutexGuard, OwnedSemaphorePermit, Semaphore};

use crate::error::{lite, SqlError};
use crate::PoolSettings;

mod catalog;
mod commerce;
mod compliance;
pub(crate) mod migrate;
mod outbox;
mod projections;
mod q;

/// Where a `sqlite:` URL points.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Location {
    File(PathBuf),
    Memory,
}

/// Parses `sqlite://path`, `sqlite:path`, `sqlite::memory:` and the query options we
/// understand (`mode=rwc|rw|memory`).
fn location(url: &str) -> Result<Location, SqlError> {
    let bad = || SqlError::UnsupportedUrl(url.to_string());
    let rest = url.strip_prefix("sqlite:").ok_or_else(bad)?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let mut memory = path == ":memory:";
    for opt in query.split('&').filter(|o| !o.is_empty()) {
        match opt {
            "mode=memory" => memory = true,
            "mode=rwc" | "mode=rw" => {}
            _ => return Err(bad()),
        }
    }
    if memory {
        Ok(Location::Memory)
    } else if path.is_empty() {
        Err(bad())
    } else {
        Ok(Location::File(PathBuf::from(path)))
    }
}

/// Settings every connection gets.
fn configure(conn: &Connection, writer: bool) -> rusqlite::Result<()> {
    // busy_timeout only matters when another process holds the write lock (a
    // `jangteo migrate` next to a running server); in-process writers queue on the
    // mutex instead.
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.set_prepared_statement_cache_capacity(64);
    // NORMAL in WAL mode is durable across application crashes; only a power loss can
    // drop the last transactions. That is the usual trade for a store.
    // 4 MiB of page cache per connection: the catalog fits many times over, and idle
    // memory stays small.
    conn.execute_batch(
        "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY;
         PRAGMA cache_size = -4000;",
    )?;
    if writer {
        conn.pragma_update(None, "journal_mode", "WAL")?;
    }
    Ok(())
}

/// Reader connections, opened on demand up to a limit and kept for reuse.
pub(crate) struct ReaderPool {
    path: PathBuf,
    idle: StdMutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
}

/// SQLite storage.
#[derive(Clone)]
pub struct SqliteStore {
    writer: Arc<Mutex<Connection>>,
    /// `None` for an in-memory database, where the writer serves reads too (another
    /// connection would see its own, empty database).
    readers: Option<Arc<ReaderPool>>,
    acquire_timeout: Duration,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.readers.as_ref().map(|r| &r.path))
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if missing) the database at a `sqlite://` URL and applies the
    /// migrations. `sqlite::memory:` gives a private in-memory database (one connection
    /// serves reads and writes then, since each connection would see its own).
    pub async fn open(url: &str, settings: &PoolSettings) -> Result<Self, SqlError> {
        let loc = location(url)?;
        let mut writer = match &loc {
            Location::Memory => Connection::open_in_memory(),
            Location::File(p) => Connection::open(p),
        }
        .map_err(SqlError::Sqlite)?;
        configure(&writer, matches!(loc, Location::File(_))).map_err(SqlError::Sqlite)?;
        migrate::run(&mut writer)?;
        let readers = match loc {
            Location::Memory => None,
            Location::File(path) => Some(Arc::new(ReaderPool {
                path,
                idle: StdMutex::new(Vec::new()),
                permits: Arc::new(Semaphore::new(settings.max_connections.max(1) as usize)),
            })),
        };
        Ok(SqliteStore {
            writer: Arc::new(Mutex::new(writer)),
            readers,
            acquire_timeout: settings.acquire_timeout,
        })
    }

    /// Waits for the writer; "unavailable" after the acquire timeout, like a pool would.
    async fn lock_writer(&self) -> CoreResult<OwnedMutexGuard<Connection>> {
        // The writer may be queued behind many short transactions under load, so give
        // it at least 30 s before calling the database unavailable.
        let wait = self.acquire_timeout.max(Duration::from_secs(30));
        tokio::time::timeout(wait, self.writer.clone().lock_owned())
            .await
            .map_err(|_| {
                CoreError::Unavailable("database: timed out waiting for the writer".into())
            })
    }

    async fn begin_tx(&self) -> CoreResult<SqliteTx> {
        let conn = self.lock_writer().await?;
        // IMMEDIATE takes the write lock now, so a writer in another process waits on
        // busy_timeout instead of failing on lock upgrade later.
        conn.execute_batch("BEGIN IMMEDIATE").map_err(lite)?;
        Ok(SqliteTx { conn, open: true })
    }

    /// Closes the connections (the last one checkpoints the WAL).
    pub async fn close(&self) {
        if let Some(r) = &self.readers {
            r.permits.close();
            r.idle.lock().unwrap_or_else(|e| e.into_inner()).clear();
        }
        let w = self.writer.lock().await;
        // Best effort: fold the WAL back into the main file.
        let _ = w.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)");
    }
}

/// A read-write transaction on the writer connection. Dropped without `commit`, it
/// rolls back.
pub(crate) struct SqliteTx {
    conn: OwnedMutexGuard<Connection>,
    open: bool,
}

impl Drop for SqliteTx {
    fn drop(&mut self) {
        if self.open {
            // Fails only if SQLite already rolled back (e.g. after SQLITE_FULL).
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

/// A reader connection, back to its pool when dropped.
pub(crate) enum SqliteReader {
    Pooled {
        conn: Option<Connection>,
        pool: Arc<ReaderPool>,
        _permit: OwnedSemaphorePermit,
    },
    /// In-memory databases read through the writer.
    Shared(OwnedMutexGuard<Connection>),
}

impl Drop for SqliteReader {
    fn drop(&mut self) {
        if let SqliteReader::Pooled { conn, pool, .. } = self {
            if let Some(c) = conn.take() {
                // A connection left inside a read transaction (it should never be)
                // would pin an old snapshot of the WAL; do not reuse it.
                if c.is_autocommit() {
                    pool.idle.lock().unwrap_or_else(|e| e.into_inner()).push(c);
                }
            }
        }
    }
}

pub(crate) trait Conn: Send {
    fn conn(&mut self) -> &Connection;
}

impl Conn for SqliteTx {
    fn conn(&mut self) -> &Connection {
        &self.conn
    }
}

impl Conn for SqliteReader {
    fn conn(&mut self) -> &Connection {
        match self {
            SqliteReader::Pooled { conn, .. } => conn.as_ref().expect("present until drop"),
            SqliteReader::Shared(c) => c,
        }
    }
}

#[async_trait]
impl Tx for SqliteTx {
    async fn commit(mut self: Box<Self>) -> CoreResult<()> {
        self.conn.execute_batch("COMMIT").map_err(lite)?;
        self.open = false;
        Ok(())
    }
}

impl SqliteStore {
    async fn reader(&self) -> CoreResult<SqliteReader> {
        let Some(pool) = &self.readers else {
            return Ok(SqliteReader::Shared(self.lock_writer().await?));
        };
        let permit =
            tokio::time::timeout(self.acquire_timeout, pool.permits.clone().acquire_owned())
                .await
                .map_err(|_| CoreError::Unavailable("database: no reader connection free".into()))?
                .map_err(|_| CoreError::Unavailable("database: closed".into()))?;
        let idle = pool.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match idle {
            Some(c) => c,
            None => {
                let c = Connection::open_with_flags(
                    &pool.path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY
                        | OpenFlags::SQLITE_OPEN_URI
                        | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .map_err(lite)?;
                configure(&c, false).map_err(lite)?;
                c
            }
        };
        Ok(SqliteReader::Pooled {
            conn: Some(conn),
            pool: pool.clone(),
            _permit: permit,
        })
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn begin(&self) -> CoreResult<Box<dyn Tx>> {
        Ok(Box::new(self.begin_tx().await?))
    }

    async fn read(&self) -> CoreResult<Box<dyn Reads>> {
        Ok(Box::new(self.reader().await?))
    }

    async fn outbox_pending(&self, limit: u32) -> CoreResult<Vec<OutboxRow>> {
        let mut r = self.reader().await?;
        outbox::pending(r.conn(), limit)
    }

    async fn outbox_backlog(&self) -> CoreResult<jangteo_core::ports::OutboxBacklog> {
        let mut r = self.reader().await?;
        outbox::backlog(r.conn())
    }

    async fn outbox_mark_sent(&self, seqs: &[i64]) -> CoreResult<()> {
        let mut tx = self.begin_tx().await?;
        outbox::mark_sent(tx.conn(), seqs)?;
        Box::new(tx).commit().await
    }

    async fn outbox_lease(&self, holder: &str, ttl: Duration) -> CoreResult<bool> {
        let mut tx = self.begin_tx().await?;
        let now = chrono::Utc::now();
        let until = now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::seconds(15));
        let got = outbox::lease(tx.conn(), holder, now, until)?;
        Box::new(tx).commit().await?;
        Ok(got)
    }

    async fn outbox_release_lease(&self, holder: &str) -> CoreResult<()> {
        let mut tx = self.begin_tx().await?;
        outbox::release(tx.conn(), holder)?;
        Box::new(tx).commit().await
    }

    async fn prune(
        &self,
        sent_before: chrono::DateTime<chrono::Utc>,
        keys_before: chrono::DateTime<chrono::Utc>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> CoreResult<u64> {
        use crate::time::ts;
        let mut tx = self.begin_tx().await?;
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
            n += q::exec(tx.conn(), sql, [ts(t)])? as u64;
        }
        Box::new(tx).commit().await?;
        Ok(n)
    }

    async fn close(&self) {
        SqliteStore::close(self).await;
    }

    async fn release_memory(&self) {
        // Page caches of connections nobody is using right now; a busy writer keeps
        // its cache (it is in use, so not idle).
        if let Ok(w) = self.writer.try_lock() {
            let _ = w.execute_batch("PRAGMA shrink_memory");
        }
        if let Some(r) = &self.readers {
            for c in r.idle.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                let _ = c.execute_batch("PRAGMA shrink_memory");
            }
        }
    }

    async fn ping(&self) -> CoreResult<()> {
        let mut r = self.reader().await?;
        r.conn().execute_batch("SELECT 1").map_err(lite)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(location("sqlite::memory:").unwrap(), Location::Memory);
        assert_eq!(
            location("sqlite://./data/j.db").unwrap(),
            Location::File("./data/j.db".into())
        );
        assert_eq!(
            location("sqlite:///tmp/j.db?mode=rwc").unwrap(),
            Location::File("/tmp/j.db".into())
        );
        assert_eq!(
            location("sqlite:j.db").unwrap(),
            Location::File("j.db".into())
        );
        assert_eq!(
            location("sqlite://x?mode=memory").unwrap(),
            Location::Memory
        );
        assert!(location("sqlite://").is_err());
        assert!(location("sqlite://x.db?cache=private").is_err());
        assert!(location("postgres://x").is_err());
    }
}
