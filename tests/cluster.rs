//! Regions that do not share a store: `/hello` membership, `/connected` and `/find`, the cluster
//! secret, and forgetting regions that keep failing. Every region here is a real node; a region
//! that fails is a real HTTP server answering 503.

mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::receiver::CallbackReceiver;
use common::relay::{FAST, app, client, connect, desktop, header, reply};
use common::{
    Backend, CLUSTER_SECRET as SECRET, RedisServer, TestNode, public_address, reachable_at,
};
use reqwest::blocking::Response;

/// A node that is a region of its own, greeting `sites` at start; `env` on top.
fn region(backend: Backend, sites: &[&str], env: &[(&str, &str)]) -> TestNode {
    region_on(backend, None, sites, env)
}

fn region_on(
    backend: Backend,
    redis: Option<&RedisServer>,
    sites: &[&str],
    env: &[(&str, &str)],
) -> TestNode {
    let address = public_address();
    // Each region its own range master (customer IDs are not what these tests are about).
    let master = format!("{address}:3001");
    let sites = sites.join(",");
    let mut all = FAST.to_vec();
    all.extend(reachable_at(&address));
    all.extend([
        ("RELAYBOX__CLUSTER__SITES", sites.as_str()),
        ("RELAYBOX__CLUSTER__MASTER", master.as_str()),
    ]);
    all.extend_from_slice(env);
    if sites.is_empty() {
        all.retain(|(k, _)| *k != "RELAYBOX__CLUSTER__SITES");
    }
    match redis {
        Some(redis) => TestNode::on_redis(&[redis], &all),
        None => TestNode::start_with(backend, &all),
    }
}

fn public(node: &TestNode) -> String {
    node.addr.to_string()
}

/// A node-to-node call with `secret` and `headers`.
fn call(node: &TestNode, path: &str, secret: Option<&str>, headers: &[(&str, &str)]) -> Response {
    let mut request = client().post(node.url(path));
    if let Some(secret) = secret {
        request = request.header("X-IWP-Secret", secret);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().unwrap()
}

/// Where `node`'s own region has `customer`'s desktop, by its `/find`.
fn found(node: &TestNode, customer: &str) -> Option<(String, String)> {
    let r = call(
        node,
        "/find",
        Some(SECRET),
        &[("X-IWP-ProductUnivId", customer)],
    );
    assert_eq!(r.status(), 200);
    Some((header(&r, "x-iwp-host")?, header(&r, "x-iwp-port")?))
}

/// The regions `node` knows: the answer to a `/hello` in its own name (which it never adds as
/// a member).
fn members(node: &TestNode) -> Vec<String> {
    let own = public(node);
    let r = call(node, "/hello", Some(SECRET), &[("X-IWP-Host", &own)]);
    assert_eq!(r.status(), 200);
    let hosts = header(&r, "x-iwp-hosts").unwrap_or_default();
    hosts
        .split(',')
        .filter(|h| !h.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Waits up to 10 s for `check`.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < Duration::from_secs(10), "never: {what}");
        thread::sleep(Duration::from_millis(100));
    }
}

fn locate(node: &TestNode, path: &str, customer: &str) -> Response {
    client()
        .post(node.url(path))
        .header("X-IWP-ProductUnivId", customer)
        .send()
        .unwrap()
}

fn regions_greet_tell_and_find_each_other(backend: Backend) {
    let a = region(backend, &[], &[]);
    let b = region(backend, &[&public(&a)], &[]);
    let at_a = Some((public(&a), "3001".to_owned()));

    // B greeted A at start, so A tells B of a desktop that connects (it may take a moment for
    // the greeting to land: connect until B knows).
    eventually("B hears of A's desktop", || {
        connect(&a, "5001");
        found(&b, "5001") == at_a
    });
    // An app asking B is sent to A, on both of B's lookups.
    for path in ["/client", "/client/3001"] {
        let r = locate(&b, path, "5001");
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(header(&r, "x-iwp-host"), Some(public(&a)), "{path}");
        assert_eq!(header(&r, "x-iwp-port").as_deref(), Some("3001"), "{path}");
    }
    // And the relay works at A.
    let desk = desktop(&a, "5001");
    let app = app(&a, "5001", b"across regions".to_vec());
    let (id, request) = desk.join().unwrap();
    assert_eq!(request.text().unwrap(), "across regions");
    assert_eq!(reply(&a, "5001", &id, "200", b"ok".to_vec()).status(), 200);
    assert_eq!(app.join().unwrap().text(), "ok");

    // A desktop on B before C exists. C knows only A, learns of B from A's answer and greets
    // it; then B tells C of its next desktop.
    connect(&b, "5002");
    let c = region(backend, &[&public(&a)], &[]);
    let at_b = |port: &str| Some((public(&b), port.to_owned()));
    eventually("C is greeted into B's members", || {
        connect(&b, "5003");
        found(&c, "5003") == at_b("3001")
    });
    // C never heard of 5002: it asks the other regions, and remembers the answer.
    assert_eq!(found(&c, "5002"), None);
    let r = locate(&c, "/client", "5002");
    assert_eq!(header(&r, "x-iwp-host"), Some(public(&b)));
    assert_eq!(found(&c, "5002"), at_b("3001"));
    // Nobody has 5009: "no agent".
    let r = locate(&c, "/client", "5009");
    assert_eq!(header(&r, "x-iwp-responsetype").as_deref(), Some("0"));
}

fn node_to_node_calls_need_the_secret(backend: Backend) {
    let a = region(backend, &[], &[]);
    let holder = [
        ("X-IWP-ProductUnivId", "6001"),
        ("X-IWP-Host", "evil.example:80"),
        ("X-IWP-Port", "666"),
    ];
    for secret in [None, Some("not-the-secret"), Some("")] {
        for path in ["/hello", "/connected", "/find", "/find/3001"] {
            let r = call(&a, path, secret, &holder);
            assert_eq!(r.status(), 403, "{path} with {secret:?}");
            let reason = header(&r, "x-iwp-reason").unwrap();
            assert!(reason.contains("X-IWP-Secret"), "{reason}");
        }
    }
    // The forged location changed nothing.
    let r = locate(&a, "/client", "6001");
    assert_eq!(header(&r, "x-iwp-responsetype").as_deref(), Some("0"));

    // With the secret, missing headers are named.
    let r = call(
        &a,
        "/connected",
        Some(SECRET),
        &[("X-IWP-ProductUnivId", "6001"), ("X-IWP-Host", "b:80")],
    );
    assert_eq!(r.status(), 400);
    assert_eq!(
        header(&r, "x-iwp-reason").as_deref(),
        Some("missing X-IWP-Port")
    );
    let r = call(&a, "/hello", Some(SECRET), &[]);
    assert_eq!(r.status(), 400);
    assert_eq!(
        header(&r, "x-iwp-reason").as_deref(),
        Some("missing X-IWP-Host")
    );
    let r = client()
        .get(a.url("/find"))
        .header("X-IWP-Secret", SECRET)
        .send()
        .unwrap();
    assert_eq!(r.status(), 405);

    // A node without a secret takes no such calls at all.
    let lone = TestNode::start_with(backend, &FAST);
    let r = call(&lone, "/hello", Some(SECRET), &[("X-IWP-Host", "b:80")]);
    assert_eq!(r.status(), 403);
    assert!(
        header(&r, "x-iwp-reason")
            .unwrap()
            .contains("no [cluster] secret")
    );
}

fn failing_regions_are_forgotten_until_they_greet(backend: Backend) {
    let failing = CallbackReceiver::answering(&[503; 20]);
    let failing_site = failing.url("").trim_start_matches("http://").to_owned();
    let a = region(
        backend,
        &[&failing_site],
        &[("RELAYBOX__CLUSTER__MAX_INSTANCE_FAILED", "2")],
    );
    let paths = |n| -> Vec<String> {
        let got = failing.wait_for(n, Duration::from_secs(10));
        got.into_iter().map(|r| r.path).collect()
    };
    assert_eq!(paths(1), ["/hello"], "greeted at start (failure 1)");
    assert_eq!(members(&a), [failing_site.as_str()]);
    connect(&a, "7001");
    assert_eq!(paths(2)[1], "/connected", "failure 2");
    connect(&a, "7002");
    assert_eq!(
        paths(3)[2],
        "/connected",
        "failure 3: past the limit, forgotten"
    );
    // The answer to that call is counted after the receiver saw it: wait for the count.
    eventually("the failing region is forgotten", || {
        !members(&a).contains(&failing_site)
    });
    connect(&a, "7003");
    thread::sleep(Duration::from_millis(500));
    assert_eq!(paths(3).len(), 3, "a forgotten region is not told");

    // It greets again: known again, and told.
    let r = call(&a, "/hello", Some(SECRET), &[("X-IWP-Host", &failing_site)]);
    assert_eq!(r.status(), 200);
    connect(&a, "7004");
    assert_eq!(paths(4)[3], "/connected");

    // A region that fails to answer `/find` leaves the app with "no agent", not an error.
    let r = locate(&a, "/client", "7999");
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-iwp-responsetype").as_deref(), Some("0"));
    assert_eq!(paths(5)[4], "/find");
}

/// Members live in the store: a region greeted through one of its nodes is told of desktops by
/// all of them.
#[test]
fn a_regions_nodes_share_its_members() {
    if common::skip_redis() {
        return;
    }
    let redis = RedisServer::start();
    let r1 = region_on(Backend::Redis, Some(&redis), &[], &[]);
    let r2 = region_on(Backend::Redis, Some(&redis), &[], &[]);
    let s = region(Backend::Memory, &[&public(&r1)], &[]);
    eventually("S hears of a desktop on R2", || {
        connect(&r2, "8001");
        found(&s, "8001") == Some((public(&r2), "3001".to_owned()))
    });
}

crate::both_backends!(
    regions_greet_tell_and_find_each_other,
    node_to_node_calls_need_the_secret,
    failing_regions_are_forgotten_until_they_greet,
);
