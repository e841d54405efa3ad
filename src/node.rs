//! Starting and stopping one node: the store, the shard actors (spread over one arbiter thread
//! per core), and the HTTP listener.
//!
//! Shutdown on SIGTERM or SIGINT: the listener stops accepting at once, every held pop is
//! answered with empty data, requests in flight get `node.shutdown_timeout` seconds to finish,
//! and then the process exits.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, Addr, Arbiter, ArbiterHandle};
use actix_web::dev::{Server, ServerHandle, Service};
use actix_web::middleware::{Condition, Logger};
use actix_web::{App, HttpServer, web};
use tracing::{debug, error, info, warn};

use crate::callbacks::Callbacks;
use crate::cluster::Cluster;
use crate::config::{Role, Settings, TlsSettings};
use crate::http::{self, AppState, Connections, Front, Listener};
use crate::inbox::Inbox;
use crate::range::Ranges;
use crate::relay::{Location, Relay};
use crate::replication::Replication;
use crate::shard::ShardActor;
use crate::stats::{Alerts, Stats, StatsCollector};
use crate::store::{self, Store};

/// How often the node looks for delayed messages that are due: they arrive at most this late.
const DELAYED_LOOK: Duration = Duration::from_millis(250);

/// Runs a node until it is told to stop by a signal.
///
/// A primary starts (its store, shards, ranges, statistics…) before it listens, so that a
/// store it cannot reach stops it at once. A standby listens first and starts once its first
/// request that needs the store has promoted it: until then nothing of it writes to its Redis
/// set, which replicates another's.
pub async fn run(settings: Settings) -> io::Result<Stopped> {
    let threads = match settings.node.workers {
        0 => std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        n => n,
    };
    let replication = Replication::open(&settings)
        .await
        .map_err(io::Error::other)?;
    let alerts = Alerts::from_settings(&settings).map_err(io::Error::other)?;
    let connections = Connections::new(settings.node.connection_reserve);
    let front = web::Data::new(Front::new(
        connections,
        replication.clone(),
        settings.admin.clone(),
    ));
    let arbiters: Vec<Arbiter> = (0..threads).map(|_| Arbiter::new()).collect();
    let threads_for_shards: Vec<ArbiterHandle> = arbiters.iter().map(Arbiter::handle).collect();
    let standby = settings.replication.role == Role::Standby;
    if !standby {
        start(&settings, &front, &threads_for_shards, alerts.clone()).await?;
    }
    let server = listen(&settings, front.clone(), threads)?;
    let handle = server.handle();
    let admin = listen_admin(&settings, front.clone())?;
    let admin_handle = admin.as_ref().map(Server::handle);
    let admin_at_fence = admin_handle.clone();
    if let Some(admin) = admin {
        actix_web::rt::spawn(admin);
    }
    if standby {
        info!("standby: serving once the first request that needs the store promotes this node");
        let (settings, front) = (settings.clone(), front.clone());
        actix_web::rt::spawn(async move {
            front.replication.primary().await;
            if let Err(e) = start(&settings, &front, &threads_for_shards, alerts).await {
                error!(error = %e, "promoted, but the node cannot start");
            }
        });
    }
    stop_when_told(&replication, &front, &handle, admin_handle);
    server.await?;
    if let crate::replication::State::Fenced { reason } = replication.state() {
        // Its Redis belongs to another primary now: nothing of it may write there any more,
        // and nothing is put back. Everything stops (rather than idle with every background
        // task failing); the caller may go on answering readiness (see `serve_fenced`).
        for arbiter in arbiters {
            arbiter.stop();
        }
        if let Some(admin) = admin_at_fence {
            admin.stop(false).await;
        }
        return Ok(Stopped::Fenced(reason));
    }
    if let Some(state) = front.serving() {
        settle(&state.store, &settings).await;
    }
    for arbiter in arbiters {
        arbiter.stop();
    }
    info!("relaybox stopped");
    Ok(Stopped::Signalled)
}

/// Closes the public listener when the node is fenced; stops everything, gently, on SIGTERM
/// or SIGINT.
fn stop_when_told(
    replication: &Replication,
    front: &web::Data<Front>,
    handle: &ServerHandle,
    admin: Option<ServerHandle>,
) {
    let (fenced, public) = (replication.clone(), handle.clone());
    actix_web::rt::spawn(async move {
        let reason = fenced.fenced().await;
        warn!(%reason, "closing the public listener: the load balancer sends the next request elsewhere");
        public.stop(false).await;
    });
    let (front, public) = (front.clone(), handle.clone());
    actix_web::rt::spawn(async move {
        let signal = shutdown_signal().await;
        info!("{signal} received: shutting down");
        let stopped = public.stop(true);
        if let Some(state) = front.serving() {
            state.inbox.release_waiters().await;
        }
        stopped.await;
        if let Some(admin) = admin {
            admin.stop(true).await;
        }
    });
}

/// Lets the background put-backs (on the shard threads) finish before those stop.
async fn settle(store: &Arc<dyn Store>, settings: &Settings) {
    let unfinished = store
        .settle(Duration::from_secs(settings.node.shutdown_timeout))
        .await;
    if unfinished > 0 {
        error!(
            unfinished,
            "stopping before the messages of lost takes were put back: they are out of their \
             queues, recorded under PB:K|… until those records expire"
        );
    }
}

/// How a node's run ended.
#[derive(Debug)]
pub enum Stopped {
    /// Told to stop (SIGTERM or SIGINT).
    Signalled,
    /// Its Redis was taken over by a newer primary (the reason).
    Fenced(String),
}

/// A fenced node with `admin.listen`: answers there, until told to stop, that it is fenced
/// (`/health` alive, `/ready` and everything else `503` with the reason), and does nothing else.
pub async fn serve_fenced(settings: &Settings, reason: String) -> io::Result<()> {
    let Some(addr) = settings.admin.listen else {
        return Ok(());
    };
    let reason = web::Data::new(reason);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(reason.clone())
            .default_service(web::to(http::fenced))
    })
    .workers(1)
    .disable_signals()
    .bind(addr)?
    .run();
    let handle = server.handle();
    actix_web::rt::spawn(async move {
        shutdown_signal().await;
        handle.stop(true).await;
    });
    warn!(%addr, "fenced: readiness says so on the admin listener; the node does nothing else");
    server.await
}

/// Starts what the node serves with: its store, the shard actors over it, the domains, the
/// statistics and alerts, and the background work; then lets requests through.
async fn start(
    settings: &Settings,
    front: &Front,
    arbiters: &[ArbiterHandle],
    alerts: Option<Alerts>,
) -> io::Result<()> {
    let store = store::open(settings).await.map_err(io::Error::other)?;
    let inbox = Inbox::new(
        start_shards(&store, settings, arbiters),
        settings.inbox.clone(),
        settings.store.queue_hash,
        store.places_transactions(),
    );
    let (state, cluster) = app_state(settings, &store, inbox.clone(), front, alerts.clone()).await;
    if settings.stats.enabled {
        let node = state.node.clone();
        StatsCollector::new(node, &settings.stats, Arc::clone(&store)).start();
    }
    if let Some(alerts) = &alerts {
        alerts.watch(settings, Arc::clone(&store));
    }
    if let Some(mut demoted) = store.demotions() {
        let replication = front.replication.clone();
        actix_web::rt::spawn(async move {
            if let Ok(server) = demoted.wait_for(Option::is_some).await {
                let server = server.clone().unwrap_or_default();
                replication.fence(format!("{server} answers READONLY: it was demoted"));
            }
        });
    }
    actix_web::rt::spawn(push_due_forever(inbox));
    actix_web::rt::spawn(async move { cluster.greet_sites().await });
    front.serve(state);
    Ok(())
}

/// One shard actor per store shard, spread over the arbiters' threads.
fn start_shards(
    store: &Arc<dyn Store>,
    settings: &Settings,
    arbiters: &[ArbiterHandle],
) -> Vec<Addr<ShardActor>> {
    let sweep = Duration::from_secs(settings.store.sweep_interval);
    let callbacks = Callbacks::start();
    (0..store.shards())
        .map(|i| {
            let store = Arc::clone(store);
            let callbacks = callbacks.clone();
            let thread = arbiters[i % arbiters.len()].clone();
            ShardActor::start_in_arbiter(&thread, move |_| {
                ShardActor::new(i, store, sweep, callbacks)
            })
        })
        .collect()
}

/// What the handlers reach (the domains over the store), and the cluster, whose greetings the
/// node sends once it listens.
async fn app_state(
    settings: &Settings,
    store: &Arc<dyn Store>,
    inbox: Inbox,
    front: &Front,
    alerts: Option<Alerts>,
) -> (AppState, Cluster) {
    let here = Location {
        host: settings.node.server.clone(),
        port: settings.node.port.clone(),
    };
    let cluster = Cluster::new(here.clone(), &settings.cluster, Arc::clone(store));
    let ranges = Ranges::start(
        &here,
        &settings.ranges,
        settings.cluster.master(),
        Arc::clone(store),
        cluster.clone(),
    )
    .await;
    let relay = Relay::new(
        here,
        settings.relay.clone(),
        Arc::clone(store),
        cluster.clone(),
    );
    let state = AppState {
        store: Arc::clone(store),
        inbox,
        relay,
        ranges,
        backend: settings.store.backend.name(),
        started: Instant::now(),
        cluster: cluster.clone(),
        stats: Stats::new(settings.stats.clone(), Arc::clone(store)),
        settings: Arc::new(settings.clone()),
        node: crate::range::node_name(&settings.node.server, &settings.node.port),
        replication: front.replication.clone(),
        connections: Arc::clone(&front.connections),
        alerts,
    };
    (state, cluster)
}

/// The HTTP listener (and the HTTPS one, with `[tls]`), serving.
fn listen(settings: &Settings, front: web::Data<Front>, threads: usize) -> io::Result<Server> {
    let connections = Arc::clone(&front.connections);
    // The log filter is fixed at start-up: an access log it would drop is not built at all
    // (actix-web's logger keeps its own copy of the format for as long as a request lives).
    let access_log = settings.log.access_log
        && tracing::enabled!(target: "relaybox::access", tracing::Level::INFO);
    let server = HttpServer::new(move || {
        App::new()
            .wrap(Condition::new(
                access_log,
                Logger::new(r#"%a "%r" %s %b %Dms"#).log_target("relaybox::access"),
            ))
            .wrap_fn(|mut req, service| {
                http::headers::shrink(&mut req);
                service.call(req)
            })
            .configure(http::configure(front.clone(), Listener::Public))
    })
    .workers(threads)
    // Each connection counts for as long as it lives (its extensions go with it).
    .on_connect(move |_, extensions| {
        extensions.insert(connections.opened());
    })
    .disable_signals()
    // Streamed answers (relayed bodies, subscriptions) go out a piece at a time: Nagle's
    // algorithm would hold each small piece back for the peer's delayed ACK, some 40 ms.
    .tcp_nodelay(true)
    // A client that closes its side while its pop waits is gone: dropping the handler is what
    // keeps a dead connection from taking a message.
    .h1_allow_half_closed(false)
    .shutdown_timeout(settings.node.shutdown_timeout)
    .bind(settings.node.listen)?;
    let plain: Vec<SocketAddr> = server.addrs();
    let server = match &settings.tls {
        Some(tls) => {
            let mut addr = settings.node.listen;
            if addr.port() != 0 {
                addr.set_port(addr.port() + 1);
            }
            server.bind_rustls_0_23(addr, tls_config(tls)?)?
        }
        None => server,
    };
    for addr in server.addrs() {
        let scheme = if plain.contains(&addr) {
            "http"
        } else {
            "https"
        };
        info!(
            backend = settings.store.backend.name(),
            role = ?settings.replication.role,
            "relaybox listening on {scheme}://{addr}"
        );
    }
    Ok(server.run())
}

/// `admin.listen`'s listener, if one is set: the admin routes, `/health` and `/ready`, on one
/// worker. It outlives a fenced node's public listener.
fn listen_admin(settings: &Settings, front: web::Data<Front>) -> io::Result<Option<Server>> {
    let Some(addr) = settings.admin.listen else {
        return Ok(None);
    };
    let server = HttpServer::new(move || {
        App::new().configure(http::configure(front.clone(), Listener::Admin))
    })
    .workers(1)
    .disable_signals()
    .bind(addr)?;
    for addr in server.addrs() {
        info!("admin routes listening on http://{addr}");
    }
    Ok(Some(server.run()))
}

/// The HTTPS listener's TLS settings, from the PEM files; fails naming the file at fault.
fn tls_config(tls: &TlsSettings) -> io::Result<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let unreadable = |path: &std::path::Path, e: &dyn std::fmt::Display| {
        io::Error::other(format!("tls: {}: {e}", path.display()))
    };
    let certs = CertificateDer::pem_file_iter(&tls.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| unreadable(&tls.cert, &e))?;
    let key = PrivateKeyDer::from_pem_file(&tls.key).map_err(|e| unreadable(&tls.key, &e))?;
    rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .and_then(|config| config.with_no_client_auth().with_single_cert(certs, key))
        .map_err(|e| io::Error::other(format!("tls: {}: {e}", tls.cert.display())))
}

/// Does held (`delay`ed) pushes as they fall due, for the life of the node.
async fn push_due_forever(inbox: Inbox) {
    let mut tick = tokio::time::interval(DELAYED_LOOK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match inbox.push_due().await {
            Ok(0) => {}
            Ok(n) => debug!(pushed = n, "delayed messages pushed"),
            Err(e) => warn!(error = %e, "could not push delayed messages; will retry"),
        }
    }
}

/// SIGTERM or SIGINT, whichever comes first, by name.
pub async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("can listen for SIGTERM");
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = tokio::signal::ctrl_c() => "SIGINT",
    }
}
