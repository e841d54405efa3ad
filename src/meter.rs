//! Lock-free instruments for what Prometheus reads as histograms: how long requests and store
//! calls take. Observing is two atomic adds — no lock, so that a hot path can afford it on
//! every request; reading takes a [`Snapshot`], consistent enough for a scrape.
//!
//! The counts the node exports are the statistics' own; only durations need these.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) for the answer times of HTTP requests: from half a millisecond to the
/// longest long poll PopBox allows (120 s), since a held pop is a request too.
pub const REQUEST_BOUNDS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 120.0,
];

/// Upper bounds (seconds) for store calls: a Redis round trip on loopback is a tenth of a
/// millisecond; past a second it is an outage.
pub const CALL_BOUNDS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Durations counted into fixed buckets, with their sum.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// One per bound, and one past the last (`+Inf`); not cumulative.
    buckets: Box<[AtomicU64]>,
    sum_ns: AtomicU64,
}

/// A [`Histogram`] as read at one moment, in Prometheus's terms.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// Seconds, all observations together.
    pub sum: f64,
    pub count: u64,
    /// `(upper bound, observations over the bound before and at or under this one)`, ending
    /// with `+Inf` (not cumulative: the encoder adds them up).
    pub buckets: Vec<(f64, u64)>,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Self {
        debug_assert!(bounds.is_sorted(), "bounds must rise");
        Histogram {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_ns: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        let bucket = (self.bounds.iter())
            .position(|bound| seconds <= *bound)
            .unwrap_or(self.bounds.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Snapshot {
        let bounds = self.bounds.iter().copied().chain([f64::INFINITY]);
        let buckets: Vec<(f64, u64)> = (bounds.zip(self.buckets.iter()))
            .map(|(bound, n)| (bound, n.load(Ordering::Relaxed)))
            .collect();
        Snapshot {
            sum: self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9,
            count: buckets.iter().map(|(_, n)| n).sum(),
            buckets,
        }
    }
}

/// What is measured of the calls to one server: how long they take, and how many fail.
#[derive(Debug)]
pub struct CallMeter {
    pub latency: Histogram,
    errors: AtomicU64,
}

impl Default for CallMeter {
    fn default() -> Self {
        CallMeter {
            latency: Histogram::new(CALL_BOUNDS),
            errors: AtomicU64::new(0),
        }
    }
}

impl CallMeter {
    pub fn failed(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Calls that failed since the node started.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_has_each_bucket_and_ends_with_infinity() {
        let h = Histogram::new(&[0.001, 0.01]);
        h.observe(Duration::from_micros(500));
        h.observe(Duration::from_millis(1)); // on the bound: counted under it
        h.observe(Duration::from_millis(5));
        h.observe(Duration::from_secs(3));
        let s = h.snapshot();
        assert_eq!(s.count, 4);
        assert_eq!(s.buckets, vec![(0.001, 2), (0.01, 1), (f64::INFINITY, 1)]);
        assert!((s.sum - 3.0065).abs() < 1e-9, "{}", s.sum);
    }
}
