//! The node as a whole: routing rules, deploy info, configuration, logging and shutdown.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Backend, TestNode};
use serde_json::json;

fn routes_ignore_case_and_one_trailing_slash(backend: Backend) {
    let node = TestNode::start(backend);
    let id = node.push(&["Mixed"], "p", "H");
    let (status, reply) = node.get("/QUEUE/Mixed/PEEK/");
    assert_eq!(status, 200);
    assert_eq!(reply["transactions"], json!([id]));
    // Parameters keep their case: `mixed` is another queue.
    assert_eq!(node.get("/queue/mixed/peek").1["transactions"], json!([]));
    let (status, _) = node.post(
        "/Trans/",
        &json!({"payload": "p", "priority": "H", "queue": []}),
    );
    assert_eq!(status, 200);
    // Percent-encoded ids are decoded.
    let id = node.push(&["a b"], "p", "H");
    assert_eq!(node.get("/queue/a%20b/peek").1["transactions"], json!([id]));
}

fn unknown_routes_answer_like_popbox(backend: Backend) {
    let node = TestNode::start(backend);
    for (request, expected) in [
        ("GET /nothing?x=1 HTTP/1.1", "Cannot GET /nothing?x=1"),
        ("GET /queue/q/pop HTTP/1.1", "Cannot GET /queue/q/pop"),
        (
            "DELETE /org/acme/trans/x HTTP/1.1",
            "Cannot DELETE /org/acme/trans/x",
        ),
    ] {
        let r = node.raw(format!("{request}\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes());
        assert_eq!(r.status, 404, "{request}");
        assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
        assert_eq!(r.body, expected);
    }
    let r = node.raw(b"GET /queue/%FF/peek HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 400);
    assert!(
        r.json()["errors"][0]
            .as_str()
            .unwrap()
            .contains("percent-encoded")
    );
}

fn every_answer_has_a_content_type(backend: Backend) {
    let node = TestNode::start(backend);
    for request in [
        "GET / HTTP/1.1",
        "GET /queue/q HTTP/1.1",
        "POST /trans HTTP/1.1",
        "GET /trans/x HTTP/1.1",
        "GET /elsewhere HTTP/1.1",
    ] {
        let r = node.raw(
            format!("{request}\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        );
        assert!(r.header("content-type").is_some(), "{request}: {r:?}");
    }
}

fn deploy_info(backend: Backend) {
    let node = TestNode::start(backend);
    let (status, info) = node.get("/");
    assert_eq!(status, 200);
    assert_eq!(info["name"], "relaybox");
    let (name, shards) = match backend {
        Backend::Memory => ("memory", 16),
        Backend::Redis | Backend::RedisPopBox => ("redis", 1),
        Backend::RedisSet => ("redis", 3),
        Backend::RedisCluster => ("redis-cluster", 16),
    };
    assert_eq!(info["backend"], name);
    assert_eq!(info["shards"], shards);
    assert!(info["nCores"].as_u64().unwrap() >= 1);
}

fn one_access_log_line_per_request(backend: Backend) {
    let node = TestNode::start(backend);
    node.get("/queue/logged/peek?marker=1");
    std::thread::sleep(Duration::from_millis(100));
    let lines: Vec<String> = node
        .log()
        .into_iter()
        .filter(|l| l.contains("/queue/logged/peek?marker=1"))
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("relaybox::access") && lines[0].contains(" 200 "),
        "{}",
        lines[0]
    );
}

fn json_logs_on_request(backend: Backend) {
    let node = TestNode::start_with(backend, &[("RELAYBOX__LOG__FORMAT", "json")]);
    node.get("/");
    std::thread::sleep(Duration::from_millis(100));
    let log = node.log();
    assert!(!log.is_empty());
    for line in log {
        let parsed: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(parsed.get("level").is_some(), "{line}");
    }
}

fn relaybox(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_relaybox"));
    cmd.args(args).current_dir(env!("CARGO_MANIFEST_DIR"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn check_config_prints_the_effective_settings() {
    let out = relaybox(&["check-config"], &[("RELAYBOX__STORE__SHARDS", "7")]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let settings: toml::Table = text.parse().unwrap();
    assert_eq!(
        settings["store"]["shards"].as_integer(),
        Some(7),
        "the environment wins over the file"
    );
    assert_eq!(
        settings["node"]["listen"].as_str(),
        Some("127.0.0.1:3001"),
        "the shipped cluster.toml"
    );
}

#[test]
fn the_popbox_compatibility_profile_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tools/dev-cert");
    assert!(
        Command::new(script)
            .arg(dir.path())
            .status()
            .unwrap()
            .success()
    );
    let (cert, key) = (dir.path().join("server.crt"), dir.path().join("server.key"));
    let profile = concat!(env!("CARGO_MANIFEST_DIR"), "/tools/popbox-compat.toml");
    let out = relaybox(
        &["--config", profile, "check-config"],
        &[
            ("RELAYBOX__TLS__CERT", cert.to_str().unwrap()),
            ("RELAYBOX__TLS__KEY", key.to_str().unwrap()),
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let settings: toml::Table = String::from_utf8(out.stdout).unwrap().parse().unwrap();
    assert_eq!(settings["node"]["listen"].as_str(), Some("0.0.0.0:3001"));
    assert_eq!(settings["store"]["backend"].as_str(), Some("redis"));
    assert_eq!(
        settings["store"]["redis_servers"][0].as_str(),
        Some("redis://localhost:6379/0")
    );
    assert_eq!(settings["inbox"]["admin_user"].as_str(), Some("popbox"));
    assert_eq!(
        settings["inbox"]["admin_password"].as_str(),
        Some("itscool")
    );

    // Without the certificate files, it says which is missing.
    let out = relaybox(
        &["--config", profile, "check-config"],
        &[("RELAYBOX__TLS__CERT", "/nonexistent/server.crt")],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr).unwrap().contains("tls.cert"));
}

#[test]
fn bad_configuration_stops_start_up_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    for (text, key) in [
        ("[node]\nlisen = \"x\"\n", "lisen"),
        ("[store]\nshards = 0\n", "store.shards"),
        ("[log]\nformat = \"xml\"\n", "log.format"),
        ("[inbox]\nmax_queues = -1\n", "inbox.max_queues"),
    ] {
        std::fs::write(&file, text).unwrap();
        for args in [
            vec!["--config", file.to_str().unwrap()],
            vec!["--config", file.to_str().unwrap(), "check-config"],
        ] {
            let out = relaybox(&args, &[]);
            assert_eq!(out.status.code(), Some(2), "{text}");
            let err = String::from_utf8(out.stderr).unwrap();
            assert!(err.contains(key), "{key} not named in {err}");
        }
    }
    let out = relaybox(&["--config", "/nonexistent.toml"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let out = relaybox(&["check-config"], &[("RELAYBOX__NODE__LISTEN", "nowhere")]);
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("node.listen")
    );
}

fn sigterm_answers_waiting_pops_and_exits_cleanly(backend: Backend) {
    let mut node = TestNode::start(backend);
    let shared = Arc::new(node.url(""));
    let waiters: Vec<_> = (0..5)
        .map(|i| {
            let base = Arc::clone(&shared);
            std::thread::spawn(move || {
                let started = Instant::now();
                let reply: serde_json::Value = reqwest::blocking::Client::new()
                    .post(format!("{base}/queue/sd{i}/pop?timeout=60"))
                    .send()
                    .unwrap()
                    .json()
                    .unwrap();
                (reply, started.elapsed())
            })
        })
        .collect();
    let queued = node.push(&["kept"], "p", "H");
    std::thread::sleep(Duration::from_millis(500));
    node.terminate();
    for waiter in waiters {
        let (reply, waited) = waiter.join().unwrap();
        assert_eq!(reply, json!({"ok": true, "data": [], "transactions": []}));
        assert!(
            waited < Duration::from_secs(5),
            "answered promptly: {waited:?}"
        );
    }
    assert_eq!(
        node.wait_exit(Duration::from_secs(15)),
        Some(true),
        "exit status 0"
    );
    assert!(!queued.is_empty());
    assert!(node.log().iter().any(|l| l.contains("SIGTERM received")));
}

/// Request heads, bodies and answers of any size go through a connection's small first buffers,
/// which grow as they come (vendor/README.md), even when a head arrives in pieces; the
/// connection goes on serving afterwards.
#[test]
fn requests_and_answers_larger_than_the_first_buffers_go_through() {
    let node = TestNode::start(Backend::Memory);
    // Above actix-http's 128 KiB write-buffer retention limit, so the pop's answer makes the
    // connection release its write buffer before the next answer.
    let payload = "p".repeat(200_000);
    let body = json!({"payload": payload, "priority": "H", "queue": [{"id": "big"}]}).to_string();
    let filler = "f".repeat(6000);
    let push = format!(
        "POST /trans HTTP/1.1\r\nHost: t\r\nX-Filler: {filler}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let pop = format!(
        "POST /queue/big/pop HTTP/1.1\r\nHost: t\r\nX-Filler: {}\r\nContent-Length: 0\r\n\r\n",
        &filler[..3000]
    );
    let peek = "GET /queue/big/peek HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    let mut stream = TcpStream::connect(node.addr).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    // The push's head in small pieces, each read on its own; the rest in one go.
    let (head, rest) = push.as_bytes().split_at(3000);
    for piece in head.chunks(97) {
        stream.write_all(piece).unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    stream.write_all(rest).unwrap();
    stream.write_all(pop.as_bytes()).unwrap();
    stream.write_all(peek.as_bytes()).unwrap();
    let mut answers = String::new();
    stream.read_to_string(&mut answers).unwrap();
    let starts: Vec<usize> = answers.match_indices("HTTP/1.1 ").map(|(i, _)| i).collect();
    assert_eq!(starts.len(), 3, "three answers: {:.300}", answers);
    let (pushed, popped, peeked) = (
        &answers[..starts[1]],
        &answers[starts[1]..starts[2]],
        &answers[starts[2]..],
    );
    for answer in [pushed, popped, peeked] {
        assert!(answer.starts_with("HTTP/1.1 200"), "{:.300}", answer);
    }
    assert!(popped.contains(&payload), "the pop has the whole payload");
    assert!(peeked.contains(r#""data":[]"#), "{:.300}", peeked);
}

crate::both_backends!(
    routes_ignore_case_and_one_trailing_slash,
    unknown_routes_answer_like_popbox,
    every_answer_has_a_content_type,
    deploy_info,
    one_access_log_line_per_request,
    json_logs_on_request,
    sigterm_answers_waiting_pops_and_exits_cleanly,
);

/// Whether `stream` has bytes to read now.
fn answered(stream: &TcpStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let ready = matches!(stream.peek(&mut [0u8; 1]), Ok(n) if n > 0);
    stream.set_nonblocking(false).unwrap();
    ready
}

/// A node near its open-file limit keeps a reserve: waits past it get a prompt `503` naming
/// the reason, and every other request is still answered, instead of all new clients hanging in
/// the accept backlog once descriptors run out.
#[test]
fn a_node_out_of_descriptors_sheds_waits_and_answers_the_rest() {
    // 256 descriptors, 56 kept back: the node holds about 200 connections.
    let node = TestNode::start_limited(256, &[("RELAYBOX__NODE__CONNECTION_RESERVE", "56")]);
    let waits: Vec<TcpStream> = (0..260)
        .map(|i| {
            let mut stream = TcpStream::connect(node.addr).unwrap();
            let pop = format!(
                "POST /queue/full{i}/pop?timeout=60 HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n"
            );
            stream.write_all(pop.as_bytes()).unwrap();
            stream
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    let (shed, held): (Vec<TcpStream>, Vec<TcpStream>) = waits.into_iter().partition(answered);
    assert!(
        (150..=215).contains(&held.len()),
        "{} held, {} shed",
        held.len(),
        shed.len()
    );
    for mut stream in shed {
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        assert!(answer.contains("open-file limit"), "{answer}");
        assert!(
            answer.to_ascii_lowercase().contains("retry-after: 1"),
            "{answer}"
        );
    }
    // A desktop's poll is shed the relay's way.
    let poll = node.raw(
        b"POST /agent/3001 HTTP/1.1\r\nHost: t\r\nX-IWP-ProductUnivId: 1\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(poll.status, 503);
    assert!(
        poll.header("x-iwp-reason")
            .unwrap()
            .contains("open-file limit")
    );
    // Everything else is answered, promptly, every time.
    let body = r#"{"payload":"p","priority":"H","queue":[{"id":"busy"}]}"#;
    for _ in 0..50 {
        let started = Instant::now();
        let push = format!(
            "POST /trans HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let answer = node.raw(push.as_bytes());
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }
    // With the connections gone, waits are held again.
    drop(held);
    std::thread::sleep(Duration::from_millis(500));
    let waiting = node.hold_pop("again");
    std::thread::sleep(Duration::from_millis(500));
    assert!(!answered(&waiting), "held, not shed");
}

/// Malformed requests are answered `400` without a log line each (a client could flood the log
/// so): they are counted, and reported in one line at most a minute.
#[test]
fn malformed_requests_do_not_flood_the_log() {
    let node = TestNode::start(Backend::Memory);
    let garbage: [&[u8]; 3] = [
        b"GARBAGE\r\n\r\n",
        b"POST /trans HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
        b"\x16\x03\x01\x00\xa5\x01\x00\r\n\r\n",
    ];
    for _ in 0..30 {
        for request in garbage {
            assert_eq!(node.raw(request).status, 400);
        }
    }
    let reported = |log: &[String]| {
        (log.iter())
            .filter(|l| l.contains("client connections failed"))
            .count()
    };
    let started = Instant::now();
    while reported(&node.log()) == 0 && started.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = node.log();
    let errors: Vec<&String> = log.iter().filter(|l| l.contains("ERROR")).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(reported(&log), 1, "one line for 90 malformed requests");
}

/// A node whose listener cannot bind (the port is taken) stops with status 1 and says why —
/// not with a panic of the actors it had started, which used to bury the reason.
#[test]
fn a_taken_port_stops_the_node_naming_the_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let data = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_relaybox"))
        .arg("--config")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/cluster.toml"))
        .env("RELAYBOX__NODE__LISTEN", &address)
        .env("RELAYBOX__NODE__DATA_DIR", data.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("Address already in use"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
