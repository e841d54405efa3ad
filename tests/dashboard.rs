//! The dashboard at `GET /admin/`, in a real headless browser (Debian's chromium): it loads
//! without a console error, shows the node's figures, and they follow the node's traffic;
//! with `admin.token`, a person signs in once through its form.

mod common;

use common::browser::Browser;
use common::{Backend, TestNode};
use serde_json::json;

const TOKEN: &str = "a-dashboard-token-for-tests";

#[test]
fn the_dashboard_shows_the_node_and_follows_its_traffic() {
    let node = TestNode::start(Backend::Memory);
    let mut browser = Browser::start();
    browser.open(&node.url("/admin/"));
    browser.wait_for("the node's figures", |b| {
        !b.text("node").is_empty() && b.text("pushed").parse::<u64>().is_ok()
    });
    assert_eq!(browser.text("role"), "primary");
    let pushed: u64 = browser.text("pushed").parse().unwrap();

    for i in 0..5 {
        node.push(&["q-dashboard"], &format!("m{i}"), "H");
    }
    let _held = node.hold_pop("q-waited-on");
    browser.wait_for("the pushes counted", |b| {
        b.text("pushed") == (pushed + 5).to_string()
    });
    browser.wait_for("the held pop and the deepest queue", |b| {
        b.text("held-pops") == "1"
            && b.eval("document.getElementById('queues').textContent")
                .as_str()
                .is_some_and(|t| t.contains("UNSEC:q-dashboard"))
    });
    browser.wait_for("the charts drawn", |b| {
        b.eval(
            "Array.from(document.querySelectorAll('#charts img'))
                .every(img => img.complete && img.naturalWidth > 0)",
        ) == json!(true)
    });
    assert_eq!(
        browser.eval("document.querySelectorAll('#charts img').length"),
        4
    );
    assert!(browser.errors.is_empty(), "{:#?}", browser.errors);
}

#[test]
fn with_a_token_a_person_signs_in_once() {
    let node = TestNode::start_with(Backend::Memory, &[("RELAYBOX__ADMIN__TOKEN", TOKEN)]);
    let mut browser = Browser::start();
    browser.open(&node.url("/admin/"));
    browser.wait_for("the sign-in form", |b| {
        b.eval("document.getElementById('sign-in').hidden") == json!(false)
    });
    assert_eq!(
        browser.eval("document.getElementById('dashboard').hidden"),
        json!(true),
        "nothing shown before signing in"
    );
    let sign_in = |token: &str| {
        format!(
            "document.querySelector('#sign-in input').value = {token:?};
             document.getElementById('sign-in').submit()"
        )
    };
    browser.eval(&sign_in("not-the-token-at-all"));
    browser.wait_for("the failure said", |b| {
        // Asked while the page changes: the element may not be there yet.
        b.eval("document.getElementById('sign-in-failed')?.hidden") == json!(false)
    });
    browser.eval(&sign_in(TOKEN));
    browser.wait_for("the dashboard", |b| {
        b.eval("document.getElementById('dashboard')?.hidden") == json!(false)
            && !b.text("node").is_empty()
    });
    assert!(browser.errors.is_empty(), "{:#?}", browser.errors);
}

/// The sign-in over plain HTTP: the cookie is the token, `HttpOnly` and `SameSite=Strict`,
/// and opens the admin routes as the bearer header does; a wrong token sets none.
#[test]
fn the_sign_in_cookie_opens_the_admin_routes() {
    let node = TestNode::start_with(Backend::Memory, &[("RELAYBOX__ADMIN__TOKEN", TOKEN)]);
    let client = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = |token: &str| {
        client
            .post(node.url("/admin/login"))
            .form(&[("token", token)])
            .send()
            .unwrap()
    };
    let refused = login("not-the-token-at-all");
    assert_eq!(refused.status(), 303);
    assert_eq!(refused.headers()["location"], "/admin/?failed");
    assert!(refused.headers().get("set-cookie").is_none());

    let signed_in = login(TOKEN);
    assert_eq!(signed_in.status(), 303);
    let cookie = signed_in.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_owned();
    let status = |cookie: Option<&str>| {
        let mut asked = client.get(node.url("/admin/status"));
        if let Some(cookie) = cookie {
            asked = asked.header("cookie", cookie);
        }
        asked.send().unwrap().status().as_u16()
    };
    assert_eq!(status(Some(&pair)), 200);
    assert_eq!(status(None), 401);
    assert_eq!(status(Some("relaybox_admin=guessed")), 401);

    let session = |cookie: &str| -> serde_json::Value {
        let asked = client
            .get(node.url("/admin/session"))
            .header("cookie", cookie);
        asked.send().unwrap().json().unwrap()
    };
    assert_eq!(session(&pair)["allowed"], true);
    assert_eq!(session("")["allowed"], false);
    assert_eq!(session("")["token_required"], true);

    let out = client.post(node.url("/admin/logout")).send().unwrap();
    let cleared = out.headers()["set-cookie"].to_str().unwrap();
    assert!(cleared.starts_with("relaybox_admin=;"), "{cleared}");

    // Not a form: refused, naming what was expected.
    let bad = client
        .post(node.url("/admin/login"))
        .body("{\"token\": 1}")
        .send()
        .unwrap();
    assert_eq!(bad.status(), 400);
}
