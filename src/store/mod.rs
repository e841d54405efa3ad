//! Storage behind one trait, so the inbox domain and the actors never know which backend runs.
//!
//! [`Store`] is six traits, one per concern: [`Queues`] (queues and transactions),
//! [`Directory`] (groups, secure queues' credentials), [`Locations`] (desktops, other regions),
//! [`IdBooks`] (customer IDs), [`Delays`] (held pushes) and [`Archives`] (statistics). Each backend, [`memory`] and
//! [`redis`], implements them in a file each, named so and in that order.
//!
//! A backend holds two kinds of data:
//! - **transactions**: metadata and the per-queue delivery state, addressed by transaction id;
//! - **queues**: ordered references to transactions, split into high and low priority lists,
//!   plus the `blocked` / `lastPop` bookkeeping; every queue lives on one shard.
//!
//! Queue operations name their shard explicitly: each shard is driven by exactly one
//! `ShardActor` (one per shard, above the store), which is what keeps the number of backend
//! connections proportional to the number of shards. Every method is one atomic step as seen by
//! other callers.

pub mod memory;
pub mod redis;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::config::Backend;
use crate::model::Location;
use crate::model::{
    DelayedPush, DeliveryState, Mark, Message, Meta, NewTransaction, QueueInfo, QueueName,
    QueuedRef, StateChange, TxId,
};
use crate::model::{IdRange, PoolCut};

/// The most state changes kept per transaction (the latest ones).
pub const HISTORY_LIMIT: usize = 1000;

/// Index of a shard, `0..shards`.
pub type ShardId = usize;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The backend for a shard cannot be reached; the request can be retried later.
    #[error("store shard {shard} is unavailable: {reason}")]
    Unavailable { shard: String, reason: String },
    /// The backend refused an operation (a bug or a foreign value under one of our keys).
    #[error("store shard {shard} failed: {reason}")]
    Backend { shard: String, reason: String },
    /// The backend's settings are unusable.
    #[error("store configuration: {0}")]
    Config(String),
}

/// What a shard learns from outside the node (other nodes' pushes) about its queues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShardEvent {
    /// These queues (by [`QueueName::key`]) gained messages.
    Pushed(Vec<String>),
    /// The notification path is (again) up; anything may have been missed before.
    Subscribed,
    /// The notification path broke; the shard's server may be gone.
    Lost,
}

/// What a shard tells the notification path: which queues it wants to hear of. A backend shared
/// by several nodes need then only bring a node the pushes into queues it has waiters on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interest {
    /// Consumers wait on this queue (by [`QueueName::key`]). Once the backend listens, it
    /// reports the queue as [`ShardEvent::Pushed`] if it holds messages by then: a push made
    /// before then was not heard.
    Listen(String),
    /// Nobody waits on this queue any more.
    Ignore(String),
}

/// A shard's notification path, for a backend shared by several nodes.
pub struct Notifications {
    pub events: mpsc::UnboundedReceiver<ShardEvent>,
    pub interest: mpsc::UnboundedSender<Interest>,
}

pub type StoreResult<T> = Result<T, StoreError>;

/// One message taken out of a queue, with the metadata it had when it was taken (`None` when
/// its transaction had already expired or been deleted).
#[derive(Debug, Clone)]
pub struct TakenRef {
    pub queued: QueuedRef,
    pub meta: Option<Meta>,
}

/// How a take keeps the queue's `blocked` count (consumers waiting on it), so that waiting
/// costs no store operation of its own: consumers are counted in by the take that finds nothing
/// for them, and out by the take that serves them (or by [`Queues::wait_ended`] if they leave
/// unserved).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WaitAccounting {
    /// Consumers not counted yet: if nothing is taken, count them in.
    pub count_if_empty: u32,
    /// The consumer served first is counted: if something is taken, count it out.
    pub uncount_if_taken: bool,
}

/// Everything a node keeps: one value (`Arc<dyn Store>`) for seven concerns, each a trait of
/// its own that every backend implements in a file of its own, in this order.
pub trait Store: Queues + Directory + Locations + IdBooks + Delays + Archives + Survey {}

impl<T: Queues + Directory + Locations + IdBooks + Delays + Archives + Survey> Store for T {}

/// Queues and transactions: storing and pushing messages, taking them for consumers, putting
/// them back, and the state of each. Queue operations name their shard.
#[async_trait]
pub trait Queues: Send + Sync + 'static {
    /// How many queue shards this backend has.
    fn shards(&self) -> usize;

    /// A name for `shard` that an operator recognises (for errors and logs).
    fn shard_name(&self, shard: ShardId) -> String;

    /// Wake-ups for `shard` from other nodes, for a backend shared by several nodes. Called once
    /// per shard, by its actor.
    fn notifications(&self, shard: ShardId) -> Option<Notifications>;

    /// Whether the backend answers (every server of it): for readiness.
    async fn ping(&self) -> StoreResult<()> {
        Ok(())
    }

    /// Whether `shard`'s server answers.
    async fn ping_shard(&self, _shard: ShardId) -> StoreResult<()> {
        Ok(())
    }

    /// Whether the backend keeps each transaction on the shard its id hashes to (by
    /// `store.queue_hash`), so that a new transaction is best given an id on the shard of one
    /// of its queues (see [`TxId::generate_where`]): a push and its pop then touch one server.
    /// A held push's transaction must then be on shard 0, with the region's held pushes, and
    /// one with an idempotency key on the shard of the key.
    fn places_transactions(&self) -> bool {
        false
    }

    /// The name of a server found demoted to a read-only replica (a newer primary took it
    /// over), once one is: a backend that can be replicated says so here.
    fn demotions(&self) -> Option<tokio::sync::watch::Receiver<Option<String>>> {
        None
    }

    /// Each server the backend calls, by name, with how those calls go (times, failures): for
    /// the node's metrics. None for a backend inside the process.
    fn meters(&self) -> Vec<(String, Arc<crate::meter::CallMeter>)> {
        Vec::new()
    }

    /// The node is stopping: finishes what the backend does in the background (putting back
    /// what a take whose answer was lost had taken), waiting at most `within`. Returns how many
    /// such pieces of work are left unfinished.
    async fn settle(&self, _within: Duration) -> usize {
        0
    }

    /// Stores a new transaction, with state `Pending` for each of its queues, and pushes it into
    /// `queues` (those of its queues that are on `shard`) as [`push`](Queues::push) does. It
    /// expires, with its states, at `tx.expires_at`. Returns the id of the transaction the
    /// request made: `tx.id`, unless
    ///
    /// - `tx.once` (an idempotency key) names a provisioning still alive: then nothing new is
    ///   stored, the transaction that one made goes into `queues` unless a push with the key
    ///   reached this shard already, and its id is returned.
    async fn provision(
        &self,
        shard: ShardId,
        tx: &NewTransaction,
        queues: &[QueueName],
    ) -> StoreResult<TxId>;

    /// Appends a reference to `tx` at the tail of each queue (all on `shard`) and announces the
    /// queues to every node. `expires_at` is when the transaction expires. With `once` (the
    /// idempotency key of its provisioning), nothing happens if a push with that key reached
    /// this shard already.
    async fn push(
        &self,
        shard: ShardId,
        queues: &[QueueName],
        tx: &TxId,
        priority: crate::model::Priority,
        expires_at: i64,
        once: Option<&str>,
    ) -> StoreResult<()>;

    /// A transaction in these queues now lives until `expires_at`: keep what holds them alive.
    async fn extend_queues(
        &self,
        shard: ShardId,
        queues: &[QueueName],
        expires_at: i64,
    ) -> StoreResult<()>;

    /// Removes up to `max` references from the head of `queue` (high before low), loads each
    /// one's metadata and records `mark` (its state for this queue and, for an unacknowledged
    /// take, when it is due back) — all in one step, so every reference is taken by exactly one
    /// caller. With `popped_at`, also records it as the queue's
    /// `lastPop` (a consumer's first look). `accounting` keeps the queue's `blocked` count in the
    /// same step: see [`WaitAccounting`].
    async fn take(
        &self,
        shard: ShardId,
        queue: &QueueName,
        max: usize,
        mark: Mark,
        popped_at: Option<i64>,
        accounting: WaitAccounting,
    ) -> StoreResult<Vec<TakenRef>>;

    /// Puts taken references back at the head of `queue` in their original order, with state
    /// `Pending` (and no longer awaiting an acknowledgement). References whose transaction is
    /// gone are dropped instead.
    async fn requeue(
        &self,
        shard: ShardId,
        queue: &QueueName,
        refs: &[QueuedRef],
    ) -> StoreResult<()>;

    /// Acknowledges reliable deliveries from `queue`: each transaction's state there becomes
    /// `Delivered` and it is no longer due back. One flag per id, `false` when that transaction
    /// does not exist or was never in `queue`.
    async fn ack(&self, shard: ShardId, queue: &QueueName, ids: &[TxId]) -> StoreResult<Vec<bool>>;

    /// Puts unacknowledged messages on `shard` whose time ran out by `now_ms` (Unix
    /// milliseconds) back at the head of their queues as `Pending`, unless acknowledged
    /// meanwhile; returns the queues that got messages back, and how many messages went. Safe
    /// to run from several nodes at once: each message goes back once.
    async fn requeue_unacked(
        &self,
        shard: ShardId,
        now_ms: i64,
    ) -> StoreResult<(Vec<QueueName>, u64)>;

    /// Up to `max` messages from the head of `queue`, high before low, without changing anything.
    async fn peek(
        &self,
        shard: ShardId,
        queue: &QueueName,
        max: usize,
    ) -> StoreResult<Vec<Message>>;

    /// The queue's contents (at most `cap` ids per priority) and its waiting bookkeeping.
    async fn queue_info(
        &self,
        shard: ShardId,
        queue: &QueueName,
        cap: usize,
    ) -> StoreResult<QueueInfo>;

    /// A consumer that keeps its own count started waiting on `queue` (see [`WaitAccounting`]
    /// for the others).
    async fn wait_began(&self, shard: ShardId, queue: &QueueName) -> StoreResult<()>;

    /// A consumer stopped waiting on `queue`.
    async fn wait_ended(&self, shard: ShardId, queue: &QueueName) -> StoreResult<()>;

    /// Drops what has expired on `shard` (and the transactions that map to it); returns how
    /// many entries went.
    async fn purge_expired(&self, shard: ShardId, now: i64) -> StoreResult<usize>;

    /// The metadata of a live transaction.
    async fn transaction(&self, id: &TxId) -> StoreResult<Option<Meta>>;

    /// The delivery state of a live transaction in each of its queues (empty when unknown).
    async fn states(&self, id: &TxId) -> StoreResult<BTreeMap<String, DeliveryState>>;

    /// The state changes of a live transaction, oldest first (the last [`HISTORY_LIMIT`]).
    async fn history(&self, id: &TxId) -> StoreResult<Vec<StateChange>>;

    /// Merges `fields` into a live transaction's metadata and, when given, moves its expiry (a
    /// time in the past deletes it). `false` when there is no such transaction.
    async fn update_transaction(
        &self,
        id: &TxId,
        fields: &Meta,
        expires_at: Option<i64>,
    ) -> StoreResult<bool>;

    /// Deletes a transaction's metadata and states; references in queues stay and later read as
    /// expired.
    async fn delete_transaction(&self, id: &TxId) -> StoreResult<()>;
}

/// Names kept for the inbox: groups of queues, and secure queues' stored credentials.
#[async_trait]
pub trait Directory: Send + Sync + 'static {
    /// Adds `members` to group `name`, creating it.
    async fn group_add(&self, name: &str, members: &[String]) -> StoreResult<()>;

    /// The members of group `name` (empty when there is no such group).
    async fn group_members(&self, name: &str) -> StoreResult<Vec<String>>;

    /// Adds and removes members of an existing group, in one step; a group left empty is
    /// deleted. `false` when there is no such group.
    async fn group_change(
        &self,
        name: &str,
        add: &[String],
        remove: &[String],
    ) -> StoreResult<bool>;

    /// Deletes group `name` (nothing when there is none).
    async fn group_delete(&self, name: &str) -> StoreResult<()>;

    /// Creates the secure queue `queue` with its stored `credential`, unless it exists;
    /// `false` when it already did.
    async fn create_secure_queue(
        &self,
        shard: ShardId,
        queue: &QueueName,
        credential: &str,
    ) -> StoreResult<bool>;

    /// The stored credential of the secure queue `queue`, if it exists.
    async fn secure_queue_credential(
        &self,
        shard: ShardId,
        queue: &QueueName,
    ) -> StoreResult<Option<String>>;
}

/// Where each desktop is attached, and the other regions this one knows.
#[async_trait]
pub trait Locations: Send + Sync + 'static {
    /// Records that the desktop of `customer` is attached at `location`, for `ttl` (its polls
    /// keep refreshing it).
    async fn attach(&self, customer: &str, location: &Location, ttl: Duration) -> StoreResult<()>;

    /// Where the desktop of `customer` is attached, if its record has not expired.
    async fn locate(&self, customer: &str) -> StoreResult<Option<Location>>;

    /// Adds `server` (another region's public address) to the regions this one greets and
    /// tells where its desktops are; a known one keeps its failure count.
    async fn member_add(&self, server: &str) -> StoreResult<()>;

    /// The other regions known, each with its failed calls since its last success.
    async fn members(&self) -> StoreResult<Vec<(String, u32)>>;

    /// Counts one failed call to `server`; past `limit` failures it is forgotten. `true` when
    /// this call forgot it.
    async fn member_failed(&self, server: &str, limit: u32) -> StoreResult<bool>;

    /// A call to `server` succeeded: its failures count from 0 again (if it is still known).
    async fn member_ok(&self, server: &str) -> StoreResult<()>;
}

/// Customer IDs: the pool left to hand out, the range master's lease, and every node's blocks.
#[async_trait]
pub trait IdBooks: Send + Sync + 'static {
    /// The customer-ID pool left to hand out; `None` when this store holds no pool (it lives
    /// in the range master's region only).
    async fn pool(&self) -> StoreResult<Option<IdRange>>;

    /// Sets the pool, unless there is one and `replace` is false; `true` when it was set.
    async fn pool_seed(&self, pool: IdRange, replace: bool) -> StoreResult<bool>;

    /// Who holds the range master's lease, after taking or renewing it for `holder` (if `take`
    /// and it is free or already `holder`'s).
    async fn pool_lease(
        &self,
        holder: &str,
        ttl: Duration,
        take: bool,
    ) -> StoreResult<Option<String>>;

    /// Cuts a block of up to `size` IDs off the front of the pool, if `holder` holds the lease.
    async fn pool_cut(&self, holder: &str, size: u64) -> StoreResult<PoolCut>;

    /// Every node's blocks (IDs not yet handed out), by node.
    async fn blocks(&self) -> StoreResult<BTreeMap<String, Vec<IdRange>>>;

    /// Appends `block` to `node`'s blocks.
    async fn block_add(&self, node: &str, block: IdRange) -> StoreResult<()>;

    /// Takes up to `max` IDs off the front of `node`'s blocks: the IDs and how many the node
    /// has left after them; `None` when it has none.
    async fn block_take(&self, node: &str, max: u64) -> StoreResult<Option<(IdRange, u64)>>;
}

/// Pushes held back by `delay`: kept with their due time, claimed by one node at a time.
#[async_trait]
pub trait Delays: Send + Sync + 'static {
    /// Stores a new transaction as [`provision`](Queues::provision) does (`tx.once` included),
    /// but holds its push back, durably, until `due_ms` (Unix ms): see
    /// [`claim_due`](Delays::claim_due).
    async fn schedule(
        &self,
        tx: &NewTransaction,
        push: &DelayedPush,
        due_ms: i64,
    ) -> StoreResult<TxId>;

    /// Up to `max` held pushes due by `now_ms`, each claimed until `lease_until_ms`: a claim
    /// not [`settle`](Delays::settle_due)d by then (its node died) is due again. Each push is
    /// claimed by one caller at a time.
    async fn claim_due(
        &self,
        now_ms: i64,
        lease_until_ms: i64,
        max: usize,
    ) -> StoreResult<Vec<DelayedPush>>;

    /// A claimed push was done: forget it.
    async fn settle_due(&self, id: &TxId) -> StoreResult<()>;
}

/// Statistics: every node's round-robin archives (see `stats::archive`), as opaque slot
/// records. A node has one archive per resolution, named by the seconds a row spans; its slots
/// are numbered. Any node can read every node's, so that a region's charts show all of them.
#[async_trait]
pub trait Archives: Send + Sync + 'static {
    /// Writes slots of `node`'s archives (row span in seconds, slot, record each), from its
    /// sample at `at` (Unix seconds).
    async fn archive_put(
        &self,
        node: &str,
        at: i64,
        slots: &[(u64, usize, String)],
    ) -> StoreResult<()>;

    /// Slots `slots` of `node`'s archive of rows spanning `span` seconds, those written.
    async fn archive_slots(
        &self,
        node: &str,
        span: u64,
        slots: &[usize],
    ) -> StoreResult<Vec<(usize, String)>>;

    /// The nodes that have written archives, with the time of each one's last sample.
    async fn archive_nodes(&self) -> StoreResult<BTreeMap<String, i64>>;

    /// Takes or renews, for `holder`, the lease of the node that checks the region's alerts;
    /// whether `holder` holds it.
    async fn alert_lease(&self, holder: &str, ttl: Duration) -> StoreResult<bool>;

    /// The alerts on record (what was mailed, and when), by key.
    async fn alert_book(&self) -> StoreResult<BTreeMap<String, String>>;

    /// Records alert `key` (`None`: forgets it).
    async fn alert_note(&self, key: &str, record: Option<&str>) -> StoreResult<()>;
}

/// A queue's depth, by its full name (namespace prefix and id: `UNSEC:q1`, `acme:SEC:q2`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueDepth {
    pub name: String,
    pub high: u64,
    pub low: u64,
}

/// The deepest queues found, and how far the search went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Deepest {
    /// Deepest first.
    pub queues: Vec<QueueDepth>,
    /// Queues looked at.
    pub looked_at: usize,
    /// Whether those were all the queues there are (else: the budget ran out first).
    pub complete: bool,
}

/// The operators' look into the queues: bounded work, whatever the store holds.
#[async_trait]
pub trait Survey: Send + Sync + 'static {
    /// The `top` deepest non-empty queues among the first `budget` looked at (on Redis: found
    /// with `SCAN`, never `KEYS`, server by server).
    async fn deepest(&self, top: usize, budget: usize) -> StoreResult<Deepest>;

    /// How many entries `queue` has, of each priority.
    async fn depth(&self, shard: ShardId, queue: &QueueName) -> StoreResult<QueueDepth>;

    /// Empties `queue` and answers how many entries it had. Its transactions stay, and expire
    /// as they would; a delivery taken and not yet acknowledged is not in the queue.
    async fn purge(&self, shard: ShardId, queue: &QueueName) -> StoreResult<u64>;
}

/// The `top` deepest of `depths`, deepest first (ties by name).
pub fn deepest_of(mut depths: Vec<QueueDepth>, top: usize) -> Vec<QueueDepth> {
    depths.retain(|d| d.high + d.low > 0);
    depths.sort_by(|a, b| (b.high + b.low, &a.name).cmp(&(a.high + a.low, &b.name)));
    depths.truncate(top);
    depths
}

/// How many replicas must have a write before a client is told it succeeded, and for how long
/// the node waits for them (`replication.sync_replicas`, `replication.sync_timeout_ms`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Durability {
    pub replicas: u32,
    pub timeout: Duration,
}

/// Opens the configured backend, failing naming the server that cannot be reached; the
/// embedded one keeps its durable part (customer IDs, statistics) under `node.data_dir`.
pub async fn open(settings: &crate::config::Settings) -> Result<Arc<dyn Store>, StoreError> {
    let store = &settings.store;
    Ok(match store.backend {
        Backend::Memory => Arc::new(memory::MemoryStore::durable(
            store.shards,
            &settings.node.data_dir,
        )?),
        Backend::Redis | Backend::RedisCluster => {
            let durability = Durability {
                replicas: settings.replication.sync_replicas,
                timeout: Duration::from_millis(settings.replication.sync_timeout_ms),
            };
            Arc::new(self::redis::RedisStore::connect(store, durability).await?)
        }
    })
}
