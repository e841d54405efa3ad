//! **ShardActor**: one per store shard. It runs every operation on the queues that hash to its
//! shard and keeps the registry of consumers waiting on them.
//!
//! Waiting consumers never block on the store. A pop with nobody ahead of it first takes what
//! is there in one step; if the queue is empty it becomes a waiter here. Whenever a queue may have
//! gained messages (a push, a message put back, another node's notification, a waiter arriving)
//! the actor *drains* it: it takes as many messages as the oldest waiter wants and hands them
//! over, until the queue is empty or nobody waits. At most one drain per queue is in flight, so
//! one take can never race another for the same waiter.
//!
//! What a waiter receives is a [`Delivery`]: if it is dropped before the consumer commits it (the
//! client went away, the pop timed out at that instant), its messages go back to the head of
//! their queue as `Pending`. A message pushed through this node whose producer does not have
//! its answer yet carries that answer's gate, which the consumer awaits before writing it
//! ([`Delivery::answered`]).
//!
//! Here: the actor and its registry of waiters. Apart: [`Delivery`] (`delivery.rs`), the
//! messages it takes and sends (`messages.rs`), how it handles each (`handlers.rs`), and its
//! tests.

mod delivery;
mod handlers;
mod messages;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use futures_util::FutureExt;
use futures_util::future::join_all;
use tracing::{debug, warn};

use crate::callbacks::Callbacks;
use crate::model::{Answered, Mark, Message, QueueName, TxId, unix_now, unix_now_ms};
use crate::stats::counters;
use crate::store::{Interest, ShardEvent, ShardId, Store, StoreResult, TakenRef, WaitAccounting};
pub use delivery::Delivery;
use delivery::{Home, Taken};
pub use messages::{
    CancelWait, Closing, Hold, ListWaiters, Push, Run, Wait, Waiter, WaiterNotice, WaiterView,
};

/// The fewest gates of pushes a shard keeps before it drops those whose push was answered.
const UNANSWERED_AT_LEAST: usize = 64;

/// How often a shard looks for reliable deliveries whose acknowledgement is overdue: such a
/// message is back in its queue at most this long after its `timeoutACK`.
const UNACKED_SWEEP: Duration = Duration::from_millis(500);

/// A waiter in the registry, with what the store knows of it.
struct Registered {
    waiter: Waiter,
    /// The store counts it in the queue's `blocked` (a take found nothing for it).
    counted: bool,
    /// Its first take has been sent (that one records `lastPop`).
    looked: bool,
    /// When it began waiting (Unix milliseconds).
    since: i64,
}

/// The take in flight for a queue, and the waiters whose `blocked` accounting it carries.
#[derive(Default)]
struct InFlight {
    /// Not counted yet: counted in if the take finds nothing.
    counting: Vec<u64>,
    /// The front waiter, counted: counted out if the take serves it.
    uncounting: Option<u64>,
    /// Of those, the ones that left meanwhile: settled when the take lands.
    left: Vec<u64>,
}

impl InFlight {
    fn carries(&self, id: u64) -> bool {
        self.uncounting == Some(id) || self.counting.contains(&id)
    }
}

#[derive(Default)]
struct QueueWaiters {
    waiters: VecDeque<Registered>,
    in_flight: Option<InFlight>,
    /// Something changed while a take was in flight: look again when it lands.
    again: bool,
    /// The notification path was asked to bring other nodes' pushes into this queue.
    listening: bool,
}

pub struct ShardActor {
    id: ShardId,
    store: Arc<dyn Store>,
    queues: HashMap<QueueName, QueueWaiters>,
    sweep_every: Duration,
    closing: bool,
    /// The notification path reported the shard's server gone and not yet back.
    unreachable: bool,
    /// A sweep for overdue acknowledgements is running.
    sweeping_unacked: bool,
    callbacks: Callbacks,
    /// Where to say which queues have waiters, for a store shared with other nodes.
    interest: Option<tokio::sync::mpsc::UnboundedSender<Interest>>,
    /// Pushes made here whose producers may not have their answer yet, by transaction (the
    /// answered ones go now and then: see `remember_unanswered`).
    unanswered: HashMap<TxId, Answered>,
    /// How many of those there may be before the answered ones are dropped.
    unanswered_limit: usize,
}

impl ShardActor {
    pub fn new(
        id: ShardId,
        store: Arc<dyn Store>,
        sweep_every: Duration,
        callbacks: Callbacks,
    ) -> Self {
        ShardActor {
            id,
            store,
            queues: HashMap::new(),
            sweep_every,
            closing: false,
            unreachable: false,
            sweeping_unacked: false,
            callbacks,
            interest: None,
            unanswered: HashMap::new(),
            unanswered_limit: UNANSWERED_AT_LEAST,
        }
    }

    /// How many queues have waiters or a drain in flight (for tests of the registry's upkeep).
    #[cfg(test)]
    fn tracked_queues(&self) -> usize {
        self.queues.len()
    }

    /// Serves waiters on `queue` from what it holds, one take at a time.
    fn drain(&mut self, queue: QueueName, ctx: &mut Context<Self>) {
        let Some(entry) = self.queues.get_mut(&queue) else {
            return;
        };
        if entry.in_flight.is_some() {
            entry.again = true;
            return;
        }
        // Waiters whose session is gone would only bounce messages back.
        let mut gone = Vec::new();
        entry.waiters.retain(|r| {
            let alive = r.waiter.notify.connected();
            if !alive {
                gone.push(r.counted);
            }
            alive
        });
        for _ in gone.into_iter().filter(|counted| *counted) {
            self.waiter_left(&queue);
        }
        let Some(entry) = self.queues.get_mut(&queue) else {
            return;
        };
        let Some(front) = entry.waiters.front_mut() else {
            self.untrack(&queue);
            return;
        };
        let popped_at = (!front.looked).then(unix_now);
        front.looked = true;
        let (max, mark) = (front.waiter.max, front.waiter.mark);
        let uncounting = Some(front.waiter.id).filter(|_| front.counted);
        let flight = InFlight {
            counting: entry
                .waiters
                .iter()
                .filter(|r| !r.counted)
                .map(|r| r.waiter.id)
                .collect(),
            uncounting,
            left: Vec::new(),
        };
        let accounting = WaitAccounting {
            count_if_empty: flight.counting.len() as u32,
            uncount_if_taken: flight.uncounting.is_some(),
        };
        entry.in_flight = Some(flight);
        entry.again = false;

        let store = Arc::clone(&self.store);
        let (shard, q) = (self.id, queue.clone());
        let take = async move {
            store
                .take(shard, &q, max, mark, popped_at, accounting)
                .await
        };
        ctx.spawn(
            take.into_actor(self)
                .map(move |result, act, ctx| act.drained(queue, mark, result, ctx)),
        );
    }

    /// A take for `queue`, marking what it took with `mark`, landed.
    fn drained(
        &mut self,
        queue: QueueName,
        mark: Mark,
        result: StoreResult<Vec<TakenRef>>,
        ctx: &mut Context<Self>,
    ) {
        // The registry entry may be gone (shutdown released every waiter): what was taken must
        // still become a delivery, so that with nobody to give it to it goes back.
        let (flight, again) = match self.queues.get_mut(&queue) {
            Some(entry) => (entry.in_flight.take(), entry.again),
            None => (None, false),
        };
        match result {
            Ok(taken) if taken.is_empty() => {
                // The take counted the newcomers in; the front waiter stays counted.
                let flight = flight.unwrap_or_default();
                for id in flight.counting.iter().chain(&flight.uncounting) {
                    if flight.left.contains(id) {
                        self.waiter_left(&queue);
                    } else if let Some(r) = self.registered(&queue, *id) {
                        r.counted = true;
                    }
                }
                self.listen(&queue);
                // Looking again also drops the entry when every waiter left meanwhile.
                let idle = self
                    .queues
                    .get(&queue)
                    .is_some_and(|e| e.waiters.is_empty());
                if again || idle {
                    self.drain(queue, ctx);
                }
            }
            Ok(taken) => {
                // The take counted the front waiter out: serving it costs nothing more. The
                // newcomers stay uncounted; the next take looks after them.
                let served = flight.and_then(|f| f.uncounting.filter(|id| !f.left.contains(id)));
                if let Some(r) = served.and_then(|id| self.registered(&queue, id)) {
                    r.counted = false;
                }
                let delivery = self.delivery(&queue, taken, mark, ctx);
                self.hand_over(&queue, delivery);
                self.drain(queue, ctx);
            }
            Err(e) => {
                warn!(shard = self.id, %queue, error = %e, "take failed");
                if let Some(waiter) = self.next_waiter(&queue, None) {
                    waiter.notify.do_send(WaiterNotice::Fail(e));
                }
                self.drain(queue, ctx);
            }
        }
    }

    /// Someone waits on `queue` with nothing to take: from now on, other nodes' pushes into it
    /// must reach this node. (Once they do, it hears of the queue again if a push landed
    /// meanwhile.)
    fn listen(&mut self, queue: &QueueName) {
        let (Some(interest), Some(entry)) = (&self.interest, self.queues.get_mut(queue)) else {
            return;
        };
        if !entry.listening && !entry.waiters.is_empty() {
            entry.listening = true;
            let _ = interest.send(Interest::Listen(queue.key().to_owned()));
        }
    }

    /// Drops `queue` from the registry (nobody waits there and no take is in flight).
    fn untrack(&mut self, queue: &QueueName) {
        let Some(entry) = self.queues.remove(queue) else {
            return;
        };
        if let (true, Some(interest)) = (entry.listening, &self.interest) {
            let _ = interest.send(Interest::Ignore(queue.key().to_owned()));
        }
    }

    /// Keeps the gate of a push's answer, to give to the deliveries of its message. Gates are
    /// not waited on here (that would wake the shard once more per push): the open ones are
    /// dropped whenever their count doubles, at a cost that stays constant per push.
    fn remember_unanswered(&mut self, tx: TxId, gate: Answered) {
        if self.unanswered.len() >= self.unanswered_limit {
            self.unanswered.retain(|_, gate| !gate.is_open());
            self.unanswered_limit = (self.unanswered.len() * 2).max(UNANSWERED_AT_LEAST);
        }
        self.unanswered.insert(tx, gate);
    }

    /// A waiter still in the registry.
    fn registered(&mut self, queue: &QueueName, id: u64) -> Option<&mut Registered> {
        self.queues
            .get_mut(queue)?
            .waiters
            .iter_mut()
            .find(|r| r.waiter.id == id)
    }

    fn delivery(
        &self,
        queue: &QueueName,
        taken: Vec<TakenRef>,
        mark: Mark,
        ctx: &Context<Self>,
    ) -> Delivery {
        let items = taken
            .into_iter()
            .map(|t| Taken {
                message: Message::from_meta(t.queued.tx.clone(), t.meta.as_ref()),
                callback: t
                    .meta
                    .as_ref()
                    .and_then(|m| m.get("callback"))
                    .filter(|url| !url.is_empty())
                    .cloned(),
                unanswered: (self.unanswered.get(&t.queued.tx))
                    .filter(|gate| !gate.is_open())
                    .cloned(),
                // An expired message is reported but never goes back.
                queued: t.meta.is_some().then_some(t.queued),
            })
            .collect();
        Delivery {
            items,
            home: Some(Home {
                shard: ctx.address(),
                queue: queue.clone(),
                mark,
                callbacks: self.callbacks.clone(),
            }),
        }
    }

    /// Gives `delivery` to the oldest waiters still there that take messages as it was taken,
    /// none more than its `max` (the take was sized and marked for a waiter that may have left
    /// meanwhile); what nobody takes goes back. A reliable pop must never receive a message
    /// recorded `Delivered` (it would never come back unacknowledged), nor a plain pop one
    /// awaiting an acknowledgement (it would come back and be delivered twice).
    fn hand_over(&mut self, queue: &QueueName, mut delivery: Delivery) {
        let mark = delivery.home.as_ref().map(|home| home.mark);
        while delivery.len() > 0 {
            let Some(waiter) = self.next_waiter(queue, mark) else {
                return;
            };
            let rest = delivery.split_off(waiter.max);
            delivery = match waiter.notify.try_send(WaiterNotice::Deliver(delivery)) {
                Ok(()) => rest,
                Err(SendError::Full(notice)) => {
                    // A session's mailbox only ever holds a notice or two; never skip a live one.
                    waiter.notify.do_send(notice);
                    rest
                }
                Err(SendError::Closed(WaiterNotice::Deliver(mut returned))) => {
                    returned.append(rest);
                    returned
                }
                Err(SendError::Closed(_)) => unreachable!("we sent a delivery"),
            };
        }
    }

    /// Answers every waiter with nothing. A drain in flight still ends in a delivery, which,
    /// with nobody left to take it, goes back. Resolves once the store knows they left.
    fn release_waiters(&mut self) -> impl Future<Output = ()> + use<> {
        let mut released = Vec::new();
        for (queue, entry) in &mut self.queues {
            for r in entry.waiters.drain(..) {
                let mut counted = r.counted;
                if let Some(flight) = entry.in_flight.as_mut().filter(|f| f.carries(r.waiter.id)) {
                    // Its take settles how it is counted when it lands.
                    flight.left.push(r.waiter.id);
                    counted = false;
                }
                released.push((queue.clone(), counted, r.waiter));
            }
        }
        let idle: Vec<QueueName> = (self.queues.iter())
            .filter(|(_, entry)| entry.in_flight.is_none())
            .map(|(queue, _)| queue.clone())
            .collect();
        for queue in &idle {
            self.untrack(queue);
        }
        let mut recorded = Vec::with_capacity(released.len());
        for (queue, counted, waiter) in released {
            if counted {
                recorded.push(self.wait_ended(&queue));
            }
            waiter.notify.do_send(WaiterNotice::Release);
        }
        join_all(recorded).map(drop)
    }

    /// Takes the oldest waiter on `queue` out of the registry (no take is in flight for it),
    /// of those that take messages with `mark` if one is given.
    fn next_waiter(&mut self, queue: &QueueName, mark: Option<Mark>) -> Option<Waiter> {
        let waiters = &mut self.queues.get_mut(queue)?.waiters;
        let at = waiters
            .iter()
            .position(|r| mark.is_none_or(|mark| r.waiter.mark == mark))?;
        let r = waiters.remove(at)?;
        if r.counted {
            self.waiter_left(queue);
        }
        Some(r.waiter)
    }

    /// Counts a waiter that was counted in out of the queue's `blocked`.
    fn waiter_left(&self, queue: &QueueName) {
        actix::spawn(self.wait_ended(queue));
    }

    /// Puts reliable deliveries whose acknowledgement is overdue back in their queues (whoever
    /// took them, on any node), then serves those queues' waiters.
    fn requeue_unacked(&mut self, ctx: &mut Context<Self>) {
        if self.sweeping_unacked {
            // The last sweep is still running (a slow or absent store): one at a time.
            return;
        }
        self.sweeping_unacked = true;
        let store = Arc::clone(&self.store);
        let shard = self.id;
        let sweep = async move { store.requeue_unacked(shard, unix_now_ms()).await };
        ctx.spawn(sweep.into_actor(self).map(move |result, act, ctx| {
            act.sweeping_unacked = false;
            match result {
                Ok((queues, returned)) => {
                    counters().returned.add(returned);
                    if !queues.is_empty() {
                        debug!(
                            shard,
                            queues = queues.len(),
                            "unacknowledged messages put back"
                        );
                    }
                    for queue in queues {
                        act.drain(queue, ctx);
                    }
                }
                Err(e) => warn!(shard, error = %e, "could not put back unacknowledged messages"),
            }
        }));
    }

    /// Records in the store that a waiter on `queue` left.
    fn wait_ended(&self, queue: &QueueName) -> impl Future<Output = ()> + use<> {
        let store = Arc::clone(&self.store);
        let (shard, queue) = (self.id, queue.clone());
        async move {
            if let Err(e) = store.wait_ended(shard, &queue).await {
                warn!(shard, %queue, error = %e, "could not record the end of a wait");
            }
        }
    }
}

impl Actor for ShardActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if let Some(notifications) = self.store.notifications(self.id) {
            let events = notifications.events;
            ctx.add_stream(futures_util::stream::unfold(events, |mut rx| async move {
                rx.recv().await.map(|event| (event, rx))
            }));
            self.interest = Some(notifications.interest);
        }
        // Sessions and handlers may queue many requests at once; back-pressure comes from the
        // HTTP side, so the mailbox need not push back too.
        ctx.set_mailbox_capacity(1024);
        ctx.run_interval(UNACKED_SWEEP, |act, ctx| act.requeue_unacked(ctx));
        // Shards sweep in turn, not all at once: a sweep of the embedded store holds its thread
        // while it reads every entry of the shard, and shards share threads. (Sixteen at once
        // held a pop up to 250 ms with 600,000 messages stored.)
        let turn = (self.id + 1) as f64 / self.store.shards() as f64;
        ctx.run_later(self.sweep_every.mul_f64(turn), |act, ctx| {
            act.purge_expired();
            ctx.run_interval(act.sweep_every, |act, _ctx| act.purge_expired());
        });
    }
}

impl ShardActor {
    /// Drops what has expired from this shard's part of the store.
    fn purge_expired(&self) {
        let store = Arc::clone(&self.store);
        let shard = self.id;
        actix::spawn(async move {
            match store.purge_expired(shard, unix_now()).await {
                Ok(0) => {}
                Ok(n) => {
                    counters().expired.add(n as u64);
                    debug!(shard, purged = n, "expired entries dropped");
                }
                Err(e) => warn!(shard, error = %e, "expiry sweep failed"),
            }
        });
    }
}

impl StreamHandler<ShardEvent> for ShardActor {
    fn handle(&mut self, event: ShardEvent, ctx: &mut Self::Context) {
        match event {
            ShardEvent::Pushed(keys) => {
                for key in keys {
                    if let Some((queue, _)) = self.queues.get_key_value(key.as_str()) {
                        let queue = queue.clone();
                        self.drain(queue, ctx);
                    }
                }
            }
            ShardEvent::Subscribed => {
                self.unreachable = false;
                // Pushes announced while we were not listening are lost: look at every queue
                // someone waits on.
                let queues: Vec<QueueName> = self.queues.keys().cloned().collect();
                for queue in queues {
                    self.drain(queue, ctx);
                }
            }
            ShardEvent::Lost => {
                self.unreachable = true;
                let server = self.store.shard_name(self.id);
                warn!(shard = self.id, %server, "shard unreachable; answering its waiters");
                actix::spawn(self.release_waiters());
            }
        }
    }

    fn finished(&mut self, _ctx: &mut Self::Context) {
        // The notification source ended with the node; the actor itself keeps serving.
    }
}
