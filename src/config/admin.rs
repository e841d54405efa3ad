//! `[admin]`: who may use the operators' routes (`/admin/…`), and where they are served.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::{ConfigError, check};

/// The shortest admin token taken: a guessable one protects nothing.
pub const MIN_TOKEN_LEN: usize = 16;

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminSettings {
    /// A listener of its own for `/admin/…` (with `/health` and `/ready`), e.g. on loopback
    /// only; it stays up when a fenced node closes its public one. None: the node's listener.
    pub listen: Option<SocketAddr>,
    /// A bearer token the admin routes require (`Authorization: Bearer …`). None: they answer
    /// only clients on loopback addresses.
    #[serde(skip_serializing)]
    pub token: Option<String>,
}

impl AdminSettings {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        check(
            self.token.as_ref().is_none_or(|t| t.len() >= MIN_TOKEN_LEN),
            "admin.token",
            format!("must be at least {MIN_TOKEN_LEN} characters"),
        )
    }
}
