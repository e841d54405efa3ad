//! Round-robin archives: for each resolution (a number of periods per row, and how many rows),
//! a fixed ring of slots, each holding the samples of its stretch of time consolidated two ways,
//! AVERAGE and MAX. A slot says which stretch it holds: a slot left from an older lap of the
//! ring, or never written, reads as missing — which is how a silent node shows — never as the
//! last value.
//!
//! The node consolidates; the store keeps each slot as an opaque record ([`Slot::encode`]).

use serde::{Deserialize, Serialize};

pub use crate::model::Resolution;

/// One row: when its stretch began, and per figure the sum, count and highest of the known
/// values (a NaN sample value is not known).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Slot {
    #[serde(rename = "t")]
    pub start: i64,
    #[serde(rename = "s")]
    sums: Vec<f64>,
    #[serde(rename = "n")]
    counts: Vec<u32>,
    #[serde(rename = "m")]
    maxima: Vec<Option<f64>>,
}

impl Slot {
    /// An empty row for the stretch from `start`, of `figures` figures.
    pub fn new(start: i64, figures: usize) -> Self {
        Slot {
            start,
            sums: vec![0.0; figures],
            counts: vec![0; figures],
            maxima: vec![None; figures],
        }
    }

    /// Adds one sample's values.
    pub fn add(&mut self, values: &[f64]) {
        let known = values.iter().enumerate().filter(|(_, v)| v.is_finite());
        for (i, &v) in known {
            if i >= self.sums.len() {
                break;
            }
            self.sums[i] += v;
            self.counts[i] += 1;
            self.maxima[i] = Some(self.maxima[i].map_or(v, |m| m.max(v)));
        }
    }

    /// Adds another node's row to this total: each figure's AVERAGE and MAX are summed over
    /// the nodes that knew it.
    pub fn add_totals(&mut self, other: &Slot) {
        let (averages, maxima) = (other.averages(), other.maxima());
        for (i, average) in averages.iter().enumerate().take(self.sums.len()) {
            if let Some(average) = average {
                self.sums[i] += average;
                self.counts[i] = 1;
            }
            if let Some(max) = maxima[i] {
                self.maxima[i] = Some(self.maxima[i].unwrap_or(0.0) + max);
            }
        }
    }

    /// The AVERAGE of each figure (`None` where no sample knew it).
    pub fn averages(&self) -> Vec<Option<f64>> {
        (self.sums.iter().zip(&self.counts))
            .map(|(s, n)| (*n > 0).then(|| s / f64::from(*n)))
            .collect()
    }

    /// The MAX of each figure.
    pub fn maxima(&self) -> &[Option<f64>] {
        &self.maxima
    }

    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("slots serialise")
    }

    /// A stored record; `None` if it is not one (a foreign or older value is skipped).
    pub fn decode(record: &str) -> Option<Self> {
        serde_json::from_str(record).ok()
    }
}

/// The rows of one archive that hold `from..=to`, oldest first, one per row's stretch: `None`
/// where no sample was written for it (the node was silent, or the row's slot has since been
/// reused for a later lap).
pub fn rows_between(
    resolution: Resolution,
    period: u64,
    slots: &[(usize, Slot)],
    from: i64,
    to: i64,
) -> Vec<(i64, Option<Slot>)> {
    let span = resolution.span(period) as i64;
    // Only the last lap of the ring can still be there.
    let oldest = resolution.slot_of(period, to).0 - span * (resolution.rows as i64 - 1);
    let mut start = resolution.slot_of(period, from.max(oldest)).0;
    let mut rows = Vec::new();
    while start <= to {
        let (_, index) = resolution.slot_of(period, start);
        let slot = (slots.iter())
            .find(|(i, slot)| *i == index && slot.start == start)
            .map(|(_, slot)| slot.clone());
        rows.push((start, slot));
        start += span;
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: u64 = 60;

    #[test]
    fn rows_consolidate_average_and_max_of_the_known_values() {
        let mut slot = Slot::new(0, 2);
        slot.add(&[1.0, f64::NAN]);
        slot.add(&[3.0, f64::NAN]);
        assert_eq!(slot.averages(), [Some(2.0), None]);
        assert_eq!(slot.maxima(), [Some(3.0), None]);
        assert_eq!(Slot::decode(&slot.encode()), Some(slot.clone()));
        let mut total = Slot::new(0, 2);
        total.add_totals(&slot);
        total.add_totals(&slot);
        assert_eq!(
            total.averages(),
            [Some(4.0), None],
            "averages summed over nodes"
        );
        assert_eq!(total.maxima(), [Some(6.0), None]);
    }

    #[test]
    fn a_coarser_row_gathers_several_periods() {
        let five = Resolution { steps: 5, rows: 4 };
        assert_eq!(five.slot_of(MINUTE, 0), (0, 0));
        assert_eq!(five.slot_of(MINUTE, 299), (0, 0));
        assert_eq!(five.slot_of(MINUTE, 300), (300, 1));
        // The ring wraps after four rows.
        assert_eq!(five.slot_of(MINUTE, 1200), (1200, 0));
    }

    #[test]
    fn gaps_and_older_laps_read_as_missing() {
        let r = Resolution { steps: 1, rows: 3 };
        let row = |start: i64| {
            let mut slot = Slot::new(start, 1);
            slot.add(&[start as f64]);
            (r.slot_of(MINUTE, start).1, slot)
        };
        let known = |read: &[(i64, Option<Slot>)]| -> Vec<(i64, bool)> {
            read.iter().map(|(t, s)| (*t, s.is_some())).collect()
        };
        // Written at minutes 0 and 1, read at minute 2: minute 2 has nothing yet.
        let slots = vec![row(0), row(60)];
        let read = rows_between(r, MINUTE, &slots, 0, 179);
        assert_eq!(known(&read), [(0, true), (60, true), (120, false)]);
        // Then at minute 4, which took minute 1's slot: three rows of the last lap only,
        // minutes 2 and 3 never written.
        let slots = vec![row(0), row(240)];
        let read = rows_between(r, MINUTE, &slots, 0, 299);
        assert_eq!(known(&read), [(120, false), (180, false), (240, true)]);
    }
}
