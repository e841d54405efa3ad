//! `GET /admin/`: the operators' dashboard, one page whose script reads the admin API every few
//! seconds. Its files are compiled into the binary (no CDN, no build step) and hold no data, so
//! they are served to anyone; the data routes keep their rules.
//!
//! With `admin.token`, a person signs in once: `POST /admin/login` with the token (a form) sets
//! it as an `HttpOnly`, `SameSite=Strict` cookie, which the admin routes accept as they accept
//! the bearer header; `POST /admin/logout` clears it. `GET /admin/session` tells the page
//! whether it may read the API, without the failed requests a browser would log.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, ContentType, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;

use super::super::response::{ApiError, Reply, json};
use super::Refusal;

/// The cookie a signed-in browser carries.
pub const COOKIE: &str = "relaybox_admin";

/// The dashboard's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asset {
    Page,
    Script,
    Style,
}

impl Asset {
    /// The asset at `/admin/<name>` (`""` is the page).
    pub fn named(name: &str) -> Option<Self> {
        match name {
            "" => Some(Asset::Page),
            "dashboard.js" => Some(Asset::Script),
            "dashboard.css" => Some(Asset::Style),
            _ => None,
        }
    }
}

pub fn asset(asset: Asset) -> HttpResponse {
    let (body, kind) = match asset {
        Asset::Page => (include_str!("index.html"), "text/html; charset=utf-8"),
        Asset::Script => (
            include_str!("dashboard.js"),
            "text/javascript; charset=utf-8",
        ),
        Asset::Style => (include_str!("dashboard.css"), "text/css; charset=utf-8"),
    };
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, HeaderValue::from_static(kind)))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        // Only its own files and the node's API: nothing injected can call out.
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; img-src 'self' data:",
        ))
        .body(body)
}

/// Whether `req` carries `token`, as a bearer header or the sign-in cookie.
pub fn carries(req: &HttpRequest, token: &str) -> bool {
    let bearer = (req.headers().get(header::AUTHORIZATION))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let cookie = req.cookie(COOKIE);
    let given = bearer.or(cookie.as_ref().map(|c| c.value()));
    given.is_some_and(|given| bool::from(given.as_bytes().ct_eq(token.as_bytes())))
}

/// `GET /admin/session`: whether this browser may read the admin API, and if not, why.
pub fn session(refusal: Option<Refusal>, token_required: bool) -> HttpResponse {
    json(&json!({
        "allowed": refusal.is_none(),
        "token_required": token_required,
        "reason": refusal.map(|r| r.reason()),
    }))
}

#[derive(Deserialize)]
struct SignIn {
    token: String,
}

/// `POST /admin/login` (a form, `token=…`): with the right token, the cookie and back to the
/// page; else back to the page, saying it failed. Without `admin.token` there is nothing to
/// sign in to (`409`).
pub fn login(req: &HttpRequest, body: &[u8], token: Option<&str>) -> Reply {
    let Some(token) = token else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            vec!["this node has no admin.token: its admin routes answer loopback clients".into()],
        ));
    };
    let form: SignIn = serde_urlencoded::from_bytes(body)
        .map_err(|e| ApiError::bad_request(format!("expected a form with token=…: {e}")))?;
    if !bool::from(form.token.as_bytes().ct_eq(token.as_bytes())) {
        return Ok(back("/admin/?failed"));
    }
    let cookie = Cookie::build(COOKIE, token)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(req.app_config().secure())
        .finish();
    let mut answer = back("/admin/");
    answer
        .add_cookie(&cookie)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(answer)
}

/// `POST /admin/logout`: the cookie cleared.
pub fn logout() -> HttpResponse {
    let mut cookie = Cookie::build(COOKIE, "").path("/").finish();
    cookie.make_removal();
    let mut answer = json(&json!({"signed_in": false}));
    let _ = answer.add_cookie(&cookie);
    answer
}

/// `303 See Other` to `to`.
fn back(to: &'static str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to))
        .content_type(ContentType::plaintext())
        .finish()
}
