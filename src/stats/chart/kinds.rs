//! What can be charted: the chart types (My Notes' twelve, and the inbox's), the periods a chart
//! covers and its sizes, with the names the original's monitor gave its files.

use std::fmt;

use super::super::sample::figure;

/// How a chart's value is read from a row's figures.
#[derive(Debug, Clone, Copy)]
pub struct Measure {
    /// Summed (the known ones; none known is missing).
    pub figures: &'static [&'static str],
    /// What the sum is divided by.
    pub per: Per,
    /// Then multiplied by.
    pub factor: f64,
}

#[derive(Debug, Clone, Copy)]
pub enum Per {
    /// The figure as it is (a level, or a per-sample mean).
    Sample,
    /// A count per period, as a rate per second.
    Second,
    /// A count per period, as a rate per minute.
    Minute,
    /// Divided by another figure of the row (a sum over a count: a mean).
    Each(&'static str),
}

/// How the region's line is drawn from the nodes' values at one time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Total {
    Sum,
    Mean,
}

/// One chart type, in both its consolidations.
#[derive(Debug)]
pub struct Kind {
    /// The file and URL name (`cpu`; the MAX chart is `cpu-max`).
    pub name: &'static str,
    pub title: &'static str,
    pub unit: &'static str,
    /// From the AVERAGE archive.
    pub average: Measure,
    /// From the MAX archive.
    pub peak: Measure,
    pub total: Total,
    /// The value axis reaches at least this high.
    pub floor: f64,
}

const fn m(figures: &'static [&'static str], per: Per, factor: f64) -> Measure {
    Measure {
        figures,
        per,
        factor,
    }
}

/// Every chart type: My Notes' six (each also as `-max`, the twelve of its monitor) and the
/// inbox's three.
pub const KINDS: [Kind; 9] = [
    Kind {
        name: "cpu",
        title: "CPU loading",
        unit: "% of one core",
        average: m(&["cpu_seconds"], Per::Second, 100.0),
        peak: m(&["cpu_seconds"], Per::Second, 100.0),
        total: Total::Sum,
        floor: 100.0,
    },
    Kind {
        name: "bytes",
        title: "Network",
        unit: "bit/s",
        average: m(&["bytes_to_desktops", "bytes_to_apps"], Per::Second, 8.0),
        peak: m(&["bytes_to_desktops", "bytes_to_apps"], Per::Second, 8.0),
        total: Total::Sum,
        floor: 0.0,
    },
    Kind {
        name: "agents_u",
        title: "Unique desktop connections",
        unit: "pcs/min",
        average: m(&["agents_customers"], Per::Minute, 1.0),
        peak: m(&["agents_customers"], Per::Minute, 1.0),
        total: Total::Sum,
        floor: 0.0,
    },
    Kind {
        name: "t_completed",
        title: "Completed transactions",
        unit: "pcs/min",
        average: m(&["durations"], Per::Minute, 1.0),
        peak: m(&["durations"], Per::Minute, 1.0),
        total: Total::Sum,
        floor: 0.0,
    },
    Kind {
        name: "t_unique",
        title: "Unique ClientID transactions",
        unit: "pcs/min",
        average: m(&["interactions_customers"], Per::Minute, 1.0),
        peak: m(&["interactions_customers"], Per::Minute, 1.0),
        total: Total::Sum,
        floor: 0.0,
    },
    Kind {
        name: "duration",
        title: "Transaction average duration",
        unit: "seconds",
        average: m(&["duration_ms_sum"], Per::Each("durations"), 0.001),
        peak: m(&["duration_ms_avg"], Per::Sample, 0.001),
        total: Total::Mean,
        floor: 0.0,
    },
    Kind {
        name: "pushed",
        title: "Messages pushed",
        unit: "messages/min",
        average: m(&["pushed"], Per::Minute, 1.0),
        peak: m(&["pushed"], Per::Minute, 1.0),
        total: Total::Sum,
        floor: 0.0,
    },
    Kind {
        name: "popped",
        title: "Messages popped",
        unit: "messages/min",
        average: m(&["popped"], Per::Minute, 1.0),
        peak: m(&["popped"], Per::Minute, 1.0),
        total: Total::Sum,
        floor: 0.0,
    },
    Kind {
        name: "held",
        title: "Pops and subscriptions held",
        unit: "connections",
        average: m(&["held"], Per::Sample, 1.0),
        peak: m(&["held_max"], Per::Sample, 1.0),
        total: Total::Sum,
        floor: 0.0,
    },
];

impl Measure {
    /// The value of a row whose figures are `values` (in [`FIGURES`](super::super::FIGURES)
    /// order), with samples every `period` seconds.
    pub fn of(&self, values: &[Option<f64>], period: u64) -> Option<f64> {
        let read = |name: &str| figure(name).and_then(|i| values.get(i).copied().flatten());
        let known: Vec<f64> = self.figures.iter().filter_map(|name| read(name)).collect();
        if known.is_empty() {
            return None;
        }
        let sum: f64 = known.iter().sum();
        let value = match self.per {
            Per::Sample => sum,
            Per::Second => sum / period as f64,
            Per::Minute => sum * 60.0 / period as f64,
            Per::Each(count) => sum / read(count).filter(|n| *n > 0.0).unwrap_or(1.0),
        };
        Some(value * self.factor)
    }
}

/// A chart: a type, in one of its consolidations.
#[derive(Debug, Clone, Copy)]
pub struct Chart {
    pub kind: &'static Kind,
    /// From the MAX archive (the `-max` charts, "peaks").
    pub peak: bool,
}

impl Chart {
    /// Every chart, in the order of [`KINDS`], each followed by its `-max`.
    pub fn all() -> impl Iterator<Item = Chart> {
        (KINDS.iter()).flat_map(|kind| [false, true].map(|peak| Chart { kind, peak }))
    }

    pub fn parse(name: &str) -> Option<Chart> {
        Chart::all().find(|chart| chart.to_string() == name)
    }

    pub fn measure(&self) -> &Measure {
        if self.peak {
            &self.kind.peak
        } else {
            &self.kind.average
        }
    }

    pub fn title(&self) -> String {
        match self.peak {
            false => self.kind.title.to_owned(),
            true => format!("{}, peaks", self.kind.title),
        }
    }
}

impl fmt::Display for Chart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.name)?;
        if self.peak {
            f.write_str("-max")?;
        }
        Ok(())
    }
}

/// The stretch of time a chart covers, ending now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub name: &'static str,
    pub seconds: u64,
}

const HOUR: u64 = 3600;
const DAY: u64 = 24 * HOUR;

pub const PERIODS: [Period; 9] = [
    Period::of("1h", HOUR),
    Period::of("3h", 3 * HOUR),
    Period::of("6h", 6 * HOUR),
    Period::of("12h", 12 * HOUR),
    Period::of("1day", DAY),
    Period::of("3day", 3 * DAY),
    Period::of("7day", 7 * DAY),
    Period::of("1month", 30 * DAY),
    Period::of("1year", 365 * DAY),
];

impl Period {
    const fn of(name: &'static str, seconds: u64) -> Self {
        Period { name, seconds }
    }

    /// A period by name; `1m` is a month, as rrdtool (and so the original's settings) read it.
    pub fn parse(name: &str) -> Option<Period> {
        let name = if name == "1m" { "1month" } else { name };
        PERIODS.iter().copied().find(|p| p.name == name)
    }
}

/// A chart's size in pixels, as the original drew them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    S,
    M,
    L,
}

impl Size {
    pub const ALL: [Size; 3] = [Size::S, Size::M, Size::L];

    pub fn parse(name: &str) -> Option<Size> {
        match name {
            "S" | "s" => Some(Size::S),
            "M" | "m" => Some(Size::M),
            "L" | "l" => Some(Size::L),
            _ => None,
        }
    }

    pub fn pixels(self) -> (u32, u32) {
        match self {
            Size::S => (307, 150),
            Size::M => (547, 268),
            Size::L => (897, 370),
        }
    }

    /// The original's file name suffix: `cpu-s.1h.png` is small, `cpu.1h.png` medium.
    pub fn suffix(self) -> &'static str {
        match self {
            Size::S => "-s",
            Size::M => "",
            Size::L => "-l",
        }
    }
}

/// The file a chart is published as: `<type><suffix>.<period>.svg`, as the original's monitor
/// named its PNGs (`cpu-max-s.6h.png` became `cpu-max-s.6h.svg`).
pub fn file_name(chart: Chart, period: Period, size: Size) -> String {
    format!("{chart}{}.{}.svg", size.suffix(), period.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_number_eighteen() {
        let names: Vec<String> = Chart::all().map(|c| c.to_string()).collect();
        assert_eq!(names.len(), 18);
        for name in &names {
            assert_eq!(Chart::parse(name).unwrap().to_string(), *name);
        }
        assert!(Chart::parse("cpu-max-max").is_none());
        assert_eq!(Period::parse("1m"), Period::parse("1month"));
        let chart = Chart::parse("cpu-max").unwrap();
        assert_eq!(
            file_name(chart, Period::parse("6h").unwrap(), Size::S),
            "cpu-max-s.6h.svg"
        );
    }

    #[test]
    fn measures_turn_counts_into_rates_and_means() {
        let mut row = vec![None; super::super::super::FIGURES.len()];
        let at = |name| figure(name).unwrap();
        row[at("cpu_seconds")] = Some(30.0);
        row[at("bytes_to_apps")] = Some(600.0);
        row[at("duration_ms_sum")] = Some(3000.0);
        row[at("durations")] = Some(2.0);
        let value = |name: &str| Chart::parse(name).unwrap().measure().of(&row, 60);
        assert_eq!(value("cpu"), Some(50.0), "half a core");
        assert_eq!(value("bytes"), Some(80.0), "one direction known is enough");
        assert_eq!(value("t_completed"), Some(2.0));
        assert_eq!(value("duration"), Some(1.5));
        assert_eq!(value("pushed"), None, "unknown, not zero");
    }
}
