//! relaybox: one node of an inbox-notification and device-relay cloud.
//!
//! The node serves PopBox's inbox API and the My Notes relay protocol over plain HTTP. Its
//! layers, outside in:
//!
//! - [`http`]: actix-web handlers, thin — parse, ask the inbox, render;
//! - [`inbox`]: the domain (transactions, queues, validation) and the [`inbox::Inbox`] facade
//!   that routes work to actors;
//! - [`shard`] and [`session`]: the actors — one [`shard::ShardActor`] per store shard owning
//!   its queues and their waiters, one [`session::PopSession`] per waiting client;
//! - [`store`]: the [`store::Store`] trait and its backends;
//! - [`callbacks`]: delivery callbacks, sent in the background;
//! - [`relay`]: the device relay (My Notes protocol), one actor per customer;
//! - [`cluster`]: other regions (nodes over other stores) and the calls between them;
//! - [`range`]: customer IDs, the range master and every node's range client.
//!
//! [`config`] holds the typed settings, [`node`] starts and stops everything.

pub mod callbacks;
pub mod cluster;
pub mod config;
pub mod http;
pub mod inbox;
pub mod logging;
pub mod node;
pub mod range;
pub mod relay;
pub mod secret;
pub mod session;
pub mod shard;
pub mod store;
