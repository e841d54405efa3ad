//! A sample: every figure of one period, closed from the counters and the process's readings.
//!
//! The figures are a fixed list ([`FIGURES`]) in a fixed order, so that a sample is a row of
//! numbers: what the archives store and chart. A figure the period could not measure is NaN
//! (missing), never 0.

use serde::Serialize;

use super::counters::Counters;
use super::process;

/// Every figure a sample holds, in order: its name and what it counts. Archived rows are read
/// by position, so a new figure goes at the end.
pub const FIGURES: [(&str, &str); 35] = [
    (
        "interactions_started",
        "app requests paired with a desktop's poll",
    ),
    ("interactions_ended", "interactions over, whichever way"),
    (
        "interactions_failed",
        "interactions that ended without the reply reaching the app",
    ),
    (
        "interactions_active",
        "interactions under way at the period's end",
    ),
    ("interactions_min", "fewest interactions under way at once"),
    ("interactions_max", "most interactions under way at once"),
    (
        "interactions_customers",
        "distinct customers with an interaction",
    ),
    (
        "duration_ms_sum",
        "summed durations of completed interactions, ms",
    ),
    ("durations", "completed interactions timed"),
    ("agents_waited", "desktop polls that had to wait"),
    ("agents_active", "desktop polls waiting at the period's end"),
    (
        "agents_customers",
        "distinct customers whose desktop polled",
    ),
    ("bytes_to_desktops", "relayed body bytes, apps to desktops"),
    ("bytes_to_apps", "relayed body bytes, desktops to apps"),
    ("cpu_seconds", "CPU time used, user and system, s"),
    ("rss_peak_kib", "most resident memory so far, KiB"),
    ("provisioned", "transactions provisioned"),
    ("pushed", "messages pushed into queues"),
    ("popped", "messages handed to consumers"),
    ("acked", "reliable deliveries acknowledged"),
    ("returned", "reliable deliveries back after timeoutACK"),
    ("expired", "queue entries dropped on expiry"),
    ("held", "pops and subscriptions waiting at the period's end"),
    ("held_min", "fewest pops and subscriptions waiting at once"),
    ("held_max", "most pops and subscriptions waiting at once"),
    ("callbacks_delivered", "delivery callbacks made"),
    ("callbacks_failed", "delivery callbacks given up"),
    ("answers_1xx", "HTTP answers 1xx"),
    ("answers_2xx", "HTTP answers 2xx"),
    ("answers_3xx", "HTTP answers 3xx"),
    ("answers_4xx", "HTTP answers 4xx"),
    ("answers_5xx", "HTTP answers 5xx"),
    ("open_files", "descriptors open at the period's end"),
    ("open_files_limit", "the open-file limit"),
    (
        "duration_ms_avg",
        "mean duration of the period's completed interactions, ms",
    ),
];

/// The index of figure `name` in [`FIGURES`].
pub fn figure(name: &str) -> Option<usize> {
    FIGURES.iter().position(|(n, _)| *n == name)
}

/// One period's figures, at the period's end (Unix seconds).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    pub at: i64,
    pub values: Vec<f64>,
}

impl Sample {
    /// The figure `name`.
    pub fn get(&self, name: &str) -> f64 {
        figure(name).map_or(f64::NAN, |i| self.values[i])
    }
}

/// Closes samples: reads and resets the counters, and measures the process against the last
/// sample (CPU time is a difference).
#[derive(Debug, Default)]
pub struct Sampler {
    cpu_before: Option<f64>,
}

impl Sampler {
    /// The period ending `at`.
    pub fn close(&mut self, counters: &Counters, at: i64) -> Sample {
        let c = counters;
        let (interactions, agents, held) = (c.interactions.take(), c.agents.take(), c.held.take());
        let cpu_now = process::cpu_seconds();
        let cpu = match (self.cpu_before, cpu_now) {
            (Some(before), Some(now)) => now - before,
            _ => f64::NAN,
        };
        self.cpu_before = cpu_now;
        let known = |v: Option<u64>| v.map_or(f64::NAN, |v| v as f64);
        let count = |n: u64| n as f64;
        let answers = c.answers.each_ref().map(|a| count(a.take()));
        let (duration_ms, durations) = (count(c.duration_ms.take()), count(c.durations.take()));
        let values = vec![
            count(c.interactions_started.take()),
            count(c.interactions_ended.take()),
            count(c.interactions_failed.take()),
            interactions.now as f64,
            interactions.low as f64,
            interactions.high as f64,
            count(c.interaction_customers.take()),
            duration_ms,
            durations,
            count(c.agents_waited.take()),
            agents.now as f64,
            count(c.agent_customers.take()),
            count(c.bytes_to_desktops.take()),
            count(c.bytes_to_apps.take()),
            cpu,
            known(process::peak_rss_kib()),
            count(c.provisioned.take()),
            count(c.pushed.take()),
            count(c.popped.take()),
            count(c.acked.take()),
            count(c.returned.take()),
            count(c.expired.take()),
            held.now as f64,
            held.low as f64,
            held.high as f64,
            count(c.callbacks_delivered.take()),
            count(c.callbacks_failed.take()),
            answers[0],
            answers[1],
            answers[2],
            answers[3],
            answers[4],
            known(process::open_files()),
            known(process::open_file_limit().map(|n| n as u64)),
            if durations > 0.0 {
                duration_ms / durations
            } else {
                f64::NAN
            },
        ];
        debug_assert_eq!(values.len(), FIGURES.len());
        Sample { at, values }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_holds_every_figure_and_resets_the_period() {
        let counters = Counters::default();
        counters.pushed.add(5);
        counters.held.up();
        counters.held.up();
        counters.held.down();
        counters.interaction_customers.insert("26018363");
        counters.answered(200);
        let mut sampler = Sampler::default();
        let first = sampler.close(&counters, 60);
        assert_eq!(first.values.len(), FIGURES.len());
        assert_eq!(first.get("pushed"), 5.0);
        assert_eq!(
            (
                first.get("held"),
                first.get("held_min"),
                first.get("held_max")
            ),
            (1.0, 0.0, 2.0)
        );
        assert_eq!(first.get("interactions_customers"), 1.0);
        assert_eq!(first.get("answers_2xx"), 1.0);
        assert!(
            first.get("cpu_seconds").is_nan(),
            "no period to measure against yet"
        );
        assert!(first.get("open_files") >= 3.0);
        let second = sampler.close(&counters, 120);
        assert_eq!(second.get("pushed"), 0.0);
        assert_eq!(second.get("held_max"), 1.0);
        assert!(second.get("cpu_seconds") >= 0.0);
    }
}
