//! The inbox domain (PopBox's API): transactions fanned out to queues, and the consumers that
//! take them.
//!
//! [`Inbox`] is the one entry point the HTTP layer uses. It knows which
//! [`ShardActor`] owns each queue and transaction and sends it the
//! work; it never touches the store itself.
//!
//! [`ShardActor`]: crate::shard::ShardActor

mod error;
pub mod groups;
pub mod js;
pub mod params;
pub mod provision;
pub mod secure;
mod survey;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix::Addr;
use futures_util::future::join_all;
use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tracing::warn;

pub use crate::model::inbox::*;
pub use crate::model::{Answered, Answering, QueueHash, answer_pair};
pub use error::InboxError;
pub use groups::{GroupChange, NewGroup, unknown_group};
use groups::{group_names, with_queues};
pub use provision::TransactionUpdate;
pub use secure::Access;
use secure::Guard;
pub use survey::QueueDetail;

use crate::config::InboxSettings;
use crate::session::{PopSession, StreamItem, SubscriptionSession};
use crate::shard::{Closing, Delivery, Push, Run, ShardActor};
use crate::stats::counters;
use crate::store::{ShardId, Store, StoreResult};

/// How long a node has to finish a held push it claimed before another node may take it over.
const DELAYED_CLAIM: Duration = Duration::from_secs(60);
/// Held pushes claimed per look.
const DELAYED_BATCH: usize = 100;

#[derive(Clone)]
pub struct Inbox {
    shards: Arc<[Addr<ShardActor>]>,
    settings: Arc<InboxSettings>,
    guard: Arc<Guard>,
    /// Waits are answered at once (see [`Inbox::drain`]).
    draining: Arc<AtomicBool>,
    /// Which shard each queue and transaction is on.
    hash: QueueHash,
    /// Whether the store keeps a transaction on its id's shard, so that new ids are placed
    /// (see [`crate::store::Queues::places_transactions`]).
    place_ids: bool,
}

impl Inbox {
    pub fn new(
        shards: Vec<Addr<ShardActor>>,
        settings: InboxSettings,
        hash: QueueHash,
        place_ids: bool,
    ) -> Self {
        assert!(!shards.is_empty(), "an inbox needs at least one shard");
        let admin = settings
            .admin_user
            .as_deref()
            .zip(settings.admin_password.as_deref());
        Inbox {
            guard: Arc::new(Guard::new(admin)),
            draining: Arc::default(),
            hash,
            place_ids,
            shards: shards.into(),
            settings: Arc::new(settings),
        }
    }

    pub fn settings(&self) -> &InboxSettings {
        &self.settings
    }

    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    fn shard_index(&self, name: &str) -> usize {
        self.hash.shard(name, self.shards.len())
    }

    fn queue_shard(&self, queue: &QueueName) -> &Addr<ShardActor> {
        &self.shards[self.shard_index(queue.id())]
    }

    fn tx_shard(&self, id: &TxId) -> &Addr<ShardActor> {
        &self.shards[self.shard_index(id.as_str())]
    }

    /// Gives `tx` an id on `shard`, when the store keeps transactions where their ids say.
    fn place(&self, tx: &mut NewTransaction, shard: usize) {
        if !self.place_ids {
            return;
        }
        match TxId::generate_where(|id| self.shard_index(id) == shard) {
            Some(id) => tx.id = id,
            None => warn!(
                shard,
                "found no transaction id on the shard; one elsewhere costs a round trip"
            ),
        }
    }

    /// Runs one store operation on the shard that owns the data.
    async fn run<R, F, Fut>(&self, shard: &Addr<ShardActor>, op: F) -> Result<R, InboxError>
    where
        R: Send + 'static,
        F: FnOnce(Arc<dyn Store>, ShardId) -> Fut + Send + 'static,
        Fut: Future<Output = StoreResult<R>> + Send + 'static,
    {
        Ok(shard.send(Run::new(op)).await??)
    }

    /// Stores a transaction and pushes it into its queues; returns its id. Waiters on this node
    /// get the message once `answered` opens: after the producer has its answer.
    ///
    /// If any push fails, the transaction is deleted again, so a producer told "error" does not
    /// find it half-delivered later; unless the request has an idempotency key (`tx.once`).
    /// Then a retry with the key finishes the job: it stores nothing new, pushes the
    /// transaction wherever it did not get yet, and answers its id.
    pub async fn provision(
        &self,
        ns: &Namespace,
        mut tx: NewTransaction,
        answered: Answered,
    ) -> Result<TxId, InboxError> {
        let groups: Vec<(usize, Vec<QueueName>)> =
            self.by_shard(ns, &tx.queues).into_iter().collect();
        // Beside its first queues; with an idempotency key, where the key says, so that every
        // retry finds the record of the key with the transaction it made.
        let home = match &tx.once {
            Some(once) => Some(self.shard_index(once)),
            None => groups.first().map(|(shard, _)| *shard),
        };
        if let Some(home) = home {
            self.place(&mut tx, home);
        }
        let tx = Arc::new(tx);
        let pushed = self.push_to_shards(&tx, groups, Some(answered)).await;
        match &pushed {
            Ok(_) => counters().provisioned.one(),
            // Best effort: the error the producer sees is the push failure either way.
            Err(_) if tx.once.is_none() => drop(self.delete_transaction(&tx.id).await),
            Err(_) => {}
        }
        pushed
    }

    /// Stores a transaction now and pushes it into its queues once `delay` has passed. The
    /// push is held in the store, so it survives a restart; any node does it when it is due.
    pub async fn provision_later(
        &self,
        ns: &Namespace,
        mut tx: NewTransaction,
        delay: Duration,
    ) -> Result<TxId, InboxError> {
        // With the region's held pushes, which live with shard 0.
        self.place(&mut tx, 0);
        let queues: Vec<QueueName> = tx.queues.iter().map(|q| ns.queue(q)).collect();
        let push = DelayedPush::new(tx.id.clone(), tx.priority, tx.expires_at, &queues);
        let due = unix_now_ms().saturating_add(delay.as_millis().min(i64::MAX as u128) as i64);
        let shard = self.tx_shard(&tx.id);
        let id = self
            .run(shard, move |store, _| async move {
                store.schedule(&tx, &push, due).await
            })
            .await?;
        counters().provisioned.one();
        Ok(id)
    }

    /// Does the held pushes that are due (see [`provision_later`](Self::provision_later));
    /// returns how many. Run periodically by every node: each push is claimed by one node, and
    /// claimed again if that node dies before it is done.
    pub async fn push_due(&self) -> Result<usize, InboxError> {
        let now = unix_now_ms();
        let lease_until = now + DELAYED_CLAIM.as_millis() as i64;
        let due = self
            .run(&self.shards[0], move |store, _| async move {
                store.claim_due(now, lease_until, DELAYED_BATCH).await
            })
            .await?;
        let count = due.len();
        for push in due {
            let tx = Arc::new(NewTransaction {
                id: push.id.clone(),
                priority: push.priority,
                queues: Vec::new(),
                meta: Meta::new(),
                expires_at: push.expires_at,
                once: None,
            });
            let mut groups: HashMap<usize, Vec<QueueName>> = HashMap::new();
            for queue in push.queue_names() {
                groups
                    .entry(self.shard_index(queue.id()))
                    .or_default()
                    .push(queue);
            }
            // Nobody waits for an answer to a held push.
            self.push_to_shards(&tx, groups.into_iter().collect(), None)
                .await?;
            let id = push.id;
            self.run(&self.shards[0], move |store, _| async move {
                store.settle_due(&id).await
            })
            .await?;
        }
        Ok(count)
    }

    /// Pushes `tx` into `groups` of queues, one shard message each; returns the id of the
    /// transaction pushed. A new transaction comes with the gate its producer's answer opens:
    /// the first shard also stores it (only `tx.id`, `priority`, `expires_at` and `once` matter
    /// otherwise), and may answer that an earlier request with the same idempotency key made
    /// one already, which the other shards then push instead. An expired transaction is stored
    /// but pushed nowhere.
    async fn push_to_shards(
        &self,
        tx: &Arc<NewTransaction>,
        mut groups: Vec<(usize, Vec<QueueName>)>,
        answered: Option<Answered>,
    ) -> Result<TxId, InboxError> {
        if tx.expires_at <= unix_now() {
            // Already expired: it could only ever be delivered as a null.
            groups.clear();
        }
        let queues: usize = groups.iter().map(|(_, queues)| queues.len()).sum();
        let push = |shard: usize, tx: &Arc<NewTransaction>, queues, create| {
            self.shards[shard].send(Push {
                tx: Arc::clone(tx),
                queues,
                create,
                answered: answered.clone(),
            })
        };
        let mut tx = Arc::clone(tx);
        if answered.is_some() {
            // One shard stores the transaction along with its own pushes, its own if it has
            // queues there; the others only push.
            let home = self.shard_index(tx.id.as_str());
            let (first, first_queues) = match groups.iter().position(|(s, _)| *s == home) {
                Some(at) => groups.swap_remove(at),
                None => groups.pop().unwrap_or((home, Vec::new())),
            };
            let id = flatten(push(first, &tx, first_queues, true).await)?;
            if id != tx.id {
                tx = Arc::new(NewTransaction {
                    id,
                    ..NewTransaction::clone(&tx)
                });
            }
        }
        let rest = join_all(
            groups
                .into_iter()
                .map(|(shard, queues)| push(shard, &tx, queues, false)),
        )
        .await;
        for pushed in rest {
            flatten(pushed)?;
        }
        counters().pushed.add(queues as u64);
        Ok(tx.id.clone())
    }

    pub async fn transaction(&self, id: &TxId) -> Result<Option<Meta>, InboxError> {
        let id = id.clone();
        self.run(self.tx_shard(&id), move |store, _| async move {
            store.transaction(&id).await
        })
        .await
    }

    pub async fn states(&self, id: &TxId) -> Result<BTreeMap<String, DeliveryState>, InboxError> {
        let id = id.clone();
        self.run(self.tx_shard(&id), move |store, _| async move {
            store.states(&id).await
        })
        .await
    }

    /// How the transaction's states changed, oldest first.
    pub async fn history(&self, id: &TxId) -> Result<Vec<StateChange>, InboxError> {
        let id = id.clone();
        self.run(self.tx_shard(&id), move |store, _| async move {
            store.history(&id).await
        })
        .await
    }

    /// Applies a change; `false` when the transaction does not exist. A new expiry also keeps
    /// the queues that still hold it alive that long (queues in `ns`, as PopBox does).
    pub async fn update_transaction(
        &self,
        ns: &Namespace,
        id: &TxId,
        update: TransactionUpdate,
    ) -> Result<bool, InboxError> {
        let expires_at = update.expires_at;
        let found = {
            let id = id.clone();
            self.run(self.tx_shard(&id), move |store, _| async move {
                store
                    .update_transaction(&id, &update.meta, update.expires_at)
                    .await
            })
            .await?
        };
        if let (true, Some(at)) = (found, expires_at) {
            let pending: Vec<String> = self
                .states(id)
                .await?
                .into_iter()
                .filter(|(_, state)| *state == DeliveryState::Pending)
                .map(|(queue, _)| queue)
                .collect();
            for (shard, queues) in self.by_shard(ns, &pending) {
                self.run(&self.shards[shard], move |store, shard| async move {
                    store.extend_queues(shard, &queues, at).await
                })
                .await?;
            }
        }
        Ok(found)
    }

    /// Queue ids grouped by the shard that owns them.
    fn by_shard(&self, ns: &Namespace, ids: &[String]) -> HashMap<usize, Vec<QueueName>> {
        let mut by_shard: HashMap<usize, Vec<QueueName>> = HashMap::new();
        for id in ids {
            by_shard
                .entry(self.shard_index(id))
                .or_default()
                .push(ns.queue(id));
        }
        by_shard
    }

    pub async fn delete_transaction(&self, id: &TxId) -> Result<(), InboxError> {
        let id = id.clone();
        self.run(self.tx_shard(&id), move |store, _| async move {
            store.delete_transaction(&id).await
        })
        .await
    }

    /// Waits up to `timeout` for messages on `queue` and takes up to `max` of them, then for
    /// their producers to have their answers (see [`crate::model::answered`]). The caller must
    /// [`commit`](Delivery::commit) what it hands to its client; dropping the delivery, or this
    /// future, gives everything back.
    pub async fn pop(
        &self,
        queue: QueueName,
        max: usize,
        mark: Mark,
        timeout: Duration,
    ) -> Result<Delivery, InboxError> {
        let shard = self.queue_shard(&queue).clone();
        let outcome = PopSession::start_on(shard, queue, max, mark, timeout);
        let delivery = outcome.await.map_err(|_| InboxError::ShuttingDown)??;
        delivery.answered().await;
        Ok(delivery)
    }

    /// Subscribes to `queue`: its messages, one at a time, until the receiver is dropped or
    /// the node shuts down, each once its producer has had its answer (see [`crate::model::answered`]). Each
    /// must be [`commit`](Delivery::commit)ted when written to the client; dropping it gives
    /// it back.
    pub fn subscribe(&self, queue: QueueName, mark: Mark) -> mpsc::Receiver<StreamItem> {
        SubscriptionSession::start_on(self.queue_shard(&queue).clone(), queue, mark)
    }

    /// Acknowledges reliable deliveries from `queue`; one flag per id, `false` for a
    /// transaction that does not exist there.
    pub async fn ack(&self, queue: QueueName, ids: Vec<TxId>) -> Result<Vec<bool>, InboxError> {
        let acked = self
            .run(self.queue_shard(&queue), move |store, shard| async move {
                store.ack(shard, &queue, &ids).await
            })
            .await?;
        counters()
            .acked
            .add(acked.iter().filter(|a| **a).count() as u64);
        Ok(acked)
    }

    pub async fn peek(&self, queue: QueueName, max: usize) -> Result<Vec<Message>, InboxError> {
        self.run(self.queue_shard(&queue), move |store, shard| async move {
            store.peek(shard, &queue, max).await
        })
        .await
    }

    /// The queue's contents, each priority capped at `max_messages + 1` entries as in PopBox.
    pub async fn queue_info(&self, queue: QueueName) -> Result<QueueInfo, InboxError> {
        let cap = self.settings.max_messages + 1;
        self.run(self.queue_shard(&queue), move |store, shard| async move {
            store.queue_info(shard, &queue, cap).await
        })
        .await
    }

    /// Creates a secure queue opened by `user:password`; `false` when it exists already.
    pub async fn create_secure_queue(
        &self,
        queue: QueueName,
        user: &str,
        password: &str,
    ) -> Result<bool, InboxError> {
        let credential = self.guard.hash(format!("{user}:{password}")).await;
        self.run(self.queue_shard(&queue), move |store, shard| async move {
            store.create_secure_queue(shard, &queue, &credential).await
        })
        .await
    }

    /// Whether `credential` (`user:password` from the request, if any) opens the secure
    /// queue `queue`.
    pub async fn authorize(
        &self,
        queue: &QueueName,
        credential: Option<String>,
    ) -> Result<Access, InboxError> {
        let stored = {
            let queue = queue.clone();
            self.run(self.queue_shard(&queue), move |store, shard| async move {
                store.secure_queue_credential(shard, &queue).await
            })
            .await?
        };
        Ok(self.guard.check(queue.key(), stored, credential).await)
    }

    /// The shard that runs operations on group `name`.
    fn group_shard(&self, name: &str) -> &Addr<ShardActor> {
        &self.shards[self.shard_index(name)]
    }

    pub async fn add_to_group(&self, group: NewGroup) -> Result<(), InboxError> {
        let shard = self.group_shard(&group.name);
        self.run(shard, move |store, _| async move {
            store.group_add(&group.name, &group.queues).await
        })
        .await
    }

    pub async fn group_members(&self, name: &str) -> Result<Vec<String>, InboxError> {
        let name = name.to_owned();
        self.run(self.group_shard(&name), move |store, _| async move {
            store.group_members(&name).await
        })
        .await
    }

    /// A `POST /trans` body with the members of the groups it names (`groups`) appended to its
    /// queues, in order, duplicates kept (as PopBox expands them); `None` when it names none.
    pub async fn with_group_members(
        &self,
        body: &Map<String, Value>,
    ) -> Result<Option<Map<String, Value>>, InboxError> {
        let names = group_names(body).map_err(|e| InboxError::Invalid(vec![e]))?;
        if names.is_empty() {
            return Ok(None);
        }
        let lists = join_all(names.iter().map(|name| self.group_members(name))).await;
        let mut members = Vec::new();
        for list in lists {
            members.extend(list?);
        }
        Ok(Some(with_queues(body, members)))
    }

    /// Applies `change` to group `name`; the errors PopBox gives when it does not exist or the
    /// change is empty.
    pub async fn change_group(&self, name: &str, change: GroupChange) -> Result<(), InboxError> {
        let nothing = change.is_empty();
        let exists = if nothing {
            !self.group_members(name).await?.is_empty()
        } else {
            let owned = name.to_owned();
            self.run(self.group_shard(name), move |store, _| async move {
                store
                    .group_change(&owned, &change.add, &change.remove)
                    .await
            })
            .await?
        };
        let errors: Vec<String> = (!exists)
            .then(|| unknown_group(name))
            .into_iter()
            .chain(nothing.then(|| GroupChange::NOTHING.to_owned()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(InboxError::Invalid(errors))
        }
    }

    pub async fn delete_group(&self, name: &str) -> Result<(), InboxError> {
        let name = name.to_owned();
        self.run(self.group_shard(&name), move |store, _| async move {
            store.group_delete(&name).await
        })
        .await
    }

    /// Answers every waiting consumer with nothing and refuses new waits (node shutdown).
    pub async fn release_waiters(&self) {
        self.drain(true).await;
    }

    /// Draining (`true`): every waiting consumer is answered with nothing, and every new wait
    /// at once, so that the node can leave the load balancer without cutting anyone off.
    /// `false`: waits are taken again.
    pub async fn drain(&self, draining: bool) {
        self.draining.store(draining, Ordering::Relaxed);
        join_all(self.shards.iter().map(|s| s.send(Closing(draining)))).await;
    }

    /// Whether the node is draining.
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
}

/// An actor's answer to a store operation, as one result.
fn flatten<T>(answer: Result<StoreResult<T>, actix::MailboxError>) -> Result<T, InboxError> {
    Ok(answer??)
}
