//! `GET /admin/stats`: the statistics every node of the region archived, and their totals.
//!
//! Parameters (query or body): `resolution` (the archive, by the periods a row spans; default
//! the finest), `from` and `to` (Unix seconds; default the last 60 rows), `node` (one node's
//! name, `server/port`; default all).

use actix_web::{HttpRequest, HttpResponse};

use super::super::AppState;
use super::super::request::{Body, Params};
use super::super::response::{ApiError, json};
use crate::inbox::params::ParamValue;
use crate::stats::Query;

pub async fn stats(
    state: &AppState,
    req: &HttpRequest,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    let params = Params::new(req, body)?;
    let query = Query {
        steps: whole(&params, "resolution")?.map(|n| n as u64),
        from: whole(&params, "from")?,
        to: whole(&params, "to")?,
        node: params.get_str("node")?,
    };
    Ok(json(&state.stats.report(query).await?))
}

/// A whole number parameter, if given.
fn whole(params: &Params, name: &str) -> Result<Option<i64>, ApiError> {
    let invalid = || ApiError::bad_request(format!("invalid {name}: expected a whole number"));
    match params.get(name) {
        None => Ok(None),
        Some(ParamValue::Text(text)) => text.parse().map(Some).map_err(|_| invalid()),
        Some(ParamValue::Json(value)) => value.as_i64().map(Some).ok_or_else(invalid),
    }
}
