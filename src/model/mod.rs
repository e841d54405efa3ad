//! The nouns every layer shares: what a transaction, a queue, a delivery mode, a desktop's
//! location, a block of customer IDs or a statistics archive's shape is, and the names of the
//! protocol's headers.
//!
//! They live below everything that uses them — the HTTP surface, the domains (`inbox`, `relay`,
//! `range`, `cluster`), the actors and the store — so that each of those depends on nouns
//! only, never on a layer above it. Nothing here imports another module of the crate.

pub mod answered;
pub mod archive;
pub mod desktop;
pub mod ids;
pub mod inbox;
pub mod iwp;
pub mod shard_hash;

pub use answered::{Answered, Answering, answer_pair};
pub use archive::{Resolution, utc};
pub use desktop::Location;
pub use ids::{IdRange, PoolCut};
pub use inbox::*;
pub use shard_hash::QueueHash;
