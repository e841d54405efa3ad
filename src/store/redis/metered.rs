//! A command connection that measures itself: every command or pipeline sent through it is
//! timed into its server's [`CallMeter`], and counted there when it fails. Being the one
//! connection type the backend's calls go through, it measures all of them without any call
//! site knowing.

use std::sync::Arc;
use std::time::Instant;

use ::redis::aio::{ConnectionLike, ConnectionManager};
use ::redis::cluster_async::ClusterConnection;
use ::redis::{Cmd, ErrorKind, Pipeline, RedisFuture, RedisResult, ServerErrorKind, Value};

use crate::meter::CallMeter;

/// A connection and the meter of the server it talks to.
#[derive(Clone)]
pub struct Metered {
    pub(super) inner: Connection,
    pub(super) meter: Arc<CallMeter>,
}

/// A connection to one server, or to a Redis Cluster.
#[derive(Clone)]
pub enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Single(conn) => conn.req_packed_command(cmd),
            Connection::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            Connection::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Single(conn) => conn.get_db(),
            Connection::Cluster(conn) => conn.get_db(),
        }
    }
}

impl Metered {
    fn record<T>(&self, started: Instant, result: &RedisResult<T>) {
        self.meter.latency.observe(started.elapsed());
        // A script's first call on a connection is refused `NOSCRIPT` by design, and sent
        // again with its body: not a failure.
        if result
            .as_ref()
            .is_err_and(|e| e.kind() != ErrorKind::Server(ServerErrorKind::NoScript))
        {
            self.meter.failed();
        }
    }
}

impl ConnectionLike for Metered {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let started = Instant::now();
            let result = self.inner.req_packed_command(cmd).await;
            self.record(started, &result);
            result
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let started = Instant::now();
            let result = self
                .inner
                .req_packed_commands(pipeline, offset, count)
                .await;
            self.record(started, &result);
            result
        })
    }

    fn get_db(&self) -> i64 {
        self.inner.get_db()
    }
}
