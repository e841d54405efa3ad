//! The Redis backend: durable, shared by every node, sharded over several servers.
//!
//! Queues are spread over `redis_servers` by `store.queue_hash`, and so are transactions (their
//! metadata, states and histories): each lives on the server of its id's shard, the same on
//! every node ([`Placement`]). The inbox gives a new transaction an id placed on the shard of
//! one of its queues, so that a push into one queue, and the pop that takes it, are one round
//! trip on one server; the work spreads with the queues. With `redis_transactions` set, every
//! transaction lives on that one server instead (PopBox's layout). The records of the region —
//! groups, desktops' locations, ID books, held pushes, statistics — live on one server
//! (`regional`): `redis_transactions` or the first.
//!
//! Each shard thread that uses a server has one multiplexed command connection to it (a
//! [`ConnectionManager`], which reconnects by itself), and each shard one pub/sub connection
//! (see `subscriber`): never one per waiter or request.
//!
//! Every operation is one script or transaction per server it touches. When queues and
//! transactions share a server, a push and a pop that finds messages are one round trip each; a
//! pop that has to wait is two in all, because the takes keep its `blocked` count.
//!
//! Takes and put-backs carry a token recorded in the same script, so that one cut off by an
//! outage can be run again (for `redis_recovery`) without losing or duplicating messages.

mod archives;
mod cluster_link;
mod delays;
mod directory;
mod id_books;
mod keys;
mod locations;
mod metered;
mod pipelines;
mod placement;
mod queues;
mod record;
mod scripts;
mod server;
mod subscriber;
mod survey;
mod sync;

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::iter;
use std::sync::Arc;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::cluster::ClusterClientBuilder;
use ::redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use ::redis::io::tcp::TcpSettings;
use ::redis::{
    AsyncCommands, Client, ErrorKind, IntoConnectionInfo, RedisError, RedisResult, RetryMethod,
    ServerErrorKind,
};
use async_trait::async_trait;
use tracing::{error, warn};

use super::{
    Archives, Deepest, Delays, Directory, Durability, HISTORY_LIMIT, IdBooks, Locations,
    Notifications, QueueDepth, Queues, ShardId, StoreError, StoreResult, Survey, TakenRef,
    WaitAccounting, deepest_of,
};
use crate::config::redact;
use crate::config::{Backend, StoreSettings};
use crate::meter::CallMeter;
use crate::model::Location;
use crate::model::{
    DelayedPush, DeliveryState, Mark, Message, Meta, NewTransaction, Priority, QueueHash,
    QueueInfo, QueueName, QueuedRef, StateChange, TxId, unix_now, unix_now_ms,
};
use crate::model::{IdRange, PoolCut};
use cluster_link::ClusterLink;
use keys::Keys;
use metered::{Connection, Metered};
use placement::Placement;
use record::{Record, decode_meta};
use server::{Link, Server};

/// How many due unacknowledged deliveries one sweep returns at most.
const UNACKED_BATCH: isize = 500;

/// How much longer than `redis_recovery` the record of a take or a put-back is kept for its
/// retries to find. Every take leaves one, so it must not outlive the retries by much: at 10,000
/// pops a second, an hour's worth would be 36 million keys.
const TOKEN_MARGIN: Duration = Duration::from_secs(60);

pub struct RedisStore {
    shards: Vec<Server>,
    /// The region's records: groups, locations, ID books, held pushes, statistics.
    regional: Server,
    transactions: Placement,
    /// On a Redis Cluster, the sharded pub/sub connection the shards' announcements share.
    hub: Option<subscriber::Hub>,
    /// How long an interrupted take or put-back is retried.
    recovery: Duration,
    /// How long the record of a take or put-back is kept (seconds): past its last retry.
    token_lifetime: u64,
    /// Names this node in its announcements of pushes, so that it can ignore its own, and in
    /// its counts of waiters (see [`Keys::node_alive`]).
    origin: Arc<str>,
    /// Where this node counts its waiters in a queue's `userInfo` hash (its set of those
    /// hashes on each shard: [`Keys::node_waits`]).
    waiting_field: Arc<str>,
    /// How many put-backs of lost takes run in the background (see `return_taken_later`).
    returning: Arc<tokio::sync::watch::Sender<usize>>,
    /// Which server was found demoted, if one was (see [`Queues::demotions`]).
    demoted: Arc<tokio::sync::watch::Sender<Option<String>>>,
    /// The replicas a write must reach before it is answered.
    durability: Durability,
}

impl RedisStore {
    /// Connects to every server, failing with a message naming the first one that cannot be
    /// reached.
    pub async fn connect(
        settings: &StoreSettings,
        durability: Durability,
    ) -> Result<Self, StoreError> {
        let timeout = Duration::from_millis(settings.redis_timeout_ms);
        let demoted = Arc::new(tokio::sync::watch::Sender::new(None));
        let (shards, hub) = if settings.backend == Backend::RedisCluster {
            let (shards, hub) = cluster_shards(settings, timeout, &demoted).await?;
            (shards, Some(hub))
        } else {
            (server_shards(settings, timeout, &demoted).await?, None)
        };
        let (regional, transactions) = match &settings.redis_transactions {
            None => (shards[0].clone(), Placement::Spread(settings.queue_hash)),
            Some(url) => match shards.iter().find(|s| *s.name == redact(url)) {
                Some(same) => (same.clone(), Placement::One),
                None => (
                    Server::connect(url, timeout, &demoted).await?,
                    Placement::One,
                ),
            },
        };
        check_layout(&shards, settings.queue_hash, &transactions).await?;
        let origin: Arc<str> = uuid::Uuid::new_v4().simple().to_string().into();
        // Alive before its first waiter counts: a count whose node is not is dropped when read.
        for server in &shards {
            subscriber::say_alive(server, &origin).await?;
        }
        Ok(RedisStore {
            shards,
            regional,
            transactions,
            hub,
            recovery: Duration::from_secs(settings.redis_recovery),
            token_lifetime: settings.redis_recovery + TOKEN_MARGIN.as_secs(),
            waiting_field: keys::waiting_field(&origin).into(),
            origin,
            returning: Arc::new(tokio::sync::watch::Sender::new(0)),
            demoted,
            durability,
        })
    }

    fn shard(&self, shard: ShardId) -> &Server {
        &self.shards[shard]
    }

    /// The scripts that touch transactions, for the layout they are in.
    fn scripts(&self) -> &'static scripts::RecordScripts {
        scripts::RecordScripts::of(self.record())
    }

    /// How each transaction is kept: PopBox's keys where PopBox's placement is.
    fn record(&self) -> Record {
        Record::of(&self.transactions)
    }

    /// How many shards of their own the store has (shards may share a server).
    fn distinct_shards(&self) -> usize {
        let mut distinct: Vec<&Server> = Vec::new();
        for server in &self.shards {
            if !distinct.iter().any(|s| s.same(server)) {
                distinct.push(server);
            }
        }
        distinct.len()
    }

    /// Each server of the store once (shards may share one; the transactions' may be apart;
    /// a cluster is one).
    fn servers(&self) -> Vec<&Server> {
        let mut servers: Vec<&Server> = Vec::new();
        for server in self.shards.iter().chain([&self.regional]) {
            if !servers.iter().any(|s| s.name == server.name) {
                servers.push(server);
            }
        }
        servers
    }
}

/// The shards of a set of servers, one per `redis_servers` entry (two entries of one server
/// share its connection).
async fn server_shards(
    settings: &StoreSettings,
    timeout: Duration,
    demoted: &Arc<tokio::sync::watch::Sender<Option<String>>>,
) -> Result<Vec<Server>, StoreError> {
    let mut shards: Vec<Server> = Vec::with_capacity(settings.redis_servers.len());
    for url in &settings.redis_servers {
        let server = match shards.iter().find(|s| *s.name == redact(url)) {
            Some(same) => same.clone(),
            None => Server::connect(url, timeout, demoted).await?,
        };
        shards.push(server);
    }
    Ok(shards)
}

/// The shards of a Redis Cluster: `store.shards` hash tags, whose slots are spread evenly over
/// the 16,384 (as the cluster's nodes split them), all on one connection to the cluster; and
/// the sharded pub/sub connection their announcements share.
async fn cluster_shards(
    settings: &StoreSettings,
    timeout: Duration,
    demoted: &Arc<tokio::sync::watch::Sender<Option<String>>>,
) -> Result<(Vec<Server>, subscriber::Hub), StoreError> {
    let cluster = Server::connect_cluster(&settings.redis_cluster, timeout, demoted).await?;
    let hub = subscriber::Hub::connect(&settings.redis_cluster, timeout)
        .await
        .map_err(|reason| StoreError::Unavailable {
            shard: cluster.name.to_string(),
            reason,
        })?;
    let shards = (0..settings.shards)
        .map(|shard| cluster.tagged(&keys::shard_tag(shard, settings.shards)))
        .collect();
    Ok((shards, hub))
}

/// Refuses a set of several servers whose queues another hash placed, or whose transactions
/// another placement: a node reading them its own way would not find most of them, and would
/// write beside them. The first node to start records its layout (`"<hash> <placement>"`; a
/// record of the hash alone is from before transactions spread, when they all lived on one
/// server); the others must have the same. One server holds everything whatever the layout,
/// so it records nothing.
async fn check_layout(
    shards: &[Server],
    hash: QueueHash,
    transactions: &Placement,
) -> Result<(), StoreError> {
    let first = &shards[0];
    if shards.iter().all(|s| s.same(first)) {
        return Ok(());
    }
    let ours = format!("{} {}", hash.name(), transactions.name());
    // One command (the earlier record, if any), so that it goes whole to the key's server.
    let earlier: Option<String> = ::redis::cmd("SET")
        .arg(first.keys.layout())
        .arg(&ours)
        .arg("NX")
        .arg("GET")
        .query_async(&mut first.conn())
        .await
        .map_err(|e| first.error(e))?;
    let recorded = earlier.unwrap_or(ours);
    let (placed, spread) = recorded.split_once(' ').unwrap_or((&recorded, "one"));
    let advice = if placed != hash.name() {
        format!(
            "the queues on these servers were placed by \"{placed}\", not \"{}\": set \
             store.queue_hash = \"{placed}\"",
            hash.name()
        )
    } else if spread != transactions.name() && spread == "one" {
        "the transactions on these servers all live on one server: set \
         store.redis_transactions to it (the first server, unless it was set)"
            .to_owned()
    } else if spread != transactions.name() {
        "the transactions on these servers are spread over them: remove \
         store.redis_transactions"
            .to_owned()
    } else {
        return Ok(());
    };
    Err(StoreError::Config(format!(
        "{advice} ({} on {} is \"{recorded}\")",
        first.keys.layout(),
        first.name
    )))
}

/// A line of a transaction's history (`Keys::history`): its state in `queue` became `state`
/// at `at` (Unix ms).
fn history_line(queue: &str, state: DeliveryState, at: i64) -> String {
    let change = StateChange {
        queue: queue.to_owned(),
        state,
        at,
    };
    serde_json::to_string(&change).expect("state changes serialise")
}

/// A command built with its buffers sized for all its arguments at once. redis-rs grows them an
/// argument at a time otherwise, and for a push, whose metadata holds the payload, those
/// reallocations were nearly a tenth of what the node did.
fn command<'a, I>(name: &str, args: I) -> ::redis::Cmd
where
    I: IntoIterator<Item = &'a [u8]>,
    I::IntoIter: Clone,
{
    let args = args.into_iter();
    let (count, bytes) = args
        .clone()
        .fold((1, name.len()), |(n, len), arg| (n + 1, len + arg.len()));
    let mut cmd = ::redis::Cmd::with_capacity(count, bytes);
    cmd.arg(name);
    for arg in args {
        cmd.arg(arg);
    }
    cmd
}

fn refs(high: Vec<String>, low: Vec<String>) -> Vec<QueuedRef> {
    let high = high.into_iter().map(|r| QueuedRef {
        tx: keys::from_reference(&r),
        priority: Priority::High,
    });
    let low = low.into_iter().map(|r| QueuedRef {
        tx: keys::from_reference(&r),
        priority: Priority::Low,
    });
    high.chain(low).collect()
}

/// Markers that make a step run once per idempotency key (see [`Queues::provision`]): the step
/// runs only if the first is not set yet, and then sets them all to `value` (the transaction's
/// id), expiring with the transaction at `until`.
struct Marks {
    keys: Vec<String>,
    value: String,
    until: i64,
}

impl Marks {
    /// The marks for `keys` of an idempotency key, when the request has one.
    fn of(
        once: Option<&str>,
        keys: impl FnOnce(&str) -> Vec<String>,
        id: &TxId,
        until: i64,
    ) -> Option<Self> {
        once.map(|once| Marks {
            keys: keys(once),
            value: id.to_string(),
            until,
        })
    }
}

/// What a push needs to know of its transaction.
#[derive(Clone, Copy)]
struct PushTarget<'a> {
    id: &'a TxId,
    priority: Priority,
    expires_at: i64,
}

impl<'a> From<&'a NewTransaction> for PushTarget<'a> {
    fn from(tx: &'a NewTransaction) -> Self {
        PushTarget {
            id: &tx.id,
            priority: tx.priority,
            expires_at: tx.expires_at,
        }
    }
}

impl RedisStore {
    /// Stores `create` (when given) and pushes the transaction into `queues` on `server`, as
    /// one MULTI/EXEC: one round trip, and no Lua, which costs Redis about a third more CPU
    /// for the same commands. With `marks`, only if the first is not set yet (see [`Marks`]):
    /// then returns the transaction it names instead.
    async fn run_provision<'a>(
        &self,
        server: &Server,
        target: impl Into<PushTarget<'a>>,
        create: Option<&NewTransaction>,
        queues: &[QueueName],
        marks: Option<Marks>,
    ) -> StoreResult<Option<TxId>> {
        let mut pipe = ::redis::pipe();
        pipe.atomic();
        self.provision_commands(&mut pipe, &server.keys, target.into(), create, queues);
        let held = self.send(server, pipe, marks).await?;
        self.confirm(server).await?;
        Ok(held.map(TxId::from))
    }

    /// Adds to `pipe` what storing `create` (when given) and pushing the transaction into
    /// `queues` takes. Each list is kept alive at least as long as its newest message (PopBox's
    /// "garbage collector": `EXPIRE NX` gives a new list its lifetime, `EXPIRE GT` lengthens an
    /// older one's); the queues are announced on the channel.
    fn provision_commands(
        &self,
        pipe: &mut ::redis::Pipeline,
        keys: &Keys,
        target: PushTarget<'_>,
        create: Option<&NewTransaction>,
        queues: &[QueueName],
    ) {
        let ttl = target.expires_at - unix_now();
        // An expired message is never pushed: a list's lifetime of 0 would delete the list,
        // and every other message in it.
        let queues = if ttl > 0 { queues } else { &[] };
        if let Some(tx) = create.filter(|tx| !tx.meta.is_empty()) {
            self.record().store(pipe, keys, tx);
        }
        let (reference, ttl) = (keys::reference(target.id), ttl.to_string());
        for queue in queues {
            let list = keys.list(queue, target.priority);
            pipe.add_command(command("RPUSH", [list.as_bytes(), reference.as_bytes()]));
            for only in ["NX", "GT"] {
                let args = [list.as_bytes(), ttl.as_bytes(), only.as_bytes()];
                pipe.add_command(command("EXPIRE", args));
            }
        }
        for queue in queues {
            let channel = keys.pushed_channel(queue.key());
            let args = [channel.as_bytes(), self.origin.as_bytes()];
            pipe.add_command(command(keys.publish(), args));
        }
    }

    /// Runs `pipe` (an atomic one, read as `()`) on `server`. With `marks`, runs its commands
    /// in the [`scripts::ONCE`] script instead, and returns what the first mark held if it was
    /// set already (the commands then did not run).
    async fn send(
        &self,
        server: &Server,
        pipe: ::redis::Pipeline,
        marks: Option<Marks>,
    ) -> StoreResult<Option<String>> {
        let Some(marks) = marks else {
            if pipe.is_empty() {
                return Ok(None);
            }
            return (server.multi::<()>(&pipe, self.recovery).await).map(|()| None);
        };
        let mut invocation = scripts::ONCE.prepare_invoke();
        for key in &marks.keys {
            invocation.key(key);
        }
        (invocation.arg(marks.value).arg(marks.until)).arg(marks.keys.len());
        let mut written = std::collections::HashSet::new();
        for cmd in pipe.cmd_iter() {
            let args: Vec<&[u8]> = (cmd.args_iter())
                .filter_map(|arg| match arg {
                    ::redis::Arg::Simple(bytes) => Some(bytes),
                    _ => None,
                })
                .collect();
            // Every command sent here names its key first, but for a publication's channel.
            if let [name, key, ..] = args[..]
                && !name.eq_ignore_ascii_case(b"PUBLISH")
                && !name.eq_ignore_ascii_case(b"SPUBLISH")
                && written.insert(key)
            {
                invocation.key(key);
            }
            invocation.arg(args.len());
            for arg in args {
                invocation.arg(arg);
            }
        }
        invocation
            .invoke_async(&mut server.conn())
            .await
            .map_err(|e| server.error(e))
    }

    /// Moves this node's count of the consumers waiting on `queue` by `by`. Not retried: one
    /// that fails with the server gone is made good when the node's counts there start afresh
    /// once it is back (see `subscriber`), and a retry landing after that would count out a
    /// waiter counted anew.
    async fn count_waiter(&self, shard: ShardId, queue: &QueueName, by: i64) -> StoreResult<()> {
        let server = self.shard(shard);
        let keys = &server.keys;
        scripts::COUNT_WAITING
            .key(keys.user_info(queue))
            .key(keys.node_waits(&self.origin))
            .arg(&*self.waiting_field)
            .arg(by)
            .invoke_async(&mut server.conn())
            .await
            .map_err(|e| server.error(e))
    }

    /// Puts references back at the head of `queue`, exactly once even if Redis goes away
    /// meanwhile.
    async fn requeue_on(
        &self,
        server: &Server,
        queue: &QueueName,
        refs: &[QueuedRef],
    ) -> StoreResult<()> {
        if refs.is_empty() {
            return Ok(());
        }
        let keys = &server.keys;
        let token = keys.token();
        self.retrying(server, || {
            let mut invocation = scripts::REQUEUE.key(keys.list(queue, Priority::High));
            invocation
                .key(keys.list(queue, Priority::Low))
                .key(&token)
                .key(keys.unacked())
                .arg(keys.pushed_channel(queue.key()))
                .arg(&*self.origin)
                .arg(self.token_lifetime)
                .arg(queue.key())
                .arg(queue.id());
            for r in refs {
                let p = if r.priority == Priority::High {
                    "H"
                } else {
                    "L"
                };
                invocation.arg(p).arg(keys::reference(&r.tx));
            }
            let mut conn = server.conn();
            async move { invocation.invoke_async::<i64>(&mut conn).await.map(drop) }
        })
        .await
    }

    /// Runs an idempotent operation, retrying it through an outage of `server` for up to
    /// `redis_recovery`: when a connection breaks, whether Redis ran the command is unknown, and
    /// only running it again (it is safe to) tells.
    async fn retrying<T, E, F, Fut>(&self, server: &Server, op: F) -> StoreResult<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, E>>,
        E: Into<StoreFailure>,
    {
        retry_through_outage(server, self.recovery, op).await
    }

    /// After a take failed with the server unreachable: the take may have run with its answer
    /// lost, leaving what it took recorded under its token and in nobody's hands. Puts that back
    /// in the background, for as long as the record lasts (`RETURN_TAKEN`; harmless when the
    /// take never ran). The `Pending` in the history is dated when the take failed.
    fn return_taken_later(&self, server: &Server, queue: &QueueName, token: &str, together: bool) {
        let keys = &server.keys;
        let mut invocation = self
            .scripts()
            .return_taken
            .key(keys.list(queue, Priority::High));
        invocation
            .key(keys.list(queue, Priority::Low))
            .key(token)
            .key(keys.unacked())
            .key(keys.user_info(queue))
            .key(keys.node_waits(&self.origin))
            .key(keys.steady())
            .arg(keys.pushed_channel(queue.key()))
            // From nobody: the node's own waiters must hear of it too, and no shard actor
            // awaits this task to drain the queue for them.
            .arg("")
            .arg(self.token_lifetime)
            .arg(queue.key())
            .arg(queue.id())
            .arg(if together { queue.id() } else { "" })
            .arg(history_line(
                queue.id(),
                DeliveryState::Pending,
                unix_now_ms(),
            ))
            .arg(&*self.waiting_field);
        let (server, queue) = (server.clone(), queue.clone());
        let lifetime = Duration::from_secs(self.token_lifetime);
        let returning = Returning::start(&self.returning);
        tokio::spawn(async move {
            let returned = retry_through_outage(&server, lifetime, || {
                let (invocation, mut conn) = (&invocation, server.conn());
                async move { invocation.invoke_async::<i64>(&mut conn).await }
            });
            match returned.await {
                Ok(0) => {}
                Ok(count) => {
                    warn!(%queue, count, "put back messages taken for a pop whose answer was lost")
                }
                Err(e) => {
                    error!(%queue, error = %e, "messages taken for a pop whose answer was lost may not be back")
                }
            }
            drop(returning);
        });
    }
}

/// One put-back running in the background, counted in `RedisStore::returning` for as long as
/// it lives: a task that panics or is dropped with its thread still counts out.
struct Returning(Arc<tokio::sync::watch::Sender<usize>>);

impl Returning {
    fn start(count: &Arc<tokio::sync::watch::Sender<usize>>) -> Self {
        count.send_modify(|n| *n += 1);
        Returning(Arc::clone(count))
    }
}

impl Drop for Returning {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

/// Runs an idempotent operation on `server`, retrying it while the server is unreachable, for
/// up to `budget`.
async fn retry_through_outage<T, E, F, Fut>(
    server: &Server,
    budget: Duration,
    mut op: F,
) -> StoreResult<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
    E: Into<StoreFailure>,
{
    let started = tokio::time::Instant::now();
    let mut delay = Duration::from_millis(50);
    loop {
        let error = match op().await.map_err(Into::into) {
            Ok(value) => return Ok(value),
            Err(StoreFailure::Redis(e)) => server.error(e),
            Err(StoreFailure::Store(e)) => e,
        };
        if !matches!(error, StoreError::Unavailable { .. }) || started.elapsed() + delay > budget {
            return Err(error);
        }
        warn!(server = %server.name, error = %error, "retrying an operation interrupted by an outage");
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(1));
    }
}

/// What an operation passed to [`retry_through_outage`] can fail with.
enum StoreFailure {
    Redis(RedisError),
    Store(StoreError),
}

impl From<RedisError> for StoreFailure {
    fn from(e: RedisError) -> Self {
        StoreFailure::Redis(e)
    }
}

impl From<StoreError> for StoreFailure {
    fn from(e: StoreError) -> Self {
        StoreFailure::Store(e)
    }
}
