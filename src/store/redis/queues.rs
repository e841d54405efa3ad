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
        for server in self.shards.iter().chain([&self.transactions]) {
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

    fn demotions(&self) -> Option<tokio::sync::watch::Receiver<Option<String>>> {
        Some(self.demoted.subscribe())
    }

    fn notifications(&self, shard: ShardId) -> Option<Notifications> {
        let server = self.shard(shard);
        Some(subscriber::spawn(
            server.client.clone(),
            server.conn(),
            Arc::clone(&server.name),
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
        // Stored on the transactions server, and pushed in the same step when the queues are
        // there too.
        let together = server.name == self.transactions.name;
        let (here, marks) = if together {
            let keys = |once: &str| vec![keys::once(once), keys::once_pushed(once, shard)];
            (queues, Marks::of(once, keys, &tx.id, tx.expires_at))
        } else {
            let keys = |once: &str| vec![keys::once(once)];
            (&[][..], Marks::of(once, keys, &tx.id, tx.expires_at))
        };
        let held = (self.run_provision(&self.transactions, tx, Some(tx), here, marks)).await?;
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
        let keys = |once: &str| vec![keys::once_pushed(once, shard)];
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
        let keys = |once: &str| vec![keys::once_pushed(once, shard)];
        let marks = Marks::of(once, keys, tx, expires_at);
        self.run_provision(self.shard(shard), target, None, queues, marks)
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
        let mut invocation = scripts::EXTEND.prepare_invoke();
        for queue in queues {
            invocation
                .key(keys::list(queue, Priority::High))
                .key(keys::list(queue, Priority::Low));
        }
        invocation.arg(ttl);
        let server = self.shard(shard);
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
        // Marking in the same script saves a round trip when the transactions live here too.
        let together = server.name == self.transactions.name;
        let token = keys::token();
        let now = unix_now_ms();
        let due = mark.ack_deadline(now);
        // The script records the state change only when it marks here too.
        let line = if together {
            history_line(queue.id(), mark.state(), now)
        } else {
            String::new()
        };
        let mut retry = false;
        let (high, low, metas): (Vec<String>, Vec<String>, Vec<Vec<(String, String)>>) = self
            .retrying(server, || {
                let mut invocation = scripts::TAKE.key(keys::list(queue, Priority::High));
                invocation
                    .key(keys::list(queue, Priority::Low))
                    .key(&token)
                    .key(keys::user_info(queue))
                    .key(keys::UNACKED)
                    .key(&*self.waits)
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
        let metas = if together {
            metas
                .into_iter()
                .map(|fields| (!fields.is_empty()).then(|| fields.into_iter().collect()))
                .collect()
        } else {
            let ids: Vec<TxId> = taken.iter().map(|r| r.tx.clone()).collect();
            match self.mark(&ids, queue, mark.state()).await {
                Ok(metas) => metas,
                Err(e) => {
                    // Nobody will get these: put them back before reporting the failure.
                    if let Err(again) = self.requeue_on(server, queue, &taken).await {
                        error!(%queue, error = %again, "messages taken but neither marked nor put back");
                    }
                    return Err(e);
                }
            }
        };
        Ok(taken
            .into_iter()
            .zip(metas)
            .map(|(queued, meta)| TakenRef { queued, meta })
            .collect())
    }

    async fn requeue(
        &self,
        shard: ShardId,
        queue: &QueueName,
        refs: &[QueuedRef],
    ) -> StoreResult<()> {
        let ids: Vec<TxId> = refs.iter().map(|r| r.tx.clone()).collect();
        let metas = self
            .retrying(&self.transactions, || {
                self.mark(&ids, queue, DeliveryState::Pending)
            })
            .await?;
        let live: Vec<QueuedRef> = refs
            .iter()
            .zip(metas)
            .filter(|(_, meta)| meta.is_some())
            .map(|(r, _)| r.clone())
            .collect();
        self.requeue_on(self.shard(shard), queue, &live).await
    }

    async fn ack(&self, shard: ShardId, queue: &QueueName, ids: &[TxId]) -> StoreResult<Vec<bool>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let found: Vec<bool> = scripts::ACK_STATES
            .arg(queue.id())
            .arg(history_line(
                queue.id(),
                DeliveryState::Delivered,
                unix_now_ms(),
            ))
            .arg(ids.iter().map(TxId::as_str).collect::<Vec<_>>())
            .invoke_async::<Vec<i64>>(&mut self.transactions.conn())
            .await
            .map_err(|e| self.transactions.error(e))?
            .into_iter()
            .map(|f| f == 1)
            .collect();
        let acked: Vec<&str> = ids
            .iter()
            .zip(&found)
            .filter(|(_, found)| **found)
            .map(|(id, _)| id.as_str())
            .collect();
        if !acked.is_empty() {
            let server = self.shard(shard);
            scripts::FORGET_UNACKED
                .key(keys::UNACKED)
                .arg(queue.key())
                .arg(queue.id())
                .arg(acked)
                .invoke_async::<i64>(&mut server.conn())
                .await
                .map_err(|e| server.error(e))?;
        }
        // The acknowledged states must survive a failover; a lost `FORGET_UNACKED` is not
        // harmful (the sweep finds the state acknowledged and does not return the message).
        self.confirm(&self.transactions).await?;
        Ok(found)
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
        let members: Vec<String> = server
            .conn()
            .zrangebyscore_limit(keys::UNACKED, "-inf", now_ms, 0, UNACKED_BATCH)
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
        let mut reopen = scripts::REOPEN.prepare_invoke();
        let now = unix_now_ms();
        for (_, queue, tx) in &due {
            let line = history_line(queue.id(), DeliveryState::Pending, now);
            reopen.arg(tx.as_str()).arg(queue.id()).arg(line);
        }
        let priorities: Vec<String> = reopen
            .invoke_async(&mut self.transactions.conn())
            .await
            .map_err(|e| self.transactions.error(e))?;
        let mut give_back = scripts::RETURN_DUE.key(keys::UNACKED);
        give_back.arg(keys::PUSHED_PREFIX).arg(&*self.origin);
        let mut requeued = Vec::new();
        for ((member, queue, tx), priority) in due.into_iter().zip(priorities) {
            let list = Priority::parse(&priority).map(|p| keys::list(&queue, p));
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
        let (high, low): (Vec<String>, Vec<String>) = scripts::PEEK
            .key(keys::list(queue, Priority::High))
            .key(keys::list(queue, Priority::Low))
            .arg(max)
            .invoke_async(&mut server.conn())
            .await
            .map_err(|e| server.error(e))?;
        let queued = refs(high, low);
        if queued.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = ::redis::pipe();
        for r in &queued {
            pipe.hget(keys::meta(&r.tx), "payload");
        }
        let payloads: Vec<Option<String>> = pipe
            .query_async(&mut self.transactions.conn())
            .await
            .map_err(|e| self.transactions.error(e))?;
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
        let (high, low, last_pop, blocked): (Vec<String>, Vec<String>, Option<i64>, i64) =
            scripts::QUEUE_INFO
                .key(keys::list(queue, Priority::High))
                .key(keys::list(queue, Priority::Low))
                .key(keys::user_info(queue))
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
        let meta: Meta = self
            .transactions
            .conn()
            .hgetall(keys::meta(id))
            .await
            .map_err(|e| self.transactions.error(e))?;
        Ok((!meta.is_empty()).then_some(meta))
    }

    async fn states(&self, id: &TxId) -> StoreResult<BTreeMap<String, DeliveryState>> {
        let raw: BTreeMap<String, String> = self
            .transactions
            .conn()
            .hgetall(keys::state(id))
            .await
            .map_err(|e| self.transactions.error(e))?;
        Ok(raw
            .into_iter()
            .filter_map(|(q, s)| DeliveryState::parse(&s).map(|s| (q, s)))
            .collect())
    }

    async fn history(&self, id: &TxId) -> StoreResult<Vec<StateChange>> {
        let server = &self.transactions;
        let lines: Vec<String> = server
            .conn()
            .lrange(keys::history(id), 0, -1)
            .await
            .map_err(|e| server.error(e))?;
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
        let mut invocation = scripts::UPDATE.key(keys::meta(id));
        invocation.key(keys::state(id));
        invocation.arg(expires_at.map(|at| at.to_string()).unwrap_or_default());
        for (k, v) in fields {
            invocation.arg(k).arg(v);
        }
        let found: i64 = invocation
            .invoke_async(&mut self.transactions.conn())
            .await
            .map_err(|e| self.transactions.error(e))?;
        Ok(found == 1)
    }

    async fn delete_transaction(&self, id: &TxId) -> StoreResult<()> {
        self.transactions
            .conn()
            .del::<_, ()>(&[keys::meta(id), keys::state(id), keys::history(id)])
            .await
            .map_err(|e| self.transactions.error(e))
    }
}
