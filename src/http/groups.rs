//! Handlers of `/group`: named lists of queues that `POST /trans` can address with `groups`.

use actix_web::http::StatusCode;
use serde_json::json;

use super::request::Body;
use super::response::{ApiError, Reply, json};
use crate::inbox::Inbox;
use crate::inbox::groups::{validate_group_change, validate_new_group};

/// `POST /group`: creates the group or adds to it.
pub async fn create(inbox: &Inbox, body: Body) -> Reply {
    let group = validate_new_group(&body.into_object())
        .map_err(|errors| ApiError::new(StatusCode::BAD_REQUEST, errors))?;
    inbox.add_to_group(group).await?;
    Ok(json(&json!({ "ok": "group stored" })))
}

/// `GET /group/<name>`: an unknown group has no queues.
pub async fn get(inbox: &Inbox, name: String) -> Reply {
    let queues = inbox.group_members(&name).await?;
    Ok(json(&json!({ "name": name, "queues": queues })))
}

/// `PUT /group/<name>`: `queuesToAdd`, `queuesToRemove`.
pub async fn change(inbox: &Inbox, body: Body, name: String) -> Reply {
    let change = validate_group_change(&body.into_object())
        .map_err(|errors| ApiError::new(StatusCode::BAD_REQUEST, errors))?;
    inbox.change_group(&name, change).await?;
    Ok(json(&json!({ "ok": "group modified" })))
}

/// `DELETE /group/<name>`.
pub async fn delete(inbox: &Inbox, name: String) -> Reply {
    inbox.delete_group(&name).await?;
    Ok(json(&json!({ "ok": format!("Group {name} removed") })))
}
