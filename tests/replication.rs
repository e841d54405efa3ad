//! Replication chains with real redis-servers and nodes: a standby attaches its Redis set and
//! serves nothing until the first request that needs the store promotes it (probes never do);
//! the promotion is one, however many requests ask; the old primary is fenced; and a node
//! restarted with stale settings refuses to wipe what was written since.

mod common;

use std::net::TcpStream;
use std::sync::Arc;
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::{RedisServer, TestNode};
use serde_json::Value;

fn standby_of(own: &RedisServer, upstream: &RedisServer) -> TestNode {
    let upstream = upstream.url();
    TestNode::on_redis(
        &[own],
        &[
            ("RELAYBOX__REPLICATION__ROLE", "standby"),
            ("RELAYBOX__REPLICATION__UPSTREAM_SERVERS", &upstream),
        ],
    )
}

/// A primary over R with `message` written through it (queue `q`), and its standby over R1, in
/// sync.
struct Chain {
    r: RedisServer,
    r1: RedisServer,
    primary: TestNode,
    standby: TestNode,
}

fn chain_with(message: &str, primary_env: &[(&str, &str)]) -> Chain {
    let (r, r1) = (RedisServer::start(), RedisServer::start());
    let primary = TestNode::on_redis(&[&r], primary_env);
    let standby = standby_of(&r1, &r);
    primary.push(&["q"], message, "H");
    // Everything the primary's Redis holds by now has reached the standby's.
    let written = offset(&r, "master_repl_offset");
    eventually("replicated", || offset(&r1, "slave_repl_offset") >= written);
    Chain {
        r,
        r1,
        primary,
        standby,
    }
}

/// A replication offset from a server's `INFO replication`.
fn offset(server: &RedisServer, field: &str) -> u64 {
    let info = server.cli(&["INFO", "replication"]);
    let value = info
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'));
    value.and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

/// Waits up to 10 s for `check`.
fn eventually(what: &str, check: impl Fn() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < Duration::from_secs(10), "{what}");
        sleep(Duration::from_millis(50));
    }
}

fn role(server: &RedisServer) -> String {
    server
        .cli(&["ROLE"])
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

fn ready(node: &TestNode) -> (u16, Value) {
    node.get("/ready")
}

/// A standby replicates its upstream and says so; probes, operators' requests and `HEAD`
/// leave it a standby.
#[test]
fn a_standby_waits_and_probes_do_not_promote_it() {
    if common::skip_redis() {
        return;
    }
    let (r, r1) = (RedisServer::start(), RedisServer::start());
    let primary = TestNode::on_redis(&[&r], &[]);
    primary.push(&["q"], "before", "H");
    let standby = standby_of(&r1, &r);
    assert_eq!(role(&r1), "slave");
    eventually("the standby's link is up", || {
        let (_, ready) = ready(&standby);
        ready["replication"]["links"][0]["up"] == true
    });
    let (status, body) = ready(&standby);
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["replication"]["role"], "standby");
    assert!(body["reason"].as_str().unwrap().starts_with("standby"));
    assert_eq!(standby.get("/health").0, 200);
    for path in ["/", "/admin/stats", "/admin/charts/cpu.1h.svg"] {
        let (status, body) = standby.get(path);
        assert_eq!(status, 503, "{path}: {body}");
    }
    // Scraped, it says what it is.
    let scrape = common::scrape::Scrape::of(&standby);
    assert_eq!(scrape.value(r#"relaybox_role{role="standby"}"#), 1.0);
    assert_eq!(scrape.value(r#"relaybox_role{role="primary"}"#), 0.0);
    // HEAD and OPTIONS, even on the relay's paths (which take any method, to answer it).
    for method in [reqwest::Method::HEAD, reqwest::Method::OPTIONS] {
        let asked = (standby.client())
            .request(method.clone(), standby.url("/agent/3001"))
            .send()
            .unwrap();
        assert_eq!(asked.status(), 503, "{method}: answered, not promoted");
    }
    sleep(Duration::from_millis(500));
    assert_eq!(role(&r1), "slave", "nothing promoted it");
    assert_eq!(ready(&primary).0, 200, "the primary serves");
    // The primary's status shows the chain below its server.
    eventually("the primary sees its replica", || {
        let (_, status) = primary.get("/admin/status");
        let replica = &status["chain"][0]["replicas"][0];
        replica["address"] == format!("127.0.0.1:{}", r1.port) && replica["state"] == "online"
    });
}

/// The first request to the standby promotes its set by a coordinated failover: the message
/// written through the old primary is there, the old master now replicates the new one, the
/// epoch went up by one, and the old primary, demoted under it, closes its listener.
#[test]
fn the_first_request_promotes_and_the_old_primary_is_fenced() {
    if common::skip_redis() {
        return;
    }
    let Chain {
        r,
        r1,
        mut primary,
        standby,
    } = chain_with("written before", &[]);
    let popped = standby.pop("q", "timeout=1");
    assert_eq!(popped.payloads(), ["written before"]);
    assert_eq!(role(&r1), "master");
    assert_eq!(role(&r), "slave", "the old master follows the new one");
    assert_eq!(r1.cli(&["GET", "RB:P|epoch"]), "1");
    assert_eq!(ready(&standby).0, 200);
    let (_, body) = ready(&standby);
    assert_eq!(
        body["replication"],
        serde_json::json!({"role": "primary", "epoch": 1})
    );
    // The old primary writes (its heartbeat, at least) and is refused: it fences itself.
    eventually("the old primary closed its listener", || {
        TcpStream::connect(primary.addr).is_err()
    });
    assert!(
        primary.log().iter().any(|l| l.contains("fenced")),
        "the log says so"
    );
    // It stops, rather than idle with every background task failing.
    assert_eq!(primary.wait_exit(Duration::from_secs(10)), Some(false));
    assert_eq!(standby.push(&["q"], "after", "H").len(), 36);
}

/// Fifty requests at once on a standby: one promotion, every request served.
#[test]
fn fifty_first_requests_promote_once() {
    if common::skip_redis() {
        return;
    }
    let (r, r1) = (RedisServer::start(), RedisServer::start());
    let _primary = TestNode::on_redis(&[&r], &[]);
    let standby = Arc::new(standby_of(&r1, &r));
    let threads: Vec<_> = (0..50)
        .map(|i| {
            let standby = Arc::clone(&standby);
            std::thread::spawn(move || standby.push(&["many"], &format!("m{i}"), "H"))
        })
        .collect();
    for thread in threads {
        assert_eq!(
            thread.join().unwrap().len(),
            36,
            "each push answered with its id"
        );
    }
    assert_eq!(r1.cli(&["GET", "RB:P|epoch"]), "1");
    let log = standby.log();
    let count = |part: &str| log.iter().filter(|l| l.contains(part)).count();
    assert_eq!(count("promoting this node's Redis set"), 1, "{log:?}");
    assert_eq!(count("promoted: this node serves"), 1, "{log:?}");
    assert_eq!(standby.pop("many", "max=100&timeout=1").data.len(), 50);
}

/// With the upstream gone, the standby takes over with what it has (`REPLICAOF NO ONE`). Then
/// the node restarted with its old settings (standby of the old master, back empty) refuses to
/// attach its set, which would wipe everything written since.
#[test]
fn an_upstream_gone_and_the_restart_trap() {
    if common::skip_redis() {
        return;
    }
    let Chain {
        mut r,
        r1,
        primary,
        standby,
    } = chain_with("kept", &[]);
    drop(primary);
    r.kill();
    assert_eq!(standby.pop("q", "timeout=1").payloads(), ["kept"]);
    assert_eq!(role(&r1), "master");
    assert_eq!(r1.cli(&["GET", "RB:P|epoch"]), "1");
    standby.push(&["q"], "since", "H");
    drop(standby);
    r.restart();
    let upstream = r.url();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_relaybox"))
        .args([
            "--config",
            concat!(env!("CARGO_MANIFEST_DIR"), "/cluster.toml"),
        ])
        .env("RELAYBOX__NODE__LISTEN", "127.0.0.1:0")
        .env("RELAYBOX__STORE__BACKEND", "redis")
        .env("RELAYBOX__STORE__REDIS_SERVERS", r1.url())
        .env("RELAYBOX__REPLICATION__ROLE", "standby")
        .env("RELAYBOX__REPLICATION__UPSTREAM_SERVERS", &upstream)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("holds epoch 1 but its upstream"), "{said}");
    assert_eq!(role(&r1), "master", "left as it was");
    let head = TestNode::on_redis(&[&r1], &[]);
    assert_eq!(
        head.pop("q", "timeout=1").payloads(),
        ["since"],
        "nothing wiped"
    );
}

/// With `sync_replicas = 1` a push is answered `200` only once the standby's Redis has it. The
/// standby's Redis frozen: pushes are refused (`503`, naming why) instead. Then the primary
/// node and its Redis die, the standby takes over with what its Redis has: every push that
/// was answered `200` is delivered, exactly once. (Without the setting the pushes made while
/// the replica was frozen are answered `200` and lost.)
#[test]
fn with_a_synced_replica_no_acknowledged_push_is_lost() {
    if common::skip_redis() {
        return;
    }
    let (mut r, r1) = (RedisServer::start(), RedisServer::start());
    let synced = [
        ("RELAYBOX__REPLICATION__SYNC_REPLICAS", "1"),
        ("RELAYBOX__REPLICATION__SYNC_TIMEOUT_MS", "300"),
    ];
    let primary = TestNode::on_redis(&[&r], &synced);
    // (Refused, but stored on the master: it reaches the replica when that attaches.)
    let body = serde_json::json!({"payload": "x", "priority": "H", "queue": [{"id": "other"}]});
    let (status, refused) = primary.post("/trans", &body);
    assert_eq!(status, 503, "no replica yet: {refused}");
    let said = refused["errors"][0].as_str().unwrap();
    assert!(said.contains("only 0 of the 1 replicas"), "{said}");
    let standby = standby_of(&r1, &r);
    // Synced, and the stream flowing (the primary's heartbeat writes every second).
    eventually("the replica applies the stream", || {
        let info = r1.cli(&["INFO", "replication"]);
        let offset = info
            .lines()
            .find_map(|l| l.strip_prefix("slave_repl_offset:"));
        offset.and_then(|o| o.trim().parse::<u64>().ok()) > Some(0)
    });
    let mut acknowledged: Vec<String> = Vec::new();
    for i in 0..20 {
        let (status, reply) = primary.post("/trans", &body_of(i));
        assert_eq!(status, 200, "{reply}");
        acknowledged.push(format!("m{i}"));
    }
    r1.signal("STOP");
    for i in 20..25 {
        let (status, reply) = primary.post("/trans", &body_of(i));
        assert_eq!(status, 503, "not confirmed: {reply}");
    }
    drop(primary);
    r.kill();
    r1.signal("CONT");
    let popped = standby.pop("d", "max=100&timeout=1");
    let payloads = popped.payloads();
    for message in &acknowledged {
        let copies = payloads.iter().filter(|p| **p == message.as_str()).count();
        assert_eq!(
            copies, 1,
            "{message}: every acknowledged push, once: {payloads:?}"
        );
    }
    // A refused push is deleted again by the node, but what the frozen replica's socket had
    // taken in before the primary died (its push; maybe not the delete) still arrives: a 503
    // says "not confirmed", not "not stored".
    let refused = ["m20", "m21", "m22", "m23", "m24", "<null>"];
    let others: Vec<&&str> = (payloads.iter())
        .filter(|p| !acknowledged.iter().any(|a| a == **p))
        .collect();
    assert!(others.iter().all(|p| refused.contains(p)), "{payloads:?}");
}

fn body_of(i: usize) -> Value {
    serde_json::json!({"payload": format!("m{i}"), "priority": "H", "queue": [{"id": "d"}]})
}

/// Settings that cannot work stop start-up, naming the key.
#[test]
fn bad_replication_settings_are_named() {
    for (env, named) in [
        (
            vec![("RELAYBOX__REPLICATION__ROLE", "standby")],
            "replication.role",
        ),
        (
            vec![
                ("RELAYBOX__STORE__BACKEND", "redis"),
                ("RELAYBOX__REPLICATION__ROLE", "standby"),
            ],
            "replication.upstream_servers",
        ),
        (
            vec![
                ("RELAYBOX__STORE__BACKEND", "redis"),
                ("RELAYBOX__STORE__REDIS_SERVERS", "redis://127.0.0.1:7/0"),
                ("RELAYBOX__REPLICATION__ROLE", "standby"),
                (
                    "RELAYBOX__REPLICATION__UPSTREAM_SERVERS",
                    "redis://127.0.0.1:7/0",
                ),
            ],
            "cannot be its own upstream",
        ),
        (
            vec![(
                "RELAYBOX__REPLICATION__UPSTREAM_SERVERS",
                "redis://127.0.0.1:7/0",
            )],
            "replication.upstream_servers",
        ),
        (
            vec![
                ("RELAYBOX__STORE__BACKEND", "redis"),
                ("RELAYBOX__REPLICATION__SYNC_REPLICAS", "1"),
                ("RELAYBOX__REPLICATION__SYNC_TIMEOUT_MS", "1000"),
            ],
            "replication.sync_timeout_ms",
        ),
        (
            vec![("RELAYBOX__REPLICATION__SYNC_REPLICAS", "1")],
            "replication.sync_replicas",
        ),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_relaybox"))
            .args([
                "--config",
                concat!(env!("CARGO_MANIFEST_DIR"), "/cluster.toml"),
            ])
            .arg("check-config")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{env:?}: {err}");
        assert!(err.contains(named), "{env:?}: {err}");
    }
}

fn signal_node(node: &TestNode, signal: &str) {
    let sent = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(node.pid().to_string())
        .status()
        .unwrap();
    assert!(sent.success());
}

/// A primary frozen while the standby takes over, then resumed: it takes no write after the
/// takeover (its Redis was demoted under it, so it fences itself), and nothing written through
/// the new primary is lost.
#[test]
fn a_frozen_primary_resumed_after_the_takeover_writes_nothing() {
    if common::skip_redis() {
        return;
    }
    let Chain {
        r,
        r1: _r1,
        primary,
        standby,
    } = chain_with("before", &[]);
    signal_node(&primary, "STOP");
    standby.push(&["q"], "through the new primary", "H");
    assert_eq!(role(&r), "slave");
    // Resumed: whatever it tries is refused by its Redis, and it closes its listener.
    signal_node(&primary, "CONT");
    let late = primary
        .client()
        .post(primary.url("/trans"))
        .json(&serde_json::json!({
            "payload": "late", "priority": "H", "queue": [{"id": "q"}]
        }))
        .send();
    if let Ok(late) = late {
        let status = late.status();
        assert_eq!(
            status,
            503,
            "a write after the takeover is refused: {}",
            late.text().unwrap()
        );
    }
    eventually("the old primary fenced itself", || {
        TcpStream::connect(primary.addr).is_err()
    });
    let popped = standby.pop("q", "max=10&timeout=1");
    assert_eq!(popped.payloads(), ["before", "through the new primary"]);
}

/// Two failovers in a row: after the first, the failed node comes back as the standby at the
/// end of the chain (its Redis replicating the new primary's); the second failover makes it
/// primary again, with every message written through either.
#[test]
fn two_failovers_with_the_failed_node_back_at_the_end_of_the_chain() {
    if common::skip_redis() {
        return;
    }
    let Chain {
        r,
        r1,
        primary: a,
        standby: b,
    } = chain_with("one", &[]);
    drop(a);
    b.push(&["q"], "two", "H"); // the first failover: R1 is the head, R follows it
    assert_eq!((role(&r1).as_str(), role(&r).as_str()), ("master", "slave"));
    // A back, as the end of the chain.
    let a = standby_of(&r, &r1);
    assert_eq!(ready(&a).0, 503);
    eventually("caught up", || {
        r.cli(&["INFO", "replication"])
            .contains("master_link_status:up")
    });
    drop(b);
    a.push(&["q"], "three", "H"); // the second failover
    assert_eq!((role(&r).as_str(), role(&r1).as_str()), ("master", "slave"));
    assert_eq!(r.cli(&["GET", "RB:P|epoch"]), "2");
    let popped = a.pop("q", "max=10&timeout=1");
    assert_eq!(popped.payloads(), ["one", "two", "three"]);
}

/// Two standby nodes over one Redis set, both asked at once: the set is promoted once (one
/// epoch), and both serve.
#[test]
fn two_standbys_over_one_set_promote_it_once() {
    if common::skip_redis() {
        return;
    }
    let (r, r1) = (RedisServer::start(), RedisServer::start());
    let primary = TestNode::on_redis(&[&r], &[]);
    primary.push(&["q"], "before", "H");
    let standbys = [Arc::new(standby_of(&r1, &r)), Arc::new(standby_of(&r1, &r))];
    eventually("replicated", || r1.cli(&["DBSIZE"]) != "0");
    let threads: Vec<_> = (0..20)
        .map(|i| {
            let node = Arc::clone(&standbys[i % 2]);
            std::thread::spawn(move || node.push(&["both"], &format!("m{i}"), "H"))
        })
        .collect();
    for thread in threads {
        assert_eq!(thread.join().unwrap().len(), 36);
    }
    assert_eq!(r1.cli(&["GET", "RB:P|epoch"]), "1", "one promotion");
    for node in &standbys {
        assert_eq!(ready(node).0, 200);
    }
    assert_eq!(standbys[0].pop("both", "max=50&timeout=1").data.len(), 20);
}

/// A fenced node with an admin listener stays up there and says it is fenced: `/ready` is a
/// `503` naming why, `/health` answers, and it does nothing else (its log stays quiet).
#[test]
fn a_fenced_node_says_so_on_its_admin_listener() {
    if common::skip_redis() {
        return;
    }
    let admin = format!("127.0.0.1:{}", common::free_port());
    let Chain {
        r: _r,
        r1: _r1,
        primary,
        standby,
    } = chain_with("before", &[("RELAYBOX__ADMIN__LISTEN", admin.as_str())]);
    assert_eq!(standby.pop("q", "timeout=1").payloads(), ["before"]);
    eventually("the old primary closed its listener", || {
        TcpStream::connect(primary.addr).is_err()
    });
    let client = reqwest::blocking::Client::new();
    let ready = || {
        let answer = client.get(format!("http://{admin}/ready")).send().ok()?;
        Some((answer.status().as_u16(), answer.json::<Value>().ok()?))
    };
    eventually("readiness on the admin listener says fenced", || {
        ready()
            .is_some_and(|(status, body)| status == 503 && body["replication"]["role"] == "fenced")
    });
    let (_, body) = ready().unwrap();
    assert!(
        body["reason"].as_str().unwrap().contains("READONLY"),
        "{body}"
    );
    let health = client.get(format!("http://{admin}/health")).send().unwrap();
    assert_eq!(health.status(), 200);
    // Quiet: nothing of it keeps trying to write to its demoted Redis.
    let before = primary.log().len();
    sleep(Duration::from_secs(3));
    let later: Vec<String> = primary.log()[before..].to_vec();
    let warnings = later
        .iter()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"));
    assert_eq!(warnings.count(), 0, "{later:?}");
}
