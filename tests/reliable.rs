//! Reliable delivery: `POST /queue/<id>/poprel`, `POST /queue/<id>/ack` and `timeoutACK`.

mod common;

use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::{Backend, Popped, RedisServer, TestNode, push_request, read_answer};
use serde_json::{Value, json};

fn poprel(node: &TestNode, queue: &str, query: &str) -> Popped {
    let (status, reply) = node.post(&format!("/queue/{queue}/poprel?{query}"), &json!({}));
    assert_eq!(status, 200, "poprel failed: {reply}");
    Popped::from(&reply)
}

fn ack(node: &TestNode, queue: &str, ids: &[&str]) -> (u16, Value) {
    node.post(
        &format!("/queue/{queue}/ack"),
        &json!({ "transactions": ids }),
    )
}

/// Waits (up to `limit`) until `tx` reads `state` in `queue`.
fn wait_for_state(node: &TestNode, tx: &str, queue: &str, state: &str, limit: Duration) {
    let start = Instant::now();
    while node.state(tx, queue) != state {
        assert!(
            start.elapsed() < limit,
            "{tx} in {queue} stayed {:?}, expected {state}",
            node.state(tx, queue)
        );
        sleep(Duration::from_millis(50));
    }
}

fn acked_in_time_stays_delivered(backend: Backend) {
    let node = TestNode::start(backend);
    let id = node.push(&["r1"], "hello", "H");
    let popped = poprel(&node, "r1", "timeoutACK=1&timeout=1");
    assert_eq!(popped.payloads(), ["hello"]);
    assert_eq!(node.state(&id, "r1"), "Blocked");
    assert_eq!(
        ack(&node, "r1", &[&id]),
        (200, json!([{"err": null, "data": id}]))
    );
    assert_eq!(node.state(&id, "r1"), "Delivered");
    sleep(Duration::from_millis(2000));
    assert_eq!(node.state(&id, "r1"), "Delivered");
    assert!(node.peek("r1", "").transactions.is_empty(), "not put back");
}

fn unacked_goes_back_to_the_head(backend: Backend) {
    let node = TestNode::start(backend);
    let first = node.push(&["r2"], "first", "L");
    let second = node.push(&["r2"], "second", "L");
    assert_eq!(
        poprel(&node, "r2", "timeoutACK=1&max=1").transactions,
        std::slice::from_ref(&first)
    );
    assert_eq!(node.state(&first, "r2"), "Blocked");
    wait_for_state(&node, &first, "r2", "Pending", Duration::from_secs(3));
    // Back at the head, before the message that was behind it.
    assert_eq!(node.peek("r2", "").transactions, [first.clone(), second]);
    // An ack after the time is up is too late to keep it out of the queue, but still records
    // the delivery.
    assert_eq!(ack(&node, "r2", &[&first]).1[0]["err"], Value::Null);
    let again = node.pop("r2", "max=1");
    assert_eq!(again.transactions, [first]);
}

fn a_waiting_poprel_gets_a_message_put_back(backend: Backend) {
    let node = TestNode::start(backend);
    let id = node.push(&["r3"], "p", "H");
    poprel(&node, "r3", "timeoutACK=0.5");
    // This one waits until the first consumer's time runs out.
    let started = Instant::now();
    let second = poprel(&node, "r3", "timeout=5&timeoutACK=5");
    assert_eq!(second.transactions, std::slice::from_ref(&id));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(node.state(&id, "r3"), "Blocked");
}

fn ack_answers_per_transaction(backend: Backend) {
    let node = TestNode::start(backend);
    let id = node.push(&["r4"], "p", "H");
    poprel(&node, "r4", "");
    let (status, reply) = ack(&node, "r4", &["nope", &id]);
    assert_eq!(status, 200);
    assert_eq!(
        reply,
        json!([
            {"err": "nope/r4 does not exist", "data": "nope"},
            {"err": null, "data": id},
        ])
    );
    // A queue the transaction was never in is not acknowledged (PopBox added a state field).
    assert_eq!(
        ack(&node, "elsewhere", &[&id]).1,
        json!([{"err": format!("{id}/elsewhere does not exist"), "data": id}])
    );
    assert_eq!(node.state(&id, "elsewhere"), "");
    // One not taken yet has a state there (Pending) too: it is acknowledged as PopBox did.
    let waiting = node.push(&["r4"], "not taken", "H");
    assert_eq!(
        ack(&node, "r4", &[&waiting]).1,
        json!([{"err": null, "data": waiting}])
    );
    assert_eq!(node.state(&waiting, "r4"), "Delivered");
    // PopBox never answered an empty list.
    assert_eq!(ack(&node, "r4", &[]), (200, json!([])));
}

fn bad_reliable_requests(backend: Backend) {
    let node = TestNode::start(backend);
    let id = node.push(&["r5"], "p", "H");
    assert_eq!(
        node.post("/queue/r5/ack", &json!({})),
        (400, json!({"errors": ["missing transaction"]}))
    );
    for body in [json!({"transactions": id}), json!({"transactions": [1]})] {
        let (status, reply) = node.post("/queue/r5/ack", &body);
        assert_eq!(status, 400, "{body}");
        assert!(
            reply["errors"][0]
                .as_str()
                .unwrap()
                .starts_with("invalid transactions"),
            "{reply}"
        );
    }
    for query in ["timeoutACK=-1", "timeoutACK=soon"] {
        let (status, reply) = node.post(&format!("/queue/r5/poprel?{query}"), &json!({}));
        assert_eq!(status, 400, "{query}: {reply}");
        assert!(reply["errors"][0].as_str().unwrap().contains("timeoutACK"));
    }
    assert_eq!(node.state(&id, "r5"), "Pending", "nothing was taken");
    // No org variant, as in PopBox.
    assert_eq!(node.post("/org/acme/queue/r5/poprel", &json!({})).0, 404);
}

/// The store brings unacknowledged messages back, so a node that dies holding some loses
/// nothing: another node over the same Redis returns them.
#[test]
fn a_killed_node_loses_no_unacked_message() {
    if common::skip_redis() {
        return;
    }
    let redis = RedisServer::start();
    let dying = TestNode::on_redis(&[&redis], &[]);
    let ids: Vec<String> = (0..3)
        .map(|i| dying.push(&["kq"], &format!("m{i}"), "H"))
        .collect();
    let popped = poprel(&dying, "kq", "max=3&timeoutACK=1");
    assert_eq!(popped.transactions, ids);
    drop(dying); // SIGKILL
    let survivor = TestNode::on_redis(&[&redis], &[]);
    for id in &ids {
        wait_for_state(&survivor, id, "kq", "Pending", Duration::from_secs(4));
    }
    let again = survivor.pop("kq", "max=10&timeout=1");
    assert_eq!(again.transactions, ids, "same order as before");
}

/// A waiter of one mode leaves just as a push lands, while one of the other mode waits behind
/// it: the take made for the first must not reach the second in the wrong mode. A plain pop
/// must never get a message that comes back after `timeoutACK` (it would be delivered twice),
/// and a reliable pop must never get one recorded `Delivered` (unacknowledged, it would never
/// come back). Each round pushes one message and closes the first waiter's connection at once.
fn a_take_never_crosses_delivery_modes(backend: Backend) {
    const RELIABLE: &str = "poprel?timeout=2&timeoutACK=1";
    const PLAIN: &str = "pop?timeout=2";
    let node = TestNode::start(backend);
    let (mut plain, mut reliable) = (Vec::new(), Vec::new());
    for round in 0..100 {
        let queue = format!("mx{round}");
        let (first, second) = if round % 2 == 0 {
            (RELIABLE, PLAIN)
        } else {
            (PLAIN, RELIABLE)
        };
        let open = |route: &str| {
            let mut stream = TcpStream::connect(node.addr).unwrap();
            let request = format!(
                "POST /queue/{queue}/{route} HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n"
            );
            stream.write_all(request.as_bytes()).unwrap();
            stream
        };
        let leaving = open(first);
        wait_until_blocked(&node, &queue);
        let mut staying = BufReader::new(open(second));
        sleep(Duration::from_millis(20));
        let mut pusher = BufReader::new(TcpStream::connect(node.addr).unwrap());
        let request = push_request(&[&queue], "m");
        pusher.get_mut().write_all(request.as_bytes()).unwrap();
        drop(leaving);
        let (status, pushed) = read_answer(&mut pusher);
        assert_eq!(status, 200, "{pushed}");
        let (status, got) = read_answer(&mut staying);
        assert_eq!(status, 200, "{got}");
        let id = pushed["data"].as_str().unwrap().to_owned();
        if got["transactions"] == json!([id]) {
            match second {
                PLAIN => plain.push((queue, id)),
                _ => reliable.push((queue, id)),
            }
        }
    }
    // Past every `timeoutACK` and the sweep that follows it (however slow the machine).
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10)
        && reliable
            .iter()
            .any(|(queue, id)| node.state(id, queue) != "Pending")
    {
        sleep(Duration::from_millis(200));
    }
    sleep(Duration::from_millis(1500));
    let came_back: Vec<&String> = (plain.iter())
        .filter(|(queue, id)| {
            node.state(id, queue) != "Delivered" || !node.peek(queue, "").data.is_empty()
        })
        .map(|(queue, _)| queue)
        .collect();
    let stayed_out: Vec<&String> = (reliable.iter())
        .filter(|(queue, id)| node.state(id, queue) != "Pending")
        .map(|(queue, _)| queue)
        .collect();
    assert!(
        came_back.is_empty() && stayed_out.is_empty(),
        "of {} plain pops, came back: {came_back:?}; of {} reliable pops, never came back: \
         {stayed_out:?}",
        plain.len(),
        reliable.len()
    );
}

fn wait_until_blocked(node: &TestNode, queue: &str) {
    let start = Instant::now();
    while !node.blocked(queue) {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{queue} never blocked"
        );
        sleep(Duration::from_millis(5));
    }
}

crate::every_store!(
    a_take_never_crosses_delivery_modes,
    acked_in_time_stays_delivered,
    unacked_goes_back_to_the_head,
    a_waiting_poprel_gets_a_message_put_back,
    ack_answers_per_transaction,
    bad_reliable_requests,
);
