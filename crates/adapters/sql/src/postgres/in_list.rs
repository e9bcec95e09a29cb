//! `IN (...)` lists that PostgreSQL plans once per connection.
//!
//! A prepared `WHERE id = ANY($1)` is planned again on every execution: the generic
//! plan assumes the array holds ten elements, so it always looks costlier than a plan
//! made for the one to three ids a cart really holds, and PostgreSQL keeps choosing
//! the custom plan. For checkout's variant read that planning cost 0.25 ms of
//! PostgreSQL's CPU per call, more than running the query (`pg_stat_statements` with
//! `track_planning`, 2026-12-02). With one placeholder per value both plans estimate
//! the same rows, so the cached generic plan is used from the sixth execution on.
//! Lists are padded to a power of two (repeating the last value, which `IN` ignores)
//! so a query has at most seven shapes in the statement cache.

use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::Postgres;

/// The most values one statement takes; longer lists run as several statements.
pub(crate) const CHUNK: usize = 64;

/// `$first, $first+1, ...` for `n` values (1..=CHUNK) padded to a power of two, and
/// that padded length.
pub(crate) fn placeholders(first: usize, n: usize) -> (String, usize) {
    debug_assert!((1..=CHUNK).contains(&n));
    let size = n.next_power_of_two();
    let list = (first..first + size)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ");
    (list, size)
}

/// Binds `values` to `size` placeholders, repeating the last value to fill.
pub(crate) fn bind_padded<'q, T>(
    mut q: Query<'q, Postgres, PgArguments>,
    values: &[T],
    size: usize,
) -> Query<'q, Postgres, PgArguments>
where
    T: sqlx::Encode<'q, Postgres> + sqlx::Type<Postgres> + Copy + Send + 'q,
{
    for i in 0..size {
        q = q.bind(values[i.min(values.len() - 1)]);
    }
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_to_a_power_of_two() {
        assert_eq!(placeholders(1, 1), ("$1".to_string(), 1));
        assert_eq!(placeholders(2, 3), ("$2, $3, $4, $5".to_string(), 4));
        assert_eq!(placeholders(1, 64).1, 64);
        assert_eq!(placeholders(1, 33).1, 64);
    }
}
