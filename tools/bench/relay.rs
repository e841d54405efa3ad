//! Device-relay figures: simulated desktops hold long polls and answer every request; simulated
//! apps send requests for them. Each desktop and app has one keep-alive connection.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use crate::http::Conn;
use crate::{finish, pacer, percentile, run_id};

/// A connection that only counts the bodies it receives.
async fn connect(host: &str) -> Conn {
    crate::connect(host).await.discarding()
}

const CUSTOMER: &str = "X-IWP-ProductUnivId";

/// Simulated desktops: each polls, and answers every request it gets with `reply`.
struct Desktops {
    customers: Arc<Vec<String>>,
    tasks: Vec<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
}

impl Desktops {
    async fn start(host: &str, count: usize, reply_size: usize) -> Self {
        let run = run_id();
        let customers: Arc<Vec<String>> =
            Arc::new((0..count).map(|i| format!("{run}-desk-{i}")).collect());
        let reply = Arc::new(vec![b'r'; reply_size]);
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = customers
            .iter()
            .map(|customer| {
                let (host, customer) = (host.to_owned(), customer.clone());
                let (reply, stop) = (Arc::clone(&reply), Arc::clone(&stop));
                tokio::spawn(async move { desktop(&host, &customer, &reply, &stop).await })
            })
            .collect();
        // Every desktop polls before the first app asks, so that apps find them present.
        tokio::time::sleep(Duration::from_millis(500)).await;
        Desktops {
            customers,
            tasks,
            stop,
        }
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            // An idle desktop sits in a poll until `timeout_agent`: no need to wait for it.
            task.abort();
        }
    }
}

async fn desktop(host: &str, customer: &str, reply: &[u8], stop: &AtomicBool) {
    let mut conn = connect(host).await;
    let _ = conn
        .request("POST", "/connect", &[(CUSTOMER, customer)], b"")
        .await;
    while !stop.load(Ordering::Relaxed) {
        let request = match conn
            .request("POST", "/agent/bench", &[(CUSTOMER, customer)], b"")
            .await
        {
            Ok(request) => request,
            Err(_) => {
                conn = connect(host).await;
                continue;
            }
        };
        let Some(id) = request.header("x-iwp-requestid") else {
            continue; // no client this time
        };
        let headers = [
            (CUSTOMER, customer),
            ("X-IWP-RequestId", id),
            ("X-iwp-responsecode", "200"),
        ];
        if conn
            .request("POST", "/agentreply/bench", &headers, reply)
            .await
            .is_err()
        {
            conn = connect(host).await;
        }
    }
}

/// What the apps saw.
#[derive(Default)]
struct Tally {
    relayed: AtomicU64,
    failed: AtomicU64,
    /// Payload bytes, both ways.
    bytes: AtomicU64,
}

/// One app request for `customer`; its round trip when the desktop's reply came back whole.
async fn ask(conn: &mut Conn, customer: &str, body: &[u8], tally: &Tally) -> Option<Duration> {
    let sent = Instant::now();
    match conn
        .request("POST", "/client/bench", &[(CUSTOMER, customer)], body)
        .await
    {
        Ok(answer) if answer.status == 200 && answer.header("x-iwp-requestid").is_some() => {
            tally.relayed.fetch_add(1, Ordering::Relaxed);
            let bytes = (body.len() + answer.length) as u64;
            tally.bytes.fetch_add(bytes, Ordering::Relaxed);
            Some(sent.elapsed())
        }
        _ => {
            tally.failed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

/// `apps` apps relay requests of `size` bytes as fast as they can, each to the desktops in
/// turn, for `duration`; returns the tally and the seconds taken.
async fn relay_for(
    host: &str,
    desktops: &Desktops,
    apps: usize,
    size: usize,
    duration: Duration,
) -> (Arc<Tally>, f64) {
    let tally = Arc::new(Tally::default());
    let body = Arc::new(vec![b'a'; size]);
    let started = Instant::now();
    let tasks = (0..apps)
        .map(|i| {
            let (host, customers) = (host.to_owned(), Arc::clone(&desktops.customers));
            let (tally, body) = (Arc::clone(&tally), Arc::clone(&body));
            tokio::spawn(async move {
                let mut conn = connect(&host).await;
                let mut next = i;
                while started.elapsed() < duration {
                    let customer = &customers[next % customers.len()];
                    next += apps;
                    if ask(&mut conn, customer, &body, &tally).await.is_none() {
                        conn = connect(&host).await;
                    }
                }
            })
        })
        .collect();
    let elapsed = finish(tasks, started).await;
    (tally, elapsed)
}

/// Relays per second: `desktops` desktops, `apps` apps asking as fast as they can, `size` bytes
/// each way.
pub async fn throughput(host: &str, desktops: usize, apps: usize, size: usize, duration: Duration) {
    let desks = Desktops::start(host, desktops, size).await;
    let (tally, elapsed) = relay_for(host, &desks, apps, size, duration).await;
    desks.stop();
    figure!(
        "relay: {:.0} relays/s ({desktops} desktops, {apps} apps, {size} B each way, {elapsed:.0} s, {} failed)",
        tally.relayed.load(Ordering::Relaxed) as f64 / elapsed,
        tally.failed.load(Ordering::Relaxed)
    );
}

/// Payload throughput with large bodies: as many desktops as apps, `size` bytes each way.
pub async fn bulk(host: &str, apps: usize, size: usize, duration: Duration) {
    let desks = Desktops::start(host, apps, size).await;
    let (tally, elapsed) = relay_for(host, &desks, apps, size, duration).await;
    desks.stop();
    let bytes = tally.bytes.load(Ordering::Relaxed) as f64;
    figure!(
        "relay bulk: {:.2} GB/s of payload, both ways together ({apps} apps, {} KiB each way, {} relays in {elapsed:.0} s, {} failed)",
        bytes / elapsed / 1e9,
        size / 1024,
        tally.relayed.load(Ordering::Relaxed),
        tally.failed.load(Ordering::Relaxed)
    );
}

/// Round trips at a fixed rate of relays: `apps` apps share `rate` requests per second.
pub async fn latency(host: &str, desktops: usize, apps: usize, rate: u64, duration: Duration) {
    let size = 1024;
    let desks = Desktops::start(host, desktops, size).await;
    let tally = Arc::new(Tally::default());
    let body = Arc::new(vec![b'a'; size]);
    let samples = Arc::new(std::sync::Mutex::new(Vec::<Duration>::new()));
    let warmup = Duration::from_secs(1);
    let started = Instant::now();
    let tasks = (0..apps)
        .map(|i| {
            let (host, customers) = (host.to_owned(), Arc::clone(&desks.customers));
            let (tally, body, samples) =
                (Arc::clone(&tally), Arc::clone(&body), Arc::clone(&samples));
            tokio::spawn(async move {
                let mut conn = connect(&host).await;
                let mut ticker = pacer(i, apps, rate, started);
                let mut next = i;
                while started.elapsed() < duration + warmup {
                    ticker.tick().await;
                    let customer = &customers[next % customers.len()];
                    next += apps;
                    match ask(&mut conn, customer, &body, &tally).await {
                        Some(rtt) if started.elapsed() > warmup => {
                            samples.lock().unwrap().push(rtt)
                        }
                        Some(_) => {}
                        None => conn = connect(&host).await,
                    }
                }
            })
        })
        .collect();
    finish(tasks, started).await;
    desks.stop();
    let mut samples = samples.lock().unwrap().clone();
    samples.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    figure!(
        "relay latency: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({rate} relays/s, {desktops} desktops, {apps} apps, 1 KiB each way, {} samples, {} failed)",
        ms(percentile(&samples, 0.50)),
        ms(percentile(&samples, 0.99)),
        ms(samples.last().copied().unwrap_or_default()),
        samples.len(),
        tally.failed.load(Ordering::Relaxed)
    );
}
