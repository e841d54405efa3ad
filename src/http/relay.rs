//! Handlers of the device relay (My Notes protocol). Answers the node makes itself have an empty
//! body, the protocol's headers, and `X-IWP-Reason` on errors; relayed messages carry the other
//! side's end-to-end headers and body. Header names are written as the original wrote them
//! (`X-Iwp-Requestid`).

use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_LENGTH, HeaderMap};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, web};

use super::routes::RelayRoute;
use crate::relay::body::{self, PumpError};
use crate::relay::headers::{self, HOST, PORT, PRODUCT_UNIV_ID, REASON, REQUEST_ID, RESPONSE_TYPE};
use crate::relay::{ClientOutcome, PollOutcome, Relay, Relayed, ReplyVerdict, Report};
use crate::stats::counters;
use crate::stats::counters::Count;

pub async fn serve(
    relay: &Relay,
    route: RelayRoute,
    req: &HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    match route {
        RelayRoute::Ping => return finish(answer(StatusCode::OK)),
        RelayRoute::NotPost => {
            let mut answer = failure(StatusCode::METHOD_NOT_ALLOWED, "only POST is served here");
            answer.insert_header(("Allow", "POST"));
            return finish(answer);
        }
        _ => {}
    }
    // Every other relay request names its customer.
    let Some(customer) = headers::text(req.headers(), PRODUCT_UNIV_ID).filter(|id| !id.is_empty())
    else {
        return failed(StatusCode::BAD_REQUEST, "missing X-IWP-ProductUnivId");
    };
    match route {
        RelayRoute::Connect => connect(relay, customer).await,
        RelayRoute::Locate => locate(relay, customer).await,
        RelayRoute::Client => client(relay, req, customer, payload).await,
        RelayRoute::Agent => agent(relay, customer).await,
        RelayRoute::AgentReply => agent_reply(relay, req, customer, payload).await,
        RelayRoute::Ping | RelayRoute::NotPost => unreachable!("answered above"),
        RelayRoute::Hello
        | RelayRoute::Connected
        | RelayRoute::Find
        | RelayRoute::Range
        | RelayRoute::GetUniversalId => unreachable!("served by their own handlers"),
    }
}

/// An answer of the node's own, headers written as the original wrote them.
pub(super) fn answer(status: StatusCode) -> HttpResponseBuilder {
    let mut builder = HttpResponse::build(status);
    builder.content_type("text/html; charset=UTF-8");
    builder
}

fn failure(status: StatusCode, reason: &str) -> HttpResponseBuilder {
    let mut builder = answer(status);
    builder.insert_header((REASON, reason));
    builder
}

/// Writes the response's header names capitalised per word, as the original service did.
pub(super) fn finish(mut builder: HttpResponseBuilder) -> HttpResponse {
    let mut response = builder.finish();
    response.head_mut().set_camel_case_headers(true);
    response
}

pub(super) fn no_partner() -> HttpResponse {
    let mut builder = answer(StatusCode::OK);
    builder.insert_header((RESPONSE_TYPE, "0"));
    finish(builder)
}

pub(super) fn redirect(location: &crate::relay::Location) -> HttpResponse {
    let mut builder = answer(StatusCode::OK);
    builder
        .insert_header((HOST, location.host.as_str()))
        .insert_header((PORT, location.port.as_str()));
    finish(builder)
}

pub(super) fn failed(status: StatusCode, reason: &str) -> HttpResponse {
    finish(failure(status, reason))
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers::text(headers, CONTENT_LENGTH.as_str()).and_then(|v| v.parse().ok())
}

pub(super) fn unavailable(e: impl std::fmt::Display) -> HttpResponse {
    failed(
        StatusCode::SERVICE_UNAVAILABLE,
        &format!("HTTP 503: Service Unavailable ({e})"),
    )
}

/// A relayed message as the receiving side's response; `report` hears how its body went out.
fn relayed(
    message: Relayed,
    request_id: &str,
    report: Report,
    counted: &'static Count,
) -> HttpResponse {
    let Relayed {
        status,
        headers,
        length,
        body,
    } = message;
    let mut builder = HttpResponse::build(status);
    for (name, value) in headers {
        builder.append_header((name, value));
    }
    builder.insert_header((REQUEST_ID, request_id));
    if let Some(length) = length {
        builder.no_chunking(length);
    }
    let body = body.into_stream(length, counted, move |complete| report.done(complete));
    let mut response = builder.streaming(body);
    response.head_mut().set_camel_case_headers(true);
    response
}

/// What a sender's request says, as it will reach the other side; its body comes through
/// `body`.
fn message(req: &HttpRequest, status: StatusCode, body: body::BodyReceiver) -> Relayed {
    Relayed {
        status,
        headers: headers::relayed(req.headers()),
        length: content_length(req.headers()),
        body,
    }
}

/// `POST /connect`: the desktop is attached here.
async fn connect(relay: &Relay, customer: String) -> HttpResponse {
    match relay.connect(&customer).await {
        Ok(()) => {
            let mut builder = answer(StatusCode::OK);
            builder.insert_header((PORT, relay.here().port.as_str()));
            finish(builder)
        }
        Err(e) => unavailable(e),
    }
}

/// `POST /client`: where the desktop is, or "no agent".
async fn locate(relay: &Relay, customer: String) -> HttpResponse {
    match relay.locate(&customer).await {
        Ok(Some(location)) => redirect(&location),
        Ok(None) => no_partner(),
        Err(e) => unavailable(e),
    }
}

/// `POST /agent/<x>`: the desktop's long poll.
async fn agent(relay: &Relay, customer: String) -> HttpResponse {
    match relay.poll(&customer).await {
        Ok(PollOutcome::NoClient) => no_partner(),
        Ok(PollOutcome::Request {
            id,
            message,
            report,
        }) => relayed(message, &id, report, &counters().bytes_to_desktops),
        Err(e) => unavailable(e),
    }
}

/// `POST /client/<x>`: an app's request for the desktop; the answer is the desktop's reply.
async fn client(
    relay: &Relay,
    req: &HttpRequest,
    customer: String,
    payload: web::Payload,
) -> HttpResponse {
    let status = match headers::response_code(req.headers()) {
        Ok(status) => status,
        Err(reason) => return failed(StatusCode::BAD_REQUEST, &reason),
    };
    let length = content_length(req.headers());
    let (sender, receiver) = body::channel();
    let outcome = relay.client(&customer, message(req, status, receiver));
    let stall = relay.timeouts().stall;
    let pumping = body::pump(payload, sender, relay.chunk_size(length), stall);
    tokio::pin!(outcome, pumping);
    let outcome = tokio::select! {
        outcome = &mut outcome => outcome,
        pumped = &mut pumping => match pumped {
            // The desktop's poll is aborted (the body is not marked complete) and its session
            // hears of it; the app, still there, hears why.
            Err(e @ PumpError::SourceStalled(_)) => {
                return failed(StatusCode::REQUEST_TIMEOUT, &format!("HTTP 408: Request Timeout ({e})"));
            }
            Err(PumpError::DestinationStalled(_)) => {
                return unavailable("the desktop took no byte of the request for a stall timeout");
            }
            // Whether or not the body got through, the session has the last word.
            _ => outcome.await,
        },
    };
    match outcome {
        ClientOutcome::NoAgent => no_partner(),
        ClientOutcome::Redirect(location) => redirect(&location),
        // The id tells the app this is the desktop's reply (not a redirect or "no agent").
        ClientOutcome::Reply {
            id,
            message,
            report,
        } => relayed(message, &id, report, &counters().bytes_to_apps),
        ClientOutcome::Failed { status, reason } => failed(status, &reason),
    }
}

/// `POST /agentreply/<x>`: the desktop's reply to an interaction, streamed to its app. The
/// desktop hears `200` once the last byte went to the app.
async fn agent_reply(
    relay: &Relay,
    req: &HttpRequest,
    customer: String,
    payload: web::Payload,
) -> HttpResponse {
    let Some(id) = headers::text(req.headers(), REQUEST_ID).filter(|id| !id.is_empty()) else {
        return failed(StatusCode::BAD_REQUEST, "missing X-IWP-RequestId");
    };
    let length = content_length(req.headers());
    let (sender, receiver) = body::channel();
    let message =
        headers::response_code(req.headers()).map(|status| message(req, status, receiver));
    let delivered = match relay.reply(id, customer, message).await {
        ReplyVerdict::Go { delivered } => delivered,
        ReplyVerdict::Refused { status, reason } => return failed(status, &reason),
    };
    let app_gone = || {
        failed(
            StatusCode::BAD_GATEWAY,
            "HTTP 502: Bad Gateway (the app's connection closed)",
        )
    };
    let stall = relay.timeouts().stall;
    match body::pump(payload, sender, relay.chunk_size(length), stall).await {
        // The app's side may close the channel as soon as it has the promised length, before
        // the end mark: what counts is whether it got everything.
        Ok(_) | Err(PumpError::Destination) => match delivered.await {
            Ok(true) => finish(answer(StatusCode::OK)),
            _ => app_gone(),
        },
        Err(e @ PumpError::Source(_)) => failed(StatusCode::BAD_REQUEST, &e.to_string()),
        Err(e @ PumpError::SourceStalled(_)) => failed(
            StatusCode::REQUEST_TIMEOUT,
            &format!("HTTP 408: Request Timeout ({e})"),
        ),
        Err(e @ PumpError::DestinationStalled(_)) => failed(
            StatusCode::BAD_GATEWAY,
            &format!("HTTP 502: Bad Gateway (the app's connection stalled: {e})"),
        ),
    }
}
