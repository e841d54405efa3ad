//! Redis-only behaviour: several nodes over shared servers, Redis failures, connection counts.
//! Each test starts its own redis-server processes.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::link::FaultyLink;
use common::{RedisServer, TestNode, skip_redis, unix_now};
use serde_json::json;

#[test]
fn a_push_on_one_node_wakes_a_pop_waiting_on_another() {
    if skip_redis() {
        return;
    }
    let redis = RedisServer::start();
    let a = TestNode::on_redis(&[&redis], &[]);
    let b = Arc::new(TestNode::on_redis(&[&redis], &[]));
    let waiter = {
        let b = Arc::clone(&b);
        std::thread::spawn(move || (b.pop("cross", "timeout=10"), Instant::now()))
    };
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        a.get("/queue/cross").1["blocked"],
        json!(true),
        "node A sees B's waiter"
    );
    let id = a.push(&["cross"], "from A", "H");
    let pushed = Instant::now();
    let (popped, at) = waiter.join().unwrap();
    assert_eq!(popped.transactions, std::slice::from_ref(&id));
    assert!(
        at.duration_since(pushed) < Duration::from_millis(500),
        "{:?}",
        at.duration_since(pushed)
    );
    // Either node answers for the transaction.
    assert_eq!(a.state(&id, "cross"), "Delivered");
    assert_eq!(b.get(&format!("/trans/{id}")).1["payload"], "from A");
    // FLUSHALL resets everything.
    redis.cli(&["FLUSHALL"]);
    assert_eq!(a.get(&format!("/trans/{id}")), (200, json!({})));
}

/// A message that comes back unacknowledged is announced on its queue's channel, whichever
/// node's sweep returns it, and each announcement names the node that made it.
#[test]
fn a_message_due_back_wakes_a_pop_waiting_on_another_node() {
    if skip_redis() {
        return;
    }
    let redis = RedisServer::start();
    let mut channel = TcpStream::connect(("127.0.0.1", redis.port)).unwrap();
    channel
        .write_all(b"SUBSCRIBE relaybox:pushed:UNSEC:due\r\n")
        .unwrap();
    let a = TestNode::on_redis(&[&redis], &[]);
    let b = Arc::new(TestNode::on_redis(&[&redis], &[]));
    let id = a.push(&["due"], "back", "H");
    let (status, reply) = a.post("/queue/due/poprel?timeoutACK=1&timeout=1", &json!({}));
    assert_eq!((status, &reply["transactions"]), (200, &json!([id])));
    let taken = Instant::now();
    let waiter = {
        let b = Arc::clone(&b);
        std::thread::spawn(move || (b.pop("due", "timeout=10"), Instant::now()))
    };
    let (popped, at) = waiter.join().unwrap();
    assert_eq!(popped.transactions, [id]);
    let after = at.duration_since(taken);
    assert!(after < Duration::from_millis(2500), "back after {after:?}");

    // Both the push and the return were announced, each naming the node that made it.
    channel
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut heard = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n @ 1..) = channel.read(&mut buf) {
        heard.extend_from_slice(&buf[..n]);
    }
    let heard = String::from_utf8_lossy(&heard);
    let lines: Vec<&str> = heard.lines().collect();
    // A message is `*3 $7 message $<n> <channel> $<n> <payload>`, one line each.
    let publishers: Vec<&str> = (lines.iter().enumerate())
        .filter(|(_, l)| **l == "message")
        .map(|(i, _)| {
            assert_eq!(lines[i + 2], "relaybox:pushed:UNSEC:due", "{heard:?}");
            lines[i + 4]
        })
        .collect();
    assert_eq!(publishers.len(), 2, "{heard:?}");
    assert!(publishers.iter().all(|p| !p.is_empty()), "{heard:?}");
}

/// A node listens on a queue's channel only once someone waits there with nothing to take:
/// pushes nobody waits for are heard by no node.
#[test]
fn a_node_hears_only_of_the_queues_its_consumers_wait_on() {
    if skip_redis() {
        return;
    }
    let redis = RedisServer::start();
    let a = TestNode::on_redis(&[&redis], &[]);
    let b = Arc::new(TestNode::on_redis(&[&redis], &[]));
    let subscribers = |queue: &str| -> String {
        let channel = format!("relaybox:pushed:UNSEC:{queue}");
        redis
            .cli(&["PUBSUB", "NUMSUB", &channel])
            .lines()
            .nth(1)
            .unwrap_or("")
            .to_owned()
    };
    let id = a.push(&["ready"], "there", "H");
    assert_eq!(b.pop("ready", "timeout=5").transactions, [id]);
    assert_eq!(
        subscribers("ready"),
        "0",
        "the pop found its message at once"
    );

    let waiter = {
        let b = Arc::clone(&b);
        std::thread::spawn(move || b.pop("waited", "timeout=10"))
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while subscribers("waited") != "1" {
        assert!(
            Instant::now() < deadline,
            "node B never listened on the queue"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let id = a.push(&["waited"], "for", "H");
    assert_eq!(waiter.join().unwrap().transactions, [id]);
    assert_eq!(subscribers("ready"), "0");
}

/// A node's subscriptions do not survive its connection to Redis: after the server restarts,
/// a queue it listened on before (and whose channel it kept for a while) is subscribed to
/// again when someone waits there, so other nodes' pushes still wake its waiters.
#[test]
fn a_node_listens_again_after_redis_restarts() {
    if skip_redis() {
        return;
    }
    let mut redis = RedisServer::start();
    let a = TestNode::on_redis(&[&redis], &[]);
    let b = Arc::new(TestNode::on_redis(&[&redis], &[]));
    let wake = |queue: &'static str, payload: &str| {
        let waiter = {
            let b = Arc::clone(&b);
            std::thread::spawn(move || (b.pop(queue, "timeout=10"), Instant::now()))
        };
        std::thread::sleep(Duration::from_millis(300));
        let id = a.push(&[queue], payload, "H");
        let pushed = Instant::now();
        let (popped, at) = waiter.join().unwrap();
        assert_eq!(popped.transactions, [id]);
        let after = at.duration_since(pushed);
        assert!(
            after < Duration::from_secs(2),
            "{payload}: woken {after:?} after the push"
        );
    };
    wake("again", "before the restart");
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    while b.get("/queue/again").0 != 200 || a.get("/queue/again").0 != 200 {
        assert!(Instant::now() < deadline, "the nodes never healed");
        std::thread::sleep(Duration::from_millis(100));
    }
    // B's subscriber reconnects on its own; give it the time it takes.
    std::thread::sleep(Duration::from_millis(1000));
    wake("again", "after the restart");
}

/// A push that lands after a waiter found its queue empty but before its node listens on the
/// queue is not announced to that node: once the subscription is confirmed, the node looks for
/// it instead of leaving the waiter until its timeout.
#[test]
fn a_push_made_while_a_node_subscribes_still_reaches_its_waiter() {
    if skip_redis() {
        return;
    }
    let redis = RedisServer::start();
    let link = FaultyLink::start(redis.port);
    let a = TestNode::on_redis(&[&redis], &[]);
    let b = Arc::new(TestNode::on_redis_urls(&[link.url()], &[]));
    link.delay_subscribes(Duration::from_millis(1500));
    let waiter = {
        let b = Arc::clone(&b);
        std::thread::spawn(move || (b.pop("window", "timeout=10"), Instant::now()))
    };
    std::thread::sleep(Duration::from_millis(300));
    let channel = "relaybox:pushed:UNSEC:window";
    let subscribers = redis.cli(&["PUBSUB", "NUMSUB", channel]);
    assert_eq!(subscribers.lines().nth(1), Some("0"), "still subscribing");
    let id = a.push(&["window"], "in between", "H");
    let pushed = Instant::now();
    let (popped, at) = waiter.join().unwrap();
    assert_eq!(popped.transactions, [id]);
    let after = at.duration_since(pushed);
    assert!(after < Duration::from_secs(4), "delivered after {after:?}");
}

/// A push whose answer never came (Redis paused past the node's timeout) may still land: the
/// node must then look at the queue itself, since it ignores its own announcement.
#[test]
fn a_push_that_timed_out_but_landed_still_wakes_a_local_waiter() {
    if skip_redis() {
        return;
    }
    let redis = RedisServer::start();
    let node = Arc::new(TestNode::on_redis(
        &[&redis],
        &[("RELAYBOX__STORE__REDIS_TIMEOUT_MS", "200")],
    ));
    let id = node.push(&["warm"], "up", "H");
    assert_eq!(node.pop("warm", "timeout=1").transactions, [id]);

    redis.cli(&["CLIENT", "PAUSE", "1000", "WRITE"]);
    let waiter = {
        let node = Arc::clone(&node);
        std::thread::spawn(move || (node.pop("late", "timeout=8"), Instant::now()))
    };
    std::thread::sleep(Duration::from_millis(100));
    let body = json!({"payload": "p", "priority": "H", "queue": [{"id": "late"}]});
    let (status, reply) = node.post("/trans", &body);
    assert_eq!(status, 503, "the push's answer timed out: {reply}");
    let answered = Instant::now();
    let (popped, at) = waiter.join().unwrap();
    assert_eq!(
        popped.transactions.len(),
        1,
        "the push landed after the pause"
    );
    let after = at.duration_since(answered);
    assert!(
        after < Duration::from_secs(4),
        "delivered {after:?} after the 503"
    );
}

/// A node that reaches `redis` through a [`FaultyLink`] and retries an operation through an
/// outage for one second only. It has popped from `queue` once, so Redis knows the take's
/// script: cut off, a take runs rather than asks for its script.
fn node_losing_answers(
    redis: &RedisServer,
    queue: &str,
    env: &[(&str, &str)],
) -> (FaultyLink, TestNode) {
    let link = FaultyLink::start(redis.port);
    let mut settings = vec![
        ("RELAYBOX__STORE__REDIS_TIMEOUT_MS", "200"),
        ("RELAYBOX__STORE__REDIS_RECOVERY", "1"),
    ];
    settings.extend_from_slice(env);
    let node = TestNode::on_redis_urls(&[link.url()], &settings);
    let warm = node.push(&[queue], "warm", "H");
    assert_eq!(node.pop(queue, "timeout=1").transactions, [warm]);
    (link, node)
}

/// Pops `queue` while every answer is lost, for longer than the node retries: the take runs on
/// Redis, and the pop answers `503`. The link goes on losing answers.
fn pop_with_every_answer_lost(link: &FaultyLink, node: &TestNode, queue: &str) {
    link.cut_answers(true);
    let (status, reply) = node.post(&format!("/queue/{queue}/pop?timeout=5"), &json!({}));
    assert_eq!(status, 503, "{reply}");
}

#[test]
fn a_take_whose_answer_is_lost_for_good_puts_its_messages_back() {
    if skip_redis() {
        return;
    }
    let redis = RedisServer::start();
    let (link, node) = node_losing_answers(&redis, "lost", &[]);
    let other = TestNode::on_redis(&[&redis], &[]);
    let id = node.push(&["lost"], "keep me", "H");

    pop_with_every_answer_lost(&link, &node, "lost");
    assert_eq!(other.state(&id, "lost"), "Delivered", "the take ran");

    link.cut_answers(false);
    assert_eq!(
        other.pop("lost", "timeout=5").transactions,
        std::slice::from_ref(&id)
    );
    let (_, history) = other.get(&format!("/trans/{id}/history"));
    let states: Vec<&str> = history["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|change| change["state"].as_str().unwrap())
        .collect();
    assert_eq!(
        states,
        ["Pending", "Delivered", "Pending", "Delivered"],
        "taken, put back, taken again: {history}"
    );
    let id = node.push(&["lost"], "after", "H");
    assert_eq!(node.pop("lost", "timeout=5").transactions, [id]);
}

/// A node told to stop while the put-back of a lost take still waits for the server waits for
/// it too (up to `node.shutdown_timeout`), rather than leave the take's messages out of their
/// queue.
#[test]
fn a_stopping_node_finishes_putting_back_a_lost_take() {
    if skip_redis() {
        return;
    }
    let redis = RedisServer::start();
    let env = [("RELAYBOX__NODE__SHUTDOWN_TIMEOUT", "10")];
    let (link, mut node) = node_losing_answers(&redis, "parting", &env);
    let id = node.push(&["parting"], "keep me", "H");

    pop_with_every_answer_lost(&link, &node, "parting");
    node.terminate();
    assert_eq!(
        node.wait_exit(Duration::from_secs(1)),
        None,
        "the node waits for its put-back"
    );
    link.cut_answers(false);
    assert_eq!(node.wait_exit(Duration::from_secs(10)), Some(true));
    let other = TestNode::on_redis(&[&redis], &[]);
    assert_eq!(other.pop("parting", "timeout=2").transactions, [id]);
}

/// The wait for those put-backs is bounded: a node whose server stays away stops after
/// `node.shutdown_timeout`, saying what it leaves undone.
#[test]
fn a_stopping_node_gives_up_on_a_put_back_after_its_shutdown_timeout() {
    if skip_redis() {
        return;
    }
    let redis = RedisServer::start();
    let env = [("RELAYBOX__NODE__SHUTDOWN_TIMEOUT", "1")];
    let (link, mut node) = node_losing_answers(&redis, "gone", &env);
    node.push(&["gone"], "out of reach", "H");

    pop_with_every_answer_lost(&link, &node, "gone");
    let stopping = Instant::now();
    node.terminate();
    assert_eq!(node.wait_exit(Duration::from_secs(5)), Some(true));
    assert!(
        stopping.elapsed() >= Duration::from_millis(900),
        "it waited"
    );
    assert!(
        node.log()
            .iter()
            .any(|l| l.contains("stopping before the messages of lost takes were put back")),
        "{:?}",
        node.log()
    );
}

/// A take that found nothing counts its waiter in the queue's `blocked`; if its answer is lost
/// for good, the waiter is answered `503` and never waits, so the count goes back down.
#[test]
fn a_lost_empty_take_does_not_leave_its_waiter_counted() {
    if skip_redis() {
        return;
    }
    let redis = RedisServer::start();
    let (link, node) = node_losing_answers(&redis, "idle", &[]);

    pop_with_every_answer_lost(&link, &node, "idle");
    link.cut_answers(false);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let blocked = waiting_count(&redis, "idle");
        if blocked == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "blocked stays {blocked:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(node.get("/queue/idle").1["blocked"], json!(false));
}

#[test]
fn an_outage_answers_503_naming_the_shard_and_heals() {
    if skip_redis() {
        return;
    }
    let mut redis = RedisServer::start();
    let node = Arc::new(TestNode::on_redis(&[&redis], &[]));
    let waiter = {
        let node = Arc::clone(&node);
        std::thread::spawn(move || {
            let started = Instant::now();
            (node.pop("held", "timeout=30"), started.elapsed())
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    redis.kill();
    let (popped, waited) = waiter.join().unwrap();
    assert!(popped.transactions.is_empty());
    assert!(
        waited < Duration::from_secs(3),
        "the waiter was answered at once: {waited:?}"
    );

    // Pushes and pops alike fail fast while the shard is down (a pop does not sit out its
    // timeout), with the default recovery window.
    let push = json!({"payload": "p", "priority": "H", "queue": [{"id": "q"}]});
    for (path, body) in [
        ("/trans", &push),
        ("/queue/q/pop?timeout=10", &json!({})),
        ("/trans", &push),
    ] {
        let started = Instant::now();
        let (status, reply) = node.post(path, body);
        assert_eq!(status, 503, "{path}: {reply}");
        let message = reply["errors"][0].as_str().unwrap();
        assert!(message.contains(&redis.url()), "names the shard: {message}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "fails fast: {:?}",
            started.elapsed()
        );
    }
    redis.restart();
    std::thread::sleep(Duration::from_millis(1500));
    let id = node.push(&["q"], "back", "H");
    assert_eq!(node.pop("q", "timeout=1").transactions, [id]);
    // Wake-ups work again too.
    let waiter = {
        let node = Arc::clone(&node);
        std::thread::spawn(move || node.pop("again", "timeout=10"))
    };
    std::thread::sleep(Duration::from_millis(300));
    let id = node.push(&["again"], "x", "L");
    assert_eq!(waiter.join().unwrap().transactions, [id]);
}

/// A server restarting from its data answers `LOADING` until it has read it all: pushes then
/// answer `503`, as every other route does, never `500`.
#[test]
fn pushes_answer_503_while_redis_loads_its_data() {
    if skip_redis() {
        return;
    }
    let mut redis = RedisServer::start();
    // Enough data that loading it takes a while.
    let fill = "for i = 1, 500000 do \
        redis.call('SET', 'filler:' .. ARGV[1] .. ':' .. i, string.rep('x', 64)) end";
    for batch in ["1", "2", "3", "4"] {
        redis.cli(&["EVAL", fill, "0", batch]);
    }
    assert_eq!(redis.cli(&["SAVE"]), "OK");
    let node = TestNode::on_redis(&[&redis], &[]);
    let push = json!({"payload": "p", "priority": "H", "queue": [{"id": "q"}]});
    redis.restart_loading();
    let (mut unavailable, started) = (0, Instant::now());
    loop {
        let (status, reply) = node.post("/trans", &push);
        match status {
            200 => break,
            503 => unavailable += 1,
            other => panic!("{other} while Redis loads: {reply}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "Redis never came back"
        );
    }
    assert!(unavailable > 0, "no push met the loading server");
}

/// A push whose answer is lost with its connection may have been stored: a retry with the same
/// `Idempotency-Key` answers its id and stores nothing new. Once with everything on one server,
/// once with the transactions on a server of their own (the lost answer is then the
/// transaction's, and the retry makes the push that never came).
#[test]
fn a_retried_push_with_an_idempotency_key_is_stored_once() {
    if skip_redis() {
        return;
    }
    let (first, second) = (RedisServer::start(), RedisServer::start());
    let faulty = FaultyLink::start(first.port);
    let fast = [
        ("RELAYBOX__STORE__REDIS_TIMEOUT_MS", "200"),
        ("RELAYBOX__STORE__REDIS_RECOVERY", "1"),
    ];
    let mut apart = fast.to_vec();
    let faulty_url = faulty.url();
    apart.push(("RELAYBOX__STORE__REDIS_TRANSACTIONS", faulty_url.as_str()));
    let layouts = [
        (TestNode::on_redis_urls(&[faulty.url()], &fast), "together"),
        (TestNode::on_redis_urls(&[second.url()], &apart), "apart"),
    ];
    for (node, layout) in &layouts {
        let queue = format!("retried-{layout}");
        let body = json!({"payload": "once", "priority": "H", "queue": [{"id": queue}]});
        let key = format!("retry-{layout}");
        let push = || node.push_once(&key, &body, "");
        faulty.cut_answers(true);
        let (status, reply) = push();
        assert_eq!(status, 503, "{layout}: {reply}");
        faulty.cut_answers(false);
        std::thread::sleep(Duration::from_millis(300));
        let (status, reply) = push();
        assert_eq!(status, 200, "{layout}: {reply}");
        let popped = node.pop(&queue, "timeout=1&max=10");
        assert_eq!(
            popped.transactions,
            [reply["data"].as_str().unwrap()],
            "{layout}"
        );
        assert_eq!(popped.payloads(), ["once"], "{layout}");
    }
}

#[test]
fn waiters_hold_no_redis_connections() {
    if skip_redis() {
        return;
    }
    let redis = RedisServer::start();
    let node = TestNode::on_redis(&[&redis], &[]);
    let clients = || {
        redis
            .cli(&["CLIENT", "LIST"])
            .lines()
            .filter(|l| !l.contains("cmd=client"))
            .count()
    };
    // Command connections open on first use (one per thread that uses them).
    let id = node.push(&["warm"], "up", "H");
    assert_eq!(node.pop("warm", "timeout=1").transactions, [id]);
    let r = node
        .client()
        .post(node.url("/getuniversalid"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let idle = clients();
    assert_eq!(
        idle, 3,
        "one command and one pub/sub connection for the one shard, one for the range actors"
    );
    let waiting: Vec<TcpStream> = (0..200).map(|i| node.hold_pop(&format!("w{i}"))).collect();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(node.get("/queue/w199").1["blocked"], json!(true));
    assert_eq!(clients(), idle, "the same connections with 200 waiters");
    drop(waiting);
}

#[test]
fn start_up_without_redis_fails_naming_the_server() {
    if skip_redis() {
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://127.0.0.1:{port}/0");
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_relaybox"))
        .arg("--config")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/cluster.toml"))
        .env("RELAYBOX__NODE__LISTEN", "127.0.0.1:0")
        .env("RELAYBOX__STORE__BACKEND", "redis")
        .env("RELAYBOX__STORE__REDIS_SERVERS", &url)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&url), "names the server: {err}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// How many consumers the nodes count as waiting on plain queue `queue`, from its `userInfo`
/// hash: each node keeps its own count there (`blocked:<node>`).
fn waiting_count(redis: &RedisServer, queue: &str) -> i64 {
    let sum = "local n = 0
        local fields = redis.call('HGETALL', KEYS[1])
        for i = 1, #fields, 2 do
            if string.sub(fields[i], 1, 8) == 'blocked:' then n = n + tonumber(fields[i + 1]) end
        end
        return n";
    let key = format!("PB:Q|UNSEC:{queue}:userInfo");
    redis.cli(&["EVAL", sum, "1", &key]).parse().unwrap()
}

/// Waits up to `limit` for `queue` to read `blocked` as `want` on `node`.
fn wait_blocked(node: &TestNode, queue: &str, want: bool, limit: Duration) {
    let started = Instant::now();
    while node.blocked(queue) != want {
        assert!(
            started.elapsed() < limit,
            "{queue} still blocked = {}",
            !want
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A node killed with waiters stops counting as a waiter within seconds, on every node; a live
/// node's waiter keeps counting however long it waits.
#[test]
fn the_waiters_of_a_killed_node_stop_counting() {
    if skip_redis() {
        return;
    }
    let redis = RedisServer::start();
    let (dying, living, reader) = (
        TestNode::on_redis(&[&redis], &[]),
        TestNode::on_redis(&[&redis], &[]),
        TestNode::on_redis(&[&redis], &[]),
    );
    let _held = [dying.hold_pop("orphan"), living.hold_pop("kept")];
    wait_blocked(&reader, "orphan", true, Duration::from_secs(5));
    wait_blocked(&reader, "kept", true, Duration::from_secs(5));
    drop(dying); // SIGKILL
    wait_blocked(&reader, "orphan", false, Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(4));
    assert!(reader.blocked("kept"), "a live node's waiter counts on");
}

/// After an outage of a server that keeps its data, a node's waiters (answered when it went)
/// no longer count once it is back: counting them out failed while it was away.
#[test]
fn blocked_heals_after_an_outage() {
    if skip_redis() {
        return;
    }
    let mut redis = RedisServer::start_durable();
    let node = TestNode::on_redis(&[&redis], &[]);
    let _pop = node.hold_pop("out-pop");
    let mut subscription = TcpStream::connect(node.addr).unwrap();
    subscription
        .write_all(
            b"POST /queue/out-sub/subscribe HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
        )
        .unwrap();
    for queue in ["out-pop", "out-sub"] {
        wait_blocked(&node, queue, true, Duration::from_secs(5));
    }
    redis.kill();
    std::thread::sleep(Duration::from_secs(2));
    redis.restart();
    for queue in ["out-pop", "out-sub"] {
        wait_blocked(&node, queue, false, Duration::from_secs(10));
    }
    // Waiting counts again.
    let _again = node.hold_pop("out-pop");
    wait_blocked(&node, "out-pop", true, Duration::from_secs(5));
}

#[test]
fn a_graceful_shutdown_leaves_no_queue_counted_as_blocked() {
    if skip_redis() {
        return;
    }
    const WAITERS: usize = 200;
    let redis = RedisServer::start();
    let mut node = TestNode::on_redis(&[&redis], &[]);
    let waiting: Vec<TcpStream> = (0..WAITERS)
        .map(|i| node.hold_pop(&format!("sd{i}")))
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(waiting_count(&redis, "sd7"), 1);
    node.terminate();
    assert_eq!(node.wait_exit(Duration::from_secs(15)), Some(true));
    let counted: i64 = (0..WAITERS)
        .map(|i| waiting_count(&redis, &format!("sd{i}")))
        .sum();
    assert_eq!(counted, 0, "every wait recorded as ended");
    drop(waiting);
}

#[test]
fn blocked_counts_exactly_the_waiting_pops() {
    if skip_redis() {
        return;
    }
    let redis = RedisServer::start();
    let node = TestNode::on_redis(&[&redis], &[]);
    let blocked = || waiting_count(&redis, "count").to_string();
    let settle = || std::thread::sleep(Duration::from_millis(300));
    let mut clients: Vec<TcpStream> = (0..3).map(|_| node.hold_pop("count")).collect();
    settle();
    assert_eq!(blocked(), "3", "three waiting pops");
    drop(clients.remove(0));
    settle();
    assert_eq!(blocked(), "2", "one client left");
    node.push(&["count"], "m", "H");
    settle();
    assert_eq!(blocked(), "1", "one pop served");
    drop(clients);
    settle();
    assert_eq!(blocked(), "0", "everyone left");
    // A pop that finds messages never counts as waiting, and one that times out counts out.
    node.push(&["count"], "m", "H");
    node.pop("count", "timeout=1");
    node.pop("count", "timeout=1");
    assert_eq!(blocked(), "0");
}

#[test]
fn every_key_a_push_writes_expires_with_its_message() {
    if skip_redis() {
        return;
    }
    let redis = RedisServer::start();
    let ttl = |key: &str| -> i64 { redis.cli(&["TTL", key]).parse().expect("TTL is a number") };
    // PopBox's layout (every transaction on `redis_transactions`) keeps a transaction in three
    // keys; the default, in one.
    let popbox = [("RELAYBOX__STORE__REDIS_TRANSACTIONS", redis.url())];
    let popbox = popbox
        .iter()
        .map(|(k, v)| (*k, v.as_str()))
        .collect::<Vec<_>>();
    for (env, parts) in [
        (&popbox[..], &[":meta", ":state", ":history"][..]),
        (&[], &[":tx"]),
    ] {
        let node = TestNode::on_redis(&[&redis], env);
        let tx = node.push_body(json!({
            "payload": "p", "priority": "H", "expirationDelay": 1000, "queue": [{"id": "t"}],
        }));
        for part in parts {
            let left = ttl(&format!("PB:T|{tx}{part}"));
            assert!(
                (990..=1000).contains(&left),
                "PB:T|{tx}{part} lives 1000 s: {left}"
            );
        }
        // Every state change goes into the history of a transaction that still expires.
        node.pop("t", "timeout=1");
        for part in parts {
            let left = ttl(&format!("PB:T|{tx}{part}"));
            assert!(
                (990..=1000).contains(&left),
                "PB:T|{tx}{part} still expires: {left}"
            );
        }
        // A moved expiry moves every key.
        let later = unix_now() + 5000;
        let moved = node.put(&format!("/trans/{tx}"), &json!({"expirationDate": later}));
        assert_eq!(moved.0, 200);
        for part in parts {
            let left = ttl(&format!("PB:T|{tx}{part}"));
            assert!(
                (4990..=5000).contains(&left),
                "PB:T|{tx}{part} lives 5000 s: {left}"
            );
        }
        redis.cli(&["FLUSHALL"]);
    }

    let node = TestNode::on_redis(&[&redis], &[]);
    let push = |lifetime: i64| {
        node.push_body(json!({
            "payload": "p", "priority": "H", "expirationDelay": lifetime,
            "queue": [{"id": "ttl1"}, {"id": "ttl2"}],
        }))
    };
    push(1000);
    for list in ["PB:Q|H:UNSEC:ttl1", "PB:Q|H:UNSEC:ttl2"] {
        assert!(
            (990..=1000).contains(&ttl(list)),
            "{list} lives as its message"
        );
    }
    // A list lives as long as its longest-lived message: a longer one lengthens it, a shorter
    // one leaves it be.
    push(5000);
    assert!(ttl("PB:Q|H:UNSEC:ttl1") > 4900);
    push(10);
    assert!(ttl("PB:Q|H:UNSEC:ttl1") > 4900);

    // What a take records for its retries outlives the retries, not the message.
    node.pop("ttl1", "timeout=1");
    let tokens = redis.cli(&["KEYS", "PB:K|*"]);
    let token = tokens.lines().next().expect("the take left its record");
    assert!((1..=120).contains(&ttl(token)), "{token}: {}", ttl(token));
}

/// Metadata the node cannot read (written into Redis by something else) counts as gone, as a
/// transaction without a payload does, with a warning: the pop that took its reference still
/// answers, and nothing else is lost with it.
#[test]
fn unreadable_metadata_counts_as_gone() {
    if skip_redis() {
        return;
    }
    let redis = RedisServer::start();
    let node = TestNode::on_redis(&[&redis], &[]);
    let broken = node.push(&["mixed"], "lost", "H");
    let kept = node.push(&["mixed"], "kept", "H");
    redis.cli(&["HSET", &format!("PB:T|{broken}:tx"), "m", "not json"]);

    assert_eq!(node.get(&format!("/trans/{broken}")), (200, json!({})));
    assert_eq!(node.peek("mixed", "").payloads(), ["<null>", "kept"]);
    let popped = node.pop("mixed", "max=2&timeout=1");
    assert_eq!(popped.transactions, [broken.as_str(), kept.as_str()]);
    assert_eq!(popped.payloads(), ["<null>", "kept"]);
    assert_eq!(node.state(&kept, "mixed"), "Delivered");
    // Scripts that read the metadata count it as gone too, rather than failing.
    assert_eq!(
        node.put(&format!("/trans/{broken}"), &json!({"payload": "new"})),
        (400, json!({"errors": [format!("{broken} does not exist")]}))
    );
    // A reliable take of it coming due back stays out, and the one beside it comes back.
    let broken = node.push(&["due"], "lost", "H");
    let kept = node.push(&["due"], "kept", "H");
    redis.cli(&["HSET", &format!("PB:T|{broken}:tx"), "m", "{"]);
    let (status, _) = node.post("/queue/due/poprel?max=2&timeoutACK=1", &json!({}));
    assert_eq!(status, 200);
    let back = Instant::now();
    while node.peek("due", "").transactions.is_empty() {
        assert!(
            back.elapsed() < Duration::from_secs(5),
            "the kept one came back"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(node.peek("due", "").transactions, [kept]);
    assert!(
        node.log()
            .iter()
            .any(|line| line.contains("unreadable transaction metadata")),
        "the node says why"
    );
}
