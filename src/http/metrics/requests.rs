//! The node's HTTP requests by route kind: how many were answered in each status class, and
//! how long their answers took (until the head of the answer; a stream's body goes on after).

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::families::Families;
use crate::http::route_kind::RouteKind;
use crate::meter::{Histogram, REQUEST_BOUNDS};

const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

struct RouteFigures {
    answers: [AtomicU64; 5],
    took: Histogram,
}

/// One entry per route kind, at the kind's index.
static ROUTES: LazyLock<Box<[RouteFigures]>> = LazyLock::new(|| {
    (RouteKind::ALL.iter())
        .map(|_| RouteFigures {
            answers: Default::default(),
            took: Histogram::new(REQUEST_BOUNDS),
        })
        .collect()
});

/// Counts a request of `kind` answered with `status` after `took`.
pub fn record(kind: RouteKind, status: u16, took: Duration) {
    let figures = &ROUTES[kind as usize];
    if let Some(class) = (status / 100).checked_sub(1).filter(|c| *c < 5) {
        figures.answers[class as usize].fetch_add(1, Ordering::Relaxed);
    }
    figures.took.observe(took);
}

/// The families of the requests, for routes that had any.
pub fn report(families: &mut Families) {
    let mut answers = Vec::new();
    let mut took = Vec::new();
    for (kind, figures) in RouteKind::ALL.iter().zip(ROUTES.iter()) {
        let snapshot = figures.took.snapshot();
        if snapshot.count == 0 {
            continue;
        }
        for (class, n) in CLASSES.iter().zip(&figures.answers) {
            let n = n.load(Ordering::Relaxed);
            if n > 0 {
                let labels = vec![
                    ("route", kind.name().to_owned()),
                    ("status", (*class).to_owned()),
                ];
                answers.push((labels, n.into()));
            }
        }
        took.push((vec![("route", kind.name().to_owned())], snapshot));
    }
    families.counters(
        "relaybox_http_requests",
        "HTTP requests answered, by route and status class.",
        answers,
    );
    families.histograms(
        "relaybox_http_request_duration_seconds",
        "Time from a request's arrival to its answer's head, by route (held polls included).",
        took,
    );
}
