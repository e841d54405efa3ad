//! `GET /metrics`: the node's figures in Prometheus's text format, for a scraper. Served by the
//! admin rules (its listener, its token) and by every node whatever its role: a standby or a
//! starting node reports what it has (process, connections, role) and the rest once it serves.
//!
//! The counters are the statistics' own ([`crate::stats::counters`]) read as totals since
//! the node started; requests by route are counted here ([`requests`]), store calls by the
//! store ([`crate::meter::CallMeter`]). No label carries a queue, org or customer: a label
//! value is a route kind, a status class, a role, a kind of connection or a Redis server.

mod families;
mod requests;

use std::time::Duration;

use actix_web::HttpResponse;
use actix_web::http::header::{CONTENT_TYPE, HeaderValue};

use self::families::{Families, Value};
pub use self::requests::record;
use super::AppState;
use super::front::Front;
use crate::replication::State;
use crate::stats::counters::{Count, Counters};
use crate::stats::{counters, process};

/// How long a scrape waits for the store's figure (the customer-ID pool) before leaving it out.
const STORE_PATIENCE: Duration = Duration::from_secs(1);

pub async fn metrics(front: &Front) -> HttpResponse {
    let mut families = Families::default();
    requests::report(&mut families);
    inbox(&mut families);
    relay(&mut families);
    node(&mut families, front);
    if let Some(state) = front.serving() {
        store(&mut families, state).await;
    }
    match families.encode() {
        Ok(text) => {
            let mut answer = HttpResponse::Ok().body(text);
            let format = HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8");
            answer.headers_mut().insert(CONTENT_TYPE, format);
            answer
        }
        Err(_) => HttpResponse::InternalServerError().body("the metrics could not be written"),
    }
}

/// Label sets of one label.
fn by<V: Into<Value> + Copy>(
    label: &'static str,
    values: &[(&str, V)],
) -> Vec<(families::Labels, Value)> {
    (values.iter())
        .map(|(value, n)| (vec![(label, (*value).to_owned())], (*n).into()))
        .collect()
}

/// The inbox's counters exported as they are: name, help, the counter.
type Exported = (&'static str, &'static str, fn(&Counters) -> &Count);

const INBOX: [Exported; 6] = [
    (
        "relaybox_transactions_provisioned",
        "Transactions provisioned: each pushes one message into one or more queues.",
        |c| &c.provisioned,
    ),
    (
        "relaybox_messages_pushed",
        "Messages pushed into queues.",
        |c| &c.pushed,
    ),
    (
        "relaybox_messages_popped",
        "Messages popped (plain and reliable pops, subscriptions).",
        |c| &c.popped,
    ),
    (
        "relaybox_messages_acked",
        "Reliable deliveries acknowledged.",
        |c| &c.acked,
    ),
    (
        "relaybox_messages_returned",
        "Reliable deliveries put back in their queue, unacknowledged after timeoutACK.",
        |c| &c.returned,
    ),
    (
        "relaybox_messages_expired",
        "Queue entries dropped because their transaction expired.",
        |c| &c.expired,
    ),
];

fn inbox(f: &mut Families) {
    let c = counters();
    for (name, help, count) in INBOX {
        f.counter(name, help, count(c).total());
    }
    let callbacks = [
        ("delivered", c.callbacks_delivered.total()),
        ("failed", c.callbacks_failed.total()),
    ];
    f.counters(
        "relaybox_callbacks",
        "Delivery callbacks, by outcome.",
        by("outcome", &callbacks),
    );
}

fn relay(f: &mut Families) {
    let c = counters();
    let interactions = [
        ("started", c.interactions_started.total()),
        ("ended", c.interactions_ended.total()),
        ("failed", c.interactions_failed.total()),
    ];
    f.counters(
        "relaybox_relay_interactions",
        "App requests relayed to a desktop: started, answered to their end, failed.",
        by("outcome", &interactions),
    );
    f.counter(
        "relaybox_relay_interaction_seconds",
        "Time the completed interactions took, from the app's request to its answer's end.",
        c.duration_ms.total() as f64 / 1000.0,
    );
    let bytes = [
        ("to_desktop", c.bytes_to_desktops.total()),
        ("to_app", c.bytes_to_apps.total()),
    ];
    f.counters(
        "relaybox_relay_bytes",
        "Body bytes relayed, by direction.",
        by("direction", &bytes),
    );
    f.counter(
        "relaybox_desktop_polls_waited",
        "Desktop polls that had to wait for an app's request.",
        c.agents_waited.total(),
    );
}

fn node(f: &mut Families, front: &Front) {
    let c = counters();
    f.gauges(
        "relaybox_build_info",
        "The running build, by version: always 1.",
        by("version", &[(env!("CARGO_PKG_VERSION"), true)]),
    );
    let held = [
        ("pop_or_subscription", c.held.now()),
        ("desktop_poll", c.agents.now()),
        ("app_request", c.interactions.now()),
    ];
    f.gauges(
        "relaybox_held_connections",
        "Requests held open, waiting for something to happen, by kind.",
        by("kind", &held),
    );
    let (open, most) = front.connections.count();
    f.gauge(
        "relaybox_connections_open",
        "Client connections open.",
        open,
    );
    if let Some(most) = most {
        f.gauge(
            "relaybox_connections_most",
            "Client connections the node holds before it refuses new waits (its descriptors).",
            most,
        );
    }
    let role = front.replication.state();
    let roles: Vec<_> = (State::ROLES.iter())
        .map(|name| (*name, Value::from(*name == role.role())))
        .collect();
    f.gauges(
        "relaybox_role",
        "The node's replication role: 1 for the one it has.",
        by("role", &roles),
    );
    if let Some(state) = front.serving() {
        f.gauge(
            "relaybox_draining",
            "1 while the node is drained (takes no long polls).",
            state.inbox.draining(),
        );
    }
    if let Some(cpu) = process::cpu_seconds() {
        f.counter("process_cpu_seconds", "CPU time, user and system.", cpu);
    }
    if let Some(rss) = process::rss_kib() {
        f.gauge(
            "process_resident_memory_bytes",
            "Resident memory.",
            rss * 1024,
        );
    }
    if let Some(open) = process::open_files() {
        f.gauge("process_open_fds", "Descriptors open.", open);
    }
    if let Some(limit) = process::open_file_limit() {
        f.gauge("process_max_fds", "The open-file limit.", limit);
    }
}

async fn store(f: &mut Families, state: &AppState) {
    let meters = state.store.meters();
    let took = (meters.iter())
        .map(|(server, meter)| (vec![("server", server.clone())], meter.latency.snapshot()))
        .collect();
    f.histograms(
        "relaybox_store_call_duration_seconds",
        "Time Redis took to answer this node's calls (a command, script or pipeline), by server.",
        took,
    );
    let errors = (meters.iter())
        .map(|(server, meter)| {
            (
                vec![("server", server.clone())],
                Value::from(meter.errors()),
            )
        })
        .collect();
    f.counters(
        "relaybox_store_errors",
        "This node's calls to Redis that failed (unreachable, timed out, refused), by server.",
        errors,
    );
    if let Some(left) = state.ranges.left().await {
        f.gauge(
            "relaybox_customer_ids_left",
            "Customer IDs this node can still hand out from its blocks.",
            left,
        );
    }
    // The region's pool, one read; left out while the store does not answer.
    if let Ok(Ok(pool)) = tokio::time::timeout(STORE_PATIENCE, state.store.pool()).await {
        f.gauge(
            "relaybox_customer_id_pool_left",
            "Customer IDs the region's pool has not handed out in blocks yet.",
            pool.map_or(0, |pool| pool.len()),
        );
    }
}
