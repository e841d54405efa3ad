//! [`RangeMaster`]: one per node. In the region whose store holds the pool it competes for the
//! range master's lease (the configured master first; the others only once it has been free
//! for a while) and, while it holds it, cuts blocks for every node of the cloud. The store
//! checks the lease in the same atomic step as each cut, so two nodes never both cut.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use tracing::{error, info, warn};

use super::{IdError, IdRange, PoolCut};
use crate::store::Store;

/// Cuts a block of up to `size` IDs off the pool.
#[derive(Message)]
#[rtype(result = "Result<IdRange, IdError>")]
pub struct Cut {
    pub size: u64,
}

/// Who holds the lease, as last seen (`server/port`).
#[derive(Message)]
#[rtype(result = "Option<String>")]
pub struct Holder;

pub struct RangeMaster {
    me: String,
    store: Arc<dyn Store>,
    lease: Duration,
    /// The configured master: it takes the lease at once; the others give it a head start.
    preferred: bool,
    started: Instant,
    holder: Option<String>,
}

impl RangeMaster {
    pub fn new(me: String, store: Arc<dyn Store>, lease: Duration, preferred: bool) -> Self {
        RangeMaster {
            me,
            store,
            lease,
            preferred,
            started: Instant::now(),
            holder: None,
        }
    }

    /// Whether this node may take the lease now: the configured master always, the others
    /// after giving it a head start.
    fn may_lead(&self) -> bool {
        self.preferred || self.started.elapsed() >= self.lease * 2
    }

    /// Takes or renews the lease if this region has the pool and the lease is free or ours.
    /// (Before it may, it only learns who holds it.)
    fn renew(&mut self, ctx: &mut Context<Self>) {
        let (store, me, lease) = (Arc::clone(&self.store), self.me.clone(), self.lease);
        let take = self.may_lead();
        let attempt = async move {
            if store.pool().await?.is_none() {
                return Ok(None);
            }
            store.pool_lease(&me, lease, take).await
        };
        ctx.spawn(attempt.into_actor(self).map(|result, act, _| match result {
            Ok(holder) => {
                if holder != act.holder {
                    if let Some(holder) = &holder {
                        info!(%holder, me = %act.me, "range master");
                    }
                    act.holder = holder;
                }
            }
            Err(e) => warn!(error = %e, "cannot renew the range master's lease"),
        }));
    }
}

impl Actor for RangeMaster {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.renew(ctx);
        ctx.run_interval(self.lease / 3, |act, ctx| act.renew(ctx));
    }
}

impl Handler<Cut> for RangeMaster {
    type Result = ResponseFuture<Result<IdRange, IdError>>;

    fn handle(&mut self, msg: Cut, _: &mut Self::Context) -> Self::Result {
        let (store, me, lease) = (Arc::clone(&self.store), self.me.clone(), self.lease);
        let (may_lead, mut holder) = (self.may_lead(), self.holder.clone());
        Box::pin(async move {
            let mut cut = store.pool_cut(&me, msg.size).await?;
            if cut == PoolCut::NotHolder && may_lead {
                // The lease may be free and not taken yet (at start, or after its holder
                // stopped): take it now rather than at the next renewal.
                holder = store.pool_lease(&me, lease, true).await?;
                if holder.as_deref() == Some(me.as_str()) {
                    cut = store.pool_cut(&me, msg.size).await?;
                }
            }
            match cut {
                PoolCut::Block(block) => {
                    info!(%block, "cut a block of customer IDs");
                    Ok(block)
                }
                PoolCut::Exhausted => {
                    error!(
                        "the customer-ID pool is exhausted: `relaybox ranges init` sets a new one"
                    );
                    Err(IdError::Exhausted)
                }
                PoolCut::NotHolder => Err(IdError::NotMaster(holder.filter(|h| *h != me))),
            }
        })
    }
}

impl Handler<Holder> for RangeMaster {
    type Result = Option<String>;

    fn handle(&mut self, _: Holder, _: &mut Self::Context) -> Self::Result {
        self.holder.clone()
    }
}
