//! Who may use the operators' routes, and where: a bearer token when `admin.token` is set
//! (else loopback clients only), and a listener of their own with `admin.listen`.

mod common;

use std::time::Duration;

use common::{Backend, TestNode, free_port, relay};

const TOKEN: &str = "an-admin-token-for-tests";

fn get(url: &str, token: Option<&str>) -> (u16, reqwest::header::HeaderMap) {
    let client = reqwest::blocking::Client::new();
    let mut request = client.get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let answer = request.send().unwrap();
    (answer.status().as_u16(), answer.headers().clone())
}

/// With `admin.token`, every admin route needs it: none or a wrong one is a `401` with a
/// Bearer challenge, and no data.
fn admin_routes_need_the_token(backend: Backend) {
    let node = TestNode::start_with(backend, &[("RELAYBOX__ADMIN__TOKEN", TOKEN)]);
    for path in [
        "/admin/stats",
        "/admin/ranges",
        "/admin/charts/cpu.1h.svg",
        "/metrics",
    ] {
        let url = node.url(path);
        let (status, headers) = get(&url, None);
        assert_eq!(status, 401, "{path} without the token");
        assert_eq!(
            headers["www-authenticate"],
            r#"Bearer realm="relaybox admin""#
        );
        assert_eq!(get(&url, Some("not-the-token-at-all")).0, 401, "{path}");
        assert_eq!(get(&url, Some(TOKEN)).0, 200, "{path} with the token");
    }
    // The rest of the API does not care.
    assert_eq!(node.get("/health").0, 200);
    assert_eq!(node.push(&["q"], "m", "H").len(), 36);
}

/// With `admin.listen`, the admin routes (and the probes) are served there and not on the
/// node's listener, whose API is not served on the admin one.
fn admin_routes_move_to_their_listener(backend: Backend) {
    let admin = format!("127.0.0.1:{}", free_port());
    let node = TestNode::start_with(backend, &[("RELAYBOX__ADMIN__LISTEN", admin.as_str())]);
    for path in ["/admin/stats", "/metrics"] {
        assert_eq!(node.get(path).0, 404, "{path} moved away");
        assert_eq!(get(&format!("http://{admin}{path}"), None).0, 200, "{path}");
    }
    for probe in ["/health", "/ready"] {
        assert_eq!(
            get(&format!("http://{admin}{probe}"), None).0,
            200,
            "{probe}"
        );
        assert_eq!(node.get(probe).0, 200, "{probe}");
    }
    let client = reqwest::blocking::Client::new();
    let push = client
        .post(format!("http://{admin}/trans"))
        .json(&serde_json::json!({"payload": "m", "priority": "H", "queue": [{"id": "q"}]}))
        .send()
        .unwrap();
    assert_eq!(push.status(), 404, "the API is not on the admin listener");
}

/// `GET /admin/status`: the node, its store shard by shard, its role, its process and the
/// connections it holds by kind.
fn the_status_of_a_node(backend: Backend) {
    let node = TestNode::start_with(backend, &[]);
    let _waiting = node.hold_pop("someone");
    let started = std::time::Instant::now();
    let status = loop {
        let (code, status) = node.get("/admin/status");
        assert_eq!(code, 200, "{status}");
        if status["connections"]["held"]["pops_and_subscriptions"] == 1 {
            break status;
        }
        assert!(
            started.elapsed().as_secs() < 5,
            "the held pop is counted: {status}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(status["node"], "localhost:3001/3001");
    let backend_name = match backend {
        Backend::Memory => "memory",
        Backend::Redis | Backend::RedisSet | Backend::RedisPopBox => "redis",
        Backend::RedisCluster => "redis-cluster",
    };
    assert_eq!(status["store"]["backend"], backend_name);
    let shards = status["store"]["shards"].as_array().unwrap();
    assert!(!shards.is_empty());
    let answered = |s: &serde_json::Value| s["ok"] == true && s["ms"].as_f64().is_some();
    assert!(shards.iter().all(answered), "{status}");
    assert_eq!(status["replication"]["role"], "primary");
    assert!(status["process"]["open_files"].as_u64() > Some(3));
    assert!(
        status["connections"]["open"].as_u64() >= Some(2),
        "{status}"
    );
}

/// A drained node answers its held pops at once, and every new one, with nothing; undone, it
/// holds them again.
fn a_drained_node_answers_its_long_polls(backend: Backend) {
    use std::time::{Duration, Instant};
    let node = std::sync::Arc::new(TestNode::start_with(
        backend,
        &[("RELAYBOX__RELAY__TIMEOUT_AGENT", "30")],
    ));
    let held = {
        let node = std::sync::Arc::clone(&node);
        std::thread::spawn(move || {
            let started = Instant::now();
            (node.pop("q", "timeout=30").data.len(), started.elapsed())
        })
    };
    relay::connect(&node, "5001");
    let desktop = {
        let node = std::sync::Arc::clone(&node);
        std::thread::spawn(move || {
            let started = Instant::now();
            let polled = relay::poll_once(&node, "5001");
            (polled.status().as_u16(), started.elapsed())
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let (status, drained) = node.post("/admin/drain", &serde_json::json!({}));
    assert_eq!(
        (status, &drained["draining"]),
        (200, &serde_json::json!(true))
    );
    let (taken, waited) = held.join().unwrap();
    assert_eq!(taken, 0);
    assert!(
        waited < Duration::from_secs(10),
        "answered at the drain, not after 30 s"
    );
    let (status, waited) = desktop.join().unwrap();
    assert_eq!(status, 200, "the desktop's poll answered 'no client'");
    assert!(waited < Duration::from_secs(10), "at the drain: {waited:?}");
    let started = Instant::now();
    assert!(node.pop("q", "timeout=20").data.is_empty());
    assert_eq!(relay::poll_once(&node, "5001").status(), 200);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a new pop and a new poll are answered at once"
    );
    assert_eq!(node.get("/admin/status").1["draining"], true);
    let undone = node.delete("/admin/drain");
    assert_eq!(undone.1["draining"], false);
    let started = Instant::now();
    assert!(node.pop("q", "timeout=1").data.is_empty());
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "held again"
    );
    node.push(&["q"], "after", "H");
    assert_eq!(node.pop("q", "timeout=1").payloads(), ["after"]);
}

/// The queues and connections of a node: the deepest queues, one queue in detail, a purge,
/// the held requests page by page, the desktops attached; bad queries refused.
fn queues_connections_and_desktops(backend: Backend) {
    use serde_json::json;
    use std::time::Duration;
    let node = TestNode::start_with(backend, &[("RELAYBOX__RELAY__TIMEOUT_AGENT", "30")]);
    node.push(&["deep"], "h1", "H");
    node.push(&["deep"], "h2", "H");
    node.push(&["deep"], "l1", "L");
    node.push(&["shallow"], "s1", "H");
    let _pop = node.hold_pop("waited-on");
    let _other = node.hold_pop("waited-on-too");
    relay::connect(&node, "6001");
    // Not joined: the poll is cut off when the node goes at the end.
    let poll = relay::client()
        .post(node.url("/agent/3001"))
        .header("X-IWP-ProductUnivId", "6001");
    std::thread::spawn(move || poll.send());
    std::thread::sleep(Duration::from_millis(500));

    let (status, top) = node.get("/admin/queues?top=1");
    assert_eq!(status, 200, "{top}");
    assert_eq!(
        top["queues"],
        json!([{"queue": "UNSEC:deep", "high": 2, "low": 1}])
    );
    assert_eq!(top["complete"], true);
    let (_, deep) = node.get("/admin/queues/UNSEC:deep");
    assert_eq!(
        (deep["high"].as_u64(), deep["low"].as_u64()),
        (Some(2), Some(1))
    );
    assert!(
        deep["oldest_ms"].as_i64().is_some_and(|ms| ms >= 0),
        "{deep}"
    );
    let (_, waited) = node.get("/admin/queues/UNSEC:waited-on");
    assert_eq!(
        (waited["waiting_here"].as_u64(), &waited["blocked"]),
        (Some(1), &json!(true))
    );

    // Page by page: one, then the rest; the two pops (in the order they came) and the poll.
    let (status, first) = node.get("/admin/connections?limit=1");
    assert_eq!(status, 200, "{first}");
    let next = first["next"].as_str().expect("a next page");
    let (_, rest) = node.get(&format!("/admin/connections?after={next}"));
    assert_eq!(rest["next"], json!(null));
    let held: Vec<(String, String)> = (first["connections"].as_array().unwrap().iter())
        .chain(rest["connections"].as_array().unwrap())
        .map(|c| {
            let what = c.get("queue").or(c.get("customer")).unwrap();
            (
                c["kind"].as_str().unwrap().to_owned(),
                what.as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let mut pops: Vec<&str> = (held.iter().take(2))
        .map(|(kind, queue)| {
            assert_eq!(kind, "pop", "{held:?}");
            queue.as_str()
        })
        .collect();
    pops.sort_unstable();
    assert_eq!(pops, ["UNSEC:waited-on", "UNSEC:waited-on-too"]);
    assert_eq!(held[2..], [("desktop_poll".to_owned(), "6001".to_owned())]);
    let (_, desktops) = node.get("/admin/desktops");
    assert_eq!(desktops["desktops"][0]["customer"], "6001");
    assert_eq!(
        desktops["desktops"][0]["polls_waiting_ms"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let (status, purged) = node.delete("/admin/queues/UNSEC:deep");
    assert_eq!((status, &purged["purged"]), (200, &json!(3)), "{purged}");
    assert!(node.peek("deep", "").data.is_empty());
    assert_eq!(
        node.peek("shallow", "").payloads(),
        ["s1"],
        "the others stay"
    );

    for bad in [
        "/admin/queues?top=0",
        "/admin/queues?budget=1000000",
        "/admin/queues?depth=3",
        "/admin/queues/deep",
        "/admin/connections?after=x",
        "/admin/connections?limit=5000",
        "/admin/desktops?limit=no",
    ] {
        let (status, body) = node.get(bad);
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(
            !body["errors"][0].as_str().unwrap().is_empty(),
            "{bad}: {body}"
        );
    }
}

/// On Redis the deepest queues are looked for with bounded work: among 100,000 keys that are
/// not queues, a small budget answers at once, saying the search was not complete; the
/// default one finds them.
#[test]
fn the_deepest_queues_cost_redis_bounded_work() {
    if common::skip_redis() {
        return;
    }
    let node = TestNode::start_with(Backend::Redis, &[]);
    let redis = node.own_redis();
    let fill = "for i = 1, 100000 do redis.call('SET', 'filler:' .. i, 'x') end";
    redis.cli(&["EVAL", fill, "0"]);
    assert!(redis.cli(&["DBSIZE"]).trim().parse::<u64>().unwrap() >= 100_000);
    for queue in ["a", "b", "c"] {
        node.push(&[queue], "m", "H");
    }
    let started = std::time::Instant::now();
    let (status, small) = node.get("/admin/queues?budget=10");
    assert_eq!(status, 200, "{small}");
    assert_eq!(small["complete"], false, "{small}");
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
    let (_, whole) = node.get("/admin/queues");
    assert_eq!(whole["complete"], true, "{whole}");
    assert_eq!(whole["looked_at"], 3, "{whole}");
}

crate::every_store!(
    queues_connections_and_desktops,
    admin_routes_need_the_token,
    admin_routes_move_to_their_listener,
    the_status_of_a_node,
    a_drained_node_answers_its_long_polls,
);

/// `GET /admin/config`: the effective settings, environment included, with no secret in them.
#[test]
fn the_effective_configuration_without_secrets() {
    let secret = "a-cluster-secret-nobody-sees";
    let node = TestNode::start_with(
        Backend::Memory,
        &[
            ("RELAYBOX__CLUSTER__SECRET", secret),
            ("RELAYBOX__ADMIN__TOKEN", TOKEN),
            ("RELAYBOX__INBOX__MAX_QUEUES", "77"),
        ],
    );
    let answer = reqwest::blocking::Client::new()
        .get(node.url("/admin/config"))
        .bearer_auth(TOKEN)
        .send()
        .unwrap();
    assert_eq!(answer.status(), 200);
    let text = answer.text().unwrap();
    assert!(!text.contains(secret) && !text.contains(TOKEN), "{text}");
    let config: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(config["inbox"]["max_queues"], 77, "the environment counts");
    assert_eq!(config["cluster"]["secret"], "<redacted>");
    assert_eq!(config["admin"]["token"], "<redacted>");
}

/// A token too short to protect anything stops start-up, naming the key.
#[test]
fn a_short_token_is_refused() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_relaybox"))
        .args([
            "--config",
            concat!(env!("CARGO_MANIFEST_DIR"), "/cluster.toml"),
        ])
        .arg("check-config")
        .env("RELAYBOX__ADMIN__TOKEN", "short")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("admin.token"));
    let shown = std::process::Command::new(env!("CARGO_BIN_EXE_relaybox"))
        .args([
            "--config",
            concat!(env!("CARGO_MANIFEST_DIR"), "/cluster.toml"),
        ])
        .arg("check-config")
        .env("RELAYBOX__ADMIN__TOKEN", TOKEN)
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&shown.stdout);
    assert!(
        !printed.contains(TOKEN),
        "check-config never prints the token"
    );
}

/// `PUT /admin/log` changes the log filter while the node runs: debug lines appear, and a bad
/// filter is a 400 that changes nothing.
#[test]
fn the_log_filter_changes_at_run_time() {
    // (The start-up line that says where the node listens must still come through.)
    let quiet = "warn,relaybox::node=info";
    let node = TestNode::start_with(Backend::Memory, &[("RUST_LOG", quiet)]);
    assert_eq!(node.get("/admin/log").1["filter"], quiet);
    let (status, said) = node.put(
        "/admin/log",
        &serde_json::json!({"filter": "info,relaybox=lol"}),
    );
    assert_eq!(status, 400, "{said}");
    assert!(
        said["errors"][0]
            .as_str()
            .unwrap()
            .contains("invalid log filter")
    );
    assert_eq!(node.get("/admin/log").1["filter"], quiet, "unchanged");
    let (status, said) = node.put("/admin/log", &serde_json::json!({"filter": "info"}));
    assert_eq!((status, &said["filter"]), (200, &serde_json::json!("info")));
    assert!(
        node.logs_within("log filter changed by an operator", Duration::from_secs(5)),
        "an info line is logged now"
    );
}

/// `GET /admin/regions`: the other regions known, with their failed calls.
#[test]
fn the_regions_a_node_knows() {
    let node = TestNode::start_with(
        Backend::Memory,
        &[
            ("RELAYBOX__CLUSTER__SECRET", "a-test-cluster-secret"),
            ("RELAYBOX__CLUSTER__SITES", "127.0.0.1:9"),
            ("RELAYBOX__CLUSTER__MASTER", "localhost:3001:3001"),
            ("RELAYBOX__CLUSTER__CALL_TIMEOUT", "1"),
        ],
    );
    let started = std::time::Instant::now();
    let regions = loop {
        let (status, regions) = node.get("/admin/regions");
        assert_eq!(status, 200, "{regions}");
        if regions["regions"][0]["failures"].as_u64() >= Some(1) {
            break regions;
        }
        assert!(started.elapsed().as_secs() < 10, "{regions}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(regions["regions"][0]["server"], "127.0.0.1:9");
    assert_eq!(regions["forgotten_after"], 5);
}
