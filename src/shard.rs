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

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use futures_util::FutureExt;
use futures_util::future::{BoxFuture, LocalBoxFuture, join_all};
use tracing::{debug, warn};

use crate::callbacks::{Callbacks, DeliveredEvent};
use crate::model::{
    Answered, Mark, Message, NewTransaction, QueueName, QueuedRef, TxId, unix_now, unix_now_ms,
};
use crate::store::{
    Interest, ShardEvent, ShardId, Store, StoreError, StoreResult, TakenRef, WaitAccounting,
};

/// How often a shard looks for reliable deliveries whose acknowledgement is overdue: such a
/// message is back in its queue at most this long after its `timeoutACK`.
const UNACKED_SWEEP: Duration = Duration::from_millis(500);

/// The longest a consumer waits for the answers to the pushes whose messages it has. A reply is
/// written in microseconds; one that is not after this long (its client sends but does not
/// read) must not hold the messages back for good.
const ANSWER_WAIT_LIMIT: Duration = Duration::from_secs(1);

/// Messages taken from a queue for one consumer. Dropping it uncommitted puts them back at the
/// head of their queue, as `Pending`.
#[derive(Debug)]
pub struct Delivery {
    items: Vec<Taken>,
    /// Where they came from; `None` for an empty delivery.
    home: Option<Home>,
}

/// The shard and queue a delivery came from, how its take marked it, and who hears of it once
/// committed.
#[derive(Clone)]
struct Home {
    shard: Addr<ShardActor>,
    queue: QueueName,
    mark: Mark,
    callbacks: Callbacks,
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
struct Taken {
    message: Message,
    queued: Option<QueuedRef>,
    callback: Option<String>,
    unanswered: Option<Answered>,
}

impl Delivery {
    /// Nothing arrived in time.
    pub fn empty() -> Self {
        Delivery {
            items: Vec::new(),
            home: None,
        }
    }

    fn len(&self) -> usize {
        self.items.len()
    }

    /// Keeps the first `at` messages and returns the rest as a delivery of its own.
    fn split_off(&mut self, at: usize) -> Delivery {
        Delivery {
            items: self.items.split_off(at.min(self.items.len())),
            home: self.home.clone(),
        }
    }

    /// Takes `other`'s messages after these.
    fn append(&mut self, mut other: Delivery) {
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
                let _ = tokio::time::timeout(ANSWER_WAIT_LIMIT, join_all(gates)).await;
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
struct PutBack {
    queue: QueueName,
    refs: Vec<QueuedRef>,
}

/// Push a transaction into queues of this shard; with `create`, store the transaction first
/// (one message and, where the backend allows, one store round trip for both). Answers the id
/// of the transaction pushed: `tx.id`, or the one an earlier provisioning with the same
/// idempotency key made (see [`Store::provision`]).
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
pub struct Run<R>(StoreOp<R>);

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

/// Answer every waiter with nothing and refuse new waits: the node is going down.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ReleaseAll;

/// A waiter in the registry, with what the store knows of it.
struct Registered {
    waiter: Waiter,
    /// The store counts it in the queue's `blocked` (a take found nothing for it).
    counted: bool,
    /// Its first take has been sent (that one records `lastPop`).
    looked: bool,
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
    /// Pushes made here whose producers do not have their answer yet, by transaction.
    unanswered: HashMap<TxId, Answered>,
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
                Ok(queues) => {
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
                Ok(n) => debug!(shard, purged = n, "expired entries dropped"),
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
    /// waiter and no take in flight are drained early as well (see [`PushThenTake`]); should
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
        let answering = answered.map(|gate| {
            self.unanswered.insert(tx.id.clone(), gate.clone());
            (tx.id.clone(), gate)
        });
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
        let pushed = push.map(|(queues, result), act, ctx| {
            for queue in queues {
                act.drain(queue, ctx);
            }
            let _ = answer.send(result);
        });
        match answering {
            None => {
                ctx.spawn(pushed);
            }
            Some((id, gate)) => {
                // Transaction ids are unique per push, so the entry is this push's own.
                let forgotten =
                    pushed
                        .then(|(), act, _| gate.into_actor(act))
                        .map(move |(), act, _| {
                            act.unanswered.remove(&id);
                        });
                ctx.spawn(forgotten);
            }
        }
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

impl Handler<ReleaseAll> for ShardActor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _msg: ReleaseAll, _ctx: &mut Self::Context) -> Self::Result {
        self.closing = true;
        // Awaited, so that a node stopping gracefully leaves no queue counted as `blocked`.
        Box::pin(self.release_waiters())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DeliveryState, Meta, Namespace, NewTransaction, Priority, TxId};
    use crate::store::memory::MemoryStore;

    /// A waiter whose client vanished just as its messages arrived: it drops what it gets.
    struct Vanishing;

    impl Actor for Vanishing {
        type Context = Context<Self>;
    }

    impl Handler<WaiterNotice> for Vanishing {
        type Result = ();
        fn handle(&mut self, notice: WaiterNotice, _ctx: &mut Self::Context) {
            drop(notice);
        }
    }

    /// A waiter that keeps (commits) what it gets.
    struct Keeping(tokio::sync::mpsc::UnboundedSender<Vec<Message>>);

    impl Actor for Keeping {
        type Context = Context<Self>;
    }

    impl Handler<WaiterNotice> for Keeping {
        type Result = ();
        fn handle(&mut self, notice: WaiterNotice, _ctx: &mut Self::Context) {
            if let WaiterNotice::Deliver(d) = notice {
                let _ = self.0.send(d.commit());
            }
        }
    }

    /// A new high-priority message with `payload` for `queue`, living a minute.
    fn message_in(queue: &QueueName, payload: &str) -> NewTransaction {
        NewTransaction {
            id: TxId::generate(),
            priority: Priority::High,
            queues: vec![queue.id().to_owned()],
            meta: Meta::from([("payload".to_owned(), payload.to_owned())]),
            expires_at: unix_now() + 60,
            once: None,
        }
    }

    async fn setup(
        messages: &[&str],
    ) -> (Arc<MemoryStore>, Addr<ShardActor>, QueueName, Vec<TxId>) {
        let store = Arc::new(MemoryStore::new(1));
        let shard = ShardActor::new(
            0,
            store.clone(),
            Duration::from_secs(3600),
            Callbacks::disabled(),
        )
        .start();
        let queue = Namespace::default().queue("q");
        let mut ids = Vec::new();
        for payload in messages {
            let tx = message_in(&queue, payload);
            let id = tx.id.clone();
            let push = Push {
                tx: Arc::new(tx),
                queues: vec![queue.clone()],
                create: true,
                answered: None,
            };
            shard.send(push).await.unwrap().unwrap();
            ids.push(id);
        }
        (store, shard, queue, ids)
    }

    fn waiter(id: u64, max: usize, notify: Recipient<WaiterNotice>) -> Waiter {
        Waiter {
            id,
            max,
            mark: Mark::Delivered,
            notify,
        }
    }

    #[actix::test]
    async fn an_abandoned_delivery_goes_back_to_the_head_as_pending() {
        let (store, shard, queue, ids) = setup(&["a", "b", "c"]).await;
        let vanishing = Vanishing.start().recipient();
        shard.do_send(Wait {
            queue: queue.clone(),
            waiter: waiter(1, 2, vanishing),
        });
        actix::clock::sleep(Duration::from_millis(100)).await;

        let order: Vec<TxId> = queued(&store, &queue).await;
        assert_eq!(order, ids, "back at the head, in order");
        for id in &ids {
            assert_eq!(store.states(id).await.unwrap()["q"], DeliveryState::Pending);
        }
        assert!(!store.queue_info(0, &queue, 10).await.unwrap().blocked);
    }

    #[actix::test]
    async fn messages_put_back_go_to_the_next_waiter() {
        let (store, shard, queue, ids) = setup(&["a"]).await;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        // The first waiter vanishes; the second must still get the message.
        shard.do_send(Wait {
            queue: queue.clone(),
            waiter: waiter(1, 1, Vanishing.start().recipient()),
        });
        actix::clock::sleep(Duration::from_millis(50)).await;
        shard.do_send(Wait {
            queue: queue.clone(),
            waiter: waiter(2, 1, Keeping(tx).start().recipient()),
        });
        let got = tokio::time::timeout(Duration::from_secs(2), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.iter().map(|m| m.tx.clone()).collect::<Vec<_>>(), ids);
        assert_eq!(
            store.states(&ids[0]).await.unwrap()["q"],
            DeliveryState::Delivered
        );
        assert!(store.peek(0, &queue, 10).await.unwrap().is_empty());
    }

    #[actix::test]
    async fn release_answers_waiters_and_refuses_new_ones() {
        let (_store, shard, queue, _ids) = setup(&[]).await;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<&'static str>();
        struct Recorder(tokio::sync::mpsc::UnboundedSender<&'static str>);
        impl Actor for Recorder {
            type Context = Context<Self>;
        }
        impl Handler<WaiterNotice> for Recorder {
            type Result = ();
            fn handle(&mut self, notice: WaiterNotice, _ctx: &mut Self::Context) {
                let _ = self.0.send(match notice {
                    WaiterNotice::Release => "release",
                    _ => "other",
                });
            }
        }
        shard.do_send(Wait {
            queue: queue.clone(),
            waiter: waiter(1, 1, Recorder(tx.clone()).start().recipient()),
        });
        actix::clock::sleep(Duration::from_millis(50)).await;
        shard.send(ReleaseAll).await.unwrap();
        shard.do_send(Wait {
            queue,
            waiter: waiter(2, 1, Recorder(tx).start().recipient()),
        });
        for _ in 0..2 {
            let got = tokio::time::timeout(Duration::from_secs(2), rx.recv())
                .await
                .unwrap();
            assert_eq!(got, Some("release"));
        }
    }

    #[actix::test]
    async fn waiters_that_leave_leave_no_trace() {
        let (store, shard, queue, _ids) = setup(&[]).await;
        let keeper = Keeping(tokio::sync::mpsc::unbounded_channel().0).start();
        for id in 1..=3 {
            shard.do_send(Wait {
                queue: queue.clone(),
                waiter: waiter(id, 1, keeper.clone().recipient()),
            });
        }
        actix::clock::sleep(Duration::from_millis(50)).await;
        assert!(store.queue_info(0, &queue, 1).await.unwrap().blocked);
        for id in 1..=3 {
            shard.do_send(CancelWait {
                queue: queue.clone(),
                id,
            });
        }
        actix::clock::sleep(Duration::from_millis(50)).await;
        assert!(!store.queue_info(0, &queue, 1).await.unwrap().blocked);
        assert_eq!(count_tracked(&shard).await, 0);
    }

    #[actix::test]
    async fn a_waiter_whose_session_is_gone_is_not_counted_as_blocked() {
        /// A session that ended before the shard got to it.
        struct Gone;
        impl Actor for Gone {
            type Context = Context<Self>;
            fn started(&mut self, ctx: &mut Self::Context) {
                ctx.stop();
            }
        }
        impl Handler<WaiterNotice> for Gone {
            type Result = ();
            fn handle(&mut self, _: WaiterNotice, _ctx: &mut Self::Context) {}
        }
        let (store, shard, queue, _ids) = setup(&[]).await;
        let gone = Gone.start();
        actix::clock::sleep(Duration::from_millis(20)).await;
        shard.do_send(Wait {
            queue: queue.clone(),
            waiter: waiter(1, 1, gone.recipient()),
        });
        actix::clock::sleep(Duration::from_millis(100)).await;
        assert!(!store.queue_info(0, &queue, 1).await.unwrap().blocked);
        assert_eq!(count_tracked(&shard).await, 0);
    }

    #[actix::test]
    async fn no_waiter_gets_more_than_its_max() {
        let (store, shard, queue, _) = setup(&[]).await;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        for id in 1..=2 {
            shard.do_send(Wait {
                queue: queue.clone(),
                waiter: waiter(id, 1, Keeping(tx.clone()).start().recipient()),
            });
        }
        actix::clock::sleep(Duration::from_millis(50)).await;
        // Three messages reach the store behind the shard's back, then are taken in one go, as
        // a take sized for a waiter that has since left would.
        let ids = stored_behind_its_back(&store, &queue, &["a", "b", "c"]).await;
        let take = TakeAndHandOver {
            queue: queue.clone(),
            max: 3,
            mark: Mark::Delivered,
        };
        shard.send(take).await.unwrap();
        for expected in [&ids[0], &ids[1]] {
            let got = tokio::time::timeout(Duration::from_secs(2), rx.recv())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                got.iter().map(|m| &m.tx).collect::<Vec<_>>(),
                [expected],
                "one each"
            );
        }
        actix::clock::sleep(Duration::from_millis(50)).await;
        let left: Vec<TxId> = queued(&store, &queue).await;
        assert_eq!(left, [ids[2].clone()], "the third went back");
        assert_eq!(
            store.states(&ids[2]).await.unwrap()["q"],
            DeliveryState::Pending
        );
    }

    /// Stores messages in `queue` without telling the shard; returns their ids.
    async fn stored_behind_its_back(
        store: &MemoryStore,
        queue: &QueueName,
        payloads: &[&str],
    ) -> Vec<TxId> {
        let mut ids = Vec::new();
        for payload in payloads {
            let tx = message_in(queue, payload);
            store
                .provision(0, &tx, std::slice::from_ref(queue))
                .await
                .unwrap();
            ids.push(tx.id);
        }
        ids
    }

    /// Takes up to `max` messages marked `mark` and hands them over, as a take sized and marked
    /// for a waiter that has since left would.
    #[derive(Message)]
    #[rtype(result = "()")]
    struct TakeAndHandOver {
        queue: QueueName,
        max: usize,
        mark: Mark,
    }

    impl Handler<TakeAndHandOver> for ShardActor {
        type Result = ResponseActFuture<Self, ()>;
        fn handle(&mut self, msg: TakeAndHandOver, _ctx: &mut Self::Context) -> Self::Result {
            let store = Arc::clone(&self.store);
            let TakeAndHandOver { queue, max, mark } = msg;
            let q = queue.clone();
            let take = async move {
                let accounting = WaitAccounting::default();
                store
                    .take(0, &q, max, mark, None, accounting)
                    .await
                    .unwrap()
            };
            Box::pin(take.into_actor(self).map(move |taken, act, ctx| {
                let delivery = act.delivery(&queue, taken, mark, ctx);
                act.hand_over(&queue, delivery);
            }))
        }
    }

    #[actix::test]
    async fn a_take_goes_only_to_a_waiter_of_its_mode() {
        let reliable = Mark::Unacked {
            ack_within: Duration::from_millis(200),
        };
        for (taken_as, waiting_as) in [(reliable, Mark::Delivered), (Mark::Delivered, reliable)] {
            let (store, shard, queue, _) = setup(&[]).await;
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let waiting = Waiter {
                mark: waiting_as,
                ..waiter(1, 1, Keeping(tx).start().recipient())
            };
            shard.do_send(Wait {
                queue: queue.clone(),
                waiter: waiting,
            });
            actix::clock::sleep(Duration::from_millis(50)).await;
            let ids = stored_behind_its_back(&store, &queue, &["a"]).await;
            let take = TakeAndHandOver {
                queue: queue.clone(),
                max: 1,
                mark: taken_as,
            };
            shard.send(take).await.unwrap();
            let got = tokio::time::timeout(Duration::from_secs(2), rx.recv()).await;
            let got: Vec<TxId> = got.unwrap().unwrap().into_iter().map(|m| m.tx).collect();
            assert_eq!(got, ids, "{waiting_as:?}: the waiter still gets it");
            let state = store.states(&ids[0]).await.unwrap()["q"];
            assert_eq!(state, waiting_as.state(), "recorded in the waiter's mode");
            // Past the acknowledgement time and a sweep: only a reliable take comes back.
            let started = std::time::Instant::now();
            while queued(&store, &queue).await.is_empty() && started.elapsed().as_secs() < 5 {
                actix::clock::sleep(UNACKED_SWEEP / 5).await;
            }
            let back = queued(&store, &queue).await;
            match waiting_as {
                Mark::Delivered => assert!(back.is_empty(), "a plain pop's message came back"),
                Mark::Unacked { .. } => assert_eq!(back, ids, "an unacked message stayed out"),
            }
        }
    }

    /// Pushes one message into `queue` with the gate its producer's answer would open.
    async fn push_answered(shard: &Addr<ShardActor>, queue: &QueueName, answered: Answered) {
        let tx = message_in(queue, "answered");
        let push = Push {
            tx: Arc::new(tx),
            queues: vec![queue.clone()],
            create: true,
            answered: Some(answered),
        };
        shard.send(push).await.unwrap().unwrap();
    }

    /// A waiter that hands on what it gets, uncommitted.
    struct Forwarding(tokio::sync::mpsc::UnboundedSender<Delivery>);

    impl Actor for Forwarding {
        type Context = Context<Self>;
    }

    impl Handler<WaiterNotice> for Forwarding {
        type Result = ();
        fn handle(&mut self, notice: WaiterNotice, _ctx: &mut Self::Context) {
            if let WaiterNotice::Deliver(d) = notice {
                let _ = self.0.send(d);
            }
        }
    }

    #[actix::test]
    async fn a_delivery_is_answered_once_its_producer_is() {
        let (_store, shard, queue, _) = setup(&[]).await;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        // Long enough to tell "not yet" on any machine; what must happen may take longer.
        let short = Duration::from_millis(200);
        let ample = Duration::from_secs(5);
        for (id, keep_token) in [(1, false), (2, true)] {
            shard.do_send(Wait {
                queue: queue.clone(),
                waiter: waiter(id, 1, Forwarding(tx.clone()).start().recipient()),
            });
            let (answering, answered) = crate::model::answer_pair();
            push_answered(&shard, &queue, answered).await;
            let delivery = tokio::time::timeout(ample, rx.recv())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(delivery.len(), 1);
            let waiting = tokio::time::timeout(short, delivery.answered()).await;
            assert!(waiting.is_err(), "answered before the producer was");
            if keep_token {
                // An answer never written holds the message back for a bounded time only.
                let bound = tokio::time::timeout(ANSWER_WAIT_LIMIT + ample, delivery.answered());
                assert!(bound.await.is_ok(), "held past the limit");
                drop(answering);
            } else {
                drop(answering);
                let answered = tokio::time::timeout(ample, delivery.answered()).await;
                assert!(answered.is_ok(), "not answered once the producer was");
            }
            // A message taken after its producer was answered carries no gate.
            delivery.commit();
        }
    }

    /// The ids in `queue`, head first.
    async fn queued(store: &MemoryStore, queue: &QueueName) -> Vec<TxId> {
        store
            .peek(0, queue, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.tx)
            .collect()
    }

    /// Asks the shard how many queues it tracks.
    async fn count_tracked(shard: &Addr<ShardActor>) -> usize {
        #[derive(Message)]
        #[rtype(result = "usize")]
        struct Tracked;
        impl Handler<Tracked> for ShardActor {
            type Result = usize;
            fn handle(&mut self, _: Tracked, _ctx: &mut Self::Context) -> usize {
                self.tracked_queues()
            }
        }
        shard.send(Tracked).await.unwrap()
    }
}
