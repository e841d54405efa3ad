//! **SessionActor**s: one per client session that waits for something — today a held pop;
//! later subscription streams and desktop agents.
//!
//! A session ends when its client goes away, and on that path it gives back anything it had
//! taken.

pub mod pop;

pub use pop::PopSession;
