//! Failover end to end: real nginx (configured by `relaybox nginx`) in front of a primary node
//! and its standby, each over its own redis-server, the standby's replicating the primary's,
//! under continuous pushes through nginx. The primary node is killed with -9 (and, in the
//! second test, its Redis too, the chain going on below the standby's): the next requests
//! reach the standby, which promotes itself, and traffic goes on (pushes; then pops, and a
//! desktop relaying an app's request, as before the kill); with `sync_replicas = 1` every push
//! answered `200` is delivered exactly once.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::{RedisServer, TestNode, free_port};

/// nginx from Debian's package (`tools/test` installs it).
fn nginx_binary() -> &'static str {
    if Path::new("/usr/sbin/nginx").exists() {
        "/usr/sbin/nginx"
    } else {
        "nginx"
    }
}

/// nginx on a free port, configured by `relaybox nginx` from the nodes' settings files.
struct Nginx {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Nginx {
    fn start(settings: &[(&str, String)]) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut generate = Command::new(env!("CARGO_BIN_EXE_relaybox"));
        generate.args(["nginx", "--listen", &format!("127.0.0.1:{port}")]);
        generate.arg("--standalone").arg(dir.path());
        for (name, toml) in settings {
            let file = dir.path().join(format!("{name}.toml"));
            std::fs::write(&file, toml).unwrap();
            generate.arg("--node").arg(file);
        }
        let out = generate.output().unwrap();
        assert!(out.status.success(), "relaybox nginx: {out:?}");
        let conf = dir.path().join("nginx.conf");
        std::fs::File::create(&conf)
            .unwrap()
            .write_all(&out.stdout)
            .unwrap();
        let child = Command::new(nginx_binary())
            .arg("-c")
            .arg(&conf)
            .arg("-p")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("nginx is needed for the failover tests (tools/test installs it)");
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "nginx did not listen"
            );
            sleep(Duration::from_millis(20));
        }
        Nginx {
            child,
            port,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A node's settings file, as the generator reads it.
fn settings(listen: &str, port: &str, redis: &str, upstream: Option<&str>) -> String {
    let mut toml = format!(
        "[node]\nlisten = \"{listen}\"\nport = \"{port}\"\n\
         [store]\nbackend = \"redis\"\nredis_servers = [\"{redis}\"]\n"
    );
    if let Some(upstream) = upstream {
        toml +=
            &format!("[replication]\nrole = \"standby\"\nupstream_servers = [\"{upstream}\"]\n");
    }
    toml
}

/// Every push made: its payload, its status (0: no answer) and when it was sent.
type Pushes = Arc<Mutex<Vec<(String, u16, Instant)>>>;

/// Pushes through nginx, one after another, until told to stop (a minute at most).
fn push_forever(url: String, stop: Arc<AtomicBool>, pushes: Pushes) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let until = Instant::now() + Duration::from_secs(60);
        for i in 0.. {
            if stop.load(Ordering::Relaxed) || Instant::now() > until {
                break;
            }
            let (payload, sent) = (format!("m{i}"), Instant::now());
            let body = serde_json::json!({"payload": payload, "priority": "H", "queue": [{"id": "traffic"}]});
            let status = client
                .post(&url)
                .json(&body)
                .send()
                .map_or(0, |r| r.status().as_u16());
            pushes.lock().unwrap().push((payload, status, sent));
            if status != 200 {
                sleep(Duration::from_millis(20));
            }
        }
    })
}

fn failover_under_traffic(kill_redis: bool) {
    let (mut r, r1) = (RedisServer::start(), RedisServer::start());
    // The chain goes on below the standby's Redis (R ← R1 ← R2): with R gone, R1's writes
    // still reach a replica, as sync_replicas = 1 asks.
    let r2 = RedisServer::start();
    r2.cli(&["REPLICAOF", "127.0.0.1", &r1.port.to_string()]);
    let (a_listen, b_listen) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    let synced = ("RELAYBOX__REPLICATION__SYNC_REPLICAS", "1");
    let primary = TestNode::on_redis(
        &[&r],
        &[
            ("RELAYBOX__NODE__LISTEN", &a_listen),
            ("RELAYBOX__NODE__PORT", "8081"),
            synced,
        ],
    );
    let upstream = r.url();
    let standby = TestNode::on_redis(
        &[&r1],
        &[
            ("RELAYBOX__NODE__LISTEN", &b_listen),
            ("RELAYBOX__NODE__PORT", "8082"),
            ("RELAYBOX__REPLICATION__ROLE", "standby"),
            ("RELAYBOX__REPLICATION__UPSTREAM_SERVERS", &upstream),
            synced,
        ],
    );
    let nginx = Nginx::start(&[
        ("a", settings(&a_listen, "8081", &r.url(), None)),
        ("b", settings(&b_listen, "8082", &r1.url(), Some(&r.url()))),
    ]);
    // The replica applies the primary's stream before the traffic starts.
    let started = Instant::now();
    while !r1
        .cli(&["INFO", "replication"])
        .contains("master_link_status:up")
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "replica not up"
        );
        sleep(Duration::from_millis(20));
    }
    sleep(Duration::from_millis(1500));

    relay_through(&nginx, "8081");
    let (stop, pushes): (_, Pushes) = (Arc::new(AtomicBool::new(false)), Arc::default());
    let pusher = push_forever(nginx.url("/trans"), Arc::clone(&stop), Arc::clone(&pushes));
    sleep(Duration::from_secs(1));
    let (status, ready) = standby.get("/ready");
    assert_eq!(
        status, 503,
        "still a standby while the primary serves: {ready}"
    );
    let killed = Instant::now();
    drop(primary); // SIGKILL
    if kill_redis {
        r.kill();
    }
    // Traffic goes on through the standby: the first push sent after the kill that is
    // answered 200, and when it was answered.
    let started = Instant::now();
    let first_after = loop {
        let pushes = pushes.lock().unwrap();
        let mut sent_after = pushes.iter().skip_while(|(_, _, sent)| *sent <= killed);
        if let Some((_, _, sent)) = sent_after.find(|(_, status, _)| *status == 200) {
            // Answered by the time the next push was sent (or now, if it is the last).
            let next = pushes.iter().find(|(_, _, at)| at > sent);
            break next.map_or_else(Instant::now, |(_, _, at)| *at);
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "no push got through after the kill: {:?}\n{}",
            &pushes[pushes.len().saturating_sub(5)..],
            standby.log().join("\n")
        );
        drop(pushes);
        sleep(Duration::from_millis(10));
    };
    eprintln!(
        "{}: first push answered 200 through nginx {} ms after the kill",
        if kill_redis {
            "node and Redis killed"
        } else {
            "node killed"
        },
        (first_after - killed).as_millis()
    );
    sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    pusher.join().unwrap();
    assert_eq!(standby.get("/ready").0, 200, "the standby serves");

    // Every push answered 200, before and after, is delivered exactly once.
    let pushes = pushes.lock().unwrap();
    let answered: Vec<&str> = (pushes.iter())
        .filter(|(_, status, _)| *status == 200)
        .map(|(payload, _, _)| payload.as_str())
        .collect();
    assert!(answered.len() > 10, "traffic before and after");
    let client = reqwest::blocking::Client::new();
    let mut delivered: HashMap<String, usize> = HashMap::new();
    loop {
        let reply: serde_json::Value = client
            .post(nginx.url("/queue/traffic/pop?max=500&timeout=1"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        let data = reply["data"].as_array().cloned().unwrap_or_default();
        if data.is_empty() {
            break;
        }
        for payload in data {
            let payload = payload.as_str().unwrap_or("<null>").to_owned();
            *delivered.entry(payload).or_default() += 1;
        }
    }
    for payload in &answered {
        assert_eq!(
            delivered.get(*payload),
            Some(&1),
            "{payload}: answered 200, delivered {:?} times",
            delivered.get(*payload)
        );
    }
    relay_through(&nginx, "8082");
    let others = delivered
        .keys()
        .filter(|p| !answered.contains(&p.as_str()))
        .count();
    eprintln!(
        "{} pushes answered 200, all delivered once; {} not answered 200, {others} of those delivered",
        answered.len(),
        pushes.len() - answered.len()
    );
}

/// The device relay through nginx, before the failover and after: a desktop attaches
/// (`/connect` gives it the serving instance's port, then it polls there), and an app's request
/// reaches it and comes back answered. After the failover the same desktop attaches again, to
/// the standby.
fn relay_through(nginx: &Nginx, serving: &str) {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let customer = "26018363";
    let connect = (client.post(nginx.url("/connect")))
        .header("X-IWP-ProductUnivId", customer)
        .send()
        .unwrap();
    assert_eq!(connect.status(), 200);
    let port = connect.headers()["x-iwp-port"].to_str().unwrap().to_owned();
    assert_eq!(port, serving, "the desktop is sent to the serving instance");
    let (agent, reply) = (
        nginx.url(&format!("/agent/{port}")),
        nginx.url(&format!("/agentreply/{port}")),
    );
    let desktop = {
        let client = client.clone();
        std::thread::spawn(move || {
            for _ in 0..10 {
                let poll = (client.post(&agent))
                    .header("X-IWP-ProductUnivId", customer)
                    .send()
                    .unwrap();
                let Some(id) = poll.headers().get("x-iwp-requestid").cloned() else {
                    continue;
                };
                assert_eq!(poll.bytes().unwrap().as_ref(), b"ping");
                let answered = (client.post(&reply))
                    .header("X-IWP-ProductUnivId", customer)
                    .header("X-IWP-RequestId", id)
                    .header("X-iwp-responsecode", "200")
                    .body("pong")
                    .send()
                    .unwrap();
                assert_eq!(answered.status(), 200);
                return;
            }
            panic!("no app request reached the desktop");
        })
    };
    let app = nginx.url(&format!("/client/{port}"));
    let answer = (0..100)
        .map(|_| {
            let answer = (client.post(&app))
                .header("X-IWP-ProductUnivId", customer)
                .body("ping")
                .send()
                .unwrap();
            let no_agent = answer
                .headers()
                .get("x-iwp-responsetype")
                .is_some_and(|t| t == "0");
            if no_agent {
                sleep(Duration::from_millis(100));
            }
            (no_agent, answer)
        })
        .find(|(no_agent, _)| !no_agent)
        .map(|(_, answer)| answer)
        .expect("the desktop attached");
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.text().unwrap(), "pong");
    desktop.join().unwrap();
}

#[test]
fn the_primary_node_killed_under_traffic() {
    if common::skip_redis() {
        return;
    }
    failover_under_traffic(false);
}

#[test]
fn the_primary_node_and_its_redis_killed_under_traffic() {
    if common::skip_redis() {
        return;
    }
    failover_under_traffic(true);
}
