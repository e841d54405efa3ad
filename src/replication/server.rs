//! One Redis server of a node's set, as replication drives it: its role, its link to its
//! master, the epoch it holds, and the commands that change its role. Each call opens its own
//! short-lived connection: these are rare, and must not queue behind the data path's traffic.

use std::time::Duration;

use redis::{Client, ConnectionAddr, IntoConnectionInfo, Value};
use serde::Serialize;

use crate::config::redact;

/// The key every server of a set holds its epoch under: raised by each promotion, replicated
/// down the chain with everything else.
const EPOCH_KEY: &str = "RB:P|epoch";

/// Raises the epoch from ARGV[1] to ARGV[1] + 1 if it is still ARGV[1], naming the promoter
/// (ARGV[2]); returns the epoch now held, negative if another promoter raised it first.
const RAISE_EPOCH: &str = r#"
local epoch = tonumber(redis.call('GET', KEYS[1]) or '0')
if epoch ~= tonumber(ARGV[1]) then return -epoch end
redis.call('SET', KEYS[1], epoch + 1)
redis.call('SET', KEYS[1] .. ':by', ARGV[2])
return epoch + 1
"#;

/// Why a server could not be read or moved.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{server}: {reason}")]
pub struct ServerError {
    pub server: String,
    pub reason: String,
}

/// A server's role, as `ROLE` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerRole {
    Master,
    Replica {
        host: String,
        port: u16,
        /// `connected` once in sync; `connect`, `connecting`, `sync` before.
        state: String,
    },
}

/// A replica's link to its master, for readiness and the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Link {
    pub server: String,
    pub upstream: String,
    pub up: bool,
    /// Bytes of the replication stream this server has applied.
    pub offset: i64,
    /// Seconds since the master was last heard from.
    pub last_heard: Option<i64>,
}

/// A replica as its master sees it (`INFO replication`'s `slaveN` lines).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Replica {
    /// `host:port`, as the replica announced itself.
    pub address: String,
    /// `online` once in sync; `wait_bgsave`, `send_bulk` before.
    pub state: String,
    /// Bytes of the replication stream it has acknowledged.
    pub offset: i64,
    /// Seconds since it last acknowledged.
    pub lag: i64,
}

#[derive(Debug, Clone)]
pub struct RedisServer {
    /// The URL without credentials.
    pub name: String,
    pub host: String,
    pub port: u16,
    client: Client,
    timeout: Duration,
}

impl RedisServer {
    pub fn new(url: &str, timeout: Duration) -> Result<Self, ServerError> {
        let name = redact(url);
        let failed = |reason: String| ServerError {
            server: name.clone(),
            reason,
        };
        let info = url
            .into_connection_info()
            .map_err(|e| failed(e.to_string()))?;
        let ConnectionAddr::Tcp(host, port) = info.addr().clone() else {
            return Err(failed(
                "replication needs redis://host:port servers (replicas connect over TCP)".into(),
            ));
        };
        let client = Client::open(info).map_err(|e| failed(e.to_string()))?;
        Ok(RedisServer {
            name,
            host,
            port,
            client,
            timeout,
        })
    }

    fn failed(&self, reason: impl ToString) -> ServerError {
        ServerError {
            server: self.name.clone(),
            reason: reason.to_string(),
        }
    }

    /// Runs `cmd`, bounded by the timeout.
    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, ServerError> {
        let run = async {
            let mut conn = self.client.get_multiplexed_async_connection().await?;
            cmd.query_async::<T>(&mut conn).await
        };
        match tokio::time::timeout(self.timeout, run).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(self.failed(e)),
            Err(_) => Err(self.failed("no answer")),
        }
    }

    pub async fn role(&self) -> Result<ServerRole, ServerError> {
        let reply: Vec<Value> = self.query(&redis::cmd("ROLE")).await?;
        let text = |v: Option<&Value>| match v {
            Some(Value::BulkString(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
            Some(Value::SimpleString(s)) => s.clone(),
            _ => String::new(),
        };
        match text(reply.first()).as_str() {
            "master" => Ok(ServerRole::Master),
            "slave" => Ok(ServerRole::Replica {
                host: text(reply.get(1)),
                port: match reply.get(2) {
                    Some(Value::Int(port)) => *port as u16,
                    _ => 0,
                },
                state: text(reply.get(3)),
            }),
            other => Err(self.failed(format!("ROLE answered {other:?}"))),
        }
    }

    /// Whether this server replicates `upstream`, by its `role`.
    pub fn replicates(&self, role: &ServerRole, upstream: &RedisServer) -> bool {
        matches!(role, ServerRole::Replica { host, port, .. } if upstream.is(host, *port))
    }

    /// Whether this server is the one at `host`:`port`.
    pub fn is(&self, host: &str, port: u16) -> bool {
        port == self.port && same_host(host, &self.host)
    }

    pub async fn epoch(&self) -> Result<u64, ServerError> {
        let epoch: Option<u64> = self.query(redis::cmd("GET").arg(EPOCH_KEY)).await?;
        Ok(epoch.unwrap_or(0))
    }

    /// Makes this server a replica of `upstream`, and keeps that across its restarts.
    pub async fn replicate(&self, upstream: &RedisServer) -> Result<(), ServerError> {
        let mut cmd = redis::cmd("REPLICAOF");
        cmd.arg(&upstream.host).arg(upstream.port);
        self.query::<()>(&cmd).await?;
        self.keep_role().await;
        Ok(())
    }

    /// Makes this server a master, keeping its data.
    pub async fn detach(&self) -> Result<(), ServerError> {
        self.query::<()>(redis::cmd("REPLICAOF").arg("NO").arg("ONE"))
            .await?;
        self.keep_role().await;
        Ok(())
    }

    /// Asks this server, a master, to hand over to its replica `to`: it pauses writes, waits
    /// for `to` to catch up, makes it master and becomes its replica.
    pub async fn failover_to(&self, to: &RedisServer, timeout_ms: u64) -> Result<(), ServerError> {
        let mut cmd = redis::cmd("FAILOVER");
        cmd.arg("TO").arg(&to.host).arg(to.port);
        cmd.arg("TIMEOUT").arg(timeout_ms);
        self.query::<()>(&cmd).await
    }

    /// Raises the epoch this master holds from `from`, naming `by`: the new epoch, or the one
    /// another promoter raised it to first.
    pub async fn raise_epoch(&self, from: u64, by: &str) -> Result<(u64, bool), ServerError> {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(RAISE_EPOCH).arg(1).arg(EPOCH_KEY).arg(from).arg(by);
        let epoch: i64 = self.query(&cmd).await?;
        Ok((epoch.unsigned_abs(), epoch > 0))
    }

    /// This replica's link to its master.
    pub async fn link(&self, upstream: &str) -> Result<Link, ServerError> {
        let info: String = self.query(redis::cmd("INFO").arg("replication")).await?;
        let field = |name: &str| {
            info.lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
                .map(|v| v.trim().to_owned())
        };
        let number = |name: &str| field(name).and_then(|v| v.parse::<i64>().ok());
        Ok(Link {
            server: self.name.clone(),
            upstream: upstream.to_owned(),
            up: field("master_link_status").as_deref() == Some("up"),
            offset: number("slave_repl_offset").unwrap_or(0),
            last_heard: number("master_last_io_seconds_ago").filter(|s| *s >= 0),
        })
    }

    /// The replicas attached to this server.
    pub async fn replicas(&self) -> Result<Vec<Replica>, ServerError> {
        let info: String = self.query(redis::cmd("INFO").arg("replication")).await?;
        Ok(replicas_in(&info))
    }

    /// `CONFIG REWRITE`, so that a restarted server keeps the role it was given. A server
    /// started without a configuration file cannot: that is logged, not fatal.
    async fn keep_role(&self) {
        if let Err(e) = self.query::<()>(redis::cmd("CONFIG").arg("REWRITE")).await {
            tracing::warn!(
                error = %e,
                "the server's new role is not written to its configuration file: a restart \
                 would bring back the old one"
            );
        }
    }
}

/// The `slaveN:ip=…,port=…,state=…,offset=…,lag=…` lines of `INFO replication`.
fn replicas_in(info: &str) -> Vec<Replica> {
    (info.lines())
        .filter(|line| {
            line.strip_prefix("slave")
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
        })
        .filter_map(|line| {
            let fields: Vec<(&str, &str)> = (line.split_once(':')?.1.trim().split(','))
                .filter_map(|pair| pair.split_once('='))
                .collect();
            let field = |name: &str| fields.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
            let number = |name: &str| field(name).and_then(|v| v.parse().ok()).unwrap_or(0);
            Some(Replica {
                address: format!("{}:{}", field("ip")?, field("port")?),
                state: field("state").unwrap_or_default().to_owned(),
                offset: number("offset"),
                lag: number("lag"),
            })
        })
        .collect()
}

/// `localhost` and `127.0.0.1` (and the like) name the same host here.
fn same_host(a: &str, b: &str) -> bool {
    let loopback = |h: &str| h == "localhost" || h.starts_with("127.") || h == "::1";
    a == b || (loopback(a) && loopback(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_are_read_from_info_replication() {
        let info = "# Replication\r\nrole:master\r\nconnected_slaves:2\r\n\
            slave0:ip=127.0.0.1,port=6380,state=online,offset=1234,lag=0\r\n\
            slave1:ip=10.0.0.2,port=6381,state=wait_bgsave,offset=0,lag=3\r\n\
            slave_read_only:1\r\nmaster_repl_offset:1234\r\n";
        let replicas = replicas_in(info);
        assert_eq!(replicas.len(), 2, "{replicas:?}");
        assert_eq!(
            replicas[0],
            Replica {
                address: "127.0.0.1:6380".into(),
                state: "online".into(),
                offset: 1234,
                lag: 0
            }
        );
        assert_eq!(replicas[1].state, "wait_bgsave");
        assert!(replicas_in("role:master\r\nconnected_slaves:0\r\n").is_empty());
    }
}
