//! The operators' operations: probes, metrics, this document, and `/admin/…` (which answer
//! only with `admin.token` as a bearer token or the dashboard's cookie, or else to loopback
//! clients).

use serde_json::json;

use super::{Op, schema};

/// The admin routes' refusals, on top of the usual errors.
fn guarded(op: Op) -> Op {
    op.json(
        "401",
        "Without the admin token (Bearer challenge).",
        schema("Errors"),
    )
    .json(
        "403",
        "Without a token set, from a client not on loopback.",
        schema("Errors"),
    )
    .errors()
}

fn paged(op: Op) -> Op {
    op.query(
        "limit",
        json!({"type": "integer", "minimum": 1, "maximum": 1000}),
        "Most items.",
    )
    .query(
        "after",
        json!({"type": "string"}),
        "The previous page's `next`.",
    )
}

fn object(about: &'static str) -> (&'static str, serde_json::Value) {
    (about, json!({"type": "object"}))
}

pub fn operations() -> Vec<Op> {
    [probes(), dashboard(), admin()].concat()
}

fn probes() -> Vec<Op> {
    vec![
        Op::get("health", "/health", "The process is alive").json(
            "200",
            "Alive.",
            json!({"type": "object"}),
        ),
        Op::get("ready", "/ready", "The node serves and its store answers")
            .json("200", "Ready.", json!({"type": "object"}))
            .json(
                "503",
                "Not ready: `reason` says why (standby, promoting, fenced, store down).",
                json!({"type": "object"}),
            ),
        Op::get("openapi", "/openapi.json", "This document").json(
            "200",
            "OpenAPI 3.1.",
            json!({"type": "object"}),
        ),
        guarded(Op::get("metrics", "/metrics", "Prometheus metrics").media(
            "200",
            "Prometheus's text format, version 0.0.4.",
            "text/plain",
        )),
    ]
}

fn dashboard() -> Vec<Op> {
    vec![
        Op::get("admin_dashboard", "/admin/", "The dashboard (HTML)")
            .media("200", "The page; its script reads the admin API.", "text/html"),
        Op::get("admin_dashboard_script", "/admin/dashboard.js", "The dashboard's script")
            .media("200", "JavaScript.", "text/javascript"),
        Op::get("admin_dashboard_style", "/admin/dashboard.css", "The dashboard's style")
            .media("200", "CSS.", "text/css"),
        Op::get("admin_session", "/admin/session", "May this browser read the admin API?")
            .json("200", "`allowed`, `token_required`, `reason`.", json!({"type": "object"})),
        Op::post("admin_login", "/admin/login", "Sign a browser in with the admin token")
            .form_body(json!({"type": "object", "required": ["token"], "properties": {"token": {"type": "string"}}}))
            .bare("303", "Back to the dashboard, with the cookie (or `?failed`).")
            .json("409", "The node has no admin.token.", schema("Errors"))
            .errors(),
        Op::post("admin_logout", "/admin/logout", "Sign a browser out")
            .json("200", "The cookie cleared.", json!({"type": "object"})),
    ]
}

fn admin() -> Vec<Op> {
    let admin_get = |id: &str, path: &str, summary: &'static str, answer: &'static str| {
        let (about, shape) = object(answer);
        guarded(Op::get(id, path, summary).json("200", about, shape))
    };
    vec![
        admin_get("admin_status", "/admin/status", "The node's status", "Version, store, role, process, totals, connections."),
        admin_get("admin_config", "/admin/config", "The effective settings", "Secrets redacted."),
        admin_get("admin_ranges", "/admin/ranges", "The customer-ID pool and blocks", "The pool, its master, each node's blocks."),
        admin_get("admin_regions", "/admin/regions", "The other regions known", "Each with its failed calls."),
        guarded(
            Op::get("admin_stats", "/admin/stats", "The region's statistics")
                .query("period", json!({"type": "string"}), "Which archive (e.g. `1h`).")
                .json("200", "Samples by node.", json!({"type": "object"})),
        ),
        guarded(
            Op::get("admin_chart", "/admin/charts/{file}", "A chart: <type>.<period>.svg")
                .query("size", json!({"type": "string", "enum": ["S", "M", "L"]}), "Its size.")
                .media("200", "The chart.", "image/svg+xml")
                .json("404", "No such chart.", schema("Errors")),
        ),
        guarded(
            Op::post("admin_alert_test", "/admin/alerts/test", "Mail a test alert")
                .json("200", "Sent.", json!({"type": "object"}))
                .json("409", "No [alerts] configured.", schema("Errors"))
                .json("502", "The mail server refused it.", schema("Errors")),
        ),
        guarded(Op::post("admin_drain", "/admin/drain", "Answer every long poll now, hold none").json("200", "`draining`.", json!({"type": "object"}))),
        guarded(Op::delete("admin_undrain", "/admin/drain", "Hold long polls again").json("200", "`draining`.", json!({"type": "object"}))),
        admin_get("admin_log", "/admin/log", "The log filter", "`filter`."),
        guarded(
            Op::put("admin_log_change", "/admin/log", "Change the log filter")
                .json_body(json!({"type": "object", "required": ["filter"], "properties": {"filter": {"type": "string"}}}))
                .json("200", "`filter`.", json!({"type": "object"})),
        ),
        guarded(paged(Op::get("admin_connections", "/admin/connections", "The requests held open"))
            .json("200", "`connections`, `next`.", json!({"type": "object"}))),
        guarded(paged(Op::get("admin_desktops", "/admin/desktops", "The desktops attached here"))
            .json("200", "`desktops`, `next`.", json!({"type": "object"}))),
        guarded(
            Op::get("admin_queues", "/admin/queues", "The deepest queues")
                .query("top", json!({"type": "integer", "minimum": 1, "maximum": 1000}), "How many.")
                .query("budget", json!({"type": "integer", "minimum": 1, "maximum": 100000}), "Most queues looked at.")
                .json("200", "`queues`, `looked_at`, `complete`.", json!({"type": "object"})),
        ),
        admin_get("admin_queue", "/admin/queues/{name}", "One queue", "Depth, waiters, last pop, oldest message."),
        guarded(
            Op::delete("admin_queue_purge", "/admin/queues/{name}", "Empty a queue")
                .json("200", "`purged`: how many entries it had.", json!({"type": "object"})),
        ),
    ]
}
