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
}
