//! Handlers of PopBox's inbox API. Each one reads the request, asks the [`Inbox`], and renders
//! the answer in PopBox's exact shapes.

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse};
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::request::{Body, Params, content_type};
use super::response::{ApiError, Reply, json, json_answering, json_sized};
use crate::inbox::params::{ParamValue, ack_timeout, delay, max_messages, pop_timeout};
use crate::inbox::provision::{once_key, validate_new, validate_update};
use crate::inbox::secure::basic_credential;
use crate::inbox::{
    Access, DeliveryState, Inbox, Mark, Message, Namespace, QueueName, StateFilter, TxId,
    answer_pair, unix_now,
};

fn invalid_content_type() -> ApiError {
    ApiError::bad_request("invalid content-type header")
}

/// How a consumer's takes are recorded: delivered at once, or (`reliable`) `Blocked` until
/// acknowledged within `timeoutACK`.
pub fn mark(params: &Params, inbox: &Inbox, reliable: bool) -> Result<Mark, ApiError> {
    Ok(if reliable {
        let ack_within = ack_timeout(params.get("timeoutACK"), inbox.settings())?;
        Mark::Unacked { ack_within }
    } else {
        Mark::Delivered
    })
}

/// The family of queues a request addresses: the tenant comes from `/org/<org>/…`, or — only
/// when enabled — from an `id_org` parameter; the HTTPS listener has queues of its own.
pub fn namespace(
    inbox: &Inbox,
    req: &HttpRequest,
    org: Option<String>,
    params: &Params,
) -> Result<Namespace, ApiError> {
    let org = match org {
        Some(org) => Some(org),
        None if inbox.settings().org_from_params => params.get_str("id_org")?,
        None => None,
    };
    Ok(Namespace {
        org,
        secure: req.app_config().secure(),
    })
}

/// A `/queue/<id>/…` request: its parameters, and the queue it addresses (see [`queue_for`]).
pub async fn queue_request(
    inbox: &Inbox,
    req: &HttpRequest,
    body: Body,
    org: Option<String>,
    id: &str,
) -> Result<(Params, QueueName), ApiError> {
    let params = Params::new(req, body)?;
    let queue = queue_for(inbox, req, org, &params, id).await?;
    Ok((params, queue))
}

/// The queue a `/queue/<id>/…` request addresses. On the HTTPS listener the client must hold
/// its credential (or the admin's), with PopBox's exact answers otherwise.
async fn queue_for(
    inbox: &Inbox,
    req: &HttpRequest,
    org: Option<String>,
    params: &Params,
    id: &str,
) -> Result<QueueName, ApiError> {
    let queue = namespace(inbox, req, org, params)?.queue(id);
    if !queue_is_secure(req) {
        return Ok(queue);
    }
    let credential = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(basic_credential);
    // Boxed: only secure queues need it, and inline it would make every handler's future (and
    // so every held pop) larger by its size.
    match Box::pin(inbox.authorize(&queue, credential)).await {
        Ok(Access::Granted) => Ok(queue),
        Ok(Access::NoSuchQueue) => Err(ApiError::challenge(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ERROR: Secure Queue does not exist",
        )),
        Ok(Access::Denied) => Err(ApiError::challenge(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
        )),
        Err(e) => Err(ApiError::challenge(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("ERROR:{e}"),
        )),
    }
}

/// Queues reached through the HTTPS listener are secure queues.
fn queue_is_secure(req: &HttpRequest) -> bool {
    req.app_config().secure()
}

fn host(req: &HttpRequest) -> String {
    req.connection_info().host().to_owned()
}

/// `{"data":[payload|null…],"ok":true,"transactions":[id…]}`, as pop, peek and every
/// subscription message read (fields in that order, as they have always been sent).
#[derive(Serialize)]
struct MessagesBody<'a> {
    data: Vec<Option<&'a str>>,
    ok: bool,
    transactions: Vec<&'a TxId>,
}

impl<'a> MessagesBody<'a> {
    fn of(messages: impl IntoIterator<Item = &'a Message>) -> Self {
        let (data, transactions) = messages
            .into_iter()
            .map(|m| (m.payload.as_deref(), &m.tx))
            .unzip();
        MessagesBody {
            data,
            ok: true,
            transactions,
        }
    }

    /// About the length of the body in JSON; the payloads make most of it.
    fn json_len(&self) -> usize {
        let payloads: usize = self.data.iter().map(|d| d.map_or(4, str::len) + 3).sum();
        48 + payloads + 40 * self.transactions.len()
    }
}

/// The messages as one stream document.
pub fn messages_json<'a>(messages: impl IntoIterator<Item = &'a Message>) -> Value {
    serde_json::to_value(MessagesBody::of(messages)).expect("messages serialise")
}

/// The messages as an answer, written straight from them: a payload is copied once, into a
/// buffer already big enough.
fn messages_reply(messages: &[Message]) -> HttpResponse {
    let body = MessagesBody::of(messages);
    json_sized(&body, body.json_len())
}

/// `POST /trans`: store a message and push it into every queue it names.
pub async fn provision(inbox: &Inbox, req: &HttpRequest, body: Body, org: Option<String>) -> Reply {
    // PopBox accepts a charset suffix here (but not on PUT).
    if !content_type(req)
        .trim_start()
        .to_ascii_lowercase()
        .starts_with("application/json")
    {
        return Err(invalid_content_type());
    }
    let params = Params::new(req, body)?;
    // Only `/trans` expands groups; `/org/<org>/trans` does not (as in PopBox).
    let expanded = match org {
        None => inbox.with_group_members(params.body()).await?,
        Some(_) => None,
    };
    let ns = namespace(inbox, req, org, &params)?;
    let fields = expanded.as_ref().unwrap_or(params.body());
    let delay = delay(params.get("delay"))?;
    let mut tx = validate_new(fields, inbox.settings(), unix_now())
        .map_err(|errors| ApiError::new(StatusCode::BAD_REQUEST, errors))?;
    tx.once = idempotency_key(req, &ns)?;
    let reply = |id| json!({ "ok": true, "data": id });
    match delay {
        Some(delay) => Ok(json(&reply(inbox.provision_later(&ns, tx, delay).await?))),
        None => {
            // The producer has its answer before any waiter here has the message.
            let (answering, answered) = answer_pair();
            let id = inbox.provision(&ns, tx, answered).await?;
            Ok(json_answering(&reply(id), answering))
        }
    }
}

/// The request's `Idempotency-Key`, as the store keeps it: a retry with the same key stores
/// nothing new and answers what the first request made.
fn idempotency_key(req: &HttpRequest, ns: &Namespace) -> Result<Option<String>, ApiError> {
    let Some(value) = req.headers().get("idempotency-key") else {
        return Ok(None);
    };
    let key = value.to_str().unwrap_or_default();
    once_key(ns, key).map(Some).map_err(ApiError::bad_request)
}

/// `GET /trans/<id>`: the metadata, with the queues' states when `queues` asks for them.
pub async fn get_transaction(inbox: &Inbox, req: &HttpRequest, body: Body, id: String) -> Reply {
    let params = Params::new(req, body)?;
    let view = params
        .get_str("queues")?
        .map(|q| QueuesView::parse(&q))
        .transpose()?;
    let id = TxId::from(id);
    let Some(meta) = inbox.transaction(&id).await? else {
        return Ok(json(&match view {
            Some(_) => json!({ "queues": {} }),
            None => json!({}),
        }));
    };
    let mut out: Map<String, Value> = meta
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    if let Some(view) = view {
        let states = inbox.states(&id).await?;
        let queues = match view {
            QueuesView::Summary => summary(&states),
            QueuesView::Filter(filter) => {
                let host = host(req);
                states
                    .iter()
                    .filter(|(_, s)| filter.admits(**s))
                    .map(|(q, s)| {
                        let href = format!("http://{host}/queue/{q}");
                        (q.clone(), json!({ "state": s.as_str(), "href": href }))
                    })
                    .collect()
            }
        };
        out.insert("queues".to_owned(), Value::Object(queues));
    }
    Ok(json(&out))
}

/// How `queues=` and `/state/<state>` ask for per-queue states.
enum QueuesView {
    Summary,
    Filter(StateFilter),
}

impl QueuesView {
    fn parse(s: &str) -> Result<Self, ApiError> {
        match s {
            "summary" => Ok(QueuesView::Summary),
            other => StateFilter::parse(other)
                .map(QueuesView::Filter)
                .ok_or_else(|| ApiError::bad_request(format!("Wrong State:{other}"))),
        }
    }
}

/// `{"totalNotifications": n, "<State>": count…}` with only the states present.
fn summary(states: &BTreeMap<String, DeliveryState>) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("totalNotifications".to_owned(), json!(states.len()));
    for state in states.values() {
        let count = out.entry(state.as_str()).or_insert(json!(0));
        *count = json!(count.as_u64().unwrap_or(0) + 1);
    }
    out
}

/// `PUT /trans/<id>`: change payload, callback, expiration or extra fields.
pub async fn update_transaction(
    inbox: &Inbox,
    req: &HttpRequest,
    body: Body,
    org: Option<String>,
    id: String,
) -> Reply {
    if !content_type(req)
        .trim()
        .eq_ignore_ascii_case("application/json")
    {
        return Err(invalid_content_type());
    }
    let params = Params::new(req, body)?;
    let ns = namespace(inbox, req, org, &params)?;
    let fields = params.body();
    let update = match validate_update(fields, inbox.settings()) {
        Ok(None) => return Ok(json(&json!({ "ok": true, "data": "empty data" }))),
        Ok(Some(update)) => update,
        Err(errors) => return Err(ApiError::new(StatusCode::BAD_REQUEST, errors)),
    };
    if inbox
        .update_transaction(&ns, &TxId::from(id.as_str()), update)
        .await?
    {
        Ok(json(&json!({ "ok": true })))
    } else {
        Err(ApiError::bad_request(format!("{id} does not exist")))
    }
}

/// `DELETE /trans/<id>`: always `{"ok":true}`.
pub async fn delete_transaction(inbox: &Inbox, id: String) -> Reply {
    inbox.delete_transaction(&TxId::from(id)).await?;
    Ok(json(&json!({ "ok": true })))
}

/// `GET /trans/<id>/state[/<state>]`.
pub async fn transaction_state(
    inbox: &Inbox,
    req: &HttpRequest,
    body: Body,
    id: String,
    state: Option<String>,
) -> Reply {
    let params = Params::new(req, body)?;
    let state = match state {
        Some(s) => s,
        None => params.get_str("state")?.unwrap_or_else(|| "All".to_owned()),
    };
    let view = QueuesView::parse(&state)?;
    let states = inbox.states(&TxId::from(id)).await?;
    let data: Map<String, Value> = match view {
        QueuesView::Summary => summary(&states),
        QueuesView::Filter(filter) => states
            .into_iter()
            .filter(|(_, s)| filter.admits(*s))
            .map(|(q, s)| (q, json!(s.as_str())))
            .collect(),
    };
    Ok(json(&json!({ "ok": true, "data": data })))
}

/// `GET /trans/<id>/history`: every state change, oldest first, as
/// `{"queue","state","timestamp"}`; empty for an unknown transaction.
pub async fn history(inbox: &Inbox, id: String) -> Reply {
    let changes = inbox.history(&TxId::from(id)).await?;
    let data: Vec<Value> = changes
        .into_iter()
        .map(|c| {
            let at = UNIX_EPOCH + Duration::from_millis(c.at.max(0) as u64);
            let timestamp = humantime::format_rfc3339_millis(at).to_string();
            json!({ "queue": c.queue, "state": c.state, "timestamp": timestamp })
        })
        .collect();
    Ok(json(&json!({ "ok": true, "data": data })))
}

/// `POST /queue` `{"queue","user","password"}` on the HTTPS listener: creates a secure queue
/// that those Basic credentials open; `403` if it exists.
pub async fn create_secure_queue(
    inbox: &Inbox,
    req: &HttpRequest,
    body: Body,
    org: Option<String>,
) -> Reply {
    let params = Params::new(req, body)?;
    let field = |name: &str| match params.body().get(name) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        None | Some(Value::Null) => Err(format!("missing {name}")),
        Some(other) => Err(format!(
            "invalid {name}: expected a non-empty string, got {other}"
        )),
    };
    let (queue, user, password) = match (field("queue"), field("user"), field("password")) {
        (_, Ok(u), _) if u.contains(':') => {
            // Basic credentials split at the first colon: such a user could never log in.
            return Err(ApiError::bad_request(
                "invalid user: it must not contain ':'",
            ));
        }
        (Ok(q), Ok(u), Ok(p)) => (q, u, p),
        (q, u, p) => {
            let errors = [q.err(), u.err(), p.err()].into_iter().flatten().collect();
            return Err(ApiError::new(StatusCode::BAD_REQUEST, errors));
        }
    };
    let queue = namespace(inbox, req, org, &params)?.queue(&queue);
    if inbox
        .create_secure_queue(queue.clone(), &user, &password)
        .await?
    {
        Ok(json(&json!({ "ok": true })))
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            vec![format!("Error: {} exists", queue.key())],
        ))
    }
}

/// `POST /queue/<id>/pop`: wait up to `timeout` seconds for up to `max` messages. With
/// `reliable` (`/poprel`), they stay `Blocked` until acknowledged, and go back to the queue if
/// that does not happen within `timeoutACK` seconds.
pub async fn pop(
    inbox: &Inbox,
    req: &HttpRequest,
    body: Body,
    org: Option<String>,
    queue: String,
    reliable: bool,
) -> Reply {
    let (params, queue) = queue_request(inbox, req, body, org, &queue).await?;
    let max = max_messages(params.get("max"), inbox.settings())?;
    let timeout = pop_timeout(params.get("timeout"), inbox.settings())?;
    let mark = mark(&params, inbox, reliable)?;
    // Not kept for the wait, which may be minutes long.
    drop(params);
    let delivery = inbox.pop(queue, max, mark, timeout).await?;
    let messages = delivery.commit();
    Ok(messages_reply(&messages))
}

/// `POST /queue/<id>/ack` `{"transactions":[id…]}`: confirms reliable deliveries. Answers one
/// `{"err":null|"<id>/<queue> does not exist","data":"<id>"}` per id, in order.
pub async fn ack(inbox: &Inbox, req: &HttpRequest, body: Body, id: String) -> Reply {
    let (params, queue) = queue_request(inbox, req, body, None, &id).await?;
    let ids: Vec<TxId> = match params.get("transactions") {
        None => return Err(ApiError::bad_request("missing transaction")),
        Some(ParamValue::Json(Value::Array(items))) => items
            .iter()
            .map(|item| match item {
                Value::String(id) => Ok(TxId::from(id.as_str())),
                other => Err(ApiError::bad_request(format!(
                    "invalid transactions: every element must be a transaction id (a string), got {other}"
                ))),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid transactions: expected an array of transaction ids",
            ));
        }
    };
    let found = inbox.ack(queue, ids.clone()).await?;
    let answers: Vec<Value> = ids
        .iter()
        .zip(found)
        .map(|(tx, found)| {
            let err = (!found).then(|| format!("{tx}/{id} does not exist"));
            json!({ "err": err, "data": tx })
        })
        .collect();
    Ok(json(&answers))
}

/// `GET /queue/<id>/peek`: look at up to `max` messages without taking them.
pub async fn peek(
    inbox: &Inbox,
    req: &HttpRequest,
    body: Body,
    org: Option<String>,
    queue: String,
) -> Reply {
    let (params, queue) = queue_request(inbox, req, body, org, &queue).await?;
    let max = max_messages(params.get("max"), inbox.settings())?;
    let messages = inbox.peek(queue, max).await?;
    Ok(messages_reply(&messages))
}

/// `GET /queue/<id>`: what the queue holds and whether someone waits on it.
pub async fn queue_state(
    inbox: &Inbox,
    req: &HttpRequest,
    body: Body,
    org: Option<String>,
    queue: String,
) -> Reply {
    let (_, queue) = queue_request(inbox, req, body, org, &queue).await?;
    let info = inbox.queue_info(queue).await?;
    let host = host(req);
    let entries = |ids: &[TxId]| -> Vec<Value> {
        ids.iter()
            .map(|id| json!({ "id": id, "href": format!("http://{host}/trans/{id}?queues=All") }))
            .collect()
    };
    let mut out = json!({
        "ok": true,
        "host": host,
        "blocked": info.blocked,
        "size": info.high.len() + info.low.len(),
        "high": entries(&info.high),
        "low": entries(&info.low),
    });
    if let Some(last_pop) = info.last_pop {
        out["lastPop"] = json!(last_pop.to_string());
    }
    Ok(json(&out))
}
