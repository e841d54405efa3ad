//! **StatsCollector**: one per node. Every period, on the period's boundary (whole minutes when
//! the period divides 60), it closes a sample, logs it, and adds it to the node's archives.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use serde_json::{Map, Value};
use tracing::{info, warn};

use super::archive::{Resolution, Slot, rows_between};
use super::counters::counters;
use super::sample::{FIGURES, Sampler};
use crate::config::StatsSettings;
use crate::model::unix_now;
use crate::store::{Store, StoreResult};

pub struct StatsCollector {
    /// This node, as it names itself in the archives (`server/port`).
    node: String,
    period: u64,
    resolutions: Vec<Resolution>,
    store: Arc<dyn Store>,
    sampler: Sampler,
    /// The row being filled in each archive, in the order of `resolutions`.
    filling: Vec<Option<Slot>>,
}

impl StatsCollector {
    pub fn new(node: String, settings: &StatsSettings, store: Arc<dyn Store>) -> Self {
        StatsCollector {
            node,
            period: settings.period,
            resolutions: settings.resolutions(),
            store,
            sampler: Sampler::default(),
            filling: vec![None; settings.archives.len()],
        }
    }

    /// Closes the period that ends now, logs it and archives it.
    fn close(&mut self, ctx: &mut Context<Self>) {
        let period = self.period as i64;
        // The boundary this tick stands for, however late the timer fired.
        let at = (unix_now() + period / 2) / period * period;
        let sample = self.sampler.close(counters(), at);
        let figures: Map<String, Value> = (FIGURES.iter().zip(&sample.values))
            .map(|((name, _), v)| (name.to_string(), number(*v)))
            .collect();
        let figures = Value::Object(figures);
        info!(target: "relaybox::stats", node = %self.node, at, %figures, "sample");
        // The period's last second decides its row: a minute's sample goes in that minute.
        let mut slots = Vec::with_capacity(self.resolutions.len());
        for (resolution, filling) in self.resolutions.iter().zip(&mut self.filling) {
            let (start, index) = resolution.slot_of(self.period, at - 1);
            let row = match filling.take() {
                Some(row) if row.start == start => row,
                _ => Slot::new(start, FIGURES.len()),
            };
            let row = filling.insert(row);
            row.add(&sample.values);
            slots.push((resolution.span(self.period), index, row.encode()));
        }
        let (store, node) = (Arc::clone(&self.store), self.node.clone());
        ctx.spawn(
            async move {
                if let Err(e) = store.archive_put(&node, at, &slots).await {
                    warn!(error = %e, "could not archive the statistics sample");
                }
            }
            .into_actor(self),
        );
    }

    /// The rows being filled when the node last stopped, so that a restart within a row goes on
    /// filling it rather than start it afresh.
    fn resume(&self) -> impl Future<Output = Vec<Option<Slot>>> + use<> {
        let (store, node, period) = (Arc::clone(&self.store), self.node.clone(), self.period);
        let resolutions = self.resolutions.clone();
        async move {
            let now = unix_now();
            let mut filling = Vec::with_capacity(resolutions.len());
            for resolution in resolutions {
                let stored = node_archives(&*store, &node, resolution, period, (now, now)).await;
                let row = stored.ok().and_then(|rows| rows.into_iter().next());
                filling.push(row.and_then(|(_, slot)| slot));
            }
            filling
        }
    }
}

/// A figure as JSON: a number, or `null` when it is not known.
fn number(v: f64) -> Value {
    serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)
}

impl Actor for StatsCollector {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.wait(
            self.resume()
                .into_actor(self)
                .map(|filling, act, _| act.filling = filling),
        );
        // The first sample closes on the next boundary; from then on, one every period.
        let period = self.period;
        let into = (unix_now() as u64) % period;
        let first = Duration::from_secs(period - into);
        ctx.run_later(first, move |act, ctx| {
            act.close(ctx);
            ctx.run_interval(Duration::from_secs(period), |act, ctx| act.close(ctx));
        });
    }
}

/// `node`'s archived rows of `resolution` from `from` to `to` (Unix seconds), oldest first,
/// `None` for a row with no sample.
pub async fn node_archives(
    store: &dyn Store,
    node: &str,
    resolution: Resolution,
    period: u64,
    (from, to): (i64, i64),
) -> StoreResult<Vec<(i64, Option<Slot>)>> {
    let wanted: Vec<usize> = (rows_between(resolution, period, &[], from, to).iter())
        .map(|(start, _)| resolution.slot_of(period, *start).1)
        .collect();
    let records = (store.archive_slots(node, resolution.span(period), &wanted)).await?;
    let slots: Vec<(usize, Slot)> = (records.into_iter())
        .filter_map(|(i, record)| Slot::decode(&record).map(|slot| (i, slot)))
        .collect();
    Ok(rows_between(resolution, period, &slots, from, to))
}
