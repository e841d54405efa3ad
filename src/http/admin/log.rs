//! `GET /admin/log`: the log filter in force; `PUT /admin/log` with `{"filter": "…"}` (the
//! `RUST_LOG` syntax, e.g. `info,relaybox::shard=debug`) changes it while the node runs.

use actix_web::HttpResponse;
use serde_json::json;

use super::super::request::{Body, Params};
use super::super::response::{ApiError, json};
use crate::logging;

pub fn show() -> HttpResponse {
    json(&json!({ "filter": logging::filter() }))
}

pub fn change(req: &actix_web::HttpRequest, body: Body) -> Result<HttpResponse, ApiError> {
    let params = Params::new(req, body)?;
    let filter = (params.get_str("filter")?)
        .ok_or_else(|| ApiError::bad_request("missing filter: give {\"filter\": \"info,…\"}"))?;
    logging::set_filter(&filter).map_err(ApiError::bad_request)?;
    tracing::info!(%filter, "log filter changed by an operator");
    Ok(show())
}
