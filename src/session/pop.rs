//! A held pop: waits on one queue until messages arrive, the timeout passes, the node shuts
//! down, or the client goes away — whichever comes first.
//!
//! The HTTP handler awaits the session's answer on a oneshot channel. The handler's future is
//! dropped when the client disconnects (the server is set to treat a closed read side as the
//! end of the connection), which closes the channel; the session sees that and leaves its
//! shard's registry without taking anything. A delivery that reaches a session whose client has
//! just gone is dropped uncommitted, which puts its messages back.

use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::oneshot;

use crate::model::{Mark, QueueName, next_waiter_id};
use crate::shard::{CancelWait, Delivery, ShardActor, Wait, Waiter, WaiterNotice};
use crate::stats::counters;
use crate::store::StoreError;

/// What a pop gets: its messages (maybe none), or why the store could not serve it.
pub type PopOutcome = Result<Delivery, StoreError>;

pub struct PopSession {
    shard: Addr<ShardActor>,
    queue: QueueName,
    waiter_id: u64,
    max: usize,
    mark: Mark,
    timeout: Duration,
    reply: Option<oneshot::Sender<PopOutcome>>,
    /// In the shard's registry: the shard takes a waiter out before it notifies it, so only a
    /// session that ends otherwise (timeout, client gone) has to leave it.
    waiting: bool,
}

impl PopSession {
    /// Starts a session on the current arbiter; its outcome arrives on the returned receiver.
    pub fn start_on(
        shard: Addr<ShardActor>,
        queue: QueueName,
        max: usize,
        mark: Mark,
        timeout: Duration,
    ) -> oneshot::Receiver<PopOutcome> {
        let (reply, outcome) = oneshot::channel();
        PopSession {
            shard,
            queue,
            waiter_id: next_waiter_id(),
            max,
            mark,
            timeout,
            reply: Some(reply),
            waiting: false,
        }
        .start();
        outcome
    }

    /// Answers the client (if it is still there) and ends the session.
    fn finish(&mut self, outcome: PopOutcome, ctx: &mut Context<Self>) {
        if let Some(reply) = self.reply.take() {
            // If the client has gone, the outcome is dropped here: an uncommitted delivery
            // puts its messages back.
            let _ = reply.send(outcome);
        }
        ctx.stop();
    }
}

impl Actor for PopSession {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        counters().held.up();
        self.shard.do_send(Wait {
            queue: self.queue.clone(),
            waiter: Waiter {
                id: self.waiter_id,
                max: self.max,
                mark: self.mark,
                subscription: false,
                notify: ctx.address().recipient(),
            },
        });
        self.waiting = true;
        ctx.run_later(self.timeout, |act, ctx| {
            act.finish(Ok(Delivery::empty()), ctx)
        });
        ctx.spawn(ClientGone.map(|(), _act, ctx: &mut Context<Self>| ctx.stop()));
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        counters().held.down();
        if self.waiting {
            self.shard.do_send(CancelWait {
                queue: self.queue.clone(),
                id: self.waiter_id,
            });
        }
    }
}

impl Handler<WaiterNotice> for PopSession {
    type Result = ();

    fn handle(&mut self, notice: WaiterNotice, ctx: &mut Self::Context) {
        self.waiting = false;
        let outcome = match notice {
            WaiterNotice::Deliver(delivery) => Ok(delivery),
            WaiterNotice::Release => Ok(Delivery::empty()),
            WaiterNotice::Fail(e) => Err(e),
        };
        self.finish(outcome, ctx);
    }
}

/// Resolves when the receiving side of the session's reply channel is dropped, i.e. when the
/// handler (and with it the client connection) is gone.
struct ClientGone;

impl ActorFuture<PopSession> for ClientGone {
    type Output = ();

    fn poll(
        self: Pin<&mut Self>,
        act: &mut PopSession,
        _ctx: &mut Context<PopSession>,
        task: &mut TaskContext<'_>,
    ) -> Poll<()> {
        match act.reply.as_mut() {
            Some(reply) => reply.poll_closed(task),
            None => Poll::Ready(()),
        }
    }
}
