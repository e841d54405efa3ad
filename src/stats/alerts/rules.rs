//! The alert rules, as My Notes' monitor had them (spec §13.2), and what to mail about them:
//! pure functions of the nodes' latest readings and the alerts on record, so that they can be
//! tested without a clock, a store or a mail server.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// A node has written no sample for this many periods: it is silent.
pub const SILENT_PERIODS: i64 = 3;

/// One node of the region, as its archives show it.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub node: String,
    /// Unix time of its last sample.
    pub last_sample: i64,
    /// Its latest CPU use, as a share of one core (the MAX of its latest row).
    pub cpu: Option<f64>,
}

/// What the rules find wrong.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Condition {
    /// Every node of the region is silent.
    Down,
    /// At least the threshold share of the nodes is over.
    Overload,
    Silent(String),
    Over(String),
}

impl Condition {
    /// The key the alert is kept under in the store.
    pub fn key(&self) -> String {
        match self {
            Condition::Down => "down".to_owned(),
            Condition::Overload => "overload".to_owned(),
            Condition::Silent(node) => format!("silent:{node}"),
            Condition::Over(node) => format!("over:{node}"),
        }
    }

    pub fn from_key(key: &str) -> Option<Condition> {
        match key.split_once(':') {
            None if key == "down" => Some(Condition::Down),
            None if key == "overload" => Some(Condition::Overload),
            Some(("silent", node)) => Some(Condition::Silent(node.to_owned())),
            Some(("over", node)) => Some(Condition::Over(node.to_owned())),
            _ => None,
        }
    }
}

/// The limits the rules apply.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Seconds between samples.
    pub period: u64,
    /// A node is over above this share of one core.
    pub over: f64,
    /// The region is overloaded when this share of its nodes is over.
    pub threshold: f64,
}

/// What holds at `now`: the conditions the rules report, and those they imply (a region down
/// has every node silent; an overloaded one has its nodes over), which are true but not mailed
/// on their own.
#[derive(Debug, Default, PartialEq)]
pub struct Findings {
    pub reported: BTreeSet<Condition>,
    pub implied: BTreeSet<Condition>,
}

impl Findings {
    fn holds(&self, condition: &Condition) -> bool {
        self.reported.contains(condition) || self.implied.contains(condition)
    }
}

pub fn findings(readings: &[Reading], limits: Limits, now: i64) -> Findings {
    let silent_after = SILENT_PERIODS * limits.period as i64;
    let is_silent = |r: &&Reading| now - r.last_sample >= silent_after;
    let silent: BTreeSet<Condition> = (readings.iter().filter(is_silent))
        .map(|r| Condition::Silent(r.node.clone()))
        .collect();
    let over: BTreeSet<Condition> = (readings.iter())
        .filter(|r| !is_silent(r) && r.cpu.is_some_and(|cpu| cpu > limits.over))
        .map(|r| Condition::Over(r.node.clone()))
        .collect();
    let share_over = over.len() as f64 / readings.len().max(1) as f64;
    if !readings.is_empty() && silent.len() == readings.len() {
        Findings {
            reported: BTreeSet::from([Condition::Down]),
            implied: silent,
        }
    } else if !over.is_empty() && share_over >= limits.threshold {
        let mut reported = silent;
        reported.insert(Condition::Overload);
        Findings {
            reported,
            implied: over,
        }
    } else {
        Findings {
            reported: silent.into_iter().chain(over).collect(),
            implied: BTreeSet::new(),
        }
    }
}

/// What the store keeps of an alert: when it was last mailed, and whether that mail raised it
/// (or said it cleared).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub sent: i64,
    pub raised: bool,
}

impl Record {
    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("records serialise")
    }

    pub fn decode(text: &str) -> Option<Record> {
        serde_json::from_str(text).ok()
    }
}

/// What one check does about one condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// Newly true: mail it.
    Raised,
    /// Still true, and mailed longer than the grace period ago: mail it again.
    Still,
    /// No longer true after it was mailed: say so.
    Cleared,
}

/// What to do at `now`: the notices to mail, and the records to forget (cleared alerts whose
/// grace period is over, and records that are not alerts).
pub fn plan(
    findings: &Findings,
    book: &BTreeMap<String, String>,
    now: i64,
    grace: u64,
) -> (Vec<(Condition, Notice)>, Vec<String>) {
    let graced = |record: &Record| now - record.sent < grace as i64;
    let mut notices = Vec::new();
    let mut forget = Vec::new();
    for condition in &findings.reported {
        let record = book.get(&condition.key()).and_then(|r| Record::decode(r));
        let notice = match record {
            None => Some(Notice::Raised),
            Some(r) if graced(&r) => None,
            Some(r) if r.raised => Some(Notice::Still),
            Some(_) => Some(Notice::Raised),
        };
        notices.extend(notice.map(|n| (condition.clone(), n)));
    }
    for (key, record) in book {
        let (Some(condition), Some(record)) = (Condition::from_key(key), Record::decode(record))
        else {
            forget.push(key.clone());
            continue;
        };
        if findings.holds(&condition) {
            continue;
        }
        if record.raised {
            notices.push((condition, Notice::Cleared));
        } else if !graced(&record) {
            forget.push(key.clone());
        }
    }
    (notices, forget)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        period: 60,
        over: 0.9,
        threshold: 0.5,
    };
    const NOW: i64 = 1_000_000;

    fn reading(node: &str, ago: i64, cpu: f64) -> Reading {
        Reading {
            node: node.to_owned(),
            last_sample: NOW - ago,
            cpu: Some(cpu),
        }
    }

    fn set<const N: usize>(conditions: [Condition; N]) -> BTreeSet<Condition> {
        BTreeSet::from(conditions)
    }

    fn node(name: &str) -> String {
        name.to_owned()
    }

    #[test]
    fn the_rules_of_the_original() {
        let quiet = [reading("a", 10, 0.1), reading("b", 10, 0.2)];
        assert_eq!(findings(&quiet, LIMITS, NOW), Findings::default());
        // Three periods without a sample: silent.
        let one_silent = [reading("a", 180, 0.1), reading("b", 10, 0.2)];
        let found = findings(&one_silent, LIMITS, NOW);
        assert_eq!(found.reported, set([Condition::Silent(node("a"))]));
        // Every node silent: the region is down, and that is the one alert.
        let all_silent = [reading("a", 180, 0.1), reading("b", 400, 0.2)];
        let found = findings(&all_silent, LIMITS, NOW);
        assert_eq!(found.reported, set([Condition::Down]));
        assert_eq!(found.implied.len(), 2);
        // Half the nodes over, at a threshold of a half: the region is overloaded.
        let half_over = [reading("a", 10, 0.95), reading("b", 10, 0.2)];
        let found = findings(&half_over, LIMITS, NOW);
        assert_eq!(found.reported, set([Condition::Overload]));
        assert_eq!(found.implied, set([Condition::Over(node("a"))]));
        // Below the threshold: the node itself.
        let third = [
            reading("a", 10, 0.95),
            reading("b", 10, 0.2),
            reading("c", 10, 0.1),
        ];
        let found = findings(&third, LIMITS, NOW);
        assert_eq!(found.reported, set([Condition::Over(node("a"))]));
        // A silent node's last figures do not make it over.
        let stale = [reading("a", 200, 0.99), reading("b", 10, 0.2)];
        let found = findings(&stale, LIMITS, NOW);
        assert_eq!(found.reported, set([Condition::Silent(node("a"))]));
    }

    fn book(entries: &[(&str, i64, bool)]) -> BTreeMap<String, String> {
        (entries.iter())
            .map(|(key, ago, raised)| {
                let record = Record {
                    sent: NOW - ago,
                    raised: *raised,
                };
                (key.to_string(), record.encode())
            })
            .collect()
    }

    #[test]
    fn mails_are_raised_repeated_after_the_grace_period_and_cleared() {
        let down = Findings {
            reported: set([Condition::Down]),
            implied: BTreeSet::new(),
        };
        let (notices, _) = plan(&down, &book(&[]), NOW, 1800);
        assert_eq!(notices, [(Condition::Down, Notice::Raised)]);
        let (notices, _) = plan(&down, &book(&[("down", 60, true)]), NOW, 1800);
        assert!(notices.is_empty(), "within the grace period");
        let (notices, _) = plan(&down, &book(&[("down", 1800, true)]), NOW, 1800);
        assert_eq!(notices, [(Condition::Down, Notice::Still)]);
        // Over: one "cleared", then the record is kept until its grace period ends.
        let fine = Findings::default();
        let (notices, _) = plan(&fine, &book(&[("down", 60, true)]), NOW, 1800);
        assert_eq!(notices, [(Condition::Down, Notice::Cleared)]);
        let (notices, forget) = plan(&fine, &book(&[("down", 60, false)]), NOW, 1800);
        assert!(notices.is_empty() && forget.is_empty());
        let (_, forget) = plan(
            &fine,
            &book(&[("down", 1800, false), ("junk", 1, true)]),
            NOW,
            1800,
        );
        assert_eq!(forget, ["down", "junk"]);
        // Back within the grace period of its "cleared": not mailed again (a flapping node).
        let (notices, _) = plan(&down, &book(&[("down", 60, false)]), NOW, 1800);
        assert!(notices.is_empty());
    }

    #[test]
    fn what_a_region_alert_implies_is_not_cleared() {
        let down = Findings {
            reported: set([Condition::Down]),
            implied: set([Condition::Silent(node("a"))]),
        };
        let (notices, _) = plan(&down, &book(&[("silent:a", 60, true)]), NOW, 1800);
        assert_eq!(notices, [(Condition::Down, Notice::Raised)]);
        assert_eq!(
            Condition::from_key(&Condition::Over(node("x:80/1")).key()),
            Some(Condition::Over(node("x:80/1")))
        );
    }
}
