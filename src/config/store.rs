//! `[store]`: the embedded store or the Redis servers, and how they are used.

use serde::{Deserialize, Serialize};

use super::{ConfigError, check};
use crate::model::QueueHash;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Embedded, in this process's memory: no set-up, not durable, one node.
    Memory,
    /// Redis servers: durable, shared by every node, sharded.
    Redis,
    /// A Redis Cluster: durable, shared, grown and failed over by the cluster itself.
    #[serde(rename = "redis-cluster")]
    RedisCluster,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Memory => "memory",
            Backend::Redis => "redis",
            Backend::RedisCluster => "redis-cluster",
        }
    }

    /// Whether every node of a region shares this store (and its statistics, customer IDs…).
    pub fn is_shared(self) -> bool {
        self != Backend::Memory
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSettings {
    pub backend: Backend,
    /// Partitions of the embedded store, or of a Redis Cluster (each a hash tag: a slot), each
    /// served by its own shard actor.
    pub shards: usize,
    /// Seconds between sweeps that drop expired transactions and queue entries.
    pub sweep_interval: u64,
    /// How a queue's id picks its shard: `crc16` (Redis Cluster's slots, shards as ranges
    /// of them) or `popbox` (PopBox's character sum, for a Redis set a PopBox wrote).
    pub queue_hash: QueueHash,
    /// Redis: the queue shards, in order (the order decides where each queue lives).
    pub redis_servers: Vec<String>,
    /// Redis Cluster: some of its nodes (the others are found from them).
    pub redis_cluster: Vec<String>,
    /// Redis: one server for every transaction and the region's records (PopBox's layout).
    /// Default: each transaction on the server its id hashes to, the region's records on the
    /// first.
    pub redis_transactions: Option<String>,
    /// Redis: how long to wait for a connection or an answer before a request fails with 503.
    pub redis_timeout_ms: u64,
    /// Redis: seconds a take or put-back cut off by an outage is retried (its outcome is
    /// unknown until it runs again), so that no message is lost to a Redis restart.
    pub redis_recovery: u64,
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings {
            backend: Backend::Memory,
            shards: 16,
            sweep_interval: 30,
            queue_hash: QueueHash::default(),
            redis_servers: vec!["redis://127.0.0.1:6379/0".to_owned()],
            redis_cluster: Vec::new(),
            redis_transactions: None,
            redis_timeout_ms: 1000,
            redis_recovery: 30,
        }
    }
}

impl StoreSettings {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        check(
            (1..=1024).contains(&self.shards),
            "store.shards",
            format!("must be from 1 to 1024, not {}", self.shards),
        )?;
        for url in (self.redis_servers.iter())
            .chain(&self.redis_transactions)
            .chain(&self.redis_cluster)
        {
            check(
                ["redis://", "rediss://", "unix://", "redis+unix://"]
                    .iter()
                    .any(|s| url.starts_with(s)),
                "store.redis_servers",
                format!("entries must be redis:// URLs, not {url:?}"),
            )?;
        }
        check(
            self.backend != Backend::Redis || !self.redis_servers.is_empty(),
            "store.redis_servers",
            "must name at least one server when store.backend = \"redis\"",
        )?;
        if self.backend == Backend::RedisCluster {
            check(
                !self.redis_cluster.is_empty(),
                "store.redis_cluster",
                "must name at least one node of the cluster when store.backend = \"redis-cluster\"",
            )?;
            check(
                self.redis_transactions.is_none(),
                "store.redis_transactions",
                "is for store.backend = \"redis\": a cluster spreads transactions over its slots",
            )?;
        }
        check(
            self.redis_timeout_ms >= 10,
            "store.redis_timeout_ms",
            "must be at least 10",
        )?;
        check(
            self.sweep_interval >= 1,
            "store.sweep_interval",
            "must be at least 1 second",
        )
    }
}

/// `url` without its credentials, for messages and logs: `redis://:secret@host:6379/0` →
/// `redis://host:6379/0`.
pub fn redact(url: &str) -> String {
    match (url.split_once("://"), url.rsplit_once('@')) {
        (Some((scheme, _)), Some((_, host))) => format!("{scheme}://{host}"),
        _ => url.to_owned(),
    }
}
