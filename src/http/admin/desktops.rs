//! `GET /admin/desktops`: the desktops whose sessions live on this node, by customer id, paged
//! (`?limit=&after=<customer>`): whether each is present, its held polls, the app requests
//! waiting for it and the interactions under way.

use actix_web::HttpRequest;
use serde_json::{Value, json};

use super::super::AppState;
use super::super::response::{Reply, json};
use super::page::Page;
use crate::relay::DesktopView;

pub async fn desktops(state: &AppState, req: &HttpRequest) -> Reply {
    let page = Page::of(req.query_string())?;
    let desktops = (state.relay)
        .desktops(page.after.as_deref(), page.limit())
        .await;
    let next = (desktops.len() == page.limit())
        .then(|| desktops.last().map(|d| d.customer.clone()))
        .flatten();
    let desktops: Vec<Value> = desktops.iter().map(shown).collect();
    Ok(json(&json!({ "desktops": desktops, "next": next })))
}

fn shown(d: &DesktopView) -> Value {
    json!({
        "customer": d.customer,
        "present": d.present,
        "polls_waiting_ms": d.polls_ms,
        "apps_waiting_ms": d.apps_ms,
        "interactions": d.interactions,
    })
}

/// The held requests of `desktops`, one entry each, for `/admin/connections`.
pub fn held(desktops: &[DesktopView]) -> Vec<Value> {
    let mut held = Vec::new();
    for d in desktops {
        let polls = d.polls_ms.iter().map(|ms| ("desktop_poll", ms));
        let apps = d.apps_ms.iter().map(|ms| ("app_request", ms));
        for (kind, ms) in polls.chain(apps) {
            held.push(json!({"kind": kind, "customer": d.customer, "waiting_ms": ms}));
        }
    }
    held
}
