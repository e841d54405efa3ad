//! Keeps each request's header map no larger than its headers.
//!
//! actix-http gives every request head a map sized for 16 headers, some 6.5 KiB, and keeps it
//! for as long as the request lives. A long-poll lives for minutes with two or three headers, so
//! at 19,000 held polls that map alone was a third of the node's memory. Rebuilding it at its
//! real size before the handler runs costs a few hundred nanoseconds and no copy of a header's
//! bytes (names and values are reference-counted).

use actix_web::dev::ServiceRequest;
use actix_web::http::header::HeaderMap;

/// Replaces the request's header map by one sized for the headers it holds.
pub fn shrink(req: &mut ServiceRequest) {
    let headers = req.headers_mut();
    if headers.capacity() <= headers.len() * 2 {
        return;
    }
    let mut compact = HeaderMap::with_capacity(headers.len());
    for (name, value) in std::mem::take(headers) {
        compact.append(name, value);
    }
    *headers = compact;
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderName, HeaderValue};
    use actix_web::test::TestRequest;

    use super::*;

    fn value(s: &'static str) -> HeaderValue {
        HeaderValue::from_static(s)
    }

    #[test]
    fn a_roomy_map_is_shrunk_and_keeps_every_value() {
        let mut req = TestRequest::default().to_srv_request();
        let mut roomy = HeaderMap::with_capacity(16);
        roomy.insert(HeaderName::from_static("host"), value("a"));
        roomy.append(HeaderName::from_static("x-tag"), value("one"));
        roomy.append(HeaderName::from_static("x-tag"), value("two"));
        *req.headers_mut() = roomy;

        shrink(&mut req);

        let headers = req.headers();
        assert!(headers.capacity() < 16, "capacity {}", headers.capacity());
        assert_eq!(headers.len(), 3);
        assert_eq!(headers.get("host"), Some(&value("a")));
        let tags: Vec<_> = headers.get_all("x-tag").collect();
        assert_eq!(tags, [&value("one"), &value("two")], "order kept");
    }

    #[test]
    fn a_full_map_is_left_alone() {
        let mut req = TestRequest::default().to_srv_request();
        let mut full = HeaderMap::with_capacity(2);
        full.insert(HeaderName::from_static("host"), value("a"));
        full.insert(HeaderName::from_static("accept"), value("*/*"));
        let capacity = full.capacity();
        *req.headers_mut() = full;

        shrink(&mut req);

        assert_eq!(req.headers().capacity(), capacity);
        assert_eq!(req.headers().len(), 2);
    }
}
