//! Validation of `POST /trans` and `PUT /trans/<id>` bodies, with PopBox's exact error strings.
//!
//! All problems are collected and reported together, in PopBox's order: priority, queue,
//! payload, expiration.

use serde_json::{Map, Value};
use sha2::Digest;

use super::js::{js_length, to_js_string, truthy};
use crate::config::InboxSettings;
use crate::model::{Meta, Namespace, NewTransaction, Priority, TxId};

/// The largest `expirationDate` PopBox accepts (a signed 32-bit Unix time).
pub const MAX_TIMESTAMP: i64 = 2_147_483_647;

/// The longest `Idempotency-Key` accepted.
const ONCE_KEY_MAX: usize = 255;

/// The store's name for an `Idempotency-Key` sent in namespace `ns`: a digest of both, so that
/// keys of different listeners or tenants never meet and no key, whatever it holds, names
/// another key in the store.
pub fn once_key(ns: &Namespace, key: &str) -> Result<String, String> {
    if key.is_empty() || key.len() > ONCE_KEY_MAX || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "Idempotency-Key must be 1 to {ONCE_KEY_MAX} visible ASCII characters"
        ));
    }
    let digest = sha2::Sha256::digest([&ns.prefix(), key].join("\n"));
    Ok(format!("{digest:x}"))
}

/// A validated change to an existing transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct TransactionUpdate {
    pub meta: Meta,
    pub expires_at: Option<i64>,
}

/// Validates a provisioning body. `now` is the current Unix time.
pub fn validate_new(
    body: &Map<String, Value>,
    limits: &InboxSettings,
    now: i64,
) -> Result<NewTransaction, Vec<String>> {
    let mut errors = Vec::new();
    let field = |name: &str| body.get(name).filter(|v| truthy(v));

    let priority = match field("priority") {
        None => {
            errors.push("undefined priority".to_owned());
            None
        }
        Some(v) => {
            let p = v.as_str().and_then(Priority::parse);
            if p.is_none() {
                errors.push("invalid priority".to_owned());
            }
            p
        }
    };

    let queues = match field("queue") {
        None => {
            errors.push("undefined queue".to_owned());
            None
        }
        Some(v) => match queue_ids(v, limits.max_queues) {
            Ok(ids) => Some(ids),
            Err(e) => {
                errors.push(e);
                None
            }
        },
    };

    match field("payload") {
        None => errors.push("undefined payload".to_owned()),
        Some(v) => errors.extend(payload_size_error(v, limits)),
    }

    let expires_at = match expiration(body, limits, now) {
        Ok(at) => Some(at),
        Err(e) => {
            errors.push(e);
            None
        }
    };

    match (priority, queues, expires_at) {
        (Some(priority), Some(queues), Some(expires_at)) if errors.is_empty() => {
            let mut meta: Meta = body
                .iter()
                .filter(|(k, _)| k.as_str() != "queue")
                .map(|(k, v)| (k.clone(), to_js_string(v)))
                .collect();
            // A date the client gave is kept as sent; otherwise the one we chose is recorded.
            if field("expirationDate").is_none() {
                meta.insert("expirationDate".to_owned(), expires_at.to_string());
            }
            Ok(NewTransaction {
                id: TxId::generate(),
                priority,
                queues,
                meta,
                expires_at,
                once: None,
            })
        }
        _ => Err(errors),
    }
}

/// Validates a modification body. `Ok(None)` means there is nothing to change (PopBox answers
/// `"empty data"` without looking the transaction up).
pub fn validate_update(
    body: &Map<String, Value>,
    limits: &InboxSettings,
) -> Result<Option<TransactionUpdate>, Vec<String>> {
    if !["payload", "callback", "expirationDate"]
        .iter()
        .any(|k| body.contains_key(*k))
    {
        return Ok(None);
    }
    let mut errors = Vec::new();
    if let Some(payload) = body.get("payload") {
        errors.extend(payload_size_error(payload, limits));
    }
    let expires_at = match body.get("expirationDate").filter(|v| truthy(v)) {
        None => None,
        Some(v) => match expiration_date(v) {
            Ok(at) => Some(at),
            Err(e) => {
                errors.push(e);
                None
            }
        },
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    // Priority is fixed at creation and the queue list is never stored.
    let meta = body
        .iter()
        .filter(|(k, v)| !matches!(k.as_str(), "queue" | "priority") && !v.is_null())
        .map(|(k, v)| (k.clone(), to_js_string(v)))
        .collect();
    Ok(Some(TransactionUpdate { meta, expires_at }))
}

fn queue_ids(v: &Value, max_queues: usize) -> Result<Vec<String>, String> {
    let Value::Array(items) = v else {
        return Err("invalid queue type".to_owned());
    };
    if items.len() > max_queues {
        return Err(format!("too many queues: maximum {max_queues}"));
    }
    items
        .iter()
        .map(|item| match item.get("id") {
            // PopBox crashed on non-object elements and non-string ids; we refuse them.
            Some(Value::String(id)) if !id.is_empty() && item.is_object() => Ok(id.clone()),
            _ => Err("invalid queue element".to_owned()),
        })
        .collect()
}

fn payload_size_error(payload: &Value, limits: &InboxSettings) -> Option<String> {
    js_length(payload)
        .filter(|len| *len > limits.max_payload_size)
        .map(|_| format!("payload greater than {}", limits.max_payload_size))
}

/// `expirationDate` wins; else `expirationDelay` seconds from now; else the default delay.
fn expiration(body: &Map<String, Value>, limits: &InboxSettings, now: i64) -> Result<i64, String> {
    if let Some(date) = body.get("expirationDate").filter(|v| truthy(v)) {
        return expiration_date(date);
    }
    if let Some(delay) = body.get("expirationDelay").filter(|v| truthy(v)) {
        let Some(secs) = delay.as_f64() else {
            return Err("expirationDelay is not a number".to_owned());
        };
        let at = now as f64 + secs.trunc();
        if secs < 0.0 || at > MAX_TIMESTAMP as f64 {
            return Err("expirationDelay out of range".to_owned());
        }
        return Ok(at as i64);
    }
    Ok(now + limits.default_expire_delay as i64)
}

fn expiration_date(v: &Value) -> Result<i64, String> {
    let Some(date) = v.as_f64() else {
        return Err("expirationDate is not a number".to_owned());
    };
    if !(0.0..=MAX_TIMESTAMP as f64).contains(&date) {
        return Err("expirationDate out of range".to_owned());
    }
    Ok(date.trunc() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn new(body: Value) -> Result<NewTransaction, Vec<String>> {
        validate_new(body.as_object().unwrap(), &InboxSettings::default(), 1_000)
    }

    #[test]
    fn a_valid_body_is_accepted_and_stringified() {
        let tx = new(json!({"payload": "hi", "priority": "H", "queue": [{"id": "q1"}, {"id": "q2"}], "foo": {"a": 1}}))
            .unwrap();
        assert_eq!(tx.queues, ["q1", "q2"]);
        assert_eq!(tx.priority, Priority::High);
        assert_eq!(tx.expires_at, 1_000 + 3_600);
        assert_eq!(tx.meta["expirationDate"], "4600");
        assert_eq!(tx.meta["foo"], "[object Object]");
        assert_eq!(tx.meta["priority"], "H");
        assert!(!tx.meta.contains_key("queue"));
    }

    #[test]
    fn errors_come_together_in_popbox_order() {
        let errors =
            new(json!({"priority": "X", "queue": "q", "expirationDate": "soon"})).unwrap_err();
        assert_eq!(
            errors,
            [
                "invalid priority",
                "invalid queue type",
                "undefined payload",
                "expirationDate is not a number"
            ]
        );
        let errors = new(json!({})).unwrap_err();
        assert_eq!(
            errors,
            ["undefined priority", "undefined queue", "undefined payload"]
        );
    }

    #[test]
    fn queue_elements_must_be_objects_with_string_ids() {
        for bad in [
            json!(["q1"]),
            json!([{"id": 5}]),
            json!([{}]),
            json!([null]),
            json!([{"id": ""}]),
        ] {
            let errors = new(json!({"payload": "p", "priority": "L", "queue": bad})).unwrap_err();
            assert_eq!(errors, ["invalid queue element"], "for {bad}");
        }
        let many: Vec<Value> = (0..10_001).map(|i| json!({"id": i.to_string()})).collect();
        let errors = new(json!({"payload": "p", "priority": "L", "queue": many})).unwrap_err();
        assert_eq!(errors, ["too many queues: maximum 10000"]);
        assert!(new(json!({"payload": "p", "priority": "L", "queue": []})).is_ok());
    }

    #[test]
    fn payload_and_expiration_limits() {
        let big = "x".repeat(1_048_577);
        let errors =
            new(json!({"payload": big, "priority": "L", "queue": [], "expirationDate": -5}))
                .unwrap_err();
        assert_eq!(
            errors,
            [
                "payload greater than 1048576",
                "expirationDate out of range"
            ]
        );
        let errors = new(json!({"payload": "p", "priority": "L", "queue": [], "expirationDate": 2_147_483_648i64}))
            .unwrap_err();
        assert_eq!(errors, ["expirationDate out of range"]);
    }

    #[test]
    fn expiration_delay_counts_from_now() {
        let tx = new(json!({"payload": "p", "priority": "L", "queue": [], "expirationDelay": 60}))
            .unwrap();
        assert_eq!(tx.expires_at, 1_060);
        assert_eq!(tx.meta["expirationDate"], "1060");
        let tx = new(json!({"payload": "p", "priority": "L", "queue": [], "expirationDate": 5_000, "expirationDelay": 60}))
            .unwrap();
        assert_eq!(tx.expires_at, 5_000);
        let errors =
            new(json!({"payload": "p", "priority": "L", "queue": [], "expirationDelay": "x"}))
                .unwrap_err();
        assert_eq!(errors, ["expirationDelay is not a number"]);
    }

    #[test]
    fn updates() {
        let limits = InboxSettings::default();
        let update = |v: Value| validate_update(v.as_object().unwrap(), &limits);
        assert_eq!(update(json!({"foo": 1})), Ok(None));
        let u = update(
            json!({"payload": "new", "priority": "L", "queue": [], "foo": 2, "callback": null}),
        )
        .unwrap()
        .unwrap();
        assert_eq!(u.meta.keys().collect::<Vec<_>>(), ["foo", "payload"]);
        assert_eq!(u.expires_at, None);
        assert_eq!(
            update(json!({"expirationDate": 3_000_000_000i64})),
            Err(vec!["expirationDate out of range".into()])
        );
    }
}
