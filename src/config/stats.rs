//! `[stats]`: how often a sample is taken, and the archives that keep them.

use serde::{Deserialize, Serialize};

use super::{ConfigError, check};
use crate::model::Resolution;

/// Statistics (see `stats`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatsSettings {
    pub enabled: bool,
    /// Seconds between samples; samples fall on whole minutes when this divides 60.
    pub period: u64,
    /// The archives, as `[periods per row, rows]`: My Notes' resolutions by default (a minute
    /// for 12 hours, 5 minutes for 5 days, an hour for a week, a day for 2 months, 30 days for
    /// a year).
    pub archives: Vec<[u64; 2]>,
}

impl Default for StatsSettings {
    fn default() -> Self {
        StatsSettings {
            enabled: true,
            period: 60,
            archives: vec![[1, 720], [5, 1440], [60, 168], [1440, 60], [43200, 12]],
        }
    }
}

impl StatsSettings {
    /// The archives as resolutions.
    pub fn resolutions(&self) -> Vec<Resolution> {
        (self.archives.iter())
            .map(|[steps, rows]| Resolution {
                steps: *steps,
                rows: *rows as usize,
            })
            .collect()
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        check(
            (1..=3600).contains(&self.period),
            "stats.period",
            "must be from 1 to 3600 seconds",
        )?;
        check(
            !self.archives.is_empty(),
            "stats.archives",
            "must name at least one archive",
        )?;
        for [steps, rows] in &self.archives {
            check(
                (1..=1_000_000).contains(steps) && (1..=100_000).contains(rows),
                "stats.archives",
                format!("[{steps}, {rows}] must be [1 to 1000000 periods a row, 1 to 100000 rows]"),
            )?;
        }
        let mut steps: Vec<u64> = self.archives.iter().map(|[s, _]| *s).collect();
        steps.sort_unstable();
        steps.dedup();
        check(
            steps.len() == self.archives.len(),
            "stats.archives",
            "must not name the same row length twice",
        )
    }
}
