//! Groups: named sets of queue ids that a producer can provision to in one go (`groups` in
//! `POST /trans`). Validation of the `/group` bodies, with PopBox's exact error strings.
//!
//! Unlike PopBox, a group's name is only ever a group's name: the store keeps groups under a
//! prefix of their own, so no group operation can read or delete other data.

use serde_json::{Map, Value};

/// `POST /group`: who joins which group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewGroup {
    pub name: String,
    pub queues: Vec<String>,
}

/// `PUT /group/<name>`: members to add and to remove. A name in both lists is only removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupChange {
    pub add: Vec<String>,
    pub remove: Vec<String>,
}

impl GroupChange {
    /// The message PopBox gives when there is nothing to change.
    pub const NOTHING: &'static str = "missing queues to add/remove";

    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty()
    }
}

/// The error PopBox gives for a change to a group that does not exist.
pub fn unknown_group(name: &str) -> String {
    format!("{name} does not exist")
}

/// Validates a `POST /group` body; every problem is reported.
pub fn validate_new_group(body: &Map<String, Value>) -> Result<NewGroup, Vec<String>> {
    let mut errors = Vec::new();
    let name = match body.get("name") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            errors.push(format!("invalid name: expected a string, got {other}"));
            None
        }
    };
    if name.is_none() && errors.is_empty() {
        errors.push("missing name".to_owned());
    }
    let queues = match member_list(body, "queues") {
        Ok(list) if list.is_empty() => {
            errors.push("missing queues".to_owned());
            None
        }
        Ok(list) => Some(list),
        Err(e) => {
            errors.push(e);
            None
        }
    };
    match (name, queues) {
        (Some(name), Some(queues)) if errors.is_empty() => Ok(NewGroup { name, queues }),
        _ => Err(errors),
    }
}

/// Validates a `PUT /group/<name>` body. An empty change is valid here: whether it is reported
/// alone or with "does not exist" depends on the store.
pub fn validate_group_change(body: &Map<String, Value>) -> Result<GroupChange, Vec<String>> {
    let add = member_list(body, "queuesToAdd");
    let remove = member_list(body, "queuesToRemove");
    match (add, remove) {
        (Ok(add), Ok(remove)) => {
            let add = add.into_iter().filter(|q| !remove.contains(q)).collect();
            Ok(GroupChange { add, remove })
        }
        (add, remove) => Err(add.err().into_iter().chain(remove.err()).collect()),
    }
}

/// The names listed in `groups` on `POST /trans` (absent or `null`: none).
pub fn group_names(body: &Map<String, Value>) -> Result<Vec<String>, String> {
    member_list(body, "groups")
}

/// An optional array of strings (absent or `null`: empty). PopBox iterated a string value
/// character by character; here anything but an array of strings is refused.
fn member_list(body: &Map<String, Value>, field: &str) -> Result<Vec<String>, String> {
    let items = match body.get(field) {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(other) => return Err(format!("invalid {field}: expected an array, got {other}")),
    };
    items
        .iter()
        .map(|item| match item {
            Value::String(s) if !s.is_empty() => Ok(s.clone()),
            other => Err(format!(
                "invalid {field}: every element must be a non-empty string, got {other}"
            )),
        })
        .collect()
}

/// `body` with `members` appended to its `queue` (made an array if absent or null), as
/// `{"id": …}` elements. A `queue` that is not an array is left for validation to report.
pub fn with_queues(body: &Map<String, Value>, members: Vec<String>) -> Map<String, Value> {
    let mut body = body.clone();
    let queue = body
        .entry("queue")
        .or_insert_with(|| Value::Array(Vec::new()));
    if queue.is_null() {
        *queue = Value::Array(Vec::new());
    }
    if let Value::Array(queue) = queue {
        queue.extend(
            members
                .into_iter()
                .map(|id| serde_json::json!({ "id": id })),
        );
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn new_group_reports_every_missing_field() {
        assert_eq!(
            validate_new_group(&obj(json!({}))),
            Err(vec!["missing name".to_owned(), "missing queues".to_owned()])
        );
        assert_eq!(
            validate_new_group(&obj(json!({"name": "", "queues": []}))),
            Err(vec!["missing name".to_owned(), "missing queues".to_owned()])
        );
        assert_eq!(
            validate_new_group(&obj(json!({"name": "g", "queues": ["a", "b"]}))),
            Ok(NewGroup {
                name: "g".into(),
                queues: vec!["a".into(), "b".into()]
            })
        );
    }

    #[test]
    fn non_arrays_and_non_strings_are_refused() {
        let errors = validate_new_group(&obj(json!({"name": "g", "queues": "abc"}))).unwrap_err();
        assert!(errors[0].starts_with("invalid queues"), "{errors:?}");
        let errors = validate_new_group(&obj(json!({"name": 5, "queues": [1]}))).unwrap_err();
        assert_eq!(errors.len(), 2, "{errors:?}");
    }

    #[test]
    fn a_change_removes_what_it_both_adds_and_removes() {
        let change = validate_group_change(&obj(
            json!({"queuesToAdd": ["a", "b"], "queuesToRemove": ["b"]}),
        ))
        .unwrap();
        assert_eq!(change.add, ["a"]);
        assert_eq!(change.remove, ["b"]);
        assert!(validate_group_change(&obj(json!({}))).unwrap().is_empty());
    }
}
