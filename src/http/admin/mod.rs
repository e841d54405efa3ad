//! The operators' surface under `/admin/…`. Access (checked once for every admin route, by
//! [`refusal`]): with `admin.token`, the request must carry it as a bearer token (`401`
//! otherwise, no data); without one, only clients on loopback addresses are answered (`403`).
//! With `admin.listen` the routes are served there, and not on the node's own listener.

mod alerts;
mod charts;
mod config;
mod connections;
mod desktops;
mod drain;
pub mod log;
mod page;
pub mod queues;
mod regions;
mod stats;
mod status;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse};

pub use self::alerts::alert_test;
pub use self::charts::chart;
pub use self::config::config;
pub use self::connections::connections;
pub use self::desktops::desktops;
pub use self::drain::drain;
pub use self::regions::regions;
pub use self::stats::stats;
pub use self::status::status;
use super::response::ApiError;
use crate::stats::ReportError;

/// A report the store could not give is a `503`; one asked for wrongly, a `400`.
impl From<ReportError> for ApiError {
    fn from(e: ReportError) -> Self {
        match e {
            ReportError::Store(_) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, vec![e.to_string()])
            }
            _ => ApiError::bad_request(e.to_string()),
        }
    }
}

/// The answer to `req` if it may not use the admin routes, given the node's `admin.token`.
pub fn refusal(req: &HttpRequest, token: Option<&str>) -> Option<HttpResponse> {
    use subtle::ConstantTimeEq;
    let refused = |status, message: &str| {
        actix_web::ResponseError::error_response(&ApiError::new(status, vec![message.to_owned()]))
    };
    match token {
        Some(token) => {
            let given = (req.headers().get(header::AUTHORIZATION))
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            if given.is_some_and(|given| bool::from(given.as_bytes().ct_eq(token.as_bytes()))) {
                return None;
            }
            let mut refusal = refused(
                StatusCode::UNAUTHORIZED,
                "the admin routes need Authorization: Bearer <admin.token>",
            );
            let challenge = header::HeaderValue::from_static(r#"Bearer realm="relaybox admin""#);
            refusal
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, challenge);
            Some(refusal)
        }
        None if req.peer_addr().is_some_and(|peer| peer.ip().is_loopback()) => None,
        None => Some(refused(
            StatusCode::FORBIDDEN,
            "without admin.token the admin routes answer clients on loopback addresses only",
        )),
    }
}
