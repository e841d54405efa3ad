//! [`Delivery`]: messages taken from a queue for one consumer, on their way to it. Dropped
//! uncommitted, it puts them back at the head of their queue as `Pending`.

use std::future::Future;
use std::time::Duration;

use actix::prelude::*;
use futures_util::future::join_all;
use tracing::debug;

use super::ShardActor;
use super::messages::PutBack;
use crate::callbacks::{Callbacks, DeliveredEvent};
use crate::model::{Answered, Mark, Message, QueueName, QueuedRef};
use crate::stats::counters;

/// The longest a consumer waits for the answers to the pushes whose messages it has. A reply is
/// written in microseconds; one that is not after this long (its client sends but does not
/// read) must not hold the messages back for good.
pub(super) const ANSWER_WAIT_LIMIT: Duration = Duration::from_secs(1);

/// Messages taken from a queue for one consumer. Dropping it uncommitted puts them back at the
/// head of their queue, as `Pending`.
#[derive(Debug)]
pub struct Delivery {
    pub(super) items: Vec<Taken>,
    /// Where they came from; `None` for an empty delivery.
    pub(super) home: Option<Home>,
}

/// The shard and queue a delivery came from, how its take marked it, and who hears of it once
/// committed.
#[derive(Clone)]
pub(super) struct Home {
    pub(super) shard: Addr<ShardActor>,
    pub(super) queue: QueueName,
    pub(super) mark: Mark,
    pub(super) callbacks: Callbacks,
}

impl std::fmt::Debug for Home {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (f.debug_struct("Home"))
            .field("queue", &self.queue)
            .field("mark", &self.mark)
            .finish()
    }
}

/// One taken message, with where it goes back to (`None` when it had expired: it never goes
/// back), the URL to tell of its delivery, and, for a push made here whose producer does not
/// have its answer yet, the gate that answer opens.
#[derive(Debug)]
pub(super) struct Taken {
    pub(super) message: Message,
    pub(super) queued: Option<QueuedRef>,
    pub(super) callback: Option<String>,
    pub(super) unanswered: Option<Answered>,
}

impl Delivery {
    /// Nothing arrived in time.
    pub fn empty() -> Self {
        Delivery {
            items: Vec::new(),
            home: None,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.items.len()
    }

    /// Keeps the first `at` messages and returns the rest as a delivery of its own.
    pub(super) fn split_off(&mut self, at: usize) -> Delivery {
        Delivery {
            items: self.items.split_off(at.min(self.items.len())),
            home: self.home.clone(),
        }
    }

    /// Takes `other`'s messages after these.
    pub(super) fn append(&mut self, mut other: Delivery) {
        self.items.append(&mut other.items);
    }

    /// Resolves once the producers of these messages have had their answers (see
    /// [`crate::model::answered`]), or after `ANSWER_WAIT_LIMIT`. A consumer on this node
    /// awaits it before it writes them: pushed here, a message must not reach its consumer
    /// before the push's answer reaches the producer.
    pub fn answered(&self) -> impl Future<Output = ()> + use<> {
        let gates: Vec<Answered> = (self.items.iter())
            .filter_map(|t| t.unanswered.clone())
            .collect();
        async move {
            if !gates.is_empty() {
                let all = join_all(gates.iter().map(Answered::opened));
                let _ = tokio::time::timeout(ANSWER_WAIT_LIMIT, all).await;
            }
        }
    }

    /// The messages, before the consumer commits to them.
    pub fn messages(&self) -> impl Iterator<Item = &Message> {
        self.items.iter().map(|t| &t.message)
    }

    /// The consumer has the messages: from now on they are its responsibility. Each one's
    /// delivery callback is called (in the background).
    pub fn commit(mut self) -> Vec<Message> {
        let items = std::mem::take(&mut self.items);
        counters().popped.add(items.len() as u64);
        if let Some(home) = &self.home {
            for t in &items {
                if let Some(url) = &t.callback {
                    let event = DeliveredEvent::new(t.message.tx.as_str(), home.queue.id(), url);
                    home.callbacks.delivered(event);
                }
            }
        }
        items.into_iter().map(|t| t.message).collect()
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        let refs: Vec<QueuedRef> = self.items.drain(..).filter_map(|t| t.queued).collect();
        if let (false, Some(home)) = (refs.is_empty(), &self.home) {
            debug!(queue = %home.queue, count = refs.len(), "delivery abandoned; putting messages back");
            home.shard.do_send(PutBack {
                queue: home.queue.clone(),
                refs,
            });
        }
    }
}
