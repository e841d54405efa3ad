//! The node's settings: `cluster.toml` (or the file given with `--config`), then
//! `RELAYBOX__<SECTION>__<KEY>` environment variables on top, over built-in defaults.
//!
//! Every knob has a default, so an empty file (or none) runs a one-node embedded-store setup.
//! Unknown keys and bad values stop start-up with a message naming the key.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The file read when `--config` is not given, if it exists.
pub const DEFAULT_FILE: &str = "cluster.toml";

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub node: NodeSettings,
    pub log: LogSettings,
    pub store: StoreSettings,
    pub inbox: InboxSettings,
    pub relay: RelaySettings,
    pub cluster: ClusterSettings,
    pub ranges: RangeSettings,
    /// The HTTPS listener (on the plain listener's port + 1); none when absent.
    pub tls: Option<TlsSettings>,
}

/// A PEM certificate chain and its private key for the HTTPS listener (`tools/dev-cert` makes a
/// self-signed pair for development).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeSettings {
    /// Address of the plain HTTP listener. Port 0 picks a free port (logged at start).
    pub listen: SocketAddr,
    /// HTTP worker threads; 0 means one per CPU core.
    pub workers: usize,
    /// Seconds that in-flight requests get to finish after SIGTERM/SIGINT.
    pub shutdown_timeout: u64,
    /// This node's public `host[:port]` as apps reach it (sent as `X-IWP-Host` in redirects).
    pub server: String,
    /// This node's instance id (sent as `X-IWP-Port`; the `<x>` of `/agent/<x>` routes).
    pub port: String,
    /// Where the embedded store keeps what must survive a restart (the customer-ID pool and
    /// blocks); created when missing.
    pub data_dir: PathBuf,
    /// Open-file descriptors kept from client connections (for Redis connections, files and
    /// accepting): past the limit less this many, requests that would wait get `503`.
    pub connection_reserve: usize,
}

impl Default for NodeSettings {
    fn default() -> Self {
        NodeSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 3001)),
            workers: 0,
            shutdown_timeout: 10,
            server: "localhost:3001".to_owned(),
            port: "3001".to_owned(),
            data_dir: PathBuf::from("data"),
            connection_reserve: 500,
        }
    }
}

/// The device relay (the My Notes protocol).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RelaySettings {
    /// Seconds a desktop's poll is held before "no client".
    pub timeout_agent: f64,
    /// Seconds after a poll ends that the desktop still counts as present (apps then wait for
    /// its next poll instead of getting "no agent").
    pub timeout_cache: f64,
    /// Seconds between the re-checks of a waiting app request.
    pub timeout_client: f64,
    /// Seconds an app waits for the desktop's reply once its request was delivered.
    pub timeout_no_reply: f64,
    /// Seconds a relayed body may go without a byte moving (its sender sends none, or its
    /// receiver takes none) before the transfer fails on both sides.
    pub stall_timeout: f64,
    /// Relay chunk size by body length: the entry with the smallest bound above the
    /// `Content-Length` (`inf` for bodies of unknown length and beyond).
    pub buffer_size: std::collections::BTreeMap<String, usize>,
}

impl Default for RelaySettings {
    fn default() -> Self {
        RelaySettings {
            timeout_agent: 15.0,
            timeout_cache: 10.0,
            timeout_client: 10.0,
            timeout_no_reply: 60.0,
            stall_timeout: 30.0,
            buffer_size: [
                ("102400", 4096),
                ("512000", 8192),
                ("1048576", 16384),
                ("inf", 32768),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
        }
    }
}

impl RelaySettings {
    /// The chunk size for a body of `length` bytes (`None`: unknown).
    pub fn chunk_size(&self, length: Option<u64>) -> usize {
        let bound = |key: &str| key.parse::<u64>().ok();
        let mut finite: Vec<(u64, usize)> = self
            .buffer_size
            .iter()
            .filter_map(|(k, v)| Some((bound(k)?, *v)))
            .collect();
        finite.sort();
        let fitting = length.and_then(|len| finite.iter().find(|(b, _)| *b > len));
        fitting
            .map(|(_, size)| *size)
            .or_else(|| self.buffer_size.get("inf").copied())
            .or_else(|| finite.last().map(|(_, size)| *size))
            .unwrap_or(4096)
    }
}

/// How this node finds the other regions' nodes (those that do not share its store) and proves
/// to them that it is one of theirs.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSettings {
    /// Shared by every node of the cloud; node-to-node calls carry it and are refused without
    /// it. None: this node neither makes nor accepts such calls.
    pub secret: Option<String>,
    /// Other regions' public `host[:port]`, greeted with `/hello` at start; more are learnt from
    /// their answers and from their greetings.
    pub sites: Vec<String>,
    /// Failed `/hello` and `/connected` calls after which a region is forgotten (until it
    /// greets again).
    pub max_instance_failed: u32,
    /// Seconds a node-to-node call may take, connection included.
    pub call_timeout: f64,
    /// The range master, as `<node.server>:<node.port>` of that node (e.g.
    /// `eu.example.com:8081`, or `localhost:3001:3001`). None: this node is its own master.
    pub master: Option<String>,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        ClusterSettings {
            secret: None,
            sites: Vec::new(),
            max_instance_failed: 5,
            call_timeout: 5.0,
            master: None,
        }
    }
}

impl ClusterSettings {
    /// The range master's public `host[:port]` and instance id, if another node is named.
    pub fn master(&self) -> Option<(&str, &str)> {
        self.master.as_deref()?.rsplit_once(':')
    }
}

/// Customer IDs: the pool the range master seeds once, and the blocks nodes take from it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RangeSettings {
    /// First and last ID of the pool, seeded when the store has none (later changes only
    /// through `relaybox ranges init`).
    pub from: u64,
    pub to: u64,
    /// IDs in the block a node asks for.
    pub range_size: u64,
    /// Seconds the range master's lease lasts unrenewed: a node of its region takes the pool
    /// over this long after the master stops.
    pub lease: f64,
}

impl Default for RangeSettings {
    fn default() -> Self {
        RangeSettings {
            from: 1,
            to: 99_999_999,
            range_size: 1000,
            lease: 10.0,
        }
    }
}

/// The largest customer ID: exact in every store's arithmetic (Lua numbers are doubles).
pub const MAX_CUSTOMER_ID: u64 = 1_000_000_000_000_000;

/// Shortest cluster secret accepted: long enough not to be guessed.
pub const MIN_SECRET_LEN: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// A `RUST_LOG`-style filter; the `RUST_LOG` variable, when set, wins.
    pub level: String,
    pub format: LogFormat,
    /// One line per HTTP request (target `relaybox::access`).
    pub access_log: bool,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            level: "info".to_owned(),
            format: LogFormat::Text,
            access_log: true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Embedded, in this process's memory: no set-up, not durable, one node.
    Memory,
    /// Redis servers: durable, shared by every node, sharded.
    Redis,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Memory => "memory",
            Backend::Redis => "redis",
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSettings {
    pub backend: Backend,
    /// Partitions of the embedded store, each served by its own shard actor.
    pub shards: usize,
    /// Seconds between sweeps that drop expired transactions and queue entries.
    pub sweep_interval: u64,
    /// Redis: the queue shards, in order (the order decides where each queue lives).
    pub redis_servers: Vec<String>,
    /// Redis: the server for transaction metadata; default the first shard.
    pub redis_transactions: Option<String>,
    /// Redis: how long to wait for a connection or an answer before a request fails with 503.
    pub redis_timeout_ms: u64,
    /// Redis: seconds a take or put-back cut off by an outage is retried (its outcome is
    /// unknown until it runs again), so that no message is lost to a Redis restart.
    pub redis_recovery: u64,
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings {
            backend: Backend::Memory,
            shards: 16,
            sweep_interval: 30,
            redis_servers: vec!["redis://127.0.0.1:6379/0".to_owned()],
            redis_transactions: None,
            redis_timeout_ms: 1000,
            redis_recovery: 30,
        }
    }
}

/// The limits and defaults of PopBox's API (names follow its `agent.*` options).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct InboxSettings {
    /// Largest request body announced with `Content-Length` (larger: 413).
    pub max_body_size: usize,
    /// Seconds a client gets to send its whole request body (slower: 408).
    pub body_timeout: u64,
    /// Largest chunked request body; above `max_body_size` so that an oversized payload still
    /// gets the validator's precise 400.
    pub max_chunked_body_size: usize,
    /// Longest payload, in UTF-16 code units.
    pub max_payload_size: usize,
    /// Most queues one transaction may name.
    pub max_queues: usize,
    /// Default `max` of pop and peek; `GET /queue/<id>` lists at most this + 1 per priority.
    pub max_messages: usize,
    /// Default `timeout` of pop, seconds.
    pub pop_timeout: u64,
    /// Largest `timeout` of pop, seconds.
    pub max_pop_timeout: u64,
    /// Default `timeoutACK` of reliable pops and subscriptions, seconds.
    pub ack_timeout: u64,
    /// Lifetime of a transaction without `expirationDate`, seconds.
    pub default_expire_delay: u64,
    /// Let an `id_org` query or body parameter pick the tenant (the `/org/<org>/…` routes always do).
    pub org_from_params: bool,
    /// A credential that opens every secure queue (set both or neither; none by default).
    pub admin_user: Option<String>,
    pub admin_password: Option<String>,
}

impl Default for InboxSettings {
    fn default() -> Self {
        InboxSettings {
            max_body_size: 1_048_576,
            body_timeout: 30,
            max_chunked_body_size: 8 * 1_048_576,
            max_payload_size: 1_048_576,
            max_queues: 10_000,
            max_messages: 1_000,
            pop_timeout: 5,
            max_pop_timeout: 300,
            ack_timeout: 20,
            default_expire_delay: 3_600,
            org_from_params: false,
            admin_user: None,
            admin_password: None,
        }
    }
}

/// Why the settings were refused; the message names the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("configuration file {0} does not exist")]
    Missing(PathBuf),
    #[error("invalid configuration: {key} {problem}")]
    Invalid { key: &'static str, problem: String },
}

impl Settings {
    /// Loads `file` (or `./cluster.toml` when present), then the environment, then validates.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut builder = config::Config::builder();
        match file {
            Some(path) if !path.exists() => return Err(ConfigError::Missing(path.to_owned())),
            Some(path) => {
                builder =
                    builder.add_source(config::File::from(path).format(config::FileFormat::Toml))
            }
            None if Path::new(DEFAULT_FILE).exists() => {
                builder =
                    builder.add_source(config::File::new(DEFAULT_FILE, config::FileFormat::Toml))
            }
            None => {}
        }
        let env = config::Environment::with_prefix("RELAYBOX")
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .list_separator(",")
            .with_list_parse_key("store.redis_servers")
            .with_list_parse_key("cluster.sites");
        let settings: Settings = builder.add_source(env).build()?.try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks what types alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        fn check(
            ok: bool,
            key: &'static str,
            problem: impl fmt::Display,
        ) -> Result<(), ConfigError> {
            if ok {
                Ok(())
            } else {
                Err(ConfigError::Invalid {
                    key,
                    problem: problem.to_string(),
                })
            }
        }
        let (store, inbox) = (&self.store, &self.inbox);
        check(
            (1..=1024).contains(&store.shards),
            "store.shards",
            format!("must be from 1 to 1024, not {}", store.shards),
        )?;
        for url in store.redis_servers.iter().chain(&store.redis_transactions) {
            check(
                ["redis://", "rediss://", "unix://", "redis+unix://"]
                    .iter()
                    .any(|s| url.starts_with(s)),
                "store.redis_servers",
                format!("entries must be redis:// URLs, not {url:?}"),
            )?;
        }
        check(
            store.backend != Backend::Redis || !store.redis_servers.is_empty(),
            "store.redis_servers",
            "must name at least one server when store.backend = \"redis\"",
        )?;
        check(
            store.redis_timeout_ms >= 10,
            "store.redis_timeout_ms",
            "must be at least 10",
        )?;
        check(
            store.sweep_interval >= 1,
            "store.sweep_interval",
            "must be at least 1 second",
        )?;
        check(
            self.node.connection_reserve <= 1 << 20,
            "node.connection_reserve",
            "must be at most 1048576 descriptors",
        )?;
        check(
            self.node.workers <= 256,
            "node.workers",
            "must be at most 256 (0 = one per core)",
        )?;
        check(
            inbox.max_body_size >= 1024,
            "inbox.max_body_size",
            "must be at least 1024 bytes",
        )?;
        check(
            inbox.max_chunked_body_size >= inbox.max_body_size,
            "inbox.max_chunked_body_size",
            "must be at least inbox.max_body_size",
        )?;
        check(
            inbox.max_payload_size >= 1,
            "inbox.max_payload_size",
            "must be at least 1",
        )?;
        check(
            inbox.max_queues >= 1,
            "inbox.max_queues",
            "must be at least 1",
        )?;
        check(
            inbox.max_messages >= 1,
            "inbox.max_messages",
            "must be at least 1",
        )?;
        check(
            inbox.max_pop_timeout >= 1,
            "inbox.max_pop_timeout",
            "must be at least 1 second",
        )?;
        check(
            inbox.pop_timeout <= inbox.max_pop_timeout,
            "inbox.pop_timeout",
            "must not exceed inbox.max_pop_timeout",
        )?;
        check(
            inbox.ack_timeout >= 1,
            "inbox.ack_timeout",
            "must be at least 1 second",
        )?;
        check(
            inbox.default_expire_delay >= 1,
            "inbox.default_expire_delay",
            "must be at least 1 second",
        )?;
        let relay = &self.relay;
        for (key, secs) in [
            ("relay.timeout_agent", relay.timeout_agent),
            ("relay.timeout_cache", relay.timeout_cache),
            ("relay.timeout_client", relay.timeout_client),
            ("relay.timeout_no_reply", relay.timeout_no_reply),
            ("relay.stall_timeout", relay.stall_timeout),
        ] {
            check(
                secs.is_finite() && secs > 0.0 && secs <= 86_400.0,
                key,
                "must be a number of seconds above 0 and at most a day",
            )?;
        }
        for (bound, size) in &relay.buffer_size {
            check(
                bound == "inf" || bound.parse::<u64>().is_ok(),
                "relay.buffer_size",
                format!("bound {bound:?} is neither a byte count nor \"inf\""),
            )?;
            check(
                (512..=16 << 20).contains(size),
                "relay.buffer_size",
                format!("chunk size {size} must be from 512 bytes to 16 MiB"),
            )?;
        }
        check(
            !self.node.port.is_empty() && !self.node.port.contains('/'),
            "node.port",
            "must be a non-empty instance id without '/'",
        )?;
        check(
            !self.node.server.is_empty(),
            "node.server",
            "must not be empty",
        )?;
        check(
            inbox.admin_user.is_some() == inbox.admin_password.is_some(),
            "inbox.admin_user",
            "and inbox.admin_password must be set together",
        )?;
        let cluster = &self.cluster;
        check(
            cluster
                .secret
                .as_ref()
                .is_none_or(|s| s.len() >= MIN_SECRET_LEN),
            "cluster.secret",
            format!("must be at least {MIN_SECRET_LEN} characters"),
        )?;
        check(
            cluster.sites.is_empty() || cluster.secret.is_some(),
            "cluster.sites",
            "needs cluster.secret: other regions refuse calls without it",
        )?;
        for site in &cluster.sites {
            check(
                !site.is_empty() && !site.contains('/') && !site.contains(char::is_whitespace),
                "cluster.sites",
                format!("entries must be host[:port], not {site:?}"),
            )?;
        }
        check(
            cluster.max_instance_failed >= 1,
            "cluster.max_instance_failed",
            "must be at least 1",
        )?;
        check(
            cluster.call_timeout.is_finite()
                && cluster.call_timeout > 0.0
                && cluster.call_timeout <= 300.0,
            "cluster.call_timeout",
            "must be a number of seconds above 0 and at most 300",
        )?;
        check(
            cluster.master.is_none()
                || cluster
                    .master()
                    .is_some_and(|(s, p)| !s.is_empty() && !p.is_empty()),
            "cluster.master",
            "must be the master's node.server and node.port as \"server:port\"",
        )?;
        let master_elsewhere = self
            .cluster
            .master()
            .is_some_and(|(s, p)| s != self.node.server || p != self.node.port);
        check(
            !master_elsewhere || cluster.secret.is_some(),
            "cluster.master",
            "names another node: cluster.secret is needed to ask it for customer IDs",
        )?;
        check(
            cluster.sites.is_empty() || cluster.master.is_some(),
            "cluster.master",
            "must be set when cluster.sites names other regions: each region would otherwise \
             hand out the same customer IDs",
        )?;
        let ranges = &self.ranges;
        check(
            0 < ranges.from && ranges.from <= ranges.to && ranges.to <= MAX_CUSTOMER_ID,
            "ranges.from",
            format!("and ranges.to must satisfy 0 < from <= to <= {MAX_CUSTOMER_ID}"),
        )?;
        check(
            (1..=1_000_000).contains(&ranges.range_size),
            "ranges.range_size",
            "must be from 1 to 1,000,000",
        )?;
        check(
            ranges.lease.is_finite() && ranges.lease >= 1.0 && ranges.lease <= 3600.0,
            "ranges.lease",
            "must be from 1 to 3600 seconds",
        )?;
        if let Some(tls) = &self.tls {
            for (key, path) in [("tls.cert", &tls.cert), ("tls.key", &tls.key)] {
                if let Err(e) = std::fs::metadata(path) {
                    return Err(ConfigError::Invalid {
                        key,
                        problem: format!("cannot read {}: {e}", path.display()),
                    });
                }
            }
        }
        if let Err(e) = self.log.level.parse::<tracing_subscriber::EnvFilter>() {
            return Err(ConfigError::Invalid {
                key: "log.level",
                problem: format!("is not a valid filter: {e}"),
            });
        }
        Ok(())
    }

    /// The effective settings as TOML, for `relaybox check-config`.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("settings always serialise")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn load_str(text: &str) -> Result<Settings, ConfigError> {
        let mut file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        file.write_all(text.as_bytes()).unwrap();
        Settings::load(Some(file.path()))
    }

    #[test]
    fn chunk_size_is_the_smallest_bound_above_the_length() {
        let relay = RelaySettings::default();
        assert_eq!(relay.chunk_size(Some(0)), 4096);
        assert_eq!(relay.chunk_size(Some(102_399)), 4096);
        assert_eq!(relay.chunk_size(Some(102_400)), 8192);
        assert_eq!(relay.chunk_size(Some(1_048_575)), 16384);
        assert_eq!(relay.chunk_size(Some(32 << 20)), 32768);
        assert_eq!(relay.chunk_size(None), 32768);
        let err = load_str("[relay]\nbuffer_size = { big = 4096 }\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("relay.buffer_size"), "{err}");
    }

    #[test]
    fn defaults_run_one_embedded_node() {
        let s = load_str("").unwrap();
        assert_eq!(s.node.listen.to_string(), "127.0.0.1:3001");
        assert_eq!(s.store.backend, Backend::Memory);
        assert_eq!(s.store.shards, 16);
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = load_str("[node]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("lisen"), "{err}");
        let err = load_str("[nod]\n").unwrap_err().to_string();
        assert!(err.contains("nod"), "{err}");
    }

    #[test]
    fn bad_values_are_named() {
        let err = load_str("[store]\nshards = 0\n").unwrap_err().to_string();
        assert!(err.contains("store.shards"), "{err}");
        let err = load_str("[store]\nbackend = \"disk\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("disk"), "{err}");
        let err = load_str("[node]\nlisten = \"nowhere\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("listen"), "{err}");
        let err = load_str("[inbox]\npop_timeout = 500\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("inbox.pop_timeout"), "{err}");
    }

    #[test]
    fn cluster_sites_need_a_long_enough_secret() {
        let err = load_str("[cluster]\nsites = [\"eu.example.com\"]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("cluster.sites"), "{err}");
        let err = load_str("[cluster]\nsecret = \"short\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("cluster.secret"), "{err}");
        let err = load_str(
            "[cluster]\nsecret = \"0123456789abcdef\"\nsites = [\"http://eu.example.com/\"]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("host[:port]"), "{err}");
        let base = "[cluster]\nsecret = \"0123456789abcdef\"\nsites = [\"eu.example.com:80\"]\n";
        let err = load_str(base).unwrap_err().to_string();
        assert!(err.contains("cluster.master"), "{err}");
        let ok = load_str(&format!("{base}master = \"eu.example.com:80:8081\"\n"));
        assert_eq!(ok.unwrap().cluster.sites, ["eu.example.com:80"]);
    }

    #[test]
    fn ranges_and_the_master_are_checked() {
        let err = load_str("[ranges]\nfrom = 0\n").unwrap_err().to_string();
        assert!(err.contains("ranges.from"), "{err}");
        let err = load_str("[ranges]\nfrom = 10\nto = 9\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("ranges.from"), "{err}");
        let err = load_str("[cluster]\nmaster = \"eu.example.com:8081\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("cluster.secret is needed"), "{err}");
        let err = load_str("[cluster]\nmaster = \"nowhere\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("cluster.master"), "{err}");
        let s = load_str("[cluster]\nmaster = \"localhost:3001:3001\"\n").unwrap();
        assert_eq!(s.cluster.master(), Some(("localhost:3001", "3001")));
    }

    #[test]
    fn a_missing_file_is_an_error() {
        let err = Settings::load(Some(Path::new("/nonexistent/relaybox.toml"))).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/relaybox.toml"));
    }
}
