//! The HTTP surface: one actix-web service per listener, dispatching PopBox's route table to
//! thin handlers.
//!
//! Routing is done by [`routes::Route`] rather than actix-web's router because PopBox matches
//! literal segments case-insensitively while keeping parameters' case.

mod cluster;
mod groups;
mod inbox;
mod ranges;
mod relay;
pub mod request;
pub mod response;
pub mod routes;
mod streams;

use std::time::Instant;

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use self::request::read_body;
use self::response::{ApiError, json, not_found};
use self::routes::{RelayRoute, Route};
use crate::inbox::Inbox;

/// What every handler can reach.
pub struct AppState {
    pub inbox: Inbox,
    pub relay: crate::relay::Relay,
    pub ranges: crate::range::Ranges,
    pub backend: &'static str,
    pub started: Instant,
}

/// Mounts the node's routes on an actix-web app.
pub fn configure(state: web::Data<AppState>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(state).default_service(web::to(dispatch));
    }
}

async fn dispatch(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let route = match Route::parse(req.method(), req.path()) {
        Ok(Some(route)) => route,
        Ok(None) => return not_found(req.method().as_str(), &req.uri().to_string()),
        Err(e) => {
            return actix_web::ResponseError::error_response(&ApiError::bad_request(e.to_string()));
        }
    };
    if let Route::Relay(route) = route {
        return match route {
            RelayRoute::GetUniversalId => ranges::universal_id(&state.ranges).await,
            RelayRoute::Hello | RelayRoute::Connected | RelayRoute::Find | RelayRoute::Range => {
                cluster::serve(&state, route, &req).await
            }
            // Relay bodies are streamed through, never read here.
            _ => relay::serve(&state.relay, route, &req, payload).await,
        };
    }
    let inbox = &state.inbox;
    if let Route::WebSocket { org, queue } = route {
        // The handshake takes the connection over: no body to read first.
        return streams::websocket(inbox, &req, payload, org, queue)
            .await
            .unwrap_or_else(|e| actix_web::ResponseError::error_response(&e));
    }
    let result = async {
        let body = read_body(&req, payload, inbox.settings()).await?;
        match route {
            Route::DeployInfo => Ok(deploy_info(&state)),
            Route::AdminRanges => ranges::overview(&state, &req).await,
            Route::Provision { org } => inbox::provision(inbox, &req, body, org).await,
            Route::GetTransaction { org: _, id } => {
                inbox::get_transaction(inbox, &req, body, id).await
            }
            Route::UpdateTransaction { org, id } => {
                inbox::update_transaction(inbox, &req, body, org, id).await
            }
            Route::DeleteTransaction { id } => inbox::delete_transaction(inbox, id).await,
            Route::TransactionState { id, state } => {
                inbox::transaction_state(inbox, &req, body, id, state).await
            }
            Route::TransactionHistory { id } => inbox::history(inbox, id).await,
            Route::Pop { org, queue } => inbox::pop(inbox, &req, body, org, queue, false).await,
            Route::PopReliable { queue } => inbox::pop(inbox, &req, body, None, queue, true).await,
            Route::Subscribe { org, queue } => {
                streams::subscribe(inbox, &req, body, org, queue, false).await
            }
            Route::SubscribeReliable { queue } => {
                streams::subscribe(inbox, &req, body, None, queue, true).await
            }
            Route::Events { org, queue } => streams::events(inbox, &req, body, org, queue).await,
            Route::WebSocket { .. } | Route::Relay(_) => unreachable!("served above"),
            Route::Ack { queue } => inbox::ack(inbox, &req, body, queue).await,
            Route::Peek { org, queue } => inbox::peek(inbox, &req, body, org, queue).await,
            Route::QueueState { org, queue } => {
                inbox::queue_state(inbox, &req, body, org, queue).await
            }
            Route::CreateSecureQueue { org } => {
                if !req.app_config().secure() {
                    // As in PopBox: the route exists on the HTTPS listener only.
                    return Ok(not_found(req.method().as_str(), &req.uri().to_string()));
                }
                inbox::create_secure_queue(inbox, &req, body, org).await
            }
            Route::CreateGroup => groups::create(inbox, body).await,
            Route::GetGroup { name } => groups::get(inbox, name).await,
            Route::ChangeGroup { name } => groups::change(inbox, body, name).await,
            Route::DeleteGroup { name } => groups::delete(inbox, name).await,
        }
    };
    result
        .await
        .unwrap_or_else(|e: ApiError| actix_web::ResponseError::error_response(&e))
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
