//! The device relay (My Notes protocol): simulated desktops and apps as real HTTP clients.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use common::relay::{FAST, app, ask, client, connect, desktop, header, poll_once, reply};
use common::{Backend, RedisServer, TestNode};

fn relay_with_body_and_headers_both_ways(backend: Backend) {
    let node = TestNode::start_with(backend, &FAST);
    assert_eq!(connect(&node, "1001"), "3001");
    let desk = desktop(&node, "1001");
    let app = app(&node, "1001", b"HELLO-FROM-APP".to_vec());
    let (id, mut request) = desk.join().unwrap();
    assert_eq!(request.status(), 200);
    assert!(id.len() >= 32, "unguessable: {id}");
    assert_eq!(header(&request, "x-my-app").as_deref(), Some("abc"));
    assert_eq!(
        header(&request, "content-type").as_deref(),
        Some("application/xml")
    );
    assert_eq!(
        header(&request, "x-iwp-productunivid").as_deref(),
        Some("1001")
    );
    let mut body = String::new();
    request.read_to_string(&mut body).unwrap();
    assert_eq!(body, "HELLO-FROM-APP");

    let answer = reply(&node, "1001", &id, "201", b"REPLY-FROM-DESKTOP".to_vec());
    assert_eq!(answer.status(), 200);
    let answered = app.join().unwrap();
    assert_eq!(answered.status, 201, "status from X-iwp-responsecode");
    assert_eq!(answered.header("x-desk").as_deref(), Some("yes"));
    assert_eq!(
        answered.header("x-iwp-requestid").as_deref(),
        Some(id.as_str())
    );
    assert_eq!(answered.text(), "REPLY-FROM-DESKTOP");
}

fn protocol_headers_are_capitalised_as_the_original(backend: Backend) {
    let node = TestNode::start_with(backend, &FAST);
    let raw = node.raw(
        b"POST /connect HTTP/1.1\r\nHost: t\r\nX-IWP-ProductUnivId: 7\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(raw.status, 200);
    assert!(raw.head.contains("X-Iwp-Port: 3001"), "{}", raw.head);
    for path in ["/ping", "/agent/3001", "/client/3001", "/agentreply/3001"] {
        let request = format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        assert_eq!(node.raw(request.as_bytes()).status, 405, "{path}");
    }
}

fn no_client_no_agent_and_queued_apps(backend: Backend) {
    let node = TestNode::start_with(backend, &FAST);
    let relay_url = node.url("/client/3001");
    // Nobody ever attached.
    assert!(ask(&relay_url, "2002", b"x".to_vec()).no_agent());
    let r = client()
        .post(node.url("/client"))
        .header("X-IWP-ProductUnivId", "2002")
        .send()
        .unwrap();
    assert_eq!(header(&r, "x-iwp-responsetype").as_deref(), Some("0"));

    // Attached here: `/client` points at this node.
    connect(&node, "2002");
    let r = client()
        .post(node.url("/client"))
        .header("X-IWP-ProductUnivId", "2002")
        .send()
        .unwrap();
    assert_eq!(header(&r, "x-iwp-host").as_deref(), Some("localhost:3001"));
    assert_eq!(header(&r, "x-iwp-port").as_deref(), Some("3001"));
    // Attached but never seen polling: "no agent" at once.
    assert!(ask(&relay_url, "2002", b"x".to_vec()).no_agent());

    // A poll times out: "no client", after timeout_agent.
    let started = Instant::now();
    let r = poll_once(&node, "2002");
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-iwp-responsetype").as_deref(), Some("0"));
    assert!(started.elapsed() >= Duration::from_millis(1900));

    // The desktop is between polls (present): an app waits for its next poll.
    let waiting = {
        let url = relay_url.clone();
        thread::spawn(move || ask(&url, "2002", b"queued".to_vec()))
    };
    thread::sleep(Duration::from_millis(700));
    let mut request = poll_once(&node, "2002");
    let id = header(&request, "x-iwp-requestid").expect("the queued request");
    let mut body = String::new();
    request.read_to_string(&mut body).unwrap();
    assert_eq!(body, "queued");
    reply(&node, "2002", &id, "200", b"ok".to_vec());
    assert_eq!(waiting.join().unwrap().text(), "ok");

    // Gone for longer than timeout_cache: "no agent" once the presence runs out.
    thread::sleep(Duration::from_millis(2500));
    let started = Instant::now();
    assert!(ask(&relay_url, "2002", b"late".to_vec()).no_agent());
    assert!(started.elapsed() < Duration::from_secs(2));
}

/// Pairs one app request with a poll and returns (request id, the app's pending answer).
fn paired(node: &TestNode, customer: &str) -> (String, thread::JoinHandle<common::relay::Answer>) {
    let desk = desktop(node, customer);
    let app = app(node, customer, b"question".to_vec());
    let (id, request) = desk.join().unwrap();
    drop(request.bytes().unwrap());
    (id, app)
}

fn reply_errors(backend: Backend) {
    let node = TestNode::start_with(backend, &FAST);
    let reason = |r: &reqwest::blocking::Response| header(r, "x-iwp-reason").unwrap_or_default();

    // Unknown request id.
    let r = reply(&node, "3003", "nope", "200", Vec::new());
    assert_eq!(r.status(), 502);
    assert_eq!(reason(&r), "HTTP 502: Bad Gateway (No client to reply)");

    // Another customer's request id.
    let (id, app_answer) = paired(&node, "3003");
    let r = reply(&node, "9999", &id, "200", Vec::new());
    assert_eq!(r.status(), 500);
    assert_eq!(reason(&r), "Not corresponding ProductID = 9999");

    // A second reply while the first streams: 501. The first reply's body is held back by a
    // raw connection that has sent only part of it.
    let mut first = TcpStream::connect(node.addr).unwrap();
    let head = format!(
        "POST /agentreply/3001 HTTP/1.1\r\nHost: t\r\nX-IWP-ProductUnivId: 3003\r\nX-IWP-RequestId: {id}\r\nContent-Length: 10\r\n\r\nhalf"
    );
    first.write_all(head.as_bytes()).unwrap();
    thread::sleep(Duration::from_millis(300));
    let r = reply(&node, "3003", &id, "200", Vec::new());
    assert_eq!(r.status(), 501);
    assert_eq!(
        reason(&r),
        "HTTP 501: Not Implemented (RequestID is being replied)"
    );
    first.write_all(b"-rest!").unwrap();
    assert_eq!(app_answer.join().unwrap().text(), "half-rest!");

    // A bad X-iwp-responsecode: the desktop hears 400, the app 502 (not left hanging).
    let (id, app_answer) = paired(&node, "3003");
    let r = reply(&node, "3003", &id, "abc", b"x".to_vec());
    assert_eq!(r.status(), 400);
    assert!(reason(&r).contains("Unknown status code 'abc'"));
    assert_eq!(app_answer.join().unwrap().status, 502);

    // No reply within timeout_no_reply: 504.
    let started = Instant::now();
    let (_id, app_answer) = paired(&node, "3003");
    let r = app_answer.join().unwrap();
    assert_eq!(r.status, 504);
    assert_eq!(
        r.header("x-iwp-reason").as_deref(),
        Some("HTTP 504: Gateway Timeout (No reply from agent)")
    );
    assert!(started.elapsed() >= Duration::from_millis(1900));

    // Missing ids are refused, not guessed.
    let r = client().post(node.url("/agent/3001")).send().unwrap();
    assert_eq!(r.status(), 400);
    let r = client()
        .post(node.url("/agentreply/3001"))
        .header("X-IWP-ProductUnivId", "3003")
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
}

fn desktop_disconnect_mid_transfer_gives_the_app_503(backend: Backend) {
    let node = TestNode::start_with(backend, &FAST);
    // The desktop polls on a raw connection, reads the start of the request, and hangs up.
    let mut desk = TcpStream::connect(node.addr).unwrap();
    desk.write_all(
        b"POST /agent/3001 HTTP/1.1\r\nHost: t\r\nX-IWP-ProductUnivId: 4004\r\nContent-Length: 0\r\n\r\n",
    )
    .unwrap();
    let app = app(&node, "4004", vec![b'z'; 8 << 20]);
    let mut start = [0u8; 4096];
    desk.read_exact(&mut start).unwrap();
    drop(desk);
    let r = app.join().unwrap();
    assert_eq!(r.status, 503);
    assert!(r.header("x-iwp-reason").unwrap().contains("desktop"));
}

fn app_disconnect_gives_the_desktop_502(backend: Backend) {
    let node = TestNode::start_with(backend, &FAST);
    let desk = desktop(&node, "5005");
    thread::sleep(Duration::from_millis(300));
    // The app sends its request on a raw connection and goes away once it is delivered.
    let mut app = TcpStream::connect(node.addr).unwrap();
    app.write_all(
        b"POST /client/3001 HTTP/1.1\r\nHost: t\r\nX-IWP-ProductUnivId: 5005\r\nContent-Length: 2\r\n\r\nhi",
    )
    .unwrap();
    let (id, request) = desk.join().unwrap();
    drop(request.bytes().unwrap());
    drop(app);
    thread::sleep(Duration::from_millis(200));
    let r = reply(&node, "5005", &id, "200", vec![b'r'; 4 << 20]);
    assert_eq!(r.status(), 502);
}

fn chunked_bodies_relay_both_ways(backend: Backend) {
    let node = TestNode::start_with(backend, &FAST);
    let desk = desktop(&node, "5505");
    thread::sleep(Duration::from_millis(300));
    // The app sends its body chunked (no Content-Length) on a raw connection.
    let mut app = TcpStream::connect(node.addr).unwrap();
    app.write_all(
        b"POST /client/3001 HTTP/1.1\r\nHost: t\r\nX-IWP-ProductUnivId: 5505\r\nTransfer-Encoding: chunked\r\nKeep-Alive: timeout=5\r\nConnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    )
    .unwrap();
    let (id, request) = desk.join().unwrap();
    assert_eq!(
        header(&request, "keep-alive"),
        None,
        "hop-by-hop headers stay behind"
    );
    assert_eq!(request.text().unwrap(), "hello world");
    // The desktop replies chunked too (a streamed body of unknown length).
    let reply_body = reqwest::blocking::Body::new(std::io::Cursor::new(b"streamed reply".to_vec()));
    let r = client()
        .post(node.url("/agentreply/3001"))
        .header("X-IWP-ProductUnivId", "5505")
        .header("X-IWP-RequestId", &id)
        .body(reply_body)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut answer = Vec::new();
    app.read_to_end(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("streamed reply"), "{answer}");
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn a_32_mib_body_each_way_streams_through(backend: Backend) {
    // What this measures is memory, not speed: on a slow or busy machine 32 MiB may take the
    // desktop longer to read and answer than FAST's 2 s `timeout_no_reply`.
    let mut env = FAST.to_vec();
    env.retain(|(key, _)| *key != "RELAYBOX__RELAY__TIMEOUT_NO_REPLY");
    env.push(("RELAYBOX__RELAY__TIMEOUT_NO_REPLY", "120"));
    let node = TestNode::start_with(backend, &env);
    let size = 32 << 20;
    let pattern = |seed: u8| -> Vec<u8> { (0..size).map(|i| (i % 251) as u8 ^ seed).collect() };
    let (asked, answered) = (pattern(1), pattern(2));
    let before = rss_kib(node.pid());
    let desk = desktop(&node, "6006");
    let app = app(&node, "6006", asked.clone());
    let (id, request) = desk.join().unwrap();
    assert_eq!(request.bytes().unwrap().as_ref(), asked.as_slice());
    let r = reply(&node, "6006", &id, "200", answered.clone());
    assert_eq!(r.status(), 200);
    assert_eq!(app.join().unwrap().body, answered);
    let grown = rss_kib(node.pid()).saturating_sub(before);
    assert!(
        grown < 16 * 1024,
        "the node grew by {grown} KiB for 32 MiB bodies"
    );
}

/// Reads `stream` until its peer closes or resets it, or `limit` passes: the bytes, and whether
/// it was closed.
fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (bytes, true),
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return (bytes, false);
            }
            Err(_) => return (bytes, true),
        }
    }
}

/// The status line's code and the body of raw answer bytes.
fn split_answer(bytes: &[u8]) -> (u16, String, Vec<u8>) {
    let text = String::from_utf8_lossy(bytes).into_owned();
    let end = text.find("\r\n\r\n").map_or(bytes.len(), |at| at + 4);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text[..end].to_owned(), bytes[end..].to_vec())
}

/// A desktop's poll on a connection of the test's own.
fn raw_poll(node: &TestNode, customer: &str) -> TcpStream {
    let mut desk = TcpStream::connect(node.addr).unwrap();
    let poll = format!(
        "POST /agent/3001 HTTP/1.1\r\nHost: t\r\nX-IWP-ProductUnivId: {customer}\r\nContent-Length: 0\r\n\r\n"
    );
    desk.write_all(poll.as_bytes()).unwrap();
    thread::sleep(Duration::from_millis(300));
    desk
}

/// A relayed body that stops coming (its sender sends 10 of 1,000 bytes and waits) fails on
/// both sides after `relay.stall_timeout`: the sender hears `408`, the receiver's answer is cut
/// off. Either way round.
fn a_stalled_body_fails_both_sides(backend: Backend) {
    let mut env = FAST.to_vec();
    env.push(("RELAYBOX__RELAY__STALL_TIMEOUT", "1"));
    let node = TestNode::start_with(backend, &env);

    // The app stalls: the desktop's poll answer is cut off, the app gets 408.
    let mut desk = raw_poll(&node, "7301");
    let mut app = TcpStream::connect(node.addr).unwrap();
    app.write_all(b"POST /client/3001 HTTP/1.1\r\nHost: t\r\nX-IWP-ProductUnivId: 7301\r\nContent-Length: 1000\r\n\r\n0123456789").unwrap();
    assert_cut_off(&mut desk, "desktop");
    assert_timed_out(&mut app, "app");

    // The desktop stalls its reply: the app's answer is cut off, the desktop gets 408.
    let desk = desktop(&node, "7302");
    thread::sleep(Duration::from_millis(300));
    let mut app = TcpStream::connect(node.addr).unwrap();
    app.write_all(b"POST /client/3001 HTTP/1.1\r\nHost: t\r\nX-IWP-ProductUnivId: 7302\r\nContent-Length: 2\r\n\r\nhi").unwrap();
    let (id, request) = desk.join().unwrap();
    drop(request.bytes().unwrap());
    let mut replying = TcpStream::connect(node.addr).unwrap();
    let head = format!(
        "POST /agentreply/3001 HTTP/1.1\r\nHost: t\r\nX-IWP-ProductUnivId: 7302\r\nX-IWP-RequestId: {id}\r\nContent-Length: 1000\r\n\r\n0123456789"
    );
    replying.write_all(head.as_bytes()).unwrap();
    assert_cut_off(&mut app, "app");
    assert_timed_out(&mut replying, "desktop");
}

/// How long a stalled transfer may take to fail, on any machine.
const STALL_LIMIT: Duration = Duration::from_secs(15);

/// `who`'s answer (a relayed message of 1,000 bytes) began, then broke off.
fn assert_cut_off(stream: &mut TcpStream, who: &str) {
    let (got, closed) = read_until_closed(stream, STALL_LIMIT);
    let (status, _, body) = split_answer(&got);
    assert!(
        closed && status == 200 && body.len() < 1000,
        "{who}: {status}, {} bytes",
        body.len()
    );
}

/// `who`, whose body stalled, was told so with `408`.
fn assert_timed_out(stream: &mut TcpStream, who: &str) {
    let (got, _) = read_until_closed(stream, STALL_LIMIT);
    let (status, head, _) = split_answer(&got);
    assert_eq!(status, 408, "{who}: {head}");
    assert!(head.contains("no byte"), "{head}");
}

/// `X-iwp-responsecode`s that cannot carry a reply (not final, no body, not HTTP's) get the
/// desktop `400` and the app `502`.
fn codes_that_cannot_carry_a_reply_are_refused(backend: Backend) {
    let node = TestNode::start_with(backend, &FAST);
    for code in ["100", "101", "199", "204", "304", "599"] {
        let (id, app_answer) = paired(&node, "7401");
        let r = reply(&node, "7401", &id, code, b"body".to_vec());
        assert_eq!(r.status(), 400, "{code}");
        assert_eq!(app_answer.join().unwrap().status, 502, "{code}");
    }
}

/// A complete transfer of zero bytes is a success, both ways.
fn empty_bodies_relay_both_ways(backend: Backend) {
    let node = TestNode::start_with(backend, &FAST);
    let desk = desktop(&node, "7501");
    let app_answer = app(&node, "7501", Vec::new());
    let (id, request) = desk.join().unwrap();
    assert!(request.bytes().unwrap().is_empty());
    let r = reply(&node, "7501", &id, "200", b"ok".to_vec());
    assert_eq!(r.status(), 200);
    let answer = app_answer.join().unwrap();
    assert_eq!((answer.status, answer.text()), (200, "ok".to_owned()));

    let (id, app_answer) = paired(&node, "7501");
    let r = reply(&node, "7501", &id, "200", Vec::new());
    assert_eq!(r.status(), 200, "{:?}", header(&r, "x-iwp-reason"));
    let answer = app_answer.join().unwrap();
    assert_eq!((answer.status, answer.body.len()), (200, 0));
}

/// Headers that `Connection` names are hop-by-hop (RFC 9110 §7.6.1): they stay behind, both
/// ways.
fn headers_named_in_connection_stay_behind(backend: Backend) {
    let node = TestNode::start_with(backend, &FAST);
    let desk = desktop(&node, "7601");
    thread::sleep(Duration::from_millis(300));
    thread::scope(|scope| {
        let app = scope.spawn(|| {
            node.raw(b"POST /client/3001 HTTP/1.1\r\nHost: t\r\nX-IWP-ProductUnivId: 7601\r\nConnection: close, X-Hop-Test\r\nX-Hop-Test: one hop\r\nX-Kept: yes\r\nContent-Length: 2\r\n\r\nhi")
        });
        let (id, request) = desk.join().unwrap();
        assert_eq!(header(&request, "x-hop-test"), None);
        assert_eq!(header(&request, "x-kept").as_deref(), Some("yes"));
        drop(request.bytes().unwrap());
        let replied = node.raw(format!("POST /agentreply/3001 HTTP/1.1\r\nHost: t\r\nX-IWP-ProductUnivId: 7601\r\nX-IWP-RequestId: {id}\r\nConnection: close, X-Hop-Back\r\nX-Hop-Back: 1\r\nX-Back-Kept: 1\r\nContent-Length: 2\r\n\r\nok").as_bytes());
        assert_eq!(replied.status, 200);
        let answer = app.join().unwrap();
        assert_eq!((answer.status, answer.body.as_str()), (200, "ok"));
        assert_eq!(answer.header("x-hop-back"), None, "{}", answer.head);
        assert_eq!(answer.header("x-back-kept"), Some("1"), "{}", answer.head);
    });
}

/// Two nodes over one Redis: an app asking node B for a desktop on node A is redirected there,
/// and the relay works.
#[test]
fn a_desktop_on_another_node_is_found_through_the_store() {
    if common::skip_redis() {
        return;
    }
    let redis = RedisServer::start();
    let mut a_env = FAST.to_vec();
    a_env.extend([
        ("RELAYBOX__NODE__SERVER", "node-a:80"),
        ("RELAYBOX__NODE__PORT", "8081"),
    ]);
    let mut b_env = FAST.to_vec();
    b_env.extend([
        ("RELAYBOX__NODE__SERVER", "node-b:80"),
        ("RELAYBOX__NODE__PORT", "8082"),
    ]);
    let a = TestNode::on_redis(&[&redis], &a_env);
    let b = TestNode::on_redis(&[&redis], &b_env);
    assert_eq!(connect(&a, "8008"), "8081");
    let desk = desktop(&a, "8008");
    thread::sleep(Duration::from_millis(300));

    for path in ["/client", "/client/8082"] {
        let r = client()
            .post(b.url(path))
            .header("X-IWP-ProductUnivId", "8008")
            .body("to the wrong node")
            .send()
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(
            header(&r, "x-iwp-host").as_deref(),
            Some("node-a:80"),
            "{path}"
        );
        assert_eq!(header(&r, "x-iwp-port").as_deref(), Some("8081"), "{path}");
        assert_eq!(header(&r, "x-iwp-requestid"), None);
    }
    // The app follows the redirect (by address here: node-a is A's public name).
    let app = app(&a, "8008", b"found you".to_vec());
    let (id, request) = desk.join().unwrap();
    assert_eq!(request.text().unwrap(), "found you");
    assert_eq!(
        reply(&a, "8008", &id, "200", b"hello".to_vec()).status(),
        200
    );
    assert_eq!(app.join().unwrap().text(), "hello");
}

crate::every_store!(
    relay_with_body_and_headers_both_ways,
    protocol_headers_are_capitalised_as_the_original,
    no_client_no_agent_and_queued_apps,
    reply_errors,
    desktop_disconnect_mid_transfer_gives_the_app_503,
    app_disconnect_gives_the_desktop_502,
    chunked_bodies_relay_both_ways,
    a_32_mib_body_each_way_streams_through,
    a_stalled_body_fails_both_sides,
    codes_that_cannot_carry_a_reply_are_refused,
    empty_bodies_relay_both_ways,
    headers_named_in_connection_stay_behind,
);
