//! `GET /admin/regions`: the other regions this one knows, each with its failed calls since
//! its last success (a region is forgotten at `cluster.max_instance_failed`).

use actix_web::HttpResponse;
use serde_json::json;

use super::super::AppState;
use super::super::response::{ApiError, json};

pub async fn regions(state: &AppState) -> Result<HttpResponse, ApiError> {
    let members = state.cluster.members().await.map_err(|e| {
        ApiError::new(
            actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
            vec![e.to_string()],
        )
    })?;
    let regions: Vec<_> = (members.into_iter())
        .map(|(server, failures)| json!({"server": server, "failures": failures}))
        .collect();
    Ok(json(&json!({
        "regions": regions,
        "forgotten_after": state.settings.cluster.max_instance_failed,
    })))
}
