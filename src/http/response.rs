//! How answers are written: JSON with `Content-Type: application/json; charset=utf-8`, errors
//! as `{"errors":[…]}`, and the few plain-text answers PopBox's clients expect.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::body::{BodySize, MessageBody};
use actix_web::http::{StatusCode, header};
use actix_web::web::Bytes;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use serde_json::json;

use crate::inbox::{Answering, InboxError};
use crate::store::StoreError;

pub const JSON: &str = "application/json; charset=utf-8";
pub const TEXT: &str = "text/plain; charset=utf-8";

pub fn json(body: &impl Serialize) -> HttpResponse {
    json_sized(body, 128)
}

/// [`json`] written into a buffer of `capacity` bytes: an answer that carries payloads is sized
/// for them up front, instead of growing (and copying) as they are written.
pub fn json_sized(body: &impl Serialize, capacity: usize) -> HttpResponse {
    let mut buf = Vec::with_capacity(capacity);
    serde_json::to_writer(&mut buf, body).expect("responses always serialise");
    HttpResponse::Ok().content_type(JSON).body(buf)
}

/// [`json`], whose `answering` token is let go once the answer has been written to the
/// client's socket (or the connection failed): see [`crate::model::answered`].
pub fn json_answering(body: &impl Serialize, answering: Answering) -> HttpResponse {
    let bytes = serde_json::to_vec(body).expect("responses always serialise");
    HttpResponse::Ok()
        .content_type(JSON)
        .body(AnsweringBody::new(bytes.into(), answering))
}

/// A body of known bytes that drops its [`Answering`] token once they are written.
///
/// actix-http's HTTP/1 dispatcher polls a body until it stalls, then writes what it encoded to
/// the socket. So the body hands over its bytes, then stalls once (asking to be polled again at
/// once): the dispatcher writes them, polls again, and only then does the body end and let the
/// token go. Dropped unfinished (the connection failed), it lets the token go as well.
struct AnsweringBody {
    bytes: Option<Bytes>,
    len: u64,
    answering: Option<Answering>,
    /// It has stalled once since handing its bytes over.
    stalled: bool,
}

impl AnsweringBody {
    fn new(bytes: Bytes, answering: Answering) -> Self {
        AnsweringBody {
            len: bytes.len() as u64,
            bytes: Some(bytes),
            answering: Some(answering),
            stalled: false,
        }
    }
}

impl MessageBody for AnsweringBody {
    type Error = Infallible;

    fn size(&self) -> BodySize {
        BodySize::Sized(self.len)
    }

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        if let Some(bytes) = self.bytes.take() {
            return Poll::Ready(Some(Ok(bytes)));
        }
        if !self.stalled {
            self.stalled = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.answering = None;
        Poll::Ready(None)
    }
}

/// PopBox's answer to an unknown route, kept byte for byte.
pub fn not_found(method: &str, url: &str) -> HttpResponse {
    HttpResponse::NotFound()
        .content_type(TEXT)
        .body(format!("Cannot {method} {url}"))
}

/// What a handler answers: its response, or an error rendered as PopBox does.
pub type Reply = Result<HttpResponse, ApiError>;

/// An error answer: a status and the problems, rendered as `{"errors":[…]}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {}", messages.join("; "))]
pub struct ApiError {
    pub status: StatusCode,
    pub messages: Vec<String>,
    /// PopBox's answers to a secure-queue request it refuses: plain text and a Basic challenge.
    pub challenge: bool,
}

impl ApiError {
    pub fn new(status: StatusCode, messages: Vec<String>) -> Self {
        ApiError {
            status,
            messages,
            challenge: false,
        }
    }

    /// A refused secure-queue request: `text` as plain text, with
    /// `WWW-Authenticate: Basic realm="PopBox"`.
    pub fn challenge(status: StatusCode, text: impl Into<String>) -> Self {
        ApiError {
            status,
            messages: vec![text.into()],
            challenge: true,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, vec![message.into()])
    }

    pub fn body_timeout(secs: u64) -> Self {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            vec![format!("request body not received within {secs} s")],
        )
    }

    pub fn too_large(limit: usize) -> Self {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            vec![format!("request body larger than {limit} bytes")],
        )
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        if self.challenge {
            return HttpResponse::build(self.status)
                .content_type(TEXT)
                .insert_header((header::WWW_AUTHENTICATE, r#"Basic realm="PopBox""#))
                .body(self.messages.concat());
        }
        HttpResponse::build(self.status)
            .content_type(JSON)
            .body(json!({ "errors": self.messages }).to_string())
    }
}

impl From<InboxError> for ApiError {
    fn from(e: InboxError) -> Self {
        match e {
            InboxError::Invalid(messages) => ApiError::new(StatusCode::BAD_REQUEST, messages),
            InboxError::Store(e @ StoreError::Unavailable { .. }) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, vec![e.to_string()])
            }
            InboxError::ShuttingDown => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, vec![e.to_string()])
            }
            InboxError::Store(e @ (StoreError::Backend { .. } | StoreError::Config(_))) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, vec![e.to_string()])
            }
        }
    }
}
