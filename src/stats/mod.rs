//! Statistics: what the node did, period by period, kept in round-robin archives that every
//! node of a region can read.
//!
//! The hot paths bump [`counters`] (atomics, nothing more). The [`StatsCollector`] actor closes
//! a [`Sample`] every `stats.period` seconds (aligned to the minute), logs it (target
//! `relaybox::stats`) and adds it to the node's [`archive`]s in the store; [`Stats`] reads
//! every node's back.

pub mod alerts;
pub mod archive;
pub mod chart;
mod collector;
pub mod counters;
pub mod process;
mod report;
pub mod sample;

pub use alerts::Alerts;
pub use collector::{StatsCollector, node_archives};
pub use counters::counters;
pub use report::{Query, Report, ReportError, Stats};
pub use sample::{FIGURES, Sample};
