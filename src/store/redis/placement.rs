//! Where each transaction lives, and the operations that touch a transaction and its queues
//! on different servers. (On a Redis Cluster, read "shard" for "server": one hash tag, whose
//! keys share a slot; two shards are apart as two servers are.)
//!
//! A transaction pushed into queues on other servers than its own is touched in one step per
//! server, and a node can die between them. No order of steps can lose a message or deliver it
//! twice; at worst a transaction is left that nothing points at, and it expires:
//!
//! - **provision**: the transaction is stored first, then each server's queues get it. Dying
//!   between, the producer had no answer: the transaction expires unpushed (without an
//!   idempotency key) or a retry with the key pushes it where it is missing (the per-server
//!   marks `PB:I|…:pushed:<shard>` say where it got).
//! - **pop**: the take (queue's server) marks the transactions it holds itself; the others are
//!   marked on their servers next. Dying between, the consumer had no answer and the message is
//!   out of its queue, as when a node dies writing a pop's answer: a plain pop is
//!   at-most-once in PopBox too. A reliable pop's take also put the message in `PB:A|unacked`,
//!   and the sweep returns it, since its state was never made `Delivered`. A server that fails
//!   the marking gets its messages put back (by token, once) and the pop answers the rest.
//! - **re-queue**: states go back to `Pending` first, then the references to their queues.
//!   Dying between, a state says `Pending` for a message that is gone: a plain pop's message
//!   already left its queue for good (the node that took it is the one that died), and a
//!   reliable one's is still in `PB:A|unacked` and comes back.
//! - **ack**: the state becomes `Delivered` (transaction's server), then the delivery leaves
//!   `PB:A|unacked` (queue's server). Dying between, the sweep finds it `Delivered` and drops
//!   it without returning it.
//! - **unacknowledged sweep**: the states reopen (transaction's server), then the references
//!   return (queue's server), each member once by `ZREM`. Dying between, the members are still
//!   due and the next sweep (any node's) does both again: reopening twice is harmless.
//! - **delete, expiry**: the transaction's keys go (or expire) on its server; references left
//!   in queues find no metadata when taken and are delivered as PopBox does a dead one.
//!
//! One concern of the backend, split out of its module: it uses the module's types and helpers
//! as its own.

use futures_util::future::join_all;

use super::*;

/// Where transactions' keys live.
pub(super) enum Placement {
    /// Each on the server of its id's shard, by this hash.
    Spread(QueueHash),
    /// All on one server (`redis_transactions`, the store's `regional`): PopBox's layout.
    One,
}

impl Placement {
    /// How a set of several servers records this placement (see `check_layout`).
    pub(super) fn name(&self) -> &'static str {
        match self {
            Placement::Spread(_) => "spread",
            Placement::One => "one",
        }
    }
}

impl RedisStore {
    /// The server holding transaction `id`'s keys.
    pub(super) fn tx_server(&self, id: &TxId) -> &Server {
        match &self.transactions {
            Placement::Spread(hash) => &self.shards[hash.shard(id.as_str(), self.shards.len())],
            Placement::One => &self.regional,
        }
    }

    /// Whether a take on `server` marks the transactions it finds there itself: those whose
    /// metadata is there are theirs.
    pub(super) fn marks_on(&self, server: &Server) -> bool {
        match &self.transactions {
            Placement::Spread(_) => true,
            Placement::One => self.regional.same(server),
        }
    }

    /// Runs `op` on each server holding the transactions of some of `items` (`tx` says which
    /// is an item's), all at once, with those items in their order; answers one result per
    /// item, in `items`' order: its own, or its server's error.
    pub(super) async fn per_tx_server<'a, I, T, F, Fut>(
        &'a self,
        items: &'a [I],
        tx: impl Fn(&I) -> &TxId,
        op: F,
    ) -> Vec<StoreResult<T>>
    where
        F: Fn(&'a Server, Vec<&'a I>) -> Fut,
        Fut: std::future::Future<Output = StoreResult<Vec<T>>>,
    {
        let mut groups: Vec<(&Server, Vec<usize>)> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let server = self.tx_server(tx(item));
            match groups.iter_mut().find(|(s, _)| s.same(server)) {
                Some((_, members)) => members.push(i),
                None => groups.push((server, vec![i])),
            }
        }
        let answers = join_all(
            (groups.iter())
                .map(|(server, members)| op(server, members.iter().map(|&i| &items[i]).collect())),
        )
        .await;
        let mut results: Vec<Option<StoreResult<T>>> = items.iter().map(|_| None).collect();
        for ((server, members), answer) in groups.iter().zip(answers) {
            let mut answer = answer.map(Vec::into_iter);
            for &i in members {
                results[i] = Some(match &mut answer {
                    Ok(values) => values.next().ok_or_else(|| StoreError::Backend {
                        shard: server.name.to_string(),
                        reason: "answered for fewer transactions than asked".to_owned(),
                    }),
                    Err(e) => Err(e.clone()),
                });
            }
        }
        results.into_iter().flatten().collect()
    }

    /// Marks the transactions of `refs` (all on `server`) taken from `queue` and loads their
    /// metadata (`None`: the transaction is gone).
    pub(super) async fn mark_on(
        &self,
        server: &Server,
        refs: &[&QueuedRef],
        queue: &QueueName,
        state: DeliveryState,
    ) -> StoreResult<Vec<Option<Meta>>> {
        if refs.is_empty() {
            return Ok(Vec::new());
        }
        let mut invocation = self.scripts().mark.prepare_invoke();
        for r in refs {
            invocation.key(self.record().name(&server.keys, &r.tx));
        }
        invocation
            .arg(queue.id())
            .arg(state.as_str())
            .arg(history_line(queue.id(), state, unix_now_ms()));
        let metas: Vec<::redis::Value> = invocation
            .invoke_async(&mut server.conn())
            .await
            .map_err(|e| server.error(e))?;
        Ok((metas.into_iter())
            .map(|meta| decode_meta(server, meta))
            .collect())
    }

    /// Reopens, on their transactions' servers, the deliveries `due` back (member of the set of
    /// unacknowledged ones, queue, transaction): each still live and not `Delivered` becomes
    /// `Pending` and answers its priority (`H`/`L`); one that stays out answers `''`.
    pub(super) async fn reopen(
        &self,
        due: &[(String, QueueName, TxId)],
    ) -> Vec<StoreResult<String>> {
        let now = unix_now_ms();
        self.per_tx_server(
            due,
            |(_, _, tx)| tx,
            |server, due| async move {
                let mut reopen = self.scripts().reopen.prepare_invoke();
                for (_, queue, tx) in due {
                    let line = history_line(queue.id(), DeliveryState::Pending, now);
                    reopen
                        .key(self.record().name(&server.keys, tx))
                        .arg(queue.id())
                        .arg(line);
                }
                reopen
                    .invoke_async::<Vec<String>>(&mut server.conn())
                    .await
                    .map_err(|e| server.error(e))
            },
        )
        .await
    }

    /// After a take on `server`: marks the transactions it could not mark itself (those that
    /// live elsewhere) on their servers. The messages of a server that fails go back to the
    /// head of `queue` (once, by token) and the take answers the rest; if that is nothing, the
    /// failure.
    pub(super) async fn mark_elsewhere(
        &self,
        server: &Server,
        queue: &QueueName,
        state: DeliveryState,
        taken: Vec<QueuedRef>,
        mut metas: Vec<Option<Meta>>,
    ) -> StoreResult<Vec<TakenRef>> {
        let elsewhere: Vec<usize> = (0..taken.len())
            .filter(|&i| metas[i].is_none() && !self.tx_server(&taken[i].tx).same(server))
            .collect();
        let mut failed: Vec<(usize, StoreError)> = Vec::new();
        if !elsewhere.is_empty() {
            let asked: Vec<&QueuedRef> = elsewhere.iter().map(|&i| &taken[i]).collect();
            let marked = self
                .per_tx_server(
                    &asked,
                    |r| &r.tx,
                    |server, refs| async move {
                        let refs: Vec<&QueuedRef> = refs.into_iter().copied().collect();
                        self.mark_on(server, &refs, queue, state).await
                    },
                )
                .await;
            for (&i, marked) in elsewhere.iter().zip(marked) {
                match marked {
                    Ok(meta) => metas[i] = meta,
                    Err(e) => failed.push((i, e)),
                }
            }
        }
        if failed.is_empty() {
            return Ok(zip_taken(taken, metas));
        }
        // Nobody will get these: back they go before the failure is told.
        let back: Vec<QueuedRef> = failed.iter().map(|(i, _)| taken[*i].clone()).collect();
        if let Err(again) = self.requeue_on(server, queue, &back).await {
            error!(%queue, error = %again, "messages taken but neither marked nor put back");
        }
        if failed.len() == taken.len() {
            return Err(failed.swap_remove(0).1);
        }
        warn!(%queue, count = failed.len(), error = %failed[0].1, "messages put back: their transactions' server failed");
        let (taken, metas) = (taken.into_iter().zip(metas).enumerate())
            .filter(|(i, _)| !failed.iter().any(|(f, _)| f == i))
            .map(|(_, pair)| pair)
            .unzip();
        Ok(zip_taken(taken, metas))
    }
}

fn zip_taken(taken: Vec<QueuedRef>, metas: Vec<Option<Meta>>) -> Vec<TakenRef> {
    (taken.into_iter().zip(metas))
        .map(|(queued, meta)| TakenRef { queued, meta })
        .collect()
}
