//! Reading the archives back: every node's rows of one resolution over a stretch of time, and
//! their totals, as `GET /admin/stats` answers.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use super::archive::{Slot, rows_between};
use super::collector::node_archives;
use super::sample::FIGURES;
use crate::config::StatsSettings;
use crate::model::{Resolution, unix_now};
use crate::store::{Store, StoreError};

/// Rows a report holds when it is not told where to start.
const DEFAULT_ROWS: i64 = 60;

/// What to read.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// The archive, by the periods a row spans (default: the finest).
    pub steps: Option<u64>,
    /// Unix seconds (default: [`DEFAULT_ROWS`] rows before `to`).
    pub from: Option<i64>,
    /// Unix seconds (default: now).
    pub to: Option<i64>,
    /// One node (default: every node of the region).
    pub node: Option<String>,
}

/// Why a query cannot be answered.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("no archive has rows of {0} periods; there are: {1}")]
    NoSuchArchive(u64, String),
    #[error("from ({0}) is after to ({1})")]
    Backwards(i64, i64),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One row: when it began, and each figure's AVERAGE and MAX (`null` when unknown), or `null`
/// when the row holds no sample.
#[derive(Debug, Serialize)]
pub struct Row {
    pub t: i64,
    pub avg: Option<Vec<Option<f64>>>,
    pub max: Option<Vec<Option<f64>>>,
}

impl Row {
    fn of(t: i64, slot: Option<&Slot>) -> Self {
        Row {
            t,
            avg: slot.map(Slot::averages),
            max: slot.map(|s| s.maxima().to_vec()),
        }
    }
}

/// The archive a report reads.
#[derive(Debug, Serialize)]
pub struct Archive {
    pub steps: u64,
    pub seconds: u64,
    pub rows: usize,
}

#[derive(Debug, Serialize)]
pub struct Report {
    /// Seconds between samples.
    pub period: u64,
    pub resolution: Archive,
    pub from: i64,
    pub to: i64,
    pub figures: Vec<&'static str>,
    /// Each node's rows, oldest first.
    pub nodes: BTreeMap<String, Vec<Row>>,
    /// The nodes' sum, per row and figure, of what is known.
    pub total: Vec<Row>,
}

/// Reads the region's statistics.
#[derive(Clone)]
pub struct Stats {
    settings: Arc<StatsSettings>,
    store: Arc<dyn Store>,
}

impl Stats {
    pub fn new(settings: StatsSettings, store: Arc<dyn Store>) -> Self {
        Stats {
            settings: Arc::new(settings),
            store,
        }
    }

    /// The finest archive that reaches `seconds` back (the longest, if none does), by the
    /// periods a row spans.
    pub fn covering(&self, seconds: u64) -> u64 {
        let period = self.settings.period;
        let resolutions = self.settings.resolutions();
        let length = |r: &Resolution| r.span(period) * r.rows as u64;
        let mut by_length = resolutions.clone();
        by_length.sort_by_key(|r| r.steps);
        (by_length.iter().find(|r| length(r) >= seconds))
            .or_else(|| resolutions.iter().max_by_key(|r| length(r)))
            .map_or(1, |r| r.steps)
    }

    pub async fn report(&self, query: Query) -> Result<Report, ReportError> {
        let period = self.settings.period;
        let resolutions = self.settings.resolutions();
        let resolution = match query.steps {
            None => resolutions.iter().min_by_key(|r| r.steps).copied(),
            Some(steps) => resolutions.iter().find(|r| r.steps == steps).copied(),
        }
        .ok_or_else(|| {
            let known: Vec<String> = resolutions.iter().map(|r| r.steps.to_string()).collect();
            ReportError::NoSuchArchive(query.steps.unwrap_or(0), known.join(", "))
        })?;
        let span = resolution.span(period) as i64;
        let to = query.to.unwrap_or_else(unix_now);
        let from = query.from.unwrap_or(to - span * DEFAULT_ROWS);
        if from > to {
            return Err(ReportError::Backwards(from, to));
        }
        let names = match query.node {
            Some(node) => vec![node],
            // Nodes silent since before `from` have nothing to show.
            None => (self.store.archive_nodes().await?.into_iter())
                .filter(|(_, last)| *last >= from)
                .map(|(node, _)| node)
                .collect(),
        };
        let mut nodes = BTreeMap::new();
        let mut sums: BTreeMap<i64, Slot> = BTreeMap::new();
        for name in names {
            let rows = node_archives(&*self.store, &name, resolution, period, (from, to)).await?;
            for (t, slot) in &rows {
                if let Some(slot) = slot {
                    sums.entry(*t)
                        .or_insert_with(|| Slot::new(*t, FIGURES.len()))
                        .add_totals(slot);
                }
            }
            let rows = rows.iter().map(|(t, slot)| Row::of(*t, slot.as_ref()));
            nodes.insert(name, rows.collect());
        }
        let rows = rows_between(resolution, period, &[], from, to);
        let total = (rows.iter())
            .map(|(t, _)| Row::of(*t, sums.get(t)))
            .collect();
        Ok(Report {
            period,
            resolution: archive(resolution, period),
            from,
            to,
            figures: FIGURES.iter().map(|(name, _)| *name).collect(),
            nodes,
            total,
        })
    }
}

fn archive(resolution: Resolution, period: u64) -> Archive {
    Archive {
        steps: resolution.steps,
        seconds: resolution.span(period),
        rows: resolution.rows,
    }
}
