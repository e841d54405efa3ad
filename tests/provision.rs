//! `POST /trans`: provisioning, every validation error of the spec, and bad bodies. A refused
//! request stores nothing.

mod common;

use common::{Backend, TestNode, unix_now};
use serde_json::{Value, json};

/// Posts `body` to `/trans` and expects a 400 with exactly `errors`; the queue stays empty.
fn refused(node: &TestNode, body: Value, errors: &[&str]) {
    let (status, reply) = node.post("/trans", &body);
    assert_eq!(status, 400, "for {body}: {reply}");
    assert_eq!(reply, json!({ "errors": errors }), "for {body}");
}

fn a_message_goes_into_every_queue_it_names(backend: Backend) {
    let node = TestNode::start(backend);
    let (status, reply) = node.post(
        "/trans",
        &json!({"payload": "hello", "priority": "H", "queue": [{"id": "a"}, {"id": "b"}], "extra": {"x": 1}}),
    );
    assert_eq!(status, 200);
    assert_eq!(reply["ok"], json!(true));
    let id = reply["data"].as_str().unwrap();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    assert_eq!(id, id.to_lowercase());
    for q in ["a", "b"] {
        assert_eq!(node.peek(q, "").transactions, [id]);
        assert_eq!(node.state(id, q), "Pending");
    }
    // Metadata comes back as strings, the way PopBox stored it.
    let (_, meta) = node.get(&format!("/trans/{id}"));
    assert_eq!(meta["payload"], "hello");
    assert_eq!(meta["priority"], "H");
    assert_eq!(meta["extra"], "[object Object]");
    let expires: i64 = meta["expirationDate"].as_str().unwrap().parse().unwrap();
    assert!(
        (expires - (unix_now() + 3600)).abs() <= 2,
        "default expiry is an hour: {expires}"
    );
    assert!(meta.get("queue").is_none());
}

fn an_empty_queue_list_is_valid(backend: Backend) {
    let node = TestNode::start(backend);
    node.push(&[], "nobody", "L");
}

fn every_validation_error_is_named(backend: Backend) {
    let node = TestNode::start(backend);
    refused(
        &node,
        json!({}),
        &["undefined priority", "undefined queue", "undefined payload"],
    );
    refused(
        &node,
        json!({"payload": "", "priority": "h", "queue": {"id": "q"}}),
        &[
            "invalid priority",
            "invalid queue type",
            "undefined payload",
        ],
    );
    refused(
        &node,
        json!({"payload": 0, "priority": "L", "queue": [{"id": "q"}]}),
        &["undefined payload"],
    );
    let many: Vec<Value> = (0..10_001)
        .map(|i| json!({"id": format!("q{i}")}))
        .collect();
    refused(
        &node,
        json!({"payload": "p", "priority": "L", "queue": many}),
        &["too many queues: maximum 10000"],
    );
    refused(
        &node,
        json!({"payload": "p", "priority": "L", "queue": [{"id": "q"}], "expirationDate": "tomorrow"}),
        &["expirationDate is not a number"],
    );
    refused(
        &node,
        json!({"payload": "p", "priority": "L", "queue": [{"id": "q"}], "expirationDate": 2_147_483_648i64}),
        &["expirationDate out of range"],
    );
    refused(
        &node,
        json!({"payload": "p", "priority": "L", "queue": [{"id": "q"}], "expirationDate": -1}),
        &["expirationDate out of range"],
    );
    assert!(
        node.peek("q", "").transactions.is_empty(),
        "refused pushes store nothing"
    );
}

fn queue_elements_must_be_objects_with_string_ids(backend: Backend) {
    let node = TestNode::start(backend);
    for bad in [
        json!(["q"]),
        json!([{"id": 5}]),
        json!([{"name": "q"}]),
        json!([null]),
        json!([{"id": "q"}, 7]),
    ] {
        refused(
            &node,
            json!({"payload": "p", "priority": "H", "queue": bad}),
            &["invalid queue element"],
        );
    }
    assert!(node.peek("q", "").transactions.is_empty());
    // The node is still fine.
    node.push(&["q"], "ok", "H");
}

fn content_type_must_be_json(backend: Backend) {
    let node = TestNode::start(backend);
    let body = r#"{"payload":"p","priority":"H","queue":[{"id":"ct"}]}"#;
    for ct in ["text/plain", "application/x-www-form-urlencoded"] {
        let r = node
            .client()
            .post(node.url("/trans"))
            .header("content-type", ct)
            .body(body)
            .send()
            .unwrap();
        assert_eq!(r.status(), 400);
        assert_eq!(
            r.json::<Value>().unwrap(),
            json!({"errors": ["invalid content-type header"]})
        );
    }
    let r = node
        .client()
        .post(node.url("/trans"))
        .body(body)
        .send()
        .unwrap();
    assert_eq!(r.status(), 400, "no content type at all");
    // A charset suffix is fine on POST.
    let r = node
        .client()
        .post(node.url("/trans"))
        .header("content-type", "application/json; charset=utf-8")
        .body(body)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(node.peek("ct", "").transactions.len(), 1);
}

fn malformed_json_is_refused_with_a_reason(backend: Backend) {
    let node = TestNode::start(backend);
    for body in ["{\"payload\": ", "not json", "\"a string\"", "42", ""] {
        let request = format!(
            "POST /trans HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let r = node.raw(request.as_bytes());
        assert_eq!(r.status, 400, "for {body:?}: {r:?}");
        assert!(
            r.header("content-type")
                .unwrap()
                .starts_with("application/json")
        );
        let reason = r.json()["errors"][0].as_str().unwrap().to_owned();
        assert!(
            reason.contains("JSON"),
            "the reason names the problem: {reason}"
        );
    }
}

fn oversized_bodies_are_refused(backend: Backend) {
    let node = TestNode::start(backend);
    // Announced with Content-Length: refused before it is read.
    let request = "POST /trans HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 1048577\r\nConnection: close\r\n\r\n";
    let r = node.raw(request.as_bytes());
    assert_eq!(r.status, 413, "{r:?}");
    assert!(
        r.json()["errors"][0]
            .as_str()
            .unwrap()
            .contains("larger than 1048576")
    );

    // A payload over the limit sent chunked gets the validator's precise answer, as in PopBox.
    let big = json!({"payload": "x".repeat(1_048_577), "priority": "H", "queue": [{"id": "big"}]})
        .to_string();
    let r = node
        .client()
        .post(node.url("/trans"))
        .header("content-type", "application/json")
        .body(reqwest::blocking::Body::new(std::io::Cursor::new(
            big.into_bytes(),
        )))
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().unwrap(),
        json!({"errors": ["payload greater than 1048576"]})
    );

    // A chunked body past the chunked limit is cut off with 413.
    let huge = vec![b' '; 9 * 1_048_576];
    let r = node
        .client()
        .post(node.url("/trans"))
        .header("content-type", "application/json")
        .body(reqwest::blocking::Body::new(std::io::Cursor::new(huge)))
        .send();
    match r {
        Ok(r) => assert_eq!(r.status(), 413),
        // The node may close the connection before the client finished sending.
        Err(e) => assert!(e.is_request() || e.is_body(), "{e}"),
    }
    assert!(node.peek("big", "").transactions.is_empty());
    node.push(&["big"], "still serving", "L");
}

fn expiration_delay_is_honoured(backend: Backend) {
    let node = TestNode::start(backend);
    let id = node.push_body(
        json!({"payload": "p", "priority": "L", "queue": [{"id": "d"}], "expirationDelay": 120}),
    );
    let (_, meta) = node.get(&format!("/trans/{id}"));
    let expires: i64 = meta["expirationDate"].as_str().unwrap().parse().unwrap();
    assert!((expires - (unix_now() + 120)).abs() <= 2, "{expires}");
}

fn org_routes_use_their_own_queues(backend: Backend) {
    let node = TestNode::start(backend);
    let (status, reply) = node.post(
        "/org/acme/trans",
        &json!({"payload": "p", "priority": "H", "queue": [{"id": "o"}]}),
    );
    assert_eq!(status, 200, "{reply}");
    let id = reply["data"].as_str().unwrap();
    assert!(
        node.peek("o", "").transactions.is_empty(),
        "the plain queue is another queue"
    );
    let (_, peeked) = node.get("/org/acme/queue/o/peek");
    assert_eq!(peeked["transactions"], json!([id]));
    // id_org in the query does not pick a tenant unless the node allows it.
    let (_, peeked) = node.get("/queue/o/peek?id_org=acme");
    assert_eq!(peeked["transactions"], json!([]));
}

fn id_org_selects_a_tenant_when_enabled(backend: Backend) {
    let node = TestNode::start_with(backend, &[("RELAYBOX__INBOX__ORG_FROM_PARAMS", "true")]);
    let (status, _) = node.post(
        "/trans?id_org=acme",
        &json!({"payload": "p", "priority": "H", "queue": [{"id": "t"}]}),
    );
    assert_eq!(status, 200);
    let (_, peeked) = node.get("/org/acme/queue/t/peek");
    assert_eq!(peeked["data"], json!(["p"]));
}

fn a_body_that_never_arrives_times_out(backend: Backend) {
    let node = TestNode::start_with(backend, &[("RELAYBOX__INBOX__BODY_TIMEOUT", "1")]);
    let started = std::time::Instant::now();
    let mut stream = std::net::TcpStream::connect(node.addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    std::io::Write::write_all(
        &mut stream,
        b"POST /trans HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"payl",
    )
    .unwrap();
    let mut answer = String::new();
    let _ = std::io::Read::read_to_string(&mut stream, &mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(
        answer.contains("request body not received within 1 s"),
        "{answer:?}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

/// A retry with the same `Idempotency-Key` stores nothing new and answers the first id, across
/// queues of every shard; another key, listener or tenant is another request.
fn an_idempotency_key_makes_a_retry_safe(backend: Backend) {
    let node = TestNode::start(backend);
    // Queue ids that land on many shards.
    let queues: Vec<String> = (0..20).map(|i| format!("once{i}")).collect();
    let body = json!({
        "payload": "p", "priority": "H",
        "queue": queues.iter().map(|q| json!({"id": q})).collect::<Vec<_>>(),
    });
    let (status, first) = node.push_once("k-1", &body, "");
    assert_eq!(status, 200, "{first}");
    for _ in 0..3 {
        assert_eq!(node.push_once("k-1", &body, ""), (200, first.clone()));
    }
    for queue in &queues {
        assert_eq!(
            node.peek(queue, "").transactions,
            [first["data"].as_str().unwrap()],
            "{queue}"
        );
    }
    let (_, other) = node.push_once("k-2", &body, "");
    assert_ne!(other["data"], first["data"]);
    let r = node
        .client()
        .post(node.url("/org/acme/trans"))
        .header("Idempotency-Key", "k-1")
        .json(&body)
        .send()
        .unwrap();
    let in_org: Value = r.json().unwrap();
    assert_ne!(
        in_org["data"], first["data"],
        "another tenant's key is another key"
    );

    // A held push too.
    let (_, later) = node.push_once(
        "k-3",
        &json!({"payload": "l", "priority": "H", "queue": [{"id": "once-later"}]}),
        "?delay=1",
    );
    let (_, again) = node.push_once(
        "k-3",
        &json!({"payload": "l", "priority": "H", "queue": [{"id": "once-later"}]}),
        "?delay=1",
    );
    assert_eq!(later, again);
    let popped = node.pop("once-later", "timeout=5&max=10");
    assert_eq!(popped.transactions, [later["data"].as_str().unwrap()]);
    assert!(
        node.pop("once-later", "timeout=2&max=10")
            .transactions
            .is_empty(),
        "pushed once"
    );
}

fn bad_idempotency_keys_are_refused(backend: Backend) {
    let node = TestNode::start(backend);
    let body = json!({"payload": "p", "priority": "H", "queue": [{"id": "badkey"}]});
    for key in ["", &"k".repeat(256), "with space"] {
        let (status, reply) = node.push_once(key, &body, "");
        assert_eq!(status, 400, "{key:?}: {reply}");
        assert!(
            reply["errors"][0]
                .as_str()
                .unwrap()
                .contains("Idempotency-Key"),
            "{reply}"
        );
    }
    assert!(
        node.peek("badkey", "").transactions.is_empty(),
        "nothing stored"
    );
}

crate::every_store!(
    an_idempotency_key_makes_a_retry_safe,
    bad_idempotency_keys_are_refused,
    a_message_goes_into_every_queue_it_names,
    an_empty_queue_list_is_valid,
    every_validation_error_is_named,
    queue_elements_must_be_objects_with_string_ids,
    content_type_must_be_json,
    malformed_json_is_refused_with_a_reason,
    oversized_bodies_are_refused,
    expiration_delay_is_honoured,
    org_routes_use_their_own_queues,
    id_org_selects_a_tenant_when_enabled,
    a_body_that_never_arrives_times_out,
);
