//! How many client connections the node holds, against what its open-file limit allows.
//!
//! Every connection is a descriptor, and a node that runs out of them can no longer accept:
//! new clients wait in the listen backlog with no answer at all. So the node keeps a reserve
//! (`node.connection_reserve`, for its Redis connections, files and the like). Once its
//! connections reach the limit less the reserve, it is *crowded*: requests that would be held
//! (pops, subscriptions, desktop polls, relayed app requests) get a prompt `503` instead, and
//! every answer closes its connection, so that descriptors come back and clients can go to
//! another node.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tracing::info;

/// The node's count of open client connections.
#[derive(Debug)]
pub struct Connections {
    open: AtomicUsize,
    /// Past this many, the node is crowded; `usize::MAX` when the limit is unknown.
    ceiling: usize,
    /// The open-file limit, for messages.
    limit: Option<usize>,
}

/// Held by a connection for its life (in its extensions): counts it in and, dropped with the
/// connection, out.
pub struct Held(Arc<Connections>);

impl Drop for Held {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Connections {
    /// Counts connections against this process's open-file limit, less `reserve`.
    pub fn new(reserve: usize) -> Arc<Self> {
        let limit = crate::stats::process::open_file_limit();
        let ceiling = limit.map_or(usize::MAX, |limit| limit.saturating_sub(reserve));
        if let Some(limit) = limit {
            info!(limit, reserve, "holding up to {ceiling} client connections");
        }
        Arc::new(Connections {
            open: AtomicUsize::new(0),
            ceiling,
            limit,
        })
    }

    /// A new connection.
    pub fn opened(self: &Arc<Self>) -> Held {
        self.open.fetch_add(1, Ordering::Relaxed);
        Held(Arc::clone(self))
    }

    /// Connections open now, and how many the node holds before it is crowded (`None`: no
    /// known limit).
    pub fn count(&self) -> (usize, Option<usize>) {
        let ceiling = (self.ceiling != usize::MAX).then_some(self.ceiling);
        (self.open.load(Ordering::Relaxed), ceiling)
    }

    /// Why the node takes on no more waiting, if it is crowded.
    pub fn crowded(&self) -> Option<String> {
        let open = self.open.load(Ordering::Relaxed);
        (open > self.ceiling).then(|| {
            let limit = self.limit.unwrap_or(self.ceiling);
            format!(
                "this node holds as many connections as its open-file limit allows ({open} of \
                 {limit} descriptors): try again shortly, or another node"
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crowded_past_the_ceiling_and_not_once_connections_close() {
        let connections = Arc::new(Connections {
            open: AtomicUsize::new(0),
            ceiling: 2,
            limit: Some(10),
        });
        let held: Vec<Held> = (0..3).map(|_| connections.opened()).collect();
        let reason = connections.crowded().expect("3 of a ceiling of 2");
        assert!(reason.contains("3 of 10"), "{reason}");
        drop(held);
        assert_eq!(connections.crowded(), None);
    }
}
