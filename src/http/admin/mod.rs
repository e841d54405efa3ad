//! The operators' surface under `/admin/…`. Access: with a cluster secret configured, the
//! request must carry it (`X-IWP-Secret`); without one, anyone who reaches the node may read.

mod alerts;
mod charts;
mod stats;

use actix_web::HttpRequest;
use actix_web::http::StatusCode;

pub use self::alerts::alert_test;
pub use self::charts::chart;
pub use self::stats::stats;
use super::response::ApiError;
use crate::cluster::{Cluster, Refusal};
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

/// Whether the request may use the admin routes.
pub fn admitted(cluster: &Cluster, req: &HttpRequest) -> Result<(), ApiError> {
    match super::cluster::admit(cluster, req) {
        Ok(()) | Err(Refusal::NoSecret) => Ok(()),
        Err(refusal) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            vec![refusal.to_string()],
        )),
    }
}
