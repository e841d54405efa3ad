//! What the operators see of a customer's session, and the drain of its polls.

use std::time::Instant;

use actix::prelude::*;

use super::CustomerSession;

/// The session as the operators see it (`GET /admin/desktops`, `/admin/connections`).
#[derive(Message)]
#[rtype(result = "DesktopView")]
pub struct Describe;

#[derive(Debug, Clone)]
pub struct DesktopView {
    pub customer: String,
    /// Between two polls of the desktop's, or polling.
    pub present: bool,
    /// How long each held poll has waited, in milliseconds, oldest first.
    pub polls_ms: Vec<u64>,
    /// How long each app request waiting for a poll has waited, in milliseconds.
    pub apps_ms: Vec<u64>,
    /// Interactions under way (a request or reply being streamed, or a reply awaited).
    pub interactions: usize,
}

/// Answers every held poll "no client" now (the node is draining).
#[derive(Message)]
#[rtype(result = "()")]
pub struct DrainPolls;

fn waited(since: Instant) -> u64 {
    since.elapsed().as_millis() as u64
}

impl Handler<Describe> for CustomerSession {
    type Result = MessageResult<Describe>;

    fn handle(&mut self, _: Describe, _ctx: &mut Self::Context) -> Self::Result {
        let mut polls_ms: Vec<u64> = self.polls.iter().map(|p| waited(p.since)).collect();
        polls_ms.sort_unstable_by(|a, b| b.cmp(a));
        MessageResult(DesktopView {
            customer: self.customer.clone(),
            present: self.present() || !self.polls.is_empty(),
            polls_ms,
            apps_ms: self.apps.iter().map(|a| waited(a.arrived)).collect(),
            interactions: self.interactions.len(),
        })
    }
}

impl Handler<DrainPolls> for CustomerSession {
    type Result = ();

    fn handle(&mut self, _: DrainPolls, ctx: &mut Self::Context) {
        let ids: Vec<u64> = (self.polls.iter())
            .map(|poll| {
                ctx.cancel_future(poll.timer);
                poll.id
            })
            .collect();
        for id in ids {
            self.poll_timed_out(id);
        }
    }
}
