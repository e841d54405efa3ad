//! The queues and transactions of the embedded store.
//!
//! One concern of the backend, split out of its module: it uses the module's types and helpers
//! as its own.

use super::*;

#[async_trait]
impl Queues for MemoryStore {
    fn shards(&self) -> usize {
        self.queues.len()
    }

    fn shard_name(&self, shard: ShardId) -> String {
        format!("memory/{shard}")
    }

    fn notifications(&self, _shard: ShardId) -> Option<Notifications> {
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

    async fn requeue_unacked(
        &self,
        shard: ShardId,
        now_ms: i64,
    ) -> StoreResult<(Vec<QueueName>, u64)> {
        if now_ms < self.unacked_due[shard].load(Ordering::Relaxed) {
            return Ok((Vec::new(), 0));
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
        let (mut requeued, mut messages) = (Vec::new(), 0);
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
                messages += back.len() as u64;
                requeued.push(queue);
            }
        }
        Ok((requeued, messages))
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
}
