//! The schemas the operations share, as JSON Schema (OpenAPI 3.1 uses it as it is).

use serde_json::{Value, json};
use utoipa::openapi::ComponentsBuilder;

use super::typed;

/// A reference to the shared schema `name`.
pub fn schema(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

pub fn components(mut components: ComponentsBuilder) -> ComponentsBuilder {
    for (name, schema) in shared() {
        components = components.schema(name, typed(schema));
    }
    components
}

/// Any JSON value (utoipa's model has no bare `{}`).
pub fn any() -> Value {
    json!({"type": ["string", "number", "integer", "boolean", "object", "array", "null"]})
}

fn shared() -> Vec<(&'static str, Value)> {
    let strings = json!({"type": "array", "items": {"type": "string"}});
    vec![
        (
            "Errors",
            json!({
                "type": "object",
                "required": ["errors"],
                "properties": {"errors": strings},
            }),
        ),
        (
            "Ok",
            json!({
                "type": "object",
                "required": ["ok"],
                "properties": {"ok": {"type": "boolean"}, "data": any()},
            }),
        ),
        (
            "Popped",
            json!({
                "type": "object",
                "required": ["ok", "data", "transactions"],
                "properties": {
                    "ok": {"type": "boolean"},
                    "data": {"type": "array"},
                    "transactions": strings,
                },
            }),
        ),
        (
            "NewTransaction",
            json!({
                "type": "object",
                "description": "A message for one or more queues; any other field is kept \
                                in the transaction's metadata.",
                "required": ["payload", "priority", "queue"],
                "properties": {
                    "payload": any(),
                    "priority": {"type": "string", "enum": ["H", "L"]},
                    "queue": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["id"],
                            "properties": {"id": {"type": "string"}},
                        },
                    },
                    "expirationDate": {"type": "integer", "description": "Unix seconds."},
                    "callback": {"type": "string", "description": "Notified of each delivery."},
                    "groups": strings,
                    "delay": {"type": "integer", "description": "Seconds before the push."},
                },
            }),
        ),
        (
            "Group",
            json!({
                "type": "object",
                "required": ["name", "queues"],
                "properties": {"name": {"type": "string", "minLength": 1}, "queues": strings},
            }),
        ),
    ]
}
