//! `POST /admin/drain`: the node stops taking long polls — every held pop, subscription and
//! desktop poll is answered with nothing, and every new one at once — so that it can leave the
//! load balancer without cutting anyone off. `DELETE /admin/drain` takes them again.

use actix_web::HttpResponse;
use serde_json::json;

use super::super::AppState;
use super::super::response::json;

pub async fn drain(state: &AppState, draining: bool) -> HttpResponse {
    tokio::join!(state.inbox.drain(draining), state.relay.drain(draining));
    tracing::info!(draining, "drain changed by an operator");
    json(&json!({ "draining": draining }))
}
