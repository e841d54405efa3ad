//! A lease in the embedded store: one holder at a time, until it runs out unrenewed. Kept in
//! memory only (a restarted node takes it anew).

use std::time::{Duration, Instant};

#[derive(Debug, Default)]
pub struct Lease(Option<(String, Instant)>);

impl Lease {
    /// Who holds the lease, after taking or renewing it for `holder` (if `take` and it is free
    /// or already `holder`'s).
    pub fn holder(&mut self, holder: &str, ttl: Duration, take: bool) -> Option<String> {
        let now = Instant::now();
        match self.0.as_ref().filter(|(_, until)| *until > now) {
            Some((current, _)) if current != holder || !take => Some(current.clone()),
            _ if take => {
                self.0 = Some((holder.to_owned(), now + ttl));
                Some(holder.to_owned())
            }
            _ => None,
        }
    }

    /// Whether `holder` holds the lease now.
    pub fn held_by(&self, holder: &str) -> bool {
        (self.0.as_ref())
            .is_some_and(|(current, until)| current == holder && *until > Instant::now())
    }
}
