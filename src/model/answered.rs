//! A push is answered before its message reaches a waiter on the same node (the design's
//! invariant 6). Clients correlate the ids of their own pushes with what they receive, as
//! PopBox's own tests do; a message that arrived before its push's answer carries an id its
//! sender does not know yet.
//!
//! The HTTP layer makes a pair per push: the [`Answering`] token travels with the push's reply
//! and is dropped once the reply has been written (or could not be: the connection failed,
//! the handler was dropped), which opens the [`Answered`] gate that travels with the push to the
//! shard. A shard holds back a take that found such a push's message until its gate opens. The
//! wait costs the time it takes to write a reply, nothing more: no timer decides it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::FutureExt;
use futures_util::future::Shared;
use tokio::sync::oneshot;

/// A new pair: the token for the reply, the gate for the push.
pub fn answer_pair() -> (Answering, Answered) {
    let (tx, rx) = oneshot::channel();
    (Answering { _open_on_drop: tx }, Answered(rx.shared()))
}

/// Held by a push's reply while it is being written; dropping it opens its [`Answered`] gate.
#[derive(Debug)]
pub struct Answering {
    // Never sent on: dropping it is the signal.
    _open_on_drop: oneshot::Sender<()>,
}

/// Resolves once the push's reply has been written, or can no longer be. Cheap to clone: every
/// shard the push goes to holds one.
#[derive(Debug, Clone)]
pub struct Answered(Shared<oneshot::Receiver<()>>);

impl Answered {
    /// Whether the reply is known to be written (a gate not polled since it opened still reads
    /// closed, which only makes its waiter poll it once more).
    pub fn is_open(&self) -> bool {
        self.0.peek().is_some()
    }
}

impl Future for Answered {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // The token is never sent on, only dropped: either way the channel closes.
        self.0.poll_unpin(cx).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_gate_opens_when_the_token_goes() {
        let (token, gate) = answer_pair();
        let copy = gate.clone();
        let mut waiting = tokio::spawn(copy);
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
        gate.await;
    }
}
