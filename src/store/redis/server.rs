//! One Redis server of the store and this node's command connection to it: connecting (and
//! checking the server's version), telling an outage from a refusal, and noticing a server
//! demoted under the node.
//!
//! One concern of the backend, split out of its module: it uses the module's types and helpers
//! as its own.

use super::*;

/// One Redis server (or one shard of a Redis Cluster) and our command connection to it.
#[derive(Clone)]
pub(super) struct Server {
    /// The URL without credentials (a cluster's: its first seed's), for messages.
    pub(super) name: Arc<str>,
    pub(super) link: Link,
    /// Set to a server's name when it answers `READONLY`: shared by the store's servers.
    pub(super) demoted: Arc<tokio::sync::watch::Sender<Option<String>>>,
    /// How this node's calls to the server go.
    pub(super) meter: Arc<CallMeter>,
    /// The names of the keys this shard keeps there.
    pub(super) keys: Keys,
}

/// How commands reach a server.
#[derive(Clone)]
pub(super) enum Link {
    /// One server: a connection per thread, made on first use.
    Single(Box<SingleLink>),
    /// A Redis Cluster: one connection to every node, routing each command by its first
    /// key's slot and following the cluster through resharding and failover.
    Cluster(ClusterLink),
}

/// What a thread needs to connect to one server.
#[derive(Clone)]
pub(super) struct SingleLink {
    pub(super) client: Client,
    config: ConnectionManagerConfig,
}

thread_local! {
    /// This thread's command connection to each server. A shard actor's Redis traffic then
    /// stays on its own thread (no hand-off to a connection driver elsewhere), and a node holds
    /// one connection per server and shard thread — a constant, whatever the load.
    static CONNECTIONS: RefCell<HashMap<Arc<str>, ConnectionManager>> = RefCell::default();
}

impl Server {
    /// Checks that the server answers and is new enough, then keeps what is needed to connect
    /// from any thread.
    pub(super) async fn connect(
        url: &str,
        timeout: Duration,
        demoted: &Arc<tokio::sync::watch::Sender<Option<String>>>,
    ) -> Result<Self, StoreError> {
        let name: Arc<str> = redact(url).into();
        // Without TCP_NODELAY (redis-rs leaves it off), a command written while an earlier
        // one is unanswered waits for Redis's delayed ACK: milliseconds per push under load.
        let client = url
            .into_connection_info()
            .map(|info| info.set_tcp_settings(nodelay()))
            .and_then(Client::open)
            .map_err(|e| StoreError::Config(format!("{name}: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1);
        let probe = async {
            let mut conn = client.get_multiplexed_async_connection().await?;
            ::redis::cmd("INFO")
                .arg("server")
                .query_async::<String>(&mut conn)
                .await
        };
        check_version(&name, timeout, probe).await?;
        Ok(Server {
            demoted: Arc::clone(demoted),
            name,
            link: Link::Single(Box::new(SingleLink { client, config })),
            meter: Arc::default(),
            keys: Keys::default(),
        })
    }

    /// Connects to the Redis Cluster that `seeds` belong to, and checks one of its nodes.
    pub(super) async fn connect_cluster(
        seeds: &[String],
        timeout: Duration,
        demoted: &Arc<tokio::sync::watch::Sender<Option<String>>>,
    ) -> Result<Self, StoreError> {
        let name: Arc<str> = format!("cluster {}", redact(&seeds[0])).into();
        let unavailable = |reason| StoreError::Unavailable {
            shard: name.to_string(),
            reason,
        };
        let client = ClusterClientBuilder::new(seeds.iter().map(String::as_str))
            .connection_timeout(timeout)
            .response_timeout(timeout)
            .tcp_settings(nodelay())
            .build()
            .map_err(|e| StoreError::Config(format!("{name}: {e}")))?;
        let link = ClusterLink::connect(client, timeout)
            .await
            .map_err(unavailable)?;
        let conn = link.conn();
        let probe = {
            let mut conn = conn.clone();
            async move {
                let info = ::redis::cmd("INFO").arg("server").clone();
                let random = RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random);
                let answer = conn.route_command(info, random).await?;
                ::redis::from_redis_value::<String>(answer).map_err(RedisError::from)
            }
        };
        check_version(&name, timeout, probe).await?;
        Ok(Server {
            demoted: Arc::clone(demoted),
            name,
            link: Link::Cluster(link),
            meter: Arc::default(),
            keys: Keys::default(),
        })
    }

    /// This server as the shard whose keys start with `tag`.
    pub(super) fn tagged(&self, tag: &str) -> Self {
        Server {
            keys: Keys::tagged(tag),
            ..self.clone()
        }
    }

    /// Whether `other` is the same shard of the same server: they then share keys, and one
    /// script may touch both's.
    pub(super) fn same(&self, other: &Server) -> bool {
        self.name == other.name && self.keys.tag() == other.keys.tag()
    }

    pub(super) fn error(&self, e: RedisError) -> StoreError {
        let (shard, reason) = (self.name.to_string(), e.to_string());
        // A server that answers `LOADING` (restarting from its AOF), `MASTERDOWN` or `TRYAGAIN`
        // is not there yet either: an operation cut off by its restart must go on retrying.
        // Inside a pipeline those answers come one per command, the first not always among them,
        // and so do a cluster's redirections while it moves a slot (see `pipelines`).
        let in_pipeline = (e.clone().into_server_errors()).is_some_and(|errors| {
            errors.iter().any(|(_, error)| {
                use ServerErrorKind::*;
                matches!(
                    error.kind(),
                    Some(BusyLoading | TryAgain | MasterDown | ClusterDown | Ask | Moved)
                )
            })
        });
        if is_read_only(&e) {
            // Demoted under us: a newer primary has this server now.
            self.demoted.send_if_modified(|demoted| {
                let first = demoted.is_none();
                demoted.get_or_insert_with(|| shard.clone());
                first
            });
            return StoreError::Unavailable {
                shard,
                reason: format!("demoted to a read-only replica ({reason})"),
            };
        }
        if let (Link::Cluster(link), true) = (&self.link, e.is_timeout()) {
            link.renew();
        }
        if e.is_io_error()
            || e.is_timeout()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || matches!(e.retry_method(), RetryMethod::WaitAndRetry)
            || in_pipeline
        {
            StoreError::Unavailable { shard, reason }
        } else {
            StoreError::Backend { shard, reason }
        }
    }

    /// Runs a command that names no key on the server; on a cluster, on the master of the
    /// shard's slot (the cluster would pick a node at random, or ask every master).
    pub(super) async fn on_master<T: ::redis::FromRedisValue>(
        &self,
        cmd: ::redis::Cmd,
    ) -> StoreResult<T> {
        let answer = match &self.link {
            Link::Cluster(link) => {
                let tag = self
                    .keys
                    .tag()
                    .trim_start_matches('{')
                    .trim_end_matches('}');
                let master = Route::new(crate::model::shard_hash::slot(tag), SlotAddr::Master);
                let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(master));
                let answer = link.conn().route_command(cmd, route).await;
                answer.and_then(|value| ::redis::from_redis_value(value).map_err(Into::into))
            }
            Link::Single(_) => cmd.query_async(&mut self.conn()).await,
        };
        answer.map_err(|e| self.error(e))
    }

    /// Whether the server answers.
    pub(super) async fn ping(&self) -> StoreResult<()> {
        ::redis::cmd("PING")
            .query_async::<()>(&mut self.conn())
            .await
            .map_err(|e| self.error(e))
    }

    /// This thread's connection to the server (made on first use; cheap to clone: it is
    /// multiplexed and reconnects by itself), measured.
    pub(super) fn conn(&self) -> Metered {
        let inner = match &self.link {
            Link::Single(single) => Connection::Single(CONNECTIONS.with(|conns| {
                conns
                    .borrow_mut()
                    .entry(Arc::clone(&self.name))
                    .or_insert_with(|| {
                        ConnectionManager::new_lazy_with_config(
                            single.client.clone(),
                            single.config.clone(),
                        )
                        .expect("the settings were checked when the server was first reached")
                    })
                    .clone()
            })),
            Link::Cluster(link) => Connection::Cluster(link.conn()),
        };
        Metered {
            inner,
            meter: Arc::clone(&self.meter),
        }
    }
}

fn nodelay() -> TcpSettings {
    TcpSettings::default().set_nodelay(true)
}

/// Refuses a server older than [`MIN_VERSION`], from its answer to `INFO server` (`probe`).
async fn check_version(
    name: &str,
    timeout: Duration,
    probe: impl std::future::Future<Output = RedisResult<String>>,
) -> Result<(), StoreError> {
    let unavailable = |reason| StoreError::Unavailable {
        shard: name.to_string(),
        reason,
    };
    let info = match tokio::time::timeout(timeout, probe).await {
        Ok(Ok(info)) => info,
        Ok(Err(e)) => return Err(unavailable(e.to_string())),
        Err(_) => return Err(unavailable("no answer".to_owned())),
    };
    // Older servers would refuse every push (`EXPIRE … NX`): better to say so at start-up.
    let seen = match server_version(&info) {
        Some(version) if version >= MIN_VERSION => return Ok(()),
        Some((major, minor)) => format!("Redis {major}.{minor}"),
        None => "a Redis that does not say its version".to_owned(),
    };
    let (major, minor) = MIN_VERSION;
    Err(StoreError::Config(format!(
        "{name} runs {seen}; relaybox needs Redis {major}.{minor} or newer"
    )))
}

/// The oldest Redis that has every command relaybox sends (`EXPIRE` with `NX`/`GT`).
const MIN_VERSION: (u32, u32) = (7, 0);

/// (major, minor) from the answer to `INFO server`.
fn server_version(info: &str) -> Option<(u32, u32)> {
    let version = info
        .lines()
        .find_map(|line| line.strip_prefix("redis_version:"))?;
    let mut parts = version.trim().split('.').map(str::parse::<u32>);
    Some((parts.next()?.ok()?, parts.next()?.ok()?))
}

/// Whether `e` is a server's `READONLY`: a replica refusing a write (alone, or inside a
/// transaction or pipeline).
fn is_read_only(e: &RedisError) -> bool {
    let in_transaction = (e.clone().into_server_errors()).is_some_and(|errors| {
        (errors.iter()).any(|(_, error)| error.kind() == Some(ServerErrorKind::ReadOnly))
    });
    in_transaction
        || e.kind() == ErrorKind::Server(ServerErrorKind::ReadOnly)
        || e.to_string().contains("READONLY")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_version_is_read_from_info() {
        let info = "# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\n";
        assert_eq!(server_version(info), Some((7, 0)));
        assert_eq!(server_version("redis_version:6.2.6\r\n"), Some((6, 2)));
        assert!(server_version("redis_version:6.2.6\r\n").unwrap() < MIN_VERSION);
        assert!(server_version("redis_version:10.1.0\r\n").unwrap() >= MIN_VERSION);
        assert_eq!(server_version("redis_mode:standalone\r\n"), None);
        assert_eq!(server_version("redis_version:seven\r\n"), None);
    }
}
