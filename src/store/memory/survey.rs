//! The operators' look into the embedded store's queues.
//!
//! One concern of the backend, split out of its module: it uses the module's types and helpers
//! as its own.

use super::*;

#[async_trait]
impl Survey for MemoryStore {
    async fn deepest(&self, top: usize, budget: usize) -> StoreResult<Deepest> {
        let (mut depths, mut complete) = (Vec::new(), true);
        'shards: for shard in 0..self.queues.len() {
            for (name, data) in self.queues(shard).iter() {
                if depths.len() == budget {
                    complete = false;
                    break 'shards;
                }
                depths.push(QueueDepth {
                    name: name.key().to_owned(),
                    high: data.high.len() as u64,
                    low: data.low.len() as u64,
                });
            }
        }
        Ok(Deepest {
            looked_at: depths.len(),
            queues: deepest_of(depths, top),
            complete,
        })
    }

    async fn depth(&self, shard: ShardId, queue: &QueueName) -> StoreResult<QueueDepth> {
        let queues = self.queues(shard);
        let data = queues.get(queue);
        Ok(QueueDepth {
            name: queue.key().to_owned(),
            high: data.map_or(0, |d| d.high.len() as u64),
            low: data.map_or(0, |d| d.low.len() as u64),
        })
    }

    async fn purge(&self, shard: ShardId, queue: &QueueName) -> StoreResult<u64> {
        let mut queues = self.queues(shard);
        let Some(data) = queues.get_mut(queue) else {
            return Ok(0);
        };
        let purged = data.high.len() + data.low.len();
        data.high.clear();
        data.low.clear();
        Ok(purged as u64)
    }
}
