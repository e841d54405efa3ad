//! Customer IDs: `/getuniversalid` on several nodes at once, through restarts, a master that
//! stops and a pool that runs out; `/range` between nodes and its bad requests.

mod common;

use std::collections::HashSet;
use std::thread;
use std::time::{Duration, Instant};

use common::relay::{client, header};
use common::{
    Backend, CLUSTER_SECRET as SECRET, RedisServer, TestNode, public_address, reachable_at,
};
use reqwest::blocking::Client;
use serde_json::Value;

/// A node with a public address of its own and the cluster secret; `master`: the range
/// master's address (none: itself).
fn node(
    backend: Backend,
    redis: Option<&RedisServer>,
    address: &str,
    master: Option<&str>,
    env: &[(&str, &str)],
) -> TestNode {
    let master = master.map(|m| format!("{m}:3001"));
    let mut all = reachable_at(address);
    all.push(("RELAYBOX__RANGES__LEASE", "1"));
    if let Some(master) = &master {
        all.push(("RELAYBOX__CLUSTER__MASTER", master));
    }
    all.extend_from_slice(env);
    match redis {
        Some(redis) => TestNode::on_redis(&[redis], &all),
        None => TestNode::start_with(backend, &all),
    }
}

/// A keep-alive client for many small calls.
fn keep_alive() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// One `/getuniversalid`: the ID, or the status and reason.
fn new_id(client: &Client, node: &TestNode) -> Result<u64, (u16, String)> {
    let r = client.post(node.url("/getuniversalid")).send().unwrap();
    match header(&r, "x-iwp-productunivid") {
        Some(id) if r.status() == 200 => Ok(id.parse().unwrap()),
        _ => Err((
            r.status().as_u16(),
            header(&r, "x-iwp-reason").unwrap_or_default(),
        )),
    }
}

/// `n` IDs from `node` over `threads` connections (each ID must come).
fn ids(node: &TestNode, n: usize, threads: usize) -> Vec<u64> {
    thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    let client = keep_alive();
                    let count = n / threads + usize::from(t < n % threads);
                    (0..count)
                        .map(|_| new_id(&client, node).expect("an ID"))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    })
}

/// Every ID once, none 0, all inside `from..=to`.
fn assert_unique_in(ids: &[u64], from: u64, to: u64) {
    let distinct: HashSet<u64> = ids.iter().copied().collect();
    assert_eq!(distinct.len(), ids.len(), "an ID was issued twice");
    assert!(
        ids.iter().all(|id| (from..=to).contains(id)),
        "an ID outside the pool"
    );
}

fn admin_ranges(node: &TestNode) -> Value {
    client()
        .get(node.url("/admin/ranges"))
        .header("X-IWP-Secret", SECRET)
        .send()
        .unwrap()
        .json()
        .unwrap()
}

/// Three nodes over one Redis, 30,000 IDs each at once; one of them is killed and restarted
/// half-way.
#[test]
fn three_nodes_issue_distinct_ids_through_a_restart() {
    if common::skip_redis() {
        return;
    }
    let redis = RedisServer::start();
    let env = [
        ("RELAYBOX__RANGES__FROM", "1000"),
        ("RELAYBOX__RANGES__TO", "999999"),
        ("RELAYBOX__RANGES__RANGE_SIZE", "700"),
        ("RELAYBOX__LOG__ACCESS_LOG", "false"),
    ];
    let addresses: Vec<String> = (0..3).map(|_| public_address()).collect();
    let master = addresses[0].as_str();
    let start = |i: usize| {
        let m = (i > 0).then_some(master);
        node(Backend::Redis, Some(&redis), &addresses[i], m, &env)
    };
    let (n0, n1, n2) = (start(0), start(1), start(2));
    let (first, third) = thread::scope(|s| {
        let a = s.spawn(|| ids(&n0, 30_000, 4));
        let b = s.spawn(|| ids(&n1, 30_000, 4));
        // Half-way, the third node dies (SIGKILL) and comes back on the same address and store
        // while the others go on.
        let mut third = ids(&n2, 15_000, 4);
        drop(n2);
        let restarted = start(2);
        third.extend(ids(&restarted, 15_000, 4));
        (vec![a.join().unwrap(), b.join().unwrap()], third)
    });
    let all: Vec<u64> = first.into_iter().flatten().chain(third).collect();
    assert_eq!(all.len(), 90_000);
    assert_unique_in(&all, 1000, 999_999);
    let overview = admin_ranges(&n0);
    assert_eq!(overview["master"], format!("{master}/3001"));
    assert!(overview["pool"]["from"].as_u64().unwrap() > *all.iter().max().unwrap());
}

/// The master stops: another node of its region takes the pool over, and IDs keep flowing.
#[test]
fn ids_keep_flowing_when_the_master_stops() {
    if common::skip_redis() {
        return;
    }
    let redis = RedisServer::start();
    let env = [
        ("RELAYBOX__RANGES__FROM", "1"),
        ("RELAYBOX__RANGES__TO", "100000"),
        ("RELAYBOX__RANGES__RANGE_SIZE", "100"),
    ];
    let (a, b) = (public_address(), public_address());
    let master = node(Backend::Redis, Some(&redis), &a, None, &env);
    let other = node(Backend::Redis, Some(&redis), &b, Some(&a), &env);
    let mut issued = ids(&other, 300, 2);
    issued.extend(ids(&master, 300, 2));
    drop(master);
    // Far more than the blocks it held: the rest must come from the pool, through the lease.
    let started = Instant::now();
    issued.extend(ids(&other, 1000, 2));
    assert_unique_in(&issued, 1, 100_000);
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(admin_ranges(&other)["master"], format!("{b}/3001"));
}

fn an_exhausted_pool_is_a_clear_error(backend: Backend) {
    let address = public_address();
    let env = [
        ("RELAYBOX__RANGES__FROM", "7"),
        ("RELAYBOX__RANGES__TO", "256"),
        ("RELAYBOX__RANGES__RANGE_SIZE", "100"),
    ];
    let node = node(backend, None, &address, None, &env);
    let issued = ids(&node, 250, 3);
    assert_unique_in(&issued, 7, 256);
    let client = keep_alive();
    for _ in 0..3 {
        let (status, reason) = new_id(&client, &node).unwrap_err();
        assert_eq!(status, 503);
        assert!(reason.contains("exhausted"), "{reason}");
    }
    assert!(
        node.log()
            .iter()
            .any(|l| l.contains("customer-ID pool is exhausted")),
        "a log line says so"
    );
}

fn bad_range_requests_get_4xx(backend: Backend) {
    let address = public_address();
    let node = node(backend, None, &address, None, &[]);
    let range = |secret: Option<&str>, size: Option<&str>| {
        let mut request = client().post(node.url("/range/3001"));
        if let Some(secret) = secret {
            request = request.header("X-IWP-Secret", secret);
        }
        if let Some(size) = size {
            request = request.header("X-IWP-Range-Size", size);
        }
        request.send().unwrap()
    };
    for secret in [None, Some("wrong")] {
        assert_eq!(range(secret, Some("10")).status(), 403);
    }
    for size in ["abc", "0", "-5", "2000000"] {
        let r = range(Some(SECRET), Some(size));
        assert_eq!(r.status(), 400, "{size}");
        assert!(
            header(&r, "x-iwp-reason")
                .unwrap()
                .contains("X-IWP-Range-Size")
        );
    }
    let before = admin_ranges(&node)["pool"].clone();
    let r = range(Some(SECRET), Some("10"));
    assert_eq!(r.status(), 200);
    let from: u64 = header(&r, "x-iwp-range-from").unwrap().parse().unwrap();
    let to: u64 = header(&r, "x-iwp-range-to").unwrap().parse().unwrap();
    assert_eq!(
        (from, to - from + 1),
        (before["from"].as_u64().unwrap(), 10)
    );
    let r = client()
        .get(node.url("/range/3001"))
        .header("X-IWP-Secret", SECRET)
        .send()
        .unwrap();
    assert_eq!(r.status(), 405);
    // The refused calls cut nothing.
    assert_eq!(admin_ranges(&node)["pool"]["from"], to + 1);
}

/// A range master that cannot be reached: the caller waits a bounded time, then hears why.
#[test]
fn an_unreachable_master_is_a_clear_error() {
    let (address, dead) = (public_address(), public_address());
    let node = node(Backend::Memory, None, &address, Some(&dead), &[]);
    let started = Instant::now();
    let (status, reason) = new_id(&keep_alive(), &node).unwrap_err();
    assert_eq!(status, 503);
    assert!(
        reason.contains("range master cannot be reached"),
        "{reason}"
    );
    assert!(reason.contains(&dead), "{reason}");
    // Patience: twice the lease (1 s here) and one call (2 s), then retries every 250 ms.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

/// Two regions on embedded stores: the second gets its blocks from the master over HTTP, and
/// both keep their books on disk across a SIGKILL.
#[test]
fn embedded_nodes_keep_their_ids_across_restarts() {
    let (a, b) = (public_address(), public_address());
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let env = |dir: &tempfile::TempDir| {
        vec![
            (
                "RELAYBOX__NODE__DATA_DIR",
                dir.path().to_str().unwrap().to_owned(),
            ),
            ("RELAYBOX__RANGES__RANGE_SIZE", "300".to_owned()),
        ]
    };
    let start = |address: &str, master: Option<&str>, dir| {
        let env = env(dir);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        node(Backend::Memory, None, address, master, &env)
    };
    let mut issued = Vec::new();
    for _ in 0..2 {
        let master = start(&a, None, &dir_a);
        let other = start(&b, Some(&a), &dir_b);
        issued.extend(ids(&master, 500, 2));
        issued.extend(ids(&other, 500, 2));
        // Both die (SIGKILL) here, then start again on the same files.
    }
    assert_unique_in(&issued, 1, 99_999_999);
}

crate::both_backends!(
    an_exhausted_pool_is_a_clear_error,
    bad_range_requests_get_4xx,
);
