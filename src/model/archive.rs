//! The shape of a statistics archive.

use serde::{Deserialize, Serialize};

/// One archive: a row consolidates `steps` periods, and there are `rows` of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolution {
    pub steps: u64,
    pub rows: usize,
}

impl Resolution {
    /// Seconds a row spans, with samples every `period` seconds.
    pub fn span(&self, period: u64) -> u64 {
        self.steps * period
    }

    /// The start of the row that holds time `at`, and its slot in the ring.
    pub fn slot_of(&self, period: u64, at: i64) -> (i64, usize) {
        let span = self.span(period) as i64;
        let start = at.div_euclid(span) * span;
        (start, (start / span).rem_euclid(self.rows as i64) as usize)
    }
}

/// Unix time `t` as a person reads it in charts and mails: `2026-12-04T21:43:48Z`.
pub fn utc(t: i64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(t.max(0) as u64);
    humantime::format_rfc3339_seconds(at).to_string()
}
