//! Passwords, access tokens, refresh tokens and the login rate limit.
//!
//! Access tokens are short-lived HS256 JWTs with the algorithm pinned (a token claiming
//! `alg: none` or RS256 is refused). Refresh tokens are random, stored as SHA-256 only,
//! and rotate on every use; presenting a rotated token again revokes its whole family.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use async_trait::async_trait;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::customer::Role;
use crate::error::{CoreError, CoreResult};
use crate::ids::CustomerId;

/// Hashes a password with Argon2id (OWASP parameters, the crate's defaults). Runs on a
/// blocking thread because a hash takes tens of milliseconds.
pub async fn hash_password(password: String) -> CoreResult<String> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| CoreError::Internal(format!("password hashing failed: {e}")))
    })
    .await
    .map_err(|e| CoreError::Internal(format!("hashing task failed: {e}")))?
}

/// Verifies a password against a PHC string; a malformed hash verifies as false.
pub async fn verify_password(password: String, hash: String) -> CoreResult<bool> {
    tokio::task::spawn_blocking(move || {
        let Ok(parsed) = PasswordHash::new(&hash) else {
            return false;
        };
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
    .await
    .map_err(|e| CoreError::Internal(format!("hashing task failed: {e}")))
}

/// Random URL-safe token of 32 bytes.
pub fn random_token() -> CoreResult<String> {
    let mut buf = [0u8; 32];
    getrandom::getrandom(&mut buf)
        .map_err(|e| CoreError::Internal(format!("no randomness: {e}")))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf))
}

/// A token derived from a secret and a purpose-qualified message (HMAC-SHA256,
/// URL-safe base64). Guest order tokens are derived from the order id this way, so a
/// replayed checkout can hand the same token out again without storing it in clear.
pub fn derived_token(secret: &[u8], message: &str) -> String {
    use hmac::Mac;
    let mut mac =
        hmac::Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(message.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

/// SHA-256 hex of a token (refresh tokens and guest order tokens are stored this way).
pub fn token_hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

impl Claims {
    /// Who the token names.
    pub fn principal(&self) -> Principal {
        Principal {
            id: self.sub,
            email: self.email.clone(),
            role: self.role,
        }
    }
}

/// Claims inside an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Subject: the user id.
    pub sub: CustomerId,
    /// E-mail, for audit entries.
    pub email: String,
    /// Role.
    pub role: Role,
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// Issued at (unix seconds).
    pub iat: i64,
    /// The account's session version when the token was issued
    /// ([`Customer::session_version`](crate::customer::Customer::session_version));
    /// tokens without one are of version 0.
    #[serde(default)]
    pub sv: i64,
    /// Expires (unix seconds).
    pub exp: i64,
}

/// A signed-in principal, as the HTTP layer hands it to use cases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// User id.
    pub id: CustomerId,
    /// E-mail.
    pub email: String,
    /// Role.
    pub role: Role,
}

/// Issues and verifies access tokens.
#[derive(Clone)]
pub struct TokenService {
    encoding: EncodingKey,
    decoding: DecodingKey,
    issuer: String,
    ttl: chrono::Duration,
}

impl std::fmt::Debug for TokenService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key never prints.
        f.debug_struct("TokenService")
            .field("issuer", &self.issuer)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// Audience of every access token.
const AUDIENCE: &str = "jangteo";

impl TokenService {
    /// A token service with an HMAC secret of at least 32 bytes.
    pub fn new(secret: &[u8], issuer: &str, ttl: chrono::Duration) -> CoreResult<Self> {
        if secret.len() < 32 {
            return Err(CoreError::Internal(
                "the JWT secret must be at least 32 bytes".into(),
            ));
        }
        Ok(TokenService {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            issuer: issuer.to_string(),
            ttl,
        })
    }

    /// Access-token lifetime.
    pub fn ttl(&self) -> chrono::Duration {
        self.ttl
    }

    /// Signs a token for a user whose account is at `session_version`.
    pub fn issue(
        &self,
        id: CustomerId,
        email: &str,
        role: Role,
        session_version: i64,
        now: DateTime<Utc>,
    ) -> CoreResult<String> {
        let claims = Claims {
            sub: id,
            email: email.to_string(),
            role,
            iss: self.issuer.clone(),
            aud: AUDIENCE.to_string(),
            iat: now.timestamp(),
            sv: session_version,
            exp: (now + self.ttl).timestamp(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| CoreError::Internal(format!("token signing failed: {e}")))
    }

    /// Verifies signature, algorithm, issuer, audience and expiry.
    pub fn verify(&self, token: &str) -> CoreResult<Principal> {
        self.verify_claims(token).map(|c| c.principal())
    }

    /// [`verify`](Self::verify), keeping every claim (the session version, checked
    /// against the account's).
    pub fn verify_claims(&self, token: &str) -> CoreResult<Claims> {
        let mut v = Validation::new(Algorithm::HS256);
        v.set_issuer(&[self.issuer.as_str()]);
        v.set_audience(&[AUDIENCE]);
        v.leeway = 5;
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &v)
            .map(|d| d.claims)
            .map_err(|_| CoreError::Unauthorized("invalid or expired access token".into()))
    }
}

/// Counts failed attempts per key in fixed windows (login rate limiting). An attempt is
/// counted when it starts, in the same atomic step as the check, and taken back when it
/// succeeds: so attempts sent all at once cannot each pass a check made before any of
/// them failed, and still only failures remain counted (many buyers behind one address
/// who sign in correctly are never blocked).
#[async_trait]
pub trait RateLimiter: Send + Sync + std::fmt::Debug {
    /// `Err(RateLimited)` when the key already has `limit` attempts counted in the
    /// window; counts nothing (a probe).
    async fn check(&self, key: &str, limit: u32, window: Duration) -> CoreResult<()>;
    /// Checks and counts one attempt atomically: `Err(RateLimited)`, with nothing
    /// counted, when `limit` attempts already count in the window. The window starts
    /// with the first attempt counted. The attempt counts as a failure until
    /// [`release`](Self::release) takes it back.
    async fn acquire(&self, key: &str, limit: u32, window: Duration) -> CoreResult<()>;
    /// Takes back one attempt counted by `acquire` (it succeeded, or the engine failed
    /// before it could tell). Nothing when the key has no count left in its window.
    async fn release(&self, key: &str) -> CoreResult<()>;
    /// Forgets a key (an account's failures, after it signed in).
    async fn reset(&self, key: &str) -> CoreResult<()>;
}

/// Fixed-window limiter in process memory (one instance; Redis serves several).
///
/// Memory is bounded under a flood of distinct keys (e-mails never seen before): expired
/// windows are swept once the map has doubled since the last sweep, so a sweep's cost is
/// spread over as many calls as it scans (a sweep on every call made each login scan
/// the whole map under the lock once it held 100,000 keys), and beyond
/// [`MAX_KEYS`](Self::MAX_KEYS) live windows the oldest are forgotten.
#[derive(Debug)]
pub struct InMemoryRateLimiter {
    windows: Mutex<Windows>,
}

#[derive(Debug)]
struct Windows {
    /// key -> (window start, attempts counted, window length).
    map: HashMap<String, (Instant, u32, Duration)>,
    /// The size at which the next sweep runs.
    sweep_at: usize,
    /// Sweeps so far (what the tests count instead of timing calls).
    sweeps: u64,
}

impl Default for InMemoryRateLimiter {
    fn default() -> Self {
        Self {
            windows: Mutex::new(Windows {
                map: HashMap::new(),
                sweep_at: Self::SWEEP_FROM,
                sweeps: 0,
            }),
        }
    }
}

impl InMemoryRateLimiter {
    /// No sweep below this many keys.
    const SWEEP_FROM: usize = 100_000;
    /// Live windows kept at most; past it the oldest windows are dropped (their
    /// counts forgotten: a flood of this many distinct keys within one window comes
    /// from more addresses than the per-address limit lets through in one).
    pub const MAX_KEYS: usize = 1_000_000;

    /// Keys with a window held (counted or expired, not yet swept).
    pub fn tracked_keys(&self) -> usize {
        self.lock().map.len()
    }

    /// How many times the map was swept.
    pub fn sweeps(&self) -> u64 {
        self.lock().sweeps
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Windows> {
        self.windows.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Windows {
    fn sweep(&mut self, now: Instant) {
        self.sweeps += 1;
        self.map
            .retain(|_, (start, _, window)| now.duration_since(*start) < *window);
        if self.map.len() > InMemoryRateLimiter::MAX_KEYS {
            let mut starts: Vec<Instant> = self.map.values().map(|(s, _, _)| *s).collect();
            let keep = InMemoryRateLimiter::MAX_KEYS / 2;
            let cut = starts.len() - keep;
            let (_, oldest_kept, _) = starts.select_nth_unstable(cut);
            let oldest_kept = *oldest_kept;
            self.map.retain(|_, (start, _, _)| *start >= oldest_kept);
        }
        self.sweep_at = (self.map.len() * 2).max(InMemoryRateLimiter::SWEEP_FROM);
    }
}

#[async_trait]
impl RateLimiter for InMemoryRateLimiter {
    async fn check(&self, key: &str, limit: u32, window: Duration) -> CoreResult<()> {
        let w = self.lock();
        match w.map.get(key) {
            Some((start, n, _)) if start.elapsed() < window && *n >= limit => {
                let retry = window.saturating_sub(start.elapsed()).as_secs().max(1);
                Err(CoreError::RateLimited {
                    retry_after_secs: retry,
                })
            }
            _ => Ok(()),
        }
    }

    async fn acquire(&self, key: &str, limit: u32, window: Duration) -> CoreResult<()> {
        let mut w = self.lock();
        let now = Instant::now();
        if w.map.len() >= w.sweep_at {
            w.sweep(now);
        }
        let entry = w.map.entry(key.to_string()).or_insert((now, 0, window));
        if now.duration_since(entry.0) >= window {
            *entry = (now, 0, window);
        }
        if entry.1 >= limit {
            let retry = window.saturating_sub(now.duration_since(entry.0));
            return Err(CoreError::RateLimited {
                retry_after_secs: retry.as_secs().max(1),
            });
        }
        entry.1 += 1;
        Ok(())
    }

    async fn release(&self, key: &str) -> CoreResult<()> {
        if let Some(entry) = self.lock().map.get_mut(key) {
            entry.1 = entry.1.saturating_sub(1);
        }
        Ok(())
    }

    async fn reset(&self, key: &str) -> CoreResult<()> {
        self.lock().map.remove(key);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc() -> TokenService {
        TokenService::new(&[7u8; 32], "test", chrono::Duration::minutes(15)).unwrap()
    }

    #[test]
    fn tokens_round_trip_and_expire() {
        let s = svc();
        let id = CustomerId::new();
        let t = s
            .issue(id, "a@b.co", Role::Operator, 0, Utc::now())
            .unwrap();
        assert_eq!(s.verify(&t).unwrap().role, Role::Operator);
        let old = s
            .issue(
                id,
                "a@b.co",
                Role::Operator,
                0,
                Utc::now() - chrono::Duration::hours(1),
            )
            .unwrap();
        assert!(s.verify(&old).is_err());
    }

    #[test]
    fn foreign_keys_and_alg_none_are_refused() {
        let s = svc();
        let other = TokenService::new(&[8u8; 32], "test", chrono::Duration::minutes(15)).unwrap();
        let t = other
            .issue(CustomerId::new(), "a@b.co", Role::Admin, 0, Utc::now())
            .unwrap();
        assert!(s.verify(&t).is_err());
        // header {"alg":"none"} with admin claims and an empty signature
        let b64 = |v: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        let claims = format!(
            r#"{{"sub":"{}","email":"x@y.z","role":"admin","iss":"test","aud":"jangteo","iat":0,"exp":9999999999}}"#,
            CustomerId::new()
        );
        let forged = format!("{}.{}.", b64(r#"{"alg":"none","typ":"JWT"}"#), b64(&claims));
        assert!(s.verify(&forged).is_err());
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(TokenService::new(b"short", "t", chrono::Duration::minutes(1)).is_err());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn passwords_verify() {
        let h = hash_password("correct horse".into()).await.unwrap();
        assert!(verify_password("correct horse".into(), h.clone())
            .await
            .unwrap());
        assert!(!verify_password("wrong".into(), h).await.unwrap());
        assert!(!verify_password("x".into(), "not a hash".into())
            .await
            .unwrap());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn limiter_blocks_after_limit_failures() {
        let l = InMemoryRateLimiter::default();
        let w = Duration::from_secs(60);
        let limited = |r: CoreResult<()>| matches!(r, Err(CoreError::RateLimited { .. }));
        for _ in 0..3 {
            l.check("k", 3, w).await.unwrap();
            l.acquire("k", 3, w).await.unwrap();
        }
        assert!(limited(l.check("k", 3, w).await));
        assert!(
            limited(l.acquire("k", 3, w).await),
            "refused, and not counted"
        );
        l.check("other", 3, w).await.unwrap();
        l.release("k").await.unwrap();
        l.acquire("k", 3, w).await.unwrap();
        assert!(limited(l.acquire("k", 3, w).await));
        l.reset("k").await.unwrap();
        l.check("k", 3, w).await.unwrap();
        l.release("never-seen").await.unwrap();
    }

    #[tokio::test]
    async fn a_flood_of_new_keys_is_swept_rarely_and_stays_bounded() {
        let l = InMemoryRateLimiter::default();
        let live = Duration::from_secs(600);
        for i in 0..250_000 {
            l.acquire(&format!("k{i}"), 5, live).await.unwrap();
        }
        // Sweeps at 100,000 and 200,000 keys (every window live, nothing dropped):
        // not one per call once the map is large.
        assert_eq!(l.sweeps(), 2);
        assert_eq!(l.tracked_keys(), 250_000);
        // Expired windows go at the next sweep.
        let gone = Duration::from_nanos(1);
        for i in 0..160_000 {
            l.acquire(&format!("new{i}"), 5, gone).await.unwrap();
        }
        // The third sweep (at 400,000 keys) drops the expired windows only.
        assert_eq!(l.sweeps(), 3);
        assert!(l.tracked_keys() <= 260_000, "{}", l.tracked_keys());
        assert!(l.tracked_keys() >= 250_000, "{}", l.tracked_keys());
        // Counting is unchanged by all that: "k7" kept its first attempt.
        for _ in 0..4 {
            l.acquire("k7", 5, live).await.unwrap();
        }
        assert!(matches!(
            l.acquire("k7", 5, live).await,
            Err(CoreError::RateLimited { .. })
        ));
    }

    #[test]
    fn past_the_cap_the_oldest_windows_are_forgotten() {
        let mut w = Windows {
            map: HashMap::new(),
            sweep_at: 0,
            sweeps: 0,
        };
        let t0 = Instant::now();
        let n = InMemoryRateLimiter::MAX_KEYS + 10;
        for i in 0..n {
            w.map.insert(
                format!("k{i}"),
                (
                    t0 + Duration::from_micros(i as u64),
                    1,
                    Duration::from_secs(600),
                ),
            );
        }
        w.sweep(t0 + Duration::from_secs(1));
        assert!(
            w.map.len() <= InMemoryRateLimiter::MAX_KEYS / 2 + 1,
            "{}",
            w.map.len()
        );
        assert!(
            w.map.contains_key(&format!("k{}", n - 1)),
            "the newest is kept"
        );
        assert!(!w.map.contains_key("k0"), "the oldest is gone");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn attempts_at_once_pass_only_up_to_the_limit() {
        let l = std::sync::Arc::new(InMemoryRateLimiter::default());
        let w = Duration::from_secs(60);
        let tasks: Vec<_> = (0..40)
            .map(|_| {
                let l = l.clone();
                tokio::spawn(async move { l.acquire("k", 10, w).await.is_ok() })
            })
            .collect();
        let mut passed = 0;
        for t in tasks {
            passed += usize::from(t.await.unwrap());
        }
        assert_eq!(passed, 10);
    }
}
