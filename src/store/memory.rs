//! The embedded store: everything in this process's memory, partitioned by shard.
//!
//! It needs no set-up and is fast, but it is not durable and not shared: it serves one node.
//! Each shard's queues sit behind their own lock, and so do the transactions that hash to it,
//! so shards served from different threads do not contend.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::range_book::RangeBook;
use crate::model::Location;
use crate::model::{IdRange, PoolCut};

use super::{HISTORY_LIMIT, ShardId, Store, StoreResult, TakenRef, WaitAccounting};
use crate::model::{
    DelayedPush, DeliveryState, Mark, Message, Meta, NewTransaction, Priority, QueueInfo,
    QueueName, QueuedRef, StateChange, TxId, shard_of, unix_now, unix_now_ms,
};

/// How long an idle, empty queue keeps its `lastPop` before it is forgotten.
const IDLE_QUEUE_RETENTION: i64 = 24 * 3600;

pub struct MemoryStore {
    queues: Vec<Mutex<HashMap<QueueName, QueueData>>>,
    /// Per shard: no unacknowledged message is due back before this (Unix ms), so the sweep
    /// has nothing to scan until then. Lowered by every reliable take, under the shard's lock;
    /// raised only by a sweep, which sees every entry.
    unacked_due: Vec<AtomicI64>,
    transactions: Vec<Mutex<HashMap<TxId, TxRecord>>>,
    groups: Mutex<HashMap<String, BTreeSet<String>>>,
    /// Secure queues' stored credentials, by queue key.
    credentials: Mutex<HashMap<String, String>>,
    /// Where each desktop is attached, until when.
    locations: Mutex<HashMap<String, (Location, Instant)>>,
    /// Other regions known, with their failed calls.
    members: Mutex<BTreeMap<String, u32>>,
    /// Customer IDs: the only part kept on disk.
    ranges: Mutex<RangeBook>,
    /// Held pushes, by when they are due (or their claim runs out).
    delayed: Mutex<HashMap<TxId, (i64, DelayedPush)>>,
    /// Idempotency keys in use, each with what its provisioning did.
    once: Mutex<HashMap<String, OnceRecord>>,
}

/// What a provisioning with an idempotency key did: the transaction it made, and the shards
/// whose queues got it.
struct OnceRecord {
    id: TxId,
    until: i64,
    pushed: BTreeSet<ShardId>,
}

/// How many queues a sweep visits, and transactions it looks up, before it lets its thread do
/// other work.
const SWEEP_STRIDE: usize = 1000;

/// A message waiting in a queue: its transaction, and a time before which a sweep need not
/// look the transaction up, because it cannot have expired yet.
struct Entry {
    tx: TxId,
    /// Unix seconds: the transaction's expiry when it was queued, or as a sweep last found it.
    /// A `PUT /trans` may have moved that expiry later, which the sweep finds out when it looks.
    /// A transaction deleted, or its expiry moved earlier, leaves the entry in place until this
    /// time, and a pop meanwhile reads it as a deleted message, as on Redis, where a queue
    /// outlives its messages too.
    until: i64,
}

#[derive(Default)]
struct QueueData {
    high: VecDeque<Entry>,
    low: VecDeque<Entry>,
    blocked: u64,
    last_pop: Option<i64>,
    /// Taken but not acknowledged yet: when each is due back (then the order taken), and to
    /// which list.
    unacked: HashMap<TxId, ((i64, u64), Priority)>,
    /// Orders the takes of `unacked`.
    takes: u64,
}

impl QueueData {
    fn list(&mut self, priority: Priority) -> &mut VecDeque<Entry> {
        match priority {
            Priority::High => &mut self.high,
            Priority::Low => &mut self.low,
        }
    }

    /// High first, then low, FIFO within each.
    fn iter(&self) -> impl Iterator<Item = QueuedRef> + '_ {
        let high = self.high.iter().map(|entry| QueuedRef {
            tx: entry.tx.clone(),
            priority: Priority::High,
        });
        let low = self.low.iter().map(|entry| QueuedRef {
            tx: entry.tx.clone(),
            priority: Priority::Low,
        });
        high.chain(low)
    }

    /// Drops the entries whose transaction has gone as of `now`, looking up only those that
    /// may have expired; returns how many went and how many it looked up.
    fn sweep(&mut self, now: i64, live_until: impl Fn(&TxId) -> Option<i64>) -> (usize, usize) {
        let (mut dropped, mut looked) = (0, 0);
        for list in [&mut self.high, &mut self.low] {
            list.retain_mut(|entry| {
                if entry.until > now {
                    return true;
                }
                looked += 1;
                match live_until(&entry.tx) {
                    Some(until) => {
                        entry.until = until;
                        true
                    }
                    None => {
                        dropped += 1;
                        false
                    }
                }
            });
        }
        (dropped, looked)
    }

    fn forgettable(&self, now: i64) -> bool {
        self.high.is_empty()
            && self.low.is_empty()
            && self.blocked == 0
            && self.unacked.is_empty()
            && self.last_pop.is_none_or(|t| now - t > IDLE_QUEUE_RETENTION)
    }
}

struct TxRecord {
    meta: Meta,
    states: BTreeMap<String, DeliveryState>,
    history: VecDeque<StateChange>,
    expires_at: i64,
}

impl TxRecord {
    fn live(&self, now: i64) -> bool {
        self.expires_at > now
    }

    /// Sets the state in `queue`, and records the change.
    fn set_state(&mut self, queue: &str, state: DeliveryState) {
        self.states.insert(queue.to_owned(), state);
        if self.history.len() == HISTORY_LIMIT {
            self.history.pop_front();
        }
        self.history.push_back(StateChange {
            queue: queue.to_owned(),
            state,
            at: unix_now_ms(),
        });
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave these maps half-updated in a way that matters
    // more than losing the node, so poisoning is ignored.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl MemoryStore {
    pub fn new(shards: usize) -> Self {
        let shards = shards.max(1);
        MemoryStore {
            queues: (0..shards).map(|_| Mutex::default()).collect(),
            unacked_due: (0..shards).map(|_| AtomicI64::new(i64::MAX)).collect(),
            transactions: (0..shards).map(|_| Mutex::default()).collect(),
            groups: Mutex::default(),
            credentials: Mutex::default(),
            locations: Mutex::default(),
            members: Mutex::default(),
            ranges: Mutex::default(),
            delayed: Mutex::default(),
            once: Mutex::default(),
        }
    }

    /// A store whose customer-ID book is kept in `data_dir`.
    pub fn durable(shards: usize, data_dir: &Path) -> StoreResult<Self> {
        let store = Self::new(shards);
        *lock(&store.ranges) = RangeBook::open(data_dir)?;
        Ok(store)
    }

    fn transactions_of(&self, id: &TxId) -> MutexGuard<'_, HashMap<TxId, TxRecord>> {
        lock(&self.transactions[shard_of(id.as_str(), self.transactions.len())])
    }

    /// Runs `f` on a live transaction, dropping it first if it has expired.
    fn with_live<R>(&self, id: &TxId, f: impl FnOnce(&mut TxRecord) -> R) -> Option<R> {
        self.with_live_at(unix_now(), id, f)
    }

    /// [`with_live`](Self::with_live) as of `now`, for a sweep that checks many at once.
    fn with_live_at<R>(
        &self,
        now: i64,
        id: &TxId,
        f: impl FnOnce(&mut TxRecord) -> R,
    ) -> Option<R> {
        let mut txs = self.transactions_of(id);
        match txs.get_mut(id) {
            Some(rec) if rec.live(now) => Some(f(rec)),
            Some(_) => {
                txs.remove(id);
                None
            }
            None => None,
        }
    }

    /// Appends a reference to `tx` at the tail of each queue (all on `shard`).
    fn push_now(
        &self,
        shard: ShardId,
        queues: &[QueueName],
        tx: &TxId,
        priority: Priority,
        expires_at: i64,
    ) {
        let mut map = self.queues(shard);
        for queue in queues {
            map.entry(queue.clone())
                .or_default()
                .list(priority)
                .push_back(Entry {
                    tx: tx.clone(),
                    until: expires_at,
                });
        }
    }

    fn queues(&self, shard: ShardId) -> MutexGuard<'_, HashMap<QueueName, QueueData>> {
        lock(&self.queues[shard])
    }
}

#[async_trait]
impl Store for MemoryStore {
    fn shards(&self) -> usize {
        self.queues.len()
    }

    fn shard_name(&self, shard: ShardId) -> String {
        format!("memory/{shard}")
    }

    fn notifications(&self, _shard: ShardId) -> Option<super::Notifications> {
        // Only this node writes here, and it wakes its own waiters.
        None
    }

    async fn provision(
        &self,
        shard: ShardId,
        tx: &NewTransaction,
        queues: &[QueueName],
    ) -> StoreResult<TxId> {
        // Kept while the transaction is stored, so that a retry racing this one finds it.
        let mut _claimed = None;
        if let Some(key) = &tx.once {
            let mut once = lock(&self.once);
            if let Some(held) = once.get_mut(key).filter(|r| r.until > unix_now()) {
                let id = held.id.clone();
                if held.pushed.insert(shard) {
                    self.push_now(shard, queues, &id, tx.priority, tx.expires_at);
                }
                return Ok(id);
            }
            let record = OnceRecord {
                id: tx.id.clone(),
                until: tx.expires_at,
                pushed: BTreeSet::from([shard]),
            };
            once.insert(key.clone(), record);
            _claimed = Some(once);
        }
        let mut record = TxRecord {
            meta: tx.meta.clone(),
            states: BTreeMap::new(),
            history: VecDeque::new(),
            expires_at: tx.expires_at,
        };
        for queue in &tx.queues {
            record.set_state(queue, DeliveryState::Pending);
        }
        self.transactions_of(&tx.id).insert(tx.id.clone(), record);
        self.push_now(shard, queues, &tx.id, tx.priority, tx.expires_at);
        Ok(tx.id.clone())
    }

    async fn schedule(
        &self,
        tx: &NewTransaction,
        push: &DelayedPush,
        due_ms: i64,
    ) -> StoreResult<TxId> {
        let id = self.provision(0, tx, &[]).await?;
        if id == tx.id {
            lock(&self.delayed).insert(tx.id.clone(), (due_ms, push.clone()));
        }
        Ok(id)
    }

    async fn claim_due(
        &self,
        now_ms: i64,
        lease_until_ms: i64,
        max: usize,
    ) -> StoreResult<Vec<DelayedPush>> {
        let mut delayed = lock(&self.delayed);
        let mut due: Vec<(&TxId, &mut (i64, DelayedPush))> = delayed
            .iter_mut()
            .filter(|(_, (at, _))| *at <= now_ms)
            .collect();
        due.sort_by_key(|(_, (at, _))| *at);
        Ok(due
            .into_iter()
            .take(max)
            .map(|(_, (at, push))| {
                *at = lease_until_ms;
                push.clone()
            })
            .collect())
    }

    async fn settle_due(&self, id: &TxId) -> StoreResult<()> {
        lock(&self.delayed).remove(id);
        Ok(())
    }

    async fn transaction(&self, id: &TxId) -> StoreResult<Option<Meta>> {
        Ok(self.with_live(id, |rec| rec.meta.clone()))
    }

    async fn states(&self, id: &TxId) -> StoreResult<BTreeMap<String, DeliveryState>> {
        Ok(self
            .with_live(id, |rec| rec.states.clone())
            .unwrap_or_default())
    }

    async fn history(&self, id: &TxId) -> StoreResult<Vec<StateChange>> {
        Ok(self
            .with_live(id, |rec| rec.history.iter().cloned().collect())
            .unwrap_or_default())
    }

    async fn update_transaction(
        &self,
        id: &TxId,
        fields: &Meta,
        expires_at: Option<i64>,
    ) -> StoreResult<bool> {
        let found = self.with_live(id, |rec| {
            rec.meta
                .extend(fields.iter().map(|(k, v)| (k.clone(), v.clone())));
            if let Some(at) = expires_at {
                rec.expires_at = at;
            }
        });
        if found.is_some() && expires_at.is_some_and(|at| at <= unix_now()) {
            self.transactions_of(id).remove(id);
        }
        Ok(found.is_some())
    }

    async fn delete_transaction(&self, id: &TxId) -> StoreResult<()> {
        self.transactions_of(id).remove(id);
        Ok(())
    }

    async fn push(
        &self,
        shard: ShardId,
        queues: &[QueueName],
        tx: &TxId,
        priority: Priority,
        expires_at: i64,
        once: Option<&str>,
    ) -> StoreResult<()> {
        let first = once.is_none_or(|key| {
            let mut held = lock(&self.once);
            (held.get_mut(key)).is_none_or(|record| record.pushed.insert(shard))
        });
        if first {
            self.push_now(shard, queues, tx, priority, expires_at);
        }
        Ok(())
    }

    async fn take(
        &self,
        shard: ShardId,
        queue: &QueueName,
        max: usize,
        mark: Mark,
        popped_at: Option<i64>,
        accounting: WaitAccounting,
    ) -> StoreResult<Vec<TakenRef>> {
        let taken: Vec<QueuedRef> = {
            let mut map = self.queues(shard);
            let data = map.entry(queue.clone()).or_default();
            if let Some(at) = popped_at {
                data.last_pop = Some(at);
            }
            let from_high = data.high.len().min(max);
            let from_low = data.low.len().min(max - from_high);
            let high = data.high.drain(..from_high).map(|entry| QueuedRef {
                tx: entry.tx,
                priority: Priority::High,
            });
            let low = data.low.drain(..from_low).map(|entry| QueuedRef {
                tx: entry.tx,
                priority: Priority::Low,
            });
            let taken: Vec<QueuedRef> = high.chain(low).collect();
            if let Some(due) = mark.ack_deadline(unix_now_ms()) {
                self.unacked_due[shard].fetch_min(due, Ordering::Relaxed);
                for r in &taken {
                    data.takes += 1;
                    let order = (due, data.takes);
                    data.unacked.insert(r.tx.clone(), (order, r.priority));
                }
            }
            if taken.is_empty() {
                data.blocked += u64::from(accounting.count_if_empty);
            } else if accounting.uncount_if_taken {
                data.blocked = data.blocked.saturating_sub(1);
            }
            taken
        };
        // The references are out of the queue, so no other caller can take them; marking their
        // state afterwards keeps the two locks apart.
        Ok(taken
            .into_iter()
            .map(|queued| {
                let meta = self.with_live(&queued.tx, |rec| {
                    rec.set_state(queue.id(), mark.state());
                    rec.meta.clone()
                });
                TakenRef { queued, meta }
            })
            .collect())
    }

    async fn requeue(
        &self,
        shard: ShardId,
        queue: &QueueName,
        refs: &[QueuedRef],
    ) -> StoreResult<()> {
        let live: Vec<(&QueuedRef, i64)> = refs
            .iter()
            .filter_map(|r| {
                let until = self.with_live(&r.tx, |rec| {
                    rec.set_state(queue.id(), DeliveryState::Pending);
                    rec.expires_at
                })?;
                Some((r, until))
            })
            .collect();
        let mut map = self.queues(shard);
        let data = map.entry(queue.clone()).or_default();
        for r in refs {
            data.unacked.remove(&r.tx);
        }
        for (r, until) in live.into_iter().rev() {
            let tx = r.tx.clone();
            data.list(r.priority).push_front(Entry { tx, until });
        }
        Ok(())
    }

    async fn ack(&self, shard: ShardId, queue: &QueueName, ids: &[TxId]) -> StoreResult<Vec<bool>> {
        let found: Vec<bool> = ids
            .iter()
            .map(|id| {
                self.with_live(id, |rec| {
                    let known = rec.states.contains_key(queue.id());
                    if known {
                        rec.set_state(queue.id(), DeliveryState::Delivered);
                    }
                    known
                })
                .unwrap_or(false)
            })
            .collect();
        if let Some(data) = self.queues(shard).get_mut(queue) {
            for (id, _) in ids.iter().zip(&found).filter(|(_, found)| **found) {
                data.unacked.remove(id);
            }
        }
        Ok(found)
    }

    async fn requeue_unacked(&self, shard: ShardId, now_ms: i64) -> StoreResult<Vec<QueueName>> {
        if now_ms < self.unacked_due[shard].load(Ordering::Relaxed) {
            return Ok(Vec::new());
        }
        let due = {
            let mut due: Vec<(QueueName, Vec<((i64, u64), QueuedRef)>)> = Vec::new();
            let mut map = self.queues(shard);
            let mut next_due = i64::MAX;
            for (queue, data) in map.iter_mut() {
                let mut mine = Vec::new();
                data.unacked.retain(|tx, (order, priority)| {
                    let keep = order.0 > now_ms;
                    if keep {
                        next_due = next_due.min(order.0);
                    } else {
                        let queued = QueuedRef {
                            tx: tx.clone(),
                            priority: *priority,
                        };
                        mine.push((*order, queued));
                    }
                    keep
                });
                if !mine.is_empty() {
                    // The longest overdue goes back first in line.
                    mine.sort_by_key(|(order, _)| *order);
                    due.push((queue.clone(), mine));
                }
            }
            // Still under the lock: no take can have added an entry this scan missed.
            self.unacked_due[shard].store(next_due, Ordering::Relaxed);
            due
        };
        let mut requeued = Vec::new();
        for (queue, refs) in due {
            // Acknowledged meanwhile (or gone): it stays out.
            let back: Vec<QueuedRef> = refs
                .into_iter()
                .map(|(_, r)| r)
                .filter(|r| {
                    self.with_live(&r.tx, |rec| {
                        rec.states.get(queue.id()) != Some(&DeliveryState::Delivered)
                    })
                    .unwrap_or(false)
                })
                .collect();
            if !back.is_empty() {
                self.requeue(shard, &queue, &back).await?;
                requeued.push(queue);
            }
        }
        Ok(requeued)
    }

    async fn peek(
        &self,
        shard: ShardId,
        queue: &QueueName,
        max: usize,
    ) -> StoreResult<Vec<Message>> {
        let refs: Vec<QueuedRef> = match self.queues(shard).get(queue) {
            Some(data) => data.iter().take(max).collect(),
            None => Vec::new(),
        };
        Ok(refs
            .into_iter()
            .map(|r| {
                let meta = self.with_live(&r.tx, |rec| rec.meta.clone());
                Message::from_meta(r.tx, meta.as_ref())
            })
            .collect())
    }

    async fn queue_info(
        &self,
        shard: ShardId,
        queue: &QueueName,
        cap: usize,
    ) -> StoreResult<QueueInfo> {
        Ok(match self.queues(shard).get(queue) {
            Some(data) => QueueInfo {
                high: data.high.iter().take(cap).map(|e| e.tx.clone()).collect(),
                low: data.low.iter().take(cap).map(|e| e.tx.clone()).collect(),
                blocked: data.blocked > 0,
                last_pop: data.last_pop,
            },
            None => QueueInfo::default(),
        })
    }

    async fn wait_began(&self, shard: ShardId, queue: &QueueName) -> StoreResult<()> {
        self.queues(shard).entry(queue.clone()).or_default().blocked += 1;
        Ok(())
    }

    async fn wait_ended(&self, shard: ShardId, queue: &QueueName) -> StoreResult<()> {
        if let Some(data) = self.queues(shard).get_mut(queue) {
            data.blocked = data.blocked.saturating_sub(1);
        }
        Ok(())
    }

    async fn extend_queues(
        &self,
        _shard: ShardId,
        _queues: &[QueueName],
        _expires_at: i64,
    ) -> StoreResult<()> {
        // A queue here lives as long as it holds entries, and a sweep keeps an entry as long
        // as its transaction lives: nothing to extend.
        Ok(())
    }

    async fn attach(&self, customer: &str, location: &Location, ttl: Duration) -> StoreResult<()> {
        let until = Instant::now() + ttl;
        let mut locations = lock(&self.locations);
        // Expired records go now and then, so that the map does not only grow.
        if locations.len() % 1024 == 1023 {
            let now = Instant::now();
            locations.retain(|_, (_, until)| *until > now);
        }
        locations.insert(customer.to_owned(), (location.clone(), until));
        Ok(())
    }

    async fn locate(&self, customer: &str) -> StoreResult<Option<Location>> {
        Ok(lock(&self.locations)
            .get(customer)
            .filter(|(_, until)| *until > Instant::now())
            .map(|(location, _)| location.clone()))
    }

    async fn member_add(&self, server: &str) -> StoreResult<()> {
        lock(&self.members).entry(server.to_owned()).or_insert(0);
        Ok(())
    }

    async fn members(&self) -> StoreResult<Vec<(String, u32)>> {
        Ok(lock(&self.members)
            .iter()
            .map(|(server, failed)| (server.clone(), *failed))
            .collect())
    }

    async fn member_failed(&self, server: &str, limit: u32) -> StoreResult<bool> {
        let mut members = lock(&self.members);
        let Some(failed) = members.get_mut(server) else {
            return Ok(false);
        };
        *failed += 1;
        if *failed > limit {
            members.remove(server);
            return Ok(true);
        }
        Ok(false)
    }

    async fn member_ok(&self, server: &str) -> StoreResult<()> {
        if let Some(failed) = lock(&self.members).get_mut(server) {
            *failed = 0;
        }
        Ok(())
    }

    async fn pool(&self) -> StoreResult<Option<IdRange>> {
        Ok(lock(&self.ranges).pool())
    }

    async fn pool_seed(&self, pool: IdRange, replace: bool) -> StoreResult<bool> {
        lock(&self.ranges).seed(pool, replace)
    }

    async fn pool_lease(
        &self,
        holder: &str,
        ttl: Duration,
        take: bool,
    ) -> StoreResult<Option<String>> {
        Ok(lock(&self.ranges).lease(holder, ttl, take))
    }

    async fn pool_cut(&self, holder: &str, size: u64) -> StoreResult<PoolCut> {
        lock(&self.ranges).cut(holder, size)
    }

    async fn blocks(&self) -> StoreResult<BTreeMap<String, Vec<IdRange>>> {
        Ok(lock(&self.ranges).blocks())
    }

    async fn block_add(&self, node: &str, block: IdRange) -> StoreResult<()> {
        lock(&self.ranges).add(node, block)
    }

    async fn block_take(&self, node: &str, max: u64) -> StoreResult<Option<(IdRange, u64)>> {
        lock(&self.ranges).take(node, max)
    }

    async fn create_secure_queue(
        &self,
        _shard: ShardId,
        queue: &QueueName,
        credential: &str,
    ) -> StoreResult<bool> {
        let mut credentials = lock(&self.credentials);
        if credentials.contains_key(queue.key()) {
            return Ok(false);
        }
        credentials.insert(queue.key().to_owned(), credential.to_owned());
        Ok(true)
    }

    async fn secure_queue_credential(
        &self,
        _shard: ShardId,
        queue: &QueueName,
    ) -> StoreResult<Option<String>> {
        Ok(lock(&self.credentials).get(queue.key()).cloned())
    }

    async fn group_add(&self, name: &str, members: &[String]) -> StoreResult<()> {
        lock(&self.groups)
            .entry(name.to_owned())
            .or_default()
            .extend(members.iter().cloned());
        Ok(())
    }

    async fn group_members(&self, name: &str) -> StoreResult<Vec<String>> {
        Ok(lock(&self.groups)
            .get(name)
            .map(|g| g.iter().cloned().collect())
            .unwrap_or_default())
    }

    async fn group_change(
        &self,
        name: &str,
        add: &[String],
        remove: &[String],
    ) -> StoreResult<bool> {
        let mut groups = lock(&self.groups);
        let Some(group) = groups.get_mut(name) else {
            return Ok(false);
        };
        group.extend(add.iter().cloned());
        group.retain(|m| !remove.contains(m));
        if group.is_empty() {
            groups.remove(name);
        }
        Ok(true)
    }

    async fn group_delete(&self, name: &str) -> StoreResult<()> {
        lock(&self.groups).remove(name);
        Ok(())
    }

    async fn purge_expired(&self, shard: ShardId, now: i64) -> StoreResult<usize> {
        let mut purged = 0;
        if shard == 0 {
            lock(&self.once).retain(|_, record| record.until > now);
        }
        {
            let mut txs = lock(&self.transactions[shard]);
            let before = txs.len();
            txs.retain(|_, rec| rec.live(now));
            purged += before - txs.len();
        }
        // Queue entries whose transaction is gone will never be delivered with a payload: drop
        // them. A queue at a time, letting the shard's thread serve others every
        // `SWEEP_STRIDE` queues or look-ups: a shard with 40,000 messages held it 36 ms in one
        // go, when each of its entries took a look-up.
        let names: Vec<QueueName> = self.queues(shard).keys().cloned().collect();
        let mut since_yield = 0;
        for name in names {
            if let Some(data) = self.queues(shard).get_mut(&name) {
                let (dropped, looked) =
                    data.sweep(now, |tx| self.with_live_at(now, tx, |rec| rec.expires_at));
                purged += dropped;
                since_yield += 1 + looked;
            }
            if since_yield >= SWEEP_STRIDE {
                since_yield = 0;
                tokio::task::yield_now().await;
            }
        }
        self.queues(shard).retain(|_, data| !data.forgettable(now));
        Ok(purged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Namespace;

    fn tx(queues: &[&str], expires_at: i64) -> NewTransaction {
        NewTransaction {
            id: TxId::generate(),
            priority: Priority::Low,
            queues: queues.iter().map(|q| q.to_string()).collect(),
            meta: Meta::from([("payload".to_owned(), "p".to_owned())]),
            expires_at,
            once: None,
        }
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn take_is_high_first_and_requeue_restores_order() {
        block_on(async {
            let store = MemoryStore::new(1);
            let q = Namespace::default().queue("q");
            let (a, b, c) = (
                tx(&["q"], i64::MAX),
                tx(&["q"], i64::MAX),
                tx(&["q"], i64::MAX),
            );
            for (t, p) in [
                (&a, Priority::Low),
                (&b, Priority::High),
                (&c, Priority::Low),
            ] {
                store.provision(0, t, &[]).await.unwrap();
                store
                    .push(0, std::slice::from_ref(&q), &t.id, p, i64::MAX, None)
                    .await
                    .unwrap();
            }
            let taken = store
                .take(0, &q, 2, Mark::Delivered, None, WaitAccounting::default())
                .await
                .unwrap();
            let ids: Vec<_> = taken.iter().map(|t| t.queued.tx.clone()).collect();
            assert_eq!(ids, [b.id.clone(), a.id.clone()]);
            assert_eq!(
                store.states(&a.id).await.unwrap()["q"],
                DeliveryState::Delivered
            );

            let refs: Vec<_> = taken.into_iter().map(|t| t.queued).collect();
            store.requeue(0, &q, &refs).await.unwrap();
            let order: Vec<_> = store
                .peek(0, &q, 10)
                .await
                .unwrap()
                .into_iter()
                .map(|m| m.tx)
                .collect();
            assert_eq!(order, [b.id.clone(), a.id.clone(), c.id.clone()]);
            assert_eq!(
                store.states(&a.id).await.unwrap()["q"],
                DeliveryState::Pending
            );
        });
    }

    #[test]
    fn expired_transactions_read_as_gone_and_are_purged() {
        block_on(async {
            let store = MemoryStore::new(1);
            let q = Namespace::default().queue("q");
            let old = tx(&["q"], unix_now() - 1);
            store.provision(0, &old, &[]).await.unwrap();
            store
                .push(
                    0,
                    std::slice::from_ref(&q),
                    &old.id,
                    Priority::High,
                    0,
                    None,
                )
                .await
                .unwrap();
            assert_eq!(store.transaction(&old.id).await.unwrap(), None);
            let peeked = store.peek(0, &q, 5).await.unwrap();
            assert_eq!(
                peeked,
                [Message {
                    tx: old.id.clone(),
                    payload: None
                }]
            );
            assert_eq!(store.purge_expired(0, unix_now()).await.unwrap(), 1);
            assert!(store.peek(0, &q, 5).await.unwrap().is_empty());
            // Requeueing an expired reference drops it rather than resurrecting it.
            let r = QueuedRef {
                tx: old.id.clone(),
                priority: Priority::High,
            };
            store.requeue(0, &q, &[r]).await.unwrap();
            assert!(store.peek(0, &q, 5).await.unwrap().is_empty());
        });
    }
    #[test]
    fn a_sweep_looks_up_only_entries_that_may_have_expired() {
        let mut data = QueueData::default();
        let (soon, later) = (TxId::generate(), TxId::generate());
        data.low.push_back(Entry {
            tx: soon.clone(),
            until: 100,
        });
        data.high.push_back(Entry {
            tx: later.clone(),
            until: 500,
        });
        // Nothing is due before 100: no look-ups at all.
        assert_eq!(data.sweep(50, |_| panic!("looked up too early")), (0, 0));
        // At 100 `soon` is due, but its expiry was moved to 300: kept, and its hint refreshed,
        // so the sweep at 200 looks nothing up.
        let moved = |tx: &TxId| (tx == &soon).then_some(300);
        assert_eq!(data.sweep(100, moved), (0, 1));
        assert_eq!(data.sweep(200, |_| panic!("hint not refreshed")), (0, 0));
        // At 500 both are due and both gone.
        assert_eq!(data.sweep(500, |_| None), (2, 2));
        assert!(data.high.is_empty() && data.low.is_empty());
    }

    #[test]
    fn a_sweep_keeps_a_message_whose_expiry_was_moved_later() {
        block_on(async {
            let store = MemoryStore::new(1);
            let q = Namespace::default().queue("q");
            let now = unix_now();
            let t = tx(&["q"], now + 5);
            store.provision(0, &t, &[]).await.unwrap();
            store
                .push(
                    0,
                    std::slice::from_ref(&q),
                    &t.id,
                    Priority::Low,
                    now + 5,
                    None,
                )
                .await
                .unwrap();
            let later = Some(now + 1000);
            assert!(
                store
                    .update_transaction(&t.id, &Meta::new(), later)
                    .await
                    .unwrap()
            );
            assert_eq!(store.purge_expired(0, now + 10).await.unwrap(), 0);
            assert_eq!(store.peek(0, &q, 5).await.unwrap().len(), 1);
            // The transaction and its entry.
            assert_eq!(store.purge_expired(0, now + 1000).await.unwrap(), 2);
            assert!(store.peek(0, &q, 5).await.unwrap().is_empty());
        });
    }
    #[test]
    fn a_deleted_transaction_leaves_its_queues_when_it_would_have_expired() {
        block_on(async {
            let store = MemoryStore::new(1);
            let q = Namespace::default().queue("q");
            let now = unix_now();
            let t = tx(&["q"], now + 100);
            store.provision(0, &t, &[]).await.unwrap();
            store
                .push(
                    0,
                    std::slice::from_ref(&q),
                    &t.id,
                    Priority::Low,
                    now + 100,
                    None,
                )
                .await
                .unwrap();
            store.delete_transaction(&t.id).await.unwrap();
            assert_eq!(store.purge_expired(0, now + 10).await.unwrap(), 0);
            let gone = Message {
                tx: t.id.clone(),
                payload: None,
            };
            assert_eq!(store.peek(0, &q, 5).await.unwrap(), [gone]);
            assert_eq!(store.purge_expired(0, now + 100).await.unwrap(), 1);
            assert!(store.peek(0, &q, 5).await.unwrap().is_empty());
        });
    }
}
