//! Where queues live on a set of several Redis servers: by `store.queue_hash` (Redis Cluster's
//! CRC16 slots by default), recorded by the first node so that no node with another hash
//! reads or writes the set.

mod common;

use std::process::Command;

use common::{RedisServer, TestNode, skip_redis};

/// The queue ids whose lists are on `server`.
fn queues_on(server: &RedisServer) -> Vec<String> {
    let keys = server.cli(&["--scan", "--pattern", "PB:Q|H:*"]);
    let mut ids: Vec<String> = (keys.lines())
        .filter_map(|k| k.strip_prefix("PB:Q|H:UNSEC:"))
        .map(str::to_owned)
        .collect();
    ids.sort();
    ids
}

/// Starts a node on `urls` with `env`, expecting it to stop at once; its standard error.
fn refused_start(urls: &str, env: &[(&str, &str)]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_relaybox"))
        .arg("--config")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/cluster.toml"))
        .env("RELAYBOX__NODE__LISTEN", "127.0.0.1:0")
        .env("RELAYBOX__STORE__BACKEND", "redis")
        .env("RELAYBOX__STORE__REDIS_SERVERS", urls)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "it stops");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn queues_spread_by_crc16_and_a_node_with_another_hash_is_refused() {
    if skip_redis() {
        return;
    }
    let (a, b) = (RedisServer::start(), RedisServer::start());
    let node = TestNode::on_redis(&[&a, &b], &[]);
    let ids: Vec<String> = (1..=40).map(|i| format!("q{i}")).collect();
    for id in &ids {
        node.push(&[id], "m", "H");
    }
    // Redis Cluster's slots (Redis itself says which), the first half on the first server.
    let cluster = RedisServer::start_cluster_node();
    let slot = |id: &str| -> u16 {
        cluster
            .cli(&["CLUSTER", "KEYSLOT", id])
            .trim()
            .parse()
            .unwrap()
    };
    let (mut first, mut second): (Vec<String>, Vec<String>) =
        ids.iter().cloned().partition(|id| slot(id) < 8192);
    first.sort();
    second.sort();
    assert_eq!(queues_on(&a), first);
    assert_eq!(queues_on(&b), second);
    assert!(
        first.len() >= 10 && second.len() >= 10,
        "spread: {first:?} / {second:?}"
    );
    assert_eq!(a.cli(&["GET", "RB:H|layout"]).trim(), "crc16 spread");

    let urls = format!("{},{}", a.url(), b.url());
    let err = refused_start(&urls, &[("RELAYBOX__STORE__QUEUE_HASH", "popbox")]);
    assert!(
        err.contains("store.queue_hash") && err.contains("\"crc16\""),
        "names the setting and the set's hash: {err}"
    );
    assert_eq!(
        node.pop("q1", "timeout=1").payloads(),
        ["m"],
        "the set is untouched"
    );
}

#[test]
fn popbox_hash_places_queues_as_popbox_did() {
    if skip_redis() {
        return;
    }
    let (a, b) = (RedisServer::start(), RedisServer::start());
    let node = TestNode::on_redis(&[&a, &b], &[("RELAYBOX__STORE__QUEUE_HASH", "popbox")]);
    // The sum of the characters, modulo 2: 'q' = 113, '1' = 49, '2' = 50.
    node.push(&["q1"], "m", "H");
    node.push(&["q2"], "m", "H");
    assert_eq!(queues_on(&a), ["q1"]);
    assert_eq!(queues_on(&b), ["q2"]);
    assert_eq!(a.cli(&["GET", "RB:H|layout"]).trim(), "popbox spread");
}

/// Transactions spread over the set, or all on one server (`store.redis_transactions`): a set
/// written one way refuses a node set the other, naming the setting to change. A record of the
/// hash alone is from before transactions spread, when they all lived on one server.
#[test]
fn a_node_placing_transactions_otherwise_than_the_set_is_refused() {
    if skip_redis() {
        return;
    }
    let (a, b) = (RedisServer::start(), RedisServer::start());
    let urls = format!("{},{}", a.url(), b.url());
    let on_first = a.url();
    let one = [("RELAYBOX__STORE__REDIS_TRANSACTIONS", on_first.as_str())];
    for (recorded, env, setting) in [
        ("crc16 spread", &one[..], "remove store.redis_transactions"),
        ("crc16 one", &[][..], "set store.redis_transactions"),
        ("crc16", &[][..], "set store.redis_transactions"),
    ] {
        a.cli(&["SET", "RB:H|layout", recorded]);
        let err = refused_start(&urls, env);
        assert!(
            err.contains(setting) && err.contains(recorded),
            "{recorded}: says to {setting}: {err}"
        );
    }
    // Set the way it was written, it starts, and keeps every transaction on that server.
    let node = TestNode::on_redis(&[&a, &b], &one);
    for i in 1..=10 {
        node.push(&[&format!("q{i}")], "m", "H");
    }
    let on_b = b.cli(&["--scan", "--pattern", "PB:T|*"]);
    assert_eq!(on_b.trim(), "", "no transaction on the second server");
}

#[test]
fn one_server_holds_every_queue_whatever_the_hash() {
    if skip_redis() {
        return;
    }
    let a = RedisServer::start();
    for hash in ["crc16", "popbox"] {
        let node = TestNode::on_redis(&[&a], &[("RELAYBOX__STORE__QUEUE_HASH", hash)]);
        node.push(&["q"], hash, "H");
    }
    assert_eq!(a.cli(&["EXISTS", "RB:H|layout"]).trim(), "0");
    let node = TestNode::on_redis(&[&a], &[]);
    assert_eq!(
        node.pop("q", "max=2&timeout=1").payloads(),
        ["crc16", "popbox"]
    );
}
