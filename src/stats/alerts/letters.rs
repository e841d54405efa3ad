//! What the alert mails say: one letter per kind of notice (the region down; overloaded; the
//! silent nodes; the nodes over; what cleared), naming the nodes and their figures.

use std::fmt::Write;

use super::rules::{Condition, Limits, Notice, Reading, SILENT_PERIODS};
use crate::model::utc;

/// A mail's subject and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Letter {
    pub subject: String,
    pub body: String,
}

/// What a check has to say, as letters, each with the notices it carries (recorded once it
/// was sent).
pub struct Writer<'a> {
    pub region: &'a str,
    pub readings: &'a [Reading],
    pub limits: Limits,
    pub now: i64,
}

/// The kinds of letter, in the order they are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Down,
    Overload,
    Silent,
    Over,
    Cleared,
}

fn kind(condition: &Condition, notice: Notice) -> Kind {
    match (condition, notice) {
        (_, Notice::Cleared) => Kind::Cleared,
        (Condition::Down, _) => Kind::Down,
        (Condition::Overload, _) => Kind::Overload,
        (Condition::Silent(_), _) => Kind::Silent,
        (Condition::Over(_), _) => Kind::Over,
    }
}

impl Writer<'_> {
    pub fn letters(
        &self,
        notices: &[(Condition, Notice)],
    ) -> Vec<(Letter, Vec<(Condition, Notice)>)> {
        let mut kinds: Vec<Kind> = notices.iter().map(|(c, n)| kind(c, *n)).collect();
        kinds.sort();
        kinds.dedup();
        kinds
            .into_iter()
            .map(|k| {
                let carried: Vec<(Condition, Notice)> = (notices.iter())
                    .filter(|(c, n)| kind(c, *n) == k)
                    .cloned()
                    .collect();
                (self.letter(k, &carried), carried)
            })
            .collect()
    }

    fn letter(&self, kind: Kind, notices: &[(Condition, Notice)]) -> Letter {
        let nodes: Vec<&str> = notices.iter().filter_map(|(c, _)| node_of(c)).collect();
        let (subject, mut body) = match kind {
            Kind::Down => self.down(),
            Kind::Overload => self.overload(),
            Kind::Silent => self.silent(&nodes),
            Kind::Over => self.over(&nodes),
            Kind::Cleared => {
                let lines: Vec<String> = notices.iter().map(|(c, _)| self.cleared(c)).collect();
                ("cleared".to_owned(), format!("{}\n", lines.join("\n")))
            }
        };
        let _ = write!(
            body,
            "\nChecked at {} (UTC) by the region's alert watch. The same alert is not mailed \
             again within the grace period.\n",
            utc(self.now)
        );
        let still = match notices.iter().all(|(_, n)| *n == Notice::Still) {
            true => "Still: ",
            false => "",
        };
        let subject = match kind {
            Kind::Down => format!("{still}relaybox region \"{}\" {subject}", self.region),
            _ => format!("{still}relaybox region \"{}\": {subject}", self.region),
        };
        Letter { subject, body }
    }

    /// Each kind's subject (after the region) and text.
    fn down(&self) -> (String, String) {
        let every = self.readings.iter().map(|r| r.node.as_str());
        let body = format!(
            "No node of region \"{}\" has written statistics for {}.\n\n\
             Nodes and their last samples:\n{}",
            self.region,
            self.silence(),
            self.list(every, |r| self.last_sample(r))
        );
        ("seems to be down".to_owned(), body)
    }

    fn overload(&self) -> (String, String) {
        let over: Vec<&str> = (self.readings.iter())
            .filter(|r| r.cpu.is_some_and(|cpu| cpu > self.limits.over))
            .map(|r| r.node.as_str())
            .collect();
        let (n, of) = (over.len(), self.readings.len());
        let body = format!(
            "CPU loading is more than {} of one core on {n} of the region's {of} nodes (the \
             alert threshold is {} of them).\n\n{}",
            percent(self.limits.over),
            percent(self.limits.threshold),
            self.list(over.into_iter(), |r| self.cpu(r))
        );
        (format!("{n} of {of} nodes overloaded"), body)
    }

    fn silent(&self, nodes: &[&str]) -> (String, String) {
        let may_be = if nodes.len() == 1 {
            "it may be"
        } else {
            "they may be"
        };
        let body = format!(
            "No statistics for {} from {}; {may_be} down or cut off from the store.\n\n{}",
            self.silence(),
            these(nodes),
            self.list(nodes.iter().copied(), |r| self.last_sample(r))
        );
        (format!("{} silent", counted(nodes)), body)
    }

    fn over(&self, nodes: &[&str]) -> (String, String) {
        let body = format!(
            "CPU loading is more than {} of one core on {}.\n\n{}",
            percent(self.limits.over),
            these(nodes),
            self.list(nodes.iter().copied(), |r| self.cpu(r))
        );
        (format!("{} overloaded", counted(nodes)), body)
    }

    fn cleared(&self, condition: &Condition) -> String {
        match condition {
            Condition::Down => {
                let alive = (self.readings.iter())
                    .filter(|r| !self.is_silent(r))
                    .count();
                format!(
                    "- The region is up again: {alive} of its {} nodes write statistics.",
                    self.readings.len()
                )
            }
            Condition::Overload => "- The region is no longer overloaded.".to_owned(),
            Condition::Silent(node) => match self.reading(node) {
                Some(_) => format!("- {node} writes statistics again."),
                None => format!("- {node} has left the region's statistics."),
            },
            Condition::Over(node) => format!(
                "- {node} is no longer overloaded{}.",
                self.reading(node)
                    .and_then(|r| r.cpu)
                    .map_or(String::new(), |cpu| format!(" (CPU {})", percent(cpu)))
            ),
        }
    }

    fn reading(&self, node: &str) -> Option<&Reading> {
        self.readings.iter().find(|r| r.node == node)
    }

    fn is_silent(&self, reading: &Reading) -> bool {
        self.now - reading.last_sample >= SILENT_PERIODS * self.limits.period as i64
    }

    fn silence(&self) -> String {
        let periods = SILENT_PERIODS as u64;
        format!("{periods} periods ({} s)", periods * self.limits.period)
    }

    fn last_sample(&self, reading: &Reading) -> String {
        format!(
            "last sample {} ({} s ago)",
            utc(reading.last_sample),
            self.now - reading.last_sample
        )
    }

    fn cpu(&self, reading: &Reading) -> String {
        reading.cpu.map_or("CPU not measured".to_owned(), |cpu| {
            format!("CPU {}", percent(cpu))
        })
    }

    /// One line per node: its name and what `detail` says of it.
    fn list<'n>(
        &self,
        nodes: impl Iterator<Item = &'n str>,
        detail: impl Fn(&Reading) -> String,
    ) -> String {
        let mut text = String::new();
        for node in nodes {
            let said = self.reading(node).map_or("no figures".to_owned(), &detail);
            let _ = writeln!(text, "  {node}: {said}");
        }
        text
    }
}

fn node_of(condition: &Condition) -> Option<&str> {
    match condition {
        Condition::Silent(node) | Condition::Over(node) => Some(node),
        Condition::Down | Condition::Overload => None,
    }
}

/// `node a:80/1` or `3 nodes`.
fn counted(nodes: &[&str]) -> String {
    match nodes {
        [one] => format!("node {one}"),
        _ => format!("{} nodes", nodes.len()),
    }
}

fn these(nodes: &[&str]) -> &'static str {
    if nodes.len() == 1 {
        "this node"
    } else {
        "these nodes"
    }
}

/// `0.9` → `90 %`, `0.955` → `95.5 %`.
fn percent(share: f64) -> String {
    let text = format!("{:.1}", share * 100.0);
    format!("{} %", text.trim_end_matches(".0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_name_the_nodes_and_their_figures() {
        let readings = [
            Reading {
                node: "eu:80/8081".to_owned(),
                last_sample: 940,
                cpu: Some(0.951),
            },
            Reading {
                node: "eu:80/8082".to_owned(),
                last_sample: 700,
                cpu: Some(0.1),
            },
        ];
        let writer = Writer {
            region: "eu",
            readings: &readings,
            limits: Limits {
                period: 60,
                over: 0.9,
                threshold: 0.75,
            },
            now: 1000,
        };
        let notices = [
            (Condition::Over("eu:80/8081".to_owned()), Notice::Raised),
            (Condition::Silent("eu:80/8082".to_owned()), Notice::Still),
            (Condition::Down, Notice::Cleared),
        ];
        let letters = writer.letters(&notices);
        let subjects: Vec<&str> = letters.iter().map(|(l, _)| l.subject.as_str()).collect();
        assert_eq!(
            subjects,
            [
                "Still: relaybox region \"eu\": node eu:80/8082 silent",
                "relaybox region \"eu\": node eu:80/8081 overloaded",
                "relaybox region \"eu\": cleared",
            ]
        );
        let over = &letters[1].0.body;
        assert!(over.contains("more than 90 % of one core"), "{over}");
        assert!(over.contains("eu:80/8081: CPU 95.1 %"), "{over}");
        let silent = &letters[0].0.body;
        assert!(
            silent.contains("last sample 1970-01-01T00:11:40Z (300 s ago)"),
            "{silent}"
        );
        assert!(letters[2].0.body.contains("1 of its 2 nodes"));
        assert_eq!(letters[1].1, [notices[0].clone()]);
    }
}
