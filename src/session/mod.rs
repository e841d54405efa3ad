//! **SessionActor**s: one per client session that waits for something — a held pop, a
//! subscription stream; later desktop agents.
//!
//! A session ends when its client goes away, and on that path it gives back anything it had
//! taken.

pub mod pop;
pub mod subscription;

pub use pop::PopSession;
pub use subscription::{StreamItem, SubscriptionSession};
