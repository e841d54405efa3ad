//! `relaybox-bench`: load for a relaybox node (or PopBox: the inbox API is the same) at any base
//! URL, printing one line per figure. Every loop is bounded by a duration or a count.
//!
//! ```text
//! relaybox-bench --url http://127.0.0.1:3001 all --pid <node pid>
//! relaybox-bench push --connections 64 --duration 15 --payload 1024
//! relaybox-bench pop --connections 64 --duration 15
//! relaybox-bench latency --rate 1000 --duration 10
//! relaybox-bench hold --connections 19000 --pid <node pid> [--redis 127.0.0.1:6379]
//! relaybox-bench relay --desktops 200 --apps 64 --size 1024 --duration 15
//! relaybox-bench relay-latency --rate 1000 --duration 10
//! relaybox-bench relay-bulk --apps 4 --size 1048576 --duration 15
//! ```

/// Prints one figure on its own line (`println!`'s arguments). When the reader has gone, as in
/// `relaybox-bench … | head -1`, the run ends quietly, as any Unix tool's does, instead of with
/// a panic and its backtrace.
macro_rules! figure {
    ($($arg:tt)*) => {
        $crate::print_figure(format_args!($($arg)*))
    };
}

mod http;
mod machine;
mod relay;

use std::fmt;
use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use http::{Conn, JSON};
use machine::watched;

#[derive(Parser)]
#[command(name = "relaybox-bench", about = "Measures a relaybox node over HTTP")]
struct Cli {
    /// Base URL of the node
    #[arg(long, default_value = "http://127.0.0.1:3001", global = true)]
    url: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Push throughput: keep-alive connections each provisioning messages as fast as they can
    Push {
        #[arg(long, default_value_t = 64)]
        connections: usize,
        #[arg(long, default_value_t = 15)]
        duration: u64,
        #[arg(long, default_value_t = 1024)]
        payload: usize,
    },
    /// Pop throughput with messages ready: queues are filled first, then popped one message per request
    Pop {
        #[arg(long, default_value_t = 64)]
        connections: usize,
        #[arg(long, default_value_t = 15)]
        duration: u64,
        #[arg(long, default_value_t = 1024)]
        payload: usize,
        /// Messages ready per connection before the clock starts
        #[arg(long, default_value_t = 8000)]
        ready: usize,
    },
    /// Push → pop latency to pops that are already waiting, at a fixed push rate
    Latency {
        #[arg(long, default_value_t = 1000)]
        rate: u64,
        #[arg(long, default_value_t = 10)]
        duration: u64,
        #[arg(long, default_value_t = 64)]
        waiters: usize,
    },
    /// Idle long-polls held at once, and the node's memory per held connection
    Hold {
        #[arg(long, default_value_t = 19_000)]
        connections: usize,
        /// The node's process id, to read its memory
        #[arg(long)]
        pid: Option<u32>,
        /// host:port of the node's Redis, to count its connections with and without waiters
        #[arg(long)]
        redis: Option<String>,
        /// Seconds to hold them before reading the node's memory. On Redis the waiters' first
        /// takes go out in one burst, whose buffers the allocator takes some 10 s to return.
        #[arg(long, default_value_t = HOLD_SECS)]
        hold: u64,
    },
    /// Device relay: relays per second, desktops answering as fast as apps ask
    Relay {
        #[arg(long, default_value_t = 200)]
        desktops: usize,
        #[arg(long, default_value_t = 64)]
        apps: usize,
        /// Bytes each way
        #[arg(long, default_value_t = 1024)]
        size: usize,
        #[arg(long, default_value_t = 15)]
        duration: u64,
    },
    /// Device relay: app round trips (p50/p99) at a fixed rate of relays, 1 KiB each way
    RelayLatency {
        #[arg(long, default_value_t = 1000)]
        rate: u64,
        #[arg(long, default_value_t = 10)]
        duration: u64,
        #[arg(long, default_value_t = 200)]
        desktops: usize,
        /// Apps sharing the rate
        #[arg(long, default_value_t = 16)]
        apps: usize,
    },
    /// Device relay: payload throughput with large bodies (one desktop per app)
    RelayBulk {
        #[arg(long, default_value_t = 4)]
        apps: usize,
        /// Bytes each way
        #[arg(long, default_value_t = 1 << 20)]
        size: usize,
        #[arg(long, default_value_t = 15)]
        duration: u64,
    },
    /// Every figure, one after the other
    All {
        #[arg(long)]
        pid: Option<u32>,
        #[arg(long)]
        redis: Option<String>,
        #[arg(long, default_value_t = 15)]
        duration: u64,
    },
}

fn print_figure(line: fmt::Arguments) {
    let mut out = io::stdout().lock();
    if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
        std::process::exit(0);
    }
}

fn main() {
    let cli = Cli::parse();
    let host = cli
        .url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        // One clear line, not a panic per connection, when nothing listens there.
        if let Err(e) = Conn::open(&host).await {
            eprintln!("relaybox-bench: cannot connect to {}: {e}", cli.url);
            std::process::exit(1);
        }
        match cli.command {
            Command::Push {
                connections,
                duration,
                payload,
            } => watched(push(&host, connections, secs(duration), payload)).await,
            Command::Pop {
                connections,
                duration,
                payload,
                ready,
            } => watched(pop(&host, connections, secs(duration), payload, ready)).await,
            Command::Latency {
                rate,
                duration,
                waiters,
            } => watched(latency(&host, rate, secs(duration), waiters)).await,
            Command::Hold {
                connections,
                pid,
                redis,
                hold,
            } => {
                watched(hold_polls(
                    &host,
                    connections,
                    pid,
                    redis.as_deref(),
                    secs(hold),
                ))
                .await
            }
            Command::All {
                pid,
                redis,
                duration,
            } => {
                watched(push(&host, 64, secs(duration), 1024)).await;
                watched(pop(&host, 64, secs(duration), 1024, 8000)).await;
                watched(latency(&host, 1000, secs(duration.min(10)), 64)).await;
                watched(hold_polls(
                    &host,
                    19_000,
                    pid,
                    redis.as_deref(),
                    secs(HOLD_SECS),
                ))
                .await;
                watched(relay::throughput(&host, 200, 64, 1024, secs(duration))).await;
                watched(relay::latency(&host, 200, 16, 1000, secs(duration.min(10)))).await;
                watched(relay::bulk(&host, 4, 1 << 20, secs(duration))).await;
            }
            Command::Relay {
                desktops,
                apps,
                size,
                duration,
            } => {
                watched(relay::throughput(
                    &host,
                    desktops,
                    apps,
                    size,
                    secs(duration),
                ))
                .await
            }
            Command::RelayLatency {
                rate,
                duration,
                desktops,
                apps,
            } => watched(relay::latency(&host, desktops, apps, rate, secs(duration))).await,
            Command::RelayBulk {
                apps,
                size,
                duration,
            } => watched(relay::bulk(&host, apps, size, secs(duration))).await,
        }
    });
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// A unique prefix per run, so runs against the same store do not see each other's messages.
fn run_id() -> String {
    format!("bench{}", std::process::id())
}

fn provision_body(queues: &[String], payload: &str) -> Vec<u8> {
    let queue: Vec<Value> = queues.iter().map(|q| json!({ "id": q })).collect();
    json!({ "payload": payload, "priority": "H", "queue": queue })
        .to_string()
        .into_bytes()
}

async fn connect(host: &str) -> Conn {
    Conn::open(host)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {host}: {e}"))
}

async fn push(host: &str, connections: usize, duration: Duration, payload_size: usize) {
    let payload = "x".repeat(payload_size);
    let run = run_id();
    let ok = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..connections {
        let body = provision_body(&[format!("{run}-push-{i}")], &payload);
        let (host, ok, errors) = (host.to_owned(), Arc::clone(&ok), Arc::clone(&errors));
        tasks.push(tokio::spawn(async move {
            let mut conn = connect(&host).await;
            while started.elapsed() < duration {
                match conn.request("POST", "/trans", JSON, &body).await {
                    Ok(a) if a.status == 200 => ok.fetch_add(1, Ordering::Relaxed),
                    _ => errors.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    let elapsed = finish(tasks, started).await;
    figure!(
        "push: {:.0} req/s ({} connections, {payload_size} B payload, {:.0} s, {} errors, {} requests)",
        ok.load(Ordering::Relaxed) as f64 / elapsed,
        connections,
        elapsed,
        errors.load(Ordering::Relaxed),
        ok.load(Ordering::Relaxed)
    );
}

async fn pop(
    host: &str,
    connections: usize,
    duration: Duration,
    payload_size: usize,
    ready: usize,
) {
    let payload = "x".repeat(payload_size);
    let run = run_id();
    let queues: Vec<String> = (0..connections).map(|i| format!("{run}-pop-{i}")).collect();
    // One provision fills every queue with one message.
    let body = provision_body(&queues, &payload);
    let fillers: Vec<_> = (0..8)
        .map(|_| {
            let (host, body) = (host.to_owned(), body.clone());
            tokio::spawn(async move {
                let mut conn = connect(&host).await;
                for _ in 0..ready.div_ceil(8) {
                    let _ = conn.request("POST", "/trans", JSON, &body).await;
                }
            })
        })
        .collect();
    for f in fillers {
        let _ = f.await;
    }
    // A mark for whoever watches the node from outside (tools/scale reads Redis's CPU here).
    figure!(
        "pop: filled {} queues with {} messages each",
        connections,
        ready.div_ceil(8) * 8
    );

    let ok = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for queue in queues {
        let (host, ok) = (host.to_owned(), Arc::clone(&ok));
        tasks.push(tokio::spawn(async move {
            let mut conn = connect(&host).await;
            let path = format!("/queue/{queue}/pop?max=1&timeout=1");
            while started.elapsed() < duration {
                match conn.request("POST", &path, &[], b"").await {
                    Ok(a) if a.status == 200 => {
                        let got = serde_json::from_slice::<Value>(&a.body)
                            .ok()
                            .and_then(|v| v["transactions"].as_array().map(Vec::len))
                            .unwrap_or(0);
                        if got == 0 {
                            break; // drained
                        }
                        ok.fetch_add(got as u64, Ordering::Relaxed);
                    }
                    _ => break,
                }
            }
        }));
    }
    let elapsed = finish(tasks, started).await;
    figure!(
        "pop: {:.0} messages/s ({} connections, one message per request, {:.0} s, {} messages)",
        ok.load(Ordering::Relaxed) as f64 / elapsed,
        connections,
        elapsed,
        ok.load(Ordering::Relaxed)
    );
}

/// Pushers sharing the latency run's rate: a push that waits for its answer delays only its own
/// pusher's next one, so the rate holds while answers take up to this many intervals.
const PUSHERS: usize = 8;

async fn latency(host: &str, rate: u64, duration: Duration, waiters: usize) {
    let run = run_id();
    let epoch = Instant::now();
    // (sent, latency) in µs since `epoch`.
    let samples = Arc::new(std::sync::Mutex::new(Vec::<(u64, u64)>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut popper_tasks = Vec::new();
    for i in 0..waiters {
        let (host, samples, stop) = (host.to_owned(), Arc::clone(&samples), Arc::clone(&stop));
        let path = format!("/queue/{run}-lat-{i}/pop?timeout=5");
        popper_tasks.push(tokio::spawn(async move {
            let mut conn = connect(&host).await;
            while !stop.load(Ordering::Relaxed) {
                let answer = match conn.request("POST", &path, &[], b"").await {
                    Ok(answer) if answer.status == 200 => answer,
                    _ => break,
                };
                let received = epoch.elapsed().as_micros() as u64;
                let Ok(v) = serde_json::from_slice::<Value>(&answer.body) else {
                    continue;
                };
                for sent in v["data"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|p| p.as_str()?.parse::<u64>().ok())
                {
                    samples
                        .lock()
                        .unwrap()
                        .push((sent, received.saturating_sub(sent)));
                }
            }
        }));
    }
    // Let every waiter register before the first push.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let warmup = Duration::from_secs(1);
    let started = Instant::now();
    let measured_from = (started + warmup - epoch).as_micros() as u64;
    let sent = Arc::new(AtomicU64::new(0));
    let pushers: Vec<_> = (0..PUSHERS)
        .map(|i| {
            let (host, run, sent) = (host.to_owned(), run.clone(), Arc::clone(&sent));
            tokio::spawn(async move {
                let mut conn = connect(&host).await;
                let mut ticker = pacer(i, PUSHERS, rate, started);
                let mut n = i;
                while started.elapsed() < duration + warmup {
                    ticker.tick().await;
                    let queue = format!("{run}-lat-{}", n % waiters);
                    n += PUSHERS;
                    let stamp = epoch.elapsed().as_micros();
                    if stamp as u64 >= measured_from {
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                    let body = provision_body(&[queue], &stamp.to_string());
                    if conn.request("POST", "/trans", JSON, &body).await.is_err() {
                        conn = connect(&host).await;
                    }
                }
            })
        })
        .collect();
    finish(pushers, started).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    let mut samples: Vec<u64> = samples
        .lock()
        .unwrap()
        .iter()
        .filter(|(sent, _)| *sent >= measured_from)
        .map(|(_, latency)| *latency)
        .collect();
    samples.sort_unstable();
    let pct = |p| percentile(&samples, p);
    let sent = sent.load(Ordering::Relaxed);
    figure!(
        "push->pop latency: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} msg/s to {} waiting pops: {:.0} msg/s sent, {} of {} received)",
        pct(0.50) as f64 / 1000.0,
        pct(0.99) as f64 / 1000.0,
        samples.last().copied().unwrap_or(0) as f64 / 1000.0,
        rate,
        waiters,
        sent as f64 / duration.as_secs_f64(),
        samples.len(),
        sent
    );
    for t in popper_tasks {
        t.abort();
    }
}

/// The ticker of sender `i` of `senders` that share `rate` per second: each ticks at
/// `rate / senders` from `started`, their ticks spread evenly over one interval. A sender whose
/// answer is late goes on from then, one interval apart, instead of bursting to catch up.
fn pacer(i: usize, senders: usize, rate: u64, started: Instant) -> tokio::time::Interval {
    let interval = Duration::from_secs_f64(senders as f64 / rate.max(1) as f64);
    let offset = interval.mul_f64(i as f64 / senders as f64);
    let mut ticker =
        tokio::time::interval_at(tokio::time::Instant::from_std(started + offset), interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker
}

/// The `p` quantile (0–1) of `sorted`; the default when there are no samples.
fn percentile<T: Copy + Default>(sorted: &[T], p: f64) -> T {
    let at = ((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1));
    sorted.get(at).copied().unwrap_or_default()
}

/// Waits for every load task and returns the seconds since `started`.
async fn finish(tasks: Vec<tokio::task::JoinHandle<()>>, started: Instant) -> f64 {
    futures_util::future::join_all(tasks).await;
    started.elapsed().as_secs_f64()
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Number of clients connected to a Redis server (excluding the one asking).
async fn redis_clients(addr: &str) -> Option<usize> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    stream.write_all(b"CLIENT LIST\r\n").await.ok()?;
    let mut buf = vec![0; 1 << 20];
    let n = stream.read(&mut buf).await.ok()?;
    let text = String::from_utf8_lossy(&buf[..n]);
    Some(
        text.lines()
            .filter(|l| l.contains("addr=") && !l.contains("cmd=client"))
            .count(),
    )
}

/// How long `hold` holds its polls by default before it reads the node's memory.
const HOLD_SECS: u64 = 15;

async fn hold_polls(
    host: &str,
    connections: usize,
    pid: Option<u32>,
    redis: Option<&str>,
    hold: Duration,
) {
    let run = run_id();
    let rss_before = pid.and_then(rss_kib);
    let redis_before = match redis {
        Some(addr) => redis_clients(addr).await,
        None => None,
    };
    let mut held = Vec::with_capacity(connections);
    let mut failed = 0;
    for i in 0..connections {
        match Conn::open(host).await {
            Ok(mut conn) => {
                let path = format!("/queue/{run}-hold-{i}/pop?timeout=300");
                if conn.send("POST", &path, &[], b"").await.is_ok() {
                    held.push(conn);
                } else {
                    failed += 1;
                }
            }
            Err(_) => failed += 1,
        }
    }
    tokio::time::sleep(hold).await;
    let rss_after = pid.and_then(rss_kib);
    let redis_after = match redis {
        Some(addr) => redis_clients(addr).await,
        None => None,
    };
    let count = held.len();
    let memory = match (rss_before, rss_after) {
        (Some(before), Some(after)) => format!(
            "; node RSS {} → {} MiB, {:.1} KiB per held connection",
            before / 1024,
            after / 1024,
            after.saturating_sub(before) as f64 / count.max(1) as f64
        ),
        _ => String::new(),
    };
    figure!("held long-polls: {count} ({failed} failed to open){memory}");
    if let (Some(before), Some(after)) = (redis_before, redis_after) {
        figure!("redis connections: {before} with no waiters, {after} with {count} waiters");
    }
    drop(held);
}
