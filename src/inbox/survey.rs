//! What the operators see of the inbox: the waiters this node holds, the deepest queues, one
//! queue in detail, and purging one.

use futures_util::future::join_all;

use super::{Inbox, InboxError, QueueName};
use crate::model::unix_now_ms;
use crate::shard::{ListWaiters, WaiterView};
use crate::store::{Deepest, QueueDepth};

/// One queue as an operator sees it.
#[derive(Debug, Clone)]
pub struct QueueDetail {
    pub depth: QueueDepth,
    /// Consumers waiting on it, on this node.
    pub waiting_here: usize,
    /// Whether any node has a consumer waiting on it.
    pub blocked: bool,
    /// Unix seconds of its last pop, if it had one.
    pub last_pop: Option<i64>,
    /// How long its next message (of the higher priority that has one) has been stored, in
    /// milliseconds: from its transaction's first history line.
    pub oldest_ms: Option<i64>,
}

impl Inbox {
    /// Every consumer waiting on this node's shards, oldest registration first.
    pub async fn waiters(&self) -> Vec<WaiterView> {
        let asked = join_all(self.shards.iter().map(|shard| shard.send(ListWaiters))).await;
        let mut waiters: Vec<WaiterView> = asked.into_iter().flatten().flatten().collect();
        waiters.sort_by_key(|w| w.id);
        waiters
    }

    /// The `top` deepest queues among the first `budget` the store looks at.
    pub async fn deepest(&self, top: usize, budget: usize) -> Result<Deepest, InboxError> {
        self.run(&self.shards[0], move |store, _| async move {
            store.deepest(top, budget).await
        })
        .await
    }

    pub async fn queue_detail(&self, queue: QueueName) -> Result<QueueDetail, InboxError> {
        let q = queue.clone();
        let (depth, info) = self
            .run(self.queue_shard(&queue), move |store, shard| async move {
                Ok((
                    store.depth(shard, &q).await?,
                    store.queue_info(shard, &q, 1).await?,
                ))
            })
            .await?;
        let next = info.high.first().or(info.low.first());
        let oldest_ms = match next {
            Some(id) => (self.history(id).await?.first())
                .map(|first| unix_now_ms().saturating_sub(first.at)),
            None => None,
        };
        // Only the queue's own shard registers its waiters.
        let registered = self.queue_shard(&queue).send(ListWaiters).await;
        let waiting_here = (registered.unwrap_or_default().iter())
            .filter(|w| w.queue == queue)
            .count();
        Ok(QueueDetail {
            depth,
            waiting_here,
            blocked: info.blocked,
            last_pop: info.last_pop,
            oldest_ms,
        })
    }

    /// Empties `queue`; answers how many entries it had.
    pub async fn purge(&self, queue: QueueName) -> Result<u64, InboxError> {
        self.run(self.queue_shard(&queue), move |store, shard| async move {
            store.purge(shard, &queue).await
        })
        .await
    }
}
