//! The counters the hot paths bump: plain atomics in one process-wide place, so that counting a
//! request costs an atomic add — no lock, no message, nothing to pass around.
//!
//! Three kinds: a [`Count`] of events in the period, a [`Level`] (how many of something there
//! are now, with the lowest and highest the period saw) and a [`Distinct`] count of names (the
//! customers of the period), estimated from a bitmap so that it too is one atomic operation.

use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Events: those of the current period for the statistics, and all since the node started
/// for the metrics (a Prometheus counter only rises). Counting is one atomic add.
#[derive(Debug, Default)]
pub struct Count {
    total: AtomicU64,
    /// `total` when the last period was taken.
    taken: AtomicU64,
}

impl Count {
    pub const fn new() -> Self {
        Count {
            total: AtomicU64::new(0),
            taken: AtomicU64::new(0),
        }
    }

    pub fn add(&self, n: u64) {
        self.total.fetch_add(n, Ordering::Relaxed);
    }

    pub fn one(&self) {
        self.add(1);
    }

    /// The period's count, starting the next at 0.
    pub fn take(&self) -> u64 {
        let total = self.total.load(Ordering::Relaxed);
        total.wrapping_sub(self.taken.swap(total, Ordering::Relaxed))
    }

    /// Every event since the node started.
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }
}

/// How many of something there are, and the lowest and highest since the period began.
#[derive(Debug, Default)]
pub struct Level {
    now: AtomicI64,
    low: AtomicI64,
    high: AtomicI64,
}

/// A [`Level`] as a period saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Levels {
    pub now: i64,
    pub low: i64,
    pub high: i64,
}

impl Level {
    pub fn up(&self) {
        let now = self.now.fetch_add(1, Ordering::Relaxed) + 1;
        self.high.fetch_max(now, Ordering::Relaxed);
    }

    pub fn down(&self) {
        let now = self.now.fetch_sub(1, Ordering::Relaxed) - 1;
        self.low.fetch_min(now, Ordering::Relaxed);
    }

    /// The level now.
    pub fn now(&self) -> i64 {
        self.now.load(Ordering::Relaxed)
    }

    /// The period's figures; the next period's lowest and highest start at the level now.
    pub fn take(&self) -> Levels {
        let now = self.now.load(Ordering::Relaxed);
        Levels {
            now,
            low: self.low.swap(now, Ordering::Relaxed).min(now),
            high: self.high.swap(now, Ordering::Relaxed).max(now),
        }
    }
}

/// Bits of a [`Distinct`]: exact enough (within a few percent) up to some 100,000 names a
/// period, in 8 KiB.
const DISTINCT_BITS: usize = 1 << 16;

/// How many distinct names the period saw: each name sets one bit of a bitmap, and the share of
/// bits left clear estimates how many there were (linear counting).
#[derive(Debug)]
pub struct Distinct {
    words: Box<[AtomicU64]>,
}

impl Default for Distinct {
    fn default() -> Self {
        Distinct {
            words: (0..DISTINCT_BITS / 64).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl Distinct {
    pub fn insert(&self, name: impl Hash) {
        // A fixed hasher, so that the same name sets the same bit on every thread.
        let bit =
            std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
                .hash_one(name) as usize
                % DISTINCT_BITS;
        self.words[bit / 64].fetch_or(1 << (bit % 64), Ordering::Relaxed);
    }

    /// The period's estimate, starting the next with none.
    pub fn take(&self) -> u64 {
        let set: u32 = (self.words.iter())
            .map(|w| w.swap(0, Ordering::Relaxed).count_ones())
            .sum();
        let (m, clear) = (DISTINCT_BITS as f64, (DISTINCT_BITS - set as usize) as f64);
        if clear == 0.0 {
            return DISTINCT_BITS as u64;
        }
        (-m * (clear / m).ln()).round() as u64
    }
}

/// Every counter of the node.
#[derive(Debug, Default)]
pub struct Counters {
    // The inbox.
    pub provisioned: Count,
    pub pushed: Count,
    pub popped: Count,
    pub acked: Count,
    /// Reliable deliveries back in their queue after `timeoutACK`.
    pub returned: Count,
    /// Queue entries dropped because their transaction expired.
    pub expired: Count,
    /// Pops and subscriptions waiting.
    pub held: Level,
    pub callbacks_delivered: Count,
    pub callbacks_failed: Count,
    /// Answers by status class: 1xx … 5xx.
    pub answers: [Count; 5],
    // The device relay.
    pub interactions_started: Count,
    pub interactions_ended: Count,
    pub interactions_failed: Count,
    pub interactions: Level,
    pub interaction_customers: Distinct,
    /// Completed interactions' durations, from the app's request to its answer's end.
    pub duration_ms: Count,
    pub durations: Count,
    /// Desktop polls that had to wait.
    pub agents_waited: Count,
    pub agents: Level,
    pub agent_customers: Distinct,
    pub bytes_to_desktops: Count,
    pub bytes_to_apps: Count,
}

impl Counters {
    /// Counts an answer by its status class.
    pub fn answered(&self, status: u16) {
        if let Some(class) = (status / 100).checked_sub(1).filter(|c| *c < 5) {
            self.answers[class as usize].one();
        }
    }
}

/// The node's counters.
pub fn counters() -> &'static Counters {
    static COUNTERS: std::sync::LazyLock<Counters> = std::sync::LazyLock::new(Counters::default);
    &COUNTERS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_level_keeps_the_period_lowest_and_highest() {
        let level = Level::default();
        level.up();
        level.up();
        level.down();
        assert_eq!(
            level.take(),
            Levels {
                now: 1,
                low: 0,
                high: 2
            }
        );
        // The next period starts from where the level is.
        assert_eq!(
            level.take(),
            Levels {
                now: 1,
                low: 1,
                high: 1
            }
        );
        level.down();
        assert_eq!(
            level.take(),
            Levels {
                now: 0,
                low: 0,
                high: 1
            }
        );
    }

    #[test]
    fn distinct_names_are_counted_within_a_few_percent() {
        let distinct = Distinct::default();
        for round in 0..3 {
            for i in 0..20_000 {
                distinct.insert(format!("customer-{i}"));
            }
            let _ = round;
        }
        let n = distinct.take() as f64;
        assert!((19_000.0..21_000.0).contains(&n), "{n}");
        assert_eq!(distinct.take(), 0, "the next period starts with none");
    }

    #[test]
    fn counts_reset_with_each_period_and_their_totals_do_not() {
        let c = Counters::default();
        c.pushed.add(3);
        c.answered(204);
        c.answered(503);
        c.answered(999);
        assert_eq!(c.pushed.take(), 3);
        assert_eq!(c.pushed.take(), 0);
        c.pushed.one();
        assert_eq!(c.pushed.take(), 1);
        assert_eq!(c.pushed.total(), 4, "the total goes on rising");
        assert_eq!(c.answers[1].take(), 1);
        assert_eq!(c.answers[4].take(), 1);
    }
}
