//! The operators' look into the queues on Redis: found with `SCAN` (never `KEYS`, which
//! blocks a server for as long as it has keys), a bounded number of keys per call.
//!
//! One concern of the backend, split out of its module: it uses the module's types and helpers
//! as its own.

use super::server::Link;
use super::*;

/// Keys a `SCAN` step asks for.
const SCAN_STEP: usize = 1000;

/// Keys examined, at most, for each queue of the budget: a set whose keys are mostly not
/// queues (transactions, their states) would otherwise be scanned to its end to fill it.
const KEYS_PER_QUEUE: usize = 20;

impl RedisStore {
    /// Where queues are: each server of a set (the transactions' may hold none), or each shard
    /// of a cluster (looked for on its slot's master, by its tag).
    fn queue_servers(&self) -> Vec<&Server> {
        if matches!(self.shard(0).link, Link::Cluster(_)) {
            return self.shards.iter().collect();
        }
        (self.servers().into_iter())
            .filter(|server| self.shards.iter().any(|shard| shard.name == server.name))
            .collect()
    }
}

#[async_trait]
impl Survey for RedisStore {
    async fn deepest(&self, top: usize, budget: usize) -> StoreResult<Deepest> {
        let (mut depths, mut complete) = (Vec::new(), true);
        for server in self.queue_servers() {
            let (found, whole) = queues_on(server, budget - depths.len()).await?;
            depths.extend(lengths(server, found).await?);
            if !whole {
                complete = false;
                break;
            }
        }
        Ok(Deepest {
            looked_at: depths.len(),
            queues: deepest_of(depths, top),
            complete,
        })
    }

    async fn depth(&self, shard: ShardId, queue: &QueueName) -> StoreResult<QueueDepth> {
        let depths = lengths(self.shard(shard), vec![queue.key().to_owned()]).await?;
        Ok(depths
            .into_iter()
            .next()
            .expect("one queue asked, one answered"))
    }

    async fn purge(&self, shard: ShardId, queue: &QueueName) -> StoreResult<u64> {
        let server = self.shard(shard);
        let keys = &server.keys;
        let (high, low) = (
            keys.list(queue, Priority::High),
            keys.list(queue, Priority::Low),
        );
        let mut pipe = ::redis::pipe();
        pipe.atomic()
            .llen(&high)
            .llen(&low)
            .del(&[&high, &low])
            .ignore();
        let (h, l): (u64, u64) = server.multi(&pipe, self.recovery).await?;
        Ok(h + l)
    }
}

/// The queue keys on `server`, up to `budget` of them, examining at most [`KEYS_PER_QUEUE`]
/// keys for each; whether that was all.
async fn queues_on(server: &Server, budget: usize) -> StoreResult<(Vec<String>, bool)> {
    let mut found = std::collections::BTreeSet::new();
    let mut cursor = 0u64;
    let steps = (budget * KEYS_PER_QUEUE).div_ceil(SCAN_STEP).max(1);
    for _ in 0..steps {
        let mut scan = ::redis::cmd("SCAN");
        scan.arg(cursor).arg("MATCH").arg(server.keys.lists());
        scan.arg("COUNT").arg(SCAN_STEP).arg("TYPE").arg("list");
        let (next, lists): (u64, Vec<String>) = server.on_master(scan).await?;
        for list in &lists {
            if let Some(queue) = server.keys.queue_of_list(list) {
                if found.len() == budget && !found.contains(queue) {
                    return Ok((found.into_iter().collect(), false));
                }
                found.insert(queue.to_owned());
            }
        }
        if next == 0 {
            return Ok((found.into_iter().collect(), true));
        }
        cursor = next;
    }
    Ok((found.into_iter().collect(), false))
}

/// Each queue's depths, in one pipeline.
async fn lengths(server: &Server, queues: Vec<String>) -> StoreResult<Vec<QueueDepth>> {
    if queues.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = ::redis::pipe();
    for queue in &queues {
        pipe.llen(server.keys.list_of(queue, Priority::High))
            .llen(server.keys.list_of(queue, Priority::Low));
    }
    let lengths: Vec<u64> = server.pipeline(&pipe).await?;
    Ok((queues.into_iter().zip(lengths.chunks(2)))
        .map(|(name, n)| QueueDepth {
            name,
            high: n[0],
            low: n[1],
        })
        .collect())
}
