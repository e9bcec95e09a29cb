//! A small in-process cache for catalog reads.
//!
//! Entries carry the generation they were made in; invalidation bumps the generation,
//! which drops everything at once without walking the map. A TTL bounds staleness of
//! what invalidation cannot see (stock sold by another process).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

type Entries<V> = HashMap<String, (u64, Instant, Arc<V>)>;

/// Generation-stamped cache of shared values.
#[derive(Debug)]
pub struct PageCache<V> {
    generation: AtomicU64,
    map: RwLock<Entries<V>>,
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

    /// A live entry.
    pub fn get(&self, key: &str) -> Option<Arc<V>> {
        if self.ttl.is_zero() {
            return None;
        }
        let g = self.generation.load(Ordering::Acquire);
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        map.get(key)
            .filter(|(eg, at, _)| *eg == g && at.elapsed() < self.ttl)
            .map(|(_, _, v)| v.clone())
    }

    /// Stores a value computed under generation `generation` (read it with
    /// [`PageCache::generation`] *before* computing, so a concurrent invalidation wins).
    pub fn put(&self, key: String, generation: u64, value: Arc<V>) {
        if self.ttl.is_zero() {
            return;
        }
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        if map.len() >= self.max_entries {
            let g = self.generation.load(Ordering::Acquire);
            let ttl = self.ttl;
            map.retain(|_, (eg, at, _)| *eg == g && at.elapsed() < ttl);
            if map.len() >= self.max_entries {
                map.clear();
            }
        }
        map.insert(key, (generation, Instant::now(), value));
    }

    /// Current generation.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Drops everything.
    pub fn invalidate_all(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalidation_wins_over_a_concurrent_fill() {
        let c = PageCache::new(Duration::from_secs(60), 10);
        let g = c.generation();
        c.invalidate_all();
        c.put("k".into(), g, Arc::new(1));
        assert!(c.get("k").is_none());
        let g = c.generation();
        c.put("k".into(), g, Arc::new(2));
        assert_eq!(*c.get("k").unwrap(), 2);
    }
}
