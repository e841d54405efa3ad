//! `POST /admin/alerts/test`: mails a test alert to every receiver now, so that an operator
//! sees that `[alerts]` reaches them. Answers `{"sent": true, "receivers": […]}`, `409` when no
//! `[alerts]` is set, `502` naming what the mail server said.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use serde_json::json;

use super::super::AppState;
use super::super::response::{ApiError, json};

pub async fn alert_test(state: &AppState) -> Result<HttpResponse, ApiError> {
    let Some(alerts) = &state.alerts else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            vec!["no alerts are configured: set [alerts] (smtp, sender, receivers)".to_owned()],
        ));
    };
    match alerts.send_test().await {
        Ok(receivers) => Ok(json(&json!({"sent": true, "receivers": receivers}))),
        Err(e) => Err(ApiError::new(StatusCode::BAD_GATEWAY, vec![e.to_string()])),
    }
}
