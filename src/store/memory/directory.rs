//! Groups and secure queues' credentials in the embedded store.
//!
//! One concern of the backend, split out of its module: it uses the module's types and helpers
//! as its own.

use super::*;

#[async_trait]
impl Directory for MemoryStore {
    async fn group_add(&self, name: &str, members: &[String]) -> StoreResult<()> {
        lock(&self.groups)
            .entry(name.to_owned())
            .or_default()
            .extend(members.iter().cloned());
        Ok(())
    }

    async fn group_members(&self, name: &str) -> StoreResult<Vec<String>> {
        Ok(lock(&self.groups)
            .get(name)
            .map(|g| g.iter().cloned().collect())
            .unwrap_or_default())
    }

    async fn group_change(
        &self,
        name: &str,
        add: &[String],
        remove: &[String],
    ) -> StoreResult<bool> {
        let mut groups = lock(&self.groups);
        let Some(group) = groups.get_mut(name) else {
            return Ok(false);
        };
        group.extend(add.iter().cloned());
        group.retain(|m| !remove.contains(m));
        if group.is_empty() {
            groups.remove(name);
        }
        Ok(true)
    }

    async fn group_delete(&self, name: &str) -> StoreResult<()> {
        lock(&self.groups).remove(name);
        Ok(())
    }

    async fn create_secure_queue(
        &self,
        _shard: ShardId,
        queue: &QueueName,
        credential: &str,
    ) -> StoreResult<bool> {
        let mut credentials = lock(&self.credentials);
        if credentials.contains_key(queue.key()) {
            return Ok(false);
        }
        credentials.insert(queue.key().to_owned(), credential.to_owned());
        Ok(true)
    }

    async fn secure_queue_credential(
        &self,
        _shard: ShardId,
        queue: &QueueName,
    ) -> StoreResult<Option<String>> {
        Ok(lock(&self.credentials).get(queue.key()).cloned())
    }
}
