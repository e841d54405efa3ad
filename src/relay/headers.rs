//! The protocol's headers, and which of a request's headers travel to the other side.
//!
//! Names are matched case-insensitively; responses are written with each dash-separated word
//! capitalised (`X-Iwp-Requestid`), as the original service wrote them.

use actix_web::http::StatusCode;
use actix_web::http::header::{CONNECTION, HeaderMap, HeaderName, HeaderValue};

pub use crate::model::iwp::*;

/// Connection-level headers: they describe one hop and are never relayed. `Content-Length` is
/// set anew from the body that is actually sent; `Expect` was answered by this hop.
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "transfer-encoding"
            | "te"
            | "trailer"
            | "upgrade"
            | "content-length"
            | "expect"
    ) || name.as_str().starts_with("proxy-")
}

/// The headers of one side's request that the other side receives: the end-to-end ones, less
/// any `X-IWP-RequestId` (ids are the relay's to give, never a client's). Headers that
/// `Connection` names are hop-by-hop too (RFC 9110 §7.6.1).
pub fn relayed(headers: &HeaderMap) -> Vec<(HeaderName, HeaderValue)> {
    let named: Vec<String> = (headers.get_all(CONNECTION))
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|token| token.trim().to_ascii_lowercase())
        .collect();
    headers
        .iter()
        .filter(|(name, _)| {
            !hop_by_hop(name)
                && name.as_str() != REQUEST_ID
                && !named.iter().any(|n| n == name.as_str())
        })
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

/// A protocol header's value as text, if present and readable.
pub fn text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_owned())
}

/// The status named by `X-iwp-responsecode` (200 when absent). Only a final status that HTTP
/// defines and that may carry the relayed body will do: a `1xx` is not an answer (an app given
/// `100` waits for the real one), and `204`, `205` and `304` have no body, so the body's bytes
/// would be read as the start of the next answer. Anything else is refused with a message for
/// the sender.
pub fn response_code(headers: &HeaderMap) -> Result<StatusCode, String> {
    let Some(value) = headers.get(RESPONSE_CODE) else {
        return Ok(StatusCode::OK);
    };
    let text = value.to_str().unwrap_or("").trim();
    text.parse::<u16>()
        .ok()
        .and_then(|code| StatusCode::from_u16(code).ok())
        .filter(|code| {
            code.as_u16() >= 200
                && code.canonical_reason().is_some()
                && ![204, 205, 304].contains(&code.as_u16())
        })
        .ok_or_else(|| format!("Unknown status code '{text}' in 'X-iwp-responsecode'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_request_ids_stay_behind() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("connection", "keep-alive, X-Hop-Test"),
            ("x-hop-test", "one hop only"),
            ("transfer-encoding", "chunked"),
            ("proxy-authorization", "x"),
            ("content-length", "5"),
            ("x-iwp-requestid", "forged"),
            ("content-type", "application/xml"),
            ("x-my-app", "abc"),
            ("x-iwp-productunivid", "26018363"),
        ] {
            headers.insert(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        let mut names: Vec<&str> = Vec::new();
        let relayed = relayed(&headers);
        names.extend(relayed.iter().map(|(n, _)| n.as_str()));
        names.sort();
        assert_eq!(names, ["content-type", "x-iwp-productunivid", "x-my-app"]);
    }

    #[test]
    fn response_codes() {
        let mut headers = HeaderMap::new();
        assert_eq!(response_code(&headers), Ok(StatusCode::OK));
        headers.insert(
            HeaderName::from_static(RESPONSE_CODE),
            HeaderValue::from_static("404"),
        );
        assert_eq!(response_code(&headers), Ok(StatusCode::NOT_FOUND));
        for good in ["201", "302", "418", "429", "503"] {
            headers.insert(
                HeaderName::from_static(RESPONSE_CODE),
                HeaderValue::from_static(good),
            );
            assert_eq!(response_code(&headers).unwrap().as_str(), good);
        }
        for bad in [
            "abc", "99", "600", "-1", "100", "101", "199", "204", "205", "304", "599",
        ] {
            headers.insert(
                HeaderName::from_static(RESPONSE_CODE),
                HeaderValue::from_static(bad),
            );
            let err = response_code(&headers).unwrap_err();
            assert!(err.contains(bad), "{err}");
        }
    }
}
