//! **AlertWatch**: one per node with `[alerts]`, though only one per region works at a time —
//! the holder of a lease in the store, renewed at every check, so that a dead node is reported
//! by a living one and the region mails once per event. Every period, half a period after the
//! samples, it reads every node's latest figures, applies the [rules](super::rules) and mails
//! what changed. What was mailed is recorded in the store only once the mail went; a mail that
//! failed is logged and tried again at the next check.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tracing::{info, warn};

use super::Alerts;
use super::letters::Writer;
use super::rules::{self, Limits, Notice, Reading, Record, SILENT_PERIODS};
use crate::config::StatsSettings;
use crate::model::{Resolution, unix_now};
use crate::stats::node_archives;
use crate::store::{Store, StoreError};

pub struct AlertWatch {
    alerts: Alerts,
    limits: Limits,
    /// The finest archive: where the latest figures are.
    finest: Resolution,
    store: Arc<dyn Store>,
    checking: bool,
}

impl AlertWatch {
    pub fn new(alerts: Alerts, stats: &StatsSettings, store: Arc<dyn Store>) -> Self {
        let finest = (stats.resolutions().into_iter())
            .min_by_key(|r| r.steps)
            .expect("stats.archives names at least one archive");
        AlertWatch {
            limits: Limits {
                period: stats.period,
                over: alerts.settings.over,
                threshold: alerts.settings.threshold,
            },
            alerts,
            finest,
            store,
            checking: false,
        }
    }

    /// How long the lease lasts unrenewed: a watch that stops checking hands over within it.
    fn lease(&self) -> Duration {
        Duration::from_secs(self.limits.period * (SILENT_PERIODS as u64 - 1))
    }
}

impl Actor for AlertWatch {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Half a period after each sample, when the nodes have written theirs.
        let period_ms = self.limits.period * 1000;
        let into = crate::model::unix_now_ms() as u64 % period_ms;
        let first = Duration::from_millis((period_ms * 3 / 2 - into) % period_ms);
        let period = Duration::from_secs(self.limits.period);
        ctx.run_later(first, move |act, ctx| {
            act.tick(ctx);
            ctx.run_interval(period, |act, ctx| act.tick(ctx));
        });
    }
}

impl AlertWatch {
    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.checking {
            return; // the last check is still mailing
        }
        self.checking = true;
        let check = Check {
            alerts: self.alerts.clone(),
            limits: self.limits,
            finest: self.finest,
            store: Arc::clone(&self.store),
            lease: self.lease(),
        };
        ctx.spawn(
            async move {
                if let Err(e) = check.run().await {
                    warn!(error = %e, "could not check the alerts");
                }
            }
            .into_actor(self)
            .map(|(), act, _| act.checking = false),
        );
    }
}

/// One check, away from the actor.
struct Check {
    alerts: Alerts,
    limits: Limits,
    finest: Resolution,
    store: Arc<dyn Store>,
    lease: Duration,
}

impl Check {
    async fn run(self) -> Result<(), StoreError> {
        let Check { alerts, store, .. } = &self;
        if !store.alert_lease(&alerts.node, self.lease).await? {
            return Ok(());
        }
        let now = unix_now();
        let readings = self.readings(now).await?;
        let findings = rules::findings(&readings, self.limits, now);
        let book = store.alert_book().await?;
        let (notices, forget) = rules::plan(&findings, &book, now, alerts.settings.grace_period);
        for key in forget {
            store.alert_note(&key, None).await?;
        }
        let writer = Writer {
            region: &alerts.region,
            readings: &readings,
            limits: self.limits,
            now,
        };
        for (letter, carried) in writer.letters(&notices) {
            if let Err(e) = alerts.mailer.send(&letter).await {
                warn!(error = %e, subject = %letter.subject, "alert mail not sent; trying again at the next check");
                continue;
            }
            info!(subject = %letter.subject, "alert mailed");
            for (condition, notice) in carried {
                let record = Record {
                    sent: now,
                    raised: notice != Notice::Cleared,
                };
                store
                    .alert_note(&condition.key(), Some(&record.encode()))
                    .await?;
            }
        }
        Ok(())
    }

    /// The region's nodes — those with a sample within the finest archive — and their latest
    /// figures.
    async fn readings(&self, now: i64) -> Result<Vec<Reading>, StoreError> {
        let period = self.limits.period;
        let span = self.finest.span(period) as i64;
        let kept = span * self.finest.rows as i64;
        let cpu = crate::stats::sample::figure("cpu_seconds").expect("a figure");
        let mut readings = Vec::new();
        for (node, last_sample) in self.store.archive_nodes().await? {
            if now - last_sample > kept {
                continue; // gone longer than anything the archives show
            }
            let recent = (now - SILENT_PERIODS * period as i64, now);
            let rows = node_archives(&*self.store, &node, self.finest, period, recent).await?;
            let latest = (rows.iter().rev())
                .filter_map(|(_, slot)| slot.as_ref())
                .find_map(|slot| slot.maxima().get(cpu).copied().flatten());
            readings.push(Reading {
                node,
                last_sample,
                cpu: latest.map(|seconds| seconds / period as f64),
            });
        }
        Ok(readings)
    }
}
