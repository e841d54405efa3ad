//! The queues, for an operator: `GET /admin/queues?top=N` the deepest (bounded work: on Redis
//! at most `budget` queues are looked at, found with `SCAN`); `GET /admin/queues/<name>` one
//! queue (its depth by priority, waiters, last pop, the age of its next message);
//! `DELETE /admin/queues/<name>` purges one, answering how many entries it had. A queue is
//! named in full, as the lists show it: `[<org>:]UNSEC:<id>`, or `…SEC:<id>` for a secure one.

use actix_web::HttpRequest;
use serde::Deserialize;
use serde_json::json;

use super::super::AppState;
use super::super::response::{ApiError, Reply, json};
use crate::model::QueueName;

/// Queues listed unless `top` says otherwise, and the most.
const TOP: usize = 20;
const MOST: usize = 1000;
/// Queues looked at unless `budget` says otherwise, and the most: a `SCAN` of 100,000 keys
/// takes a Redis server some 50 ms, spread over many short steps.
const BUDGET: usize = 10_000;
const MOST_BUDGET: usize = 100_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Survey {
    top: Option<usize>,
    budget: Option<usize>,
}

pub async fn deepest(state: &AppState, req: &HttpRequest) -> Reply {
    let asked: Survey = serde_urlencoded::from_str(req.query_string())
        .map_err(|e| ApiError::bad_request(format!("bad query: {e}")))?;
    let (top, budget) = (asked.top.unwrap_or(TOP), asked.budget.unwrap_or(BUDGET));
    if !(1..=MOST).contains(&top) || !(1..=MOST_BUDGET).contains(&budget) {
        return Err(ApiError::bad_request(format!(
            "top must be from 1 to {MOST}, budget from 1 to {MOST_BUDGET}"
        )));
    }
    let found = state.inbox.deepest(top, budget).await?;
    let queues: Vec<_> = (found.queues.iter())
        .map(|q| json!({"queue": q.name, "high": q.high, "low": q.low}))
        .collect();
    Ok(json(&json!({
        "queues": queues,
        "looked_at": found.looked_at,
        "complete": found.complete,
    })))
}

pub async fn detail(state: &AppState, name: &str) -> Reply {
    let detail = state.inbox.queue_detail(named(name)?).await?;
    Ok(json(&json!({
        "queue": detail.depth.name,
        "high": detail.depth.high,
        "low": detail.depth.low,
        "waiting_here": detail.waiting_here,
        "blocked": detail.blocked,
        "last_pop": detail.last_pop,
        "oldest_ms": detail.oldest_ms,
    })))
}

pub async fn purge(state: &AppState, name: &str) -> Reply {
    let queue = named(name)?;
    let purged = state.inbox.purge(queue).await?;
    tracing::info!(queue = name, purged, "queue purged by an operator");
    Ok(json(&json!({ "queue": name, "purged": purged })))
}

fn named(name: &str) -> Result<QueueName, ApiError> {
    QueueName::from_key(name).ok_or_else(|| {
        ApiError::bad_request(format!(
            "{name:?} is not a queue's full name: [<org>:]UNSEC:<id>, or [<org>:]SEC:<id>"
        ))
    })
}
