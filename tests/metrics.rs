//! `GET /metrics`: scraped and parsed as Prometheus would, with its counters moving as traffic
//! goes through the node, and no label telling a queue or customer apart.

mod common;

use std::io::Read;
use std::time::{Duration, Instant};

use common::relay::{FAST, app, connect, desktop, reply};
use common::scrape::Scrape;
use common::{Backend, RedisServer, TestNode};
use serde_json::json;

/// Scrapes until `check` holds (for up to 5 s): counters are read as the answers go out, so a
/// client can see its answer a moment before the count.
fn scrape_until(node: &TestNode, what: &str, check: impl Fn(&Scrape) -> bool) -> Scrape {
    let started = Instant::now();
    loop {
        let scrape = Scrape::of(node);
        if check(&scrape) {
            return scrape;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{what}:\n{}",
            scrape.text
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Pushes, pops, reliable pops and acks, a bad request and a held pop, each counted where it
/// belongs; queue names appear nowhere.
fn inbox_traffic_moves_the_counters(backend: Backend) {
    let node = TestNode::start(backend);
    let before = Scrape::of(&node);
    let queue = "q-private-4711";
    for i in 0..3 {
        node.push(&[queue], &format!("m{i}"), "H");
    }
    assert_eq!(node.pop(queue, "max=3&timeout=1").data.len(), 3);
    node.push(&[queue], "reliable", "L");
    let (status, popped) = node.post(&format!("/queue/{queue}/poprel?timeout=1"), &json!({}));
    assert_eq!(status, 200, "{popped}");
    let (status, acked) = node.post(
        &format!("/queue/{queue}/ack"),
        &json!({"transactions": popped["transactions"]}),
    );
    assert_eq!(status, 200, "{acked}");
    let (status, _) = node.post("/trans", &json!({"payload": "no queue"}));
    assert_eq!(status, 400);
    let _held = node.hold_pop(queue);

    let held = r#"relaybox_held_connections{kind="pop_or_subscription"}"#;
    let after = scrape_until(&node, "the held pop", |s| s.value(held) == 1.0);
    let rose = |series: &str| after.value(series) - before.value(series);
    assert_eq!(rose("relaybox_messages_pushed_total"), 4.0);
    assert_eq!(rose("relaybox_messages_popped_total"), 4.0);
    assert_eq!(rose("relaybox_messages_acked_total"), 1.0);
    assert_eq!(rose("relaybox_transactions_provisioned_total"), 4.0);
    let provisions = r#"relaybox_http_requests_total{route="provision",status="2xx"}"#;
    assert_eq!(rose(provisions), 4.0);
    let refused = r#"relaybox_http_requests_total{route="provision",status="4xx"}"#;
    assert_eq!(rose(refused), 1.0);
    assert_eq!(
        rose(r#"relaybox_http_requests_total{route="ack",status="2xx"}"#),
        1.0
    );
    let answered = r#"relaybox_http_request_duration_seconds_count{route="provision"}"#;
    assert_eq!(rose(answered), 5.0, "every provision timed, refused or not");
    assert!(after.value(r#"relaybox_role{role="primary"}"#) == 1.0);
    assert!(after.value("process_resident_memory_bytes") > 1e6);
    assert!(after.value("process_open_fds") > 0.0);
    assert!(after.value("relaybox_connections_open") >= 1.0);
    assert!(!after.text.contains(queue), "a queue name in a label");
}

/// A relayed request and its reply: an interaction started and ended, its bytes both ways;
/// the customer's id appears nowhere.
fn relay_traffic_moves_the_counters(backend: Backend) {
    let node = TestNode::start_with(backend, &FAST);
    let before = Scrape::of(&node);
    let customer = "1234567";
    connect(&node, customer);
    let desk = desktop(&node, customer);
    let asking = app(&node, customer, b"twelve bytes".to_vec());
    let (id, mut request) = desk.join().unwrap();
    let mut body = String::new();
    request.read_to_string(&mut body).unwrap();
    reply(
        &node,
        customer,
        &id,
        "200",
        b"a reply of 21 bytes..".to_vec(),
    );
    assert_eq!(asking.join().unwrap().text(), "a reply of 21 bytes..");

    let ended = r#"relaybox_relay_interactions_total{outcome="ended"}"#;
    let after = scrape_until(&node, "the interaction ended", |s| {
        s.value(ended) - before.value(ended) == 1.0
    });
    let rose = |series: &str| after.value(series) - before.value(series);
    assert_eq!(
        rose(r#"relaybox_relay_interactions_total{outcome="started"}"#),
        1.0
    );
    assert_eq!(
        rose(r#"relaybox_relay_bytes_total{direction="to_desktop"}"#),
        12.0
    );
    assert_eq!(
        rose(r#"relaybox_relay_bytes_total{direction="to_app"}"#),
        21.0
    );
    assert!(rose("relaybox_relay_interaction_seconds_total") > 0.0);
    assert!(after.value("relaybox_customer_ids_left") > 0.0);
    assert!(rose(r#"relaybox_http_requests_total{route="relay_agent",status="2xx"}"#) >= 1.0);
    assert!(!after.text.contains(customer), "a customer id in a label");
}

crate::every_store!(
    inbox_traffic_moves_the_counters,
    relay_traffic_moves_the_counters
);

/// On Redis, the node's calls are timed by server, and those that fail are counted.
#[test]
fn store_calls_are_timed_and_failures_counted_by_server() {
    if common::skip_redis() {
        return;
    }
    let mut redis = RedisServer::start();
    let node = TestNode::on_redis(&[&redis], &[("RELAYBOX__STORE__REDIS_RECOVERY", "1")]);
    let before = Scrape::of(&node);
    let counts = before.series("relaybox_store_call_duration_seconds_count");
    let [(calls, started)] = counts.as_slice() else {
        panic!("one server, one series: {counts:?}")
    };
    assert!(calls.contains(&redis.url()), "named by its URL: {calls}");
    assert!(*started > 0.0, "the start's calls are counted");
    let (calls, errors) = (
        calls.to_string(),
        calls.replace("call_duration_seconds_count", "errors_total"),
    );
    node.push(&["q"], "m", "H");
    let after = Scrape::of(&node);
    assert!(after.value(&calls) > before.value(&calls));
    assert_eq!(after.value(&errors), 0.0);
    assert!(after.value("relaybox_customer_id_pool_left") > 0.0);

    redis.kill();
    let (status, _) = node.post(
        "/trans",
        &json!({"payload": "m", "priority": "H", "queue": [{"id": "q"}]}),
    );
    assert_eq!(status, 503);
    let failed = Scrape::of(&node);
    assert!(
        failed.value(&errors) > 0.0,
        "{:?}",
        failed.series("relaybox_store")
    );
    assert!(failed.value(r#"relaybox_http_requests_total{route="provision",status="5xx"}"#) >= 1.0);
    assert!(
        !failed.text.contains("relaybox_customer_id_pool_left"),
        "left out while the store does not answer"
    );
}
