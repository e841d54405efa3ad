//! Which shard a queue (or transaction) lives on: a hash of its id, the same on every node.
//!
//! The default is Redis Cluster's: CRC16 (XMODEM) of the id, a slot of 16,384, and each shard
//! a range of slots — names people use (`user-1234`, `q1`…`q9999`) spread evenly, and the slots
//! are those a Redis Cluster would give the same names. PopBox's own (the sum of the id's UTF-16
//! code units, modulo the shard count) puts `q12` and `q21` together, and its sums fall in a
//! narrow band: past a few shards they crowd some and leave others empty (10,000 real names
//! over 64 shards: 3.5 times as many on the fullest as on the emptiest; 256 shards: 168 times).
//! It stays for a Redis set that a PopBox wrote (`store.queue_hash = "popbox"`).

use serde::{Deserialize, Serialize};

/// Redis Cluster's slot count.
pub const SLOTS: u16 = 16_384;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueHash {
    /// CRC16 slots, shards as ranges of slots.
    #[default]
    Crc16,
    /// PopBox's character sum.
    Popbox,
}

impl QueueHash {
    pub fn name(self) -> &'static str {
        match self {
            QueueHash::Crc16 => "crc16",
            QueueHash::Popbox => "popbox",
        }
    }

    /// The shard of `id` among `shards`.
    pub fn shard(self, id: &str, shards: usize) -> usize {
        let shards = shards.max(1);
        match self {
            QueueHash::Crc16 => usize::from(slot(id)) * shards / usize::from(SLOTS),
            QueueHash::Popbox => {
                let sum: u64 = id.encode_utf16().map(u64::from).sum();
                (sum % shards as u64) as usize
            }
        }
    }
}

/// Redis Cluster's slot of `key` (without its hash-tag rule: ids are hashed whole).
pub fn slot(key: &str) -> u16 {
    crc16(key.as_bytes()) % SLOTS
}

/// CRC-16/XMODEM (polynomial 0x1021, initial 0), as Redis Cluster computes it.
fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in bytes {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_and_slots_are_redis_clusters() {
        assert_eq!(crc16(b"123456789"), 0x31C3);
        // `CLUSTER KEYSLOT foo` and `… bar` on a Redis Cluster.
        assert_eq!(slot("foo"), 12182);
        assert_eq!(slot("bar"), 5061);
    }

    #[test]
    fn popbox_hash_is_popboxs() {
        // 'q' = 113, '1' = 49
        assert_eq!(QueueHash::Popbox.shard("q1", 1000), 162);
        assert_eq!(QueueHash::Popbox.shard("q1", 16), 162 % 16);
        assert_eq!(QueueHash::Popbox.shard("", 4), 0);
        // Non-ASCII counts UTF-16 units, as JavaScript does.
        assert_eq!(QueueHash::Popbox.shard("é", 1000), 0xe9);
    }

    /// 10,000 names of the shapes people give queues.
    fn names() -> Vec<String> {
        let mut names: Vec<String> = (1..=2500).map(|i| format!("user-{i}")).collect();
        names.extend(
            (0..2500u32).map(|i| format!("device:{:06x}", i.wrapping_mul(2_654_435_761) >> 8)),
        );
        names.extend(
            (0..2500).map(|i| format!("orders.{}.{}", ["eu", "us", "ap", "sa"][i % 4], i / 4)),
        );
        names.extend((1..=2500).map(|i| format!("q{i}")));
        names
    }

    fn spread(hash: QueueHash, shards: usize) -> f64 {
        let mut counts = vec![0u32; shards];
        for name in names() {
            counts[hash.shard(&name, shards)] += 1;
        }
        let (most, least) = (counts.iter().max().unwrap(), counts.iter().min().unwrap());
        f64::from(*most) / f64::from((*least).max(1))
    }

    #[test]
    fn real_names_spread_evenly_over_four_servers() {
        let crc16 = spread(QueueHash::Crc16, 4);
        assert!(crc16 <= 1.1, "largest / smallest share: {crc16:.3}");
        // With more shards each holds fewer names, and chance alone widens the gap.
        for (shards, most) in [(2, 1.1), (8, 1.15), (16, 1.2), (64, 1.5)] {
            let ratio = spread(QueueHash::Crc16, shards);
            assert!(ratio <= most, "{shards} shards: {ratio:.3}");
        }
        // Why it is not PopBox's, but for PopBox's own Redis sets.
        let popbox = spread(QueueHash::Popbox, 64);
        assert!(popbox > 3.0, "PopBox's hash over 64 shards: {popbox:.3}");
    }
}
