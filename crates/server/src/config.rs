//! Configuration: defaults, then an optional TOML file, then `JANGTEO__SECTION__KEY`
//! environment variables, then command-line flags. With nothing set, the embedded
//! setup runs: SQLite under `./data`, the in-process event bus.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

/// A secret that never prints.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct Secret(pub(crate) String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"***\"" })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ServerConfig {
    /// Store API listener.
    pub(crate) store_addr: SocketAddr,
    /// Admin API listener (keep it on the internal network).
    pub(crate) admin_addr: SocketAddr,
    /// Which APIs `serve` listens for: `store`, `admin` or both. A public store service
    /// that has no admin listener at all cannot expose the back office by a routing
    /// mistake.
    pub(crate) apis: Vec<String>,
    /// A listener for `GET /metrics` and the health checks alone, for processes without
    /// the admin API (`jangteo worker`, a store-only service); none when unset.
    pub(crate) metrics_addr: Option<SocketAddr>,
    /// Folder for the SQLite database and the generated JWT secret.
    pub(crate) data_dir: PathBuf,
    /// Seconds a request may take.
    pub(crate) request_timeout_secs: u64,
    /// Seconds in-flight requests get to finish after SIGTERM (longer than the request
    /// timeout, so no request is cut off).
    pub(crate) shutdown_grace_secs: u64,
    /// Take client addresses from `X-Forwarded-For` (only behind a gateway that sets it).
    pub(crate) trust_forwarded_for: bool,
    /// Browser origins allowed to call the APIs (CORS); empty sends no CORS headers.
    pub(crate) cors_origins: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct DatabaseConfig {
    /// `sqlite://path` or `postgres://...`; empty means `sqlite://{data_dir}/jangteo.db`.
    pub(crate) url: Secret,
    /// Reader connections (SQLite) or pool size (PostgreSQL).
    pub(crate) max_connections: u32,
    /// Connections kept open when idle (PostgreSQL).
    pub(crate) min_connections: u32,
    /// Seconds a request waits for a connection before answering 503.
    pub(crate) acquire_timeout_secs: u64,
    /// Milliseconds one SQL statement may run before PostgreSQL cancels it.
    pub(crate) statement_timeout_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct AuthConfig {
    /// HMAC secret for access tokens (32+ bytes). Empty: generated once and kept in
    /// `{data_dir}/jwt-secret`, so restarts keep sessions valid.
    pub(crate) jwt_secret: Secret,
    /// Failed logins allowed per account in the window (per address: five times that).
    pub(crate) login_limit: u32,
    /// Window in seconds.
    pub(crate) login_window_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct EngineConfig {
    /// Locales tried after the buyer's.
    pub(crate) default_locales: Vec<String>,
    /// Minutes a pending payment may take before its stock is released.
    pub(crate) payment_ttl_minutes: i64,
    /// Hours an untouched cart lives.
    pub(crate) cart_ttl_hours: i64,
    /// `inventory.low` threshold.
    pub(crate) low_stock_threshold: i64,
    /// Milliseconds catalog pages may be served from cache (0 disables).
    pub(crate) catalog_cache_ms: u64,
    /// Prefix of order numbers.
    pub(crate) order_prefix: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ComplianceConfig {
    /// Country the goods ship from (ISO alpha-2): import rules apply elsewhere.
    pub(crate) origin_country: String,
    /// Countries sold into, each backed by its plugin (`KR`, `ID`, `MY`, `SG`, `US`,
    /// `JP`, `CN`). Empty: compliance off (every country served, no tax).
    pub(crate) countries: Vec<String>,
    /// Currency whose prices are converted with the exchange-rate table for carts in
    /// a currency a variant has no price in. Empty: no conversion.
    pub(crate) base_currency: String,
    /// Seconds before a rule change made on another instance is seen here.
    pub(crate) rules_refresh_secs: u64,
    /// Key sealing buyer identifiers at rest (32+ bytes). Empty: derived from the JWT
    /// secret. Set it (from a secret store) to rotate it independently.
    pub(crate) data_key: Secret,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CacheConfig {
    /// `redis://host:port[/db]`: the catalog cache shared by every instance and the
    /// login rate limits. Empty: in-process cache and limits.
    pub(crate) url: Secret,
    /// Key prefix in Redis.
    pub(crate) prefix: String,
    /// Seconds catalog pages live in Redis (writes invalidate them at once).
    pub(crate) ttl_secs: u64,
    /// Milliseconds one Redis call may take before it counts as a failure.
    pub(crate) timeout_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct EventsConfig {
    /// Kafka bootstrap servers, `host:port[,host:port]`. Empty: in-process events.
    pub(crate) kafka_brokers: String,
    /// Topic name prefix: topics are `{prefix}products|orders|inventory|customers|misc`.
    pub(crate) topic_prefix: String,
    /// Consumer group prefix.
    pub(crate) group_prefix: String,
    /// Partitions of topics Jangteo creates.
    pub(crate) partitions: i32,
    /// Replication factor of topics Jangteo creates (3 on a production cluster).
    pub(crate) replication_factor: i32,
    /// Extra librdkafka client settings for every producer, consumer and admin client,
    /// e.g. `security.protocol = "SASL_SSL"`, `sasl.mechanism`, `sasl.username`,
    /// `sasl.password`, `ssl.ca.location`.
    pub(crate) client_options: std::collections::BTreeMap<String, Secret>,
    /// Milliseconds the broker may take to acknowledge before a publish fails (the
    /// relay then retries; rows stay in the outbox).
    pub(crate) message_timeout_ms: u64,
    /// Run the outbox relay and the notification and statistics consumers in `serve`.
    /// Turn off when `jangteo worker` processes run them.
    pub(crate) run_workers: bool,
    /// Run the notification and statistics consumers where the relay runs. Off: a
    /// relay-only process (consumers elsewhere).
    pub(crate) run_consumers: bool,
    /// Milliseconds between outbox polls (commits in this process wake the relay at once).
    pub(crate) relay_poll_ms: u64,
    /// Outbox rows the relay publishes to Kafka per batch.
    pub(crate) relay_batch: u32,
    /// Outbox rows per batch in the embedded setup (in-process consumers).
    pub(crate) relay_batch_in_process: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LogConfig {
    /// `pretty` or `json`.
    pub(crate) format: String,
    /// A tracing filter, e.g. `info,jangteo=debug`. `RUST_LOG` wins when set.
    pub(crate) level: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Config {
    pub(crate) server: ServerConfig,
    pub(crate) database: DatabaseConfig,
    pub(crate) auth: AuthConfig,
    pub(crate) engine: EngineConfig,
    pub(crate) compliance: ComplianceConfig,
    pub(crate) cache: CacheConfig,
    pub(crate) events: EventsConfig,
    pub(crate) log: LogConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            server: ServerConfig {
                store_addr: "127.0.0.1:8080".parse().expect("static address"),
                admin_addr: "127.0.0.1:8081".parse().expect("static address"),
                apis: vec!["store".into(), "admin".into()],
                metrics_addr: None,
                data_dir: PathBuf::from("./data"),
                request_timeout_secs: 30,
                shutdown_grace_secs: 35,
                trust_forwarded_for: false,
                cors_origins: Vec::new(),
            },
            database: DatabaseConfig {
                url: Secret::default(),
                max_connections: 8,
                min_connections: 1,
                acquire_timeout_secs: 5,
                statement_timeout_ms: 10_000,
            },
            auth: AuthConfig {
                jwt_secret: Secret::default(),
                login_limit: 10,
                login_window_secs: 900,
            },
            engine: EngineConfig {
                default_locales: vec!["en".into(), "ko".into()],
                payment_ttl_minutes: 60,
                cart_ttl_hours: 24 * 7,
                low_stock_threshold: 5,
                catalog_cache_ms: 1000,
                order_prefix: "JT".into(),
            },
            compliance: ComplianceConfig {
                origin_country: "KR".into(),
                countries: ["KR", "ID", "MY", "SG", "US", "JP", "CN"]
                    .map(String::from)
                    .to_vec(),
                base_currency: "KRW".into(),
                rules_refresh_secs: 5,
                data_key: Secret::default(),
            },
            cache: CacheConfig {
                url: Secret::default(),
                prefix: "jangteo".into(),
                ttl_secs: 10,
                timeout_ms: 250,
            },
            events: EventsConfig {
                kafka_brokers: String::new(),
                topic_prefix: "jangteo.".into(),
                group_prefix: "jangteo.".into(),
                partitions: 3,
                replication_factor: 1,
                client_options: Default::default(),
                message_timeout_ms: 10_000,
                run_workers: true,
                run_consumers: true,
                relay_poll_ms: 500,
                relay_batch: 2000,
                relay_batch_in_process: 200,
            },
            log: LogConfig {
                format: "pretty".into(),
                level: "info".into(),
            },
        }
    }
}

impl Config {
    /// Loads defaults, the file (if any) and the environment, and warns about keys that
    /// mean nothing (a typo would otherwise be silently ignored).
    pub(crate) fn load(
        file: Option<&PathBuf>,
    ) -> Result<(Config, Vec<String>), Box<figment::Error>> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(f) = file {
            fig = fig.merge(Toml::file_exact(f));
        }
        fig = fig.merge(Env::prefixed("JANGTEO__").split("__"));
        let cfg: Config = fig.extract().map_err(Box::new)?;
        let raw: serde_json::Value = fig.extract().unwrap_or_default();
        let known = serde_json::to_value(Config::default()).unwrap_or_default();
        let mut unknown = Vec::new();
        if let (Some(raw), Some(known)) = (raw.as_object(), known.as_object()) {
            for (section, v) in raw {
                match (known.get(section), v.as_object()) {
                    (Some(k), Some(fields)) => {
                        for key in fields.keys() {
                            if k.get(key).is_none() {
                                unknown.push(format!("{section}.{key}"));
                            }
                        }
                    }
                    (None, _) => unknown.push(section.clone()),
                    _ => {}
                }
            }
        }
        Ok((cfg, unknown))
    }

    /// The database URL in force.
    pub(crate) fn database_url(&self) -> String {
        if self.database.url.0.is_empty() {
            format!(
                "sqlite://{}",
                self.server.data_dir.join("jangteo.db").display()
            )
        } else {
            self.database.url.0.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_run_embedded_and_secrets_do_not_print() {
        let c = Config::default();
        assert!(c.database_url().starts_with("sqlite://"));
        let mut a = c.auth.clone();
        a.jwt_secret = Secret("super-secret-value".into());
        assert!(!format!("{a:?}").contains("super-secret-value"));
    }
}
