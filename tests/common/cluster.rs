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
}
