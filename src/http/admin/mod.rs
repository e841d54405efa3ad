//! The operators' surface under `/admin/…` (and `/metrics`), one module per surface. Access
//! (checked once for every admin route, by [`refusal`]): with `admin.token`, the request must
//! carry it as a bearer token or the dashboard's sign-in cookie (`401` otherwise, no data);
//! without one, only clients on loopback addresses are answered (`403`). The dashboard's files
//! and its sign-in hold no data and are open to all. With `admin.listen` the routes are served
//! there, and not on the node's own listener.

mod alerts;
mod charts;
mod config;
mod connections;
pub mod dashboard;
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

/// Why a request may not use the admin routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `admin.token` is set, and the request does not carry it.
    NoToken,
    /// No token is set, and the client is not on a loopback address.
    NotLoopback,
}

impl Refusal {
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::NoToken => "the admin routes need Authorization: Bearer <admin.token>",
            Refusal::NotLoopback => {
                "without admin.token the admin routes answer clients on loopback addresses only"
            }
        }
    }

    /// `401` with a Bearer challenge, or `403`; no data either way.
    pub fn answer(self) -> HttpResponse {
        let status = match self {
            Refusal::NoToken => StatusCode::UNAUTHORIZED,
            Refusal::NotLoopback => StatusCode::FORBIDDEN,
        };
        let mut answer = actix_web::ResponseError::error_response(&ApiError::new(
            status,
            vec![self.reason().to_owned()],
        ));
        if self == Refusal::NoToken {
            let challenge = header::HeaderValue::from_static(r#"Bearer realm="relaybox admin""#);
            answer
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, challenge);
        }
        answer
    }
}

/// Why `req` may not use the admin routes, given the node's `admin.token`; `None` if it may.
/// A browser signed in to the dashboard carries the token as a cookie.
pub fn refusal(req: &HttpRequest, token: Option<&str>) -> Option<Refusal> {
    match token {
        Some(token) => (!dashboard::carries(req, token)).then_some(Refusal::NoToken),
        None if req.peer_addr().is_some_and(|peer| peer.ip().is_loopback()) => None,
        None => Some(Refusal::NotLoopback),
    }
}
