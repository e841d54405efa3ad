//! `[replication]`: whether this node serves now (primary) or waits as a standby whose Redis
//! set replicates another's, and what it replicates.

use serde::{Deserialize, Serialize};

use super::{ConfigError, StoreSettings, check};
use crate::config::Backend;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Serves at once, over its Redis set as it is.
    #[default]
    Primary,
    /// Keeps its Redis set replicating `upstream_servers`, and serves once the first request
    /// that needs the store has promoted it.
    Standby,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReplicationSettings {
    pub role: Role,
    /// A standby's upstream for each of `store.redis_servers`, in the same order: the servers
    /// its own replicate (masters, or replicas themselves: a chain).
    pub upstream_servers: Vec<String>,
    /// A standby's upstream for `store.redis_transactions`, when that is a server of its own.
    pub upstream_transactions: Option<String>,
    /// Seconds a request waits for a promotion under way before it is answered `503`.
    pub promote_wait: u64,
    /// Milliseconds an upstream master is given to hand over (`FAILOVER … TIMEOUT`).
    pub failover_timeout_ms: u64,
    /// Replicas that must have each write (push, ack, ID block) before the client is told it
    /// succeeded (`WAIT`); 0: do not wait.
    pub sync_replicas: u32,
    /// Milliseconds to wait for them; past that the client gets a `503`.
    pub sync_timeout_ms: u64,
}

impl Default for ReplicationSettings {
    fn default() -> Self {
        ReplicationSettings {
            role: Role::Primary,
            upstream_servers: Vec::new(),
            upstream_transactions: None,
            promote_wait: 10,
            failover_timeout_ms: 5000,
            sync_replicas: 0,
            sync_timeout_ms: 500,
        }
    }
}

impl ReplicationSettings {
    /// Each server of the node's Redis set with its upstream (a standby's), transactions
    /// server included once.
    pub fn pairs(&self, store: &StoreSettings) -> Vec<(String, String)> {
        let mut pairs: Vec<(String, String)> = (store.redis_servers.iter().cloned())
            .zip(self.upstream_servers.iter().cloned())
            .collect();
        if let (Some(own), Some(upstream)) =
            (&store.redis_transactions, &self.upstream_transactions)
            && !pairs.iter().any(|(server, _)| server == own)
        {
            pairs.push((own.clone(), upstream.clone()));
        }
        pairs
    }

    pub(super) fn validate(&self, store: &StoreSettings) -> Result<(), ConfigError> {
        check(
            (1..=300).contains(&self.promote_wait),
            "replication.promote_wait",
            "must be from 1 to 300 seconds",
        )?;
        check(
            (100..=600_000).contains(&self.failover_timeout_ms),
            "replication.failover_timeout_ms",
            "must be from 100 to 600000",
        )?;
        check(
            self.sync_replicas <= 16,
            "replication.sync_replicas",
            "must be from 0 to 16",
        )?;
        // Redis answers WAIT only when it is over: the connection must wait longer.
        let waits = self.sync_replicas > 0;
        check(
            self.sync_timeout_ms >= 1 && (!waits || self.sync_timeout_ms < store.redis_timeout_ms),
            "replication.sync_timeout_ms",
            format!(
                "must be from 1 to below store.redis_timeout_ms ({})",
                store.redis_timeout_ms
            ),
        )?;
        check(
            self.sync_replicas == 0 || store.backend.is_shared(),
            "replication.sync_replicas",
            "needs a Redis store: the embedded store has no replicas",
        )?;
        // A cluster fails over by itself: roles and chains are for a set of servers.
        check(
            store.backend != Backend::RedisCluster || self.role == Role::Primary,
            "replication.role",
            "is for store.backend = \"redis\": a Redis Cluster promotes its replicas itself",
        )?;
        if self.role == Role::Primary {
            return check(
                self.upstream_servers.is_empty() && self.upstream_transactions.is_none(),
                "replication.upstream_servers",
                "is for role = \"standby\": a primary replicates nothing",
            );
        }
        check(
            store.backend == Backend::Redis,
            "replication.role",
            "standby needs store.backend = \"redis\": the embedded store has nothing to replicate",
        )?;
        check(
            self.upstream_servers.len() == store.redis_servers.len(),
            "replication.upstream_servers",
            format!(
                "must name one upstream per store.redis_servers entry ({}), not {}",
                store.redis_servers.len(),
                self.upstream_servers.len()
            ),
        )?;
        let own_transactions =
            (store.redis_transactions.as_ref()).is_some_and(|t| !store.redis_servers.contains(t));
        check(
            own_transactions == self.upstream_transactions.is_some(),
            "replication.upstream_transactions",
            "must be set exactly when store.redis_transactions is a server of its own",
        )?;
        for (server, upstream) in self.pairs(store) {
            check(
                server != upstream,
                "replication.upstream_servers",
                format!("{server} cannot be its own upstream"),
            )?;
        }
        Ok(())
    }
}
