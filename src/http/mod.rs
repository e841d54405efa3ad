//! The HTTP surface: one actix-web service per listener, dispatching PopBox's route table to
//! thin handlers.
//!
//! Routing is done by [`routes::Route`] rather than actix-web's router because PopBox matches
//! literal segments case-insensitively while keeping parameters' case.

mod admin;
mod cluster;
pub mod connections;
mod front;
mod groups;
pub mod headers;
mod inbox;
mod metrics;
pub mod openapi;
mod ranges;
mod relay;
pub mod request;
pub mod response;
pub mod route_kind;
pub mod routes;
mod streams;

use std::time::Instant;

use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::future::LocalBoxFuture;
use serde_json::json;

use actix_web::ResponseError;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{ConnectionType, Method, StatusCode};

pub use self::connections::Connections;
pub use self::front::Front;
use self::request::{Body, read_body, read_bytes};
use self::response::{ApiError, Reply, json, not_found};
use self::route_kind::RouteKind;
use self::routes::{RelayRoute, Route};
use crate::inbox::Inbox;
use crate::stats::counters;

/// What every handler can reach.
pub struct AppState {
    pub inbox: Inbox,
    pub relay: crate::relay::Relay,
    pub ranges: crate::range::Ranges,
    pub backend: &'static str,
    pub started: Instant,
    /// The other regions, and the secret their calls carry.
    pub cluster: crate::cluster::Cluster,
    /// The region's statistics.
    pub stats: crate::stats::Stats,
    pub store: std::sync::Arc<dyn crate::store::Store>,
    /// The node's effective settings.
    pub settings: std::sync::Arc<crate::config::Settings>,
    /// This node, as it names itself (`server/port`).
    pub node: String,
    pub replication: crate::replication::Replication,
    pub connections: std::sync::Arc<Connections>,
    /// Alert mails; none without `[alerts]`.
    pub alerts: Option<crate::stats::Alerts>,
}

/// Every answer of a fenced node that keeps its admin listener: `/health` alive, the rest
/// `503` with the reason, readiness in its usual shape.
pub async fn fenced(req: HttpRequest, reason: web::Data<String>) -> HttpResponse {
    let reason = format!("fenced: {}", reason.as_str());
    if req.path() == "/health" {
        return json(&json!({"status": "alive"}));
    }
    let mut answer = json(&json!({
        "ready": false,
        "reason": reason,
        "replication": {"role": "fenced", "reason": reason},
    }));
    *answer.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    answer
}

/// Which of the node's listeners a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// The node's own (and its HTTPS one).
    Public,
    /// `admin.listen`: the admin routes, `/health` and `/ready`.
    Admin,
}

/// Mounts the node's routes on an actix-web app for `listener`.
pub fn configure(
    front: web::Data<Front>,
    listener: Listener,
) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(front)
            .app_data(listener)
            .default_service(web::to(dispatch));
    }
}

async fn dispatch(
    req: HttpRequest,
    payload: web::Payload,
    front: web::Data<Front>,
) -> HttpResponse {
    let arrived = Instant::now();
    let listener = req
        .app_data::<Listener>()
        .copied()
        .unwrap_or(Listener::Public);
    let route = Route::parse(req.method(), req.path());
    let kind = match &route {
        Ok(Some(route)) => route.kind(),
        _ => RouteKind::Unmatched,
    };
    let response = match route {
        Ok(Some(Route::Health)) => front.health(),
        Ok(Some(Route::Ready)) => front.ready().await,
        Ok(Some(route)) if !front.serves(&route, listener) => {
            not_found(req.method().as_str(), &req.uri().to_string())
        }
        Ok(Some(route)) => match front.refusal(&route, &req) {
            Some(refusal) => refusal,
            None => match stateless(&route, &req, &front).await {
                Some(answer) => answer,
                // Probes, operators and HEAD/OPTIONS never promote a standby.
                None => match front
                    .state(
                        route.promotes()
                            && !matches!(*req.method(), Method::HEAD | Method::OPTIONS),
                    )
                    .await
                {
                    Ok(state) => answer(route, req, payload, state, &front.connections).await,
                    Err(refusal) => refusal,
                },
            },
        },
        Ok(None) => not_found(req.method().as_str(), &req.uri().to_string()),
        Err(e) => actix_web::ResponseError::error_response(&ApiError::bad_request(e.to_string())),
    };
    let status = response.status().as_u16();
    counters().answered(status);
    metrics::record(kind, status, arrived.elapsed());
    response
}

/// The answer to a request that needs nothing the node starts (its store, shards…), whatever
/// its role: the metrics, from what it has, the API's description, and the dashboard's files
/// and session.
async fn stateless(route: &Route, req: &HttpRequest, front: &Front) -> Option<HttpResponse> {
    use admin::dashboard;
    Some(match route {
        // In a box of its own: a scrape's future is large, and every request's would be too.
        Route::Metrics => Box::pin(metrics::metrics(front)).await,
        Route::OpenApi => openapi::openapi(),
        Route::AdminDashboard { asset } => dashboard::asset(*asset),
        Route::AdminSession => {
            dashboard::session(front.admission(req), front.admin_token().is_some())
        }
        Route::AdminLogout => dashboard::logout(),
        _ => return None,
    })
}

/// The answer to a request: its route's, or a refusal when the node is crowded.
async fn answer(
    route: Route,
    req: HttpRequest,
    payload: web::Payload,
    state: &AppState,
    connections: &Connections,
) -> HttpResponse {
    let Some(crowded) = connections.crowded() else {
        return serve(route, req, payload, state).await;
    };
    // Out of descriptors soon: nothing new is held, and every connection closes once answered.
    let mut response = if route.holds() {
        shed(&route, &crowded)
    } else {
        serve(route, req, payload, state).await
    };
    response
        .head_mut()
        .set_connection_type(ConnectionType::Close);
    response
}

/// The answer to a request that would be held when the node cannot hold more.
fn shed(route: &Route, reason: &str) -> HttpResponse {
    let mut response = match route {
        Route::Relay(_) => relay::failed(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("HTTP 503: Service Unavailable ({reason})"),
        ),
        _ => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, vec![reason.to_owned()]).error_response()
        }
    };
    let retry = HeaderValue::from_static("1");
    response.headers_mut().insert(header::RETRY_AFTER, retry);
    response
}

async fn serve(
    route: Route,
    req: HttpRequest,
    payload: web::Payload,
    state: &AppState,
) -> HttpResponse {
    // Each handler runs in a box of its own. Awaited inline, every request's future would be as
    // large as the largest handler's (1.3 KiB), and a held pop or long-poll keeps it for minutes.
    match route {
        Route::Relay(route) => relay_handler(route, &req, payload, state).await,
        Route::AdminLogin => {
            let token = state.settings.admin.token.as_deref();
            let login = async {
                let body = read_bytes(&req, payload, state.inbox.settings()).await?;
                admin::dashboard::login(&req, body.as_deref().unwrap_or_default(), token)
            };
            Box::pin(login).await.unwrap_or_else(|e| e.error_response())
        }
        Route::WebSocket { org, queue } => {
            // The handshake takes the connection over: no body to read first.
            Box::pin(streams::websocket(&state.inbox, &req, payload, org, queue))
                .await
                .unwrap_or_else(|e| actix_web::ResponseError::error_response(&e))
        }
        route => {
            let reply = async {
                let body = read_body(&req, payload, state.inbox.settings()).await?;
                inbox_handler(route, state, &req, body).await
            };
            reply
                .await
                .unwrap_or_else(|e: ApiError| actix_web::ResponseError::error_response(&e))
        }
    }
}

/// The device relay's handler for `route`, in its own box (see `dispatch`).
fn relay_handler<'a>(
    route: RelayRoute,
    req: &'a HttpRequest,
    payload: web::Payload,
    state: &'a AppState,
) -> LocalBoxFuture<'a, HttpResponse> {
    match route {
        RelayRoute::GetUniversalId => Box::pin(ranges::universal_id(&state.ranges)),
        RelayRoute::Hello | RelayRoute::Connected | RelayRoute::Find => {
            Box::pin(cluster::serve(state, route, req))
        }
        RelayRoute::Range => Box::pin(ranges::block(state, req)),
        // Relay bodies are streamed through, never read here.
        _ => Box::pin(relay::serve(&state.relay, route, req, payload)),
    }
}

/// The inbox API's handler for `route`, in its own box (see `dispatch`); `body` is read.
fn inbox_handler<'a>(
    route: Route,
    state: &'a AppState,
    req: &'a HttpRequest,
    body: Body,
) -> LocalBoxFuture<'a, Reply> {
    let inbox = &state.inbox;
    match route {
        Route::DeployInfo => Box::pin(std::future::ready(Ok(deploy_info(state)))),
        Route::AdminRanges => Box::pin(ranges::overview(state)),
        Route::AdminStats => Box::pin(admin::stats(state, req, body)),
        Route::AdminStatus => Box::pin(async { Ok(admin::status(state).await) }),
        Route::AdminConfig => Box::pin(std::future::ready(Ok(admin::config(state)))),
        Route::AdminRegions => Box::pin(admin::regions(state)),
        Route::AdminDrain { on } => Box::pin(async move { Ok(admin::drain(state, on).await) }),
        Route::AdminLog { change: false } => Box::pin(std::future::ready(Ok(admin::log::show()))),
        Route::AdminLog { change: true } => {
            Box::pin(std::future::ready(admin::log::change(req, body)))
        }
        Route::AdminChart { file } => Box::pin(admin::chart(state, req, file)),
        Route::AdminAlertTest => Box::pin(admin::alert_test(state)),
        Route::AdminConnections => Box::pin(admin::connections(state, req)),
        Route::AdminDesktops => Box::pin(admin::desktops(state, req)),
        Route::AdminQueues => Box::pin(admin::queues::deepest(state, req)),
        Route::AdminQueue { name, purge: false } => {
            Box::pin(async move { admin::queues::detail(state, &name).await })
        }
        Route::AdminQueue { name, purge: true } => {
            Box::pin(async move { admin::queues::purge(state, &name).await })
        }
        Route::Provision { org } => Box::pin(inbox::provision(inbox, req, body, org)),
        Route::GetTransaction { org: _, id } => {
            Box::pin(inbox::get_transaction(inbox, req, body, id))
        }
        Route::UpdateTransaction { org, id } => {
            Box::pin(inbox::update_transaction(inbox, req, body, org, id))
        }
        Route::DeleteTransaction { id } => Box::pin(inbox::delete_transaction(inbox, id)),
        Route::TransactionState { id, state } => {
            Box::pin(inbox::transaction_state(inbox, req, body, id, state))
        }
        Route::TransactionHistory { id } => Box::pin(inbox::history(inbox, id)),
        Route::Pop { org, queue } => Box::pin(inbox::pop(inbox, req, body, org, queue, false)),
        Route::PopReliable { queue } => Box::pin(inbox::pop(inbox, req, body, None, queue, true)),
        Route::Subscribe { org, queue } => {
            Box::pin(streams::subscribe(inbox, req, body, org, queue, false))
        }
        Route::SubscribeReliable { queue } => {
            Box::pin(streams::subscribe(inbox, req, body, None, queue, true))
        }
        Route::Events { org, queue } => Box::pin(streams::events(inbox, req, body, org, queue)),
        Route::Ack { queue } => Box::pin(inbox::ack(inbox, req, body, queue)),
        Route::Peek { org, queue } => Box::pin(inbox::peek(inbox, req, body, org, queue)),
        Route::QueueState { org, queue } => {
            Box::pin(inbox::queue_state(inbox, req, body, org, queue))
        }
        // As in PopBox: the route exists on the HTTPS listener only.
        Route::CreateSecureQueue { .. } if !req.app_config().secure() => Box::pin(
            std::future::ready(Ok(not_found(req.method().as_str(), &req.uri().to_string()))),
        ),
        Route::CreateSecureQueue { org } => {
            Box::pin(inbox::create_secure_queue(inbox, req, body, org))
        }
        Route::CreateGroup => Box::pin(groups::create(inbox, body)),
        Route::GetGroup { name } => Box::pin(groups::get(inbox, name)),
        Route::ChangeGroup { name } => Box::pin(groups::change(inbox, body, name)),
        Route::DeleteGroup { name } => Box::pin(groups::delete(inbox, name)),
        Route::WebSocket { .. }
        | Route::Relay(_)
        | Route::Health
        | Route::Ready
        | Route::Metrics
        | Route::OpenApi
        | Route::AdminLogin
        | Route::AdminSession
        | Route::AdminLogout
        | Route::AdminDashboard { .. } => {
            unreachable!("served by dispatch")
        }
    }
}

/// `GET /`: what this node is and what it runs on.
fn deploy_info(state: &AppState) -> HttpResponse {
    json(&json!({
        "name": "relaybox",
        "version": env!("CARGO_PKG_VERSION"),
        "show": false,
        "nCores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "backend": state.backend,
        "shards": state.inbox.shard_count(),
        "uptime": state.started.elapsed().as_secs(),
        "queuesRedisHosts": [],
        "transRedisHost": null,
    }))
}
