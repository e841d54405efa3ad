//! Several commands to one shard at once, in a way that stays right while a Redis Cluster
//! moves the shard's slot from one master to another (resharding).
//!
//! While a slot moves, the old master runs a command whose keys it still holds and answers
//! `ASK` for keys already gone; the new one takes a command only right after `ASKING`, one at
//! a time. redis-rs (1.8) answers an `ASK` inside a pipeline by sending the whole pipeline to
//! the new master after one `ASKING`: the pipeline's first command then runs there even when
//! its key still lives on the old master, and the key exists twice. Moving it fails
//! (`BUSYKEY`), and the slot stays half-moved until an operator repairs it: seen with the
//! node's heartbeat (`SET` one key, `EXPIRE` another) under `redis-cli --cluster rebalance`,
//! and tested in `tests/redis_cluster.rs`. So:
//!
//! - [`Server::pipeline`]: on a cluster each command goes on its own, and each is redirected
//!   as the cluster asks; on a server the pipeline is one round trip, as before;
//! - [`Server::multi`] (`MULTI`/`EXEC`): Redis runs all of it or none, and discards the
//!   whole of it when some of its keys have moved and others not yet (`EXECABORT` with `ASK`,
//!   `TRYAGAIN` at `EXEC`). Discarded, it is sure not to have run: it is sent again once the
//!   keys have moved, which takes milliseconds per slot. Once the slot has moved, the old
//!   master discards it with `MOVED`, which redis-rs does not learn from inside a transaction;
//!   the next single command to the slot (each shard's heartbeat, every second) has it read
//!   the new map.

use futures_util::future::try_join_all;

use super::*;

/// The first pause before a transaction discarded by a moving slot is sent again; it doubles
/// up to [`MOST_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(5);
const MOST_PAUSE: Duration = Duration::from_millis(200);

impl Server {
    /// Runs `pipe`, a pipeline that is not a transaction, and reads its replies as `T`. Its
    /// commands must not be `ignore`d: on a cluster every reply is read.
    pub(super) async fn pipeline<T: ::redis::FromRedisValue>(
        &self,
        pipe: &::redis::Pipeline,
    ) -> StoreResult<T> {
        let replies = match &self.link {
            Link::Single(_) => pipe.query_async(&mut self.conn()).await,
            Link::Cluster(_) => {
                let conn = self.conn();
                let each = pipe.cmd_iter().map(|cmd| {
                    let mut conn = conn.clone();
                    async move { cmd.query_async::<::redis::Value>(&mut conn).await }
                });
                try_join_all(each).await.and_then(|replies| {
                    ::redis::from_redis_value(::redis::Value::Array(replies)).map_err(Into::into)
                })
            }
        };
        replies.map_err(|e| self.error(e))
    }

    /// Runs `pipe`, a transaction (`MULTI`/`EXEC`), and reads its replies as `T`; sent again
    /// for up to `budget` while a moving slot has Redis discard it.
    pub(super) async fn multi<T: ::redis::FromRedisValue>(
        &self,
        pipe: &::redis::Pipeline,
        budget: Duration,
    ) -> StoreResult<T> {
        let started = tokio::time::Instant::now();
        let mut pause = FIRST_PAUSE;
        loop {
            match pipe.query_async(&mut self.conn()).await {
                Err(e) if discarded_by_a_move(&e) && started.elapsed() + pause < budget => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(MOST_PAUSE);
                }
                answer => return answer.map_err(|e| self.error(e)),
            }
        }
    }
}

/// Whether Redis discarded a transaction, unrun, because its slot is moving: every error in
/// it is a redirection or `TRYAGAIN`.
fn discarded_by_a_move(e: &RedisError) -> bool {
    e.clone().into_server_errors().is_some_and(|errors| {
        !errors.is_empty()
            && errors.iter().all(|(_, error)| {
                use ServerErrorKind::*;
                matches!(error.kind(), Some(Ask | Moved | TryAgain))
            })
    })
}
