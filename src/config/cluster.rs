//! `[cluster]`: the other regions, the secret their calls carry, and the range master.

use serde::{Deserialize, Serialize};

use super::{ConfigError, check};

/// Shortest cluster secret accepted: long enough not to be guessed.
pub const MIN_SECRET_LEN: usize = 16;

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

impl ClusterSettings {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        check(
            (self.secret.as_ref()).is_none_or(|s| s.len() >= MIN_SECRET_LEN),
            "cluster.secret",
            format!("must be at least {MIN_SECRET_LEN} characters"),
        )?;
        check(
            self.sites.is_empty() || self.secret.is_some(),
            "cluster.sites",
            "needs cluster.secret: other regions refuse calls without it",
        )?;
        for site in &self.sites {
            check(
                !site.is_empty() && !site.contains('/') && !site.contains(char::is_whitespace),
                "cluster.sites",
                format!("entries must be host[:port], not {site:?}"),
            )?;
        }
        check(
            self.max_instance_failed >= 1,
            "cluster.max_instance_failed",
            "must be at least 1",
        )?;
        check(
            self.call_timeout.is_finite() && self.call_timeout > 0.0 && self.call_timeout <= 300.0,
            "cluster.call_timeout",
            "must be a number of seconds above 0 and at most 300",
        )?;
        check(
            self.master.is_none()
                || (self.master()).is_some_and(|(s, p)| !s.is_empty() && !p.is_empty()),
            "cluster.master",
            "must be the master's node.server and node.port as \"server:port\"",
        )?;
        check(
            self.sites.is_empty() || self.master.is_some(),
            "cluster.master",
            "must be set when cluster.sites names other regions: each region would otherwise \
             hand out the same customer IDs",
        )
    }
}
