//! Customer IDs (`/getuniversalid`): unique across the whole cloud, never 0, never issued twice.
//!
//! The pool of unused IDs lives in the range master's store (seeded once from `[ranges]`). One
//! node at a time acts as range master: the holder of a lease in that store, which the
//! configured master takes first and any node of its region takes over when the master stops
//! renewing it. Only the holder cuts blocks, and the store checks the lease in the same atomic
//! step as the cut. See [`master`].
//!
//! Every node runs a [`client`]: it keeps its blocks in the store, hands IDs out of a small
//! batch taken from them (so a crash wastes at most that batch, never repeats an ID), and asks
//! for its next block while it still has IDs left.

pub mod admin;
pub mod client;
pub mod master;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use serde::Serialize;
use tokio::sync::oneshot;
use tracing::{info, warn};

use crate::cluster::Cluster;
use crate::config::RangeSettings;
use crate::model::Location;
pub use crate::model::{IdRange, PoolCut};
use crate::store::{Store, StoreError, StoreResult};
use client::{NextId, RangeClient};
use master::{Cut, RangeMaster};

/// Why no ID or block could be had.
#[derive(Debug, Clone, thiserror::Error)]
pub enum IdError {
    #[error("no customer IDs left: the pool is exhausted")]
    Exhausted,
    #[error("this region holds no customer-ID pool")]
    NoPool,
    /// Another node holds the range master's lease (`server/port`, if known).
    #[error("this node is not the range master{}", .0.as_ref().map(|h| format!(" ({h} is)")).unwrap_or_default())]
    NotMaster(Option<String>),
    #[error("the range master cannot be reached: {0}")]
    Unreachable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where a node gets its next block: the pool through its own [`RangeMaster`] when its region
/// holds it, else the configured master over HTTP.
#[derive(Clone)]
pub struct BlockSource {
    me: String,
    store: Arc<dyn Store>,
    master: Addr<RangeMaster>,
    cluster: Cluster,
    /// The configured master's `server` and instance id; none when it is this node.
    remote_master: Option<(String, String)>,
}

/// `server/port` as (server, port).
fn parse_node(name: &str) -> Option<(&str, &str)> {
    name.rsplit_once('/')
}

impl BlockSource {
    /// A block of up to `size` IDs for this node.
    pub async fn fetch(&self, size: u64) -> Result<IdRange, IdError> {
        if self.store.pool().await?.is_some() {
            return self.cut(size, false).await;
        }
        let (server, port) = self.remote_master.as_ref().ok_or(IdError::NoPool)?;
        let peers = self
            .cluster
            .peers()
            .ok_or_else(|| IdError::Unreachable("[cluster] secret is not set".to_owned()))?;
        // The master itself; failing that, any node of its region (its front proxy picks one).
        match peers.range(server, Some(port), size, false).await {
            Ok(block) => Ok(block),
            Err(first) => {
                warn!(error = %first, "range master unreachable; asking its region");
                peers
                    .range(server, None, size, false)
                    .await
                    .map_err(|e| IdError::Unreachable(format!("{first}; then {e}")))
            }
        }
    }

    /// Cuts a block from this region's pool: here if this node holds the lease, else at the
    /// holder (unless the call was already forwarded once).
    pub async fn cut(&self, size: u64, forwarded: bool) -> Result<IdRange, IdError> {
        let cut = self
            .master
            .send(Cut { size })
            .await
            .map_err(|e| IdError::Unreachable(e.to_string()))?;
        match cut {
            Err(IdError::NotMaster(Some(holder))) if !forwarded && holder != self.me => {
                let (server, port) = parse_node(&holder)
                    .ok_or_else(|| IdError::Unreachable(format!("bad holder {holder:?}")))?;
                let peers = self.cluster.peers().ok_or_else(|| {
                    IdError::Unreachable("[cluster] secret is not set".to_owned())
                })?;
                peers
                    .range(server, Some(port), size, true)
                    .await
                    .map_err(|e| IdError::Unreachable(e.to_string()))
            }
            other => other,
        }
    }
}

/// The pool, the lease holder and every node's blocks, for `GET /admin/ranges`.
#[derive(Debug, Serialize)]
pub struct Overview {
    pub pool: Option<IdRange>,
    pub master: Option<String>,
    pub blocks: BTreeMap<String, Vec<IdRange>>,
}

/// The node's customer-ID service: the facade handlers use.
#[derive(Clone)]
pub struct Ranges {
    client: Addr<RangeClient>,
    master: Addr<RangeMaster>,
    source: BlockSource,
    store: Arc<dyn Store>,
    block_size: u64,
}

impl Ranges {
    /// Seeds the pool if this node is the configured master and the store has none, and starts
    /// the node's range master and client.
    pub async fn start(
        here: &Location,
        settings: &RangeSettings,
        master: Option<(&str, &str)>,
        store: Arc<dyn Store>,
        cluster: Cluster,
    ) -> Self {
        let me = node_name(&here.host, &here.port);
        let is_master = master.is_none_or(|(s, p)| s == here.host && p == here.port);
        if is_master {
            let pool = IdRange {
                from: settings.from,
                to: settings.to,
            };
            match store.pool_seed(pool, false).await {
                Ok(true) => info!(%pool, "customer-ID pool seeded"),
                Ok(false) => {}
                Err(e) => warn!(error = %e, "cannot seed the customer-ID pool"),
            }
        }
        let lease = Duration::from_secs_f64(settings.lease);
        let range_master =
            RangeMaster::new(me.clone(), Arc::clone(&store), lease, is_master).start();
        let source = BlockSource {
            me: me.clone(),
            store: Arc::clone(&store),
            master: range_master.clone(),
            cluster,
            remote_master: master
                .filter(|_| !is_master)
                .map(|(s, p)| (s.to_owned(), p.to_owned())),
        };
        // Long enough for the lease to change hands (it runs out, and the others' head start
        // too), plus one call to the new holder.
        let patience = lease * 2 + source.cluster.call_timeout();
        let client = RangeClient::new(
            me,
            Arc::clone(&store),
            source.clone(),
            settings.range_size,
            patience,
        )
        .start();
        Ranges {
            client,
            master: range_master,
            source,
            store,
            block_size: settings.range_size,
        }
    }

    /// A new customer ID, never issued before.
    pub async fn next_id(&self) -> Result<u64, IdError> {
        let (reply, answer) = oneshot::channel();
        self.client.do_send(NextId { reply });
        answer
            .await
            .unwrap_or_else(|_| Err(IdError::Unreachable("the node is stopping".to_owned())))
    }

    /// How many customer IDs this node can still hand out from its blocks (`None` when its
    /// client is gone: the node is stopping).
    pub async fn left(&self) -> Option<u64> {
        self.client.send(client::Left).await.ok()
    }

    /// The block size a node asks for when a call names none.
    pub fn block_size(&self) -> u64 {
        self.block_size
    }

    /// `/range`: a block of `size` IDs for another node.
    pub async fn serve_block(&self, size: u64, forwarded: bool) -> Result<IdRange, IdError> {
        if self.store.pool().await?.is_none() {
            return Err(IdError::NoPool);
        }
        self.source.cut(size, forwarded).await
    }

    pub async fn overview(&self) -> StoreResult<Overview> {
        Ok(Overview {
            pool: self.store.pool().await?,
            master: self.master.send(master::Holder).await.ok().flatten(),
            blocks: self.store.blocks().await?,
        })
    }
}

/// How a node names itself as a lease holder and a block owner: `server/port`.
pub fn node_name(server: &str, port: &str) -> String {
    format!("{server}/{port}")
}
