//! `GET /admin/status`: what this node is and how it is doing — version, uptime, its store and
//! each shard's answer time, its replication role, its process (CPU, memory, descriptors), what
//! it has done since it started (messages, relays) and the connections it holds, by kind.

use std::time::Instant;

use actix_web::HttpResponse;
use futures_util::future::join_all;
use serde_json::{Value, json};

use super::super::AppState;
use super::super::response::json;
use crate::config::Backend;
use crate::stats::{counters, process};

/// The store's servers and their replicas (Redis only).
async fn chain(state: &AppState) -> Vec<crate::replication::Chained> {
    let store = &state.settings.store;
    if store.backend != Backend::Redis {
        return Vec::new();
    }
    let servers: Vec<String> = (store.redis_servers.iter())
        .chain(&store.redis_transactions)
        .cloned()
        .collect();
    let timeout = std::time::Duration::from_millis(store.redis_timeout_ms);
    crate::replication::chain(&servers, timeout).await
}

pub async fn status(state: &AppState) -> HttpResponse {
    let store = &state.store;
    let shards = join_all((0..store.shards()).map(|shard| async move {
        let started = Instant::now();
        let answered = store.ping_shard(shard).await;
        let mut about = json!({
            "shard": shard,
            "name": store.shard_name(shard),
            "ok": answered.is_ok(),
            "ms": started.elapsed().as_secs_f64() * 1000.0,
        });
        if let Err(e) = answered {
            about["error"] = Value::String(e.to_string());
        }
        about
    }))
    .await;
    let (open, most) = state.connections.count();
    let c = counters();
    json(&json!({
        "name": "relaybox",
        "version": env!("CARGO_PKG_VERSION"),
        "node": state.node,
        "uptime": state.started.elapsed().as_secs(),
        "store": {"backend": state.backend, "shards": shards},
        "replication": state.replication.state(),
        "chain": chain(state).await,
        "draining": state.inbox.draining(),
        "process": {
            "cpu_seconds": process::cpu_seconds(),
            "rss_kib": process::rss_kib(),
            "rss_peak_kib": process::peak_rss_kib(),
            "open_files": process::open_files(),
            "open_files_limit": process::open_file_limit(),
        },
        "totals": {
            "provisioned": c.provisioned.total(),
            "pushed": c.pushed.total(),
            "popped": c.popped.total(),
            "acked": c.acked.total(),
            "returned": c.returned.total(),
            "expired": c.expired.total(),
            "interactions_started": c.interactions_started.total(),
            "interactions_ended": c.interactions_ended.total(),
            "interactions_failed": c.interactions_failed.total(),
        },
        "connections": {
            "open": open,
            "most": most,
            "held": {
                "pops_and_subscriptions": c.held.now(),
                "desktop_polls": c.agents.now(),
                "app_requests": c.interactions.now(),
            },
        },
    }))
}
