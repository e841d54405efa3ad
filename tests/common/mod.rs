//! A real node for tests: the `relaybox` binary started on a free loopback port with the
//! repository's own `cluster.toml` (so the shipped file is exercised too), plus small HTTP
//! helpers. The node is killed when the handle is dropped.
#![allow(dead_code)]

pub mod browser;
pub mod cluster;
pub mod link;
pub mod receiver;
pub mod relay;
pub mod scrape;
pub mod smtp;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use reqwest::blocking::{Client, Response};
use serde_json::{Value, json};

/// Which store a test node runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Memory,
    /// One Redis server.
    Redis,
    /// Three Redis servers, queues and transactions spread over them: most transactions then
    /// live apart from some of their queues.
    RedisSet,
    /// A Redis Cluster of three masters, each with a replica.
    RedisCluster,
    /// One Redis server in PopBox's layout: `store.redis_transactions` names it, so that each
    /// transaction is kept in PopBox's keys (`PB:T|<id>:meta`, `:state`, `:history`).
    RedisPopBox,
}

/// Runs each named test (a `fn(Backend)`) once per backend, as `memory::name` and `redis::name`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $( #[test] fn $name() { super::$name($crate::common::Backend::Memory) } )*
        }
        mod redis {
            $( #[test] fn $name() {
                if $crate::common::skip_redis() { return; }
                super::$name($crate::common::Backend::Redis)
            } )*
        }
    };
}

/// As [`both_backends`], and on a set of three Redis servers (`redis_set::name`), a Redis
/// Cluster (`redis_cluster::name`) and a server in PopBox's layout (`redis_popbox::name`) too:
/// for the inbox's behaviour, which must not change when transactions live apart from their
/// queues, on a cluster, or in PopBox's keys.
#[macro_export]
macro_rules! every_store {
    ($($name:ident),* $(,)?) => {
        $crate::both_backends!($($name),*);
        mod redis_set {
            $( #[test] fn $name() {
                if $crate::common::skip_redis() { return; }
                super::$name($crate::common::Backend::RedisSet)
            } )*
        }
        mod redis_cluster {
            $( #[test] fn $name() {
                if $crate::common::skip_redis() { return; }
                super::$name($crate::common::Backend::RedisCluster)
            } )*
        }
        mod redis_popbox {
            $( #[test] fn $name() {
                if $crate::common::skip_redis() { return; }
                super::$name($crate::common::Backend::RedisPopBox)
            } )*
        }
    };
}

/// A store of `backend` that outlives the nodes started over it (the embedded store keeps
/// what a node had in the data directory its `env` names).
pub struct Store {
    backend: Backend,
    servers: Vec<RedisServer>,
    cluster: Option<cluster::RedisCluster>,
}

impl Store {
    pub fn start(backend: Backend) -> Self {
        let count = match backend {
            Backend::Memory | Backend::RedisCluster => 0,
            Backend::Redis | Backend::RedisPopBox => 1,
            Backend::RedisSet => 3,
        };
        Store {
            backend,
            servers: (0..count).map(|_| RedisServer::start()).collect(),
            cluster: (backend == Backend::RedisCluster).then(|| cluster::RedisCluster::start(3, 1)),
        }
    }

    /// A node over the store.
    pub fn node(&self, env: &[(&str, &str)]) -> TestNode {
        match (&self.cluster, self.backend) {
            (Some(cluster), _) => TestNode::on_cluster(cluster, env),
            (None, Backend::Memory) => TestNode::start_with(Backend::Memory, env),
            (None, backend) => {
                let env = popbox_layout(backend, &self.servers, env);
                let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
                TestNode::on_redis(&self.servers.iter().collect::<Vec<_>>(), &env)
            }
        }
    }
}

/// `env`, and for `Backend::RedisPopBox` the setting that keeps transactions in PopBox's layout
/// on the first of `servers`.
fn popbox_layout<'a>(
    backend: Backend,
    servers: &[RedisServer],
    env: &[(&'a str, &str)],
) -> Vec<(&'a str, String)> {
    let mut all: Vec<(&str, String)> = env.iter().map(|(k, v)| (*k, v.to_string())).collect();
    if backend == Backend::RedisPopBox {
        all.push(("RELAYBOX__STORE__REDIS_TRANSACTIONS", servers[0].url()));
    }
    all
}

/// Redis tests run unless the runner says `RELAYBOX_SKIP_REDIS=1`; a missing `redis-server` is
/// a failure, not a skip.
pub fn skip_redis() -> bool {
    let skip = std::env::var("RELAYBOX_SKIP_REDIS").is_ok_and(|v| v == "1");
    if skip {
        eprintln!("RELAYBOX_SKIP_REDIS=1: Redis variant skipped");
    }
    skip
}

/// A private `redis-server` on a free loopback port, in its own directory.
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
    kind: Kind,
}

/// How a test's `redis-server` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Plain,
    /// Append-only file with an fsync per write, so that a killed server restarts with every
    /// write it acknowledged.
    Durable,
    /// With cluster support (on its own: no slots assigned), e.g. to ask `CLUSTER KEYSLOT`.
    ClusterNode,
}

impl RedisServer {
    /// A server that persists nothing.
    pub fn start() -> Self {
        Self::start_with(Kind::Plain)
    }

    /// A server that survives `kill` and `restart` with everything it acknowledged.
    pub fn start_durable() -> Self {
        Self::start_with(Kind::Durable)
    }

    /// A server with cluster support, serving no slots.
    pub fn start_cluster_node() -> Self {
        Self::start_with(Kind::ClusterNode)
    }

    fn start_with(kind: Kind) -> Self {
        let mut server = RedisServer {
            child: None,
            port: 0,
            dir: tempfile::tempdir().unwrap(),
            kind,
        };
        for _ in 0..5 {
            // Another process may take the port between our probe and redis binding it.
            server.port = free_port();
            if server.launch() {
                return server;
            }
        }
        panic!("could not start redis-server");
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Starts the process on this server's port; false when it did not come up.
    fn launch(&mut self) -> bool {
        self.child = Some(self.spawn());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if self.ping() {
                return true;
            }
            if let Some(Ok(Some(_))) = self.child.as_mut().map(Child::try_wait) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    /// The process on this server's port, not waited for.
    fn spawn(&self) -> Child {
        Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", ""])
            // A replica's first sync at once, not after Redis's default 5 s.
            .args(["--repl-diskless-sync-delay", "0"])
            .args(if self.kind == Kind::Durable { ["--appendonly", "yes", "--appendfsync", "always"] } else { ["--appendonly", "no", "--appendfsync", "no"] })
            .args(if self.kind == Kind::ClusterNode { &["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"][..] } else { &[] })
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("redis-server is needed for the Redis tests ({e}); run tools/test, which installs it, or set RELAYBOX_SKIP_REDIS=1")
            })
    }

    fn ping(&self) -> bool {
        self.answer(b"PING\r\n").as_deref() == Some("+PONG\r\n")
    }

    /// The first line the server answers to `command`, if it answers.
    fn answer(&self, command: &[u8]) -> Option<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
        stream.write_all(command).ok()?;
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).ok()?;
        Some(line)
    }

    /// Whether the process runs (it was not killed).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Kills the server (like a crash: nothing is saved).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port: empty, or (durable) with what it had.
    pub fn restart(&mut self) {
        self.kill();
        assert!(
            self.launch(),
            "redis-server came back on port {}",
            self.port
        );
    }

    /// Starts it again on the same port with what it saved last (`SAVE`), and returns while it
    /// is still loading that: it takes connections, and answers `LOADING` to every command.
    pub fn restart_loading(&mut self) {
        self.kill();
        self.child = Some(self.spawn());
        let deadline = Instant::now() + Duration::from_secs(5);
        while self
            .answer(b"PING\r\n")
            .is_none_or(|a| !a.starts_with("-LOADING"))
        {
            assert!(
                Instant::now() < deadline,
                "redis-server never answered LOADING"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Sends the server's process `signal` (e.g. `STOP` to freeze it, `CONT` to resume it).
    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("the server runs").id();
        let sent = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .unwrap();
        assert!(sent.success(), "kill -{signal} {pid}");
    }

    /// Runs a redis-cli command against this server and returns its output.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .arg("-p")
            .arg(self.port.to_string())
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The socket address right after `marker` in a log line (text and JSON lines alike).
fn addr_after(line: &str, marker: &str) -> Option<SocketAddr> {
    let rest = line.split(marker).nth(1)?;
    let addr: String = rest
        .chars()
        .take_while(|c| c.is_ascii_hexdigit() || ".:[]".contains(*c))
        .collect();
    addr.parse().ok()
}

/// A free loopback address, for a node that must know its own public address before it starts
/// (set it as both `node.listen` and `node.server`).
pub fn public_address() -> String {
    format!("127.0.0.1:{}", free_port())
}

/// The cluster secret of every test that has nodes call each other.
pub const CLUSTER_SECRET: &str = "a-test-cluster-secret";

/// Settings of a node that other nodes call at `address` (from [`public_address`]): listening
/// and known there, with the cluster secret and short node-to-node calls.
pub fn reachable_at(address: &str) -> Vec<(&'static str, &str)> {
    vec![
        ("RELAYBOX__NODE__LISTEN", address),
        ("RELAYBOX__NODE__SERVER", address),
        ("RELAYBOX__CLUSTER__SECRET", CLUSTER_SECRET),
        ("RELAYBOX__CLUSTER__CALL_TIMEOUT", "2"),
    ]
}

/// A loopback port free now, for a server a test starts a moment later. Taken below the
/// kernel's range for outgoing connections (32768 and up): a port the kernel hands out (`:0`)
/// is one that any test's next outgoing connection may take before the server binds it. Each
/// process walks its own stretch of the range, from its id, so parallel test binaries rarely
/// meet; each port is checked free before it is given.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 10_000;
    const COUNT: u32 = 22_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(2_654_435_761) % COUNT,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    loop {
        let port = FIRST + NEXT.fetch_add(1, Ordering::Relaxed) % COUNT;
        let port = u16::try_from(port).expect("under 32768");
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

pub struct TestNode {
    child: Child,
    pub addr: SocketAddr,
    client: Client,
    log: Arc<Mutex<Vec<String>>>,
    /// Redis servers this node owns (stopped with it).
    _redis: Vec<RedisServer>,
    _cluster: Option<cluster::RedisCluster>,
    /// The HTTPS listener, its certificate and a client that trusts it.
    tls: Option<Tls>,
    /// The node's own `node.data_dir`, unless the test gave one.
    _data: Option<tempfile::TempDir>,
}

pub struct Tls {
    pub addr: SocketAddr,
    pub cert_pem: Vec<u8>,
    _dir: tempfile::TempDir,
}

impl TestNode {
    pub fn start(backend: Backend) -> Self {
        Self::start_with(backend, &[])
    }

    /// Starts a node with extra settings as `RELAYBOX__…` environment variables. A Redis node
    /// gets a private redis-server of its own.
    pub fn start_with(backend: Backend, env: &[(&str, &str)]) -> Self {
        match backend {
            Backend::Memory => Self::launch(env),
            Backend::RedisCluster => {
                let cluster = cluster::RedisCluster::start(3, 1);
                let mut node = Self::on_cluster(&cluster, env);
                node._cluster = Some(cluster);
                node
            }
            Backend::Redis | Backend::RedisSet | Backend::RedisPopBox => {
                let count = if backend == Backend::RedisSet { 3 } else { 1 };
                let servers: Vec<RedisServer> = (0..count).map(|_| RedisServer::start()).collect();
                let env = popbox_layout(backend, &servers, env);
                let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
                let mut node = Self::on_redis(&servers.iter().collect::<Vec<_>>(), &env);
                node._redis = servers;
                node
            }
        }
    }

    /// Starts a node with an HTTPS listener too, on a certificate made by `tools/dev-cert`.
    pub fn start_secure(backend: Backend, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tools/dev-cert");
        let made = Command::new(script).arg(dir.path()).output().unwrap();
        assert!(made.status.success(), "tools/dev-cert: {made:?}");
        let (cert, key) = (dir.path().join("server.crt"), dir.path().join("server.key"));
        let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
        let mut all = vec![("RELAYBOX__TLS__CERT", cert), ("RELAYBOX__TLS__KEY", key)];
        all.extend_from_slice(env);
        let mut node = Self::start_with(backend, &all);
        let tls_addr = node.wait_for_log("listening on https://");
        node.tls = Some(Tls {
            addr: tls_addr,
            cert_pem: std::fs::read(dir.path().join("server.crt")).unwrap(),
            _dir: dir,
        });
        node
    }

    /// The address in the first log line that says `marker<addr>`.
    fn wait_for_log(&self, marker: &str) -> SocketAddr {
        let start = Instant::now();
        loop {
            if let Some(addr) = self.log().iter().find_map(|line| addr_after(line, marker)) {
                return addr;
            }
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "no {marker:?} in the log"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The (first) private redis-server of a node started on `Backend::Redis` or `RedisSet`.
    pub fn own_redis(&self) -> &RedisServer {
        (self._redis.first()).expect("a node started on Backend::Redis or RedisSet")
    }

    /// The HTTPS listener's URL for `path` (the certificate is for `localhost`).
    pub fn https_url(&self, path: &str) -> String {
        let tls = self.tls.as_ref().expect("started with start_secure");
        format!("https://localhost:{}{path}", tls.addr.port())
    }

    /// A TLS client that trusts the node's development certificate.
    pub fn https_client(&self) -> Client {
        let tls = self.tls.as_ref().expect("started with start_secure");
        Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&tls.cert_pem).unwrap())
            .resolve("localhost", tls.addr)
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap()
    }

    /// Starts a node whose queue shards are `servers` (the first also holds transactions).
    pub fn on_redis(servers: &[&RedisServer], env: &[(&str, &str)]) -> Self {
        let urls: Vec<String> = servers.iter().map(|s| s.url()).collect();
        Self::on_redis_urls(&urls, env)
    }

    /// Starts a node whose queue shards are at `urls` (the first also holds transactions).
    /// Starts a node on the Redis Cluster `cluster`.
    pub fn on_cluster(cluster: &cluster::RedisCluster, env: &[(&str, &str)]) -> Self {
        let urls = cluster.urls().join(",");
        let mut all = vec![
            ("RELAYBOX__STORE__BACKEND", "redis-cluster"),
            ("RELAYBOX__STORE__REDIS_CLUSTER", urls.as_str()),
        ];
        all.extend_from_slice(env);
        Self::launch(&all)
    }

    pub fn on_redis_urls(urls: &[String], env: &[(&str, &str)]) -> Self {
        let urls = urls.join(",");
        let mut all = vec![
            ("RELAYBOX__STORE__BACKEND", "redis"),
            ("RELAYBOX__STORE__REDIS_SERVERS", urls.as_str()),
        ];
        all.extend_from_slice(env);
        Self::launch(&all)
    }

    /// Starts a node on the embedded store whose process may open at most `open_files`
    /// descriptors (its `RLIMIT_NOFILE`, set by the shell that starts it).
    pub fn start_limited(open_files: u32, env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!("ulimit -n {open_files} && exec \"$0\" \"$@\""))
            .arg(env!("CARGO_BIN_EXE_relaybox"));
        Self::launch_command(cmd, env)
    }

    fn launch(env: &[(&str, &str)]) -> Self {
        Self::launch_command(Command::new(env!("CARGO_BIN_EXE_relaybox")), env)
    }

    /// Runs `cmd` (the node's binary, or what starts it) with the shipped configuration and
    /// `env`, and waits for it to say where it listens.
    fn launch_command(mut cmd: Command, env: &[(&str, &str)]) -> Self {
        cmd.arg("--config")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/cluster.toml"))
            .env("RELAYBOX__NODE__LISTEN", "127.0.0.1:0")
            .env("RELAYBOX__LOG__FORMAT", "text")
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        // Nodes never share the embedded store's files by accident.
        let data = if env.iter().any(|(k, _)| *k == "RELAYBOX__NODE__DATA_DIR") {
            None
        } else {
            let dir = tempfile::tempdir().unwrap();
            cmd.env("RELAYBOX__NODE__DATA_DIR", dir.path());
            Some(dir)
        };
        let mut child = cmd.spawn().expect("the relaybox binary starts");
        let stdout = child.stdout.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let lines = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = addr_after(&line, "listening on http://") {
                    let _ = tx.send(addr);
                }
                lines.lock().unwrap().push(line);
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(15)) {
            Ok(addr) => addr,
            other => {
                let _ = child.kill();
                panic!(
                    "node did not report its address: {other:?}; log: {:?}",
                    log.lock().unwrap()
                );
            }
        };
        let client = Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        TestNode {
            child,
            addr,
            client,
            log,
            _redis: Vec::new(),
            _cluster: None,
            tls: None,
            _data: data,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Log lines printed so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Whether a line containing `what` is printed within `limit`: the node's output reaches
    /// the test through a pipe and a reader thread, a little after the node wrote it.
    pub fn logs_within(&self, what: &str, limit: Duration) -> bool {
        let started = Instant::now();
        loop {
            if self.log().iter().any(|l| l.contains(what)) {
                return true;
            }
            if started.elapsed() > limit {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        read(self.client.get(self.url(path)).send().unwrap())
    }

    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        read(self.client.post(self.url(path)).json(body).send().unwrap())
    }

    pub fn put(&self, path: &str, body: &Value) -> (u16, Value) {
        read(self.client.put(self.url(path)).json(body).send().unwrap())
    }

    pub fn delete(&self, path: &str) -> (u16, Value) {
        read(self.client.delete(self.url(path)).send().unwrap())
    }

    /// Provisions `payload` into `queues` and returns the transaction id.
    pub fn push(&self, queues: &[&str], payload: &str, priority: &str) -> String {
        self.push_body(json!({
            "payload": payload,
            "priority": priority,
            "queue": queues.iter().map(|q| json!({"id": q})).collect::<Vec<_>>(),
        }))
    }

    pub fn push_body(&self, body: Value) -> String {
        let (status, reply) = self.post("/trans", &body);
        assert_eq!(status, 200, "push failed: {reply}");
        reply["data"]
            .as_str()
            .expect("push answers an id")
            .to_owned()
    }

    /// Pops with the given query string (e.g. `"max=5&timeout=1"`), expecting 200.
    /// `POST /trans<query>` with `Idempotency-Key: key` and `body`: the status and the answer.
    pub fn push_once(&self, key: &str, body: &Value, query: &str) -> (u16, Value) {
        let r = (self.client().post(self.url(&format!("/trans{query}"))))
            .header("Idempotency-Key", key)
            .json(body)
            .send()
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().unwrap())
    }

    pub fn pop(&self, queue: &str, query: &str) -> Popped {
        let (status, reply) = self.post(&format!("/queue/{queue}/pop?{query}"), &json!({}));
        assert_eq!(status, 200, "pop failed: {reply}");
        Popped::from(&reply)
    }

    pub fn peek(&self, queue: &str, query: &str) -> Popped {
        let (status, reply) = self.get(&format!("/queue/{queue}/peek?{query}"));
        assert_eq!(status, 200, "peek failed: {reply}");
        Popped::from(&reply)
    }

    /// One transaction's state in one queue ("" when absent).
    pub fn state(&self, tx: &str, queue: &str) -> String {
        let (_, reply) = self.get(&format!("/trans/{tx}/state"));
        reply["data"][queue].as_str().unwrap_or("").to_owned()
    }

    /// Whether `queue` reads `blocked` (someone waits on it).
    pub fn blocked(&self, queue: &str) -> bool {
        self.get(&format!("/queue/{queue}")).1["blocked"] == json!(true)
    }

    /// Opens a connection whose pop waits on `queue` (up to 30 s) until the stream is dropped.
    pub fn hold_pop(&self, queue: &str) -> TcpStream {
        let mut stream = TcpStream::connect(self.addr).unwrap();
        let request = format!(
            "POST /queue/{queue}/pop?timeout=30 HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).unwrap();
        stream
    }

    /// Sends raw bytes on a new connection and reads the whole answer (status, headers, body).
    pub fn raw(&self, request: &[u8]) -> RawResponse {
        let mut stream = TcpStream::connect(self.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        stream.write_all(request).unwrap();
        let mut bytes = Vec::new();
        let _ = stream.read_to_end(&mut bytes);
        RawResponse::parse(&bytes)
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit and returns whether it exited cleanly.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<bool> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status.success());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read(response: Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().unwrap();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

/// What pop and peek answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Popped {
    pub data: Vec<Value>,
    pub transactions: Vec<String>,
}

impl From<&Value> for Popped {
    fn from(v: &Value) -> Self {
        assert_eq!(v["ok"], json!(true), "not an ok answer: {v}");
        let data = v["data"].as_array().expect("data is an array").clone();
        let transactions: Vec<String> = v["transactions"]
            .as_array()
            .expect("transactions is an array")
            .iter()
            .map(|t| t.as_str().unwrap().to_owned())
            .collect();
        assert_eq!(data.len(), transactions.len(), "one id per payload: {v}");
        Popped { data, transactions }
    }
}

impl Popped {
    pub fn payloads(&self) -> Vec<&str> {
        self.data
            .iter()
            .map(|d| d.as_str().unwrap_or("<null>"))
            .collect()
    }
}

#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    /// Header names lower-cased, for lookups.
    pub headers: Vec<(String, String)>,
    /// The status line and headers as they came, for checks of their spelling.
    pub head: String,
    pub body: String,
}

impl RawResponse {
    fn parse(bytes: &[u8]) -> Self {
        let text = String::from_utf8_lossy(bytes);
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        RawResponse {
            status,
            headers,
            head: head.to_owned(),
            body: body.to_owned(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

/// A raw `POST /trans` of `payload` into `queues`, high priority, for a socket of a test's own.
pub fn push_request(queues: &[&str], payload: &str) -> String {
    let queues: Vec<Value> = queues.iter().map(|q| json!({ "id": q })).collect();
    let body = json!({ "payload": payload, "priority": "H", "queue": queues }).to_string();
    format!(
        "POST /trans HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Reads one HTTP/1.1 answer with a `Content-Length` off `reader`: its status and JSON body.
pub fn read_answer(reader: &mut BufReader<TcpStream>) -> (u16, Value) {
    let mut status = 0;
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some(code) = line.strip_prefix("HTTP/1.1 ") {
            status = code[..3].parse().unwrap();
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    (status, serde_json::from_slice(&body).unwrap())
}

/// Now, in Unix seconds.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Every pushed message was received exactly once, and nothing else was.
pub fn assert_delivered_exactly_once(
    pushed: &std::collections::HashSet<String>,
    received: &[String],
) {
    let unique: std::collections::HashSet<&String> = received.iter().collect();
    assert_eq!(
        unique.len(),
        received.len(),
        "{} messages delivered twice",
        received.len() - unique.len()
    );
    let missing = pushed.iter().filter(|id| !unique.contains(id)).count();
    assert_eq!(
        missing,
        0,
        "{missing} of {} messages never delivered",
        pushed.len()
    );
    assert!(
        received.iter().all(|id| pushed.contains(id)),
        "a message nobody pushed was delivered"
    );
}
