//! A private Redis Cluster for tests: masters and replicas on free loopback ports, joined with
//! `redis-cli --cluster create` (slots split evenly, a replica per master), ready when every
//! node says `cluster_state:ok`. Nodes are given up on after 2 s (`cluster-node-timeout`), so a
//! killed master's replica takes over within seconds.

use std::process::Command;
use std::time::{Duration, Instant};

use super::RedisServer;

pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// `masters` masters with `replicas` replicas each.
    pub fn start(masters: usize, replicas: usize) -> Self {
        let nodes: Vec<RedisServer> = (0..masters * (1 + replicas))
            .map(|_| RedisServer::start_cluster_node())
            .collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .output()
            .expect("redis-cli is needed for the cluster tests (tools/test installs it)");
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let cluster = RedisCluster { nodes };
        cluster.wait_until_ok(Duration::from_secs(30));
        cluster
    }

    /// The seed URLs a node is given: every node's.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// Waits until every live node says the cluster is fine and knows its replicas' role.
    pub fn wait_until_ok(&self, limit: Duration) {
        let started = Instant::now();
        loop {
            let ok = (self.nodes.iter().filter(|n| n.is_running()))
                .all(|n| n.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok"));
            if ok {
                return;
            }
            assert!(started.elapsed() < limit, "the cluster never became ready");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Adds a master and moves its share of the slots to it, keys and all, as an operator
    /// would (`redis-cli --cluster add-node`, then `rebalance --cluster-use-empty-masters`);
    /// returns its index.
    pub fn add_master(&mut self) -> usize {
        let new = RedisServer::start_cluster_node();
        let first = format!("127.0.0.1:{}", self.nodes[0].port);
        let cli = |args: &[&str]| {
            let out = Command::new("redis-cli").args(args).output().unwrap();
            let said = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(out.status.success(), "redis-cli {args:?}: {said}");
        };
        cli(&[
            "--cluster",
            "add-node",
            &format!("127.0.0.1:{}", new.port),
            &first,
        ]);
        self.nodes.push(new);
        self.wait_until_ok(Duration::from_secs(30));
        // The new node must be known to all before slots move to it.
        std::thread::sleep(Duration::from_secs(1));
        cli(&[
            "--cluster",
            "rebalance",
            &first,
            "--cluster-use-empty-masters",
        ]);
        self.wait_until_ok(Duration::from_secs(30));
        self.nodes.len() - 1
    }

    /// The index of the master that serves `slot`.
    pub fn master_of(&self, slot: u16) -> usize {
        let serves = |node: &RedisServer| {
            let nodes = node.cli(&["CLUSTER", "NODES"]);
            let me = nodes.lines().find(|l| l.contains("myself")).unwrap_or("");
            let fields: Vec<&str> = me.split_whitespace().collect();
            fields.len() > 8
                && fields[2].contains("master")
                && fields[8..].iter().any(|range| {
                    let (low, high) = range.split_once('-').unwrap_or((range, range));
                    match (low.parse::<u16>(), high.parse::<u16>()) {
                        (Ok(low), Ok(high)) => (low..=high).contains(&slot),
                        _ => false,
                    }
                })
        };
        (self.nodes.iter())
            .position(|n| n.is_running() && serves(n))
            .unwrap_or_else(|| panic!("no master serves slot {slot}"))
    }

    /// Starts moving `slot` to master `to` as `redis-cli --cluster reshard` does, step by step,
    /// so that a test can hold it half-moved: `IMPORTING` on `to`, `MIGRATING` on its master.
    pub fn begin_move(&self, slot: u16, to: usize) -> SlotMove {
        let from = self.master_of(slot);
        let id = |i: usize| self.nodes[i].cli(&["CLUSTER", "MYID"]);
        let slot_arg = slot.to_string();
        let set = |i: usize, state: &str, other: usize| {
            let said = self.nodes[i].cli(&["CLUSTER", "SETSLOT", &slot_arg, state, &id(other)]);
            assert_eq!(said, "OK", "CLUSTER SETSLOT {slot} {state}: {said}");
        };
        set(to, "IMPORTING", from);
        set(from, "MIGRATING", to);
        SlotMove { slot, from, to }
    }

    /// Moves up to `max` of the slot's keys that `pick` chooses to its new master (`MIGRATE`,
    /// which refuses with `BUSYKEY` a key the new master has already: written on both sides);
    /// returns how many moved.
    pub fn move_keys(&self, moving: &SlotMove, max: usize, pick: impl Fn(&str) -> bool) -> usize {
        let (from, to) = (&self.nodes[moving.from], &self.nodes[moving.to]);
        let listed = from.cli(&[
            "CLUSTER",
            "GETKEYSINSLOT",
            &moving.slot.to_string(),
            "100000",
        ]);
        let keys: Vec<&str> = (listed.lines())
            .filter(|k| !k.is_empty() && pick(k))
            .take(max)
            .collect();
        if keys.is_empty() {
            return 0;
        }
        let port = to.port.to_string();
        let mut args = vec!["MIGRATE", "127.0.0.1", &port, "", "0", "5000", "KEYS"];
        args.extend(&keys);
        let said = from.cli(&args);
        assert!(
            said == "OK" || said == "NOKEY",
            "MIGRATE of {} keys: {said}",
            keys.len()
        );
        keys.len()
    }

    /// Moves the slot's other keys and gives the slot to its new master, on every master.
    pub fn finish_move(&self, moving: SlotMove) {
        while self.move_keys(&moving, 100, |_| true) > 0 {}
        let (slot, to) = (
            moving.slot.to_string(),
            self.nodes[moving.to].cli(&["CLUSTER", "MYID"]),
        );
        let masters = (0..self.nodes.len()).filter(|&i| {
            self.nodes[i].is_running() && self.nodes[i].cli(&["ROLE"]).starts_with("master")
        });
        // The new master first, then the old, as the cluster specification asks.
        let mut order = vec![moving.to, moving.from];
        order.extend(masters.filter(|i| *i != moving.to && *i != moving.from));
        for i in order {
            let said = self.nodes[i].cli(&["CLUSTER", "SETSLOT", &slot, "NODE", &to]);
            assert_eq!(said, "OK", "CLUSTER SETSLOT {slot} NODE: {said}");
        }
    }
}

/// A slot on its way from one master to another (see [`RedisCluster::begin_move`]).
pub struct SlotMove {
    pub slot: u16,
    pub from: usize,
    pub to: usize,
}
