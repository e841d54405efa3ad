//! E-mail alerts, received by a real SMTP server: a node overloaded (mailed once, then
//! "cleared"), a node killed and reported by another, the mail server down and back, one mail
//! per region however many nodes, and the test mail.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::sleep;
use std::time::Duration;

use common::smtp::{Mail, SmtpServer};
use common::{Backend, RedisServer, TestNode};

/// The region of the multi-node tests: one public name, a port per node.
const REGION: &str = "eu.test:80";

/// A node sampling every second and mailing alerts to `smtp`, plus `extra`.
fn alerting<'a>(smtp: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![
        ("RELAYBOX__STATS__PERIOD", "1"),
        ("RELAYBOX__ALERTS__SMTP", smtp),
        ("RELAYBOX__ALERTS__SENDER", "relaybox@example.com"),
        (
            "RELAYBOX__ALERTS__RECEIVERS",
            "ops@example.com,oncall@example.com",
        ),
        ("RELAYBOX__ALERTS__GRACE_PERIOD", "3600"),
    ];
    env.extend_from_slice(extra);
    env
}

fn subjects(mails: &[Mail]) -> Vec<&str> {
    mails.iter().map(|m| m.subject.as_str()).collect()
}

fn count(mails: &[Mail], part: &str) -> usize {
    mails.iter().filter(|m| m.subject.contains(part)).count()
}

/// Pushes from two threads until dropped, to make the node work.
struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn on(node: &TestNode) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let url = node.url("/trans");
        let threads = (0..2)
            .map(|i| {
                let (stop, url) = (Arc::clone(&stop), url.clone());
                std::thread::spawn(move || {
                    let client = reqwest::blocking::Client::new();
                    let body = format!(
                        r#"{{"payload": "load", "priority": "L", "queue": [{{"id": "load{i}"}}]}}"#
                    );
                    // Bounded: a minute at most, whatever the test does.
                    let until = std::time::Instant::now() + Duration::from_secs(60);
                    while !stop.load(Ordering::Relaxed) && std::time::Instant::now() < until {
                        let _ = client
                            .post(&url)
                            .header("content-type", "application/json")
                            .body(body.clone())
                            .send();
                    }
                })
            })
            .collect();
        Load { stop, threads }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// A node over its CPU limit is mailed once (not again within the grace period), and again
/// when it is back under it. The mail is proper mail.
fn overload_is_mailed_once_then_cleared(backend: Backend) {
    let smtp = SmtpServer::start();
    let address = smtp.address();
    // 5 % of a core: an idle node stays under, one taking pushes as fast as it can goes over.
    let env = alerting(&address, &[("RELAYBOX__ALERTS__OVER", "0.05")]);
    let node = TestNode::start_with(backend, &env);
    let load = Load::on(&node);
    let mails = smtp.wait_for("an overload mail", Duration::from_secs(30), |m| {
        count(m, "overloaded") >= 1
    });
    let mail = mails
        .iter()
        .find(|m| m.subject.contains("overloaded"))
        .unwrap();
    assert_eq!(
        mail.subject,
        "relaybox region \"localhost:3001\": 1 of 1 nodes overloaded"
    );
    assert!(
        mail.body.contains("more than 5 % of one core"),
        "{}",
        mail.body
    );
    assert!(
        mail.body.contains("localhost:3001/3001: CPU "),
        "{}",
        mail.body
    );
    // Proper mail: who from and to, when, an id, UTF-8 text after a blank line.
    assert_eq!(mail.header("From"), Some("relaybox <relaybox@example.com>"));
    assert_eq!(
        mail.header("To"),
        Some("ops@example.com, oncall@example.com")
    );
    assert!(mail.header("Date").is_some_and(|d| d.ends_with("+0000")));
    assert!(
        mail.header("Message-ID")
            .is_some_and(|id| id.starts_with('<'))
    );
    assert_eq!(
        mail.header("Content-Type"),
        Some("text/plain; charset=utf-8")
    );
    // Still over for a while: no second mail within the grace period.
    sleep(Duration::from_secs(4));
    drop(load);
    let mails = smtp.wait_for("a cleared mail", Duration::from_secs(20), |m| {
        count(m, "cleared") >= 1
    });
    assert_eq!(count(&mails, "overloaded"), 1, "{:?}", subjects(&mails));
    let cleared = mails
        .iter()
        .find(|m| m.subject.contains("cleared"))
        .unwrap();
    assert!(
        cleared.body.contains("The region is no longer overloaded."),
        "{}",
        cleared.body
    );
}

/// `POST /admin/alerts/test` mails every receiver at once; without `[alerts]` it says what to
/// set.
fn the_test_mail(backend: Backend) {
    let smtp = SmtpServer::start();
    let address = smtp.address();
    let node = TestNode::start_with(backend, &alerting(&address, &[]));
    let (status, reply) = node.post("/admin/alerts/test", &serde_json::json!({}));
    assert_eq!(status, 200, "{reply}");
    assert_eq!(
        reply["receivers"],
        serde_json::json!(["ops@example.com", "oncall@example.com"])
    );
    let mails = smtp.wait_for("the test mail", Duration::from_secs(5), |m| !m.is_empty());
    assert_eq!(
        mails[0].subject,
        "relaybox region \"localhost:3001\": test alert"
    );
    // The mail server gone: the node says so, and stays up.
    drop(smtp);
    let (status, reply) = node.post("/admin/alerts/test", &serde_json::json!({}));
    assert_eq!(status, 502, "{reply}");
    let said = reply["errors"][0].as_str().unwrap();
    assert!(said.contains(&format!("mail server {address}")), "{said}");
    // Without [alerts].
    let plain = TestNode::start_with(backend, &[]);
    let (status, reply) = plain.post("/admin/alerts/test", &serde_json::json!({}));
    assert_eq!(status, 409, "{reply}");
    assert!(reply["errors"][0].as_str().unwrap().contains("[alerts]"));
}

crate::both_backends!(overload_is_mailed_once_then_cleared, the_test_mail);

/// Mail over STARTTLS and over TLS from the first byte, to a server whose certificate the
/// node is told to trust (`alerts.ca_file`); without it, the certificate is refused.
#[test]
fn mail_over_tls() {
    let certs = tempfile::tempdir().unwrap();
    let made = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tools/dev-cert"))
        .arg(certs.path())
        .output()
        .unwrap();
    assert!(made.status.success(), "tools/dev-cert: {made:?}");
    let (cert, key) = (
        certs.path().join("server.crt"),
        certs.path().join("server.key"),
    );
    for (mode, starttls) in [("starttls", true), ("tls", false)] {
        let smtp = SmtpServer::start_tls(starttls, &cert, &key);
        let address = smtp.address();
        let trusting = [
            ("RELAYBOX__ALERTS__TLS", mode),
            ("RELAYBOX__ALERTS__CA_FILE", cert.to_str().unwrap()),
        ];
        let node = TestNode::start_with(Backend::Memory, &alerting(&address, &trusting));
        let (status, reply) = node.post("/admin/alerts/test", &serde_json::json!({}));
        assert_eq!(status, 200, "{mode}: {reply}");
        let mails = smtp.wait_for("the test mail", Duration::from_secs(5), |m| !m.is_empty());
        assert!(mails[0].subject.ends_with("test alert"), "{mode}");
        // Not told to trust it: refused, and the answer says why.
        let doubting = [("RELAYBOX__ALERTS__TLS", mode)];
        let node = TestNode::start_with(Backend::Memory, &alerting(&address, &doubting));
        let (status, reply) = node.post("/admin/alerts/test", &serde_json::json!({}));
        assert_eq!(status, 502, "{mode}: {reply}");
        let said = reply["errors"][0].as_str().unwrap().to_lowercase();
        assert!(said.contains("certificate"), "{mode}: {said}");
        assert_eq!(smtp.mails().len(), 1, "{mode}");
    }
}

/// Bad `[alerts]` settings stop start-up, naming the key.
#[test]
fn bad_settings_are_named() {
    for (key, value, named) in [
        (
            "RELAYBOX__ALERTS__SENDER",
            "not an address",
            "alerts.sender",
        ),
        ("RELAYBOX__ALERTS__OVER", "0", "alerts.over"),
        ("RELAYBOX__ALERTS__THRESHOLD", "1.5", "alerts.threshold"),
        ("RELAYBOX__ALERTS__SMTP", "mail:0", "alerts.smtp"),
        ("RELAYBOX__ALERTS__USER", "ops", "alerts.user"),
        (
            "RELAYBOX__ALERTS__CA_FILE",
            "/nonexistent.pem",
            "alerts.ca_file",
        ),
    ] {
        let mut env = alerting("127.0.0.1:25", &[]);
        env.retain(|(k, _)| *k != key);
        env.push((key, value));
        let out = Command::new(env!("CARGO_BIN_EXE_relaybox"))
            .args([
                "--config",
                concat!(env!("CARGO_MANIFEST_DIR"), "/cluster.toml"),
            ])
            .arg("check-config")
            .envs(env)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{key}={value}: {err}");
        assert!(err.contains(named), "{key}={value}: {err}");
    }
}

/// Node `port` of the region, on `redis`.
fn region_node(
    redis: &RedisServer,
    port: &'static str,
    env: &[(&'static str, &'static str)],
) -> TestNode {
    let mut all = env.to_vec();
    all.extend([
        ("RELAYBOX__NODE__SERVER", REGION),
        ("RELAYBOX__NODE__PORT", port),
    ]);
    TestNode::on_redis(&[redis], &all)
}

/// The node that holds the alert lease, as `server/port`.
fn lease_holder(redis: &RedisServer) -> String {
    for _ in 0..100 {
        let holder = redis.cli(&["GET", "RB:S|alerts:lease"]);
        if !holder.is_empty() {
            return holder;
        }
        sleep(Duration::from_millis(100));
    }
    panic!("no node took the alert lease");
}

fn leak(text: String) -> &'static str {
    Box::leak(text.into_boxed_str())
}

/// Of two nodes, the one that checks the alerts is killed: the other takes over, reports it
/// silent within a few periods, and says so again when it is back.
#[test]
fn a_killed_node_is_reported_by_the_other() {
    if common::skip_redis() {
        return;
    }
    let redis = RedisServer::start();
    let smtp = SmtpServer::start();
    let env = alerting(leak(smtp.address()), &[]);
    let mut nodes = vec![
        ("8081", region_node(&redis, "8081", &env)),
        ("8082", region_node(&redis, "8082", &env)),
    ];
    let holder = lease_holder(&redis);
    let at = nodes
        .iter()
        .position(|(port, _)| holder.ends_with(port))
        .unwrap();
    let (port, killed) = nodes.remove(at);
    sleep(Duration::from_secs(2)); // a few samples from both
    drop(killed); // SIGKILL
    let name = format!("{REGION}/{port}");
    let mails = smtp.wait_for("the silent node reported", Duration::from_secs(10), |m| {
        count(m, "silent") >= 1
    });
    let mail = &mails[0];
    assert_eq!(
        mail.subject,
        format!("relaybox region \"{REGION}\": node {name} silent")
    );
    assert!(
        mail.body.contains(&format!("{name}: last sample ")),
        "{}",
        mail.body
    );
    // Back: "cleared", and still only the one "silent".
    let _back = region_node(&redis, leak(port.to_owned()), &env);
    let mails = smtp.wait_for("the node back", Duration::from_secs(10), |m| {
        count(m, "cleared") >= 1
    });
    let cleared = mails
        .iter()
        .find(|m| m.subject.contains("cleared"))
        .unwrap();
    assert!(
        cleared
            .body
            .contains(&format!("{name} writes statistics again.")),
        "{}",
        cleared.body
    );
    assert_eq!(count(&mails, "silent"), 1, "{:?}", subjects(&mails));
}

/// Three nodes, one killed while the mail server is down: the send fails, is logged, nobody
/// crashes; when the server is back the alert is mailed, once for the region.
#[test]
fn the_mail_server_down_then_back() {
    if common::skip_redis() {
        return;
    }
    let redis = RedisServer::start();
    let port = common::free_port();
    let address = leak(format!("127.0.0.1:{port}"));
    let env = alerting(address, &[]);
    let a = region_node(&redis, "8081", &env);
    let b = region_node(&redis, "8082", &env);
    let c = region_node(&redis, "8083", &env);
    sleep(Duration::from_secs(2));
    drop(c);
    let not_sent = || {
        [&a, &b].iter().any(|node| {
            (node.log().iter()).any(|l| l.contains("alert mail not sent") && l.contains(address))
        })
    };
    for _ in 0..100 {
        if not_sent() {
            break;
        }
        sleep(Duration::from_millis(100));
    }
    assert!(not_sent(), "a failed send is logged, naming the server");
    let smtp = SmtpServer::start_on(port);
    let mails = smtp.wait_for(
        "the alert sent once the server is back",
        Duration::from_secs(10),
        |m| count(m, "silent") >= 1,
    );
    assert!(
        mails[0]
            .subject
            .ends_with(&format!("node {REGION}/8083 silent"))
    );
    // Some more checks: one mail for the region, not one per node.
    sleep(Duration::from_secs(3));
    assert_eq!(
        count(&smtp.mails(), "silent"),
        1,
        "{:?}",
        subjects(&smtp.mails())
    );
    for node in [&a, &b] {
        assert_eq!(node.get("/").0, 200, "the nodes stay up");
    }
}

/// `relaybox watch` checks from outside the region's nodes: when every node is gone, it
/// mails that the region seems to be down. Without `[alerts]` it has nothing to do.
#[test]
fn a_watch_reports_the_region_down() {
    if common::skip_redis() {
        return;
    }
    let redis = RedisServer::start();
    let smtp = SmtpServer::start();
    let env = alerting(leak(smtp.address()), &[]);
    let a = region_node(&redis, "8081", &env);
    let b = region_node(&redis, "8082", &env);
    let watch = |env: &[(&str, &str)]| {
        Command::new(env!("CARGO_BIN_EXE_relaybox"))
            .args([
                "--config",
                concat!(env!("CARGO_MANIFEST_DIR"), "/cluster.toml"),
            ])
            .arg("watch")
            .env("RELAYBOX__STORE__BACKEND", "redis")
            .env("RELAYBOX__STORE__REDIS_SERVERS", redis.url())
            .env("RELAYBOX__NODE__SERVER", REGION)
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut watcher = watch(&env);
    sleep(Duration::from_secs(2));
    drop(a);
    drop(b);
    let mails = smtp.wait_for("the region reported down", Duration::from_secs(12), |m| {
        count(m, "down") >= 1
    });
    let down = mails.iter().find(|m| m.subject.contains("down")).unwrap();
    assert_eq!(
        down.subject,
        format!("relaybox region \"{REGION}\" seems to be down")
    );
    for node in ["8081", "8082"] {
        let line = format!("{REGION}/{node}: last sample ");
        assert!(down.body.contains(&line), "{}", down.body);
    }
    let _ = watcher.kill();
    let _ = watcher.wait();

    let alone = watch(&[]).wait_with_output().unwrap();
    assert_eq!(alone.status.code(), Some(1));
    let said = String::from_utf8_lossy(&alone.stderr);
    assert!(said.contains("no [alerts] is configured"), "{said}");
    // The embedded store has nothing to watch from outside.
    let mut embedded = env.clone();
    embedded.push(("RELAYBOX__STORE__BACKEND", "memory"));
    let embedded = watch(&embedded).wait_with_output().unwrap();
    assert_eq!(embedded.status.code(), Some(1));
    let said = String::from_utf8_lossy(&embedded.stderr);
    assert!(
        said.contains("store.backend = \"redis\" is needed"),
        "{said}"
    );
}
