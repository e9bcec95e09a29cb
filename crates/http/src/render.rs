//! Rendered JSON of catalog reads, reused while the engine hands back the same cached
//! value.
//!
//! The engine caches catalog pages as shared values; rendering one into JSON for a
//! locale and currency costs more than everything else in a listing request. This cache
//! keeps the bytes per (page, locale chain, query) and serves them again as long as the
//! engine returns the very same `Arc` (pointer equality), so it can never outlive the
//! engine's own invalidation.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use axum::body::Bytes;
use axum::http::header;
use axum::response::{IntoResponse, Response};

/// Bytes rendered from shared values of type `V`.
#[derive(Debug)]
pub(crate) struct Rendered<V> {
    map: RwLock<HashMap<String, (Arc<V>, Bytes)>>,
    max_entries: usize,
}

impl<V> Rendered<V> {
    pub(crate) fn new(max_entries: usize) -> Self {
        Rendered {
            map: RwLock::new(HashMap::new()),
            max_entries,
        }
    }

    /// The JSON response for `value` under `key`, rendering it only when the cached
    /// bytes were made from another value.
    pub(crate) fn respond<T: serde::Serialize>(
        &self,
        key: String,
        value: &Arc<V>,
        render: impl FnOnce(&V) -> T,
    ) -> Response {
        let hit = {
            let map = self.map.read().unwrap_or_else(|e| e.into_inner());
            map.get(&key)
                .filter(|(v, _)| Arc::ptr_eq(v, value))
                .map(|(_, b)| b.clone())
        };
        let bytes = match hit {
            Some(b) => b,
            None => {
                let b = Bytes::from(serde_json::to_vec(&render(value)).unwrap_or_default());
                let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
                if map.len() >= self.max_entries {
                    map.clear();
                }
                map.insert(key, (value.clone(), b.clone()));
                b
            }
        };
        ([(header::CONTENT_TYPE, "application/json")], bytes).into_response()
    }

    /// Drops the bytes of values only this cache still holds: the engine has let go
    /// of them, so it will never hand the same value back and the bytes can never be
    /// served again.
    pub(crate) fn purge_unshared(&self) {
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, (v, _)| Arc::strong_count(v) > 1);
        if map.capacity() > 2 * map.len() + 64 {
            map.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purge_keeps_what_the_engine_still_holds() {
        let r = Rendered::new(10);
        let kept = Arc::new(1u32);
        let dropped = Arc::new(2u32);
        let _ = r.respond("a".into(), &kept, |v| *v);
        let _ = r.respond("b".into(), &dropped, |v| *v);
        drop(dropped);
        r.purge_unshared();
        let keys: Vec<String> = r.map.read().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["a"]);
    }
}
