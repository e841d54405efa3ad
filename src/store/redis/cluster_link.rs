//! The connection to a Redis Cluster, made anew when it stops answering.
//!
//! The cluster client (redis-rs 1.8) can wedge while it refreshes its map of slots after a
//! resharding: seen in `tests/redis_cluster.rs`, every call then times out, for good, while
//! the cluster itself is fine and a new connection works at once. So a call that times out
//! has the connection made anew in the background (at most once per [`RENEW_EVERY`]); calls
//! go on the newest one.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ::redis::cluster::ClusterClient;
use ::redis::cluster_async::ClusterConnection;
use tracing::{info, warn};

/// The least time between two renewals.
const RENEW_EVERY: Duration = Duration::from_secs(2);

/// A cluster client and its current connection.
#[derive(Clone)]
pub(super) struct ClusterLink(Arc<Shared>);

struct Shared {
    client: ClusterClient,
    current: Mutex<Current>,
    timeout: Duration,
}

struct Current {
    conn: ClusterConnection,
    /// When the connection was last made, or its renewal begun.
    since: Instant,
}

impl ClusterLink {
    /// Connects; fails after `timeout` without a cluster.
    pub(super) async fn connect(client: ClusterClient, timeout: Duration) -> Result<Self, String> {
        let conn = open(&client, timeout).await?;
        Ok(ClusterLink(Arc::new(Shared {
            client,
            current: Mutex::new(Current {
                conn,
                since: Instant::now(),
            }),
            timeout,
        })))
    }

    /// The connection to send on (cheap to clone: it is multiplexed).
    pub(super) fn conn(&self) -> ClusterConnection {
        lock(&self.0.current).conn.clone()
    }

    /// After a call timed out: makes the connection anew in the background, unless that was
    /// begun lately.
    pub(super) fn renew(&self) {
        {
            let mut current = lock(&self.0.current);
            if current.since.elapsed() < RENEW_EVERY {
                return;
            }
            current.since = Instant::now();
        }
        let link = Arc::clone(&self.0);
        tokio::spawn(async move {
            match open(&link.client, link.timeout).await {
                Ok(conn) => {
                    let mut current = lock(&link.current);
                    current.conn = conn;
                    current.since = Instant::now();
                    info!("made the Redis Cluster connection anew after a call timed out");
                }
                Err(e) => warn!(error = %e, "cannot make the Redis Cluster connection anew"),
            }
        });
    }
}

async fn open(client: &ClusterClient, timeout: Duration) -> Result<ClusterConnection, String> {
    match tokio::time::timeout(timeout * 5, client.get_async_connection()).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer".to_owned()),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
