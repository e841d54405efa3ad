//! Pushes held back by `delay`, in the embedded store.
//!
//! One concern of the backend, split out of its module: it uses the module's types and helpers
//! as its own.

use super::*;

#[async_trait]
impl Delays for MemoryStore {
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
}
