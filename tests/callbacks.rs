//! Delivery callbacks: one `POST <callback>` per delivered (transaction, queue), none for peek,
//! ack or an abandoned pop; retried on failure; never in a delivery's way.

mod common;

use std::net::TcpListener;
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::receiver::CallbackReceiver;
use common::{Backend, TestNode};
use serde_json::json;

fn push_with_callback(node: &TestNode, queues: &[&str], callback: &str) -> String {
    node.push_body(json!({
        "payload": "p",
        "priority": "H",
        "callback": callback,
        "queue": queues.iter().map(|q| json!({"id": q})).collect::<Vec<_>>(),
    }))
}

fn one_call_per_delivery(backend: Backend) {
    let node = TestNode::start(backend);
    let receiver = CallbackReceiver::start();
    let url = receiver.url("/hook");
    let id = push_with_callback(&node, &["c1", "c2", "c3"], &url);

    // Peeking is not delivering.
    node.peek("c1", "");
    node.pop("c1", "timeout=1");
    // A reliable pop reports at pop time; its ack does not report again.
    let (status, _) = node.post("/queue/c2/poprel", &json!({}));
    assert_eq!(status, 200);
    node.post("/queue/c2/ack", &json!({"transactions": [id]}));

    receiver.wait_for(2, Duration::from_secs(5));
    // Time for any call too many to arrive.
    sleep(Duration::from_millis(500));
    let calls = &receiver.received();
    assert_eq!(calls.len(), 2, "{calls:?}");
    let mut queues: Vec<&str> = calls
        .iter()
        .map(|c| c.body["queue"].as_str().unwrap())
        .collect();
    queues.sort();
    assert_eq!(queues, ["c1", "c2"]);
    for call in calls {
        assert_eq!(call.path, "/hook");
        assert!(call.content_type.starts_with("application/json"));
        assert_eq!(call.body["transaction"], id.as_str());
        assert_eq!(call.body["state"], "Delivered");
        assert_eq!(call.body["callback"], url.as_str());
        let stamp = call.body["timestamp"].as_str().unwrap();
        assert!(stamp.ends_with('Z') && stamp.contains('T'), "{stamp}");
    }
}

fn no_call_for_an_abandoned_pop(backend: Backend) {
    let node = TestNode::start(backend);
    let receiver = CallbackReceiver::start();
    // The client goes away while its pop waits; the message then reaches someone else.
    let held = node.hold_pop("gone");
    sleep(Duration::from_millis(200));
    drop(held);
    sleep(Duration::from_millis(200));
    let id = push_with_callback(&node, &["gone"], &receiver.url("/once"));
    sleep(Duration::from_millis(300));
    assert!(receiver.received().is_empty(), "{:?}", receiver.received());
    assert_eq!(node.pop("gone", "timeout=1").transactions, [id]);
    assert_eq!(receiver.wait_for(1, Duration::from_secs(5)).len(), 1);
    sleep(Duration::from_millis(300));
    assert_eq!(receiver.received().len(), 1);
}

fn failed_calls_are_retried(backend: Backend) {
    let node = TestNode::start(backend);
    let receiver = CallbackReceiver::answering(&[503]);
    let id = push_with_callback(&node, &["retry"], &receiver.url("/flaky"));
    node.pop("retry", "timeout=1");
    let calls = receiver.wait_for(2, Duration::from_secs(5));
    assert_eq!(calls.len(), 2, "one failure, one retry: {calls:?}");
    assert_eq!(calls[0].body, calls[1].body);
    assert_eq!(calls[1].body["transaction"], id.as_str());
}

fn a_dead_or_slow_target_never_delays_delivery(backend: Backend) {
    let node = TestNode::start(backend);
    // Accepts connections and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let slow = format!("http://{}/slow", silent.local_addr().unwrap());
    // Nobody listens there.
    let dead = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/dead", l.local_addr().unwrap())
    };
    for (queue, url) in [
        ("slow", slow.as_str()),
        ("dead", dead.as_str()),
        ("bad", "not a url"),
    ] {
        for _ in 0..20 {
            push_with_callback(&node, &[queue], url);
        }
        let start = Instant::now();
        for _ in 0..20 {
            assert_eq!(node.pop(queue, "timeout=1&max=1").transactions.len(), 1);
        }
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{queue}: {:?}",
            start.elapsed()
        );
    }
    drop(silent);
}

/// An `https://` callback (PopBox's process died on one). The node trusts the receiver's
/// development certificate through `SSL_CERT_FILE`, as it would a private CA's.
#[test]
fn https_callbacks_work() {
    let dir = tempfile::tempdir().unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tools/dev-cert");
    let made = std::process::Command::new(script).arg(dir.path()).status();
    assert!(made.unwrap().success());
    let cert = dir.path().join("server.crt");
    let receiver = CallbackReceiver::tls(&cert, &dir.path().join("server.key"));
    let trust = [("SSL_CERT_FILE", cert.to_str().unwrap())];
    let node = TestNode::start_with(Backend::Memory, &trust);
    let url = receiver.url("/secure-hook");
    assert!(url.starts_with("https://"));
    let id = push_with_callback(&node, &["tls"], &url);
    node.pop("tls", "timeout=1");
    let calls = receiver.wait_for(1, Duration::from_secs(5));
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].path, "/secure-hook");
    assert_eq!(calls[0].body["transaction"], id.as_str());
}

crate::every_store!(
    one_call_per_delivery,
    no_call_for_an_abandoned_pop,
    failed_calls_are_retried,
    a_dead_or_slow_target_never_delays_delivery,
);
