//! Customer IDs over HTTP: `/getuniversalid` for desktops, `/range` for other nodes (behind the
//! cluster secret, see [`super::cluster`]), and `GET /admin/ranges` for operators.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};

use super::AppState;
use super::relay::{answer, failed, finish};
use super::response::{ApiError, json};
use crate::range::{IdError, Ranges};
use crate::relay::headers::{self, FORWARDED, PRODUCT_UNIV_ID, RANGE_FROM, RANGE_SIZE, RANGE_TO};

/// The largest block one call may ask for.
const MAX_BLOCK: u64 = 1_000_000;

fn unavailable(e: &IdError) -> HttpResponse {
    failed(StatusCode::SERVICE_UNAVAILABLE, &e.to_string())
}

/// `POST /getuniversalid`: a new customer ID in `X-IWP-ProductUnivId`.
pub async fn universal_id(ranges: &Ranges) -> HttpResponse {
    match ranges.next_id().await {
        Ok(id) => {
            let mut builder = answer(StatusCode::OK);
            builder.insert_header((PRODUCT_UNIV_ID, id.to_string()));
            finish(builder)
        }
        Err(e) => unavailable(&e),
    }
}

/// `POST /range[/<x>]`: a block of `X-IWP-Range-Size` IDs (default `ranges.range_size`) in
/// `X-IWP-Range-From`/`X-IWP-Range-To`, for a node with the cluster secret.
pub async fn block(state: &AppState, req: &HttpRequest) -> HttpResponse {
    if let Some(refused) = super::cluster::refusal(&state.cluster, req) {
        return refused;
    }
    let ranges = &state.ranges;
    let size = match headers::text(req.headers(), RANGE_SIZE) {
        None => ranges.block_size(),
        Some(size) => match size.parse::<u64>() {
            Ok(size) if (1..=MAX_BLOCK).contains(&size) => size,
            _ => {
                return failed(
                    StatusCode::BAD_REQUEST,
                    &format!(
                        "bad X-IWP-Range-Size {size:?}: must be a number from 1 to {MAX_BLOCK}"
                    ),
                );
            }
        },
    };
    let forwarded = headers::text(req.headers(), FORWARDED).is_some();
    match ranges.serve_block(size, forwarded).await {
        Ok(block) => {
            let mut builder = answer(StatusCode::OK);
            builder
                .insert_header((RANGE_FROM, block.from.to_string()))
                .insert_header((RANGE_TO, block.to.to_string()));
            finish(builder)
        }
        Err(e) => unavailable(&e),
    }
}

/// `GET /admin/ranges`: the pool, the range master and every node's blocks. Needs the cluster
/// secret when the node has one.
pub async fn overview(state: &AppState) -> Result<HttpResponse, ApiError> {
    let overview = state
        .ranges
        .overview()
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, vec![e.to_string()]))?;
    Ok(json(&overview))
}
