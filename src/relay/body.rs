//! Bodies in transit: a request body read from one connection and written to another, a chunk
//! at a time, with back-pressure, never held whole.
//!
//! The reading side [`pump`]s its payload into a one-slot channel: it reads the next chunk only
//! after the writing side took the previous one. The writing side turns the channel into a
//! response body ([`BodyReceiver::into_stream`]). A body ends with an explicit end mark, so a
//! source that breaks off (its channel closes without one) aborts the destination instead of
//! passing for a complete, shorter body.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::sync::mpsc;

enum Piece {
    Data(Bytes),
    End,
}

/// The reading side's end of a body in transit.
pub struct BodySender(mpsc::Sender<Piece>);

/// The writing side's end of a body in transit.
pub struct BodyReceiver(mpsc::Receiver<Piece>);

impl std::fmt::Debug for BodyReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BodyReceiver")
    }
}

/// A body in transit, one chunk in flight at a time.
pub fn channel() -> (BodySender, BodyReceiver) {
    let (tx, rx) = mpsc::channel(1);
    (BodySender(tx), BodyReceiver(rx))
}

/// Why a body did not get through.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PumpError {
    /// The sending connection broke off before the end of its body.
    #[error("the sender's connection broke off: {0}")]
    Source(String),
    /// The receiving side went away.
    #[error("the receiver's connection closed")]
    Destination,
}

/// Copies `payload` into `sender` in chunks of at most `chunk` bytes, then marks the end.
/// Returns the number of bytes copied. On a source failure the end is not marked, so the
/// destination is aborted.
pub async fn pump<S, E>(mut payload: S, sender: BodySender, chunk: usize) -> Result<u64, PumpError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let mut copied = 0u64;
    while let Some(next) = payload.next().await {
        let mut data = next.map_err(|e| PumpError::Source(e.to_string()))?;
        while !data.is_empty() {
            let piece = data.split_to(chunk.min(data.len()));
            copied += piece.len() as u64;
            sender
                .0
                .send(Piece::Data(piece))
                .await
                .map_err(|_| PumpError::Destination)?;
        }
    }
    sender
        .0
        .send(Piece::End)
        .await
        .map_err(|_| PumpError::Destination)?;
    Ok(copied)
}

/// The source broke off: the destination must not pass the body for complete.
#[derive(Debug, thiserror::Error)]
#[error("the relayed body broke off")]
pub struct BrokenOff;

impl BodyReceiver {
    /// The body (of `length` bytes, when known) as a response body stream. `finished` is
    /// called once: `true` when the last chunk has been handed to the connection, `false` if the
    /// body broke off or the stream was dropped first (the receiving client went away).
    pub fn into_stream(
        self,
        length: Option<u64>,
        finished: impl FnOnce(bool) + 'static,
    ) -> BodyStream {
        BodyStream {
            rx: self.0,
            left: length,
            finished: Some(Box::new(finished)),
        }
    }
}

pub struct BodyStream {
    rx: mpsc::Receiver<Piece>,
    /// Bytes still to come of a body of known length: the connection may stop asking for more
    /// once it has them all, before the end mark is read.
    left: Option<u64>,
    finished: Option<Box<dyn FnOnce(bool)>>,
}

impl BodyStream {
    fn finish(&mut self, complete: bool) {
        if let Some(finished) = self.finished.take() {
            finished(complete);
        }
    }
}

impl Stream for BodyStream {
    type Item = Result<Bytes, BrokenOff>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.finished.is_none() && self.left != Some(0) {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Piece::Data(data))) => {
                if let Some(left) = self.left.as_mut() {
                    *left = left.saturating_sub(data.len() as u64);
                    if *left == 0 {
                        self.finish(true);
                    }
                }
                Poll::Ready(Some(Ok(data)))
            }
            Poll::Ready(Some(Piece::End)) => {
                self.finish(true);
                Poll::Ready(None)
            }
            Poll::Ready(None) => {
                self.finish(false);
                Poll::Ready(Some(Err(BrokenOff)))
            }
        }
    }
}

impl Drop for BodyStream {
    fn drop(&mut self) {
        self.finish(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;

    /// The body as a stream, and what its `finished` callback said (if it was called).
    fn watched(rx: BodyReceiver, length: Option<u64>) -> (BodyStream, Rc<Cell<Option<bool>>>) {
        let done = Rc::new(Cell::new(None));
        let seen = Rc::clone(&done);
        (rx.into_stream(length, move |ok| seen.set(Some(ok))), done)
    }

    fn source(parts: &[&'static [u8]]) -> impl Stream<Item = Result<Bytes, String>> + Unpin {
        futures_util::stream::iter(
            parts
                .iter()
                .map(|p| Ok(Bytes::from_static(p)))
                .collect::<Vec<_>>(),
        )
    }

    #[tokio::test]
    async fn a_body_arrives_whole_in_bounded_chunks() {
        let (tx, rx) = channel();
        let (mut stream, done) = watched(rx, None);
        let pumping = tokio::spawn(pump(source(&[b"hello ", b"world, this is long"]), tx, 4));
        let mut chunks = Vec::new();
        while let Some(chunk) = stream.next().await {
            chunks.push(chunk.unwrap());
        }
        assert!(chunks.iter().all(|c| c.len() <= 4));
        assert_eq!(chunks.concat(), b"hello world, this is long");
        assert_eq!(pumping.await.unwrap(), Ok(25));
        assert_eq!(done.get(), Some(true));
    }

    #[tokio::test]
    async fn a_body_of_known_length_is_complete_with_its_last_byte() {
        let (tx, rx) = channel();
        let (mut stream, done) = watched(rx, Some(5));
        tokio::spawn(pump(source(&[b"hello"]), tx, 1024));
        assert_eq!(stream.next().await.unwrap().unwrap(), "hello");
        // The connection has the five bytes it was promised and stops asking.
        drop(stream);
        assert_eq!(done.get(), Some(true));
    }

    #[tokio::test]
    async fn a_source_that_breaks_off_aborts_the_destination() {
        let (tx, rx) = channel();
        let (mut stream, done) = watched(rx, None);
        let broken = futures_util::stream::iter(vec![
            Ok(Bytes::from_static(b"part")),
            Err("connection reset".to_owned()),
        ]);
        let pumping = tokio::spawn(pump(broken, tx, 1024));
        assert_eq!(stream.next().await.unwrap().unwrap(), "part");
        assert!(stream.next().await.unwrap().is_err());
        assert!(matches!(pumping.await.unwrap(), Err(PumpError::Source(_))));
        assert_eq!(done.get(), Some(false));
    }

    #[tokio::test]
    async fn a_destination_that_goes_stops_the_pump() {
        let (tx, rx) = channel();
        let (stream, done) = watched(rx, None);
        drop(stream);
        assert_eq!(done.get(), Some(false));
        let result = pump(source(&[b"anything"]), tx, 1024).await;
        assert_eq!(result, Err(PumpError::Destination));
    }
}
