//! PopBox's route table. Literal segments match case-insensitively, one trailing slash is
//! tolerated, and parameter segments are percent-decoded and keep their case (`/QUEUE/Q1/peek/`
//! peeks queue `Q1`).

use actix_web::http::Method;

use super::admin::dashboard::Asset;
use percent_encoding::percent_decode_str;

/// A request the node knows how to serve, with its path parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// A device-relay route (My Notes protocol).
    Relay(RelayRoute),
    DeployInfo,
    /// `GET /health`: the process is alive.
    Health,
    /// `GET /ready`: the node serves, and its store answers.
    Ready,
    /// `GET /metrics`: the node's figures in Prometheus's text format.
    Metrics,
    /// `GET /openapi.json`: the whole API, described.
    OpenApi,
    /// `GET /admin/ranges`: the customer-ID pool and every node's blocks.
    AdminRanges,
    /// `GET /admin/stats`: the region's archived statistics.
    AdminStats,
    /// `GET /admin/status`: this node, its store, role, process and connections.
    AdminStatus,
    /// `GET /admin/config`: the effective settings, secrets redacted.
    AdminConfig,
    /// `GET /admin/regions`: the other regions known, and their failed calls.
    AdminRegions,
    /// `POST /admin/drain` (`on`), `DELETE /admin/drain`: stop or resume taking long polls.
    AdminDrain {
        on: bool,
    },
    /// `GET /admin/log`: the log filter; `PUT` (`change`) sets it.
    AdminLog {
        change: bool,
    },
    /// `GET /admin/charts/<type>.<period>.svg`: a chart of them.
    AdminChart {
        file: String,
    },
    /// `POST /admin/alerts/test`: mails a test alert.
    AdminAlertTest,
    /// `GET /admin/`, `/admin/dashboard.js`, `/admin/dashboard.css`: the dashboard's files.
    AdminDashboard {
        asset: Asset,
    },
    /// `GET /admin/session`: whether this browser may read the admin API.
    AdminSession,
    /// `POST /admin/login`: signs a browser in with the token (a form).
    AdminLogin,
    /// `POST /admin/logout`: signs it out.
    AdminLogout,
    /// `GET /admin/connections`: the requests held open, paged.
    AdminConnections,
    /// `GET /admin/desktops`: the desktops whose sessions live here, paged.
    AdminDesktops,
    /// `GET /admin/queues`: the deepest queues.
    AdminQueues,
    /// `GET /admin/queues/<name>` one queue; `DELETE` (`purge`) empties it.
    AdminQueue {
        name: String,
        purge: bool,
    },
    /// `POST /trans`, or `/org/<org>/trans`.
    Provision {
        org: Option<String>,
    },
    GetTransaction {
        org: Option<String>,
        id: String,
    },
    UpdateTransaction {
        org: Option<String>,
        id: String,
    },
    DeleteTransaction {
        id: String,
    },
    TransactionState {
        id: String,
        state: Option<String>,
    },
    /// `GET /trans/<id>/history` (no org variant).
    TransactionHistory {
        id: String,
    },
    Pop {
        org: Option<String>,
        queue: String,
    },
    /// `POST /queue/<id>/poprel` (no org variant).
    PopReliable {
        queue: String,
    },
    Subscribe {
        org: Option<String>,
        queue: String,
    },
    /// `POST /queue/<id>/subscriberel` (no org variant).
    SubscribeReliable {
        queue: String,
    },
    /// `GET /queue/<id>/events`: Server-Sent Events.
    Events {
        org: Option<String>,
        queue: String,
    },
    /// `GET /queue/<id>/ws`: WebSocket.
    WebSocket {
        org: Option<String>,
        queue: String,
    },
    /// `POST /queue/<id>/ack` (no org variant).
    Ack {
        queue: String,
    },
    Peek {
        org: Option<String>,
        queue: String,
    },
    QueueState {
        org: Option<String>,
        queue: String,
    },
    /// `POST /queue`: create a secure queue (HTTPS listener only).
    CreateSecureQueue {
        org: Option<String>,
    },
    /// `POST /group` (the org variants ignore the org, as in PopBox).
    CreateGroup,
    GetGroup {
        name: String,
    },
    ChangeGroup {
        name: String,
    },
    DeleteGroup {
        name: String,
    },
}

/// The device relay's routes: matched exactly as the original did (case-sensitive; any text
/// after `/agent/`, `/agentreply/` and `/client/`, which only serves to pin a request to an
/// instance), POST only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayRoute {
    Ping,
    Connect,
    /// `/client`: where is the desktop?
    Locate,
    /// `/client/<x>`: relay a request to the desktop.
    Client,
    /// `/agent/<x>`: a desktop's long poll.
    Agent,
    /// `/agentreply/<x>`: a desktop's reply.
    AgentReply,
    /// `/hello[/<x>]`: another region's node greets this region (node to node).
    Hello,
    /// `/connected[/<x>]`: another region has a desktop attached (node to node).
    Connected,
    /// `/find[/<x>]`: does this region have a desktop attached? (node to node).
    Find,
    /// `/getuniversalid`: a new customer ID for a desktop.
    GetUniversalId,
    /// `/range[/<x>]`: a block of customer IDs for another node (node to node).
    Range,
    /// A relay path with a method other than POST.
    NotPost,
}

impl RelayRoute {
    fn parse(method: &Method, path: &str) -> Option<Self> {
        let route = match path {
            "/ping" => RelayRoute::Ping,
            "/connect" => RelayRoute::Connect,
            "/getuniversalid" => RelayRoute::GetUniversalId,
            "/client" => RelayRoute::Locate,
            _ if path.starts_with("/client/") => RelayRoute::Client,
            _ if path.starts_with("/agent/") => RelayRoute::Agent,
            _ if path.starts_with("/agentreply/") => RelayRoute::AgentReply,
            _ if with_suffix(path, "/hello") => RelayRoute::Hello,
            _ if with_suffix(path, "/connected") => RelayRoute::Connected,
            _ if with_suffix(path, "/find") => RelayRoute::Find,
            _ if with_suffix(path, "/range") => RelayRoute::Range,
            _ => return None,
        };
        Some(if method == Method::POST {
            route
        } else {
            RelayRoute::NotPost
        })
    }
}

/// `path` is `prefix` or `prefix/<anything>` (the instance-level form of a node-to-node call).
fn with_suffix(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// A path parameter that does not decode to UTF-8.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("path segment {0:?} is not valid percent-encoded UTF-8")]
pub struct BadSegment(pub String);

impl Route {
    /// Whether a request on this route may be held open, waiting for something to happen (a
    /// message, a desktop's poll, an app's request): what a node out of descriptors refuses.
    pub fn holds(&self) -> bool {
        matches!(
            self,
            Route::Pop { .. }
                | Route::PopReliable { .. }
                | Route::Subscribe { .. }
                | Route::SubscribeReliable { .. }
                | Route::Events { .. }
                | Route::WebSocket { .. }
                | Route::Relay(RelayRoute::Agent | RelayRoute::Client)
        )
    }

    /// Whether this is one of the operators' routes (`/admin/…`, `/metrics`).
    pub fn is_admin(&self) -> bool {
        matches!(
            self,
            Route::Metrics
                | Route::AdminRanges
                | Route::AdminStats
                | Route::AdminStatus
                | Route::AdminConfig
                | Route::AdminRegions
                | Route::AdminDrain { .. }
                | Route::AdminLog { .. }
                | Route::AdminChart { .. }
                | Route::AdminAlertTest
                | Route::AdminDashboard { .. }
                | Route::AdminSession
                | Route::AdminLogin
                | Route::AdminLogout
                | Route::AdminConnections
                | Route::AdminDesktops
                | Route::AdminQueues
                | Route::AdminQueue { .. }
        )
    }

    /// Whether this admin route is open to anyone: the dashboard's files and signing in and
    /// out, which hold no data.
    pub fn is_open(&self) -> bool {
        matches!(
            self,
            Route::AdminDashboard { .. }
                | Route::AdminSession
                | Route::AdminLogin
                | Route::AdminLogout
        )
    }

    /// Whether a request on this route promotes a standby: every route that needs the store,
    /// not the probes (`/`, `/health`, `/ready`), the API's description nor the operators'.
    pub fn promotes(&self) -> bool {
        !self.is_admin()
            && !matches!(
                self,
                Route::DeployInfo | Route::Health | Route::Ready | Route::OpenApi
            )
    }

    /// `Ok(None)` when no route matches (the caller answers 404).
    pub fn parse(method: &Method, path: &str) -> Result<Option<Route>, BadSegment> {
        if let Some(relay) = RelayRoute::parse(method, path) {
            return Ok(Some(Route::Relay(relay)));
        }
        let path = path.strip_prefix('/').unwrap_or(path);
        let path = path.strip_suffix('/').unwrap_or(path);
        let segments: Vec<&str> = if path.is_empty() {
            Vec::new()
        } else {
            path.split('/').collect()
        };
        // No route has an empty segment (`/queue//peek`, `/trans//`).
        if segments.iter().any(|s| s.is_empty()) {
            return Ok(None);
        }

        let (org, rest) = match segments.as_slice() {
            [o, org, rest @ ..] if is(o, "org") && !rest.is_empty() => (Some(param(org)?), rest),
            _ => (None, segments.as_slice()),
        };
        let route = match rest {
            [] if org.is_none() && method == Method::GET => Some(Route::DeployInfo),
            [h] if org.is_none() && method == Method::GET && is(h, "health") => Some(Route::Health),
            [r] if org.is_none() && method == Method::GET && is(r, "ready") => Some(Route::Ready),
            [m] if org.is_none() && method == Method::GET && is(m, "metrics") => {
                Some(Route::Metrics)
            }
            [o] if org.is_none() && method == Method::GET && is(o, "openapi.json") => {
                Some(Route::OpenApi)
            }
            [a, rest @ ..] if org.is_none() && is(a, "admin") => Route::admin(method, rest)?,
            [t, rest @ ..] if is(t, "trans") => Route::transactions(method, org, rest)?,
            [q, rest @ ..] if is(q, "queue") => Route::queues(method, org, rest)?,
            [g, rest @ ..] if is(g, "group") => Route::groups(method, rest)?,
            _ => None,
        };
        Ok(route)
    }

    /// `/admin/…`: the operators' routes.
    fn admin(m: &Method, rest: &[&str]) -> Result<Option<Route>, BadSegment> {
        let get = |route| (m == Method::GET).then_some(route);
        let post = |route| (m == Method::POST).then_some(route);
        Ok(match rest {
            [] => get(Route::AdminDashboard { asset: Asset::Page }),
            [s] if is(s, "session") => get(Route::AdminSession),
            [l] if is(l, "login") => post(Route::AdminLogin),
            [l] if is(l, "logout") => post(Route::AdminLogout),
            [file] if Asset::named(file).is_some() => get(Route::AdminDashboard {
                asset: Asset::named(file).expect("just found"),
            }),
            [r] if is(r, "ranges") => get(Route::AdminRanges),
            [s] if is(s, "stats") => get(Route::AdminStats),
            [s] if is(s, "status") => get(Route::AdminStatus),
            [c] if is(c, "config") => get(Route::AdminConfig),
            [r] if is(r, "regions") => get(Route::AdminRegions),
            [c] if is(c, "connections") => get(Route::AdminConnections),
            [d] if is(d, "desktops") => get(Route::AdminDesktops),
            [q] if is(q, "queues") => get(Route::AdminQueues),
            [l] if is(l, "log") => match *m {
                Method::GET => Some(Route::AdminLog { change: false }),
                Method::PUT => Some(Route::AdminLog { change: true }),
                _ => None,
            },
            [d] if is(d, "drain") => match *m {
                Method::POST => Some(Route::AdminDrain { on: true }),
                Method::DELETE => Some(Route::AdminDrain { on: false }),
                _ => None,
            },
            [q, name] if is(q, "queues") => {
                let name = param(name)?;
                match *m {
                    Method::GET => Some(Route::AdminQueue { name, purge: false }),
                    Method::DELETE => Some(Route::AdminQueue { name, purge: true }),
                    _ => None,
                }
            }
            [al, t] if is(al, "alerts") && is(t, "test") => post(Route::AdminAlertTest),
            [c, file] if is(c, "charts") => get(Route::AdminChart { file: param(file)? }),
            _ => None,
        })
    }

    /// `/trans[/…]`, org variants included where PopBox has them.
    fn transactions(
        m: &Method,
        org: Option<String>,
        rest: &[&str],
    ) -> Result<Option<Route>, BadSegment> {
        let own = org.is_none();
        Ok(Some(match rest {
            [] if m == Method::POST => Route::Provision { org },
            [id] if m == Method::GET => Route::GetTransaction {
                org,
                id: param(id)?,
            },
            [id] if m == Method::PUT => Route::UpdateTransaction {
                org,
                id: param(id)?,
            },
            [id] if m == Method::DELETE && own => Route::DeleteTransaction { id: param(id)? },
            [id, s] if is(s, "state") && m == Method::GET && own => Route::TransactionState {
                id: param(id)?,
                state: None,
            },
            [id, h] if is(h, "history") && m == Method::GET && own => {
                Route::TransactionHistory { id: param(id)? }
            }
            [id, s, state] if is(s, "state") && m == Method::GET && own => {
                Route::TransactionState {
                    id: param(id)?,
                    state: Some(param(state)?),
                }
            }
            _ => return Ok(None),
        }))
    }

    /// `/queue[/…]`, org variants included where PopBox has them.
    fn queues(m: &Method, org: Option<String>, rest: &[&str]) -> Result<Option<Route>, BadSegment> {
        let own = org.is_none();
        let (id, action) = match rest {
            [] if m == Method::POST => return Ok(Some(Route::CreateSecureQueue { org })),
            [id] if m == Method::GET => {
                let queue = param(id)?;
                return Ok(Some(Route::QueueState { org, queue }));
            }
            [id, action] => (*id, action.to_ascii_lowercase()),
            _ => return Ok(None),
        };
        // The id is decoded only for a route that exists: anything else is a 404, not a 400.
        let queue = || param(id);
        Ok(Some(match (action.as_str(), m) {
            ("pop", &Method::POST) => Route::Pop {
                org,
                queue: queue()?,
            },
            ("poprel", &Method::POST) if own => Route::PopReliable { queue: queue()? },
            ("subscribe", &Method::POST) => Route::Subscribe {
                org,
                queue: queue()?,
            },
            ("subscriberel", &Method::POST) if own => Route::SubscribeReliable { queue: queue()? },
            ("events", &Method::GET) => Route::Events {
                org,
                queue: queue()?,
            },
            ("ws", &Method::GET) => Route::WebSocket {
                org,
                queue: queue()?,
            },
            ("ack", &Method::POST) if own => Route::Ack { queue: queue()? },
            ("peek", &Method::GET) => Route::Peek {
                org,
                queue: queue()?,
            },
            _ => return Ok(None),
        }))
    }

    /// `/group[/<name>]` (the org variants ignore the org, as in PopBox).
    fn groups(m: &Method, rest: &[&str]) -> Result<Option<Route>, BadSegment> {
        Ok(match rest {
            [] if m == Method::POST => Some(Route::CreateGroup),
            [name] => {
                let name = param(name)?;
                match *m {
                    Method::GET => Some(Route::GetGroup { name }),
                    Method::PUT => Some(Route::ChangeGroup { name }),
                    Method::DELETE => Some(Route::DeleteGroup { name }),
                    _ => None,
                }
            }
            _ => None,
        })
    }
}

fn is(segment: &str, literal: &str) -> bool {
    segment.eq_ignore_ascii_case(literal)
}

/// A parameter segment, percent-decoded.
fn param(segment: &str) -> Result<String, BadSegment> {
    percent_decode_str(segment)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| BadSegment(segment.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(method: Method, path: &str) -> Option<Route> {
        Route::parse(&method, path).unwrap()
    }

    #[test]
    fn literals_ignore_case_and_one_trailing_slash() {
        assert_eq!(
            parse(Method::GET, "/QUEUE/Q1/Peek/"),
            Some(Route::Peek {
                org: None,
                queue: "Q1".into()
            })
        );
        assert_eq!(
            parse(Method::POST, "/trans/"),
            Some(Route::Provision { org: None })
        );
        assert_eq!(parse(Method::POST, "/trans//"), None);
        assert_eq!(parse(Method::GET, "/"), Some(Route::DeployInfo));
    }

    #[test]
    fn org_variants_exist_only_where_popbox_has_them() {
        assert_eq!(
            parse(Method::POST, "/org/acme/queue/q/pop"),
            Some(Route::Pop {
                org: Some("acme".into()),
                queue: "q".into()
            })
        );
        assert_eq!(
            parse(Method::POST, "/org/acme/trans"),
            Some(Route::Provision {
                org: Some("acme".into())
            })
        );
        assert_eq!(parse(Method::DELETE, "/org/acme/trans/x"), None);
        assert_eq!(parse(Method::GET, "/org/acme/trans/x/state"), None);
        assert_eq!(parse(Method::GET, "/org/acme"), None);
        assert_eq!(
            parse(Method::DELETE, "/org/acme/group/g1"),
            Some(Route::DeleteGroup { name: "g1".into() })
        );
        assert_eq!(parse(Method::POST, "/group/g1"), None);
    }

    #[test]
    fn relay_routes_take_any_suffix_and_only_post() {
        let relay = |m: Method, p: &str| match parse(m, p) {
            Some(Route::Relay(r)) => Some(r),
            _ => None,
        };
        assert_eq!(relay(Method::POST, "/agent/8081"), Some(RelayRoute::Agent));
        assert_eq!(
            relay(Method::POST, "/agentreply/8081/x"),
            Some(RelayRoute::AgentReply)
        );
        assert_eq!(relay(Method::POST, "/client/"), Some(RelayRoute::Client));
        assert_eq!(relay(Method::POST, "/client"), Some(RelayRoute::Locate));
        assert_eq!(relay(Method::GET, "/ping"), Some(RelayRoute::NotPost));
        assert_eq!(relay(Method::POST, "/PING"), None);
        assert_eq!(relay(Method::POST, "/agent"), None);
        assert_eq!(relay(Method::POST, "/hello"), Some(RelayRoute::Hello));
        assert_eq!(relay(Method::POST, "/find/8081"), Some(RelayRoute::Find));
        assert_eq!(
            relay(Method::POST, "/connected/8081"),
            Some(RelayRoute::Connected)
        );
        assert_eq!(relay(Method::POST, "/finder"), None);
        assert_eq!(relay(Method::POST, "/range/8081"), Some(RelayRoute::Range));
        assert_eq!(
            relay(Method::POST, "/getuniversalid"),
            Some(RelayRoute::GetUniversalId)
        );
        assert_eq!(relay(Method::GET, "/hello"), Some(RelayRoute::NotPost));
    }

    #[test]
    fn parameters_are_decoded_and_methods_checked() {
        assert_eq!(
            parse(Method::GET, "/trans/a%20b/state/Pending"),
            Some(Route::TransactionState {
                id: "a b".into(),
                state: Some("Pending".into())
            })
        );
        assert_eq!(parse(Method::GET, "/queue/q/pop"), None);
        assert_eq!(parse(Method::PATCH, "/trans/x"), None);
        assert_eq!(parse(Method::GET, "/queue//peek"), None);
        assert!(Route::parse(&Method::GET, "/queue/%FF").is_err());
    }
}
