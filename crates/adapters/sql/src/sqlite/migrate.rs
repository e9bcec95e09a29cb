//! Applies the embedded migrations (`migrations/sqlite`, embedded by sqlx's
//! `migrate!`) on a rusqlite connection, with sqlx's own bookkeeping table and rules,
//! so a database migrated by `sqlx migrate` or an earlier Jangteo built on sqlx-sqlite
//! is recognized as it is: each migration runs once, in its own transaction together
//! with its `_sqlx_migrations` row; a changed migration file (checksum), a migration
//! the binary does not know, or a half-applied one stops the start-up.

use std::collections::HashMap;
use std::time::Instant;

use rusqlite::Connection;

use crate::error::SqlError;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

fn fail(what: impl std::fmt::Display) -> SqlError {
    SqlError::SqliteMigrate(what.to_string())
}

pub(super) fn run(conn: &mut Connection) -> Result<(), SqlError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS _sqlx_migrations (
            version BIGINT PRIMARY KEY,
            description TEXT NOT NULL,
            installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
            success BOOLEAN NOT NULL,
            checksum BLOB NOT NULL,
            execution_time BIGINT NOT NULL
        );",
    )
    .map_err(fail)?;
    let dirty: Option<i64> = conn
        .query_row(
            "SELECT version FROM _sqlx_migrations WHERE success = false ORDER BY version LIMIT 1",
            [],
            |r| r.get(0),
        )
        .map(Some)
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            e => Err(e),
        })
        .map_err(fail)?;
    if let Some(v) = dirty {
        return Err(fail(format!(
            "migration {v} was left partly applied; fix the database by hand"
        )));
    }
    let applied: HashMap<i64, Vec<u8>> = {
        let mut stmt = conn
            .prepare("SELECT version, checksum FROM _sqlx_migrations ORDER BY version")
            .map_err(fail)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(fail)?;
        rows.collect::<Result<_, _>>().map_err(fail)?
    };
    let known: Vec<_> = MIGRATOR
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .collect();
    if let Some(v) = applied
        .keys()
        .find(|v| !known.iter().any(|m| m.version == **v))
    {
        return Err(fail(format!(
            "the database has migration {v}, which this build does not know (a newer Jangteo?)"
        )));
    }
    for m in known {
        match applied.get(&m.version) {
            Some(sum) if sum.as_slice() == &*m.checksum => {}
            Some(_) => {
                return Err(fail(format!(
                    "migration {} ({}) differs from the one applied to this database",
                    m.version, m.description
                )))
            }
            None => {
                let start = Instant::now();
                let tx = conn.transaction().map_err(fail)?;
                tx.execute_batch(&m.sql).map_err(|e| {
                    fail(format!("migration {} ({}): {e}", m.version, m.description))
                })?;
                tx.execute(
                    "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
                     VALUES (?1, ?2, TRUE, ?3, ?4)",
                    rusqlite::params![
                        m.version,
                        &*m.description,
                        &*m.checksum,
                        start.elapsed().as_nanos() as i64
                    ],
                )
                .map_err(fail)?;
                tx.commit().map_err(fail)?;
            }
        }
    }
    Ok(())
}

/// Fails when a released migration's bytes changed: sqlx records each one's SHA-384,
/// and a database migrated by a build that shipped it refuses to open once the file
/// differs ("differs from the one applied"). A change is a new migration instead.
#[cfg(test)]
pub(crate) fn assert_released_unchanged(
    migrator: &sqlx::migrate::Migrator,
    backend: &str,
    released: &[(i64, &str)],
) {
    for (version, sum) in released {
        let found = migrator.iter().find(|m| m.version == *version).map(|m| {
            m.checksum
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        });
        assert_eq!(
            found.as_deref(),
            Some(*sum),
            "{backend} migration {version} changed"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Released migrations keep their bytes: editing one would lock every database
    /// made by an earlier build out (add a migration instead).
    #[test]
    fn released_migrations_never_change() {
        let released = [
            (1, "6cb528e4ae0b562e8fd373ffe0d586b694fb7bc488782b75d9c7a5c1afabbb0e5abd36b7a1ac87cff13d5a7ffe601672"),
            (2, "8be7c2e83d1b282d11e36495d1bb1d8325800ba94ad5f4653ff3616412c9619b7a104d6c837d1f1243c53b3de218a1f6"),
            (3, "77c6de8b1211f6f452414428639b6b6d1fe3d12646a5c36c56f61facbec636ffb4910d1141184eb03e717fc9742b6f83"),
            (4, "a1ba355ea9e78e43bfa12ce90dfe06e73f1c9f3475187a5e082f9f4bddc5743fc054ded78965ed94e255735088ca40cd"),
            (5, "e6a2e33182fffd319da6dfac367395c8c5564a1ce0e8ff7d6ced539c10c276e3d7ebacaa3d2ca030dd4be0e97651d6be"),
        ];
        assert_released_unchanged(&MIGRATOR, "sqlite", &released);
    }

    fn migrated() -> Connection {
        let mut c = Connection::open_in_memory().unwrap();
        run(&mut c).unwrap();
        c
    }

    fn refused(c: &mut Connection, why: &str) {
        let e = run(c).expect_err(why).to_string();
        assert!(e.contains("migration"), "{why}: {e}");
    }

    #[test]
    fn applies_once_and_records_like_sqlx() {
        let mut c = migrated();
        let n: i64 = c
            .query_row(
                "SELECT count(*) FROM _sqlx_migrations WHERE success",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n as usize, MIGRATOR.iter().count());
        // A second open changes nothing and does not fail on existing tables.
        run(&mut c).unwrap();
        let sum: Vec<u8> = c
            .query_row(
                "SELECT checksum FROM _sqlx_migrations ORDER BY version LIMIT 1",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(sum, &*MIGRATOR.iter().next().unwrap().checksum);
    }

    #[test]
    fn refuses_changed_unknown_and_dirty_migrations() {
        let mut c = migrated();
        c.execute_batch("UPDATE _sqlx_migrations SET checksum = x'00' WHERE version = (SELECT MIN(version) FROM _sqlx_migrations)")
            .unwrap();
        refused(&mut c, "changed checksum");

        let mut c = migrated();
        c.execute_batch("INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (99999999999999, 'future', TRUE, x'00', 0)")
            .unwrap();
        refused(&mut c, "unknown version");

        let mut c = migrated();
        c.execute_batch("UPDATE _sqlx_migrations SET success = FALSE WHERE version = (SELECT MAX(version) FROM _sqlx_migrations)")
            .unwrap();
        refused(&mut c, "dirty");
    }
}
