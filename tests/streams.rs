//! Subscriptions: `subscribe`/`subscriberel` (one JSON document per HTTP chunk), Server-Sent
//! Events and WebSocket, with nothing lost when a subscriber goes away.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::{Backend, TestNode, push_request, read_answer};
use serde_json::{Value, json};

/// A client of a streaming response, reading it as the wire carries it.
struct StreamClient {
    reader: BufReader<TcpStream>,
    headers: Vec<String>,
}

impl StreamClient {
    fn open(node: &TestNode, method: &str, path: &str) -> Self {
        let addr = node
            .url("")
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let mut stream = TcpStream::connect(&addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let request = format!("{method} {path} HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
        stream.write_all(request.as_bytes()).unwrap();
        let mut reader = BufReader::new(stream);
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let line = line.trim_end().to_owned();
            if line.is_empty() {
                break;
            }
            headers.push(line);
        }
        assert!(headers[0].contains(" 200 "), "{headers:?}");
        StreamClient { reader, headers }
    }

    fn header(&self, name: &str) -> Option<String> {
        self.headers.iter().find_map(|h| {
            let (n, v) = h.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }

    /// The next HTTP chunk's bytes.
    fn chunk(&mut self) -> Vec<u8> {
        let mut size = String::new();
        self.reader.read_line(&mut size).unwrap();
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        let mut data = vec![0; size + 2];
        self.reader.read_exact(&mut data).unwrap();
        data.truncate(size);
        data
    }

    /// The next chunk, which must be exactly one JSON document.
    fn document(&mut self) -> Value {
        let chunk = self.chunk();
        serde_json::from_slice(&chunk)
            .unwrap_or_else(|e| panic!("chunk {:?}: {e}", String::from_utf8_lossy(&chunk)))
    }

    /// The next Server-Sent Event's data (events may share or span chunks).
    fn event(&mut self, buffer: &mut String) -> Value {
        loop {
            if let Some(end) = buffer.find("\n\n") {
                let event: String = buffer.drain(..end + 2).collect();
                let data = event
                    .strip_prefix("data: ")
                    .expect("a data event")
                    .trim_end();
                return serde_json::from_str(data).unwrap();
            }
            buffer.push_str(&String::from_utf8(self.chunk()).unwrap());
        }
    }
}

fn message(id: &str, payload: &str) -> Value {
    json!({"ok": true, "data": [payload], "transactions": [id]})
}

fn blocked(node: &TestNode, queue: &str) -> bool {
    node.blocked(queue)
}

fn wait_until(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < limit, "timed out waiting: {what}");
        sleep(Duration::from_millis(20));
    }
}

fn one_document_per_chunk(backend: Backend) {
    let node = TestNode::start(backend);
    let early = node.push(&["s1"], "before", "L");
    let mut sub = StreamClient::open(&node, "POST", "/queue/s1/subscribe");
    assert_eq!(
        sub.header("content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(sub.header("transfer-encoding").as_deref(), Some("chunked"));
    assert_eq!(sub.document(), message(&early, "before"));
    let ids: Vec<String> = (0..5)
        .map(|i| node.push(&["s1"], &format!("m{i}"), "H"))
        .collect();
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(sub.document(), message(id, &format!("m{i}")));
        assert_eq!(node.state(id, "s1"), "Delivered");
    }
    assert!(blocked(&node, "s1"), "a subscribed queue reads blocked");
    drop(sub);
    wait_until(Duration::from_secs(2), "blocked clears", || {
        !blocked(&node, "s1")
    });
}

fn a_gone_subscriber_loses_nothing(backend: Backend) {
    let node = TestNode::start(backend);
    let first = StreamClient::open(&node, "POST", "/queue/s2/subscribe");
    wait_until(Duration::from_secs(2), "subscribed", || {
        blocked(&node, "s2")
    });
    drop(first);
    wait_until(Duration::from_secs(2), "unsubscribed", || {
        !blocked(&node, "s2")
    });
    let id = node.push(&["s2"], "for the next one", "H");
    sleep(Duration::from_millis(100));
    assert_eq!(node.state(&id, "s2"), "Pending");
    let mut second = StreamClient::open(&node, "POST", "/queue/s2/subscribe");
    assert_eq!(second.document(), message(&id, "for the next one"));
}

fn many_subscribers_share_a_queue(backend: Backend) {
    let node = TestNode::start(backend);
    let mut subs: Vec<StreamClient> = (0..3)
        .map(|_| StreamClient::open(&node, "POST", "/queue/s3/subscribe"))
        .collect();
    sleep(Duration::from_millis(200));
    // Close one of them mid-way: what it would have had goes to the others.
    drop(subs.remove(1));
    let ids: Vec<String> = (0..10)
        .map(|i| node.push(&["s3"], &format!("m{i}"), "H"))
        .collect();
    let mut got: Vec<String> = Vec::new();
    let start = Instant::now();
    // Each remaining subscriber reads in turn until every message arrived once.
    'outer: while got.len() < ids.len() {
        assert!(start.elapsed() < Duration::from_secs(10), "got {got:?}");
        for sub in &mut subs {
            sub.reader
                .get_ref()
                .set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            let mut size = String::new();
            if sub.reader.read_line(&mut size).is_err() || size.is_empty() {
                continue;
            }
            let size = usize::from_str_radix(size.trim(), 16).unwrap();
            let mut data = vec![0; size + 2];
            sub.reader
                .get_ref()
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            sub.reader.read_exact(&mut data).unwrap();
            let doc: Value = serde_json::from_slice(&data[..size]).unwrap();
            got.push(doc["transactions"][0].as_str().unwrap().to_owned());
            if got.len() == ids.len() {
                break 'outer;
            }
        }
    }
    got.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(got, want, "each message exactly once");
}

fn reliable_subscription_waits_for_acks(backend: Backend) {
    let node = TestNode::start(backend);
    let id = node.push(&["s4"], "p", "H");
    let mut sub = StreamClient::open(&node, "POST", "/queue/s4/subscriberel?timeoutACK=1");
    assert_eq!(sub.document(), message(&id, "p"));
    assert_eq!(node.state(&id, "s4"), "Blocked");
    // Not acked: it comes back, and this same subscriber gets it again.
    assert_eq!(sub.document(), message(&id, "p"));
    node.post("/queue/s4/ack", &json!({"transactions": [id]}));
    assert_eq!(node.state(&id, "s4"), "Delivered");
}

fn sse_and_websocket_match_subscribe(backend: Backend) {
    let node = TestNode::start(backend);
    let mut sub = StreamClient::open(&node, "POST", "/queue/w1/subscribe");
    let mut sse = StreamClient::open(&node, "GET", "/queue/w2/events");
    assert_eq!(
        sse.header("content-type").as_deref(),
        Some("text/event-stream")
    );
    let ws_url = node.url("/queue/w3/ws").replace("http://", "ws://");
    let (mut ws, _) = tungstenite::connect(ws_url).unwrap();
    sleep(Duration::from_millis(200));

    let ids: Vec<String> = (0..3)
        .map(|i| node.push(&["w1", "w2", "w3"], &format!("m{i}"), "H"))
        .collect();
    let mut events = String::new();
    for (i, id) in ids.iter().enumerate() {
        let want = message(id, &format!("m{i}"));
        assert_eq!(sub.document(), want);
        assert_eq!(sse.event(&mut events), want);
        let frame = ws.read().unwrap();
        let got: Value = serde_json::from_str(frame.to_text().unwrap()).unwrap();
        assert_eq!(got, want);
        for queue in ["w1", "w2", "w3"] {
            assert_eq!(node.state(id, queue), "Delivered", "{queue}");
        }
    }
    // Leaving the WebSocket stops its subscription.
    ws.close(None).unwrap();
    let _ = ws.flush();
    wait_until(Duration::from_secs(2), "ws unsubscribed", || {
        !blocked(&node, "w3")
    });
    let later = node.push(&["w3"], "later", "H");
    sleep(Duration::from_millis(100));
    assert_eq!(node.state(&later, "w3"), "Pending");
}

fn bad_subscriptions(backend: Backend) {
    let node = TestNode::start(backend);
    let (status, reply) = node.post("/queue/b1/subscriberel?timeoutACK=-2", &json!({}));
    assert_eq!(status, 400, "{reply}");
    // A plain GET on the WebSocket route is not a handshake.
    let (status, reply) = node.get("/queue/b1/ws");
    assert_eq!(status, 400, "{reply}");
    assert!(reply["errors"][0].as_str().unwrap().contains("WebSocket"));
    assert!(!blocked(&node, "b1"));
}

/// Whether `stream` has bytes to read (it must be non-blocking).
fn readable(stream: &TcpStream) -> bool {
    matches!(stream.peek(&mut [0u8; 1]), Ok(n) if n > 0)
}

/// A push is answered before a waiter on the same node has its message (the design's
/// invariant 6): clients such as PopBox's own tests match what they receive against the ids
/// their pushes were answered with. A subscriber and a blocking pop wait; a third connection
/// pushes into both queues. The moment either waiter's socket has bytes, the pusher's must
/// have them too: were the message first, the pusher's socket would still be empty then.
fn a_push_is_answered_before_its_message_arrives(backend: Backend) {
    let node = TestNode::start(backend);
    let mut sub = StreamClient::open(&node, "POST", "/queue/order-s/subscribe");
    let mut pusher = BufReader::new(TcpStream::connect(node.addr).unwrap());
    for round in 0..200 {
        let mut pop = BufReader::new(node.hold_pop("order-p"));
        wait_until(Duration::from_secs(5), "the pop waits", || {
            blocked(&node, "order-p")
        });
        let payload = format!("r{round}");
        let request = push_request(&["order-s", "order-p"], &payload);
        pusher.get_mut().write_all(request.as_bytes()).unwrap();

        let sockets = [pusher.get_ref(), sub.reader.get_ref(), pop.get_ref()];
        for socket in sockets {
            socket.set_nonblocking(true).unwrap();
        }
        let start = Instant::now();
        while !readable(sockets[0]) {
            if readable(sockets[1]) || readable(sockets[2]) {
                assert!(
                    readable(sockets[0]),
                    "round {round}: a waiter had the message before the push was answered"
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "round {round}: no answer"
            );
        }
        for socket in sockets {
            socket.set_nonblocking(false).unwrap();
        }

        let (status, answer) = read_answer(&mut pusher);
        assert_eq!(status, 200, "{answer}");
        let id = answer["data"].as_str().unwrap();
        assert_eq!(sub.document(), message(id, &payload), "round {round}");
        let (status, popped) = read_answer(&mut pop);
        assert_eq!(
            (status, popped),
            (200, message(id, &payload)),
            "round {round}"
        );
    }
}

/// A producer that leaves without reading its answer loses nothing it was answered for, and
/// strands nothing. In even rounds it closes as soon as its push is sent, which may be before
/// the node has read it: then the message is either delivered or was never stored. In odd
/// rounds it closes once its answer has arrived, unread: the message must be delivered.
fn a_push_whose_producer_leaves_still_reaches_the_waiter(backend: Backend) {
    let node = TestNode::start(backend);
    for round in 0..20 {
        let mut pop = BufReader::new(TcpStream::connect(node.addr).unwrap());
        let request =
            "POST /queue/leaving/pop?timeout=2 HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n";
        pop.get_mut().write_all(request.as_bytes()).unwrap();
        wait_until(Duration::from_secs(5), "the pop waits", || {
            blocked(&node, "leaving")
        });
        let payload = format!("r{round}");
        let mut pusher = TcpStream::connect(node.addr).unwrap();
        pusher
            .write_all(push_request(&["leaving"], &payload).as_bytes())
            .unwrap();
        if round % 2 == 1 {
            pusher.set_nonblocking(true).unwrap();
            wait_until(Duration::from_secs(5), "the answer arrives", || {
                readable(&pusher)
            });
        }
        drop(pusher);
        pop.get_ref()
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let (status, popped) = read_answer(&mut pop);
        assert_eq!(status, 200, "round {round}: {popped}");
        if popped["data"] != json!([payload]) {
            assert!(round % 2 == 0, "round {round}: not delivered: {popped}");
            assert_eq!(popped["data"], json!([]), "round {round}");
            assert!(
                node.peek("leaving", "max=10").data.is_empty(),
                "round {round}: stored, yet the waiter had nothing"
            );
        }
    }
}

crate::every_store!(
    a_push_is_answered_before_its_message_arrives,
    a_push_whose_producer_leaves_still_reaches_the_waiter,
    one_document_per_chunk,
    a_gone_subscriber_loses_nothing,
    many_subscribers_share_a_queue,
    reliable_subscription_waits_for_acks,
    sse_and_websocket_match_subscribe,
    bad_subscriptions,
);
