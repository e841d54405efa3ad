//! Redis key names, as PopBox lays them out, so that a Redis written by PopBox reads the same:
//!
//! - `PB:T|<id>:meta` (transactions server): hash of the transaction's fields;
//! - `PB:T|<id>:state` (transactions server): hash queue id → `Pending`/`Blocked`/`Delivered`;
//! - `PB:Q|H:<prefix><queue>`, `PB:Q|L:…` (the queue's shard): lists of `PB:T|<id>` references,
//!   where `<prefix>` is `[<org>:]UNSEC:` or `[<org>:]SEC:` with the org spelled by
//!   [`org_in_keys`](crate::model::org_in_keys), so that no name reaches another's keys;
//! - `PB:Q|<prefix><queue>:userInfo` (the queue's shard): hash `lastPopDate` and, per node with
//!   consumers waiting there, `blocked:<node>` (PopBox kept one shared `blocked` count, which a
//!   node that died left counting its waiters for good);
//! - `RB:N|<node>` (every shard's server): that the node is alive, refreshed every second and
//!   expiring a few seconds after it stops; `RB:W|<node>`: set of the `userInfo` hashes where it
//!   counts waiters;
//! - `<prefix><queue>`, e.g. `SEC:q1` (the queue's shard): a secure queue's credential (an
//!   Argon2id hash; PopBox stored an unsalted SHA-1 there);
//! - `PB:K|<token>` (the queue's shard): what a take or put-back did, for its retries (kept a
//!   minute past `redis_recovery`);
//! - `PB:A|unacked` (each shard server): sorted set of reliable deliveries awaiting an
//!   acknowledgement, scored by when they are due back (Unix ms); any node returns them;
//! - `PB:T|<id>:history` (transactions server): list of state changes, JSON
//!   `{"queue","state","at"}` (Unix ms), the latest [`HISTORY_LIMIT`](crate::store::HISTORY_LIMIT);
//! - `PB:T|<id>:delayed` (transactions server): a provisioning held back by `delay` (JSON),
//!   expiring with its transaction; `PB:D|due`: sorted set of their ids by due time (Unix ms);
//! - `RB:S|<node>|<span>` (transactions server): a node's statistics archive of rows spanning
//!   `<span>` seconds, slot number → record; `RB:S|nodes`: the nodes with archives;
//! - `RB:L|<customer id>` (transactions server): where a desktop is attached (JSON
//!   `{"host","port"}`), expiring unless its polls refresh it;
//! - `PB:I|<digest>` (transactions server): the transaction a provisioning with that
//!   `Idempotency-Key` made; `PB:I|<digest>:pushed:<shard>` (the shard's server): that its
//!   queues got it. Both expire with the transaction;
//! - `PB:G|<name>` (transactions server): set of a group's queue ids. PopBox used the bare name,
//!   which let a group name address any key; the prefix keeps groups to themselves;
//! - `RB:H|layout` (the first shard's server, on a set of several): the hash that placed the
//!   queues on their servers (`store.queue_hash`), written by the first node to start.
//!
//! The keys a push makes are joined with `concat`, which allocates once: `format!` grows its
//! buffer a piece at a time, and at six keys a push that was a few percent of the node's work.

use crate::model::{Priority, QueueName, TxId};

/// Where the pub/sub channels of queues start, on their shard's server: a push into a queue is
/// announced on `relaybox:pushed:<queue key>`, with the name of the node that made it. A node
/// subscribes to a queue's channel only while it has consumers waiting there, so a push that
/// nobody waits for reaches no node at all.
pub const PUSHED_PREFIX: &str = "relaybox:pushed:";

/// The channel announcing pushes into the queue with this key ([`QueueName::key`]).
pub fn pushed_channel(queue_key: &str) -> String {
    [PUSHED_PREFIX, queue_key].concat()
}

/// The queue key a channel announces pushes for.
pub fn pushed_queue(channel: &str) -> Option<&str> {
    channel.strip_prefix(PUSHED_PREFIX)
}

const TRANSACTION_PREFIX: &str = "PB:T|";

/// The held pushes by due time, on the transactions server.
pub const DELAYED_DUE: &str = "PB:D|due";

pub fn history(id: &TxId) -> String {
    [TRANSACTION_PREFIX, id.as_str(), ":history"].concat()
}

pub fn delayed(id: &TxId) -> String {
    [TRANSACTION_PREFIX, id.as_str(), ":delayed"].concat()
}

/// The reliable deliveries awaiting an acknowledgement on a shard server.
pub const UNACKED: &str = "PB:A|unacked";

/// Which hash placed the queues on a set of several servers.
pub const LAYOUT: &str = "RB:H|layout";

pub fn list(queue: &QueueName, priority: Priority) -> String {
    list_of(queue.key(), priority)
}

/// The list of the queue with this key ([`QueueName::key`]).
pub fn list_of(queue_key: &str, priority: Priority) -> String {
    let list = match priority {
        Priority::High => "PB:Q|H:",
        Priority::Low => "PB:Q|L:",
    };
    [list, queue_key].concat()
}

/// What `SCAN` matches to find every queue's lists (both priorities).
pub const LISTS: &str = "PB:Q|[HL]:*";

/// The queue key ([`QueueName::key`]) of a list found by [`LISTS`].
pub fn queue_of_list(list: &str) -> Option<&str> {
    (list.strip_prefix("PB:Q|H:")).or_else(|| list.strip_prefix("PB:Q|L:"))
}

pub fn user_info(queue: &QueueName) -> String {
    ["PB:Q|", queue.key(), ":userInfo"].concat()
}

pub fn secure_queue(queue: &QueueName) -> String {
    queue.key().to_owned()
}

pub fn meta(id: &TxId) -> String {
    [TRANSACTION_PREFIX, id.as_str(), ":meta"].concat()
}

pub fn state(id: &TxId) -> String {
    [TRANSACTION_PREFIX, id.as_str(), ":state"].concat()
}

pub fn location(customer: &str) -> String {
    format!("RB:L|{customer}")
}

/// That node `node` (its [`RedisStore`](super::RedisStore) origin) is alive, on each of its
/// shards' servers: it counts its waiters in `userInfo` (`blocked:<node>`) only as long as this
/// lasts, so that a node that dies leaves no queue counted `blocked`.
pub fn node_alive(node: &str) -> String {
    ["RB:N|", node].concat()
}

/// The `userInfo` hashes where node `node` counts waiters, on each server (a set, expiring
/// with [`node_alive`]): after an outage the node drops those counts and counts anew.
pub fn node_waits(node: &str) -> String {
    ["RB:W|", node].concat()
}

/// The field of a queue's `userInfo` hash where node `node` counts the consumers it has
/// waiting there.
pub fn waiting_field(node: &str) -> String {
    ["blocked:", node].concat()
}

/// Node `node`'s statistics archive of rows spanning `span` seconds (transactions server;
/// hash: slot number → slot record).
pub fn archive(node: &str, span: u64) -> String {
    format!("RB:S|{node}|{span}")
}

/// The nodes that write statistics archives (hash: node → Unix time of its last sample).
pub const ARCHIVE_NODES: &str = "RB:S|seen";
/// Which node checks the region's alerts (string: `server/port`, with an expiry).
pub const ALERT_LEASE: &str = "RB:S|alerts:lease";
/// The alerts on record (hash: alert key → record).
pub const ALERT_BOOK: &str = "RB:S|alerts";

/// The customer-ID pool (hash: from, to).
pub const POOL: &str = "RB:R|pool";
/// Who acts as range master (string: `server/port`, with an expiry).
pub const POOL_LEASE: &str = "RB:R|lease";
/// The nodes that have blocks (set).
pub const BLOCK_OWNERS: &str = "RB:R|nodes";

/// A node's blocks (list of `from-to`, oldest first).
pub fn blocks(node: &str) -> String {
    format!("RB:R|blocks|{node}")
}

/// The other regions known (hash: public address → failed calls).
pub const MEMBERS: &str = "RB:M";

pub fn group(name: &str) -> String {
    format!("PB:G|{name}")
}

/// What a provisioning with idempotency key `once` (a hex digest: see the inbox's `once_key`)
/// made, on the transactions server: the transaction's id, expiring with it.
pub fn once(once: &str) -> String {
    ["PB:I|", once].concat()
}

/// That a push with idempotency key `once` reached shard `shard`, on that shard's server.
pub fn once_pushed(once: &str, shard: usize) -> String {
    format!("PB:I|{once}:pushed:{shard}")
}

/// A fresh key under which an idempotent operation records that it ran.
pub fn token() -> String {
    format!("PB:K|{}", uuid::Uuid::new_v4())
}

/// What a queue list holds for a transaction.
pub fn reference(id: &TxId) -> String {
    [TRANSACTION_PREFIX, id.as_str()].concat()
}

/// The transaction id in a queue entry (PopBox's public id is what follows the first `|`).
pub fn from_reference(entry: &str) -> TxId {
    TxId::from(entry.split_once('|').map_or(entry, |(_, id)| id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Namespace;

    /// Names built from the pieces the layout is made of, up to two pieces long.
    fn tricky_names() -> Vec<String> {
        let pieces = [
            "", ":", "|", "%", "SEC", "UNSEC", "H", "L", "x", "userInfo", "PB", "Q|H", "%3A",
            ":SEC:", "meta", "T|",
        ];
        let mut names: Vec<String> = pieces
            .iter()
            .flat_map(|a| pieces.iter().map(move |b| [*a, *b].concat()))
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// No two (listener, org, queue) combinations, groups or transactions share a key, however
    /// their names are spelled (issue: an org `PB:Q|H` made a secure queue's list a string).
    #[test]
    fn distinct_names_map_to_distinct_keys() {
        let names = tricky_names();
        let mut owners: std::collections::HashMap<String, String> = Default::default();
        let mut claim = |key: String, owner: String| {
            if let Some(other) = owners.insert(key.clone(), owner.clone()) {
                assert_eq!(other, owner, "{key} is named by both");
            }
        };
        let orgs = std::iter::once(None).chain(names.iter().cloned().map(Some));
        for org in orgs {
            for secure in [false, true] {
                let ns = Namespace {
                    org: org.clone(),
                    secure,
                };
                for id in names.iter().filter(|id| !id.is_empty()) {
                    let q = ns.queue(id);
                    let owner = format!("queue {id:?} of org {org:?}, secure {secure}");
                    claim(list(&q, Priority::High), owner.clone());
                    claim(list(&q, Priority::Low), owner.clone());
                    claim(user_info(&q), owner.clone());
                    // The embedded store keys its queues and credentials by this too.
                    claim(secure_queue(&q), owner);
                }
            }
        }
        for name in &names {
            claim(group(name), format!("group {name:?}"));
            let id = TxId::from(name.as_str());
            for key in [meta(&id), state(&id), history(&id), delayed(&id)] {
                claim(key, format!("transaction {name:?}"));
            }
        }
        for name in &names {
            // Idempotency keys reach the store as digests (`once_key`).
            use sha2::Digest;
            let digest = format!("{:x}", sha2::Sha256::digest(name));
            claim(once(&digest), format!("idempotency key {name:?}"));
            for shard in 0..3 {
                claim(
                    once_pushed(&digest, shard),
                    format!("idempotency key {name:?} {shard}"),
                );
            }
        }
        for name in &names {
            claim(node_alive(name), format!("node {name:?} alive"));
            claim(node_waits(name), format!("node {name:?} waits"));
        }
        for fixed in [
            UNACKED,
            DELAYED_DUE,
            POOL,
            POOL_LEASE,
            BLOCK_OWNERS,
            MEMBERS,
        ] {
            claim(fixed.to_owned(), fixed.to_owned());
        }
    }

    #[test]
    fn popbox_layout() {
        let q = Namespace::plain(Some("acme".into())).queue("q1");
        assert_eq!(list(&q, Priority::High), "PB:Q|H:acme:UNSEC:q1");
        assert_eq!(user_info(&q), "PB:Q|acme:UNSEC:q1:userInfo");
        let id = TxId::from("abc");
        assert_eq!(meta(&id), "PB:T|abc:meta");
        assert_eq!(from_reference(&reference(&id)), id);
        let channel = pushed_channel(q.key());
        assert_eq!(channel, "relaybox:pushed:acme:UNSEC:q1");
        assert_eq!(pushed_queue(&channel), Some(q.key()));
        assert_eq!(pushed_queue("other"), None);
    }
}
