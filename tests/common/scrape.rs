//! `GET /metrics` read as a scraper would: every line checked against Prometheus's text
//! format (version 0.0.4), every sample under a `# TYPE`, histograms whole; then the samples
//! by series.

use std::collections::{BTreeMap, HashMap};

use super::TestNode;

/// One scrape's samples, by series (`name{label="value",…}` as written).
#[derive(Debug)]
pub struct Scrape {
    pub text: String,
    samples: BTreeMap<String, f64>,
}

impl Scrape {
    pub fn of(node: &TestNode) -> Self {
        let answer = node.client().get(node.url("/metrics")).send().unwrap();
        assert_eq!(answer.status(), 200);
        let format = answer.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(format.starts_with("text/plain; version=0.0.4"), "{format}");
        Scrape::parse(answer.text().unwrap())
    }

    pub fn parse(text: String) -> Self {
        let mut types: HashMap<String, String> = HashMap::new();
        let mut samples = BTreeMap::new();
        let mut in_order: Vec<(&str, f64)> = Vec::new();
        for line in text.lines() {
            if let Some(comment) = line.strip_prefix("# ") {
                let mut parts = comment.splitn(3, ' ');
                let (what, name, rest) = (parts.next(), parts.next(), parts.next());
                let (Some(what), Some(name), Some(rest)) = (what, name, rest) else {
                    panic!("a comment without name and text: {line:?}")
                };
                assert!(valid_name(name), "{line:?}");
                match what {
                    "HELP" => assert!(!rest.is_empty(), "{line:?}"),
                    "TYPE" => {
                        let known = ["counter", "gauge", "histogram", "summary", "untyped"];
                        assert!(known.contains(&rest), "{line:?}");
                        assert!(types.insert(name.to_owned(), rest.to_owned()).is_none());
                    }
                    _ => panic!("an unknown comment: {line:?}"),
                }
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect("a sample has a value");
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                v => v
                    .parse()
                    .unwrap_or_else(|_| panic!("{line:?}: not a number")),
            };
            let name = series.split('{').next().unwrap();
            assert!(valid_name(name), "{line:?}");
            if let Some(labels) = series.strip_prefix(name) {
                assert!(labels.is_empty() || valid_labels(labels), "{line:?}");
            }
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .filter(|family| types.get(*family).is_some_and(|t| t == "histogram"))
                .unwrap_or(name);
            assert!(types.contains_key(family), "{line:?}: no # TYPE before it");
            assert!(
                samples.insert(series.to_owned(), value).is_none(),
                "{line:?} twice"
            );
            in_order.push((series, value));
        }
        check_histograms(&types, &in_order, &samples);
        Scrape { text, samples }
    }

    /// A series' value; 0 when it is not there (a counter not yet counted).
    pub fn value(&self, series: &str) -> f64 {
        self.samples.get(series).copied().unwrap_or(0.0)
    }

    /// Every series of `family` (by name prefix), for looking through.
    pub fn series(&self, family: &str) -> Vec<(&str, f64)> {
        (self.samples.iter())
            .filter(|(series, _)| series.starts_with(family))
            .map(|(series, value)| (series.as_str(), *value))
            .collect()
    }
}

/// Each histogram's buckets, in the order written, rise to the last (`+Inf`), which is its
/// count.
fn check_histograms(
    types: &HashMap<String, String>,
    in_order: &[(&str, f64)],
    samples: &BTreeMap<String, f64>,
) {
    for (family, _) in types.iter().filter(|(_, t)| *t == "histogram") {
        let mut last: HashMap<&str, f64> = HashMap::new();
        let bucket = format!("{family}_bucket{{");
        for (series, value) in in_order {
            let Some(labels) = series.strip_prefix(&bucket) else {
                continue;
            };
            let (others, le) = labels.rsplit_once("le=").unwrap();
            let before = last.insert(others, *value).unwrap_or(0.0);
            assert!(*value >= before, "{series} falls");
            if le == "\"+Inf\"}" {
                let count = format!("{family}_count{}", braces(others));
                assert_eq!(samples.get(&count), Some(value), "{count}");
            }
        }
    }
}

/// `{a="x",` (the labels before `le`) as the labels of the histogram's `_count`.
fn braces(others: &str) -> String {
    let inner = others.trim_start_matches('{').trim_end_matches(',');
    if inner.is_empty() {
        String::new()
    } else {
        format!("{{{inner}}}")
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// `{name="value",…}`, values without raw quotes or newlines.
fn valid_labels(labels: &str) -> bool {
    let Some(inner) = labels.strip_prefix('{').and_then(|l| l.strip_suffix('}')) else {
        return false;
    };
    inner.split("\",").all(|pair| {
        let pair = pair.strip_suffix('"').unwrap_or(pair);
        pair.split_once("=\"")
            .is_some_and(|(name, value)| valid_name(name) && !value.contains(['"', '\n']))
    })
}
