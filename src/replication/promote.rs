//! Attaching a standby's Redis set to its upstreams, and promoting it. Both are safe to repeat
//! and to run from several nodes over one set at once: each step looks at a server's role
//! before it changes it, and never demotes a server that is master already.

use std::time::{Duration, Instant};

use super::server::{Link, RedisServer, ServerError, ServerRole};

/// A server of the node's set and the one it replicates.
#[derive(Debug, Clone)]
pub struct Pair {
    pub own: RedisServer,
    pub upstream: RedisServer,
}

/// Why a standby's set cannot be attached: the node must not start.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error(
        "{own} holds epoch {own_epoch} but its upstream {upstream} holds {upstream_epoch}: {own} \
         was promoted after {upstream} was its master, and attaching it would wipe every write \
         since. Make {upstream} replicate {own} instead (swap them in the settings), or empty \
         {own} by hand if its data is not wanted"
    )]
    Stale {
        own: String,
        upstream: String,
        own_epoch: u64,
        upstream_epoch: u64,
    },
    #[error(
        "{own} is a master and its upstream cannot be read ({reason}): its epoch cannot be \
         compared, so it is not attached (attaching it to a server that lags behind it would \
         wipe its data)"
    )]
    Unknown { own: String, reason: String },
    #[error(
        "{upstream} replicates {own}: {own} was promoted and is the chain's head now. Make this \
         node's settings name {own} as the upstream of another server, or run this node as \
         a primary"
    )]
    Reversed { own: String, upstream: String },
    #[error(transparent)]
    Server(#[from] ServerError),
}

/// Makes each server of a standby's set replicate its upstream, unless it already does.
pub async fn attach(pairs: &[Pair]) -> Result<(), AttachError> {
    for Pair { own, upstream } in pairs {
        let role = own.role().await?;
        if own.replicates(&role, upstream) {
            continue;
        }
        if let Ok(ServerRole::Replica { host, port, .. }) = upstream.role().await
            && own.is(&host, port)
        {
            return Err(AttachError::Reversed {
                own: own.name.clone(),
                upstream: upstream.name.clone(),
            });
        }
        let own_epoch = own.epoch().await?;
        let upstream_epoch = match upstream.epoch().await {
            Ok(epoch) => epoch,
            Err(e) => {
                return Err(AttachError::Unknown {
                    own: own.name.clone(),
                    reason: e.to_string(),
                });
            }
        };
        if upstream_epoch < own_epoch {
            return Err(AttachError::Stale {
                own: own.name.clone(),
                upstream: upstream.name.clone(),
                own_epoch,
                upstream_epoch,
            });
        }
        own.replicate(upstream).await?;
        tracing::info!(server = %own.name, upstream = %upstream.name, "replicating");
    }
    Ok(())
}

/// Each server's link to its upstream.
pub async fn links(pairs: &[Pair]) -> Vec<Link> {
    let mut links = Vec::with_capacity(pairs.len());
    for Pair { own, upstream } in pairs {
        match own.link(&upstream.name).await {
            Ok(link) => links.push(link),
            Err(e) => links.push(Link {
                server: e.server,
                upstream: upstream.name.clone(),
                up: false,
                offset: 0,
                last_heard: None,
            }),
        }
    }
    links
}

/// Promotes every server of the set, then raises the epoch on those this call promoted.
/// Returns the set's epoch (the highest of its servers').
pub async fn promote(pairs: &[Pair], node: &str, failover_ms: u64) -> Result<u64, ServerError> {
    let mut promoted = Vec::new();
    for pair in pairs {
        if let Some(before) = promote_one(pair, failover_ms).await? {
            promoted.push((&pair.own, before));
        }
    }
    let mut epoch = 0;
    for (own, before) in promoted {
        let (now, raised) = own.raise_epoch(before, node).await?;
        if raised {
            tracing::info!(server = %own.name, epoch = now, "promoted");
        }
        epoch = epoch.max(now);
    }
    for Pair { own, .. } in pairs {
        epoch = epoch.max(own.epoch().await?);
    }
    Ok(epoch)
}

/// Makes `pair.own` a master: by a coordinated `FAILOVER` when its upstream answers as its
/// master (the old master waits for it to catch up and becomes its replica), by
/// `REPLICAOF NO ONE` when the upstream cannot be reached. `None` when it was master already
/// (another node of the set, or an earlier attempt, promoted it); else the epoch it held.
async fn promote_one(pair: &Pair, failover_ms: u64) -> Result<Option<u64>, ServerError> {
    let Pair { own, upstream } = pair;
    let role = own.role().await?;
    if role == ServerRole::Master {
        return Ok(None);
    }
    let before = own.epoch().await?;
    match upstream.role().await {
        Ok(ServerRole::Master) if own.replicates(&role, upstream) => {
            upstream.failover_to(own, failover_ms).await?;
            wait_for_master(own, Duration::from_millis(failover_ms + 1000)).await?;
        }
        Ok(ServerRole::Master) => {
            return Err(own_error(
                own,
                format!("it does not replicate its upstream {}", upstream.name),
            ));
        }
        Ok(ServerRole::Replica { host, port, .. }) => {
            return Err(own_error(
                own,
                format!(
                    "its upstream {} answers, as a replica of {host}:{port}: promote that chain \
                     from its head first",
                    upstream.name
                ),
            ));
        }
        Err(gone) => {
            tracing::warn!(server = %own.name, upstream = %gone, "upstream unreachable: taking over without it");
            own.detach().await?;
        }
    }
    Ok(Some(before))
}

async fn wait_for_master(own: &RedisServer, within: Duration) -> Result<(), ServerError> {
    let started = Instant::now();
    while own.role().await? != ServerRole::Master {
        if started.elapsed() > within {
            return Err(own_error(
                own,
                "the failover did not make it master in time",
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

fn own_error(own: &RedisServer, reason: impl ToString) -> ServerError {
    ServerError {
        server: own.name.clone(),
        reason: reason.to_string(),
    }
}
