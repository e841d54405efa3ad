//! Load tests: many clients, many messages, a Redis crash mid-load. They check that every
//! message is delivered exactly once; they run in their own test binary so that their CPU load
//! does not disturb the timing-sensitive tests of the others (cargo runs binaries one by one),
//! and one at a time within it, so that none starves another of the machine's two cores.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Backend, RedisServer, TestNode, assert_delivered_exactly_once, relay, skip_redis};
use serde_json::json;

/// Held for the length of a load test: they run one after another.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static HEAVY: Mutex<()> = Mutex::new(());
    HEAVY.lock().unwrap_or_else(|p| p.into_inner())
}

fn fifty_poppers_share_ten_thousand_messages_exactly_once(backend: Backend) {
    let _turn = one_at_a_time();
    const MESSAGES: usize = 10_000;
    let node = Arc::new(TestNode::start(backend));
    let received = Arc::new(Mutex::new(Vec::<String>::new()));
    let pushing_done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_secs(120);

    let poppers: Vec<_> = (0..50)
        .map(|i| {
            let (node, received, done) = (
                Arc::clone(&node),
                Arc::clone(&received),
                Arc::clone(&pushing_done),
            );
            std::thread::spawn(move || {
                let max = 1 + i % 7;
                while Instant::now() < deadline {
                    let popped = node.pop("shared", &format!("max={max}&timeout=1"));
                    if popped.transactions.is_empty()
                        && done.load(std::sync::atomic::Ordering::SeqCst)
                    {
                        break;
                    }
                    assert!(popped.transactions.len() <= max);
                    received.lock().unwrap().extend(popped.transactions);
                }
            })
        })
        .collect();

    let pushers: Vec<_> = (0..4)
        .map(|p| {
            let node = Arc::clone(&node);
            std::thread::spawn(move || {
                (0..MESSAGES / 4)
                    .map(|i| {
                        node.push(
                            &["shared"],
                            &format!("{p}-{i}"),
                            if i % 3 == 0 { "H" } else { "L" },
                        )
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let pushed: HashSet<String> = pushers
        .into_iter()
        .flat_map(|p| p.join().unwrap())
        .collect();
    pushing_done.store(true, std::sync::atomic::Ordering::SeqCst);
    for p in poppers {
        p.join().unwrap();
    }

    assert_eq!(pushed.len(), MESSAGES);
    assert_delivered_exactly_once(&pushed, &received.lock().unwrap());
}

#[test]
fn twenty_poppers_on_two_nodes_and_three_shards_get_every_message_once() {
    let _turn = one_at_a_time();
    if skip_redis() {
        return;
    }
    const MESSAGES: usize = 20_000;
    let shards = [
        RedisServer::start(),
        RedisServer::start(),
        RedisServer::start(),
    ];
    let servers: Vec<&RedisServer> = shards.iter().collect();
    let nodes = Arc::new([
        TestNode::on_redis(&servers, &[]),
        TestNode::on_redis(&servers, &[]),
    ]);
    let queues = ["q-a", "q-b", "q-c", "q-d", "q-e", "q-f"];
    let received = Arc::new(Mutex::new(Vec::<String>::new()));
    let done = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_secs(150);

    let poppers: Vec<_> = (0..20)
        .map(|i| {
            let (nodes, received, done) =
                (Arc::clone(&nodes), Arc::clone(&received), Arc::clone(&done));
            std::thread::spawn(move || {
                let node = &nodes[i % 2];
                let queue = queues[i % queues.len()];
                while Instant::now() < deadline {
                    let popped = node.pop(queue, &format!("max={}&timeout=1", 1 + i % 10));
                    if popped.transactions.is_empty() && done.load(Ordering::SeqCst) {
                        break;
                    }
                    received.lock().unwrap().extend(popped.transactions);
                }
            })
        })
        .collect();
    let pushers: Vec<_> = (0..4)
        .map(|p| {
            let nodes = Arc::clone(&nodes);
            std::thread::spawn(move || {
                (0..MESSAGES / 4)
                    .map(|i| {
                        nodes[(p + i) % 2].push(
                            &[queues[i % queues.len()]],
                            "m",
                            if i % 2 == 0 { "H" } else { "L" },
                        )
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let pushed: HashSet<String> = pushers
        .into_iter()
        .flat_map(|p| p.join().unwrap())
        .collect();
    done.store(true, Ordering::SeqCst);
    for p in poppers {
        p.join().unwrap();
    }
    assert_eq!(pushed.len(), MESSAGES);
    assert_delivered_exactly_once(&pushed, &received.lock().unwrap());
    // The queues really were spread over the three servers.
    for server in &shards {
        assert!(
            server
                .cli(&["INFO", "commandstats"])
                .contains("cmdstat_evalsha"),
            "every shard served"
        );
    }
}

#[test]
fn redis_killed_and_restarted_under_load_loses_nothing() {
    let _turn = one_at_a_time();
    if skip_redis() {
        return;
    }
    let mut redis = RedisServer::start_durable();
    let node = Arc::new(TestNode::on_redis(&[&redis], &[]));
    let accepted = Arc::new(Mutex::new(Vec::<String>::new()));
    let received = Arc::new(Mutex::new(Vec::<String>::new()));
    let pushing = Arc::new(AtomicBool::new(true));
    let deadline = Instant::now() + Duration::from_secs(90);

    let pushers: Vec<_> = (0..3)
        .map(|_| {
            let (node, accepted, pushing) = (
                Arc::clone(&node),
                Arc::clone(&accepted),
                Arc::clone(&pushing),
            );
            std::thread::spawn(move || {
                while pushing.load(Ordering::SeqCst) {
                    let body = json!({"payload": "p", "priority": "L", "queue": [{"id": "load"}]});
                    let (status, reply) = node.post("/trans", &body);
                    match status {
                        200 => accepted
                            .lock()
                            .unwrap()
                            .push(reply["data"].as_str().unwrap().to_owned()),
                        // Not accepted: the producer was told so.
                        503 | 500 => std::thread::sleep(Duration::from_millis(20)),
                        other => panic!("push answered {other}: {reply}"),
                    }
                }
            })
        })
        .collect();
    let poppers: Vec<_> = (0..4)
        .map(|_| {
            let (node, received, pushing) = (
                Arc::clone(&node),
                Arc::clone(&received),
                Arc::clone(&pushing),
            );
            std::thread::spawn(move || {
                let mut idle = 0;
                while Instant::now() < deadline && idle < 3 {
                    let (status, reply) = node.post("/queue/load/pop?max=5&timeout=1", &json!({}));
                    match status {
                        200 => {
                            let ids: Vec<String> = reply["transactions"]
                                .as_array()
                                .unwrap()
                                .iter()
                                .map(|t| t.as_str().unwrap().to_owned())
                                .collect();
                            if ids.is_empty() && !pushing.load(Ordering::SeqCst) {
                                idle += 1;
                            }
                            received.lock().unwrap().extend(ids);
                        }
                        503 | 500 => std::thread::sleep(Duration::from_millis(50)),
                        other => panic!("pop answered {other}: {reply}"),
                    }
                }
            })
        })
        .collect();

    std::thread::sleep(Duration::from_millis(1500));
    redis.kill();
    std::thread::sleep(Duration::from_millis(1000));
    redis.restart();
    std::thread::sleep(Duration::from_millis(2000));
    pushing.store(false, Ordering::SeqCst);
    for t in pushers.into_iter().chain(poppers) {
        t.join().unwrap();
    }

    let accepted = accepted.lock().unwrap();
    let received = received.lock().unwrap();
    let unique: HashSet<&String> = received.iter().collect();
    assert!(
        accepted.len() > 100,
        "the load ran: {} accepted",
        accepted.len()
    );
    let retried = node
        .log()
        .iter()
        .filter(|l| l.contains("retrying an operation"))
        .count();
    eprintln!(
        "{} accepted, {} received, {retried} operations retried across the outage",
        accepted.len(),
        received.len()
    );
    assert_eq!(unique.len(), received.len(), "no message delivered twice");
    let missing: Vec<&String> = accepted.iter().filter(|id| !unique.contains(id)).collect();
    assert!(
        missing.is_empty(),
        "{} accepted messages never delivered: {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    // The node healed without a restart.
    let id = node.push(&["after"], "fine", "H");
    assert_eq!(node.pop("after", "timeout=1").transactions, [id]);
}

/// 200 customers relaying at once, each desktop with its own app.
fn two_hundred_customers_relay_at_once(backend: Backend) {
    let _turn = one_at_a_time();
    // Generous timeouts: 200 customers at once on two cores in a debug build are slow.
    let timeouts = [
        ("RELAYBOX__RELAY__TIMEOUT_AGENT", "10"),
        ("RELAYBOX__RELAY__TIMEOUT_CACHE", "5"),
        ("RELAYBOX__RELAY__TIMEOUT_CLIENT", "1"),
        ("RELAYBOX__RELAY__TIMEOUT_NO_REPLY", "60"),
    ];
    let node = Arc::new(TestNode::start_with(backend, &timeouts));
    let workers: Vec<_> = (0..200)
        .map(|i| {
            let node = Arc::clone(&node);
            std::thread::spawn(move || {
                let customer = format!("7{i:04}");
                let desk = relay::desktop(&node, &customer);
                let question = format!("question from {customer}").into_bytes();
                let app = relay::app(&node, &customer, question);
                let (id, request) = desk.join().unwrap();
                assert_eq!(request.text().unwrap(), format!("question from {customer}"));
                let answer = format!("answer for {customer}").into_bytes();
                let replied = relay::reply(&node, &customer, &id, "200", answer);
                let reason = relay::header(&replied, "x-iwp-reason");
                assert_eq!(replied.status(), 200, "{customer}: {reason:?}");
                assert_eq!(app.join().unwrap().text(), format!("answer for {customer}"));
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
}

crate::both_backends!(
    fifty_poppers_share_ten_thousand_messages_exactly_once,
    two_hundred_customers_relay_at_once,
);
