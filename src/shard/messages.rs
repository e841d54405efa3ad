//! What the shard is told (waits, pushes, store operations, shutdown) and what it tells its
//! waiters.

use std::future::Future;
use std::sync::Arc;

use actix::prelude::*;
use futures_util::future::BoxFuture;

use super::Delivery;
use crate::model::{Answered, Mark, NewTransaction, QueueName, QueuedRef, TxId};
use crate::store::{ShardId, Store, StoreError, StoreResult};

/// What the shard tells a waiter.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub enum WaiterNotice {
    /// Messages for you.
    Deliver(Delivery),
    /// The node is shutting down: answer your client with nothing.
    Release,
    /// The store failed while serving you.
    Fail(StoreError),
}

/// A consumer waiting for messages on one queue.
pub struct Waiter {
    pub id: u64,
    pub max: usize,
    pub mark: Mark,
    /// A subscription's (else a pop's).
    pub subscription: bool,
    pub notify: Recipient<WaiterNotice>,
}

/// Register a waiter. The shard notifies it exactly once, unless it is cancelled first, and
/// takes it out of the registry before it does.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Wait {
    pub queue: QueueName,
    pub waiter: Waiter,
}

/// The waiter `id` no longer waits (timed out, or its client went away).
#[derive(Message)]
#[rtype(result = "()")]
pub struct CancelWait {
    pub queue: QueueName,
    pub id: u64,
}

/// A long-lived consumer (a subscription) starts (`true`) or stops (`false`) counting in the
/// queue's `blocked`, whether or not it is waiting at the moment.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Hold {
    pub queue: QueueName,
    pub on: bool,
}

/// Put references back at the head of their queue, as `Pending`.
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct PutBack {
    pub(super) queue: QueueName,
    pub(super) refs: Vec<QueuedRef>,
}

/// Push a transaction into queues of this shard; with `create`, store the transaction first
/// (one message and, where the backend allows, one store round trip for both). Answers the id
/// of the transaction pushed: `tx.id`, or the one an earlier provisioning with the same
/// idempotency key made (see [`crate::store::Queues::provision`]).
#[derive(Message)]
#[rtype(result = "StoreResult<TxId>")]
pub struct Push {
    pub tx: Arc<NewTransaction>,
    pub queues: Vec<QueueName>,
    pub create: bool,
    /// Opens once the producer has its answer: deliveries of the message carry it, and their
    /// consumers on this node wait for it before they write.
    pub answered: Option<Answered>,
}

/// One store operation run by the shard that owns the data, for operations that need no
/// waiter bookkeeping (transactions, peeks, queue state). Its result type is the operation's.
pub struct Run<R>(pub(super) StoreOp<R>);

type StoreOp<R> =
    Box<dyn FnOnce(Arc<dyn Store>, ShardId) -> BoxFuture<'static, StoreResult<R>> + Send>;

impl<R> Run<R> {
    pub fn new<F, Fut>(op: F) -> Self
    where
        F: FnOnce(Arc<dyn Store>, ShardId) -> Fut + Send + 'static,
        Fut: Future<Output = StoreResult<R>> + Send + 'static,
    {
        Run(Box::new(move |store, shard| Box::pin(op(store, shard))))
    }
}

impl<R: 'static> actix::Message for Run<R> {
    type Result = StoreResult<R>;
}

/// `Closing(true)`: answer every waiter with nothing, and every new wait at once (the node is
/// going down, or draining). `Closing(false)`: take waits again (the drain is over).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Closing(pub bool);

/// The waiters registered now, for the operators (`GET /admin/connections`).
#[derive(Message)]
#[rtype(result = "Vec<WaiterView>")]
pub struct ListWaiters;

/// A waiter as the operators see it.
#[derive(Debug, Clone)]
pub struct WaiterView {
    pub id: u64,
    pub queue: QueueName,
    pub subscription: bool,
    pub reliable: bool,
    pub max: usize,
    /// When it began waiting (Unix milliseconds); a subscription waits anew after each message.
    pub since: i64,
}
