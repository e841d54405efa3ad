//! How the shard handles each message it is sent.

use std::sync::Arc;

use actix::prelude::*;
use futures_util::FutureExt;
use futures_util::future::LocalBoxFuture;
use tracing::warn;

use super::messages::{
    CancelWait, Closing, Hold, ListWaiters, Push, PutBack, Run, Wait, WaiterNotice, WaiterView,
};
use super::{Registered, ShardActor};
use crate::model::{Mark, QueueName, TxId, unix_now_ms};
use crate::store::{StoreError, StoreResult};

impl Handler<Wait> for ShardActor {
    type Result = ();

    /// The waiter joins the registry before its first take is sent, so a push that lands
    /// meanwhile (announced or not) is seen by a later take: no look is ever missed.
    fn handle(&mut self, msg: Wait, ctx: &mut Self::Context) {
        if self.closing {
            msg.waiter.notify.do_send(WaiterNotice::Release);
            return;
        }
        if self.unreachable {
            // Refused at once: waiting would only sit out a take retrying through the outage.
            let shard = self.store.shard_name(self.id);
            let reason = "the server is unreachable; reconnecting".to_owned();
            msg.waiter
                .notify
                .do_send(WaiterNotice::Fail(StoreError::Unavailable {
                    shard,
                    reason,
                }));
            return;
        }
        let registered = Registered {
            waiter: msg.waiter,
            counted: false,
            looked: false,
            since: unix_now_ms(),
        };
        let waiters = &mut self.queues.entry(msg.queue.clone()).or_default().waiters;
        // Most queues have one waiter (a device's own inbox): room for exactly one, not the
        // four a first push would make, is some 170 bytes less per held poll.
        if waiters.capacity() == 0 {
            waiters.reserve_exact(1);
        }
        waiters.push_back(registered);
        self.drain(msg.queue, ctx);
    }
}

impl Handler<CancelWait> for ShardActor {
    type Result = ();

    fn handle(&mut self, msg: CancelWait, _ctx: &mut Self::Context) {
        let Some(entry) = self.queues.get_mut(&msg.queue) else {
            return;
        };
        let Some(at) = entry.waiters.iter().position(|r| r.waiter.id == msg.id) else {
            return;
        };
        let left = entry.waiters.remove(at).expect("found above");
        let mut count_out = left.counted;
        if let Some(flight) = entry.in_flight.as_mut().filter(|f| f.carries(msg.id)) {
            // Whether its take counts it in or out is known when the take lands.
            flight.left.push(msg.id);
            count_out = false;
        }
        if entry.waiters.is_empty() && entry.in_flight.is_none() {
            self.untrack(&msg.queue);
        }
        if count_out {
            self.waiter_left(&msg.queue);
        }
    }
}

impl Handler<Hold> for ShardActor {
    type Result = ();

    fn handle(&mut self, msg: Hold, _ctx: &mut Self::Context) {
        if !msg.on {
            self.waiter_left(&msg.queue);
            return;
        }
        let store = Arc::clone(&self.store);
        let (shard, queue) = (self.id, msg.queue);
        actix::spawn(async move {
            if let Err(e) = store.wait_began(shard, &queue).await {
                warn!(shard, %queue, error = %e, "could not record a subscription");
            }
        });
    }
}

impl Handler<PutBack> for ShardActor {
    type Result = ();

    fn handle(&mut self, msg: PutBack, ctx: &mut Self::Context) {
        let store = Arc::clone(&self.store);
        let shard = self.id;
        let queue = msg.queue.clone();
        ctx.spawn(
            async move { store.requeue(shard, &msg.queue, &msg.refs).await }
                .into_actor(self)
                .map(move |result, act, ctx| match result {
                    Ok(()) => act.drain(queue, ctx),
                    Err(e) => warn!(shard, %queue, error = %e, "could not put messages back"),
                }),
        );
    }
}

impl Handler<Push> for ShardActor {
    type Result = ResponseFuture<StoreResult<TxId>>;

    /// Stores the push, then drains its queues, even when the store failed: a push whose answer
    /// was lost may have landed, and this node ignores its own announcement of it. Queues with a
    /// waiter and no take in flight are drained early as well (see `PushThenTake`); should
    /// such a take reach the store before the push anyway, the drain after the push looks again.
    fn handle(&mut self, msg: Push, ctx: &mut Self::Context) -> Self::Result {
        let store = Arc::clone(&self.store);
        let shard = self.id;
        let Push {
            tx,
            queues,
            create,
            answered,
        } = msg;
        // Registered before the push is sent, so that any take that can find it sees it.
        if let Some(gate) = answered {
            self.remember_unanswered(tx.id.clone(), gate);
        }
        let waited: Vec<QueueName> = queues
            .iter()
            .filter(|q| {
                self.queues
                    .get(*q)
                    .is_some_and(|e| e.in_flight.is_none() && !e.waiters.is_empty())
            })
            .cloned()
            .collect();
        let stored = async move {
            let result = if create {
                store.provision(shard, &tx, &queues).await
            } else {
                let once = tx.once.as_deref();
                (store
                    .push(shard, &queues, &tx.id, tx.priority, tx.expires_at, once)
                    .await)
                    .map(|()| tx.id.clone())
            };
            (queues, result)
        };
        let (answer, answered) = tokio::sync::oneshot::channel();
        let push = PushThenTake {
            push: stored.boxed_local(),
            waited,
        };
        ctx.spawn(push.map(|(queues, result), act, ctx| {
            for queue in queues {
                act.drain(queue, ctx);
            }
            let _ = answer.send(result);
        }));
        let name = self.store.shard_name(shard);
        Box::pin(async move {
            answered.await.unwrap_or_else(|_| {
                Err(StoreError::Unavailable {
                    shard: name,
                    reason: "the node stopped before the push was stored".to_owned(),
                })
            })
        })
    }
}

/// A push that starts the takes for its queues' waiters once it has been polled for the first
/// time, which on a live store connection queues its command. The takes then reach the store
/// right behind the push, on the same connection, and find its message without waiting for
/// the push's answer: one round trip fewer between a push and its delivery.
struct PushThenTake {
    /// The push; resolves to its queues and how it went.
    push: LocalBoxFuture<'static, (Vec<QueueName>, StoreResult<TxId>)>,
    /// Drained after the first poll (then empty).
    waited: Vec<QueueName>,
}

impl ActorFuture<ShardActor> for PushThenTake {
    type Output = (Vec<QueueName>, StoreResult<TxId>);

    fn poll(
        self: std::pin::Pin<&mut Self>,
        act: &mut ShardActor,
        ctx: &mut Context<ShardActor>,
        task: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let this = self.get_mut();
        let pushed = this.push.poll_unpin(task);
        for queue in this.waited.drain(..) {
            act.drain(queue, ctx);
        }
        pushed
    }
}

impl<R: Send + 'static> Handler<Run<R>> for ShardActor {
    type Result = ResponseFuture<StoreResult<R>>;

    fn handle(&mut self, msg: Run<R>, _ctx: &mut Self::Context) -> Self::Result {
        (msg.0)(Arc::clone(&self.store), self.id)
    }
}

impl Handler<Closing> for ShardActor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, Closing(closing): Closing, _ctx: &mut Self::Context) -> Self::Result {
        self.closing = closing;
        if !closing {
            return Box::pin(std::future::ready(()));
        }
        // Awaited, so that a node stopping gracefully leaves no queue counted as `blocked`.
        Box::pin(self.release_waiters())
    }
}

impl Handler<ListWaiters> for ShardActor {
    type Result = Vec<WaiterView>;

    fn handle(&mut self, _: ListWaiters, _ctx: &mut Self::Context) -> Vec<WaiterView> {
        let registered = (self.queues.iter())
            .flat_map(|(queue, entry)| entry.waiters.iter().map(move |r| (queue, r)));
        registered
            .map(|(queue, r)| WaiterView {
                id: r.waiter.id,
                queue: queue.clone(),
                subscription: r.waiter.subscription,
                reliable: matches!(r.waiter.mark, Mark::Unacked { .. }),
                max: r.waiter.max,
                since: r.since,
            })
            .collect()
    }
}
