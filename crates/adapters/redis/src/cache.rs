//! The shared cache: opaque bytes under a namespace, invalidated by generation.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use jangteo_core::cache::{SharedCache, SharedLookup};
use jangteo_core::CoreResult;
use redis::Script;

use crate::link::Link;
use crate::RedisConnection;

/// Generation of a namespace that has none yet: derived from the server clock in
/// microseconds rather than starting at 0, so a generation key lost to eviction or a
/// `FLUSHDB` can never come back as a number whose old values are still stored.
/// Assigns the local `g`, which must be declared before.
const FRESH_GENERATION: &str = "local t = redis.call('TIME') \
     g = t[1] .. string.format('%06d', tonumber(t[2])) \
     redis.call('SET', KEYS[1], g) ";

/// `KEYS[1]` generation key; `ARGV[1]` `{prefix}:{ns}`, `ARGV[2]` key. A namespace
/// without a generation has nothing readable, so that is a miss without a second read.
const GET: &str = "local g = redis.call('GET', KEYS[1]) \
     if not g then return false end \
     return redis.call('GET', ARGV[1] .. ':' .. g .. ':' .. ARGV[2])";

/// As `GET`, plus `ARGV[3]` value and `ARGV[4]` TTL in milliseconds.
fn put_script() -> String {
    format!(
        "local g = redis.call('GET', KEYS[1]) \
         if not g then {FRESH_GENERATION} end \
         redis.call('SET', ARGV[1] .. ':' .. g .. ':' .. ARGV[2], ARGV[3], 'PX', ARGV[4]) \
         return 1"
    )
}

/// `KEYS[1]` generation key; `ARGV[1]` `{prefix}:{ns}`, `ARGV[2]` key. Returns the
/// generation (created when the namespace has none, so a later invalidation always
/// changes it) and the value or nil.
fn lookup_script() -> String {
    format!(
        "local g = redis.call('GET', KEYS[1]) \
         if not g then {FRESH_GENERATION} end \
         return {{g, redis.call('GET', ARGV[1] .. ':' .. g .. ':' .. ARGV[2])}}"
    )
}

/// As the put script, with `ARGV[5]` the generation the value was loaded under: nothing
/// is stored when the namespace moved on since.
const PUT_IF_CURRENT: &str = "local g = redis.call('GET', KEYS[1]) \
     if g ~= ARGV[5] then return 0 end \
     redis.call('SET', ARGV[1] .. ':' .. g .. ':' .. ARGV[2], ARGV[3], 'PX', ARGV[4]) \
     return 1";

fn invalidate_script() -> String {
    format!(
        "if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('INCR', KEYS[1]) end \
         local g {FRESH_GENERATION} return 0"
    )
}

/// [`SharedCache`] on Redis, shared by every instance of the engine.
///
/// Key layout, with `p` the configured prefix:
///
/// - `p:{ns}:gen` holds the namespace's current generation (no expiry);
/// - `p:{ns}:{gen}:{key}` holds a value, with the TTL as a Redis expiry.
///
/// [`invalidate`](SharedCache::invalidate) is one `INCR` of the generation: values of
/// older generations become unreachable at once and expire on their own, so the cost
/// does not grow with the namespace. [`get`](SharedCache::get) and
/// [`put`](SharedCache::put) are one round trip each (a Lua script reads the generation
/// and the value together).
///
/// Namespaces should not contain `:`, or two of them could address the same keys.
///
/// When Redis is down or slow, every call returns [`jangteo_core::CoreError::Unavailable`]
/// within the configured timeouts, and during the cool-down right away; the engine reads
/// an error as a miss. See the crate docs for the degradation as a whole.
///
/// A value loaded before an invalidation but stored after it would be served until its
/// TTL runs out; [`lookup`](SharedCache::lookup) and
/// [`put_if_current`](SharedCache::put_if_current) (what the engine uses) close that
/// race: the store names the generation the value was loaded under and is dropped when
/// another instance invalidated in between. Plain `put` keeps the old behaviour.
#[derive(Debug, Clone)]
pub struct RedisCache {
    link: Arc<Link>,
    scripts: Arc<Scripts>,
}

#[derive(Debug)]
struct Scripts {
    get: Script,
    put: Script,
    lookup: Script,
    put_if_current: Script,
    invalidate: Script,
}

impl RedisCache {
    /// A cache over `connection`. Cheap: instances built from one connection share its
    /// socket and its breaker.
    pub fn new(connection: &RedisConnection) -> Self {
        RedisCache {
            link: connection.link.clone(),
            scripts: Arc::new(Scripts {
                get: Script::new(GET),
                put: Script::new(&put_script()),
                lookup: Script::new(&lookup_script()),
                put_if_current: Script::new(PUT_IF_CURRENT),
                invalidate: Script::new(&invalidate_script()),
            }),
        }
    }

    fn base(&self, namespace: &str) -> String {
        format!("{}:{namespace}", self.link.settings.prefix)
    }

    /// Stores a value in the current generation; with a `token`, only if the
    /// generation is still that one.
    async fn store(
        &self,
        namespace: &str,
        key: &str,
        value: &[u8],
        ttl: Duration,
        token: Option<&str>,
    ) -> CoreResult<()> {
        // Redis refuses a zero expiry; a value that may live for no time is not stored.
        let ttl_ms = ttl.as_millis().min(i64::MAX as u128) as i64;
        if ttl_ms == 0 {
            return Ok(());
        }
        let base = self.base(namespace);
        let gen_key = format!("{base}:gen");
        let script = match token {
            Some(_) => &self.scripts.put_if_current,
            None => &self.scripts.put,
        };
        self.link
            .run(|mut con| async move {
                let mut call = script.key(gen_key);
                call.arg(base).arg(key).arg(value).arg(ttl_ms);
                if let Some(t) = token {
                    call.arg(t);
                }
                call.invoke_async::<()>(&mut con).await
            })
            .await
            .map_err(|d| d.into_core("cache put"))
    }
}

#[async_trait]
impl SharedCache for RedisCache {
    async fn get(&self, namespace: &str, key: &str) -> CoreResult<Option<Vec<u8>>> {
        let base = self.base(namespace);
        let gen_key = format!("{base}:gen");
        let script = &self.scripts.get;
        self.link
            .run(|mut con| async move {
                script
                    .key(gen_key)
                    .arg(base)
                    .arg(key)
                    .invoke_async::<Option<Vec<u8>>>(&mut con)
                    .await
            })
            .await
            .map_err(|d| d.into_core("cache get"))
    }

    async fn put(&self, namespace: &str, key: &str, value: &[u8], ttl: Duration) -> CoreResult<()> {
        self.store(namespace, key, value, ttl, None).await
    }

    async fn lookup(&self, namespace: &str, key: &str) -> CoreResult<SharedLookup> {
        let base = self.base(namespace);
        let gen_key = format!("{base}:gen");
        let script = &self.scripts.lookup;
        let (token, value) = self
            .link
            .run(|mut con| async move {
                script
                    .key(gen_key)
                    .arg(base)
                    .arg(key)
                    .invoke_async::<(String, Option<Vec<u8>>)>(&mut con)
                    .await
            })
            .await
            .map_err(|d| d.into_core("cache lookup"))?;
        Ok(SharedLookup {
            value,
            token: Some(token),
        })
    }

    async fn put_if_current(
        &self,
        namespace: &str,
        key: &str,
        value: &[u8],
        ttl: Duration,
        token: Option<&str>,
    ) -> CoreResult<()> {
        self.store(namespace, key, value, ttl, token).await
    }

    async fn generation(&self, namespace: &str) -> CoreResult<Option<String>> {
        let gen_key = format!("{}:gen", self.base(namespace));
        self.link
            .run(|mut con| async move {
                redis::cmd("GET")
                    .arg(gen_key)
                    .query_async::<Option<String>>(&mut con)
                    .await
            })
            .await
            .map_err(|d| d.into_core("cache generation"))
    }

    async fn invalidate(&self, namespace: &str) -> CoreResult<()> {
        let gen_key = format!("{}:gen", self.base(namespace));
        let script = &self.scripts.invalidate;
        self.link
            .run(|mut con| async move { script.key(gen_key).invoke_async::<()>(&mut con).await })
            .await
            .map_err(|d| d.into_core("cache invalidate"))
    }
}
