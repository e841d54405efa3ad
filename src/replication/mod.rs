//! Replication: the node's role in a chain of Redis sets `R ← R′ ← R″`, owned by one
//! [`ReplicationActor`] per node.
//!
//! A **primary** serves at once. A **standby** keeps each server of its set replicating its
//! upstream, and serves nothing until the first request that needs the store: that request
//! promotes the whole set (requests arriving meanwhile wait for the same promotion, up to
//! `replication.promote_wait`), and the node starts serving once every server is master. Probes
//! (`/health`, `/ready`), admin requests, `HEAD` and `OPTIONS` never promote. A node whose
//! Redis answers `READONLY` was demoted by a newer primary: it is **fenced** and stops taking
//! requests. Each promotion raises an epoch kept in the set; a standby never attaches a server
//! to an upstream with a lower epoch (that would wipe what it took since it was promoted).

mod actor;
pub mod promote;
pub mod server;

use std::time::Duration;

use actix::{Actor, Addr};
use serde::Serialize;
use tokio::sync::watch;

use self::actor::{Fence, Promote, ReplicationActor};
use self::promote::{AttachError, Pair};
pub use self::server::Replica;
use self::server::{Link, RedisServer, ServerError};
use crate::config::{Role, Settings};

/// Where the node stands.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "role", rename_all = "lowercase")]
pub enum State {
    /// Replicating its upstreams; serves once promoted.
    Standby { links: Vec<Link> },
    /// Being promoted; `trouble` says what held the last attempt up (it is tried again).
    Promoting { trouble: Option<String> },
    /// Serving. `epoch`: the set's, when it was promoted by this node.
    Primary { epoch: Option<u64> },
    /// Demoted by a newer primary: serves nothing.
    Fenced { reason: String },
}

impl State {
    /// Every role's name, as [`State::role`] gives it.
    pub const ROLES: &[&str] = &["standby", "promoting", "primary", "fenced"];

    /// The role's name.
    pub fn role(&self) -> &'static str {
        match self {
            State::Standby { .. } => "standby",
            State::Promoting { .. } => "promoting",
            State::Primary { .. } => "primary",
            State::Fenced { .. } => "fenced",
        }
    }

    /// Why the node does not serve (`None` when it does), for answers and readiness.
    pub fn refusal(&self) -> Option<String> {
        match self {
            State::Primary { .. } => None,
            State::Standby { .. } => Some("standby: not serving until promoted".to_owned()),
            State::Promoting { trouble: None } => Some("promoting".to_owned()),
            State::Promoting {
                trouble: Some(trouble),
            } => Some(format!("promoting, held up by {trouble}")),
            State::Fenced { reason } => Some(format!("fenced: {reason}")),
        }
    }
}

/// Why a node cannot take its role.
#[derive(Debug, thiserror::Error)]
pub enum ReplicationError {
    #[error("replication: {0}")]
    Attach(#[from] AttachError),
    #[error("replication: {0}")]
    Server(#[from] ServerError),
}

/// The node's handle on its role: cheap to clone, read on every request.
#[derive(Clone)]
pub struct Replication {
    actor: Addr<ReplicationActor>,
    state: watch::Receiver<State>,
    wait: Duration,
}

impl Replication {
    /// Takes the configured role: a standby attaches its set first (and refuses a set that
    /// was promoted past its upstream).
    pub async fn open(settings: &Settings) -> Result<Self, ReplicationError> {
        let replication = &settings.replication;
        let timeout = Duration::from_millis(settings.store.redis_timeout_ms.max(1000));
        let initial = match replication.role {
            Role::Primary => State::Primary { epoch: None },
            Role::Standby => State::Standby { links: Vec::new() },
        };
        let mut pairs = Vec::new();
        for (own, upstream) in replication.pairs(&settings.store) {
            pairs.push(Pair {
                own: RedisServer::new(&own, timeout)?,
                upstream: RedisServer::new(&upstream, timeout)?,
            });
        }
        if replication.role == Role::Standby {
            promote::attach(&pairs).await?;
        }
        let (tx, state) = watch::channel(initial);
        let node = crate::range::node_name(&settings.node.server, &settings.node.port);
        let actor = ReplicationActor::new(pairs, node, replication.failover_timeout_ms, tx);
        Ok(Replication {
            actor: actor.start(),
            state,
            wait: Duration::from_secs(replication.promote_wait),
        })
    }

    pub fn state(&self) -> State {
        self.state.borrow().clone()
    }

    /// Waits until the node serves, promoting it first if it is a standby; `Err` with the
    /// reason when it is fenced. Unbounded: the caller bounds it ([`Replication::patience`]).
    pub async fn serve(&self) -> Result<(), String> {
        match self.state() {
            State::Primary { .. } => return Ok(()),
            fenced @ State::Fenced { .. } => return Err(fenced.refusal().unwrap_or_default()),
            State::Standby { .. } | State::Promoting { .. } => self.actor.do_send(Promote),
        }
        let mut state = self.state.clone();
        let settled = state
            .wait_for(|s| matches!(s, State::Primary { .. } | State::Fenced { .. }))
            .await;
        match settled.map(|s| s.refusal()) {
            Ok(None) => Ok(()),
            Ok(Some(refusal)) => Err(refusal),
            Err(_) => Err("the node's replication has stopped".to_owned()),
        }
    }

    /// How long a request waits for the node to serve (`replication.promote_wait`).
    pub fn patience(&self) -> Duration {
        self.wait
    }

    /// Waits until the node is primary (a standby: until promoted).
    pub async fn primary(&self) {
        let mut state = self.state.clone();
        let _ = state.wait_for(|s| matches!(s, State::Primary { .. })).await;
    }

    /// The store found a server demoted: the node stops serving.
    pub fn fence(&self, reason: String) {
        self.actor.do_send(Fence(reason));
    }

    /// Waits until the node is fenced.
    pub async fn fenced(&self) -> String {
        let mut state = self.state.clone();
        let fenced = state.wait_for(|s| matches!(s, State::Fenced { .. })).await;
        fenced.map_or_else(|_| String::new(), |s| s.refusal().unwrap_or_default())
    }
}

/// One server of the node's store and the replicas attached to it: the chain below it, as the
/// operators see it.
#[derive(Debug, Clone, Serialize)]
pub struct Chained {
    pub server: String,
    pub replicas: Vec<Replica>,
    /// Why its replicas could not be read.
    pub error: Option<String>,
}

/// Each of `servers` (Redis URLs, credentials kept out of the answer) with its replicas, read
/// with `INFO replication`, each bounded by `timeout`.
pub async fn chain(servers: &[String], timeout: Duration) -> Vec<Chained> {
    let mut seen: Vec<&String> = Vec::new();
    let distinct = servers.iter().filter(|url| {
        let new = !seen.contains(url);
        seen.push(url);
        new
    });
    let reads = distinct.map(|url| async move {
        let read = async { RedisServer::new(url, timeout)?.replicas().await };
        match read.await {
            Ok(replicas) => Chained {
                server: crate::config::redact(url),
                replicas,
                error: None,
            },
            Err(e) => Chained {
                server: crate::config::redact(url),
                replicas: Vec::new(),
                error: Some(e.to_string()),
            },
        }
    });
    futures_util::future::join_all(reads.collect::<Vec<_>>()).await
}
