//! Transactions spread over a set of Redis servers: each lives on the server its id hashes to,
//! new ids are placed beside their first queue, and a transaction apart from one of its queues
//! is still delivered once from each, through the failures between its steps.
//!
//! With two servers and `store.queue_hash = "crc16"`, queue `qa` is on the first and `qb` on
//! the second (their slots, 2031 and 14220, fall in each half), so a push into both has one
//! of them apart from its transaction.

mod common;

use std::time::Duration;

use common::link::FaultyLink;
use common::{RedisServer, TestNode, skip_redis};
use serde_json::{Value, json};

/// The two queues, each on its own server of a set of two.
const ON_FIRST: &str = "qa";
const ON_SECOND: &str = "qb";

/// Whether `server` holds transaction `id` (spread, it is one hash: `PB:T|<id>:tx`).
fn holds(server: &RedisServer, id: &str) -> bool {
    server.cli(&["EXISTS", &format!("PB:T|{id}:tx")]).trim() == "1"
}

/// How many transactions `server` holds.
fn transactions_on(server: &RedisServer) -> usize {
    let keys = server.cli(&["--scan", "--pattern", "PB:T|*:tx"]);
    keys.lines().count()
}

#[test]
fn transactions_live_beside_their_queues_and_spread_over_the_set() {
    if skip_redis() {
        return;
    }
    let (a, b) = (RedisServer::start(), RedisServer::start());
    let node = TestNode::on_redis(&[&a, &b], &[]);
    for i in 1..=40 {
        let queue = format!("q{i}");
        let id = node.push(&[&queue], "m", "H");
        let list = format!("PB:Q|H:UNSEC:{queue}");
        let with_queue = if a.cli(&["EXISTS", &list]).trim() == "1" {
            &a
        } else {
            &b
        };
        assert!(holds(with_queue, &id), "{id} is beside {queue}");
        assert_eq!(node.pop(&queue, "timeout=1").payloads(), ["m"]);
        assert_eq!(node.state(&id, &queue), "Delivered");
    }
    let (on_a, on_b) = (transactions_on(&a), transactions_on(&b));
    assert_eq!(on_a + on_b, 40);
    assert!(on_a >= 10 && on_b >= 10, "spread: {on_a} / {on_b}");
    assert_eq!(a.cli(&["GET", "RB:H|layout"]).trim(), "crc16 spread");
}

/// Pushes a message into both queues; its id and the server that holds it (0 or 1).
fn push_apart(node: &TestNode, servers: [&RedisServer; 2], payload: &str) -> (String, usize) {
    let id = node.push(&[ON_FIRST, ON_SECOND], payload, "H");
    let home = servers.iter().position(|s| holds(s, &id)).expect("stored");
    assert!(!holds(servers[1 - home], &id), "on one server only");
    (id, home)
}

#[test]
fn a_transaction_apart_from_a_queue_is_peeked_popped_acknowledged_and_returned_there() {
    if skip_redis() {
        return;
    }
    let (a, b) = (RedisServer::start(), RedisServer::start());
    let node = TestNode::on_redis(&[&a, &b], &[]);
    let (id, _) = push_apart(&node, [&a, &b], "both");
    for queue in [ON_FIRST, ON_SECOND] {
        assert_eq!(node.peek(queue, "").payloads(), ["both"], "{queue}");
    }
    // A plain pop from one, a reliable pop acknowledged from the other.
    assert_eq!(
        node.pop(ON_FIRST, "timeout=1").transactions,
        std::slice::from_ref(&id)
    );
    let (status, reply) = node.post(
        &format!("/queue/{ON_SECOND}/poprel?timeoutACK=5"),
        &json!({}),
    );
    assert_eq!((status, reply["data"][0].as_str()), (200, Some("both")));
    assert_eq!(node.state(&id, ON_SECOND), "Blocked");
    let (status, reply) = node.post(
        &format!("/queue/{ON_SECOND}/ack"),
        &json!({"transactions": [id]}),
    );
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply[0]["err"], Value::Null);
    for queue in [ON_FIRST, ON_SECOND] {
        assert_eq!(node.state(&id, queue), "Delivered", "{queue}");
    }

    // Unacknowledged, each comes back to its queue once its time is up.
    let (again, _) = push_apart(&node, [&a, &b], "again");
    for queue in [ON_FIRST, ON_SECOND] {
        let (status, _) = node.post(&format!("/queue/{queue}/poprel?timeoutACK=1"), &json!({}));
        assert_eq!(status, 200);
    }
    for queue in [ON_FIRST, ON_SECOND] {
        let popped = node.pop(queue, "timeout=5");
        assert_eq!(
            popped.transactions,
            std::slice::from_ref(&again),
            "{queue} got it back"
        );
        assert!(
            node.peek(queue, "").transactions.is_empty(),
            "{queue}: once"
        );
    }
}

/// A node whose both servers are behind links that can lose answers.
fn node_on_links(links: &[&FaultyLink]) -> TestNode {
    let urls: Vec<String> = links.iter().map(|l| l.url()).collect();
    let fast = [
        ("RELAYBOX__STORE__REDIS_TIMEOUT_MS", "300"),
        ("RELAYBOX__STORE__REDIS_RECOVERY", "1"),
    ];
    TestNode::on_redis_urls(&urls, &fast)
}

/// The take succeeds on the queue's server and the marking fails on the transaction's: the
/// message goes back to its queue, and the next pop has it, once.
#[test]
fn a_pop_whose_transactions_server_fails_puts_the_message_back() {
    if skip_redis() {
        return;
    }
    let (a, b) = (RedisServer::start(), RedisServer::start());
    let links = [FaultyLink::start(a.port), FaultyLink::start(b.port)];
    let node = node_on_links(&[&links[0], &links[1]]);
    let (id, home) = push_apart(&node, [&a, &b], "kept");
    let apart = [ON_FIRST, ON_SECOND][1 - home];

    links[home].cut_answers(true);
    let (status, reply) = node.post(&format!("/queue/{apart}/pop?timeout=1"), &json!({}));
    assert_eq!(status, 503, "{reply}");
    links[home].cut_answers(false);
    std::thread::sleep(Duration::from_millis(300));

    let popped = node.pop(apart, "timeout=1&max=10");
    assert_eq!(
        popped.transactions,
        std::slice::from_ref(&id),
        "back, and once"
    );
    assert_eq!(popped.payloads(), ["kept"]);
    assert_eq!(node.state(&id, apart), "Delivered");
    assert!(node.peek(apart, "").transactions.is_empty());
}

/// A push with an `Idempotency-Key` whose step on one server lost its answer: the producer is
/// told 503, and its retry pushes the transaction where it is missing, storing nothing new.
#[test]
fn a_retried_push_apart_from_its_transaction_lands_once_in_each_queue() {
    if skip_redis() {
        return;
    }
    let (a, b) = (RedisServer::start(), RedisServer::start());
    for lossy in 0..2 {
        let links = [FaultyLink::start(a.port), FaultyLink::start(b.port)];
        let node = node_on_links(&[&links[0], &links[1]]);
        let body = json!({"payload": "once", "priority": "H",
            "queue": [{"id": ON_FIRST}, {"id": ON_SECOND}]});
        let key = format!("retry-{lossy}");
        let push = || node.push_once(&key, &body, "");
        links[lossy].cut_answers(true);
        let (status, reply) = push();
        assert_eq!(status, 503, "server {lossy} lost its answer: {reply}");
        links[lossy].cut_answers(false);
        std::thread::sleep(Duration::from_millis(300));
        let (status, reply) = push();
        assert_eq!(status, 200, "{reply}");
        let id = reply["data"].as_str().unwrap();
        let stored = transactions_on(&a) + transactions_on(&b);
        assert_eq!(
            stored, 1,
            "one transaction stored (server {lossy} lost its answer)"
        );
        for queue in [ON_FIRST, ON_SECOND] {
            let popped = node.pop(queue, "timeout=1&max=10");
            assert_eq!(popped.transactions, [id], "{queue}, server {lossy} lossy");
        }
        for server in [&a, &b] {
            server.cli(&["FLUSHALL"]);
        }
    }
}
