//! The HTTPS listener and secure queues: Basic credentials with PopBox's exact answers, a
//! separate namespace, an optional admin credential, credentials stored as slow hashes.

mod common;

use common::{Backend, TestNode};
use reqwest::blocking::{Client, RequestBuilder};
use serde_json::{Value, json};

const ADMIN: [(&str, &str); 2] = [
    ("RELAYBOX__INBOX__ADMIN_USER", "root"),
    ("RELAYBOX__INBOX__ADMIN_PASSWORD", "s3cret"),
];

struct Secure {
    node: TestNode,
    client: Client,
}

impl Secure {
    fn start(backend: Backend) -> Self {
        let node = TestNode::start_secure(backend, &ADMIN);
        let client = node.https_client();
        Secure { node, client }
    }

    fn request(&self, method: &str, path: &str) -> RequestBuilder {
        let url = self.node.https_url(path);
        match method {
            "GET" => self.client.get(url),
            "POST" => self.client.post(url),
            other => panic!("{other}"),
        }
    }

    fn create(&self, queue: &str, user: &str, password: &str) -> (u16, Value) {
        let body = json!({"queue": queue, "user": user, "password": password});
        read(self.request("POST", "/queue").json(&body))
    }
}

fn read(request: RequestBuilder) -> (u16, Value) {
    let r = request.send().unwrap();
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

/// Status, content type, `WWW-Authenticate` and body text of an answer.
fn raw(request: RequestBuilder) -> (u16, String, String, String) {
    let r = request.send().unwrap();
    let header = |name: &str| {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    let (content_type, challenge) = (header("content-type"), header("www-authenticate"));
    (
        r.status().as_u16(),
        content_type,
        challenge,
        r.text().unwrap(),
    )
}

fn creating_secure_queues(backend: Backend) {
    let s = Secure::start(backend);
    assert_eq!(s.create("q1", "alice", "pw"), (200, json!({"ok": true})));
    assert_eq!(
        s.create("q1", "mallory", "other"),
        (403, json!({"errors": ["Error: SEC:q1 exists"]}))
    );
    let (status, _) = read(
        s.request("POST", "/org/acme/queue")
            .json(&json!({"queue": "q1", "user": "a", "password": "b"})),
    );
    assert_eq!(status, 200, "another tenant's q1 is another queue");
    // Plain HTTP has no such route.
    let (status, text) = {
        let r = s
            .node
            .client()
            .post(s.node.url("/queue"))
            .json(&json!({}))
            .send()
            .unwrap();
        (r.status().as_u16(), r.text().unwrap())
    };
    assert_eq!((status, text.as_str()), (404, "Cannot POST /queue"));

    for body in [
        json!({}),
        json!({"queue": "q2", "user": "u"}),
        json!({"queue": 5, "user": "u", "password": "p"}),
        json!({"queue": "q2", "user": "a:b", "password": "p"}),
    ] {
        let (status, reply) = read(s.request("POST", "/queue").json(&body));
        assert_eq!(status, 400, "{body} → {reply}");
        assert!(!reply["errors"].as_array().unwrap().is_empty());
    }
    let (status, reply) = read(s.request("POST", "/queue").json(&json!({})));
    assert_eq!(status, 400);
    assert_eq!(
        reply,
        json!({"errors": ["missing queue", "missing user", "missing password"]})
    );
    // Nothing was created by the refused requests.
    assert_eq!(s.create("q2", "u", "p").0, 200);
}

fn credentials_guard_every_queue_route(backend: Backend) {
    let s = Secure::start(backend);
    s.create("box", "alice", "pw");
    let routes = [
        ("POST", "/queue/box/pop?timeout=1"),
        ("POST", "/queue/box/poprel?timeout=1"),
        ("GET", "/queue/box/peek"),
        ("GET", "/queue/box"),
        ("POST", "/queue/box/ack"),
        ("POST", "/queue/box/subscribe"),
        ("POST", "/queue/box/subscriberel"),
        ("GET", "/queue/box/events"),
        ("GET", "/queue/box/ws"),
    ];
    // All at once: a wrong guess is answered only after a second.
    std::thread::scope(|scope| {
        for (method, path) in routes {
            for credential in [None, Some(("alice", "wrong")), Some(("mallory", "pw"))] {
                let s = &s;
                scope.spawn(move || {
                    let mut request = s.request(method, path);
                    if let Some((user, password)) = credential {
                        request = request.basic_auth(user, Some(password));
                    }
                    let (status, content_type, challenge, text) = raw(request);
                    assert_eq!(status, 401, "{method} {path} {credential:?}");
                    assert!(content_type.starts_with("text/plain"), "{content_type}");
                    assert_eq!(challenge, r#"Basic realm="PopBox""#);
                    assert_eq!(text, "Unauthorized");
                });
            }
        }
    });
    // Another scheme carrying the right credential is not Basic.
    let token = "YWxpY2U6cHc="; // alice:pw
    let (status, ..) = raw(s
        .request("GET", "/queue/box/peek")
        .header("authorization", format!("Bearer {token}")));
    assert_eq!(status, 401);
    let (status, ..) = raw(s
        .request("GET", "/queue/box/peek")
        .header("authorization", format!("Basic {token}")));
    assert_eq!(status, 200);

    // A secure queue that was never created.
    for credential in [("alice", "pw"), ("root", "s3cret")] {
        let (status, content_type, challenge, text) = raw(s
            .request("GET", "/queue/nothing/peek")
            .basic_auth(credential.0, Some(credential.1)));
        assert_eq!(status, 500);
        assert!(content_type.starts_with("text/plain"));
        assert_eq!(challenge, r#"Basic realm="PopBox""#);
        assert_eq!(text, "ERROR: Secure Queue does not exist");
    }
}

fn owner_and_admin_use_the_queue(backend: Backend) {
    let s = Secure::start(backend);
    s.create("inbox", "alice", "pw");
    // Provisioning over HTTPS goes to the secure queue, unauthenticated as in PopBox.
    let (status, reply) = read(s.request("POST", "/trans").json(&json!({
        "payload": "secret", "priority": "H", "queue": [{"id": "inbox"}],
    })));
    assert_eq!(status, 200, "{reply}");
    let id = reply["data"].as_str().unwrap().to_owned();
    // The plain listener's `inbox` is another queue.
    assert!(s.node.pop("inbox", "timeout=1").transactions.is_empty());

    let (status, reply) = read(
        s.request("GET", "/queue/inbox/peek")
            .basic_auth("root", Some("s3cret")),
    );
    assert_eq!(status, 200);
    assert_eq!(reply["transactions"], json!([id]));
    let (status, reply) = read(
        s.request("POST", "/queue/inbox/pop?timeout=1")
            .basic_auth("alice", Some("pw")),
    );
    assert_eq!(status, 200);
    assert_eq!(reply["data"], json!(["secret"]));
    assert_eq!(s.node.state(&id, "inbox"), "Delivered");
}

/// No org or queue name reaches another namespace's keys: an org spelled like the key layout
/// (`PB:Q|H`) cannot overwrite a secure queue's list, and a secure queue named `UNSEC:x` is not
/// org `SEC`'s plain queue `x`.
fn names_cannot_reach_other_keys(backend: Backend) {
    let s = Secure::start(backend);
    s.create("victim", "alice", "pw");
    let push_in = |org: &str, queue: &str| {
        let body = json!({"payload": "secret", "priority": "H", "queue": [{"id": queue}]});
        let (status, reply) = read(s.request("POST", &format!("{org}/trans")).json(&body));
        assert_eq!(status, 200, "{reply}");
        reply["data"].as_str().unwrap().to_owned()
    };
    let (status, reply) = read(
        s.request("POST", "/org/PB:Q%7CH/queue")
            .json(&json!({"queue": "victim", "user": "e", "password": "x"})),
    );
    assert_eq!(status, 200, "another org's own queue: {reply}");
    let id = push_in("", "victim");
    let (status, reply) = read(
        s.request("GET", "/queue/victim/peek")
            .basic_auth("alice", Some("pw")),
    );
    assert_eq!(
        (status, &reply["transactions"]),
        (200, &json!([id])),
        "{reply}"
    );

    // The second pair's ids hash to the same shard of the embedded store too.
    for (org, queue, plain) in [
        ("", "UNSEC:x", "/org/SEC/queue/x/peek"),
        ("/org/a", "n:UNSEC:c", "/org/a:SEC:n/queue/c/peek"),
    ] {
        let (status, reply) = read(
            s.request("POST", &format!("{org}/queue"))
                .json(&json!({"queue": queue, "user": "alice", "password": "pw"})),
        );
        assert_eq!(status, 200, "{reply}");
        push_in(org, queue);
        let (status, peeked) = s.node.get(plain);
        assert_eq!(status, 200, "{peeked}");
        assert_eq!(
            peeked["transactions"],
            json!([]),
            "{plain} read without credentials"
        );
    }
}

/// No admin credential unless one is configured.
#[test]
fn no_admin_by_default() {
    let node = TestNode::start_secure(Backend::Memory, &[]);
    let client = node.https_client();
    let create = json!({"queue": "q", "user": "u", "password": "p"});
    let r = client
        .post(node.https_url("/queue"))
        .json(&create)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    for (user, password) in [("popbox", "itscool"), ("root", "s3cret"), ("", "")] {
        let r = client
            .get(node.https_url("/queue/q/peek"))
            .basic_auth(user, Some(password))
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 401, "{user}");
    }
}

#[test]
fn credentials_are_stored_as_salted_slow_hashes() {
    if common::skip_redis() {
        return;
    }
    let tls_node = TestNode::start_secure(Backend::Redis, &[]);
    let redis = tls_node.own_redis();
    let client = tls_node.https_client();
    for queue in ["a", "b"] {
        let body = json!({"queue": queue, "user": "same", "password": "pw-not-stored"});
        let r = client
            .post(tls_node.https_url("/queue"))
            .json(&body)
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }
    let (a, b) = (redis.cli(&["GET", "SEC:a"]), redis.cli(&["GET", "SEC:b"]));
    assert!(a.starts_with("$argon2id$"), "{a}");
    assert!(!a.contains("pw-not-stored"));
    assert_ne!(a, b, "salted");
}

crate::every_store!(
    names_cannot_reach_other_keys,
    creating_secure_queues,
    credentials_guard_every_queue_route,
    owner_and_admin_use_the_queue,
);
