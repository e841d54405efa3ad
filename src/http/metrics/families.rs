//! A scrape's figures as metric families, and their encoding by `prometheus-client`: the
//! figures are read first (some from the store), then written out in one go by
//! [`Families::encode`].

use std::fmt::Error;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::meter::Snapshot;

/// A label set: names fixed by the code, values never a queue, org or customer.
pub type Labels = Vec<(&'static str, String)>;

/// A figure: a count, or a measure in seconds or bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    Whole(i64),
    Real(f64),
}

impl From<u64> for Value {
    fn from(n: u64) -> Self {
        Value::Whole(i64::try_from(n).unwrap_or(i64::MAX))
    }
}

impl From<usize> for Value {
    fn from(n: usize) -> Self {
        Value::from(n as u64)
    }
}

impl From<i64> for Value {
    fn from(n: i64) -> Self {
        Value::Whole(n)
    }
}

impl From<bool> for Value {
    fn from(yes: bool) -> Self {
        Value::Whole(i64::from(yes))
    }
}

impl From<f64> for Value {
    fn from(x: f64) -> Self {
        Value::Real(x)
    }
}

#[derive(Debug)]
enum Values {
    Counter(Vec<(Labels, Value)>),
    Gauge(Vec<(Labels, Value)>),
    Histogram(Vec<(Labels, Snapshot)>),
}

#[derive(Debug)]
struct Family {
    name: &'static str,
    help: &'static str,
    values: Values,
}

/// Everything one scrape reports.
#[derive(Debug, Default)]
pub struct Families(Vec<Family>);

impl Families {
    /// A counter without labels; its name gets `_total` when written.
    pub fn counter(&mut self, name: &'static str, help: &'static str, value: impl Into<Value>) {
        self.counters(name, help, vec![(Vec::new(), value.into())]);
    }

    pub fn counters(
        &mut self,
        name: &'static str,
        help: &'static str,
        values: Vec<(Labels, Value)>,
    ) {
        self.push(name, help, Values::Counter(values));
    }

    /// A gauge without labels.
    pub fn gauge(&mut self, name: &'static str, help: &'static str, value: impl Into<Value>) {
        self.gauges(name, help, vec![(Vec::new(), value.into())]);
    }

    pub fn gauges(&mut self, name: &'static str, help: &'static str, values: Vec<(Labels, Value)>) {
        self.push(name, help, Values::Gauge(values));
    }

    pub fn histograms(
        &mut self,
        name: &'static str,
        help: &'static str,
        values: Vec<(Labels, Snapshot)>,
    ) {
        self.push(name, help, Values::Histogram(values));
    }

    /// Adds a family that has values: one without any is left out, descriptor and all.
    fn push(&mut self, name: &'static str, help: &'static str, values: Values) {
        let empty = match &values {
            Values::Counter(v) | Values::Gauge(v) => v.is_empty(),
            Values::Histogram(v) => v.is_empty(),
        };
        if !empty {
            self.0.push(Family { name, help, values });
        }
    }

    /// The families in Prometheus's text format (version 0.0.4).
    pub fn encode(self) -> Result<String, Error> {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(self));
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &registry)?;
        Ok(text)
    }
}

impl Collector for Families {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), Error> {
        for family in &self.0 {
            let kind = match family.values {
                Values::Counter(_) => MetricType::Counter,
                Values::Gauge(_) => MetricType::Gauge,
                Values::Histogram(_) => MetricType::Histogram,
            };
            let mut metric = encoder.encode_descriptor(family.name, family.help, None, kind)?;
            match &family.values {
                Values::Counter(values) => each(&mut metric, values, |m, v| match *v {
                    // A count is never below 0.
                    Value::Whole(n) => {
                        m.encode_counter::<NoLabelSet, _, f64>(&n.unsigned_abs(), None)
                    }
                    Value::Real(x) => m.encode_counter::<NoLabelSet, _, f64>(&x, None),
                })?,
                Values::Gauge(values) => each(&mut metric, values, |m, v| match v {
                    Value::Whole(n) => m.encode_gauge(n),
                    Value::Real(x) => m.encode_gauge(x),
                })?,
                Values::Histogram(values) => each(&mut metric, values, |m, s| {
                    m.encode_histogram::<NoLabelSet>(s.sum, s.count, &s.buckets, None)
                })?,
            }
        }
        Ok(())
    }
}

/// Writes each labelled value of a family with `write`.
fn each<T>(
    metric: &mut MetricEncoder,
    values: &[(Labels, T)],
    write: impl Fn(&mut MetricEncoder, &T) -> Result<(), Error>,
) -> Result<(), Error> {
    for (labels, value) in values {
        if labels.is_empty() {
            write(metric, value)?;
        } else {
            write(&mut metric.encode_family(labels)?, value)?;
        }
    }
    Ok(())
}
