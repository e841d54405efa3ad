//! Where desktops are attached, and the other regions known, in the embedded store.
//!
//! One concern of the backend, split out of its module: it uses the module's types and helpers
//! as its own.

use super::*;

#[async_trait]
impl Locations for MemoryStore {
    async fn attach(&self, customer: &str, location: &Location, ttl: Duration) -> StoreResult<()> {
        let until = Instant::now() + ttl;
        let mut locations = lock(&self.locations);
        // Expired records go now and then, so that the map does not only grow.
        if locations.len() % 1024 == 1023 {
            let now = Instant::now();
            locations.retain(|_, (_, until)| *until > now);
        }
        locations.insert(customer.to_owned(), (location.clone(), until));
        Ok(())
    }

    async fn locate(&self, customer: &str) -> StoreResult<Option<Location>> {
        Ok(lock(&self.locations)
            .get(customer)
            .filter(|(_, until)| *until > Instant::now())
            .map(|(location, _)| location.clone()))
    }

    async fn member_add(&self, server: &str) -> StoreResult<()> {
        lock(&self.members).entry(server.to_owned()).or_insert(0);
        Ok(())
    }

    async fn members(&self) -> StoreResult<Vec<(String, u32)>> {
        Ok(lock(&self.members)
            .iter()
            .map(|(server, failed)| (server.clone(), *failed))
            .collect())
    }

    async fn member_failed(&self, server: &str, limit: u32) -> StoreResult<bool> {
        let mut members = lock(&self.members);
        let Some(failed) = members.get_mut(server) else {
            return Ok(false);
        };
        *failed += 1;
        if *failed > limit {
            members.remove(server);
            return Ok(true);
        }
        Ok(false)
    }

    async fn member_ok(&self, server: &str) -> StoreResult<()> {
        if let Some(failed) = lock(&self.members).get_mut(server) {
            *failed = 0;
        }
        Ok(())
    }
}
