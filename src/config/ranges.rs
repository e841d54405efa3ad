//! `[ranges]`: the customer-ID pool and the blocks nodes take from it.

use serde::{Deserialize, Serialize};

use super::{ConfigError, check};

/// The largest customer ID: exact in every store's arithmetic (Lua numbers are doubles).
pub const MAX_CUSTOMER_ID: u64 = 1_000_000_000_000_000;

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

impl RangeSettings {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        check(
            0 < self.from && self.from <= self.to && self.to <= MAX_CUSTOMER_ID,
            "ranges.from",
            format!("and ranges.to must satisfy 0 < from <= to <= {MAX_CUSTOMER_ID}"),
        )?;
        check(
            (1..=1_000_000).contains(&self.range_size),
            "ranges.range_size",
            "must be from 1 to 1,000,000",
        )?;
        check(
            self.lease.is_finite() && self.lease >= 1.0 && self.lease <= 3600.0,
            "ranges.lease",
            "must be from 1 to 3600 seconds",
        )
    }
}
