//! The embedded store: everything in this process's memory, partitioned by shard.
//!
//! It needs no set-up and is fast, but it is not durable and not shared: it serves one node.
//! Each shard's queues sit behind their own lock, and so do the transactions that hash to it,
//! so shards served from different threads do not contend.

mod archives;
mod delays;
mod directory;
mod files;
mod id_books;
mod lease;
mod locations;
mod queues;
mod range_book;
mod survey;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::model::Location;
use crate::model::{IdRange, PoolCut};
use range_book::RangeBook;

use crate::model::{
    DelayedPush, DeliveryState, Mark, Message, Meta, NewTransaction, Priority, QueueHash,
    QueueInfo, QueueName, QueuedRef, StateChange, TxId, unix_now, unix_now_ms,
};
use crate::store::{
    Archives, Deepest, Delays, Directory, HISTORY_LIMIT, IdBooks, Locations, Notifications,
    QueueDepth, Queues, ShardId, StoreResult, Survey, TakenRef, WaitAccounting, deepest_of,
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
    /// Statistics archives, and the file they are kept in (none: in memory only).
    archives: Mutex<(archives::ArchiveBook, Option<std::path::PathBuf>)>,
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
            archives: Mutex::default(),
        }
    }

    /// A store whose customer-ID book and statistics are kept in `data_dir`.
    pub fn durable(shards: usize, data_dir: &Path) -> StoreResult<Self> {
        let store = Self::new(shards);
        *lock(&store.ranges) = RangeBook::open(data_dir)?;
        let (book, file) = files::load(data_dir, archives::ARCHIVE_FILE)?;
        *lock(&store.archives) = (book, Some(file));
        Ok(store)
    }

    fn transactions_of(&self, id: &TxId) -> MutexGuard<'_, HashMap<TxId, TxRecord>> {
        let partition = QueueHash::default().shard(id.as_str(), self.transactions.len());
        lock(&self.transactions[partition])
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
