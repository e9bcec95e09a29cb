//! Small helpers over rusqlite: cached statements, rows decoded into `CoreResult`,
//! and a builder for the few queries whose shape depends on the input.

use rusqlite::types::{FromSql, Value};
use rusqlite::{Connection, Params, Row};

use jangteo_core::CoreResult;

use crate::error::lite;

/// A column by name.
pub(crate) fn col<T: FromSql>(r: &Row<'_>, name: &str) -> CoreResult<T> {
    r.get(name).map_err(lite)
}

/// Every row of a fixed statement, decoded by `f`.
pub(crate) fn all<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    mut f: impl FnMut(&Row<'_>) -> CoreResult<T>,
) -> CoreResult<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql).map_err(lite)?;
    let mut rows = stmt.query(params).map_err(lite)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().map_err(lite)? {
        out.push(f(r)?);
    }
    Ok(out)
}

/// The first row of a fixed statement, if any, decoded by `f`.
pub(crate) fn one<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    f: impl FnOnce(&Row<'_>) -> CoreResult<T>,
) -> CoreResult<Option<T>> {
    let mut stmt = conn.prepare_cached(sql).map_err(lite)?;
    let mut rows = stmt.query(params).map_err(lite)?;
    match rows.next().map_err(lite)? {
        Some(r) => f(r).map(Some),
        None => Ok(None),
    }
}

/// Runs a fixed statement; returns the number of rows changed.
pub(crate) fn exec(conn: &Connection, sql: &str, params: impl Params) -> CoreResult<usize> {
    conn.prepare_cached(sql)
        .map_err(lite)?
        .execute(params)
        .map_err(lite)
}

/// A statement built from parts, with its parameters bound positionally.
#[derive(Debug, Default)]
pub(crate) struct Sql {
    text: String,
    args: Vec<Value>,
}

impl Sql {
    pub(crate) fn new(text: impl Into<String>) -> Self {
        Sql {
            text: text.into(),
            args: Vec::new(),
        }
    }

    /// Appends SQL text.
    pub(crate) fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Appends a placeholder bound to `v`.
    pub(crate) fn bind(&mut self, v: impl Into<Value>) -> &mut Self {
        self.text.push('?');
        self.args.push(v.into());
        self
    }

    /// Appends `?, ?, ...`, one placeholder per item.
    pub(crate) fn bind_list<V: Into<Value>>(
        &mut self,
        items: impl IntoIterator<Item = V>,
    ) -> &mut Self {
        for (i, v) in items.into_iter().enumerate() {
            if i > 0 {
                self.text.push_str(", ");
            }
            self.bind(v);
        }
        self
    }

    pub(crate) fn all<T>(
        &self,
        conn: &Connection,
        f: impl FnMut(&Row<'_>) -> CoreResult<T>,
    ) -> CoreResult<Vec<T>> {
        all(
            conn,
            &self.text,
            rusqlite::params_from_iter(self.args.iter()),
            f,
        )
    }

    pub(crate) fn exec(&self, conn: &Connection) -> CoreResult<usize> {
        exec(
            conn,
            &self.text,
            rusqlite::params_from_iter(self.args.iter()),
        )
    }
}
