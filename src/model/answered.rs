//! A push is answered before its message reaches a waiter on the same node (the design's
//! invariant 6). Clients correlate the ids of their own pushes with what they receive, as
//! PopBox's own tests do; a message that arrived before its push's answer carries an id its
//! sender does not know yet.
//!
//! The HTTP layer makes a pair per push: the [`Answering`] token travels with the push's reply
//! and is dropped once the reply has been written (or could not be: the connection failed,
//! the handler was dropped), which opens the [`Answered`] gate that travels with the push to the
//! shards. A take that finds such a push's message gives the gate to the delivery, and the
//! consumer waits for it to open before it writes. The wait costs the time it takes to write a
//! reply, nothing more: no timer decides it.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

/// A new pair: the token for the reply, the gate for the push.
pub fn answer_pair() -> (Answering, Answered) {
    let gate = Arc::new(Gate::default());
    (Answering(Arc::clone(&gate)), Answered(gate))
}

#[derive(Debug, Default)]
struct Gate {
    open: AtomicBool,
    opened: Notify,
}

/// Held by a push's reply while it is being written; dropping it opens its [`Answered`] gate.
#[derive(Debug)]
pub struct Answering(Arc<Gate>);

impl Drop for Answering {
    fn drop(&mut self) {
        self.0.open.store(true, Ordering::Release);
        self.0.opened.notify_waiters();
    }
}

/// Open once the push's reply has been written, or can no longer be. Cheap to clone: every
/// shard the push goes to holds one. Whether it is open is one atomic read, so a shard can
/// forget the open ones without waiting on any.
#[derive(Debug, Clone)]
pub struct Answered(Arc<Gate>);

impl Answered {
    pub fn is_open(&self) -> bool {
        self.0.open.load(Ordering::Acquire)
    }

    /// Resolves once the gate is open.
    pub fn opened(&self) -> impl Future<Output = ()> + use<> {
        let gate = Arc::clone(&self.0);
        async move {
            // Created before the look: a notification sent after it is not missed.
            let opened = gate.opened.notified();
            if gate.open.load(Ordering::Acquire) {
                return;
            }
            opened.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_gate_opens_when_the_token_goes() {
        let (token, gate) = answer_pair();
        let mut waiting = tokio::spawn(gate.opened());
        tokio::task::yield_now().await;
        assert!(!gate.is_open());
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(20), &mut waiting)
                .await
                .is_err(),
            "closed while the token lives"
        );
        drop(token);
        waiting.await.unwrap();
        assert!(gate.is_open());
        gate.opened().await;
    }
}
