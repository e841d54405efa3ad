//! A TCP relay in front of a Redis server that can cut connections between a command and its
//! answer: the command reaches the server and runs, but its answer is thrown away and the
//! connection closed, as when a network or a node's link fails at the worst moment.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

pub struct AnswerCutter {
    pub port: u16,
    cutting: Arc<AtomicBool>,
}

impl AnswerCutter {
    /// Relays 127.0.0.1:<its port> to the server on `target`, answers passing through.
    pub fn start(target: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let cutting = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&cutting);
        // Lives as long as the test process: one thread per direction of each connection.
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                relay(client, server, Arc::clone(&flag));
            }
        });
        AnswerCutter { port, cutting }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// While on, every answer is lost with its connection.
    pub fn cut_answers(&self, on: bool) {
        self.cutting.store(on, Ordering::SeqCst);
    }
}

fn relay(client: TcpStream, server: TcpStream, cutting: Arc<AtomicBool>) {
    let (mut to_server, mut from_client) =
        (server.try_clone().unwrap(), client.try_clone().unwrap());
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from_client, &mut to_server);
        let _ = to_server.shutdown(Shutdown::Both);
        let _ = from_client.shutdown(Shutdown::Both);
    });
    let (mut from_server, mut to_client) = (server, client);
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            let n = match from_server.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if cutting.load(Ordering::SeqCst) || to_client.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = from_server.shutdown(Shutdown::Both);
        let _ = to_client.shutdown(Shutdown::Both);
    });
}
