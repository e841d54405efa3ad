//! `[node]`: this node's listener, threads, public name and data; `[tls]`: its HTTPS listener.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{ConfigError, check};

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

impl NodeSettings {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        check(
            self.connection_reserve <= 1 << 20,
            "node.connection_reserve",
            "must be at most 1048576 descriptors",
        )?;
        check(
            self.workers <= 256,
            "node.workers",
            "must be at most 256 (0 = one per core)",
        )?;
        check(
            !self.port.is_empty() && !self.port.contains('/'),
            "node.port",
            "must be a non-empty instance id without '/'",
        )?;
        check(!self.server.is_empty(), "node.server", "must not be empty")
    }
}

/// A PEM certificate chain and its private key for the HTTPS listener (`tools/dev-cert` makes a
/// self-signed pair for development).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsSettings {
    /// Both files must be there (their contents are read when the listener starts).
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        for (key, path) in [("tls.cert", &self.cert), ("tls.key", &self.key)] {
            if let Err(e) = std::fs::metadata(path) {
                return Err(ConfigError::Invalid {
                    key,
                    problem: format!("cannot read {}: {e}", path.display()),
                });
            }
        }
        Ok(())
    }
}
