//! Connection settings and the errors `connect` can return.

use std::fmt;
use std::time::Duration;

/// Where Redis is and how long to wait for it.
///
/// The timeouts are short on purpose: Redis answers in well under a millisecond when it
/// is healthy, and both adapters only make requests cheaper or fairer. Waiting seconds
/// for a sick Redis would turn a cache outage into an outage of the whole store.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisSettings {
    /// `redis://[:password@]host[:port][/db]` (or `redis+unix:///path`).
    /// Default `redis://127.0.0.1:6379`.
    pub url: String,
    /// First segment of every key, so several deployments (or tests) can share one
    /// Redis without seeing each other. Default `jangteo`.
    pub prefix: String,
    /// Longest wait for a TCP connection (and handshake). Default 250 ms.
    pub connect_timeout: Duration,
    /// Longest wait for the answer to one command. Default 250 ms.
    pub response_timeout: Duration,
    /// After a failure, how long requests skip Redis entirely before one request probes
    /// it again. Default 1 s.
    pub cooldown: Duration,
}

impl RedisSettings {
    /// The defaults with another URL.
    pub fn new(url: impl Into<String>) -> Self {
        RedisSettings {
            url: url.into(),
            ..Self::default()
        }
    }

    /// The same settings with another key prefix.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Longest time one operation can take: a connection attempt plus one answer.
    pub(crate) fn op_timeout(&self) -> Duration {
        self.connect_timeout + self.response_timeout
    }
}

impl Default for RedisSettings {
    fn default() -> Self {
        RedisSettings {
            url: "redis://127.0.0.1:6379".into(),
            prefix: "jangteo".into(),
            connect_timeout: Duration::from_millis(250),
            response_timeout: Duration::from_millis(250),
            cooldown: Duration::from_secs(1),
        }
    }
}

// By hand so that a password in the URL never reaches a log line.
impl fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSettings")
            .field("url", &redact(&self.url))
            .field("prefix", &self.prefix)
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("cooldown", &self.cooldown)
            .finish()
    }
}

/// What [`crate::connect`] refuses. Only mistakes in the settings are errors: a Redis
/// that is down is not (the adapters start degraded and recover on their own).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisError {
    /// The URL cannot be used (wrong scheme, bad port, TLS without TLS support...).
    /// The URL in the message has its password replaced by `***`.
    #[error("invalid Redis URL `{url}`: {reason}")]
    InvalidUrl {
        /// The URL as given, password redacted.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A setting other than the URL is out of range.
    #[error("invalid Redis settings: {0}")]
    InvalidSettings(String),
}

impl RedisSettings {
    pub(crate) fn validate(&self) -> Result<(), RedisError> {
        if self.prefix.is_empty() || self.prefix.chars().any(char::is_whitespace) {
            return Err(RedisError::InvalidSettings(
                "prefix must be non-empty and contain no whitespace".into(),
            ));
        }
        if self.connect_timeout.is_zero() || self.response_timeout.is_zero() {
            return Err(RedisError::InvalidSettings(
                "connect_timeout and response_timeout must be greater than zero".into(),
            ));
        }
        Ok(())
    }
}

/// `redis://user:secret@host` -> `redis://user:***@host`.
pub(crate) fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let rest = &url[scheme_end..];
    // The password may itself contain `/` (base64 does), so the userinfo ends at the
    // last `@` before the path, not at the first `/`.
    let Some(at) = rest.rfind('@') else {
        return url.to_string();
    };
    let userinfo = &rest[..at];
    let user = match userinfo.find(':') {
        Some(colon) => &userinfo[..colon],
        None => "",
    };
    let hidden = if userinfo.contains(':') || !user.is_empty() {
        format!("{user}:***")
    } else {
        "***".to_string()
    };
    format!("{}{hidden}{}", &url[..scheme_end], &rest[at..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_with_a_slash_is_hidden_too() {
        let r = redact("redis://:ab/cd@cache.internal:6379/0");
        assert!(!r.contains("ab/cd"), "{r}");
        assert!(r.ends_with("@cache.internal:6379/0"), "{r}");
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("redis://:pw@h:1/0"), "redis://:***@h:1/0");
        assert_eq!(redact("redis://u:pw@h"), "redis://u:***@h");
        assert_eq!(redact("redis://h:6379"), "redis://h:6379");
        assert_eq!(redact("nonsense"), "nonsense");
        let s = RedisSettings::new("redis://:hunter2@h");
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
