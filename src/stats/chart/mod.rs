//! Charts of the region's statistics, drawn by the node as SVG: what `GET /admin/charts/…`
//! answers and `relaybox charts --out DIR` publishes.
//!
//! A chart reads the finest archive that reaches back over its period, draws one line per node
//! and one for the region (their sum, or for durations their mean).

mod axis;
mod kinds;
mod svg;

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::path::Path;

use self::kinds::Total;
pub use self::kinds::{Chart, PERIODS, Period, Size, file_name};
use self::svg::{Plot, Series};
use super::report::{Query, Report, ReportError, Row, Stats};
use crate::config::Settings;
use crate::model::unix_now;

impl Stats {
    /// `chart` over the `period` that ends now, `size` big, as an SVG document.
    pub async fn chart(
        &self,
        chart: Chart,
        period: Period,
        size: Size,
    ) -> Result<String, ReportError> {
        let report = self.report(self.chart_query(period, unix_now())).await?;
        Ok(draw(&report, chart, period, size))
    }

    /// Writes every chart, in every period and size, into `dir` (created if missing), named as
    /// [`file_name`] says. Returns how many files it wrote.
    pub async fn publish(&self, dir: &Path) -> Result<usize, PublishError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| PublishError::Write(dir.display().to_string(), e))?;
        let now = unix_now();
        let mut reports = HashMap::new();
        let mut written = 0;
        for period in PERIODS {
            let query = self.chart_query(period, now);
            // Periods that read the same archive read it once.
            let key = (query.steps, query.from);
            let report = match reports.entry(key) {
                Entry::Occupied(known) => known.into_mut(),
                Entry::Vacant(new) => new.insert(self.report(query).await?),
            };
            for chart in Chart::all() {
                for size in Size::ALL {
                    let file = dir.join(file_name(chart, period, size));
                    std::fs::write(&file, draw(report, chart, period, size))
                        .map_err(|e| PublishError::Write(file.display().to_string(), e))?;
                    written += 1;
                }
            }
        }
        Ok(written)
    }

    fn chart_query(&self, period: Period, now: i64) -> Query {
        Query {
            steps: Some(self.covering(period.seconds)),
            from: Some(now - period.seconds as i64),
            to: Some(now),
            node: None,
        }
    }
}

/// `relaybox charts --out DIR`: every chart of the region the settings' store holds, into `dir`.
pub async fn publish(settings: &Settings, dir: &Path) -> Result<usize, PublishError> {
    let store = crate::store::open(settings)
        .await
        .map_err(ReportError::from)?;
    Stats::new(settings.stats.clone(), store).publish(dir).await
}

/// Why charts could not be published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Report(#[from] ReportError),
    #[error("cannot write {0}: {1}")]
    Write(String, std::io::Error),
}

/// The chart of `report`'s rows.
fn draw(report: &Report, chart: Chart, period: Period, size: Size) -> String {
    let measure = chart.measure();
    let row_value = |row: &Row| {
        let values = if chart.peak { &row.max } else { &row.avg };
        (values.as_deref()).and_then(|values| measure.of(values, report.period))
    };
    // A row is drawn at the middle of the time it stands for.
    let middle = report.resolution.seconds as i64 / 2;
    let mut series: Vec<Series> = (report.nodes.iter())
        .map(|(node, rows)| Series {
            name: node.clone(),
            points: rows.iter().map(|r| (r.t + middle, row_value(r))).collect(),
            total: false,
        })
        .collect();
    if !series.is_empty() {
        series.push(region(&series, chart.kind.total));
    }
    let plot = Plot {
        title: format!("{} ({})", chart.title(), period.name),
        unit: chart.kind.unit,
        from: report.from,
        to: report.to,
        floor: chart.kind.floor,
        series,
    };
    svg::draw(&plot, size.pixels())
}

/// The region's line: at each time, the sum (or mean) of the nodes' known values.
fn region(nodes: &[Series], total: Total) -> Series {
    let points = (0..nodes[0].points.len())
        .map(|i| {
            let t = nodes[0].points[i].0;
            let known: Vec<f64> = nodes.iter().filter_map(|s| s.points[i].1).collect();
            let sum: f64 = known.iter().sum();
            let value = match total {
                _ if known.is_empty() => None,
                Total::Sum => Some(sum),
                Total::Mean => Some(sum / known.len() as f64),
            };
            (t, value)
        })
        .collect();
    let name = match total {
        Total::Sum => "total",
        Total::Mean => "mean of the nodes",
    };
    Series {
        name: name.to_owned(),
        points,
        total: true,
    }
}
