//! Subscriptions: a queue's messages streamed to a client for as long as it stays connected.
//!
//! Three wires, the same messages (PopBox's pop answer with one message in it):
//! - `POST /queue/<id>/subscribe` and `/subscriberel`: an endless chunked JSON response, one
//!   compact document per HTTP chunk and nothing else in the chunk, as PopBox's clients parse it;
//! - `GET /queue/<id>/events`: Server-Sent Events, one `data:` event per message;
//! - `GET /queue/<id>/ws`: a WebSocket, one text frame per message.
//!
//! A message is committed when its bytes are handed to the connection, not before: one that
//! is still waiting when the client goes back to its queue.

use std::convert::Infallible;

use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::Message as WsMessage;
use bytes::Bytes;
use futures_util::Stream;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::inbox::{mark, messages_json, queue_request};
use super::request::Body;
use super::response::{ApiError, Reply};
use crate::inbox::{Inbox, Mark};
use crate::session::StreamItem;

/// One stream item as the JSON document clients read.
fn document(item: &StreamItem) -> Value {
    match item {
        StreamItem::Message(delivery) => messages_json(delivery.messages()),
        StreamItem::Error(text) => json!({ "errors": [text] }),
    }
}

/// The client has the item (its bytes went to the connection).
fn commit(item: StreamItem) {
    if let StreamItem::Message(delivery) = item {
        delivery.commit();
    }
}

/// The items as a body stream, each encoded by `encode` when the connection asks for it.
fn body_stream(
    items: mpsc::Receiver<StreamItem>,
    encode: fn(Value) -> Bytes,
) -> impl Stream<Item = Result<Bytes, Infallible>> {
    futures_util::stream::unfold(items, move |mut items| async move {
        let item = items.recv().await?;
        let bytes = encode(document(&item));
        commit(item);
        Some((Ok(bytes), items))
    })
}

/// `POST /queue/<id>/subscribe` (and, `reliable`, `/subscriberel`).
pub async fn subscribe(
    inbox: &Inbox,
    req: &HttpRequest,
    body: Body,
    org: Option<String>,
    queue: String,
    reliable: bool,
) -> Reply {
    let (params, queue) = queue_request(inbox, req, body, org, &queue).await?;
    let mark = mark(&params, inbox, reliable)?;
    let items = inbox.subscribe(queue, mark);
    let chunk = |doc: Value| Bytes::from(doc.to_string());
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .streaming(body_stream(items, chunk)))
}

/// `GET /queue/<id>/events`: Server-Sent Events.
pub async fn events(
    inbox: &Inbox,
    req: &HttpRequest,
    body: Body,
    org: Option<String>,
    queue: String,
) -> Reply {
    let (_, queue) = queue_request(inbox, req, body, org, &queue).await?;
    let items = inbox.subscribe(queue, Mark::Delivered);
    let event = |doc: Value| Bytes::from(format!("data: {doc}\n\n"));
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .streaming(body_stream(items, event)))
}

/// `GET /queue/<id>/ws`: a WebSocket; the client only listens (pings are answered).
pub async fn websocket(
    inbox: &Inbox,
    req: &HttpRequest,
    payload: web::Payload,
    org: Option<String>,
    queue: String,
) -> Reply {
    let (_, queue) = queue_request(inbox, req, Body::default(), org, &queue).await?;
    let (response, mut session, mut incoming) = actix_ws::handle(req, payload)
        .map_err(|e| ApiError::bad_request(format!("not a WebSocket handshake: {e}")))?;
    let mut items = inbox.subscribe(queue, Mark::Delivered);
    actix_web::rt::spawn(async move {
        loop {
            tokio::select! {
                item = items.recv() => {
                    let Some(item) = item else { break };
                    // Committed only once the session took the frame.
                    if session.text(document(&item).to_string()).await.is_err() {
                        break;
                    }
                    commit(item);
                }
                message = incoming.recv() => match message {
                    Some(Ok(WsMessage::Ping(bytes))) => {
                        if session.pong(&bytes).await.is_err() {
                            break;
                        }
                    }
                    Some(Ok(WsMessage::Close(_))) | Some(Err(_)) | None => break,
                    Some(Ok(_)) => {}
                },
            }
        }
        let _ = session.close(None).await;
    });
    Ok(response)
}
