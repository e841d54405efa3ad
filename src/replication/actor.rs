//! **ReplicationActor**: owns the node's role. It promotes once however many requests ask (and
//! keeps trying until the set is promoted), fences the node when told, and while a standby
//! keeps the links of its set up to date for readiness.

use std::time::Duration;

use actix::prelude::*;
use tokio::sync::watch;
use tracing::{error, info, warn};

use super::State;
use super::promote::{self, Pair};

/// How often a standby reads its links.
const LINK_LOOK: Duration = Duration::from_secs(2);
/// How long after a failed attempt the promotion is tried again.
const RETRY: Duration = Duration::from_secs(1);

#[derive(Message)]
#[rtype(result = "()")]
pub struct Promote;

#[derive(Message)]
#[rtype(result = "()")]
pub struct Fence(pub String);

pub struct ReplicationActor {
    pairs: Vec<Pair>,
    /// This node, as it signs the epochs it raises.
    node: String,
    failover_ms: u64,
    state: watch::Sender<State>,
    /// An attempt is under way.
    attempting: bool,
}

impl ReplicationActor {
    pub fn new(
        pairs: Vec<Pair>,
        node: String,
        failover_ms: u64,
        state: watch::Sender<State>,
    ) -> Self {
        ReplicationActor {
            pairs,
            node,
            failover_ms,
            state,
            attempting: false,
        }
    }

    fn attempt(&mut self, ctx: &mut Context<Self>) {
        if self.attempting {
            return;
        }
        self.attempting = true;
        let (pairs, node, failover_ms) = (self.pairs.clone(), self.node.clone(), self.failover_ms);
        let promotion = async move { promote::promote(&pairs, &node, failover_ms).await };
        ctx.spawn(promotion.into_actor(self).map(|done, act, ctx| {
            act.attempting = false;
            if matches!(*act.state.borrow(), State::Fenced { .. }) {
                return;
            }
            match done {
                Ok(epoch) => {
                    info!(epoch, "promoted: this node serves");
                    act.state
                        .send_replace(State::Primary { epoch: Some(epoch) });
                }
                Err(e) => {
                    warn!(error = %e, "promotion held up; trying again");
                    act.state.send_replace(State::Promoting {
                        trouble: Some(e.to_string()),
                    });
                    ctx.run_later(RETRY, |act, ctx| act.attempt(ctx));
                }
            }
        }));
    }
}

impl Actor for ReplicationActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if matches!(*self.state.borrow(), State::Standby { .. }) {
            self.look_at_links(ctx);
            ctx.run_interval(LINK_LOOK, |act, ctx| act.look_at_links(ctx));
        }
    }
}

impl ReplicationActor {
    /// Reads a standby's links into its state.
    fn look_at_links(&mut self, ctx: &mut Context<Self>) {
        if !matches!(*self.state.borrow(), State::Standby { .. }) {
            return;
        }
        let pairs = self.pairs.clone();
        let look = async move { promote::links(&pairs).await };
        ctx.spawn(look.into_actor(self).map(|links, act, _| {
            act.state.send_if_modified(|state| match state {
                State::Standby { links: known } if *known != links => {
                    *known = links;
                    true
                }
                _ => false,
            });
        }));
    }
}

impl Handler<Promote> for ReplicationActor {
    type Result = ();

    fn handle(&mut self, _: Promote, ctx: &mut Self::Context) {
        if matches!(*self.state.borrow(), State::Standby { .. }) {
            info!("first request that needs the store: promoting this node's Redis set");
            self.state.send_replace(State::Promoting { trouble: None });
        }
        if matches!(*self.state.borrow(), State::Promoting { .. }) {
            self.attempt(ctx);
        }
    }
}

impl Handler<Fence> for ReplicationActor {
    type Result = ();

    fn handle(&mut self, Fence(reason): Fence, _: &mut Self::Context) {
        if matches!(*self.state.borrow(), State::Fenced { .. }) {
            return;
        }
        error!(%reason, "fenced: a newer primary took over this node's Redis; it serves no more");
        self.state.send_replace(State::Fenced { reason });
    }
}
