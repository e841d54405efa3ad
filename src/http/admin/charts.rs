//! `GET /admin/charts/<type>.<period>.svg?size=S|M|L`: a chart of the region's statistics,
//! drawn by the node (see [`crate::stats::chart`]). Size M when not given.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};

use super::super::AppState;
use super::super::response::ApiError;
use crate::stats::chart::{Chart, PERIODS, Period, Size};

pub async fn chart(
    state: &AppState,
    req: &HttpRequest,
    file: String,
) -> Result<HttpResponse, ApiError> {
    let (chart, period) = parse(&file)?;
    let size = size(req)?;
    let svg = state.stats.chart(chart, period, size).await?;
    Ok(HttpResponse::Ok()
        .content_type("image/svg+xml; charset=utf-8")
        .insert_header(("Cache-Control", "no-cache"))
        .body(svg))
}

/// `cpu-max.1h.svg` → the chart and its period.
fn parse(file: &str) -> Result<(Chart, Period), ApiError> {
    let not_found = |what: String| ApiError::new(StatusCode::NOT_FOUND, vec![what]);
    let Some((chart, period)) = (file.strip_suffix(".svg")).and_then(|f| f.split_once('.')) else {
        return Err(not_found(format!(
            "no chart {file:?}: charts are named <type>.<period>.svg, e.g. cpu.1h.svg"
        )));
    };
    let chart = Chart::parse(chart).ok_or_else(|| {
        let known: Vec<String> = Chart::all().map(|c| c.to_string()).collect();
        not_found(format!(
            "no chart type {chart:?}; there are: {}",
            known.join(", ")
        ))
    })?;
    let period = Period::parse(period).ok_or_else(|| {
        let known: Vec<&str> = PERIODS.iter().map(|p| p.name).collect();
        not_found(format!(
            "no chart period {period:?}; there are: {}",
            known.join(", ")
        ))
    })?;
    Ok((chart, period))
}

fn size(req: &HttpRequest) -> Result<Size, ApiError> {
    let query: Vec<(String, String)> = serde_urlencoded::from_str(req.query_string())
        .map_err(|e| ApiError::bad_request(format!("invalid query string: {e}")))?;
    match query.iter().rev().find(|(name, _)| name == "size") {
        None => Ok(Size::M),
        Some((_, value)) => Size::parse(value).ok_or_else(|| {
            ApiError::bad_request(format!("invalid size {value:?}: expected S, M or L"))
        }),
    }
}
