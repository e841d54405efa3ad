//! **SessionActor**s of the inbox: one per client that waits for messages — a held pop
//! ([`PopSession`]) or a subscription stream ([`SubscriptionSession`], behind the chunked,
//! SSE and WebSocket routes). Each waits on its queue's shard. (A desktop's polls are the
//! relay's: its `CustomerSession`.)
//!
//! A session ends when its client goes away, and on that path it gives back anything it had
//! taken.

pub mod pop;
pub mod subscription;

pub use pop::PopSession;
pub use subscription::{StreamItem, SubscriptionSession};
