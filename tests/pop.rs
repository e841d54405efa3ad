//! Consumers: `POST /queue/<id>/pop`, `GET /queue/<id>/peek`, `GET /queue/<id>`.

mod common;

use std::collections::HashSet;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Backend, TestNode, unix_now};
use serde_json::{Value, json};

fn high_before_low_fifo_within_and_max(backend: Backend) {
    let node = TestNode::start(backend);
    let l1 = node.push(&["o"], "l1", "L");
    let h1 = node.push(&["o"], "h1", "H");
    let l2 = node.push(&["o"], "l2", "L");
    let h2 = node.push(&["o"], "h2", "H");
    let peeked = node.peek("o", "");
    assert_eq!(peeked.payloads(), ["h1", "h2", "l1", "l2"]);
    assert_eq!(
        peeked.transactions,
        [h1.clone(), h2, l1.clone(), l2.clone()]
    );
    assert_eq!(node.peek("o", "max=1").payloads(), ["h1"]);
    assert_eq!(node.state(&h1, "o"), "Pending", "peek changes nothing");

    let first = node.pop("o", "max=3&timeout=1");
    assert_eq!(first.payloads(), ["h1", "h2", "l1"]);
    assert_eq!(node.state(&h1, "o"), "Delivered");
    assert_eq!(node.state(&l1, "o"), "Delivered");
    assert_eq!(node.pop("o", "timeout=1").transactions, [l2]);
    assert!(node.pop("o", "timeout=1").data.is_empty());
}

fn max_defaults_and_limits(backend: Backend) {
    let node = TestNode::start(backend);
    for i in 0..5 {
        node.push(&["m"], &format!("m{i}"), "L");
    }
    assert_eq!(
        node.pop("m", "max=0&timeout=1").data.len(),
        1,
        "max 0 means one"
    );
    // Parameters may come in the body.
    let (_, reply) = node.post("/queue/m/pop", &json!({"max": 2, "timeout": 1}));
    assert_eq!(reply["data"], json!(["m1", "m2"]));
    assert_eq!(
        node.pop("m", "timeout=1").payloads(),
        ["m3", "m4"],
        "default max takes the rest"
    );
    // No upper bound, as in PopBox: a huge max takes what there is, on every route.
    let huge = i64::MAX;
    node.push(&["m"], "m5", "H");
    assert_eq!(node.peek("m", &format!("max={huge}")).payloads(), ["m5"]);
    let (status, reply) = node.post(&format!("/queue/m/poprel?max={huge}&timeout=1"), &json!({}));
    assert_eq!((status, &reply["data"]), (200, &json!(["m5"])), "{reply}");
    node.push(&["m"], "m6", "H");
    assert_eq!(
        node.pop("m", &format!("max={huge}&timeout=1")).payloads(),
        ["m6"]
    );
}

fn an_empty_queue_waits_for_the_timeout(backend: Backend) {
    let node = TestNode::start(backend);
    let started = Instant::now();
    let (status, reply) = node.post("/queue/empty/pop?timeout=1", &json!({}));
    let waited = started.elapsed();
    assert_eq!(status, 200);
    assert_eq!(reply, json!({"ok": true, "data": [], "transactions": []}));
    assert!(
        waited >= Duration::from_millis(950) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    // timeout=0 means one second, as in PopBox.
    let started = Instant::now();
    node.pop("empty", "timeout=0");
    assert!(started.elapsed() >= Duration::from_millis(950));
}

fn a_message_arriving_during_the_wait_is_delivered_at_once(backend: Backend) {
    let node = Arc::new(TestNode::start(backend));
    let waiter = {
        let node = Arc::clone(&node);
        std::thread::spawn(move || {
            let p = node.pop("late", "timeout=10");
            (p, Instant::now())
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let (_, info) = node.get("/queue/late");
    assert_eq!(info["blocked"], json!(true), "the waiter shows: {info}");
    let id = node.push(&["late"], "now", "H");
    let pushed = Instant::now();
    let (popped, at) = waiter.join().unwrap();
    assert_eq!(popped.transactions, [id]);
    assert!(
        at.duration_since(pushed) < Duration::from_millis(500),
        "{:?}",
        at.duration_since(pushed)
    );
    let (_, info) = node.get("/queue/late");
    assert_eq!(info["blocked"], json!(false));
}

fn the_longest_waiting_pop_is_served_first(backend: Backend) {
    let node = Arc::new(TestNode::start(backend));
    let mut waiters = Vec::new();
    for _ in 0..3 {
        let node = Arc::clone(&node);
        waiters.push(std::thread::spawn(move || {
            // One message each, so that the order of service is all that decides who gets what.
            node.pop("fair", "max=1&timeout=20").payloads().join(",")
        }));
        // Registered well apart, so the order of arrival is unambiguous.
        std::thread::sleep(Duration::from_millis(300));
    }
    for i in 0..3 {
        node.push(&["fair"], &format!("m{i}"), "L");
    }
    let got: Vec<String> = waiters.into_iter().map(|w| w.join().unwrap()).collect();
    assert_eq!(got, ["m0", "m1", "m2"]);
}

fn expired_messages_are_never_delivered_with_a_payload(backend: Backend) {
    let node = TestNode::start(backend);
    let keep = node.push(&["x"], "keep", "L");
    let gone = node.push_body(json!({"payload": "gone", "priority": "H", "queue": [{"id": "x"}], "expirationDate": unix_now() + 1}));
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(node.get(&format!("/trans/{gone}")), (200, json!({})));
    let popped = node.pop("x", "timeout=1");
    // PopBox reports a still-queued expired reference as a null payload; a swept one is just gone.
    match popped.transactions.as_slice() {
        [only] => assert_eq!(only, &keep),
        [first, second] => {
            assert_eq!((first, &popped.data[0]), (&gone, &Value::Null));
            assert_eq!(second, &keep);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(node.state(&gone, "x"), "");
}

/// Expired messages leave their queues by themselves, not only when a consumer comes by.
fn expired_messages_are_swept_from_their_queues(backend: Backend) {
    let node = TestNode::start_with(backend, &[("RELAYBOX__STORE__SWEEP_INTERVAL", "1")]);
    // Two seconds, so that it is surely still queued when first looked at.
    let expires = unix_now() + 2;
    node.push_body(
        json!({"payload": "p", "priority": "L", "queue": [{"id": "swept"}],
        "expirationDate": expires}),
    );
    assert_eq!(node.get("/queue/swept").1["size"], 1);
    let deadline = Instant::now() + Duration::from_secs(10);
    while node.get("/queue/swept").1["size"] != 0 {
        assert!(
            Instant::now() < deadline,
            "still queued 10 s after it expired"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The answer's bytes, which clients that do not parse JSON fully may rely on: the fields in
/// their order, escapes as JSON writes them, `null` for a message deleted while queued.
fn the_answer_is_exactly_what_clients_read(backend: Backend) {
    let node = TestNode::start(backend);
    let kept = node.push(&["bytes"], "a \"quoted\" \\ é", "H");
    let deleted = node.push(&["bytes"], "x", "L");
    node.delete(&format!("/trans/{deleted}"));
    let answer = node.raw(
        b"POST /queue/bytes/pop?max=5 HTTP/1.1\r\nHost: t\r\n\
          Connection: close\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.body,
        format!(
            r#"{{"data":["a \"quoted\" \\ é",null],"ok":true,"transactions":["{kept}","{deleted}"]}}"#
        )
    );
    assert_eq!(
        answer.header("content-type"),
        Some("application/json; charset=utf-8")
    );
}

fn queue_state_reports_contents_and_waiting(backend: Backend) {
    let node = TestNode::start(backend);
    let (_, fresh) = node.get("/queue/qs");
    let host = node.addr.to_string();
    assert_eq!(
        fresh,
        json!({"ok": true, "host": host, "blocked": false, "size": 0, "high": [], "low": []})
    );
    let h = node.push(&["qs"], "h", "H");
    let l = node.push(&["qs"], "l", "L");
    let (_, info) = node.get("/queue/qs");
    assert_eq!(info["size"], 2);
    assert_eq!(
        info["high"],
        json!([{"id": h, "href": format!("http://{host}/trans/{h}?queues=All")}])
    );
    assert_eq!(info["low"][0]["id"], json!(l));
    assert!(info.get("lastPop").is_none());
    node.pop("qs", "max=1&timeout=1");
    let (_, info) = node.get("/queue/qs");
    let last: i64 = info["lastPop"]
        .as_str()
        .expect("lastPop is a string")
        .parse()
        .unwrap();
    assert!((last - unix_now()).abs() <= 2);
    assert_eq!(info["size"], 1);
}

fn bad_parameters_are_refused(backend: Backend) {
    let node = TestNode::start(backend);
    node.push(&["bad"], "p", "H");
    for query in ["timeout=-1", "timeout=soon", "max=-2", "max=lots"] {
        let (status, reply) = node.post(&format!("/queue/bad/pop?{query}"), &json!({}));
        assert_eq!(status, 400, "{query}: {reply}");
        let name = query.split('=').next().unwrap();
        assert!(
            reply["errors"][0].as_str().unwrap().contains(name),
            "{reply}"
        );
    }
    let (status, _) = node.post("/queue/bad/pop", &json!({"timeout": [1]}));
    assert_eq!(status, 400);
    let (status, _) = node.get("/queue/bad/peek?max=-1");
    assert_eq!(status, 400);
    assert_eq!(
        node.peek("bad", "").payloads(),
        ["p"],
        "refused pops take nothing"
    );
}

fn a_client_that_disconnects_while_waiting_takes_nothing(backend: Backend) {
    let node = TestNode::start(backend);
    let stream = node.hold_pop("gone");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(node.get("/queue/gone").1["blocked"], json!(true));
    drop(stream);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        node.get("/queue/gone").1["blocked"],
        json!(false),
        "the wait ended with the connection"
    );

    let id = node.push(&["gone"], "for someone else", "H");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(node.state(&id, "gone"), "Pending");
    assert_eq!(node.pop("gone", "timeout=1").transactions, [id]);
}

fn many_clients_disconnecting_lose_nothing(backend: Backend) {
    let node = TestNode::start(backend);
    let streams: Vec<TcpStream> = (0..50).map(|_| node.hold_pop("churn")).collect();
    std::thread::sleep(Duration::from_millis(300));
    // Push while half of them are closing.
    let mut ids = Vec::new();
    let mut alive = Vec::new();
    for (i, stream) in streams.into_iter().enumerate() {
        if i % 2 == 0 {
            drop(stream);
        } else {
            alive.push(stream);
        }
        if i % 5 == 0 {
            ids.push(node.push(&["churn"], "m", "L"));
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    // Every message either reached a live waiter (then it is Delivered) or is still queued.
    let queued: HashSet<String> = node.peek("churn", "").transactions.into_iter().collect();
    for id in &ids {
        let state = node.state(id, "churn");
        assert!(
            (state == "Pending" && queued.contains(id)) || state == "Delivered",
            "{id} is {state}, queued: {}",
            queued.contains(id)
        );
    }
    drop(alive);
}

/// A message pushed into many queues lives beside the first at most: a peek at each of the
/// others reads its payload from the shard of its transaction (on a cluster, another tag).
fn peek_reads_messages_whose_transaction_lives_apart(backend: Backend) {
    let node = TestNode::start(backend);
    let queues: Vec<String> = (0..12).map(|i| format!("apart{i}")).collect();
    let names: Vec<&str> = queues.iter().map(String::as_str).collect();
    let id = node.push(&names, "everywhere", "H");
    for queue in &names {
        let peeked = node.peek(queue, "");
        assert_eq!(peeked.transactions, [id.as_str()], "{queue}");
        assert_eq!(peeked.payloads(), ["everywhere"], "{queue}");
    }
}

crate::every_store!(
    high_before_low_fifo_within_and_max,
    peek_reads_messages_whose_transaction_lives_apart,
    max_defaults_and_limits,
    an_empty_queue_waits_for_the_timeout,
    a_message_arriving_during_the_wait_is_delivered_at_once,
    the_longest_waiting_pop_is_served_first,
    expired_messages_are_never_delivered_with_a_payload,
    the_answer_is_exactly_what_clients_read,
    expired_messages_are_swept_from_their_queues,
    queue_state_reports_contents_and_waiting,
    bad_parameters_are_refused,
    a_client_that_disconnects_while_waiting_takes_nothing,
    many_clients_disconnecting_lose_nothing,
);
