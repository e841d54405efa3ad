//! Statistics archives in the Redis store, on the transactions server.
//!
//! One concern of the backend, split out of its module: it uses the module's types and helpers
//! as its own.

use super::*;

#[async_trait]
impl Archives for RedisStore {
    async fn archive_put(&self, node: &str, slots: &[(u64, usize, String)]) -> StoreResult<()> {
        let server = &self.transactions;
        let mut pipe = ::redis::pipe();
        pipe.sadd(keys::ARCHIVE_NODES, node);
        for (span, slot, record) in slots {
            pipe.hset(keys::archive(node, *span), slot, record);
        }
        pipe.query_async::<()>(&mut server.conn())
            .await
            .map_err(|e| server.error(e))
    }

    async fn archive_slots(&self, node: &str, span: u64) -> StoreResult<Vec<(usize, String)>> {
        let server = &self.transactions;
        server
            .conn()
            .hgetall(keys::archive(node, span))
            .await
            .map_err(|e| server.error(e))
    }

    async fn archive_nodes(&self) -> StoreResult<Vec<String>> {
        let server = &self.transactions;
        server
            .conn()
            .smembers(keys::ARCHIVE_NODES)
            .await
            .map_err(|e| server.error(e))
    }
}
