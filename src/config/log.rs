//! `[log]`: what is logged and how.

use serde::{Deserialize, Serialize};

use super::ConfigError;

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

impl LogSettings {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        match self.level.parse::<tracing_subscriber::EnvFilter>() {
            Ok(_) => Ok(()),
            Err(e) => Err(ConfigError::Invalid {
                key: "log.level",
                problem: format!("is not a valid filter: {e}"),
            }),
        }
    }
}
