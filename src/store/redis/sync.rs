//! Waiting for replicas (`replication.sync_replicas`) in groups. `WAIT` answers once the
//! replicas have every write sent before it on its connection, and holds that connection (this
//! thread's to the server) until then. One `WAIT` per write would queue every write behind the
//! last one's wait; instead a write whose answer is in joins a `WAIT` sent after it, or the next
//! one, so that one replication round trip confirms every write made meanwhile.
//!
//! One concern of the backend, split out of its module: it uses the module's types and helpers
//! as its own.

use std::sync::Mutex;

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};

use super::*;

/// A `WAIT` under way, and how many writes it covers.
#[derive(Clone)]
struct Round {
    covers: u64,
    answer: Shared<BoxFuture<'static, Result<u32, String>>>,
}

/// This thread's group commit on one server.
#[derive(Default)]
struct Group {
    /// Writes answered so far (each confirmation counts one).
    written: u64,
    round: Option<Round>,
}

thread_local! {
    /// By server, and on a cluster by shard: each shard's writes go to its slot's master.
    static GROUPS: RefCell<HashMap<Arc<str>, Arc<Mutex<Group>>>> = RefCell::default();
}

impl RedisStore {
    /// With `replication.sync_replicas`, waits until that many replicas of `server` have the
    /// writes this thread made there, the one just answered included. Fewer within
    /// `sync_timeout_ms`: the write stays on the master, but the client is not told it
    /// succeeded (a `503`; a retry with the same `Idempotency-Key` does not push again).
    pub(super) async fn confirm(&self, server: &Server) -> StoreResult<()> {
        let Durability { replicas, timeout } = self.durability;
        if replicas == 0 {
            return Ok(());
        }
        let group = GROUPS.with(|groups| {
            Arc::clone(
                groups
                    .borrow_mut()
                    .entry([&*server.name, server.keys.tag()].concat().into())
                    .or_default(),
            )
        });
        let mine = {
            let mut group = lock(&group);
            group.written += 1;
            group.written
        };
        let confirmed = loop {
            // The round under way, or a new one covering every write answered so far.
            let round = {
                let mut group = lock(&group);
                let written = group.written;
                (group.round)
                    .get_or_insert_with(|| Round {
                        covers: written,
                        answer: wait(server.clone(), replicas, timeout).shared(),
                    })
                    .clone()
            };
            let covers = round.covers;
            let answer = round.answer.await;
            over(&group, covers);
            // A round sent before this write was answered does not cover it: the next does.
            if covers >= mine {
                break answer;
            }
        };
        match confirmed {
            Ok(confirmed) if confirmed >= replicas => Ok(()),
            Ok(confirmed) => Err(StoreError::Unavailable {
                shard: server.name.to_string(),
                reason: format!(
                    "the write was stored but only {confirmed} of the {replicas} replicas \
                     required (replication.sync_replicas) confirmed it within {} ms",
                    timeout.as_millis()
                ),
            }),
            Err(reason) => Err(StoreError::Unavailable {
                shard: server.name.to_string(),
                reason,
            }),
        }
    }
}

/// One `WAIT` on this thread's connection to `server`; on a cluster, to the master of the
/// shard's slot, which took its writes (the cluster would ask every master otherwise).
fn wait(
    server: Server,
    replicas: u32,
    timeout: Duration,
) -> BoxFuture<'static, Result<u32, String>> {
    async move {
        let mut wait = ::redis::cmd("WAIT");
        wait.arg(replicas).arg(timeout.as_millis() as u64);
        server.on_master::<u32>(wait).await.map_err(|e| match e {
            StoreError::Unavailable { reason, .. } | StoreError::Backend { reason, .. } => reason,
            other => other.to_string(),
        })
    }
    .boxed()
}

/// `round` is over: the next write sends a new one.
fn over(group: &Mutex<Group>, covers: u64) {
    let mut group = lock(group);
    if group.round.as_ref().is_some_and(|r| r.covers == covers) {
        group.round = None;
    }
}

fn lock(group: &Mutex<Group>) -> std::sync::MutexGuard<'_, Group> {
    group
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
