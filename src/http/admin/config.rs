//! `GET /admin/config`: the node's effective settings (file, environment and defaults), with
//! every secret shown as `"<redacted>"` and no credentials in Redis URLs.

use actix_web::HttpResponse;

use super::super::AppState;
use super::super::response::json;

pub fn config(state: &AppState) -> HttpResponse {
    json(&state.settings.redacted())
}
