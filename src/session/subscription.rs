//! A subscription: one message at a time from a queue, for as long as the client stays, each
//! handed to the client's stream (an HTTP chunked body, Server-Sent Events or a WebSocket).
//!
//! The session waits on its shard for one message, puts it into a channel of one slot that the
//! client's stream drains, and waits for the next once the stream has taken it — so a slow
//! client holds back only itself. A message is committed (marked and reported) only when the
//! stream takes it for writing; one still in the channel when the client goes is dropped
//! uncommitted and goes back to the head of its queue for the next consumer.
//!
//! The queue reads `blocked` for the session's whole life, whether or not it is waiting at the
//! moment.

use std::time::Duration;

use actix::prelude::*;
use tokio::sync::mpsc;

use crate::model::{Mark, QueueName, next_waiter_id};
use crate::shard::{CancelWait, Delivery, Hold, ShardActor, Wait, Waiter, WaiterNotice};
use crate::stats::counters;

/// How long a subscription waits after a store failure before it tries again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// What a subscription hands its client's stream.
#[derive(Debug)]
pub enum StreamItem {
    /// One message, to be committed when it is written.
    Message(Delivery),
    /// The store failed; the subscription goes on.
    Error(String),
}

pub struct SubscriptionSession {
    shard: Addr<ShardActor>,
    queue: QueueName,
    mark: Mark,
    waiter_id: u64,
    sink: mpsc::Sender<StreamItem>,
}

impl SubscriptionSession {
    /// Starts a session on the current arbiter; the stream of what it delivers ends when the
    /// node shuts down, and the session ends when the receiver is dropped.
    pub fn start_on(
        shard: Addr<ShardActor>,
        queue: QueueName,
        mark: Mark,
    ) -> mpsc::Receiver<StreamItem> {
        let (sink, items) = mpsc::channel(1);
        SubscriptionSession {
            shard,
            queue,
            mark,
            waiter_id: next_waiter_id(),
            sink,
        }
        .start();
        items
    }

    /// Waits on the shard for the next message.
    fn wait(&self, ctx: &mut Context<Self>) {
        self.shard.do_send(Wait {
            queue: self.queue.clone(),
            waiter: Waiter {
                id: self.waiter_id,
                max: 1,
                mark: self.mark,
                subscription: true,
                notify: ctx.address().recipient(),
            },
        });
    }

    /// Hands `item` to the client's stream once its producer has had its answer and the stream
    /// has room, then waits for more (after `pause`). If the client is gone, the item is
    /// dropped (a message goes back) and the session ends.
    fn forward(&mut self, item: StreamItem, pause: Duration, ctx: &mut Context<Self>) {
        let sink = self.sink.clone();
        let answered = match &item {
            StreamItem::Message(delivery) => Some(delivery.answered()),
            StreamItem::Error(_) => None,
        };
        let forwarded = async move {
            if let Some(answered) = answered {
                answered.await;
            }
            sink.send(item).await
        };
        ctx.wait(
            forwarded
                .into_actor(self)
                .map(move |sent, act, ctx| match sent {
                    Ok(()) if pause.is_zero() => act.wait(ctx),
                    Ok(()) => {
                        ctx.run_later(pause, |act, ctx| act.wait(ctx));
                    }
                    Err(_) => ctx.stop(),
                }),
        );
    }
}

impl Actor for SubscriptionSession {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        counters().held.up();
        self.shard.do_send(Hold {
            queue: self.queue.clone(),
            on: true,
        });
        self.wait(ctx);
        let sink = self.sink.clone();
        ctx.spawn(
            async move { sink.closed().await }
                .into_actor(self)
                .map(|(), _act, ctx| ctx.stop()),
        );
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        counters().held.down();
        self.shard.do_send(CancelWait {
            queue: self.queue.clone(),
            id: self.waiter_id,
        });
        self.shard.do_send(Hold {
            queue: self.queue.clone(),
            on: false,
        });
    }
}

impl Handler<WaiterNotice> for SubscriptionSession {
    type Result = ();

    fn handle(&mut self, notice: WaiterNotice, ctx: &mut Self::Context) {
        match notice {
            WaiterNotice::Deliver(delivery) => {
                self.forward(StreamItem::Message(delivery), Duration::ZERO, ctx)
            }
            WaiterNotice::Release => ctx.stop(),
            WaiterNotice::Fail(e) => {
                self.forward(StreamItem::Error(e.to_string()), RETRY_AFTER, ctx)
            }
        }
    }
}
