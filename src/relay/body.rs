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

use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio::time::{Instant, Sleep};

use crate::stats::counters::Count;

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
    /// The sender sent no byte for this long.
    #[error("no byte of the body came for {} s", .0.as_secs_f64())]
    SourceStalled(Duration),
    /// The receiving side went away.
    #[error("the receiver's connection closed")]
    Destination,
    /// The receiving side took no byte for this long.
    #[error("the receiver took no byte of the body for {} s", .0.as_secs_f64())]
    DestinationStalled(Duration),
}

/// Copies `payload` into `sender` in chunks of at most `chunk` bytes, then marks the end.
/// Returns the number of bytes copied. Should no byte move for `stall` (the source sends none,
/// or the destination takes none), the transfer fails. On any failure the end is not marked, so
/// the destination is aborted.
pub async fn pump<S, E>(
    mut payload: S,
    sender: BodySender,
    chunk: usize,
    stall: Duration,
) -> Result<u64, PumpError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let mut watchdog = Watchdog::new(stall);
    let mut copied = 0u64;
    loop {
        let next = tokio::select! {
            next = payload.next() => next,
            () = watchdog.stalled() => return Err(PumpError::SourceStalled(stall)),
        };
        let Some(next) = next else { break };
        watchdog.moved();
        let mut data = next.map_err(|e| PumpError::Source(e.to_string()))?;
        while !data.is_empty() {
            let piece = data.split_to(chunk.min(data.len()));
            copied += piece.len() as u64;
            watchdog.hand_over(&sender, Piece::Data(piece)).await?;
        }
    }
    watchdog.hand_over(&sender, Piece::End).await?;
    Ok(copied)
}

/// Notices a transfer that stopped moving. Each step only notes the time; the one timer is
/// re-armed when it fires early, so a fast transfer costs no timer work per chunk.
///
/// A destination counts as stalled only once it has taken a piece: before that it may not
/// exist yet (an app's request waits for the desktop's next poll, which the protocol's own
/// timers bound).
struct Watchdog {
    limit: Duration,
    moved_at: Instant,
    timer: Pin<Box<Sleep>>,
    /// Pieces handed to the destination so far.
    handed: u64,
    /// The destination has taken a piece: from now on it must keep taking them.
    taking: bool,
}

impl Watchdog {
    fn new(limit: Duration) -> Self {
        Watchdog {
            limit,
            moved_at: Instant::now(),
            timer: Box::pin(tokio::time::sleep(limit)),
            handed: 0,
            taking: false,
        }
    }

    fn moved(&mut self) {
        self.moved_at = Instant::now();
    }

    /// Resolves once nothing has moved for the limit.
    async fn stalled(&mut self) {
        loop {
            self.timer.as_mut().await;
            let due = self.moved_at + self.limit;
            if due <= Instant::now() {
                return;
            }
            self.timer.as_mut().reset(due);
        }
    }

    /// Gives `piece` to the destination once it has room.
    async fn hand_over(&mut self, sender: &BodySender, piece: Piece) -> Result<(), PumpError> {
        // The one slot is free again: the destination took the piece before.
        self.taking |= self.handed > 0 && sender.0.capacity() > 0;
        let send = sender.0.send(piece);
        let sent = if self.taking {
            tokio::select! {
                sent = send => sent,
                () = self.stalled() => return Err(PumpError::DestinationStalled(self.limit)),
            }
        } else {
            send.await
        };
        sent.map_err(|_| PumpError::Destination)?;
        self.taking |= self.handed > 0;
        self.handed += 1;
        self.moved();
        Ok(())
    }
}

/// The source broke off: the destination must not pass the body for complete.
#[derive(Debug, thiserror::Error)]
#[error("the relayed body broke off")]
pub struct BrokenOff;

impl BodyReceiver {
    /// The body (of `length` bytes, when known) as a response body stream, its bytes added to
    /// `counted` as they go to the connection. `finished` is called once: `true` when the last chunk has been handed to the connection, `false` if the
    /// body broke off or the stream was dropped first (the receiving client went away).
    pub fn into_stream(
        self,
        length: Option<u64>,
        counted: &'static Count,
        finished: impl FnOnce(bool) + 'static,
    ) -> BodyStream {
        BodyStream {
            rx: self.0,
            left: length,
            counted,
            finished: Some(Box::new(finished)),
        }
    }
}

pub struct BodyStream {
    rx: mpsc::Receiver<Piece>,
    /// Bytes still to come of a body of known length: the connection may stop asking for more
    /// once it has them all, before the end mark is read.
    left: Option<u64>,
    /// Where the bytes handed to the connection are counted.
    counted: &'static Count,
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
                self.counted.add(data.len() as u64);
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
    /// A connection drops a body it no longer needs: complete if it had every promised byte
    /// (a body of length 0 is never even polled), else cut off.
    fn drop(&mut self) {
        self.finish(self.left == Some(0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;

    /// Bytes relayed in the tests: counted nowhere that matters.
    static UNCOUNTED: Count = Count::new();

    /// A stall limit no test reaches by accident.
    const LONG: Duration = Duration::from_secs(60);

    /// The body as a stream, and what its `finished` callback said (if it was called).
    fn watched(rx: BodyReceiver, length: Option<u64>) -> (BodyStream, Rc<Cell<Option<bool>>>) {
        let done = Rc::new(Cell::new(None));
        let seen = Rc::clone(&done);
        (
            rx.into_stream(length, &UNCOUNTED, move |ok| seen.set(Some(ok))),
            done,
        )
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
        let pumping = tokio::spawn(pump(
            source(&[b"hello ", b"world, this is long"]),
            tx,
            4,
            LONG,
        ));
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
        tokio::spawn(pump(source(&[b"hello"]), tx, 1024, LONG));
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
        let pumping = tokio::spawn(pump(broken, tx, 1024, LONG));
        assert_eq!(stream.next().await.unwrap().unwrap(), "part");
        assert!(stream.next().await.unwrap().is_err());
        assert!(matches!(pumping.await.unwrap(), Err(PumpError::Source(_))));
        assert_eq!(done.get(), Some(false));
    }

    #[tokio::test(start_paused = true)]
    async fn a_source_that_stalls_aborts_the_destination() {
        let (tx, rx) = channel();
        let (mut stream, done) = watched(rx, Some(1000));
        let stalled = futures_util::stream::iter([Ok::<_, String>(Bytes::from_static(b"part"))])
            .chain(futures_util::stream::pending());
        let limit = Duration::from_secs(30);
        let pumping = tokio::spawn(pump(Box::pin(stalled), tx, 1024, limit));
        assert_eq!(stream.next().await.unwrap().unwrap(), "part");
        let started = Instant::now();
        assert!(stream.next().await.unwrap().is_err(), "aborted");
        assert_eq!(started.elapsed(), limit, "after the limit, not before");
        assert_eq!(pumping.await.unwrap(), Err(PumpError::SourceStalled(limit)));
        assert_eq!(done.get(), Some(false));
    }

    #[tokio::test(start_paused = true)]
    async fn a_destination_that_stops_taking_fails_the_pump() {
        let (tx, rx) = channel();
        let (mut stream, done) = watched(rx, None);
        let limit = Duration::from_secs(30);
        let pumping = tokio::spawn(pump(source(&[b"one", b"two", b"three"]), tx, 8, limit));
        assert_eq!(stream.next().await.unwrap().unwrap(), "one");
        // It takes one piece, then no more: the pump waits the limit, then fails.
        let started = Instant::now();
        let result = pumping.await.unwrap();
        assert_eq!(result, Err(PumpError::DestinationStalled(limit)));
        assert_eq!(started.elapsed(), limit);
        assert_eq!(done.get(), None, "the destination has not finished");
    }

    #[tokio::test(start_paused = true)]
    async fn a_destination_not_there_yet_is_not_stalled() {
        let (tx, rx) = channel();
        let limit = Duration::from_secs(30);
        let pumping = tokio::spawn(pump(source(&[b"one", b"two"]), tx, 8, limit));
        // The request waits for the desktop's poll far longer than the limit...
        tokio::time::sleep(limit * 4).await;
        assert!(
            !pumping.is_finished(),
            "gave up on a destination not there yet"
        );
        // ...which then takes the whole body.
        let (mut stream, done) = watched(rx, None);
        let mut body = Vec::new();
        while let Some(chunk) = stream.next().await {
            body.extend_from_slice(&chunk.unwrap());
        }
        assert_eq!(body, b"onetwo");
        assert_eq!(pumping.await.unwrap(), Ok(6));
        assert_eq!(done.get(), Some(true));
    }

    #[tokio::test]
    async fn a_body_of_length_zero_is_complete_unpolled() {
        let (tx, rx) = channel();
        let (stream, done) = watched(rx, Some(0));
        tokio::spawn(pump(source(&[]), tx, 1024, LONG));
        // The connection writes the head and never asks for a body of length 0.
        drop(stream);
        assert_eq!(done.get(), Some(true));
    }

    #[tokio::test]
    async fn a_destination_that_goes_stops_the_pump() {
        let (tx, rx) = channel();
        let (stream, done) = watched(rx, None);
        drop(stream);
        assert_eq!(done.get(), Some(false));
        let result = pump(source(&[b"anything"]), tx, 1024, LONG).await;
        assert_eq!(result, Err(PumpError::Destination));
    }
}
