//! [`RangeClient`]: one per node. It hands out IDs from a small batch taken off the node's
//! blocks in the store (taken before any is handed out, so a restart never repeats one), and
//! asks for the node's next block while it still has `range_size / 2` IDs left.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::oneshot;
use tracing::{error, info, warn};

use super::{BlockSource, IdError, IdRange};
use crate::store::Store;

/// Most IDs taken off the stored blocks at a time: what a crash can waste.
const BATCH: u64 = 100;

/// How often a failed refill is tried again while callers wait.
const RETRY: Duration = Duration::from_millis(250);

/// How many IDs the node can still hand out: those taken off its blocks and those left in
/// them (as of the last take or refill).
#[derive(Message)]
#[rtype(result = "u64")]
pub struct Left;

/// The next ID, through `reply`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct NextId {
    pub reply: oneshot::Sender<Result<u64, IdError>>,
}

pub struct RangeClient {
    me: String,
    store: Arc<dyn Store>,
    source: BlockSource,
    block_size: u64,
    /// How long callers wait while blocks cannot be had (the range master may be changing
    /// hands), retrying every [`RETRY`].
    patience: Duration,
    /// IDs taken off the stored blocks and not handed out yet.
    window: Option<IdRange>,
    /// IDs left in the stored blocks, as of the last take or refill.
    stored: u64,
    waiting: VecDeque<oneshot::Sender<Result<u64, IdError>>>,
    taking: bool,
    refilling: bool,
    /// Since when refills fail (none while they work).
    failing_since: Option<Instant>,
}

impl RangeClient {
    pub fn new(
        me: String,
        store: Arc<dyn Store>,
        source: BlockSource,
        block_size: u64,
        patience: Duration,
    ) -> Self {
        RangeClient {
            me,
            store,
            source,
            block_size,
            patience,
            window: None,
            stored: 0,
            waiting: VecDeque::new(),
            taking: false,
            refilling: false,
            failing_since: None,
        }
    }

    fn next(&mut self) -> Option<u64> {
        let window = self.window.as_mut().filter(|w| !w.is_empty())?;
        let id = window.from;
        window.from += 1;
        Some(id)
    }

    /// Answers the callers waiting, as far as the window goes.
    fn serve(&mut self) {
        while !self.waiting.is_empty() {
            let Some(id) = self.next() else { return };
            let reply = self.waiting.pop_front().expect("not empty");
            if let Err(Ok(id)) = reply.send(Ok(id)) {
                // The caller left: the ID is still unissued, so it goes to the next one.
                self.window = self.window.map(|w| IdRange { from: id, ..w });
            }
        }
    }

    fn fail_waiting(&mut self, e: &IdError) {
        for reply in self.waiting.drain(..) {
            let _ = reply.send(Err(e.clone()));
        }
    }

    /// Takes the next batch off the stored blocks.
    fn take(&mut self, ctx: &mut Context<Self>) {
        if self.taking {
            return;
        }
        self.taking = true;
        let (store, me) = (Arc::clone(&self.store), self.me.clone());
        let taking = async move { store.block_take(&me, BATCH).await };
        ctx.spawn(taking.into_actor(self).map(|result, act, ctx| {
            act.taking = false;
            match result {
                Ok(Some((batch, left))) => {
                    act.window = Some(batch);
                    act.stored = left;
                    act.serve();
                    if left < act.block_size / 2 {
                        act.refill(ctx);
                    }
                    if !act.waiting.is_empty() {
                        act.take(ctx);
                    }
                }
                Ok(None) => {
                    act.stored = 0;
                    act.refill(ctx);
                }
                Err(e) => act.fail_waiting(&IdError::Store(e)),
            }
        }));
    }

    /// Gets the node's next block and stores it; then takes from it if callers wait.
    fn refill(&mut self, ctx: &mut Context<Self>) {
        if self.refilling {
            return;
        }
        self.refilling = true;
        let (store, me, source, size) = (
            Arc::clone(&self.store),
            self.me.clone(),
            self.source.clone(),
            self.block_size,
        );
        let refill = async move {
            let block = source.fetch(size).await?;
            store.block_add(&me, block).await?;
            Ok::<_, IdError>(block)
        };
        ctx.spawn(refill.into_actor(self).map(|result, act, ctx| {
            act.refilling = false;
            match result {
                Ok(block) => {
                    info!(%block, "new block of customer IDs");
                    act.failing_since = None;
                    act.stored += block.len();
                    if !act.waiting.is_empty() {
                        act.take(ctx);
                    }
                }
                Err(e) => {
                    let since = *act.failing_since.get_or_insert_with(Instant::now);
                    let hopeless = matches!(e, IdError::Exhausted | IdError::NoPool);
                    if hopeless || since.elapsed() >= act.patience {
                        error!(error = %e, "no new block of customer IDs");
                        act.failing_since = None;
                        act.fail_waiting(&e);
                    } else {
                        warn!(error = %e, "no new block of customer IDs yet; trying again");
                        ctx.run_later(RETRY, |act, ctx| act.refill(ctx));
                    }
                }
            }
        }));
    }
}

impl Actor for RangeClient {
    type Context = Context<Self>;

    /// Loads a batch at once, so that the first caller does not wait (and a block is asked
    /// for if the node has none).
    fn started(&mut self, ctx: &mut Self::Context) {
        self.take(ctx);
    }
}

impl Handler<NextId> for RangeClient {
    type Result = ();

    fn handle(&mut self, msg: NextId, ctx: &mut Self::Context) {
        self.waiting.push_back(msg.reply);
        self.serve();
        if !self.waiting.is_empty() {
            self.take(ctx);
        }
    }
}

impl Handler<Left> for RangeClient {
    type Result = u64;

    fn handle(&mut self, _: Left, _: &mut Self::Context) -> u64 {
        self.stored + self.window.map_or(0, |w| w.len())
    }
}
