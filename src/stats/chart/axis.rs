//! A chart's axes: round values up the side, and time labels along the bottom on round hours
//! or days (UTC).

use crate::model::utc;

/// Round steps between value gridlines: 1, 2 and 5 times a power of ten.
fn round_step(rough: f64) -> f64 {
    let power = 10f64.powf(rough.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .find(|m| m * power >= rough)
        .unwrap_or(10.0);
    step * power
}

/// The value axis for data up to `highest`: its top, and the gridlines from 0 to it (about
/// `lines` of them).
pub fn values(highest: f64, lines: usize) -> (f64, Vec<f64>) {
    let highest = if highest.is_finite() && highest > 0.0 {
        highest
    } else {
        1.0
    };
    let step = round_step(highest / lines.max(1) as f64);
    let top = (highest / step).ceil() * step;
    let count = (top / step).round() as usize;
    (top, (0..=count).map(|i| i as f64 * step).collect())
}

/// A value as a person reads it on an axis: `0`, `2.5`, `750`, `1.5k`, `20M`.
pub fn value_label(v: f64) -> String {
    let (scaled, suffix) = [(1e9, "G"), (1e6, "M"), (1e3, "k")]
        .into_iter()
        .find(|(unit, _)| v.abs() >= *unit)
        .map_or((v, ""), |(unit, suffix)| (v / unit, suffix));
    let text = format!("{scaled:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}{suffix}")
}

/// Steps between time labels, shortest first (the last ones are days, a week, 30 days).
const TIME_STEPS: [i64; 14] = [
    60, 300, 600, 900, 1800, 3600, 7200, 10_800, 21_600, 43_200, 86_400, 172_800, 604_800,
    2_592_000,
];

/// Time labels for `from..=to` (Unix seconds), at most `most` of them, on round times: each
/// label's time and text (`HH:MM` within a day, `MM-DD` across days).
pub fn times(from: i64, to: i64, most: usize) -> Vec<(i64, String)> {
    let most = most.max(2) as i64;
    let step = (TIME_STEPS.into_iter())
        .find(|step| (to - from) / step < most)
        .unwrap_or(TIME_STEPS[TIME_STEPS.len() - 1]);
    let first = from.div_euclid(step) * step + if from % step == 0 { 0 } else { step };
    (0..)
        .map(|i| first + i * step)
        .take_while(|t| *t <= to)
        .map(|t| {
            let stamp = utc(t);
            let text = match step < 86_400 {
                true => &stamp[11..16],
                false => &stamp[5..10],
            };
            (t, text.to_owned())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_axes_end_on_round_numbers() {
        // 100 over about four lines: steps of 50 (25 is not a 1-2-5 step).
        assert_eq!(values(100.0, 4), (100.0, vec![0.0, 50.0, 100.0]));
        let (top, lines) = values(730.0, 4);
        assert_eq!(top, 800.0);
        assert_eq!(lines.len(), 5);
        assert_eq!(values(0.0, 4).0, 1.0, "an empty chart still has an axis");
        assert_eq!(value_label(1500.0), "1.5k");
        assert_eq!(value_label(2e7), "20M");
        assert_eq!(value_label(0.25), "0.25");
        assert_eq!(value_label(0.0), "0");
    }

    #[test]
    fn time_labels_fall_on_round_times() {
        // 2026-12-04 21:43:48 UTC, an hour's chart: a label every 10 minutes.
        let to = 1_796_420_628;
        let labels = times(to - 3600, to, 8);
        let texts: Vec<&str> = labels.iter().map(|(_, s)| s.as_str()).collect();
        assert_eq!(
            texts,
            ["20:50", "21:00", "21:10", "21:20", "21:30", "21:40"]
        );
        let week = times(to - 7 * 86_400, to, 8);
        assert_eq!(week[0].1, "11-28");
        assert!(week.iter().all(|(t, _)| t % 86_400 == 0));
    }
}
