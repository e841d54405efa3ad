//! `GET|PUT|DELETE /trans/<id>` and `GET /trans/<id>/state[/<state>]`.

mod common;

use common::{Backend, TestNode, unix_now};
use serde_json::json;

fn metadata_and_queue_views(backend: Backend) {
    let node = TestNode::start(backend);
    let id = node.push(&["v1", "v2", "v3"], "p", "H");
    node.pop("v1", "timeout=1");

    let (status, meta) = node.get(&format!("/trans/{id}"));
    assert_eq!(status, 200);
    assert_eq!(meta["payload"], "p");
    assert!(meta.get("queues").is_none());

    let r = node
        .client()
        .get(node.url(&format!("/trans/{id}?queues=All")))
        .header("host", "inbox.example")
        .send()
        .unwrap();
    let all: serde_json::Value = r.json().unwrap();
    assert_eq!(
        all["queues"]["v1"],
        json!({"state": "Delivered", "href": "http://inbox.example/queue/v1"})
    );
    assert_eq!(all["queues"]["v2"]["state"], "Pending");

    let (_, pending) = node.get(&format!("/trans/{id}?queues=Pending"));
    let names: Vec<&String> = pending["queues"].as_object().unwrap().keys().collect();
    assert_eq!(names, ["v2", "v3"]);

    let (_, summary) = node.get(&format!("/trans/{id}?queues=summary"));
    assert_eq!(
        summary["queues"],
        json!({"totalNotifications": 3, "Pending": 2, "Delivered": 1})
    );

    // The parameter may come in the body too.
    let r = node
        .client()
        .get(node.url(&format!("/trans/{id}")))
        .json(&json!({"queues": "Delivered"}))
        .send()
        .unwrap();
    let delivered: serde_json::Value = r.json().unwrap();
    assert_eq!(delivered["queues"].as_object().unwrap().len(), 1);

    let (status, reply) = node.get(&format!("/trans/{id}?queues=Sideways"));
    assert_eq!(status, 400);
    assert_eq!(reply, json!({"errors": ["Wrong State:Sideways"]}));
}

fn unknown_transactions_read_as_empty(backend: Backend) {
    let node = TestNode::start(backend);
    assert_eq!(node.get("/trans/nope"), (200, json!({})));
    assert_eq!(
        node.get("/trans/nope?queues=All"),
        (200, json!({"queues": {}}))
    );
    assert_eq!(
        node.get("/trans/nope/state"),
        (200, json!({"ok": true, "data": {}}))
    );
}

fn state_endpoint(backend: Backend) {
    let node = TestNode::start(backend);
    let id = node.push(&["s1", "s2"], "p", "L");
    node.pop("s2", "timeout=1");
    assert_eq!(
        node.get(&format!("/trans/{id}/state")),
        (
            200,
            json!({"ok": true, "data": {"s1": "Pending", "s2": "Delivered"}})
        )
    );
    assert_eq!(
        node.get(&format!("/trans/{id}/state/Pending")),
        (200, json!({"ok": true, "data": {"s1": "Pending"}}))
    );
    assert_eq!(
        node.get(&format!("/trans/{id}/state/summary")),
        (
            200,
            json!({"ok": true, "data": {"totalNotifications": 2, "Pending": 1, "Delivered": 1}})
        )
    );
    assert_eq!(
        node.get(&format!("/trans/{id}/state/pending")),
        (400, json!({"errors": ["Wrong State:pending"]})),
        "state names are case-sensitive"
    );
}

fn updates_change_what_is_delivered(backend: Backend) {
    let node = TestNode::start(backend);
    let id = node.push(&["u"], "old", "H");
    assert_eq!(
        node.put(
            &format!("/trans/{id}"),
            &json!({"payload": "new", "priority": "L", "foo": 7})
        ),
        (200, json!({"ok": true}))
    );
    let (_, meta) = node.get(&format!("/trans/{id}"));
    assert_eq!(meta["payload"], "new");
    assert_eq!(meta["priority"], "H", "priority cannot change");
    assert_eq!(meta["foo"], "7");
    assert_eq!(node.pop("u", "timeout=1").payloads(), ["new"]);
}

/// Metadata merged by an update reads back exactly, whatever its text (the Redis store merges
/// it as JSON inside Redis).
fn updates_keep_any_text_exactly(backend: Backend) {
    let node = TestNode::start(backend);
    let id = node.push(&["text"], "plain", "H");
    let tricky = "é ✓ \"quoted\" a/b back\\slash\n\ttab \u{1} {\"json\": [1]}";
    let update =
        json!({"payload": tricky, "1": "one", "note": "", "callback": "http://x/y?a=1&b=2"});
    assert_eq!(node.put(&format!("/trans/{id}"), &update).0, 200);
    let (_, meta) = node.get(&format!("/trans/{id}"));
    assert_eq!(meta["payload"], tricky);
    assert_eq!(meta["1"], "one");
    assert_eq!(meta["note"], "");
    assert_eq!(meta["callback"], "http://x/y?a=1&b=2");
    assert_eq!(meta["priority"], "H");
    assert_eq!(node.pop("text", "timeout=1").payloads(), [tricky]);
}

fn update_edge_cases(backend: Backend) {
    let node = TestNode::start_with(backend, &[("RELAYBOX__INBOX__MAX_PAYLOAD_SIZE", "10")]);
    let id = node.push(&["e"], "p", "H");
    let path = format!("/trans/{id}");
    assert_eq!(
        node.put(&path, &json!({"foo": 1})),
        (200, json!({"ok": true, "data": "empty data"}))
    );
    assert_eq!(
        node.put("/trans/missing", &json!({"payload": "x"})),
        (400, json!({"errors": ["missing does not exist"]}))
    );
    assert_eq!(
        node.put(&path, &json!({"expirationDate": 2_147_483_648i64})),
        (400, json!({"errors": ["expirationDate out of range"]}))
    );
    assert_eq!(
        node.put(&path, &json!({"payload": "x".repeat(11)})),
        (400, json!({"errors": ["payload greater than 10"]}))
    );
    // PUT wants exactly application/json.
    let r = node
        .client()
        .put(node.url(&path))
        .header("content-type", "application/json; charset=utf-8")
        .body(r#"{"payload":"x"}"#)
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<serde_json::Value>().unwrap(),
        json!({"errors": ["invalid content-type header"]})
    );
    assert_eq!(
        node.get(&path).1["payload"],
        "p",
        "refused updates change nothing"
    );
}

fn moving_the_expiry(backend: Backend) {
    let node = TestNode::start(backend);
    let id = node.push(&["m"], "p", "H");
    let later = unix_now() + 7200;
    assert_eq!(
        node.put(&format!("/trans/{id}"), &json!({"expirationDate": later}))
            .0,
        200
    );
    assert_eq!(
        node.get(&format!("/trans/{id}")).1["expirationDate"],
        later.to_string()
    );
    // A date in the past deletes the transaction at once.
    assert_eq!(
        node.put(&format!("/trans/{id}"), &json!({"expirationDate": 1000}))
            .0,
        200
    );
    assert_eq!(node.get(&format!("/trans/{id}")), (200, json!({})));
}

fn delete_leaves_a_null_in_the_queue(backend: Backend) {
    let node = TestNode::start(backend);
    let id = node.push(&["del"], "p", "H");
    assert_eq!(
        node.delete(&format!("/trans/{id}")),
        (200, json!({"ok": true}))
    );
    assert_eq!(node.delete("/trans/never-was"), (200, json!({"ok": true})));
    assert_eq!(node.get(&format!("/trans/{id}")), (200, json!({})));
    let popped = node.pop("del", "timeout=1");
    assert_eq!(popped.transactions, std::slice::from_ref(&id));
    assert_eq!(popped.data, [serde_json::Value::Null]);
    assert_eq!(node.state(&id, "del"), "", "no state is resurrected");
}

fn history_of_every_state_change(backend: Backend) {
    let node = TestNode::start(backend);
    let id = node.push(&["h1", "h2"], "p", "H");
    node.pop("h1", "timeout=1");
    let (status, _) = node.post("/queue/h2/poprel", &json!({}));
    assert_eq!(status, 200);
    node.post("/queue/h2/ack", &json!({"transactions": [id]}));

    let (status, reply) = node.get(&format!("/trans/{id}/history"));
    assert_eq!(status, 200);
    assert_eq!(reply["ok"], true);
    let changes: Vec<(String, String)> = reply["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let stamp = c["timestamp"].as_str().unwrap();
            assert!(stamp.starts_with("20") && stamp.ends_with('Z'), "{stamp}");
            (
                c["queue"].as_str().unwrap().into(),
                c["state"].as_str().unwrap().into(),
            )
        })
        .collect();
    let want = [
        ("h1", "Pending"),
        ("h2", "Pending"),
        ("h1", "Delivered"),
        ("h2", "Blocked"),
        ("h2", "Delivered"),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(q, s)| (q.to_string(), s.to_string()))
        .collect();
    assert_eq!(changes, want);

    assert_eq!(
        node.get("/trans/never-was/history"),
        (200, json!({"ok": true, "data": []}))
    );
}

fn history_keeps_the_latest_thousand(backend: Backend) {
    let node = TestNode::start(backend);
    let queues: Vec<String> = (0..1005).map(|i| format!("cap{i}")).collect();
    let refs: Vec<&str> = queues.iter().map(String::as_str).collect();
    let id = node.push(&refs, "p", "L");
    let (_, reply) = node.get(&format!("/trans/{id}/history"));
    let data = reply["data"].as_array().unwrap();
    assert_eq!(data.len(), 1000);
    assert_eq!(data[0]["queue"], "cap5");
    assert_eq!(data[999]["queue"], "cap1004");
}

crate::every_store!(
    metadata_and_queue_views,
    unknown_transactions_read_as_empty,
    state_endpoint,
    updates_change_what_is_delivered,
    updates_keep_any_text_exactly,
    update_edge_cases,
    moving_the_expiry,
    delete_leaves_a_null_in_the_queue,
    history_of_every_state_change,
    history_keeps_the_latest_thousand,
);
