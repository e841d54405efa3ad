//! The customer-ID pool, its lease and every node's blocks, in the Redis store.
//!
//! One concern of the backend, split out of its module: it uses the module's types and helpers
//! as its own.

use super::*;

#[async_trait]
impl IdBooks for RedisStore {
    async fn pool(&self) -> StoreResult<Option<IdRange>> {
        let server = &self.regional;
        let keys = &server.keys;
        let (from, to): (Option<u64>, Option<u64>) = ::redis::cmd("HMGET")
            .arg(keys.pool())
            .arg("from")
            .arg("to")
            .query_async(&mut server.conn())
            .await
            .map_err(|e| server.error(e))?;
        Ok(from.zip(to).map(|(from, to)| IdRange { from, to }))
    }

    async fn pool_seed(&self, pool: IdRange, replace: bool) -> StoreResult<bool> {
        let server = &self.regional;
        let keys = &server.keys;
        let set: i64 = scripts::POOL_SEED
            .key(keys.pool())
            .arg(pool.from)
            .arg(pool.to)
            .arg(if replace { "1" } else { "0" })
            .invoke_async(&mut server.conn())
            .await
            .map_err(|e| server.error(e))?;
        Ok(set == 1)
    }

    async fn pool_lease(
        &self,
        holder: &str,
        ttl: Duration,
        take: bool,
    ) -> StoreResult<Option<String>> {
        let server = &self.regional;
        let keys = &server.keys;
        scripts::LEASE
            .key(keys.pool_lease())
            .arg(holder)
            .arg(ttl.as_millis().max(1) as u64)
            .arg(if take { "1" } else { "0" })
            .invoke_async(&mut server.conn())
            .await
            .map_err(|e| server.error(e))
    }

    async fn pool_cut(&self, holder: &str, size: u64) -> StoreResult<PoolCut> {
        let server = &self.regional;
        let keys = &server.keys;
        let cut: Vec<i64> = scripts::POOL_CUT
            .key(keys.pool())
            .key(keys.pool_lease())
            .arg(holder)
            .arg(size)
            .invoke_async(&mut server.conn())
            .await
            .map_err(|e| server.error(e))?;
        self.confirm(server).await?;
        Ok(match cut.as_slice() {
            [1, from, to] => PoolCut::Block(IdRange {
                from: *from as u64,
                to: *to as u64,
            }),
            [-1] => PoolCut::NotHolder,
            _ => PoolCut::Exhausted,
        })
    }

    async fn blocks(&self) -> StoreResult<BTreeMap<String, Vec<IdRange>>> {
        let server = &self.regional;
        let keys = &server.keys;
        let mut conn = server.conn();
        let owners: Vec<String> = conn
            .smembers(keys.block_owners())
            .await
            .map_err(|e| server.error(e))?;
        let mut blocks = BTreeMap::new();
        for owner in owners {
            let entries: Vec<String> = conn
                .lrange(keys.blocks(&owner), 0, -1)
                .await
                .map_err(|e| server.error(e))?;
            let ranges = entries
                .iter()
                .filter_map(|e| {
                    let (from, to) = e.split_once('-')?;
                    Some(IdRange {
                        from: from.parse().ok()?,
                        to: to.parse().ok()?,
                    })
                })
                .filter(|r| !r.is_empty())
                .collect();
            blocks.insert(owner, ranges);
        }
        Ok(blocks)
    }

    async fn block_add(&self, node: &str, block: IdRange) -> StoreResult<()> {
        let server = &self.regional;
        let keys = &server.keys;
        let mut pipe = ::redis::pipe();
        (pipe
            .atomic()
            .rpush(keys.blocks(node), block.to_string())
            .ignore())
        .sadd(keys.block_owners(), node)
        .ignore();
        server.multi(&pipe, self.recovery).await
    }

    async fn block_take(&self, node: &str, max: u64) -> StoreResult<Option<(IdRange, u64)>> {
        let server = &self.regional;
        let keys = &server.keys;
        let taken: Vec<i64> = scripts::BLOCK_TAKE
            .key(keys.blocks(node))
            .arg(max)
            .invoke_async(&mut server.conn())
            .await
            .map_err(|e| server.error(e))?;
        Ok(match taken.as_slice() {
            [1, from, to, left] => Some((
                IdRange {
                    from: *from as u64,
                    to: *to as u64,
                },
                *left as u64,
            )),
            _ => None,
        })
    }
}
