//! Simulated desktops and apps of the device relay, as real HTTP clients.

use std::sync::LazyLock;
use std::thread;
use std::time::Duration;

use reqwest::blocking::{Client, Response};

use super::TestNode;

/// Timeouts short enough for tests (seconds).
pub const FAST: [(&str, &str); 4] = [
    ("RELAYBOX__RELAY__TIMEOUT_AGENT", "2"),
    ("RELAYBOX__RELAY__TIMEOUT_CACHE", "2"),
    ("RELAYBOX__RELAY__TIMEOUT_CLIENT", "0.5"),
    ("RELAYBOX__RELAY__TIMEOUT_NO_REPLY", "2"),
];

/// One client for every simulated desktop and app (a blocking client runs a thread of its own),
/// with a connection per request, as the original service had.
pub fn client() -> Client {
    static CLIENT: LazyLock<Client> = LazyLock::new(|| {
        Client::builder()
            .timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(0)
            .build()
            .unwrap()
    });
    CLIENT.clone()
}

pub fn header(r: &Response, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

/// What an app got, body and all (read on the app's own thread, as an app would).
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).unwrap()
    }

    /// "No agent": the desktop is not there (yet).
    pub fn no_agent(&self) -> bool {
        self.header("x-iwp-responsetype").as_deref() == Some("0")
    }
}

/// One app request to `url` (a node's `/client/<x>`) for `customer`'s desktop.
pub fn ask(url: &str, customer: &str, body: Vec<u8>) -> Answer {
    let r = client()
        .post(url)
        .header("X-IWP-ProductUnivId", customer)
        .header("X-My-App", "abc")
        .header("Content-Type", "application/xml")
        .body(body)
        .send()
        .unwrap();
    let (status, headers) = (r.status().as_u16(), r.headers().clone());
    Answer {
        status,
        headers,
        body: r.bytes().unwrap().to_vec(),
    }
}

/// An app on a thread that asks again, as apps do, while the desktop is not there yet (for up
/// to 15 s).
pub fn app(node: &TestNode, customer: &str, body: Vec<u8>) -> thread::JoinHandle<Answer> {
    let (url, customer) = (node.url("/client/3001"), customer.to_owned());
    thread::spawn(move || {
        for _ in 0..150 {
            let answer = ask(&url, &customer, body.clone());
            if !answer.no_agent() {
                return answer;
            }
            thread::sleep(Duration::from_millis(100));
        }
        panic!("{customer}: the desktop never came");
    })
}

/// One long poll of `customer`'s desktop.
pub fn poll_once(node: &TestNode, customer: &str) -> Response {
    client()
        .post(node.url("/agent/3001"))
        .header("X-IWP-ProductUnivId", customer)
        .send()
        .unwrap()
}

/// A desktop on a thread that polls until an app's request comes (for up to 10 polls); the
/// request's id and the poll's response.
pub fn desktop(node: &TestNode, customer: &str) -> thread::JoinHandle<(String, Response)> {
    let (url, customer) = (node.url("/agent/3001"), customer.to_owned());
    thread::spawn(move || {
        for _ in 0..10 {
            let r = client()
                .post(&url)
                .header("X-IWP-ProductUnivId", &customer)
                .send()
                .unwrap();
            if let Some(id) = header(&r, "x-iwp-requestid") {
                return (id, r);
            }
        }
        panic!("{customer}: no app request came");
    })
}

/// The desktop's reply to request `id`.
pub fn reply(node: &TestNode, customer: &str, id: &str, code: &str, body: Vec<u8>) -> Response {
    client()
        .post(node.url("/agentreply/3001"))
        .header("X-IWP-ProductUnivId", customer)
        .header("X-IWP-RequestId", id)
        .header("X-iwp-responsecode", code)
        .header("X-Desk", "yes")
        .body(body)
        .send()
        .unwrap()
}

/// `/connect`; returns the instance id the node answers.
pub fn connect(node: &TestNode, customer: &str) -> String {
    let r = client()
        .post(node.url("/connect"))
        .header("X-IWP-ProductUnivId", customer)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    header(&r, "x-iwp-port").expect("X-IWP-Port")
}
