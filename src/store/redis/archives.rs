//! Statistics archives in the Redis store, on the regional server.
//!
//! One concern of the backend, split out of its module: it uses the module's types and helpers
//! as its own.

use super::*;

#[async_trait]
impl Archives for RedisStore {
    async fn archive_put(
        &self,
        node: &str,
        at: i64,
        slots: &[(u64, usize, String)],
    ) -> StoreResult<()> {
        let server = &self.regional;
        let keys = &server.keys;
        let mut pipe = ::redis::pipe();
        pipe.hset(keys.archive_nodes(), node, at);
        for (span, slot, record) in slots {
            pipe.hset(keys.archive(node, *span), slot, record);
        }
        server.pipeline(&pipe).await
    }

    async fn archive_slots(
        &self,
        node: &str,
        span: u64,
        slots: &[usize],
    ) -> StoreResult<Vec<(usize, String)>> {
        if slots.is_empty() {
            return Ok(Vec::new());
        }
        let server = &self.regional;
        let keys = &server.keys;
        let records: Vec<Option<String>> = server
            .conn()
            .hmget(keys.archive(node, span), slots)
            .await
            .map_err(|e| server.error(e))?;
        let written = slots.iter().zip(records);
        Ok(written.filter_map(|(i, r)| r.map(|r| (*i, r))).collect())
    }

    async fn archive_nodes(&self) -> StoreResult<BTreeMap<String, i64>> {
        let server = &self.regional;
        let keys = &server.keys;
        server
            .conn()
            .hgetall(keys.archive_nodes())
            .await
            .map_err(|e| server.error(e))
    }

    async fn alert_lease(&self, holder: &str, ttl: Duration) -> StoreResult<bool> {
        let server = &self.regional;
        let keys = &server.keys;
        let current: Option<String> = scripts::LEASE
            .key(keys.alert_lease())
            .arg(holder)
            .arg(ttl.as_millis().max(1) as u64)
            .arg("1")
            .invoke_async(&mut server.conn())
            .await
            .map_err(|e| server.error(e))?;
        Ok(current.as_deref() == Some(holder))
    }

    async fn alert_book(&self) -> StoreResult<BTreeMap<String, String>> {
        let server = &self.regional;
        let keys = &server.keys;
        server
            .conn()
            .hgetall(keys.alert_book())
            .await
            .map_err(|e| server.error(e))
    }

    async fn alert_note(&self, key: &str, record: Option<&str>) -> StoreResult<()> {
        let server = &self.regional;
        let keys = &server.keys;
        let mut conn = server.conn();
        let noted = match record {
            Some(record) => conn.hset(keys.alert_book(), key, record).await,
            None => conn.hdel(keys.alert_book(), key).await,
        };
        noted.map_err(|e| server.error(e))
    }
}
