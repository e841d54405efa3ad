//! `/group`: named lists of queues, and provisioning to them with `groups`.

mod common;

use common::{Backend, TestNode};
use serde_json::json;

fn members(node: &TestNode, name: &str) -> Vec<String> {
    let (status, reply) = node.get(&format!("/group/{name}"));
    assert_eq!(status, 200);
    assert_eq!(reply["name"], name);
    let mut queues: Vec<String> = serde_json::from_value(reply["queues"].clone()).unwrap();
    queues.sort();
    queues
}

fn create_append_change_delete(backend: Backend) {
    let node = TestNode::start(backend);
    assert_eq!(
        members(&node, "g"),
        Vec::<String>::new(),
        "unknown reads empty"
    );
    assert_eq!(
        node.post("/group", &json!({"name": "g", "queues": ["a", "b"]})),
        (200, json!({"ok": "group stored"}))
    );
    // Creating it again appends (PopBox's SADD).
    node.post("/group", &json!({"name": "g", "queues": ["c", "a"]}));
    assert_eq!(members(&node, "g"), ["a", "b", "c"]);

    // A queue in both lists is only removed.
    assert_eq!(
        node.put(
            "/group/g",
            &json!({"queuesToAdd": ["d", "b"], "queuesToRemove": ["b", "a"]})
        ),
        (200, json!({"ok": "group modified"}))
    );
    assert_eq!(members(&node, "g"), ["c", "d"]);

    // Removing the last members deletes the group.
    node.put("/group/g", &json!({"queuesToRemove": ["c", "d"]}));
    assert_eq!(
        node.put("/group/g", &json!({"queuesToAdd": ["x"]})),
        (400, json!({"errors": ["g does not exist"]}))
    );

    node.post("/group", &json!({"name": "h", "queues": ["x"]}));
    assert_eq!(
        node.delete("/group/h"),
        (200, json!({"ok": "Group h removed"}))
    );
    assert_eq!(members(&node, "h"), Vec::<String>::new());
    // The org variants ignore the org.
    node.post("/org/acme/group", &json!({"name": "o", "queues": ["y"]}));
    assert_eq!(members(&node, "o"), ["y"]);
}

fn bad_group_requests(backend: Backend) {
    let node = TestNode::start(backend);
    for body in [
        json!({}),
        json!({"name": "g"}),
        json!({"queues": ["a"]}),
        json!({"name": "g", "queues": []}),
        json!({"name": "g", "queues": "abc"}),
        json!({"name": "g", "queues": [1]}),
        json!({"name": ["g"], "queues": ["a"]}),
    ] {
        let (status, reply) = node.post("/group", &body);
        assert_eq!(status, 400, "{body} → {reply}");
        assert!(reply["errors"].as_array().is_some_and(|e| !e.is_empty()));
    }
    assert_eq!(
        node.post("/group", &json!({})).1,
        json!({"errors": ["missing name", "missing queues"]})
    );
    assert_eq!(
        members(&node, "g"),
        Vec::<String>::new(),
        "nothing was stored"
    );

    // PUT: unknown group, no lists, both.
    assert_eq!(
        node.put("/group/nope", &json!({"queuesToAdd": ["a"]})),
        (400, json!({"errors": ["nope does not exist"]}))
    );
    node.post("/group", &json!({"name": "g", "queues": ["a"]}));
    assert_eq!(
        node.put("/group/g", &json!({})),
        (400, json!({"errors": ["missing queues to add/remove"]}))
    );
    assert_eq!(
        node.put("/group/nope", &json!({"queuesToAdd": []})),
        (
            400,
            json!({"errors": ["nope does not exist", "missing queues to add/remove"]})
        )
    );
    let (status, _) = node.put("/group/g", &json!({"queuesToAdd": "b"}));
    assert_eq!(status, 400);
    assert_eq!(members(&node, "g"), ["a"]);
}

fn group_names_cannot_touch_other_data(backend: Backend) {
    let node = TestNode::start(backend);
    let id = node.push(&["q"], "keep me", "H");
    // PopBox kept groups under their bare name: this would have deleted the transaction.
    for part in ["meta", "state", "tx"] {
        let name = format!("PB:T|{id}:{part}");
        let path = format!("/group/{}", name.replace('|', "%7C"));
        assert_eq!(node.delete(&path).0, 200);
        assert_eq!(members(&node, &name), Vec::<String>::new());
    }
    assert_eq!(node.get(&format!("/trans/{id}")).1["payload"], "keep me");
    assert_eq!(node.state(&id, "q"), "Pending");
}

fn provisioning_to_groups(backend: Backend) {
    let node = TestNode::start(backend);
    node.post("/group", &json!({"name": "team", "queues": ["ann", "bob"]}));
    node.post("/group", &json!({"name": "ops", "queues": ["bob", "cy"]}));
    let id = node.push_body(json!({
        "payload": "hello",
        "priority": "H",
        "queue": [{"id": "dee"}],
        "groups": ["team", "ops", "nobody"],
    }));
    for queue in ["ann", "bob", "cy", "dee"] {
        assert_eq!(node.state(&id, queue), "Pending", "{queue}");
    }
    // `bob` is in both groups: pushed twice, as PopBox does.
    assert_eq!(
        node.pop("bob", "timeout=1&max=5").transactions,
        [id.clone(), id.clone()]
    );
    assert_eq!(node.pop("ann", "timeout=1&max=5").transactions, [id]);

    // `queue` may be left out when groups name the receivers.
    let id = node.push_body(json!({"payload": "p", "priority": "L", "groups": ["team"]}));
    assert_eq!(node.pop("ann", "timeout=1").transactions, [id]);

    // The org route does not expand groups.
    let (status, reply) = node.post(
        "/org/acme/trans",
        &json!({"payload": "p", "priority": "L", "groups": ["team"]}),
    );
    assert_eq!(
        (status, reply),
        (400, json!({"errors": ["undefined queue"]}))
    );

    let (status, reply) = node.post(
        "/trans",
        &json!({"payload": "p", "priority": "L", "groups": "team"}),
    );
    assert_eq!(status, 400);
    assert!(
        reply["errors"][0]
            .as_str()
            .unwrap()
            .starts_with("invalid groups")
    );
}

crate::every_store!(
    create_append_change_delete,
    bad_group_requests,
    group_names_cannot_touch_other_data,
    provisioning_to_groups,
);
