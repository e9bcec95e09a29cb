//! A small in-process cache for catalog reads.
//!
//! Entries carry the generation they were made in; invalidation bumps the generation,
//! which drops everything at once without walking the map. A TTL bounds staleness of
//! what invalidation cannot see (stock sold by another process or by checkout).
//!
//! When an entry's TTL runs out, exactly one caller reloads it while the others keep
//! getting the old value for up to one more TTL (stale-while-revalidate). Without that,
//! every request in flight at the moment of expiry would hit the database at once,
//! which is what made the tail latency of busy listings jump.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::error::CoreResult;

/// A cache shared by every instance of the engine (Redis in production).
///
/// Values are opaque bytes under a namespace; [`SharedCache::invalidate`] makes every
/// key of a namespace unreadable at once (implementations bump a generation rather than
/// delete keys one by one). Errors are reported, and the engine treats any error as a
/// miss: the shared cache makes reads cheaper, it is never needed to answer them.
#[async_trait]
pub trait SharedCache: Send + Sync + std::fmt::Debug {
    /// The bytes under `key` in the current generation of `namespace`.
    async fn get(&self, namespace: &str, key: &str) -> CoreResult<Option<Vec<u8>>>;
    /// Stores bytes for at most `ttl`.
    async fn put(&self, namespace: &str, key: &str, value: &[u8], ttl: Duration) -> CoreResult<()>;
    /// Drops every key of `namespace`.
    async fn invalidate(&self, namespace: &str) -> CoreResult<()>;

    /// Like [`get`](SharedCache::get), and on a miss a token naming the namespace's
    /// generation, for [`put_if_current`](SharedCache::put_if_current). The default
    /// gives no token (then `put_if_current` is a plain `put`).
    async fn lookup(&self, namespace: &str, key: &str) -> CoreResult<SharedLookup> {
        Ok(SharedLookup {
            value: self.get(namespace, key).await?,
            token: None,
        })
    }

    /// Stores bytes only if `namespace` was not invalidated since `token` was issued,
    /// so a value loaded before an invalidation (on any instance) is not stored after
    /// it and served until its TTL runs out.
    async fn put_if_current(
        &self,
        namespace: &str,
        key: &str,
        value: &[u8],
        ttl: Duration,
        token: Option<&str>,
    ) -> CoreResult<()> {
        let _ = token;
        self.put(namespace, key, value, ttl).await
    }

    /// The namespace's current generation, which every
    /// [`invalidate`](SharedCache::invalidate) changes (on any instance), or `None`
    /// when the implementation keeps none. Lets an instance without an event stream
    /// notice another instance's invalidation and drop its in-process copies.
    async fn generation(&self, namespace: &str) -> CoreResult<Option<String>> {
        let _ = namespace;
        Ok(None)
    }
}

/// What [`SharedCache::lookup`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedLookup {
    /// The bytes, on a hit.
    pub value: Option<Vec<u8>>,
    /// The namespace's generation when looked up (implementations that support it).
    pub token: Option<String>,
}

fn _assert_object_safe(_: &dyn SharedCache) {}

#[derive(Debug)]
struct Entry<V> {
    generation: u64,
    at: Instant,
    value: Arc<V>,
    refreshing: AtomicBool,
}

/// Generation-stamped cache of shared values.
#[derive(Debug)]
pub struct PageCache<V> {
    generation: AtomicU64,
    map: RwLock<HashMap<String, Arc<Entry<V>>>>,
    ttl: Duration,
    max_entries: usize,
}

impl<V> PageCache<V> {
    /// A cache; `ttl` zero disables it.
    pub fn new(ttl: Duration, max_entries: usize) -> Self {
        PageCache {
            generation: AtomicU64::new(0),
            map: RwLock::new(HashMap::new()),
            ttl,
            max_entries,
        }
    }

    /// The cached value, or `load`'s. Values are shared (`Arc`), so callers can tell
    /// by pointer whether they got the same value as last time.
    pub async fn get_or_load<F, Fut>(&self, key: &str, load: F) -> CoreResult<Arc<V>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = CoreResult<V>>,
    {
        if self.ttl.is_zero() {
            return load().await.map(Arc::new);
        }
        // Read the generation before loading, so an invalidation that happens while
        // we load wins over what we store.
        let generation = self.generation.load(Ordering::Acquire);
        let current = {
            let map = self.map.read().unwrap_or_else(|e| e.into_inner());
            map.get(key).filter(|e| e.generation == generation).cloned()
        };
        let mut claimed = None;
        if let Some(e) = current {
            let age = e.at.elapsed();
            if age < self.ttl {
                return Ok(e.value.clone());
            }
            if age < self.ttl * 2 {
                if e.refreshing.swap(true, Ordering::AcqRel) {
                    return Ok(e.value.clone());
                }
                claimed = Some(e);
            }
        }
        match load().await {
            Ok(v) => {
                let v = Arc::new(v);
                self.put(key.to_string(), generation, v.clone());
                Ok(v)
            }
            Err(err) => {
                if let Some(e) = claimed {
                    // Let the next caller try again.
                    e.refreshing.store(false, Ordering::Release);
                }
                Err(err)
            }
        }
    }

    fn put(&self, key: String, generation: u64, value: Arc<V>) {
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        if map.len() >= self.max_entries {
            self.retain_servable(&mut map);
            if map.len() >= self.max_entries {
                map.clear();
            }
        }
        let entry = Entry {
            generation,
            at: Instant::now(),
            value,
            refreshing: AtomicBool::new(false),
        };
        map.insert(key, Arc::new(entry));
    }

    /// Drops the entries that can no longer be served: past the stale-while-revalidate
    /// window (twice the TTL) or from before an invalidation. Without it they would stay
    /// until the entry limit, so a server that once served every product would keep
    /// them all in memory while idle.
    pub fn purge_stale(&self) {
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        self.retain_servable(&mut map);
        if map.capacity() > 2 * map.len() + 64 {
            map.shrink_to_fit();
        }
    }

    fn retain_servable(&self, map: &mut HashMap<String, Arc<Entry<V>>>) {
        let g = self.generation.load(Ordering::Acquire);
        let keep = self.ttl * 2;
        map.retain(|_, e| e.generation == g && e.at.elapsed() < keep);
    }

    /// Drops everything.
    pub fn invalidate_all(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CoreError;
    use std::sync::atomic::AtomicUsize;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
    }

    #[test]
    fn purge_drops_only_what_can_no_longer_be_served() {
        rt().block_on(async {
            // Wide margins: "new" is purged only if 600 ms pass before the purge.
            let c = PageCache::new(Duration::from_millis(300), 10);
            c.get_or_load("old", || async { Ok::<_, CoreError>(1) })
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(650)).await;
            c.get_or_load("new", || async { Ok::<_, CoreError>(2) })
                .await
                .unwrap();
            c.purge_stale();
            let keys: Vec<String> = c.map.read().unwrap().keys().cloned().collect();
            assert_eq!(
                keys,
                ["new"],
                "the entry past twice the TTL goes, the fresh one stays"
            );
            c.invalidate_all();
            c.purge_stale();
            assert!(
                c.map.read().unwrap().is_empty(),
                "entries from before an invalidation go"
            );
        });
    }

    #[test]
    fn hits_invalidation_and_stale_while_revalidate() {
        rt().block_on(async {
            let c = PageCache::new(Duration::from_millis(50), 10);
            let loads = AtomicUsize::new(0);
            let load = |v: u32| {
                loads.fetch_add(1, Ordering::SeqCst);
                async move { Ok::<_, CoreError>(v) }
            };
            assert_eq!(*c.get_or_load("k", || load(1)).await.unwrap(), 1);
            assert_eq!(
                *c.get_or_load("k", || load(2)).await.unwrap(),
                1,
                "fresh hit"
            );
            c.invalidate_all();
            assert_eq!(
                *c.get_or_load("k", || load(3)).await.unwrap(),
                3,
                "invalidated"
            );
            tokio::time::sleep(Duration::from_millis(60)).await;
            // Expired: the first caller reloads; while it does, others get the old value.
            let entry = c.map.read().unwrap().get("k").cloned().unwrap();
            entry.refreshing.store(true, Ordering::SeqCst);
            assert_eq!(
                *c.get_or_load("k", || load(4)).await.unwrap(),
                3,
                "stale while another refreshes"
            );
            entry.refreshing.store(false, Ordering::SeqCst);
            assert_eq!(
                *c.get_or_load("k", || load(5)).await.unwrap(),
                5,
                "the claimant reloads"
            );
            tokio::time::sleep(Duration::from_millis(120)).await;
            assert_eq!(
                *c.get_or_load("k", || load(6)).await.unwrap(),
                6,
                "too old to serve stale"
            );
            assert_eq!(loads.load(Ordering::SeqCst), 4);
        });
    }

    #[test]
    fn a_failed_reload_lets_the_next_caller_try() {
        rt().block_on(async {
            let c = PageCache::new(Duration::from_millis(20), 10);
            c.get_or_load("k", || async { Ok::<_, CoreError>(1) })
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(25)).await;
            let err = c
                .get_or_load("k", || async {
                    Err::<u32, _>(CoreError::Unavailable("db".into()))
                })
                .await;
            assert!(err.is_err());
            assert_eq!(
                *c.get_or_load("k", || async { Ok::<_, CoreError>(2) })
                    .await
                    .unwrap(),
                2
            );
        });
    }
}
