//! Where a shard's announcements come from: its own pub/sub connection to its server, or, on a
//! Redis Cluster, the store's one sharded pub/sub connection to every node ([`Hub`]), which
//! hands each shard what its channels hear.
//!
//! A cluster's channels are sharded (`SSUBSCRIBE`, `SPUBLISH`): each lives on the node that
//! serves its slot, the shard's hash tag, so announcements never cross the cluster's bus. The
//! cluster connection subscribes again by itself when slots move or a replica takes over; a
//! node it loses is reported to every shard as a broken feed, whose listener then subscribes
//! again and tells its shard to look at every waited queue, as after any outage.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ::redis::aio::{PubSubSink, PubSubStream};
use std::time::Duration;

use ::redis::cluster::ClusterClientBuilder;
use ::redis::cluster_async::ClusterConnection;
use ::redis::{PushInfo, PushKind, RedisError, RedisResult, Value};
use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::super::cluster_link::ClusterLink;
use super::super::server::{Link, Server};

/// One announcement: its channel and payload.
pub struct Note {
    pub channel: String,
    pub payload: Vec<u8>,
}

/// A shard's source of announcements.
pub enum Feed {
    Own(PubSubSink, PubSubStream),
    Shared(Subscription),
}

impl Feed {
    /// Opens the shard's feed: a connection of its own, or its place on the cluster's hub.
    pub async fn open(server: &Server, hub: Option<&Hub>) -> RedisResult<Feed> {
        match (&server.link, hub) {
            (Link::Cluster(_), Some(hub)) => Ok(Feed::Shared(hub.join(server.keys.tag()))),
            (Link::Single(single), _) => {
                let (sink, stream) = single.client.get_async_pubsub().await?.split();
                Ok(Feed::Own(sink, stream))
            }
            (Link::Cluster(_), None) => unreachable!("a cluster's store opens its hub"),
        }
    }

    pub async fn subscribe(&mut self, channels: Vec<String>) -> RedisResult<()> {
        match self {
            Feed::Own(sink, _) => sink.subscribe(channels).await,
            Feed::Shared(sub) => {
                let answer = sub.conn.ssubscribe(channels).await;
                sub.renew_if_stuck(answer)
            }
        }
    }

    pub async fn unsubscribe(&mut self, channels: Vec<String>) -> RedisResult<()> {
        match self {
            Feed::Own(sink, _) => sink.unsubscribe(channels).await,
            Feed::Shared(sub) => {
                let answer = sub.conn.sunsubscribe(channels).await;
                sub.renew_if_stuck(answer)
            }
        }
    }

    /// The next announcement; `None` once the feed is broken.
    pub async fn next(&mut self) -> Option<Note> {
        match self {
            Feed::Own(_, stream) => stream.next().await.map(|msg| Note {
                channel: msg.get_channel_name().to_owned(),
                payload: msg.get_payload_bytes().to_vec(),
            }),
            Feed::Shared(sub) => sub.notes.recv().await.flatten(),
        }
    }
}

/// A shard's place on the hub: the shared connection, and what its channels hear (`None`: the
/// cluster lost a node).
pub struct Subscription {
    link: ClusterLink,
    conn: ClusterConnection,
    notes: mpsc::UnboundedReceiver<Option<Note>>,
}

impl Subscription {
    /// A call that timed out has the hub's connection made anew (see [`ClusterLink`]): the
    /// shard's listener then joins again, on the new one.
    fn renew_if_stuck(&self, answer: RedisResult<()>) -> RedisResult<()> {
        if answer.as_ref().is_err_and(RedisError::is_timeout) {
            self.link.renew();
        }
        answer
    }
}

/// The store's sharded pub/sub connection to a Redis Cluster, and who listens on it, by the
/// hash tag that starts their channels.
#[derive(Clone)]
pub struct Hub {
    link: ClusterLink,
    shards: Arc<Mutex<HashMap<String, mpsc::UnboundedSender<Option<Note>>>>>,
}

impl Hub {
    /// Connects to the cluster that `seeds` belong to, over RESP3 (sharded pub/sub needs it).
    /// Whatever connection the client makes, its pushes come to the same place.
    pub async fn connect(seeds: &[String], timeout: Duration) -> Result<Hub, String> {
        let (pushes, mut received) = mpsc::unbounded_channel::<PushInfo>();
        let client = ClusterClientBuilder::new(seeds.iter().map(String::as_str))
            .use_protocol(::redis::ProtocolVersion::RESP3)
            .push_sender(pushes)
            .connection_timeout(timeout)
            .response_timeout(timeout)
            .build()
            .map_err(|e| e.to_string())?;
        let hub = Hub {
            link: ClusterLink::connect(client, timeout).await?,
            shards: Arc::default(),
        };
        let shards = Arc::clone(&hub.shards);
        tokio::spawn(async move {
            while let Some(push) = received.recv().await {
                dispatch(&shards, push);
            }
        });
        Ok(hub)
    }

    fn join(&self, tag: &str) -> Subscription {
        let (sender, notes) = mpsc::unbounded_channel();
        lock(&self.shards).insert(tag.to_owned(), sender);
        Subscription {
            link: self.link.clone(),
            conn: self.link.conn(),
            notes,
        }
    }
}

/// Hands a push from the cluster to the shard whose channel it came on; a lost node breaks
/// every shard's feed.
fn dispatch(shards: &Mutex<HashMap<String, mpsc::UnboundedSender<Option<Note>>>>, push: PushInfo) {
    let mut shards = lock(shards);
    match push.kind {
        PushKind::SMessage => {
            let [Value::BulkString(channel), Value::BulkString(payload)] = &push.data[..] else {
                return;
            };
            let channel = String::from_utf8_lossy(channel).into_owned();
            let tag = channel.find('}').map_or("", |end| &channel[..=end]);
            if let Some(shard) = shards.get(tag) {
                let payload = payload.clone();
                let _ = shard.send(Some(Note { channel, payload }));
            }
        }
        PushKind::Disconnection => {
            shards.retain(|_, shard| shard.send(None).is_ok());
        }
        _ => {}
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
