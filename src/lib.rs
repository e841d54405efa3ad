//! relaybox: one node of an inbox-notification and device-relay cloud.
//!
//! The node serves PopBox's inbox API and the My Notes relay protocol over plain HTTP. Its
//! layers, top down; each uses only those below it:
//!
//! - [`node`] starts and stops everything; [`http`]: actix-web handlers, thin — parse, ask a
//!   domain, render;
//! - the domains: [`inbox`] (validation and the [`inbox::Inbox`] facade that routes work to
//!   the actors), [`relay`] (the device relay, one actor per customer), [`range`] (customer
//!   IDs: the range master and every node's range client), [`cluster`] (other regions and the
//!   calls between them);
//! - the inbox's actors: [`session`] (one per waiting client) above [`shard`] (one per store
//!   shard, owning its queues' waiters);
//! - [`store`]: the [`store::Store`] trait and its backends;
//! - [`model`]: the nouns they all share; [`config`], [`callbacks`], [`secret`] and [`logging`]
//!   beside it.
//!
//! Beside the domains: [`stats`] (the statistics collector, fed by counters the others bump;
//! its archives, charts and alerts) and [`replication`] (the node's role in a chain of Redis
//! sets: standby, promotion on first request, fencing; it drives the Redis servers beside
//! `store`). The operators' surface is `http/admin/` over those.

pub mod callbacks;
pub mod cluster;
pub mod config;
pub mod http;
pub mod inbox;
pub mod logging;
pub mod meter;
pub mod model;
pub mod node;
pub mod range;
pub mod relay;
pub mod replication;
pub mod secret;
pub mod session;
pub mod shard;
pub mod site;
pub mod stats;
pub mod store;
