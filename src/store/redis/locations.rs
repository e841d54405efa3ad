//! Where desktops are attached, and the other regions known, in the Redis store.
//!
//! One concern of the backend, split out of its module: it uses the module's types and helpers
//! as its own.

use super::*;

#[async_trait]
impl Locations for RedisStore {
    async fn attach(&self, customer: &str, location: &Location, ttl: Duration) -> StoreResult<()> {
        let server = &self.regional;
        let keys = &server.keys;
        let record = serde_json::to_string(location).expect("locations serialise");
        let ttl_ms = ttl.as_millis().clamp(1, u64::MAX as u128) as u64;
        ::redis::cmd("SET")
            .arg(keys.location(customer))
            .arg(record)
            .arg("PX")
            .arg(ttl_ms)
            .query_async::<()>(&mut server.conn())
            .await
            .map_err(|e| server.error(e))
    }

    async fn locate(&self, customer: &str) -> StoreResult<Option<Location>> {
        let server = &self.regional;
        let keys = &server.keys;
        let record: Option<String> = server
            .conn()
            .get(keys.location(customer))
            .await
            .map_err(|e| server.error(e))?;
        Ok(record.and_then(|r| serde_json::from_str(&r).ok()))
    }

    async fn member_add(&self, server_name: &str) -> StoreResult<()> {
        let server = &self.regional;
        let keys = &server.keys;
        server
            .conn()
            .hset_nx::<_, _, _, ()>(keys.members(), server_name, 0)
            .await
            .map_err(|e| server.error(e))
    }

    async fn members(&self) -> StoreResult<Vec<(String, u32)>> {
        let server = &self.regional;
        let keys = &server.keys;
        let members: HashMap<String, u32> = server
            .conn()
            .hgetall(keys.members())
            .await
            .map_err(|e| server.error(e))?;
        let mut members: Vec<_> = members.into_iter().collect();
        members.sort();
        Ok(members)
    }

    async fn member_failed(&self, server_name: &str, limit: u32) -> StoreResult<bool> {
        let server = &self.regional;
        let keys = &server.keys;
        let removed: i64 = scripts::MEMBER_FAILED
            .key(keys.members())
            .arg(server_name)
            .arg(limit)
            .invoke_async(&mut server.conn())
            .await
            .map_err(|e| server.error(e))?;
        Ok(removed == 1)
    }

    async fn member_ok(&self, server_name: &str) -> StoreResult<()> {
        let server = &self.regional;
        let keys = &server.keys;
        scripts::MEMBER_OK
            .key(keys.members())
            .arg(server_name)
            .invoke_async::<()>(&mut server.conn())
            .await
            .map_err(|e| server.error(e))
    }
}
