//! The Redis store on a Redis Cluster (`store.backend = "redis-cluster"`): shards spread over
//! the masters, wake-ups between nodes over sharded pub/sub, and a master's failure, which the
//! cluster repairs by promoting its replica while the node carries on. The inbox's behaviour on
//! a cluster is tested by the inbox suites (`redis_cluster::…`).

mod common;

use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::cluster::RedisCluster;
use common::{TestNode, skip_redis};
use serde_json::json;

#[test]
fn shards_spread_over_the_masters_and_every_key_carries_its_shards_tag() {
    if skip_redis() {
        return;
    }
    let cluster = RedisCluster::start(3, 1);
    let node = TestNode::on_cluster(&cluster, &[]);
    for i in 0..60 {
        node.push(&[&format!("q{i}")], "m", "H");
    }
    let masters: Vec<_> = (cluster.nodes.iter())
        .filter(|n| n.cli(&["ROLE"]).starts_with("master"))
        .collect();
    assert_eq!(masters.len(), 3);
    for master in masters {
        let keys = master.cli(&["--scan", "--pattern", "*"]);
        let keys: Vec<&str> = keys.lines().collect();
        assert!(keys.len() >= 10, "{} keys on a master", keys.len());
        assert!(
            keys.iter().all(|k| k.starts_with("{rb")),
            "untagged: {:?}",
            keys.iter().find(|k| !k.starts_with("{rb"))
        );
    }
    for i in 0..60 {
        assert_eq!(node.pop(&format!("q{i}"), "timeout=1").payloads(), ["m"]);
    }
    let (status, id) = node.post("/getuniversalid", &json!({}));
    assert_eq!(status, 200, "customer IDs on the cluster: {id}");
}

#[test]
fn a_push_on_one_node_wakes_a_pop_waiting_on_another() {
    if skip_redis() {
        return;
    }
    let cluster = RedisCluster::start(3, 1);
    let (waiting, pushing) = (
        TestNode::on_cluster(&cluster, &[]),
        TestNode::on_cluster(&cluster, &[]),
    );
    wakes_across(&waiting, &pushing, &["wake-a", "wake-b", "wake-c"]);
}

/// A pop held on `waiting` for each of `queues` is answered at once by a push on `pushing`.
fn wakes_across(waiting: &TestNode, pushing: &TestNode, queues: &[&str]) {
    for queue in queues {
        let held = waiting.hold_pop(queue);
        std::thread::sleep(Duration::from_millis(300));
        let started = Instant::now();
        let id = pushing.push(&[queue], "hello", "H");
        let answer = common::read_answer(&mut std::io::BufReader::new(held));
        assert_eq!(answer.0, 200);
        assert_eq!(answer.1["transactions"], json!([id]), "{queue}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "woken at once, not at the pop's timeout: {:?}",
            started.elapsed()
        );
    }
}

/// Pushes `payload`s to `queues` in turn until `stop`, recording each payload answered 200,
/// and each answered otherwise (it may or may not have landed).
fn push_until(
    node: &TestNode,
    queues: &[String],
    stop: &AtomicBool,
    answered: &Mutex<Vec<(Instant, String, u16)>>,
) {
    let mut i = 0;
    while !stop.load(Ordering::SeqCst) {
        let queue = &queues[i % queues.len()];
        let payload = format!("p{i}");
        let body = json!({"payload": payload, "priority": "H", "queue": [{"id": queue}]});
        let status = (node.client().post(node.url("/trans")).json(&body).send())
            .map_or(0, |r| r.status().as_u16());
        answered
            .lock()
            .unwrap()
            .push((Instant::now(), payload, status));
        i += 1;
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Everything in `queues`, popped until they are empty. A push answered 503 may have landed;
/// the node then deleted its transaction, and its reference pops as a null payload, which is
/// left out.
fn drain(node: &TestNode, queues: &[String]) -> Vec<String> {
    let mut received = Vec::new();
    for queue in queues {
        loop {
            let popped = node.pop(queue, "max=500&timeout=1");
            if popped.payloads().is_empty() {
                break;
            }
            let payloads = popped.payloads().into_iter().filter(|p| *p != "<null>");
            received.extend(payloads.map(str::to_owned));
        }
    }
    received
}

/// Kills the master of a shard's slot under continuous pushes. The cluster promotes its
/// replica within seconds; pushes to every queue succeed again, and with `sync_replicas = 1`
/// every push answered 200 is popped exactly once (the dead master comes back as a replica,
/// so that writes have a replica to reach again).
#[test]
fn pushes_go_on_through_a_masters_failure_and_none_answered_is_lost_or_doubled() {
    if skip_redis() {
        return;
    }
    let mut cluster = RedisCluster::start(3, 1);
    let node = TestNode::on_cluster(
        &cluster,
        &[
            ("RELAYBOX__REPLICATION__SYNC_REPLICAS", "1"),
            ("RELAYBOX__REPLICATION__SYNC_TIMEOUT_MS", "500"),
            ("RELAYBOX__STORE__REDIS_TIMEOUT_MS", "1000"),
        ],
    );
    let queues: Vec<String> = (0..12).map(|i| format!("fo{i}")).collect();
    let (stop, answered) = (AtomicBool::new(false), Mutex::new(Vec::new()));
    let (killed_at, restarted_at) = std::thread::scope(|scope| {
        scope.spawn(|| push_until(&node, &queues, &stop, &answered));
        std::thread::sleep(Duration::from_secs(2));
        // A master: some queues' shards are its.
        let victim = (cluster.nodes.iter())
            .position(|n| n.is_running() && n.cli(&["ROLE"]).starts_with("master"))
            .unwrap();
        cluster.nodes[victim].kill();
        let killed_at = Instant::now();
        // Promoted within the node timeout (2 s) and a little; then back as a replica.
        std::thread::sleep(Duration::from_secs(10));
        cluster.wait_until_ok(Duration::from_secs(20));
        let restarted_at = Instant::now();
        cluster.nodes[victim].restart();
        std::thread::sleep(Duration::from_secs(5));
        stop.store(true, Ordering::SeqCst);
        (killed_at, restarted_at)
    });
    let answered = Arc::new(answered.into_inner().unwrap());
    // Once the replica is back under the new master, every queue takes pushes again.
    let late: Vec<&(Instant, String, u16)> = (answered.iter())
        .filter(|(at, _, _)| *at > restarted_at + Duration::from_secs(3))
        .collect();
    assert!(late.len() >= 20, "{} late pushes", late.len());
    let failed = late.iter().filter(|(_, _, status)| *status != 200).count();
    assert_eq!(failed, 0, "pushes failing after the failover");
    // Promoted, the replica has no replica of its own yet: its queues' pushes cannot be
    // confirmed, but the other masters' still are (each write waits on its own master).
    let promoted = answered
        .iter()
        .filter(|(at, _, _)| *at > killed_at + Duration::from_secs(4) && *at < restarted_at);
    let confirmed = promoted.filter(|(_, _, status)| *status == 200).count();
    assert!(
        confirmed >= 8,
        "{confirmed} pushes confirmed while one master had no replica"
    );
    let before = answered.iter().filter(|(at, _, _)| *at < killed_at).count();
    assert!(before >= 20, "{before} pushes before the kill");

    let ok: HashSet<String> = (answered.iter())
        .filter(|(_, _, status)| *status == 200)
        .map(|(_, payload, _)| payload.clone())
        .collect();
    let all: HashSet<&String> = answered.iter().map(|(_, payload, _)| payload).collect();
    let received = drain(&node, &queues);
    let mut unique: HashSet<&String> = HashSet::new();
    let twice: Vec<&String> = received.iter().filter(|p| !unique.insert(p)).collect();
    assert!(twice.is_empty(), "delivered twice: {twice:?}");
    let lost: Vec<&String> = ok.iter().filter(|p| !unique.contains(p)).collect();
    assert!(
        lost.is_empty(),
        "{} answered 200 and lost: {lost:?}",
        lost.len()
    );
    let strange: Vec<&String> = received.iter().filter(|p| !all.contains(p)).collect();
    assert!(strange.is_empty(), "messages nobody pushed: {strange:?}");
}

/// Without `sync_replicas`, pushes to every queue succeed again as soon as the cluster has
/// promoted the dead master's replica, with no help.
#[test]
fn pushes_to_every_queue_succeed_again_once_a_replica_is_promoted() {
    if skip_redis() {
        return;
    }
    let mut cluster = RedisCluster::start(3, 1);
    let node = TestNode::on_cluster(&cluster, &[]);
    let queues: Vec<String> = (0..12).map(|i| format!("pr{i}")).collect();
    let (stop, answered) = (AtomicBool::new(false), Mutex::new(Vec::new()));
    let killed_at = std::thread::scope(|scope| {
        scope.spawn(|| push_until(&node, &queues, &stop, &answered));
        std::thread::sleep(Duration::from_secs(1));
        let victim = (cluster.nodes.iter())
            .position(|n| n.cli(&["ROLE"]).starts_with("master"))
            .unwrap();
        cluster.nodes[victim].kill();
        let killed_at = Instant::now();
        std::thread::sleep(Duration::from_secs(8));
        stop.store(true, Ordering::SeqCst);
        killed_at
    });
    let answered = answered.into_inner().unwrap();
    let failed_during = (answered.iter())
        .filter(|(at, _, status)| *at > killed_at && *status != 200)
        .count();
    assert!(
        failed_during > 0,
        "the dead master's shards refused pushes for a while"
    );
    // The last round over every queue: all taken.
    let last: Vec<&(Instant, String, u16)> = answered.iter().rev().take(queues.len()).collect();
    assert!(
        last.iter().all(|(_, _, status)| *status == 200),
        "after the promotion: {:?}",
        last.iter().map(|(_, _, status)| status).collect::<Vec<_>>()
    );
}

/// A master added and given its share of the slots (`redis-cli --cluster rebalance`, as the
/// README says) while pushes go on: the node follows the keys to their new master (`MOVED`,
/// `ASK`) without a restart, the new master holds shards, and every push answered 200 is
/// popped exactly once.
#[test]
fn a_node_follows_its_shards_when_the_cluster_is_resharded() {
    if skip_redis() {
        return;
    }
    let mut cluster = RedisCluster::start(3, 0);
    let node = TestNode::on_cluster(&cluster, &[("RELAYBOX__STORE__SHARDS", "64")]);
    let queues: Vec<String> = (0..40).map(|i| format!("rs{i}")).collect();
    let (stop, answered) = (AtomicBool::new(false), Mutex::new(Vec::new()));
    let added = std::thread::scope(|scope| {
        scope.spawn(|| push_until(&node, &queues, &stop, &answered));
        std::thread::sleep(Duration::from_secs(1));
        let added = cluster.add_master();
        std::thread::sleep(Duration::from_secs(1));
        stop.store(true, Ordering::SeqCst);
        added
    });
    // Wake-ups between nodes follow the channels to their new master too.
    let other = TestNode::on_cluster(&cluster, &[("RELAYBOX__STORE__SHARDS", "64")]);
    let moved: Vec<String> = (0..12).map(|i| format!("after-{i}")).collect();
    let moved: Vec<&str> = moved.iter().map(String::as_str).collect();
    wakes_across(&node, &other, &moved);
    let keys = cluster.nodes[added].cli(&["DBSIZE"]);
    assert!(
        keys.parse::<u64>().unwrap() > 0,
        "the new master holds keys: {keys}"
    );
    let answered = answered.into_inner().unwrap();
    let ok: HashSet<&String> = (answered.iter())
        .filter(|(_, _, status)| *status == 200)
        .map(|(_, payload, _)| payload)
        .collect();
    assert!(ok.len() >= 50, "{} pushes answered 200", ok.len());
    let received = drain(&node, &queues);
    let mut unique: HashSet<&String> = HashSet::new();
    let twice: Vec<&String> = received.iter().filter(|p| !unique.insert(p)).collect();
    assert!(twice.is_empty(), "delivered twice: {twice:?}");
    let lost: Vec<&&String> = ok.iter().filter(|p| !unique.contains(**p)).collect();
    assert!(
        lost.is_empty(),
        "{} answered 200 and lost: {lost:?}",
        lost.len()
    );
}

/// A slot held half-moved between two masters, as every resharding leaves each slot for a
/// moment: keys written meanwhile must go where the cluster says (`ASK`), never onto the new
/// master while they still live on the old one, or moving them fails (`BUSYKEY`) and the slot
/// stays stuck half-moved. Two shards, so that the moving slot holds a shard's every key (its
/// heartbeat, written every second, included) and pushes into two queues often reach it from
/// the other shard's transactions. Pushes (with and without an `Idempotency-Key`) and pops go
/// on through the move, answer 200 or 503 (the hold outlasts `store.redis_recovery`, so some
/// must give up) but never fail otherwise, and every push answered 200 is popped once from
/// each of its queues, during the move or after it.
#[test]
fn a_slot_held_half_moved_gets_no_key_twice_and_loses_nothing() {
    if skip_redis() {
        return;
    }
    let cluster = RedisCluster::start(3, 0);
    let node = TestNode::on_cluster(
        &cluster,
        &[
            ("RELAYBOX__STORE__SHARDS", "2"),
            ("RELAYBOX__STORE__REDIS_RECOVERY", "1"),
        ],
    );
    let queues: Vec<String> = (0..8).map(|i| format!("hm{i}")).collect();
    let (stop, answered) = (AtomicBool::new(false), Mutex::new(Vec::new()));
    let popped = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        scope.spawn(|| push_pairs_until(&node, &queues, &stop, &answered));
        scope.spawn(|| pop_until(&node, &queues, &stop, &popped));
        // A failed check below must stop the loops, or the scope waits for them for good.
        let _stops = StopOnDrop(&stop);
        std::thread::sleep(Duration::from_secs(1));
        let slot = shard_slot(&cluster);
        let to = (cluster.master_of(slot) + 1) % 3;
        let moving = cluster.begin_move(slot, to);
        // Half of the keys over, the node's heartbeat left behind: it is written again while
        // its other keys are asked for on the new master.
        let keys =
            cluster.nodes[moving.from].cli(&["CLUSTER", "COUNTKEYSINSLOT", &slot.to_string()]);
        let half = keys.parse::<usize>().unwrap() / 2;
        assert!(half >= 10, "{keys} keys in the slot");
        cluster.move_keys(&moving, half, |key| !key.contains("RB:N|"));
        std::thread::sleep(Duration::from_secs(3));
        let on = |i: usize| -> HashSet<String> {
            let keys =
                cluster.nodes[i].cli(&["CLUSTER", "GETKEYSINSLOT", &slot.to_string(), "100000"]);
            keys.lines().map(str::to_owned).collect()
        };
        let twice: Vec<String> = on(moving.from)
            .intersection(&on(moving.to))
            .cloned()
            .collect();
        assert!(twice.is_empty(), "keys on both masters: {twice:?}");
        cluster.finish_move(moving);
        std::thread::sleep(Duration::from_secs(1));
    });
    let answered = answered.into_inner().unwrap();
    let failed: Vec<u16> = (answered.iter())
        .map(|(_, status)| *status)
        .filter(|status| *status != 200 && *status != 503)
        .collect();
    assert!(failed.is_empty(), "pushes that failed: {failed:?}");
    let gave_up = answered.iter().filter(|(_, status)| *status == 503).count();
    assert!(gave_up > 0, "no push waited out the move's hold");
    let mut received = Vec::new();
    for (payloads, status) in popped.into_inner().unwrap() {
        assert!(status == 200 || status == 503, "a pop answered {status}");
        received.extend(payloads);
    }
    received.extend(drain(&node, &queues));
    let mut times: HashMap<&String, usize> = HashMap::new();
    for payload in &received {
        *times.entry(payload).or_default() += 1;
    }
    let ok: Vec<&String> = (answered.iter())
        .filter(|(_, status)| *status == 200)
        .map(|(payload, _)| payload)
        .collect();
    assert!(ok.len() >= 50, "{} pushes answered 200", ok.len());
    let wrong: Vec<(&String, usize)> = (ok.iter())
        .map(|payload| (*payload, times.get(payload).copied().unwrap_or(0)))
        .filter(|(_, n)| *n != 2)
        .collect();
    assert!(
        wrong.is_empty(),
        "answered 200, not popped once per queue: {wrong:?}"
    );
    let doubled: Vec<(&&String, &usize)> = times.iter().filter(|(_, n)| **n > 2).collect();
    assert!(doubled.is_empty(), "delivered twice: {doubled:?}");
}

/// A held push (`delay`) that comes due while its slot is half-moved, the set of due pushes
/// already on the new master and the push itself still on the old one, is pushed once the
/// slot has moved: not taken for one that expired with its transaction and dropped.
#[test]
fn a_held_push_due_while_its_slot_moves_is_pushed_after_the_move() {
    if skip_redis() {
        return;
    }
    let cluster = RedisCluster::start(3, 0);
    let node = TestNode::on_cluster(&cluster, &[("RELAYBOX__STORE__SHARDS", "1")]);
    let body = json!({"payload": "held", "priority": "H", "queue": [{"id": "later"}]});
    let (status, reply) = node.post("/trans?delay=1", &body);
    assert_eq!(status, 200, "{reply}");
    let slot = shard_slot(&cluster);
    let moving = cluster.begin_move(slot, (cluster.master_of(slot) + 1) % 3);
    let moved = cluster.move_keys(&moving, 1, |key| key.ends_with("PB:D|due"));
    assert_eq!(moved, 1, "the set of due pushes moved");
    std::thread::sleep(Duration::from_secs(3));
    cluster.finish_move(moving);
    assert_eq!(node.pop("later", "timeout=10").payloads(), ["held"]);
}

/// Pushes each payload into two neighbouring `queues` until `stop`, every other one with an
/// `Idempotency-Key`, recording the payloads and their answers.
fn push_pairs_until(
    node: &TestNode,
    queues: &[String],
    stop: &AtomicBool,
    answered: &Mutex<Vec<(String, u16)>>,
) {
    let mut i = 0;
    while !stop.load(Ordering::SeqCst) {
        let pair = [&queues[i % queues.len()], &queues[(i + 1) % queues.len()]];
        let payload = format!("p{i}");
        let body = json!({"payload": payload, "priority": "H",
            "queue": pair.map(|q| json!({"id": q}))});
        let mut request = node.client().post(node.url("/trans")).json(&body);
        if i % 2 == 1 {
            request = request.header("Idempotency-Key", format!("k{i}"));
        }
        let status = request.send().map_or(0, |r| r.status().as_u16());
        answered.lock().unwrap().push((payload, status));
        i += 1;
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Sets its flag when dropped, a panic's unwinding included.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// The slot of the node's only shard (`store.shards = 1`): that of any key in the cluster.
fn shard_slot(cluster: &RedisCluster) -> u16 {
    let key = (cluster.nodes.iter())
        .map(|n| n.cli(&["RANDOMKEY"]))
        .find(|key| !key.is_empty())
        .expect("the node wrote keys");
    let slot = cluster.nodes[0].cli(&["CLUSTER", "KEYSLOT", &key]);
    slot.parse().unwrap()
}

/// Pops from `queues` in turn until `stop`, recording what each pop gave and its status.
fn pop_until(
    node: &TestNode,
    queues: &[String],
    stop: &AtomicBool,
    popped: &Mutex<Vec<(Vec<String>, u16)>>,
) {
    let mut i = 0;
    while !stop.load(Ordering::SeqCst) {
        let path = format!("/queue/{}/pop?max=5&timeout=0", queues[i % queues.len()]);
        let (status, reply) = node.post(&path, &json!({}));
        let payloads = (reply["data"].as_array().into_iter().flatten())
            .filter_map(|p| p.as_str().map(str::to_owned))
            .collect();
        popped.lock().unwrap().push((payloads, status));
        i += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The cluster fails over by itself: a standby role, or one server for all transactions, is
/// refused with it, naming the key.
#[test]
fn settings_for_a_set_of_servers_are_refused_with_a_cluster() {
    for (key, value, named) in [
        ("RELAYBOX__REPLICATION__ROLE", "standby", "replication.role"),
        (
            "RELAYBOX__STORE__REDIS_TRANSACTIONS",
            "redis://127.0.0.1:6379/0",
            "store.redis_transactions",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_relaybox"))
            .arg("--config")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/cluster.toml"))
            .arg("check-config")
            .env("RELAYBOX__STORE__BACKEND", "redis-cluster")
            .env("RELAYBOX__STORE__REDIS_CLUSTER", "redis://127.0.0.1:7000")
            .env(key, value)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{key} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(named), "names {named}: {err}");
    }
}
