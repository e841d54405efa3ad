//! The customer-ID pool, its lease and every node's blocks, in the embedded store.
//!
//! One concern of the backend, split out of its module: it uses the module's types and helpers
//! as its own.

use super::*;

#[async_trait]
impl IdBooks for MemoryStore {
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
}
