//! `GET /admin/connections`: the requests this node holds open, paged (`?limit=&after=`): the
//! pops and subscriptions waiting on its shards (by waiter, oldest first), then its desktops'
//! held polls and the app requests waiting for them (by customer; one customer's are never
//! split over two pages).

use actix_web::HttpRequest;
use serde_json::{Value, json};

use super::super::AppState;
use super::super::response::{ApiError, Reply, json};
use super::desktops;
use super::page::Page;
use crate::model::unix_now_ms;

/// Where a page starts: after a waiter, or after a customer's requests.
enum Cursor {
    Start,
    Waiter(u64),
    Desktop(String),
}

impl Cursor {
    fn parse(after: Option<&str>) -> Result<Self, ApiError> {
        let Some(after) = after else {
            return Ok(Cursor::Start);
        };
        let bad = || ApiError::bad_request(format!("after={after:?} is not a page's next"));
        match after.split_at_checked(1) {
            Some(("w", id)) => id.parse().map(Cursor::Waiter).map_err(|_| bad()),
            Some(("d", customer)) => Ok(Cursor::Desktop(customer.to_owned())),
            _ => Err(bad()),
        }
    }
}

pub async fn connections(state: &AppState, req: &HttpRequest) -> Reply {
    let page = Page::of(req.query_string())?;
    let (limit, cursor) = (page.limit(), Cursor::parse(page.after.as_deref())?);
    let mut held: Vec<Value> = Vec::new();
    let mut next = None;
    if let Cursor::Start | Cursor::Waiter(_) = cursor {
        let after = match cursor {
            Cursor::Waiter(id) => id,
            _ => 0,
        };
        let now = unix_now_ms();
        let waiters = state.inbox.waiters().await;
        let mut waiters = waiters.iter().filter(|w| w.id > after).peekable();
        while held.len() < limit {
            let Some(w) = waiters.next() else { break };
            held.push(json!({
                "kind": if w.subscription { "subscription" } else { "pop" },
                "waiter": w.id,
                "queue": w.queue.key(),
                "reliable": w.reliable,
                "max": w.max,
                "waiting_ms": now.saturating_sub(w.since),
            }));
            if held.len() == limit && waiters.peek().is_some() {
                next = Some(format!("w{}", w.id));
            }
        }
    }
    if next.is_none() && held.len() < limit {
        let after = match &cursor {
            Cursor::Desktop(customer) => Some(customer.as_str()),
            _ => None,
        };
        let room = limit - held.len();
        let sessions = state.relay.desktops(after, room).await;
        held.extend(desktops::held(&sessions));
        if sessions.len() == room {
            next = sessions.last().map(|d| format!("d{}", d.customer));
        }
    }
    Ok(json(&json!({ "connections": held, "next": next })))
}
