//! What every request meets first: the node's connection count, its role, and — once it
//! serves — the [`AppState`] the handlers use. A standby's requests that need the store
//! promote it (see [`crate::replication`]) and wait for it to serve; `GET /health` and
//! `GET /ready` are answered here whatever the role.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};
use serde_json::json;
use tokio::sync::{Notify, OnceCell};

use super::connections::Connections;
use super::response::{ApiError, json};
use super::routes::Route;
use super::{AppState, Listener, admin};
use crate::config::AdminSettings;
use crate::replication::Replication;

pub struct Front {
    pub connections: Arc<Connections>,
    pub replication: Replication,
    admin: AdminSettings,
    state: OnceCell<AppState>,
    /// Told when `state` is set.
    serving: Notify,
}

impl Front {
    pub fn new(
        connections: Arc<Connections>,
        replication: Replication,
        admin: AdminSettings,
    ) -> Self {
        Front {
            connections,
            replication,
            admin,
            state: OnceCell::new(),
            serving: Notify::new(),
        }
    }

    /// Whether `route` is served on `listener`: the admin routes on the admin listener when
    /// there is one, everything else on the public one.
    pub fn serves(&self, route: &Route, listener: Listener) -> bool {
        match (route.is_admin(), self.admin.listen.is_some()) {
            (true, true) => listener == Listener::Admin,
            _ => listener == Listener::Public,
        }
    }

    /// The answer to `req` if it may not use `route`: the admin routes' rules
    /// ([`admin::refusal`]), except for the dashboard's files and sign-in, which hold no data.
    pub fn refusal(&self, route: &Route, req: &HttpRequest) -> Option<HttpResponse> {
        (route.is_admin() && !route.is_open())
            .then(|| self.admission(req))
            .flatten()
            .map(admin::Refusal::answer)
    }

    /// Why `req` may not use the admin routes, if it may not.
    pub fn admission(&self, req: &HttpRequest) -> Option<admin::Refusal> {
        admin::refusal(req, self.admin_token())
    }

    pub fn admin_token(&self) -> Option<&str> {
        self.admin.token.as_deref()
    }

    /// The node serves from now on, with `state`.
    pub fn serve(&self, state: AppState) {
        if self.state.set(state).is_ok() {
            self.serving.notify_waiters();
        }
    }

    /// What the node serves with, once it does.
    pub fn serving(&self) -> Option<&AppState> {
        self.state.get()
    }

    /// What the node serves with, waiting for it (and, if `promote`, promoting a standby) as
    /// the node's role allows; else the answer that says why not.
    pub async fn state(&self, promote: bool) -> Result<&AppState, HttpResponse> {
        if let Some(state) = self.state.get() {
            return Ok(state);
        }
        let refusal = self.replication.state().refusal();
        if !promote {
            let reason = refusal.unwrap_or_else(|| "starting".to_owned());
            return Err(unavailable(&reason));
        }
        // Promoted, the node starts (its store, shards, …), then serves: both bounded, so that
        // a start that fails leaves no request waiting for ever.
        let serving = async {
            self.replication.serve().await?;
            loop {
                let started = self.serving.notified();
                if let Some(state) = self.state.get() {
                    return Ok(state);
                }
                started.await;
            }
        };
        match tokio::time::timeout(self.replication.patience(), serving).await {
            Ok(served) => served.map_err(|e: String| unavailable(&e)),
            Err(_) => {
                let refusal = self.replication.state().refusal();
                let reason = refusal.unwrap_or_else(|| "promoted, but not serving yet".to_owned());
                Err(unavailable(&reason))
            }
        }
    }

    /// `GET /health`: the process is alive. Touches nothing.
    pub fn health(&self) -> HttpResponse {
        json(&json!({"status": "alive"}))
    }

    /// `GET /ready`: `200` only for a serving primary whose store answers; else `503` with the
    /// reason, and the replication state either way.
    pub async fn ready(&self) -> HttpResponse {
        let replication = self.replication.state();
        let reason = match (replication.refusal(), self.state.get()) {
            (Some(refusal), _) => Some(refusal),
            (None, None) => Some("starting".to_owned()),
            (None, Some(state)) => state.store.ping().await.err().map(|e| e.to_string()),
        };
        let body = json!({"ready": reason.is_none(), "reason": reason, "replication": replication});
        match reason {
            None => json(&body),
            Some(_) => {
                let mut answer = json(&body);
                *answer.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                answer
            }
        }
    }
}

/// `503` naming `reason`, to be tried again shortly.
fn unavailable(reason: &str) -> HttpResponse {
    let mut answer = actix_web::ResponseError::error_response(&ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        vec![reason.to_owned()],
    ));
    answer
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    answer
}
