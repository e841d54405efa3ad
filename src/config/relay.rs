//! `[relay]`: the device relay's timeouts and chunk sizes.

use serde::{Deserialize, Serialize};

use super::{ConfigError, check};

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

impl RelaySettings {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        for (key, secs) in [
            ("relay.timeout_agent", self.timeout_agent),
            ("relay.timeout_cache", self.timeout_cache),
            ("relay.timeout_client", self.timeout_client),
            ("relay.timeout_no_reply", self.timeout_no_reply),
            ("relay.stall_timeout", self.stall_timeout),
        ] {
            check(
                secs.is_finite() && secs > 0.0 && secs <= 86_400.0,
                key,
                "must be a number of seconds above 0 and at most a day",
            )?;
        }
        for (bound, size) in &self.buffer_size {
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
        Ok(())
    }
}
