//! Reading a request the way PopBox's clients expect: the JSON body (with size limits that hold
//! for chunked bodies too) and parameters looked up path → body → query.

use std::time::Duration;

use actix_web::HttpRequest;
use actix_web::http::header::{CONTENT_LENGTH, CONTENT_TYPE, TRANSFER_ENCODING};
use actix_web::web::{BytesMut, Payload};
use futures_util::StreamExt;
use serde_json::{Map, Value};

use super::response::ApiError;
use crate::config::InboxSettings;
use crate::inbox::params::ParamValue;

/// A parsed request body: a JSON object, a JSON array, or nothing usable (treated as `{}`).
#[derive(Debug, Default)]
pub struct Body(Option<Value>);

impl Body {
    /// The top-level object, if the body is one.
    pub fn object(&self) -> Option<&Map<String, Value>> {
        self.0.as_ref().and_then(Value::as_object)
    }

    /// The object, or an empty one (PopBox treats every other body as `{}`).
    pub fn into_object(self) -> Map<String, Value> {
        match self.0 {
            Some(Value::Object(object)) => object,
            _ => Map::new(),
        }
    }
}

/// The media type of the request, lower-cased, without parameters.
pub fn media_type(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(CONTENT_TYPE)?.to_str().ok()?;
    Some(
        value
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase(),
    )
}

/// The raw `Content-Type` header, for the routes whose check is stricter than the media type.
pub fn content_type(req: &HttpRequest) -> &str {
    req.headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// Reads and parses the body. Only `application/json` bodies are parsed; others are read (to
/// keep the connection usable) and treated as `{}`.
pub async fn read_body(
    req: &HttpRequest,
    payload: Payload,
    limits: &InboxSettings,
) -> Result<Body, ApiError> {
    let Some(bytes) = read_bytes(req, payload, limits).await? else {
        return Ok(Body::default());
    };
    if media_type(req).as_deref() != Some("application/json") {
        return Ok(Body::default());
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "invalid JSON body: the body is empty",
        ));
    }
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    match value {
        Value::Object(_) | Value::Array(_) => Ok(Body(Some(value))),
        _ => Err(ApiError::bad_request(
            "invalid JSON body: it must be an object or an array",
        )),
    }
}

/// Reads the body as it came, within the size and time limits; `None` when the request
/// declares none.
pub async fn read_bytes(
    req: &HttpRequest,
    mut payload: Payload,
    limits: &InboxSettings,
) -> Result<Option<BytesMut>, ApiError> {
    let headers = req.headers();
    let declared = match headers.get(CONTENT_LENGTH) {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<usize>().ok())
                .ok_or_else(|| ApiError::bad_request("invalid Content-Length header"))?,
        ),
        None => None,
    };
    if declared.is_none() && !headers.contains_key(TRANSFER_ENCODING) {
        return Ok(None);
    }
    let limit = match declared {
        Some(len) if len > limits.max_body_size => {
            return Err(ApiError::too_large(limits.max_body_size));
        }
        Some(_) => limits.max_body_size,
        None => limits.max_chunked_body_size,
    };

    let read = async {
        let mut bytes = BytesMut::new();
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|e| {
                ApiError::bad_request(format!("could not read the request body: {e}"))
            })?;
            if bytes.len() + chunk.len() > limit {
                return Err(ApiError::too_large(limit));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    };
    let bytes = tokio::time::timeout(Duration::from_secs(limits.body_timeout), read)
        .await
        .map_err(|_| ApiError::body_timeout(limits.body_timeout))??;
    Ok(Some(bytes))
}

/// Request parameters, looked up as PopBox does: path first (the route already has those),
/// then a top-level field of the JSON body, then the query string. A `null` falls through.
pub struct Params {
    body: Map<String, Value>,
    query: Vec<(String, String)>,
}

impl Params {
    /// Takes the body: a message's payload is not copied.
    pub fn new(req: &HttpRequest, body: Body) -> Result<Self, ApiError> {
        let query = serde_urlencoded::from_str(req.query_string())
            .map_err(|e| ApiError::bad_request(format!("invalid query string: {e}")))?;
        Ok(Params {
            body: body.into_object(),
            query,
        })
    }

    pub fn get(&self, name: &str) -> Option<ParamValue<'_>> {
        match self.body.get(name) {
            Some(Value::Null) | None => self
                .query
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| ParamValue::Text(v.as_str())),
            Some(v) => Some(ParamValue::Json(v)),
        }
    }

    /// A parameter that must be a string when present (e.g. `id_org`, `queues`).
    pub fn get_str(&self, name: &str) -> Result<Option<String>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(ParamValue::Text(s)) => Ok(Some(s.to_owned())),
            Some(ParamValue::Json(Value::String(s))) => Ok(Some(s.clone())),
            Some(ParamValue::Json(v)) => Err(ApiError::bad_request(format!(
                "invalid {name}: expected a string, got {v}"
            ))),
        }
    }

    pub fn body(&self) -> &Map<String, Value> {
        &self.body
    }
}
