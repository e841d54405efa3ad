//! The pub/sub side of one shard: one connection that listens on the shard's pushed channel and
//! turns what it hears into [`ShardEvent`]s for the shard actor.
//!
//! Redis pub/sub is at-most-once, so a notification can be lost while the connection is down.
//! The actor is therefore told `Subscribed` after every (re)subscription and looks at every
//! queue that has waiters, and `Lost` when the connection drops, when it answers its waiters.
//!
//! An announcement names the node that made it. A node's own come back to it too, and are
//! dropped here: whatever fills a queue on this node drains it right after, so looking again
//! would only cost each message one more take, and the shard one more wake-up.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use ::redis::Client;
use ::redis::aio::ConnectionManager;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::keys::PUSHED_CHANNEL;
use crate::store::ShardEvent;

/// How long to wait between attempts to reach a server that is down.
const RETRY_DELAY: Duration = Duration::from_millis(500);

/// What is published on [`PUSHED_CHANNEL`]: `{"from": <node>, "queues": [<queue key>, …]}`.
/// The `RETURN_DUE` script writes the same shape.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct Announcement<'a> {
    pub from: Cow<'a, str>,
    pub queues: Vec<Cow<'a, str>>,
}

impl Announcement<'_> {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("strings serialise")
    }
}

/// Starts listening; stops by itself when the receiver is dropped. `commands` is the shard's
/// command connection: it is woken up whenever the server is back, so that the first request
/// after an outage does not find it still broken. Announcements `from` this node are ignored.
pub fn spawn(
    client: Client,
    commands: ConnectionManager,
    name: Arc<str>,
    from: Arc<str>,
) -> mpsc::UnboundedReceiver<ShardEvent> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut connected_once = false;
        loop {
            if tx.is_closed() {
                return;
            }
            let mut pubsub = match client.get_async_pubsub().await {
                Ok(pubsub) => pubsub,
                Err(e) => {
                    warn!(server = %name, error = %e, "cannot reach redis for notifications; retrying");
                    tokio::time::sleep(RETRY_DELAY).await;
                    continue;
                }
            };
            if let Err(e) = pubsub.subscribe(PUSHED_CHANNEL).await {
                warn!(server = %name, error = %e, "cannot subscribe; retrying");
                tokio::time::sleep(RETRY_DELAY).await;
                continue;
            }
            if connected_once {
                let _: Result<String, _> = ::redis::cmd("PING")
                    .query_async(&mut commands.clone())
                    .await;
                info!(server = %name, "notifications resumed");
            }
            connected_once = true;
            if tx.send(ShardEvent::Subscribed).is_err() {
                return;
            }
            let mut messages = pubsub.into_on_message();
            loop {
                tokio::select! {
                    msg = messages.next() => match msg {
                        Some(msg) => {
                            let Some(queues) = foreign_queues(msg.get_payload_bytes(), &from) else {
                                continue;
                            };
                            if tx.send(ShardEvent::Pushed(queues)).is_err() {
                                return;
                            }
                        }
                        None => break,
                    },
                    () = tx.closed() => return,
                }
            }
            warn!(server = %name, "lost the notification connection; reconnecting");
            if tx.send(ShardEvent::Lost).is_err() {
                return;
            }
        }
    });
    rx
}

/// The queues a message on the channel announces, unless it is this node's (`own`) or not an
/// announcement at all.
fn foreign_queues(payload: &[u8], own: &str) -> Option<Vec<String>> {
    match serde_json::from_slice::<Announcement>(payload) {
        Ok(a) if a.from != own => Some(a.queues.into_iter().map(Cow::into_owned).collect()),
        Ok(_) => None,
        Err(e) => {
            warn!(error = %e, "ignoring a message on the pushed channel that is not an announcement");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_other_nodes_announcements_are_heard() {
        let json = Announcement {
            from: "a".into(),
            queues: vec!["UNSEC:q1".into(), "UNSEC:q\"2".into()],
        }
        .to_json();
        assert_eq!(json, r#"{"from":"a","queues":["UNSEC:q1","UNSEC:q\"2"]}"#);
        assert_eq!(foreign_queues(json.as_bytes(), "a"), None);
        assert_eq!(
            foreign_queues(json.as_bytes(), "b"),
            Some(vec!["UNSEC:q1".to_owned(), "UNSEC:q\"2".to_owned()])
        );
        assert_eq!(foreign_queues(b"[\"UNSEC:q1\"]", "b"), None);
    }
}
