//! `[inbox]`: the limits and defaults of PopBox's API.

use serde::{Deserialize, Serialize};

use super::{ConfigError, check};

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

impl InboxSettings {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        check(
            self.max_body_size >= 1024,
            "inbox.max_body_size",
            "must be at least 1024 bytes",
        )?;
        check(
            self.max_chunked_body_size >= self.max_body_size,
            "inbox.max_chunked_body_size",
            "must be at least inbox.max_body_size",
        )?;
        for (key, value) in [
            ("inbox.max_payload_size", self.max_payload_size),
            ("inbox.max_queues", self.max_queues),
            ("inbox.max_messages", self.max_messages),
        ] {
            check(value >= 1, key, "must be at least 1")?;
        }
        for (key, secs) in [
            ("inbox.max_pop_timeout", self.max_pop_timeout),
            ("inbox.ack_timeout", self.ack_timeout),
            ("inbox.default_expire_delay", self.default_expire_delay),
        ] {
            check(secs >= 1, key, "must be at least 1 second")?;
        }
        check(
            self.pop_timeout <= self.max_pop_timeout,
            "inbox.pop_timeout",
            "must not exceed inbox.max_pop_timeout",
        )?;
        check(
            self.admin_user.is_some() == self.admin_password.is_some(),
            "inbox.admin_user",
            "and inbox.admin_password must be set together",
        )
    }
}
