//! Groups and secure queues' credentials in the Redis store.
//!
//! One concern of the backend, split out of its module: it uses the module's types and helpers
//! as its own.

use super::*;

#[async_trait]
impl Directory for RedisStore {
    async fn group_add(&self, name: &str, members: &[String]) -> StoreResult<()> {
        let server = &self.regional;
        let keys = &server.keys;
        server
            .conn()
            .sadd::<_, _, ()>(keys.group(name), members)
            .await
            .map_err(|e| server.error(e))
    }

    async fn group_members(&self, name: &str) -> StoreResult<Vec<String>> {
        let server = &self.regional;
        let keys = &server.keys;
        server
            .conn()
            .smembers(keys.group(name))
            .await
            .map_err(|e| server.error(e))
    }

    async fn group_change(
        &self,
        name: &str,
        add: &[String],
        remove: &[String],
    ) -> StoreResult<bool> {
        let server = &self.regional;
        let keys = &server.keys;
        let found: i64 = scripts::GROUP_CHANGE
            .key(keys.group(name))
            .arg(add.len())
            .arg(add)
            .arg(remove)
            .invoke_async(&mut server.conn())
            .await
            .map_err(|e| server.error(e))?;
        Ok(found == 1)
    }

    async fn group_delete(&self, name: &str) -> StoreResult<()> {
        let server = &self.regional;
        let keys = &server.keys;
        server
            .conn()
            .del::<_, ()>(keys.group(name))
            .await
            .map_err(|e| server.error(e))
    }

    async fn create_secure_queue(
        &self,
        shard: ShardId,
        queue: &QueueName,
        credential: &str,
    ) -> StoreResult<bool> {
        let server = self.shard(shard);
        server
            .conn()
            .set_nx(server.keys.secure_queue(queue), credential)
            .await
            .map_err(|e| server.error(e))
    }

    async fn secure_queue_credential(
        &self,
        shard: ShardId,
        queue: &QueueName,
    ) -> StoreResult<Option<String>> {
        let server = self.shard(shard);
        server
            .conn()
            .get(server.keys.secure_queue(queue))
            .await
            .map_err(|e| server.error(e))
    }
}
