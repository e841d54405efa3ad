//! The pub/sub side of one shard: one connection that listens on the shard's pushed channel and
//! turns what it hears into [`ShardEvent`]s for the shard actor.
//!
//! Redis pub/sub is at-most-once, so a notification can be lost while the connection is down.
//! The actor is therefore told `Subscribed` after every (re)subscription and looks at every
//! queue that has waiters, and `Lost` when the connection drops, when it answers its waiters.

use std::sync::Arc;
use std::time::Duration;

use ::redis::Client;
use ::redis::aio::ConnectionManager;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::keys::PUSHED_CHANNEL;
use crate::store::ShardEvent;

/// How long to wait between attempts to reach a server that is down.
const RETRY_DELAY: Duration = Duration::from_millis(500);

/// Starts listening; stops by itself when the receiver is dropped. `commands` is the shard's
/// command connection: it is woken up whenever the server is back, so that the first request
/// after an outage does not find it still broken.
pub fn spawn(
    client: Client,
    commands: ConnectionManager,
    name: Arc<str>,
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
                            let queues: Vec<String> = serde_json::from_slice(msg.get_payload_bytes()).unwrap_or_default();
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
