//! Delayed provisioning (`delay`): validated at once, a real transaction id, pushed when due,
//! durable across restarts.

mod common;

use std::time::{Duration, Instant};

use common::{Backend, RedisServer, TestNode};
use serde_json::json;

fn delayed_message_arrives_when_due(backend: Backend) {
    let node = TestNode::start(backend);
    let (status, reply) = node.post(
        "/trans?delay=1",
        &json!({"payload": "later", "priority": "H", "queue": [{"id": "d1"}]}),
    );
    assert_eq!(status, 200, "{reply}");
    let id = reply["data"].as_str().unwrap().to_owned();
    assert_ne!(id, "unknown-delayed", "a real id, unlike PopBox");
    let sent = Instant::now();
    assert_eq!(node.get(&format!("/trans/{id}")).1["payload"], "later");
    assert_eq!(node.state(&id, "d1"), "Pending");
    assert!(
        node.peek("d1", "").transactions.is_empty(),
        "not pushed yet"
    );

    let popped = node.pop("d1", "timeout=5");
    assert_eq!(popped.transactions, [id]);
    let waited = sent.elapsed();
    assert!(
        waited >= Duration::from_millis(800) && waited < Duration::from_secs(3),
        "{waited:?}"
    );

    // The body may carry it too.
    let id = node.push_body(json!({
        "payload": "p", "priority": "L", "queue": [{"id": "d2"}], "delay": 0.5,
    }));
    assert!(node.peek("d2", "").transactions.is_empty());
    assert_eq!(node.pop("d2", "timeout=3").transactions, [id]);
}

fn delay_is_validated_first(backend: Backend) {
    let node = TestNode::start(backend);
    let (status, reply) = node.post(
        "/trans?delay=5",
        &json!({"payload": "p", "priority": "X", "queue": [{"id": "d3"}]}),
    );
    assert_eq!(
        (status, reply),
        (400, json!({"errors": ["invalid priority"]}))
    );
    for delay in ["-1", "soon"] {
        let (status, reply) = node.post(
            &format!("/trans?delay={delay}"),
            &json!({"payload": "p", "priority": "H", "queue": [{"id": "d3"}]}),
        );
        assert_eq!(status, 400, "{delay}");
        assert!(
            reply["errors"][0]
                .as_str()
                .unwrap()
                .starts_with("invalid delay")
        );
    }
    assert!(
        node.pop("d3", "timeout=2").transactions.is_empty(),
        "nothing stored"
    );
}

#[test]
fn a_delayed_message_survives_a_restart() {
    if common::skip_redis() {
        return;
    }
    let redis = RedisServer::start();
    let first = TestNode::on_redis(&[&redis], &[]);
    let id = first.push_body(json!({
        "payload": "durable", "priority": "H", "queue": [{"id": "d4"}], "delay": 2,
    }));
    drop(first); // SIGKILL, long before it is due
    let second = TestNode::on_redis(&[&redis], &[]);
    let popped = second.pop("d4", "timeout=5");
    assert_eq!(popped.transactions, [id]);
    assert_eq!(popped.payloads(), ["durable"]);
    // Pushed exactly once.
    assert!(second.pop("d4", "timeout=1").transactions.is_empty());
}

crate::every_store!(delayed_message_arrives_when_due, delay_is_validated_first);
