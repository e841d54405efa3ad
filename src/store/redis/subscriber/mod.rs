//! The pub/sub side of one shard: one connection that listens on the channels of the queues this
//! node's consumers wait on, and turns what it hears into [`ShardEvent`]s for the shard actor.
//!
//! Every queue has its own channel (`keys::pushed_channel`), so a push that nobody waits for
//! reaches no node, and a node hears only of the queues it serves, however many nodes share
//! the server. The shard says which queues it wants ([`Interest`]). A new channel is subscribed
//! to, and once Redis confirms it, the queue is reported as pushed if it holds messages: a push
//! made between its waiter's empty take and the subscription was not heard. (Asking Redis which
//! queues hold messages is one cheap round trip for a whole batch; looking again with a take per
//! queue would be one script each, and thousands of them in flight at once after a burst of
//! first waiters.) A channel nobody waits on any more stays subscribed for [`LINGER`], because
//! a consumer that was just answered usually polls again at once.
//!
//! Redis pub/sub is at-most-once, so a notification can be lost while the connection is down.
//! The actor is therefore told `Subscribed` after every (re)connection and looks at every queue
//! that has waiters, and `Lost` when the connection drops, when it answers its waiters.
//!
//! An announcement's payload names the node that made it. A node's own come back to it when it
//! listens on the queue too, and are dropped here: whatever fills a queue on this node drains it
//! right after, so looking again would only cost each message one more take.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tracing::{info, warn};

mod feed;

pub(super) use feed::Hub;
use feed::{Feed, Note};

use super::keys::{self, Keys};
use super::scripts;
use super::server::Server;
use crate::model::Priority;
use crate::store::{Interest, Notifications, ShardEvent, StoreResult};

/// How long to wait between attempts to reach a server that is down.
const RETRY_DELAY: Duration = Duration::from_millis(500);

/// How long a queue's channel stays subscribed after its last waiter left.
const LINGER: Duration = Duration::from_secs(30);

/// The most channels one SUBSCRIBE or UNSUBSCRIBE names: a burst of thousands of first waiters
/// makes several moderate commands rather than one huge one.
const BATCH: usize = 1000;

/// How often a node says it is alive on each of its servers (`keys::node_alive`), and how long
/// that lasts: a node that dies stops counting as a waiter within [`ALIVE_FOR`].
const ALIVE_EVERY: Duration = Duration::from_secs(1);
const ALIVE_FOR: Duration = Duration::from_secs(6);

/// Says on `server` that node `node` is alive, for [`ALIVE_FOR`]; its set of the hashes where
/// it counts waiters lasts as long.
pub async fn say_alive(server: &Server, node: &str) -> StoreResult<()> {
    let secs = ALIVE_FOR.as_secs();
    let mut pipe = ::redis::pipe();
    (pipe.set_ex(server.keys.node_alive(node), 1, secs))
        .expire(server.keys.node_waits(node), secs as i64);
    server.pipeline(&pipe).await
}

/// Drops every count of waiters node `node` keeps on `server`.
async fn forget_waiting(server: &Server, node: &str) -> ::redis::RedisResult<()> {
    scripts::FORGET_WAITING
        .key(server.keys.node_waits(node))
        .key(server.keys.steady())
        .arg(keys::waiting_field(node))
        .invoke_async(&mut server.conn())
        .await
}

/// Starts listening; stops by itself when the shard drops its [`Notifications`]. The shard's
/// command connection (this thread's, the same the shard uses) is woken up whenever the server
/// is back, so that the first request after an outage does not find it still broken.
/// Announcements `from` this node are ignored.
pub fn spawn(server: &Server, hub: Option<Hub>, from: Arc<str>) -> Notifications {
    let (events, events_rx) = mpsc::unbounded_channel();
    let (interest_tx, interest) = mpsc::unbounded_channel();
    let listener = Listener {
        server: server.clone(),
        hub,
        from,
        events,
        interest,
        channels: Channels::default(),
    };
    tokio::spawn(listener.run());
    Notifications {
        events: events_rx,
        interest: interest_tx,
    }
}

/// The task behind [`spawn`].
struct Listener {
    server: Server,
    /// On a Redis Cluster, the store's sharded pub/sub connection.
    hub: Option<Hub>,
    from: Arc<str>,
    events: mpsc::UnboundedSender<ShardEvent>,
    interest: mpsc::UnboundedReceiver<Interest>,
    channels: Channels,
}

/// Why a connection's service ended.
enum Ended {
    /// The connection broke: connect again.
    Broken,
    /// The shard is gone: stop.
    ShardGone,
}

impl Listener {
    async fn run(mut self) {
        let mut connected_once = false;
        while !self.events.is_closed() {
            let Some(feed) = self.connect().await else {
                tokio::time::sleep(RETRY_DELAY).await;
                continue;
            };
            if connected_once {
                // The shard answered its waiters when the connection broke, and counting them
                // out may have failed: this node's counts on the server start afresh (which
                // also wakes the shard's command connection). Until that is done it waits for
                // no one.
                if let Err(e) = forget_waiting(&self.server, &self.from).await {
                    warn!(server = %self.server.name, error = %e, "cannot reset this node's waiters; retrying");
                    tokio::time::sleep(RETRY_DELAY).await;
                    continue;
                }
                info!(server = %self.server.name, "notifications resumed");
            }
            connected_once = true;
            if self.events.send(ShardEvent::Subscribed).is_err() {
                return;
            }
            if let Ended::ShardGone = self.serve(feed).await {
                return;
            }
            warn!(server = %self.server.name, "lost the notification connection; reconnecting");
            if self.events.send(ShardEvent::Lost).is_err() {
                return;
            }
        }
    }

    /// Opens the connection and subscribes to every queue still waited on.
    async fn connect(&mut self) -> Option<Feed> {
        let mut feed = match Feed::open(&self.server, self.hub.as_ref()).await {
            Ok(feed) => feed,
            Err(e) => {
                warn!(server = %self.server.name, error = %e, "cannot reach redis for notifications; retrying");
                return None;
            }
        };
        // What the shard said meanwhile counts; `Subscribed` makes it look at every queue anyway.
        while let Ok(interest) = self.interest.try_recv() {
            self.channels.apply(interest, Instant::now());
        }
        for batch in self.channels.reconnected().chunks(BATCH) {
            if let Err(e) = feed
                .subscribe(channel_names(&self.server.keys, batch))
                .await
            {
                warn!(server = %self.server.name, error = %e, "cannot subscribe; retrying");
                return None;
            }
        }
        Some(feed)
    }

    /// Relays announcements and follows the shard's interest until the connection breaks.
    async fn serve(&mut self, mut feed: Feed) -> Ended {
        let mut tick = tokio::time::interval(LINGER / 2);
        let mut alive = tokio::time::interval(ALIVE_EVERY);
        loop {
            tokio::select! {
                _ = alive.tick() => {
                    if let Err(e) = say_alive(&self.server, &self.from).await {
                        warn!(server = %self.server.name, error = %e, "cannot say this node is alive");
                    }
                }
                note = feed.next() => match note {
                    Some(note) => {
                        let Some(queue) = foreign_queue(&self.server.keys, &note, &self.from) else {
                            continue;
                        };
                        if self.events.send(ShardEvent::Pushed(vec![queue])).is_err() {
                            return Ended::ShardGone;
                        }
                    }
                    None => return Ended::Broken,
                },
                Some(first) = self.interest.recv() => {
                    let now = Instant::now();
                    let mut new = Vec::new();
                    new.extend(self.channels.apply(first, now));
                    while new.len() < BATCH {
                        let Ok(interest) = self.interest.try_recv() else { break };
                        new.extend(self.channels.apply(interest, now));
                    }
                    if new.is_empty() {
                        continue;
                    }
                    if feed.subscribe(channel_names(&self.server.keys, &new)).await.is_err() {
                        return Ended::Broken;
                    }
                    // Heard from now on; what came before, only a look shows.
                    let filled = self.holding_messages(new).await;
                    if !filled.is_empty() && self.events.send(ShardEvent::Pushed(filled)).is_err() {
                        return Ended::ShardGone;
                    }
                }
                _ = tick.tick() => {
                    for batch in self.channels.stale(Instant::now()).chunks(BATCH) {
                        if feed.unsubscribe(channel_names(&self.server.keys, batch)).await.is_err() {
                            return Ended::Broken;
                        }
                    }
                }
                () = self.events.closed() => return Ended::ShardGone,
            }
        }
    }

    /// Those of `queues` that hold messages; all of them when the server cannot say (the shard
    /// then looks at each).
    async fn holding_messages(&mut self, queues: Vec<String>) -> Vec<String> {
        let mut pipe = ::redis::pipe();
        for queue in &queues {
            let lists = [Priority::High, Priority::Low].map(|p| self.server.keys.list_of(queue, p));
            pipe.exists(&lists);
        }
        match self.server.pipeline::<Vec<u32>>(&pipe).await {
            Ok(found) => (queues.into_iter().zip(found))
                .filter(|(_, lists)| *lists > 0)
                .map(|(queue, _)| queue)
                .collect(),
            Err(_) => queues,
        }
    }
}

fn channel_names(keys: &Keys, queues: &[String]) -> Vec<String> {
    queues.iter().map(|q| keys.pushed_channel(q)).collect()
}

/// The queue a message announces, unless this node (`own`) made it or it is not an
/// announcement at all.
fn foreign_queue(keys: &Keys, note: &Note, own: &str) -> Option<String> {
    let queue = keys.pushed_queue(&note.channel)?;
    (note.payload != own.as_bytes()).then(|| queue.to_owned())
}

/// The queues whose channels are subscribed, and which of them nobody waits on any more.
#[derive(Default)]
struct Channels {
    /// Queue key → `None` while someone waits there, else since when nobody has.
    subscribed: HashMap<String, Option<Instant>>,
}

impl Channels {
    /// Follows the shard's word; returns the queue when its channel is yet to be subscribed.
    fn apply(&mut self, interest: Interest, now: Instant) -> Option<String> {
        match interest {
            Interest::Listen(queue) => match self.subscribed.get_mut(&queue) {
                Some(unwanted) => {
                    *unwanted = None;
                    None
                }
                None => {
                    self.subscribed.insert(queue.clone(), None);
                    Some(queue)
                }
            },
            Interest::Ignore(queue) => {
                if let Some(unwanted) = self.subscribed.get_mut(&queue) {
                    unwanted.get_or_insert(now);
                }
                None
            }
        }
    }

    /// Forgets the queues nobody has waited on for [`LINGER`], and returns them.
    fn stale(&mut self, now: Instant) -> Vec<String> {
        self.subscribed
            .extract_if(|_, unwanted| unwanted.is_some_and(|since| now - since >= LINGER))
            .map(|(queue, _)| queue)
            .collect()
    }

    /// On a new connection, where nothing is subscribed: forgets the queues nobody waits on and
    /// returns the rest, to subscribe to again.
    fn reconnected(&mut self) -> Vec<String> {
        self.subscribed.retain(|_, unwanted| unwanted.is_none());
        self.subscribed.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listen(q: &str) -> Interest {
        Interest::Listen(q.to_owned())
    }

    fn ignore(q: &str) -> Interest {
        Interest::Ignore(q.to_owned())
    }

    #[test]
    fn a_channel_is_subscribed_once_and_lingers_after_its_last_waiter() {
        let mut channels = Channels::default();
        let t0 = Instant::now();
        assert_eq!(channels.apply(listen("a"), t0), Some("a".to_owned()));
        assert_eq!(channels.apply(ignore("a"), t0), None);
        // Waited on again while it lingers: still subscribed, nothing to do.
        assert_eq!(channels.apply(listen("a"), t0), None);
        assert!(channels.stale(t0 + LINGER * 2).is_empty());

        assert_eq!(channels.apply(ignore("a"), t0), None);
        assert!(channels.stale(t0 + LINGER / 2).is_empty());
        assert_eq!(channels.stale(t0 + LINGER), ["a"]);
        // Gone: the next waiter needs a new subscription.
        assert_eq!(channels.apply(listen("a"), t0), Some("a".to_owned()));
        // Ignoring a queue never listened to changes nothing.
        assert_eq!(channels.apply(ignore("b"), t0), None);
        assert!(channels.stale(t0 + LINGER * 2).is_empty());
    }

    #[test]
    fn a_new_connection_subscribes_only_what_is_waited_on() {
        let mut channels = Channels::default();
        let t0 = Instant::now();
        channels.apply(listen("a"), t0);
        channels.apply(listen("b"), t0);
        channels.apply(ignore("b"), t0);
        assert_eq!(channels.reconnected(), ["a"]);
        assert_eq!(channels.apply(listen("b"), t0), Some("b".to_owned()));
    }
}
