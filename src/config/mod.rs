//! The node's settings: `cluster.toml` (or the file given with `--config`), then
//! `RELAYBOX__<SECTION>__<KEY>` environment variables on top, over built-in defaults.
//!
//! Every knob has a default, so an empty file (or none) runs a one-node embedded-store setup.
//! Unknown keys and bad values stop start-up with a message naming the key. Each section is a
//! file here, and checks its own values; what spans sections is checked in [`Settings`].

mod admin;
mod alerts;
mod cluster;
mod inbox;
mod log;
mod node;
mod ranges;
mod relay;
mod replication;
mod stats;
mod store;

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use admin::AdminSettings;
pub use alerts::{AlertSettings, MailTls};
pub use cluster::{ClusterSettings, MIN_SECRET_LEN};
pub use inbox::InboxSettings;
pub use log::{LogFormat, LogSettings};
pub use node::{NodeSettings, TlsSettings};
pub use ranges::{MAX_CUSTOMER_ID, RangeSettings};
pub use relay::RelaySettings;
pub use replication::{ReplicationSettings, Role};
pub use stats::StatsSettings;
pub use store::{Backend, StoreSettings, redact};

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
    pub stats: StatsSettings,
    pub replication: ReplicationSettings,
    pub admin: AdminSettings,
    /// E-mail alerts; none when absent.
    pub alerts: Option<AlertSettings>,
    /// The HTTPS listener (on the plain listener's port + 1); none when absent.
    pub tls: Option<TlsSettings>,
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

/// `Ok` when `ok`, else the error naming `key` and its `problem`.
fn check(ok: bool, key: &'static str, problem: impl fmt::Display) -> Result<(), ConfigError> {
    if ok {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            key,
            problem: problem.to_string(),
        })
    }
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
            .with_list_parse_key("store.redis_cluster")
            .with_list_parse_key("cluster.sites")
            .with_list_parse_key("alerts.receivers")
            .with_list_parse_key("replication.upstream_servers");
        let settings: Settings = builder.add_source(env).build()?.try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks what types alone cannot: each section its own values, then what spans sections.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.node.validate()?;
        self.log.validate()?;
        self.store.validate()?;
        self.inbox.validate()?;
        self.relay.validate()?;
        self.cluster.validate()?;
        self.ranges.validate()?;
        self.stats.validate()?;
        self.replication.validate(&self.store)?;
        self.admin.validate()?;
        if let Some(tls) = &self.tls {
            tls.validate()?;
        }
        if let Some(alerts) = &self.alerts {
            alerts.validate()?;
            check(
                self.stats.enabled,
                "alerts",
                "needs stats.enabled: the rules read the statistics",
            )?;
        }
        let master_elsewhere = (self.cluster.master())
            .is_some_and(|(s, p)| s != self.node.server || p != self.node.port);
        check(
            !master_elsewhere || self.cluster.secret.is_some(),
            "cluster.master",
            "names another node: cluster.secret is needed to ask it for customer IDs",
        )
    }

    /// The effective settings as JSON with every secret replaced by `"<redacted>"` and the
    /// credentials taken out of Redis URLs: what the admin API shows.
    pub fn redacted(&self) -> serde_json::Value {
        let mut shown = serde_json::to_value(self).expect("settings always serialise");
        let secrets: [(&str, &str, bool); 4] = [
            ("cluster", "secret", self.cluster.secret.is_some()),
            (
                "inbox",
                "admin_password",
                self.inbox.admin_password.is_some(),
            ),
            ("admin", "token", self.admin.token.is_some()),
            (
                "alerts",
                "password",
                (self.alerts.as_ref()).is_some_and(|a| a.password.is_some()),
            ),
        ];
        for (section, key, set) in secrets {
            if let Some(section) = shown.get_mut(section).and_then(|s| s.as_object_mut()) {
                let value = if set {
                    "<redacted>".into()
                } else {
                    serde_json::Value::Null
                };
                section.insert(key.to_owned(), value);
            }
        }
        let urls = [
            ("store", "redis_servers"),
            ("store", "redis_transactions"),
            ("store", "redis_cluster"),
            ("replication", "upstream_servers"),
            ("replication", "upstream_transactions"),
        ];
        for (section, key) in urls {
            if let Some(value) = shown.get_mut(section).and_then(|s| s.get_mut(key)) {
                redact_urls(value);
            }
        }
        shown
    }

    /// The effective settings as TOML, for `relaybox check-config`.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("settings always serialise")
    }
}

/// Takes the credentials out of a URL, or of each in a list.
fn redact_urls(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(url) => *url = redact(url),
        serde_json::Value::Array(urls) => urls.iter_mut().for_each(redact_urls),
        _ => {}
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
    fn shown_settings_hold_no_secret() {
        let s = load_str(
            "[cluster]\nsecret = \"a-cluster-secret-of-length\"\n\
             [store]\nredis_servers = [\"redis://:hunter2@10.0.0.1:6379/0\"]\n\
             [admin]\ntoken = \"an-admin-token-long-enough\"\n",
        )
        .unwrap();
        let shown = s.redacted().to_string();
        for secret in [
            "a-cluster-secret-of-length",
            "hunter2",
            "an-admin-token-long-enough",
        ] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("redis://10.0.0.1:6379/0"), "{shown}");
        assert_eq!(s.redacted()["admin"]["token"], "<redacted>");
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
