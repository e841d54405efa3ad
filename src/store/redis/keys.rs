//! Redis key names, as PopBox lays them out, so that a Redis written by PopBox reads the same:
//!
//! - `PB:T|<id>:meta` (transactions server): hash of the transaction's fields;
//! - `PB:T|<id>:state` (transactions server): hash queue id → `Pending`/`Blocked`/`Delivered`;
//! - `PB:T|<id>:tx` (transactions server), instead of those and the history when transactions
//!   spread: the three in one hash (see `record`);
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
//! - `RB:steady` (every shard): never written, declared by scripts so that a cluster runs them
//!   only while their slot stays put ([`Keys::steady`]);
//! - `RB:H|layout` (the first shard's server, on a set of several): the hash that placed the
//!   queues on their servers (`store.queue_hash`), written by the first node to start.
//!
//! On a Redis Cluster every key of a shard starts with the shard's hash tag (`{rb17}PB:Q|…`),
//! so that each shard's keys share a slot and every script touches one slot: [`Keys`] is the
//! layout of one shard, its tag empty on plain servers.
//!
//! The keys a push makes are joined with `concat`, which allocates once: `format!` grows its
//! buffer a piece at a time, and at six keys a push that was a few percent of the node's work.

use std::sync::Arc;

use crate::model::shard_hash::{SLOTS, slot};
use crate::model::{Priority, QueueName, TxId};

/// Where the pub/sub channels of queues start, after the shard's tag: a push into a queue is
/// announced on `relaybox:pushed:<queue key>`, with the name of the node that made it. A node
/// subscribes to a queue's channel only while it has consumers waiting there, so a push that
/// nobody waits for reaches no node at all.
const PUSHED_PREFIX: &str = "relaybox:pushed:";

const TRANSACTION_PREFIX: &str = "PB:T|";

/// The names of one shard's keys: PopBox's layout after the shard's hash tag (empty on plain
/// servers).
#[derive(Clone, Debug, Default)]
pub struct Keys {
    tag: Arc<str>,
}

impl Keys {
    /// The layout of a shard whose keys start with `tag` (`""`, or a hash tag like `{rb17}`).
    pub fn tagged(tag: &str) -> Self {
        Keys { tag: tag.into() }
    }

    /// The hash tag that starts every key of the shard (empty on plain servers).
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// The command that announces on the shard's channels: sharded pub/sub on a cluster, where
    /// keys are tagged, so that announcements stay on the node of their slot.
    pub fn publish(&self) -> &'static str {
        if self.tag.is_empty() {
            "PUBLISH"
        } else {
            "SPUBLISH"
        }
    }

    fn key(&self, pieces: &[&str]) -> String {
        let mut key =
            String::with_capacity(self.tag.len() + pieces.iter().map(|p| p.len()).sum::<usize>());
        key.push_str(&self.tag);
        pieces.iter().for_each(|p| key.push_str(p));
        key
    }

    /// Where the channels announcing pushes start.
    pub fn pushed_prefix(&self) -> String {
        self.key(&[PUSHED_PREFIX])
    }

    /// The channel announcing pushes into the queue with this key ([`QueueName::key`]).
    pub fn pushed_channel(&self, queue_key: &str) -> String {
        self.key(&[PUSHED_PREFIX, queue_key])
    }

    /// The queue key a channel announces pushes for.
    pub fn pushed_queue<'a>(&self, channel: &'a str) -> Option<&'a str> {
        channel
            .strip_prefix(&*self.tag)?
            .strip_prefix(PUSHED_PREFIX)
    }

    /// A transaction's reference after the tag: how scripts name it in PopBox's layout (see
    /// `record`). Not a key itself: each of its keys is this and a suffix, so that no id names
    /// another transaction's key.
    pub fn transaction(&self, id: &TxId) -> String {
        self.key(&[TRANSACTION_PREFIX, id.as_str()])
    }

    /// A transaction's one hash in the dense layout (see `record`).
    pub fn record(&self, id: &TxId) -> String {
        self.key(&[TRANSACTION_PREFIX, id.as_str(), ":tx"])
    }

    pub fn history(&self, id: &TxId) -> String {
        self.key(&[TRANSACTION_PREFIX, id.as_str(), ":history"])
    }

    pub fn delayed(&self, id: &TxId) -> String {
        self.key(&[TRANSACTION_PREFIX, id.as_str(), ":delayed"])
    }

    pub fn meta(&self, id: &TxId) -> String {
        self.key(&[TRANSACTION_PREFIX, id.as_str(), ":meta"])
    }

    pub fn state(&self, id: &TxId) -> String {
        self.key(&[TRANSACTION_PREFIX, id.as_str(), ":state"])
    }

    /// The held pushes by due time (the regional shard's).
    pub fn delayed_due(&self) -> String {
        self.key(&["PB:D|due"])
    }

    /// The reliable deliveries awaiting an acknowledgement on a shard.
    pub fn unacked(&self) -> String {
        self.key(&["PB:A|unacked"])
    }

    /// Which hash placed the queues on a set of several servers.
    pub fn layout(&self) -> String {
        self.key(&["RB:H|layout"])
    }

    pub fn list(&self, queue: &QueueName, priority: Priority) -> String {
        self.list_of(queue.key(), priority)
    }

    /// The list of the queue with this key ([`QueueName::key`]).
    pub fn list_of(&self, queue_key: &str, priority: Priority) -> String {
        let list = match priority {
            Priority::High => "PB:Q|H:",
            Priority::Low => "PB:Q|L:",
        };
        self.key(&[list, queue_key])
    }

    /// What `SCAN` matches to find every queue's lists (both priorities).
    pub fn lists(&self) -> String {
        self.key(&["PB:Q|[HL]:*"])
    }

    /// The queue key ([`QueueName::key`]) of a list found by [`lists`](Self::lists).
    pub fn queue_of_list<'a>(&self, list: &'a str) -> Option<&'a str> {
        let list = list.strip_prefix(&*self.tag)?;
        (list.strip_prefix("PB:Q|H:")).or_else(|| list.strip_prefix("PB:Q|L:"))
    }

    pub fn user_info(&self, queue: &QueueName) -> String {
        self.key(&["PB:Q|", queue.key(), ":userInfo"])
    }

    pub fn secure_queue(&self, queue: &QueueName) -> String {
        self.key(&[queue.key()])
    }

    pub fn location(&self, customer: &str) -> String {
        self.key(&["RB:L|", customer])
    }

    /// Never written: a script that reaches keys it cannot name in advance (found in a list, a
    /// set or its arguments) declares this one too. Missing, it makes Redis Cluster run the
    /// script only while its slot is not moving (a missing key of a moving slot is `ASK`ed on
    /// the old master, then `TRYAGAIN` on the new one), and so never where those keys are not:
    /// there a write would put a key beside the one still on the other master, a read would
    /// find nothing, and either fails the move or loses a message.
    pub fn steady(&self) -> String {
        self.key(&["RB:steady"])
    }

    /// That node `node` (its [`RedisStore`](super::RedisStore) origin) is alive, on each of its
    /// shards: it counts its waiters in `userInfo` (`blocked:<node>`) only as long as this
    /// lasts, so that a node that dies leaves no queue counted `blocked`.
    pub fn node_alive(&self, node: &str) -> String {
        self.key(&["RB:N|", node])
    }

    /// The `userInfo` hashes where node `node` counts waiters, on each shard (a set, expiring
    /// with [`node_alive`](Self::node_alive)): after an outage the node drops those counts and
    /// counts anew.
    pub fn node_waits(&self, node: &str) -> String {
        self.key(&["RB:W|", node])
    }

    /// Node `node`'s statistics archive of rows spanning `span` seconds (regional; hash: slot
    /// number → slot record).
    pub fn archive(&self, node: &str, span: u64) -> String {
        self.key(&["RB:S|", node, "|", &span.to_string()])
    }

    /// The nodes that write statistics archives (hash: node → Unix time of its last sample).
    pub fn archive_nodes(&self) -> String {
        self.key(&["RB:S|seen"])
    }

    /// Which node checks the region's alerts (string: `server/port`, with an expiry).
    pub fn alert_lease(&self) -> String {
        self.key(&["RB:S|alerts:lease"])
    }

    /// The alerts on record (hash: alert key → record).
    pub fn alert_book(&self) -> String {
        self.key(&["RB:S|alerts"])
    }

    /// The customer-ID pool (hash: from, to).
    pub fn pool(&self) -> String {
        self.key(&["RB:R|pool"])
    }

    /// Who acts as range master (string: `server/port`, with an expiry).
    pub fn pool_lease(&self) -> String {
        self.key(&["RB:R|lease"])
    }

    /// The nodes that have blocks (set).
    pub fn block_owners(&self) -> String {
        self.key(&["RB:R|nodes"])
    }

    /// A node's blocks (list of `from-to`, oldest first).
    pub fn blocks(&self, node: &str) -> String {
        self.key(&["RB:R|blocks|", node])
    }

    /// The other regions known (hash: public address → failed calls).
    pub fn members(&self) -> String {
        self.key(&["RB:M"])
    }

    pub fn group(&self, name: &str) -> String {
        self.key(&["PB:G|", name])
    }

    /// What a provisioning with idempotency key `once` (a hex digest: see the inbox's
    /// `once_key`) made, with its transaction: the transaction's id, expiring with it.
    pub fn once(&self, once: &str) -> String {
        self.key(&["PB:I|", once])
    }

    /// That a push with idempotency key `once` reached shard `shard`, on that shard.
    pub fn once_pushed(&self, once: &str, shard: usize) -> String {
        self.key(&["PB:I|", once, ":pushed:", &shard.to_string()])
    }

    /// A fresh key under which an idempotent operation records that it ran.
    pub fn token(&self) -> String {
        self.key(&["PB:K|", &uuid::Uuid::new_v4().to_string()])
    }
}

/// The hash tag of shard `shard` of `shards` on a Redis Cluster: one whose slot falls in the
/// shard's even share of the 16,384 (`{rb<shard>.<n>}`, the first `n` that does), so that the
/// shards spread over the cluster's nodes as evenly as its slots do. The same on every node.
pub fn shard_tag(shard: usize, shards: usize) -> String {
    let slots = usize::from(SLOTS);
    (0..)
        .map(|n| format!("rb{shard}.{n}"))
        .find(|tag| usize::from(slot(tag)) * shards / slots == shard)
        .map(|tag| format!("{{{tag}}}"))
        .expect("every share of the slots has tags")
}

/// What a queue list holds for a transaction: PopBox's reference, untagged (a script finds the
/// transaction's keys after its shard's tag).
pub fn reference(id: &TxId) -> String {
    [TRANSACTION_PREFIX, id.as_str()].concat()
}

/// The transaction id in a queue entry (PopBox's public id is what follows the first `|`).
pub fn from_reference(entry: &str) -> TxId {
    TxId::from(entry.split_once('|').map_or(entry, |(_, id)| id))
}

/// The field of a queue's `userInfo` hash where node `node` counts the consumers it has
/// waiting there.
pub fn waiting_field(node: &str) -> String {
    ["blocked:", node].concat()
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
        let keys = Keys::default();
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
                    claim(keys.list(&q, Priority::High), owner.clone());
                    claim(keys.list(&q, Priority::Low), owner.clone());
                    claim(keys.user_info(&q), owner.clone());
                    // The embedded store keys its queues and credentials by this too.
                    claim(keys.secure_queue(&q), owner);
                }
            }
        }
        for name in &names {
            claim(keys.group(name), format!("group {name:?}"));
            let id = TxId::from(name.as_str());
            for key in [
                keys.record(&id),
                keys.meta(&id),
                keys.state(&id),
                keys.history(&id),
                keys.delayed(&id),
            ] {
                claim(key, format!("transaction {name:?}"));
            }
        }
        for name in &names {
            // Idempotency keys reach the store as digests (`once_key`).
            use sha2::Digest;
            let digest = format!("{:x}", sha2::Sha256::digest(name));
            claim(keys.once(&digest), format!("idempotency key {name:?}"));
            for shard in 0..3 {
                claim(
                    keys.once_pushed(&digest, shard),
                    format!("idempotency key {name:?} {shard}"),
                );
            }
        }
        for name in &names {
            claim(keys.node_alive(name), format!("node {name:?} alive"));
            claim(keys.node_waits(name), format!("node {name:?} waits"));
        }
        for fixed in [
            keys.unacked(),
            keys.delayed_due(),
            keys.pool(),
            keys.pool_lease(),
            keys.block_owners(),
            keys.members(),
        ] {
            claim(fixed.clone(), fixed);
        }
    }

    #[test]
    fn popbox_layout() {
        let keys = Keys::default();
        let q = Namespace::plain(Some("acme".into())).queue("q1");
        assert_eq!(keys.list(&q, Priority::High), "PB:Q|H:acme:UNSEC:q1");
        assert_eq!(keys.user_info(&q), "PB:Q|acme:UNSEC:q1:userInfo");
        let id = TxId::from("abc");
        assert_eq!(keys.meta(&id), "PB:T|abc:meta");
        assert_eq!(from_reference(&reference(&id)), id);
        let channel = keys.pushed_channel(q.key());
        assert_eq!(channel, "relaybox:pushed:acme:UNSEC:q1");
        assert_eq!(keys.pushed_queue(&channel), Some(q.key()));
        assert_eq!(keys.pushed_queue("other"), None);
    }

    /// Each shard's tag lands in its share of the slots, on every node alike.
    #[test]
    fn shard_tags_spread_over_the_slots() {
        for shards in [1, 3, 16, 64] {
            for shard in 0..shards {
                let tag = shard_tag(shard, shards);
                let inner = tag.trim_start_matches('{').trim_end_matches('}');
                assert_eq!(usize::from(slot(inner)) * shards / 16_384, shard, "{tag}");
                assert_eq!(shard_tag(shard, shards), tag);
            }
        }
    }

    /// A shard's keys on a cluster all start with its tag; read back, they name the same.
    #[test]
    fn tagged_layout() {
        let keys = Keys::tagged("{rb7}");
        let q = Namespace::plain(None).queue("q1");
        assert_eq!(keys.list(&q, Priority::Low), "{rb7}PB:Q|L:UNSEC:q1");
        assert_eq!(keys.meta(&TxId::from("abc")), "{rb7}PB:T|abc:meta");
        assert_eq!(
            keys.queue_of_list(&keys.list(&q, Priority::Low)),
            Some(q.key())
        );
        assert_eq!(
            keys.pushed_queue(&keys.pushed_channel(q.key())),
            Some(q.key())
        );
        assert_eq!(
            Keys::default().pushed_queue(&keys.pushed_channel("x")),
            None
        );
    }
}
