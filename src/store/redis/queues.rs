//! The queues and transactions of the Redis store.
//!
//! One concern of the backend, split out of its module: it uses the module's types and helpers
//! as its own.

use super::*;

#[async_trait]
impl Queues for RedisStore {
    fn shards(&self) -> usize {
        self.shards.len()
    }

    fn shard_name(&self, shard: ShardId) -> String {
        self.shard(shard).name.to_string()
    }

    async fn ping(&self) -> StoreResult<()> {
        for server in self.servers() {
            server.ping().await?;
        }
        Ok(())
    }

    async fn ping_shard(&self, shard: ShardId) -> StoreResult<()> {
        self.shard(shard).ping().await
    }

    fn meters(&self) -> Vec<(String, Arc<CallMeter>)> {
        (self.servers().into_iter())
            .map(|server| (server.name.to_string(), Arc::clone(&server.meter)))
            .collect()
    }

    fn places_transactions(&self) -> bool {
        matches!(self.transactions, Placement::Spread(_)) && self.distinct_shards() > 1
    }

    fn demotions(&self) -> Option<tokio::sync::watch::Receiver<Option<String>>> {
        Some(self.demoted.subscribe())
    }

    fn notifications(&self, shard: ShardId) -> Option<Notifications> {
        Some(subscriber::spawn(
            self.shard(shard),
            self.hub.clone(),
            Arc::clone(&self.origin),
        ))
    }

    async fn settle(&self, within: Duration) -> usize {
        let mut returning = self.returning.subscribe();
        let _ = tokio::time::timeout(within, returning.wait_for(|n| *n == 0)).await;
        *returning.borrow()
    }

    async fn provision(
        &self,
        shard: ShardId,
        tx: &NewTransaction,
        queues: &[QueueName],
    ) -> StoreResult<TxId> {
        let (server, once) = (self.shard(shard), tx.once.as_deref());
        // Stored on its own server, and pushed in the same step when the queues are there too
        // (the inbox places new ids so that they are).
        let home = self.tx_server(&tx.id);
        let together = server.same(home);
        let keys = &home.keys;
        let (here, marks) = if together {
            let keys = |once: &str| vec![keys.once(once), keys.once_pushed(once, shard)];
            (queues, Marks::of(once, keys, &tx.id, tx.expires_at))
        } else {
            let keys = |once: &str| vec![keys.once(once)];
            (&[][..], Marks::of(once, keys, &tx.id, tx.expires_at))
        };
        let held = (self.run_provision(home, tx, Some(tx), here, marks)).await?;
        if together && held.is_none() {
            return Ok(tx.id.clone());
        }
        // The queues are elsewhere, or an earlier request with the key made the transaction
        // (pushing it wherever its own first shard was): push it here, once.
        let id = held.unwrap_or_else(|| tx.id.clone());
        let target = PushTarget {
            id: &id,
            priority: tx.priority,
            expires_at: tx.expires_at,
        };
        let keys = |once: &str| vec![server.keys.once_pushed(once, shard)];
        let marks = Marks::of(once, keys, &id, tx.expires_at);
        self.run_provision(server, target, None, queues, marks)
            .await?;
        Ok(id)
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
        let target = PushTarget {
            id: tx,
            priority,
            expires_at,
        };
        let server = self.shard(shard);
        let keys = |once: &str| vec![server.keys.once_pushed(once, shard)];
        let marks = Marks::of(once, keys, tx, expires_at);
        self.run_provision(server, target, None, queues, marks)
            .await
            .map(drop)
    }

    async fn extend_queues(
        &self,
        shard: ShardId,
        queues: &[QueueName],
        expires_at: i64,
    ) -> StoreResult<()> {
        let ttl = expires_at - unix_now();
        if queues.is_empty() || ttl <= 0 {
            return Ok(());
        }
        let server = self.shard(shard);
        let mut invocation = scripts::EXTEND.prepare_invoke();
        for queue in queues {
            invocation
                .key(server.keys.list(queue, Priority::High))
                .key(server.keys.list(queue, Priority::Low));
        }
        invocation.arg(ttl);
        invocation
            .invoke_async::<i64>(&mut server.conn())
            .await
            .map(drop)
            .map_err(|e| server.error(e))
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
        let server = self.shard(shard);
        let keys = &server.keys;
        // The take marks the transactions that live here itself: one round trip for the
        // common case, a message whose transaction was placed with its queue.
        let together = self.marks_on(server);
        let token = keys.token();
        let now = unix_now_ms();
        let due = mark.ack_deadline(now);
        // The script records the state change only when it marks here too.
        let line = if together {
            history_line(queue.id(), mark.state(), now)
        } else {
            String::new()
        };
        let mut retry = false;
        let (high, low, metas): (Vec<String>, Vec<String>, Vec<::redis::Value>) = self
            .retrying(server, || {
                let mut invocation = self.scripts().take.key(keys.list(queue, Priority::High));
                invocation
                    .key(keys.list(queue, Priority::Low))
                    .key(&token)
                    .key(keys.user_info(queue))
                    .key(keys.unacked())
                    .key(keys.node_waits(&self.origin))
                    .key(keys.steady())
                    .arg(max)
                    .arg(self.token_lifetime)
                    .arg(if together { queue.id() } else { "" })
                    .arg(mark.state().as_str())
                    .arg(popped_at.map(|t| t.to_string()).unwrap_or_default())
                    .arg(accounting.count_if_empty)
                    .arg(if accounting.uncount_if_taken { "1" } else { "" })
                    .arg(due.map(|t| t.to_string()).unwrap_or_default())
                    .arg(queue.key())
                    .arg(queue.id())
                    .arg(&line)
                    .arg(if retry { "1" } else { "" })
                    .arg(&*self.waiting_field);
                retry = true;
                let mut conn = server.conn();
                async move { invocation.invoke_async(&mut conn).await }
            })
            .await
            .inspect_err(|e| {
                if matches!(e, StoreError::Unavailable { .. }) {
                    self.return_taken_later(server, queue, &token, together);
                }
            })?;
        let taken = refs(high, low);
        let mut metas: Vec<Option<Meta>> = (metas.into_iter())
            .map(|meta| decode_meta(server, meta))
            .collect();
        metas.resize(taken.len(), None);
        self.mark_elsewhere(server, queue, mark.state(), taken, metas)
            .await
    }

    async fn requeue(
        &self,
        shard: ShardId,
        queue: &QueueName,
        refs: &[QueuedRef],
    ) -> StoreResult<()> {
        let marked = self
            .per_tx_server(
                refs,
                |r| &r.tx,
                |server, refs| async move {
                    let pending = DeliveryState::Pending;
                    (self.retrying(server, || self.mark_on(server, &refs, queue, pending))).await
                },
            )
            .await;
        // Back go all but those found gone: one whose state could not be reset is back in
        // its queue all the same, with a stale state until it is taken again.
        let mut live = Vec::with_capacity(refs.len());
        for (r, marked) in refs.iter().zip(marked) {
            match marked {
                Ok(None) => {}
                Ok(Some(_)) => live.push(r.clone()),
                Err(e) => {
                    warn!(%queue, tx = %r.tx, error = %e, "put back with its state not reset to Pending");
                    live.push(r.clone());
                }
            }
        }
        self.requeue_on(self.shard(shard), queue, &live).await
    }

    async fn ack(&self, shard: ShardId, queue: &QueueName, ids: &[TxId]) -> StoreResult<Vec<bool>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let line = history_line(queue.id(), DeliveryState::Delivered, unix_now_ms());
        let found = self
            .per_tx_server(
                ids,
                |id| id,
                |server, ids| {
                    let line = &line;
                    async move {
                        let mut invocation = self.scripts().ack_states.prepare_invoke();
                        for id in ids {
                            invocation.key(self.record().name(&server.keys, id));
                        }
                        let found: Vec<i64> = invocation
                            .arg(queue.id())
                            .arg(line)
                            .invoke_async(&mut server.conn())
                            .await
                            .map_err(|e| server.error(e))?;
                        // The acknowledged states must survive a failover before the delivery
                        // leaves the set; a lost `FORGET_UNACKED` is not harmful (the sweep finds
                        // the state acknowledged and does not return the message).
                        self.confirm(server).await?;
                        Ok(found.into_iter().map(|f| f == 1).collect())
                    }
                },
            )
            .await;
        let acked: Vec<&str> = (ids.iter().zip(&found))
            .filter(|(_, found)| matches!(found, Ok(true)))
            .map(|(id, _)| id.as_str())
            .collect();
        if !acked.is_empty() {
            let server = self.shard(shard);
            let keys = &server.keys;
            scripts::FORGET_UNACKED
                .key(keys.unacked())
                .arg(queue.key())
                .arg(queue.id())
                .arg(acked)
                .invoke_async::<i64>(&mut server.conn())
                .await
                .map_err(|e| server.error(e))?;
        }
        // Those whose server failed are told by the error; acknowledging again is harmless.
        found.into_iter().collect()
    }

    /// Three steps, each safe to repeat or to race with another node's: read what is due
    /// (shard), reopen the states that were not acknowledged (transactions server), then
    /// return each to its queue if it is still awaited (shard). A node dying between steps
    /// leaves the members in place for the next sweep.
    async fn requeue_unacked(
        &self,
        shard: ShardId,
        now_ms: i64,
    ) -> StoreResult<(Vec<QueueName>, u64)> {
        let server = self.shard(shard);
        let keys = &server.keys;
        let members: Vec<String> = server
            .conn()
            .zrangebyscore_limit(keys.unacked(), "-inf", now_ms, 0, UNACKED_BATCH)
            .await
            .map_err(|e| server.error(e))?;
        if members.is_empty() {
            return Ok((Vec::new(), 0));
        }
        let due: Vec<(String, QueueName, TxId)> = members
            .into_iter()
            .filter_map(|member| {
                let (key, id, tx): (String, String, String) = serde_json::from_str(&member).ok()?;
                Some((member, QueueName::from_parts(&key, &id)?, TxId::from(tx)))
            })
            .collect();
        let reopened = self.reopen(&due).await;
        // Those whose transaction's server failed stay in the set, due, for the next sweep.
        let mut priorities = Vec::with_capacity(due.len());
        let mut kept = Vec::with_capacity(due.len());
        for (entry, reopened) in due.into_iter().zip(reopened) {
            match reopened {
                Ok(priority) => {
                    priorities.push(priority);
                    kept.push(entry);
                }
                Err(e) => {
                    warn!(error = %e, "a due delivery stays out until its transaction's server answers")
                }
            }
        }
        let due = kept;
        let mut give_back = scripts::RETURN_DUE.key(keys.unacked());
        give_back.key(keys.steady());
        give_back.arg(keys.pushed_prefix()).arg(&*self.origin);
        let mut requeued = Vec::new();
        for ((member, queue, tx), priority) in due.into_iter().zip(priorities) {
            let list = Priority::parse(&priority).map(|p| keys.list(&queue, p));
            give_back
                .arg(member)
                .arg(list.clone().unwrap_or_default())
                .arg(keys::reference(&tx));
            if list.is_some() && !requeued.contains(&queue) {
                requeued.push(queue);
            }
        }
        // Safe to run again (each member goes back once), and retried like a take: with its
        // answer lost, nobody on this node would look at the queues it filled (a node ignores
        // its own announcements). The queues drained are the candidates, whichever attempt
        // moved them.
        let returned = self
            .retrying(server, || {
                let (give_back, mut conn) = (&give_back, server.conn());
                async move { give_back.invoke_async::<i64>(&mut conn).await }
            })
            .await?;
        Ok((requeued, returned.max(0) as u64))
    }

    async fn peek(
        &self,
        shard: ShardId,
        queue: &QueueName,
        max: usize,
    ) -> StoreResult<Vec<Message>> {
        let server = self.shard(shard);
        let keys = &server.keys;
        let (high, low): (Vec<String>, Vec<String>) = scripts::PEEK
            .key(keys.list(queue, Priority::High))
            .key(keys.list(queue, Priority::Low))
            .arg(max)
            .invoke_async(&mut server.conn())
            .await
            .map_err(|e| server.error(e))?;
        let queued = refs(high, low);
        if queued.is_empty() {
            return Ok(Vec::new());
        }
        let payloads = self
            .per_tx_server(
                &queued,
                |r| &r.tx,
                |server, refs| async move {
                    let mut pipe = ::redis::pipe();
                    for r in refs {
                        self.record().load_meta(&mut pipe, &server.keys, &r.tx);
                    }
                    let metas: Vec<::redis::Value> = server.pipeline(&pipe).await?;
                    Ok((metas.into_iter())
                        .map(|meta| decode_meta(server, meta).and_then(|mut m| m.remove("payload")))
                        .collect())
                },
            )
            .await
            .into_iter()
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(queued
            .into_iter()
            .zip(payloads)
            .map(|(r, payload)| Message { tx: r.tx, payload })
            .collect())
    }

    async fn queue_info(
        &self,
        shard: ShardId,
        queue: &QueueName,
        cap: usize,
    ) -> StoreResult<QueueInfo> {
        let server = self.shard(shard);
        let keys = &server.keys;
        let (high, low, last_pop, blocked): (Vec<String>, Vec<String>, Option<i64>, i64) =
            scripts::QUEUE_INFO
                .key(keys.list(queue, Priority::High))
                .key(keys.list(queue, Priority::Low))
                .key(keys.user_info(queue))
                .key(keys.steady())
                .arg(cap as isize - 1)
                .invoke_async(&mut server.conn())
                .await
                .map_err(|e| server.error(e))?;
        Ok(QueueInfo {
            high: high.iter().map(|r| keys::from_reference(r)).collect(),
            low: low.iter().map(|r| keys::from_reference(r)).collect(),
            blocked: blocked > 0,
            last_pop,
        })
    }

    async fn wait_began(&self, shard: ShardId, queue: &QueueName) -> StoreResult<()> {
        self.count_waiter(shard, queue, 1).await
    }

    async fn wait_ended(&self, shard: ShardId, queue: &QueueName) -> StoreResult<()> {
        self.count_waiter(shard, queue, -1).await
    }

    async fn purge_expired(&self, _shard: ShardId, _now: i64) -> StoreResult<usize> {
        // Redis expires transactions and queue lists by itself (EXPIREAT and the lists' TTLs).
        Ok(0)
    }

    async fn transaction(&self, id: &TxId) -> StoreResult<Option<Meta>> {
        self.record().meta(self.tx_server(id), id).await
    }

    async fn states(&self, id: &TxId) -> StoreResult<BTreeMap<String, DeliveryState>> {
        let raw = self.record().states(self.tx_server(id), id).await?;
        Ok(raw
            .into_iter()
            .filter_map(|(q, s)| DeliveryState::parse(&s).map(|s| (q, s)))
            .collect())
    }

    async fn history(&self, id: &TxId) -> StoreResult<Vec<StateChange>> {
        let lines = self.record().history(self.tx_server(id), id).await?;
        Ok(lines
            .iter()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect())
    }

    async fn update_transaction(
        &self,
        id: &TxId,
        fields: &Meta,
        expires_at: Option<i64>,
    ) -> StoreResult<bool> {
        let server = self.tx_server(id);
        let mut invocation = self
            .scripts()
            .update
            .key(self.record().name(&server.keys, id));
        invocation.arg(expires_at.map(|at| at.to_string()).unwrap_or_default());
        for (k, v) in fields {
            invocation.arg(k).arg(v);
        }
        let found: i64 =
            (invocation.invoke_async(&mut server.conn()).await).map_err(|e| server.error(e))?;
        Ok(found == 1)
    }

    async fn delete_transaction(&self, id: &TxId) -> StoreResult<()> {
        let server = self.tx_server(id);
        let keys = self.record().keys(&server.keys, id);
        (server.conn().del::<_, ()>(&keys).await).map_err(|e| server.error(e))
    }
}
