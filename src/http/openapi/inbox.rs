//! The inbox API's operations (PopBox's routes; §3 of the inbox contract).

use serde_json::json;

use super::{Op, schema};

/// The query parameters of a pop or peek.
fn takes(op: Op) -> Op {
    op.query(
        "max",
        json!({"type": "integer", "minimum": 0}),
        "Most messages answered (default inbox.max_messages).",
    )
}

fn waits(op: Op) -> Op {
    op.query(
        "timeout",
        json!({"type": "integer", "minimum": 0}),
        "Seconds to wait for a message (default inbox.pop_timeout, at most max_pop_timeout).",
    )
}

fn reliable(op: Op) -> Op {
    op.query(
        "timeoutACK",
        json!({"type": "integer", "minimum": 0}),
        "Seconds the client has to acknowledge before the message goes back.",
    )
}

/// A streamed subscription: it answers for as long as the client stays.
fn stream(op: Op, media: &'static str) -> Op {
    op.bare("200", media).errors()
}

/// The operation and its `/org/{org}` variant.
fn both(op: Op) -> [Op; 2] {
    [op.org(), op]
}

pub fn operations() -> Vec<Op> {
    let deploy_info = Op::get("deploy_info", "/", "What this node is and runs on").json(
        "200",
        "Name, version, store, uptime.",
        json!({"type": "object"}),
    );
    [
        transactions(),
        queues(),
        streams(),
        groups(),
        vec![deploy_info],
    ]
    .concat()
}

fn transactions() -> Vec<Op> {
    let provision = Op::post("provision", "/trans", "Provision a message into queues")
        .json_body(schema("NewTransaction"))
        .header(
            "Idempotency-Key",
            false,
            "Retries with the same key provision once.",
        )
        .json("200", "Stored and pushed: `data` is its id.", schema("Ok"))
        .errors();
    let get = Op::get("get_transaction", "/trans/{id}", "A transaction's metadata")
        .query(
            "queues",
            json!({"type": "string"}),
            "`All`, a state, or `summary`: add the queues' states.",
        )
        .json(
            "200",
            "Its metadata (`{}` when unknown).",
            json!({"type": "object"}),
        )
        .errors();
    let update = Op::put("update_transaction", "/trans/{id}", "Change a transaction")
        .json_body(json!({"type": "object"}))
        .json("200", "Changed.", schema("Ok"))
        .errors();
    let states = |op: Op| {
        op.json("200", "The states by queue.", schema("Ok"))
            .errors()
    };
    let mut ops = [both(provision), both(get), both(update)].concat();
    ops.extend([
        Op::delete("delete_transaction", "/trans/{id}", "Delete a transaction")
            .json("200", "Deleted (or never there).", schema("Ok"))
            .errors(),
        states(
            Op::get(
                "transaction_state",
                "/trans/{id}/state",
                "A transaction's state in each queue",
            )
            .query(
                "state",
                json!({"type": "string"}),
                "`All`, a state, or `summary`.",
            ),
        ),
        states(Op::get(
            "transaction_state_of",
            "/trans/{id}/state/{state}",
            "A transaction's queues in one state",
        )),
        Op::get(
            "transaction_history",
            "/trans/{id}/history",
            "Every state change of a transaction",
        )
        .json("200", "Oldest first.", schema("Ok"))
        .errors(),
    ]);
    ops
}

fn queues() -> Vec<Op> {
    let popped = |op: Op| {
        op.json("200", "The messages taken.", schema("Popped"))
            .errors()
    };
    let pop = popped(waits(takes(Op::post(
        "pop",
        "/queue/{queue}/pop",
        "Take messages, waiting for them",
    ))));
    let peek = popped(takes(Op::get(
        "peek",
        "/queue/{queue}/peek",
        "Read messages without taking them",
    )));
    let state = Op::get("queue_state", "/queue/{queue}", "A queue's state")
        .json(
            "200",
            "Its messages, blocked flag and last pop.",
            json!({"type": "object"}),
        )
        .errors();
    let secure = Op::post(
        "create_secure_queue",
        "/queue",
        "Create a secure queue (HTTPS listener only)",
    )
    .json_body(json!({"type": "object", "properties": {"queue": {"type": "string"}}}))
    .json("200", "Created.", schema("Ok"))
    .json("403", "It exists already.", schema("Errors"))
    .text(
        "404",
        "Not on this listener: secure queues are made over HTTPS.",
    )
    .errors();
    let ids = json!({"type": "array", "items": {"type": "string"}});
    let mut ops = [both(pop), both(peek), both(state), both(secure)].concat();
    ops.extend([
        popped(reliable(waits(takes(Op::post(
            "pop_reliable",
            "/queue/{queue}/poprel",
            "Take messages to acknowledge, waiting for them",
        ))))),
        Op::post(
            "ack",
            "/queue/{queue}/ack",
            "Acknowledge reliable deliveries",
        )
        .json_body(json!({"type": "object", "properties": {"transactions": ids}}))
        .json(
            "200",
            "One answer per transaction.",
            json!({"type": "array"}),
        )
        .errors(),
    ]);
    ops
}

fn streams() -> Vec<Op> {
    let chunked = "A chunked JSON document per message, for as long as the client stays.";
    let subscribe = Op::post(
        "subscribe",
        "/queue/{queue}/subscribe",
        "Stream a queue's messages",
    );
    let events = Op::get(
        "events",
        "/queue/{queue}/events",
        "Stream a queue's messages as Server-Sent Events",
    );
    let websocket = Op::get(
        "websocket",
        "/queue/{queue}/ws",
        "Stream a queue's messages on a WebSocket",
    )
    .bare("101", "Switched to a WebSocket: a text frame per message.")
    .errors();
    let reliable = reliable(Op::post(
        "subscribe_reliable",
        "/queue/{queue}/subscriberel",
        "Stream a queue's messages, each to acknowledge",
    ));
    [
        both(stream(subscribe, chunked)).to_vec(),
        both(stream(
            events,
            "`text/event-stream`, one event per message.",
        ))
        .to_vec(),
        both(websocket).to_vec(),
        vec![stream(reliable, chunked)],
    ]
    .concat()
}

fn groups() -> Vec<Op> {
    let ok = json!({"type": "object", "properties": {"ok": {"type": "string"}}});
    let names = json!({"type": "array", "items": {"type": "string"}});
    vec![
        Op::post(
            "create_group",
            "/group",
            "Create a group of queues, or add to one",
        )
        .json_body(schema("Group"))
        .json("200", "Stored.", ok.clone())
        .errors(),
        Op::get("get_group", "/group/{name}", "A group's queues")
            .json("200", "Its queues (none when unknown).", schema("Group"))
            .errors(),
        Op::put(
            "change_group",
            "/group/{name}",
            "Add queues to a group or remove them",
        )
        .json_body(json!({"type": "object", "properties": {
            "queuesToAdd": names,
            "queuesToRemove": names,
        }}))
        .json("200", "Changed.", ok.clone())
        .errors(),
        Op::delete("delete_group", "/group/{name}", "Delete a group")
            .json("200", "Deleted.", ok)
            .errors(),
    ]
}
