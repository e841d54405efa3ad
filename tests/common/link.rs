//! A TCP relay in front of a Redis server that fails the way links do at the worst moment:
//! it can cut connections between a command and its answer (the command reaches the server and
//! runs, but its answer is thrown away and the connection closed), and it can hold back
//! subscriptions for a while, as a slow link would.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

pub struct FaultyLink {
    pub port: u16,
    faults: Arc<Faults>,
}

#[derive(Default)]
struct Faults {
    cutting: AtomicBool,
    /// How long a command that (un)subscribes is held back, in ms.
    subscribe_delay_ms: AtomicU64,
}

impl FaultyLink {
    /// Relays 127.0.0.1:<its port> to the server on `target`, faultlessly to begin with.
    pub fn start(target: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let faults = Arc::new(Faults::default());
        let shared = Arc::clone(&faults);
        // Lives as long as the test process: one thread per direction of each connection.
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                relay(client, server, Arc::clone(&shared));
            }
        });
        FaultyLink { port, faults }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// While on, every answer is lost with its connection.
    pub fn cut_answers(&self, on: bool) {
        self.faults.cutting.store(on, Ordering::SeqCst);
    }

    /// Holds back each command that subscribes (or unsubscribes) for `delay`, and whatever
    /// follows it on its connection.
    pub fn delay_subscribes(&self, delay: Duration) {
        let ms = delay.as_millis() as u64;
        self.faults.subscribe_delay_ms.store(ms, Ordering::SeqCst);
    }
}

fn relay(client: TcpStream, server: TcpStream, faults: Arc<Faults>) {
    let outbound = Arc::clone(&faults);
    pump(
        client.try_clone().unwrap(),
        server.try_clone().unwrap(),
        move |command| {
            let delay = outbound.subscribe_delay_ms.load(Ordering::SeqCst);
            if delay > 0 && command.windows(9).any(|w| w == b"SUBSCRIBE") {
                std::thread::sleep(Duration::from_millis(delay));
            }
            true
        },
    );
    pump(server, client, move |_| {
        !faults.cutting.load(Ordering::SeqCst)
    });
}

/// Copies `from` to `to` on a thread of its own, each chunk once `pass` lets it through (it
/// may take its time); a chunk it refuses closes both.
fn pump(mut from: TcpStream, mut to: TcpStream, pass: impl Fn(&[u8]) -> bool + Send + 'static) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if !pass(&buf[..n]) || to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = from.shutdown(Shutdown::Both);
        let _ = to.shutdown(Shutdown::Both);
    });
}
