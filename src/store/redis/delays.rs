//! Pushes held back by `delay`, in the Redis store.
//!
//! One concern of the backend, split out of its module: it uses the module's types and helpers
//! as its own.

use super::*;

#[async_trait]
impl Delays for RedisStore {
    async fn schedule(
        &self,
        tx: &NewTransaction,
        push: &DelayedPush,
        due_ms: i64,
    ) -> StoreResult<TxId> {
        // Held pushes are the region's, on one server; the transaction joins them there, so
        // that it and its push are stored in one step (the inbox places its id so).
        let server = &self.regional;
        let keys = &server.keys;
        if !self.tx_server(&tx.id).same(server) {
            return Err(StoreError::Backend {
                shard: server.name.to_string(),
                reason: format!(
                    "a held push's transaction ({}) must live on the first shard",
                    tx.id
                ),
            });
        }
        let mut pipe = ::redis::pipe();
        pipe.atomic();
        self.provision_commands(&mut pipe, &server.keys, tx.into(), Some(tx), &[]);
        let record = serde_json::to_string(push).expect("held pushes serialise");
        let lifetime = (tx.expires_at - unix_now()).max(1) as u64;
        pipe.set_ex(keys.delayed(&tx.id), record, lifetime).zadd(
            keys.delayed_due(),
            tx.id.as_str(),
            due_ms,
        );
        let keys = |once: &str| vec![keys.once(once)];
        let marks = Marks::of(tx.once.as_deref(), keys, &tx.id, tx.expires_at);
        let held = self.send(server, pipe, marks).await?;
        Ok(held.map_or_else(|| tx.id.clone(), TxId::from))
    }

    async fn claim_due(
        &self,
        now_ms: i64,
        lease_until_ms: i64,
        max: usize,
    ) -> StoreResult<Vec<DelayedPush>> {
        let server = &self.regional;
        let keys = &server.keys;
        let records: Vec<String> = scripts::CLAIM_DUE
            .key(keys.delayed_due())
            .key(keys.steady())
            .arg(now_ms)
            .arg(lease_until_ms)
            .arg(max)
            .invoke_async(&mut server.conn())
            .await
            .map_err(|e| server.error(e))?;
        Ok(records
            .iter()
            .filter_map(|r| match serde_json::from_str(r) {
                Ok(push) => Some(push),
                Err(e) => {
                    error!(record = %r, error = %e, "unreadable held push; skipped");
                    None
                }
            })
            .collect())
    }

    async fn settle_due(&self, id: &TxId) -> StoreResult<()> {
        let server = &self.regional;
        let keys = &server.keys;
        let mut pipe = ::redis::pipe();
        (pipe.atomic().zrem(keys.delayed_due(), id.as_str()).ignore())
            .del(keys.delayed(id))
            .ignore();
        server.multi(&pipe, self.recovery).await
    }
}
