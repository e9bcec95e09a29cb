//! The crate's error, and the mapping of sqlx errors onto the domain's.

use jangteo_core::CoreError;

/// Errors opening or migrating a database.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// The URL names a backend this build does not include.
    #[error("database backend `{0}` is not compiled in to this build")]
    FeatureNotEnabled(String),
    /// The URL is not one we understand.
    #[error("unsupported database URL `{0}`: expected sqlite://... or postgres://...")]
    UnsupportedUrl(String),
    /// Connecting failed.
    #[error("cannot connect to the database: {0}")]
    Connect(#[source] sqlx::Error),
    /// The database works but cannot serve Jangteo as configured.
    #[error("unsuitable database: {0}")]
    Unsuitable(String),
    /// A migration failed.
    #[error("database migration failed: {0}")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// Opening or preparing the SQLite file failed.
    #[cfg(feature = "sqlite")]
    #[error("cannot open the SQLite database: {0}")]
    Sqlite(#[source] rusqlite::Error),
    /// The SQLite schema could not be brought up to date.
    #[error("database migration failed: {0}")]
    SqliteMigrate(String),
}

/// A unique violation, named after the constraint its message mentions (both
/// backends name the table and columns there).
pub(crate) fn unique_conflict(msg: &str) -> CoreError {
    let code = if msg.contains("rule_documents") {
        "version_conflict"
    } else if msg.contains("handle") {
        "handle_taken"
    } else if msg.contains("sku") {
        "sku_taken"
    } else if msg.contains("email") {
        "email_taken"
    } else if msg.contains("idempotency") {
        "idempotency_conflict"
    } else {
        "duplicate"
    };
    let message = match code {
        "handle_taken" => "a product with this handle exists",
        "sku_taken" => "a variant with this SKU exists",
        "email_taken" => "an account with this e-mail exists",
        "idempotency_conflict" => "this Idempotency-Key is in use by a concurrent request",
        "version_conflict" => "this version of the document exists; reload and try again",
        _ => "a record with these values exists",
    };
    CoreError::conflict(code, message)
}

/// Maps a rusqlite error (the SQLite backend) to a domain error, the same way
/// [`map`] does for sqlx: unique violations are named conflicts, CHECK violations
/// conflicts, a busy or locked database "unavailable" (retryable).
#[cfg(feature = "sqlite")]
pub(crate) fn lite(e: rusqlite::Error) -> CoreError {
    use rusqlite::ffi;
    if let rusqlite::Error::SqliteFailure(f, msg) = &e {
        let msg = msg.as_deref().unwrap_or_default();
        match f.extended_code {
            ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                return unique_conflict(msg)
            }
            ffi::SQLITE_CONSTRAINT_CHECK => {
                return CoreError::conflict(
                    "constraint_violation",
                    format!("rejected by a database rule: {msg}"),
                )
            }
            _ => {}
        }
        if matches!(
            f.code,
            rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
        ) {
            return CoreError::Unavailable(format!("database busy: {e}"));
        }
    }
    CoreError::Storage(e.to_string())
}

/// Maps a sqlx error to a domain error. Unique violations become 409 conflicts named
/// after the constraint, pool exhaustion and I/O become "unavailable" (retryable), and
/// the rest become storage errors whose details stay in the logs.
#[cfg(feature = "postgres")]
pub(crate) fn map(e: sqlx::Error) -> CoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => unique_conflict(db.message()),
        sqlx::Error::Database(db) if db.is_check_violation() => CoreError::conflict(
            "constraint_violation",
            format!("rejected by a database rule: {}", db.message()),
        ),
        // PostgreSQL refuses NUL in text (22021) and \u0000 in JSON (22P05): input that
        // passed validation but cannot be stored is the client's, not a server fault.
        sqlx::Error::Database(db) if db.code().is_some_and(|c| c == "22021" || c == "22P05") => {
            CoreError::invalid(
                "unstorable_text",
                "text contains a character that cannot be stored (NUL)",
            )
        }
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => CoreError::Unavailable(format!("database: {e}")),
        // PostgreSQL: connection lost or refused (class 08), server shutting down or
        // starting (57P01-57P03), serialization failure or deadlock (40001, 40P01),
        // statement timeout (57014): all worth a retry, none a bug.
        sqlx::Error::Database(db)
            if db.code().is_some_and(|c| {
                c.starts_with("08")
                    || c.starts_with("57P")
                    || c == "40001"
                    || c == "40P01"
                    || c == "57014"
            }) =>
        {
            CoreError::Unavailable(format!("database: {}", db.message()))
        }
        sqlx::Error::Database(db)
            if db.message().contains("database is locked") || db.message().contains("busy") =>
        {
            CoreError::Unavailable(format!("database busy: {}", db.message()))
        }
        _ => CoreError::Storage(e.to_string()),
    }
}

/// Maps a JSON (de)serialization failure of a stored document.
pub(crate) fn json(e: serde_json::Error) -> CoreError {
    CoreError::Storage(format!("stored document is malformed: {e}"))
}
