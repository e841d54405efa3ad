//! Each route's kind: what a route is without its parameters, under a stable name. The
//! metrics count requests by it (a name never carries a queue, org or customer), and
//! [`RouteKind::ALL`] is the list of everything the node serves.

use super::routes::{RelayRoute, Route};

/// Declares the kinds once: the enum, its list and its names stay in step.
macro_rules! route_kinds {
    ($($(#[$doc:meta])* $kind:ident => $name:literal,)*) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum RouteKind {
            $($(#[$doc])* $kind,)*
        }

        impl RouteKind {
            /// Every kind, in declaration order (`ALL[k as usize] == k`).
            pub const ALL: &[RouteKind] = &[$(RouteKind::$kind,)*];

            /// The name the metrics use, in snake case.
            pub fn name(self) -> &'static str {
                match self {
                    $(RouteKind::$kind => $name,)*
                }
            }
        }
    };
}

route_kinds! {
    DeployInfo => "deploy_info",
    Health => "health",
    Ready => "ready",
    Metrics => "metrics",
    OpenApi => "openapi",
    AdminRanges => "admin_ranges",
    AdminStats => "admin_stats",
    AdminStatus => "admin_status",
    AdminConfig => "admin_config",
    AdminRegions => "admin_regions",
    AdminDrain => "admin_drain",
    AdminUndrain => "admin_undrain",
    AdminLog => "admin_log",
    AdminLogChange => "admin_log_change",
    AdminChart => "admin_chart",
    AdminAlertTest => "admin_alert_test",
    AdminDashboard => "admin_dashboard",
    AdminSession => "admin_session",
    AdminLogin => "admin_login",
    AdminLogout => "admin_logout",
    AdminConnections => "admin_connections",
    AdminDesktops => "admin_desktops",
    AdminQueues => "admin_queues",
    AdminQueue => "admin_queue",
    AdminQueuePurge => "admin_queue_purge",
    Provision => "provision",
    GetTransaction => "get_transaction",
    UpdateTransaction => "update_transaction",
    DeleteTransaction => "delete_transaction",
    TransactionState => "transaction_state",
    TransactionHistory => "transaction_history",
    Pop => "pop",
    PopReliable => "pop_reliable",
    Subscribe => "subscribe",
    SubscribeReliable => "subscribe_reliable",
    Events => "events",
    WebSocket => "websocket",
    Ack => "ack",
    Peek => "peek",
    QueueState => "queue_state",
    CreateSecureQueue => "create_secure_queue",
    CreateGroup => "create_group",
    GetGroup => "get_group",
    ChangeGroup => "change_group",
    DeleteGroup => "delete_group",
    RelayPing => "relay_ping",
    RelayConnect => "relay_connect",
    RelayLocate => "relay_locate",
    RelayClient => "relay_client",
    RelayAgent => "relay_agent",
    RelayAgentReply => "relay_agent_reply",
    RelayNotPost => "relay_not_post",
    GetUniversalId => "get_universal_id",
    ClusterHello => "cluster_hello",
    ClusterConnected => "cluster_connected",
    ClusterFind => "cluster_find",
    ClusterRange => "cluster_range",
    /// No route: a 404, or a 400 for a path that does not decode.
    Unmatched => "unmatched",
}

impl Route {
    pub fn kind(&self) -> RouteKind {
        use RouteKind as K;
        match self {
            Route::Relay(relay) => relay.kind(),
            Route::DeployInfo => K::DeployInfo,
            Route::Health => K::Health,
            Route::Ready => K::Ready,
            Route::Metrics => K::Metrics,
            Route::OpenApi => K::OpenApi,
            Route::AdminRanges => K::AdminRanges,
            Route::AdminStats => K::AdminStats,
            Route::AdminStatus => K::AdminStatus,
            Route::AdminConfig => K::AdminConfig,
            Route::AdminRegions => K::AdminRegions,
            Route::AdminDrain { on: true } => K::AdminDrain,
            Route::AdminDrain { on: false } => K::AdminUndrain,
            Route::AdminLog { change: false } => K::AdminLog,
            Route::AdminLog { change: true } => K::AdminLogChange,
            Route::AdminChart { .. } => K::AdminChart,
            Route::AdminAlertTest => K::AdminAlertTest,
            Route::AdminDashboard { .. } => K::AdminDashboard,
            Route::AdminSession => K::AdminSession,
            Route::AdminLogin => K::AdminLogin,
            Route::AdminLogout => K::AdminLogout,
            Route::AdminConnections => K::AdminConnections,
            Route::AdminDesktops => K::AdminDesktops,
            Route::AdminQueues => K::AdminQueues,
            Route::AdminQueue { purge: false, .. } => K::AdminQueue,
            Route::AdminQueue { purge: true, .. } => K::AdminQueuePurge,
            Route::Provision { .. } => K::Provision,
            Route::GetTransaction { .. } => K::GetTransaction,
            Route::UpdateTransaction { .. } => K::UpdateTransaction,
            Route::DeleteTransaction { .. } => K::DeleteTransaction,
            Route::TransactionState { .. } => K::TransactionState,
            Route::TransactionHistory { .. } => K::TransactionHistory,
            Route::Pop { .. } => K::Pop,
            Route::PopReliable { .. } => K::PopReliable,
            Route::Subscribe { .. } => K::Subscribe,
            Route::SubscribeReliable { .. } => K::SubscribeReliable,
            Route::Events { .. } => K::Events,
            Route::WebSocket { .. } => K::WebSocket,
            Route::Ack { .. } => K::Ack,
            Route::Peek { .. } => K::Peek,
            Route::QueueState { .. } => K::QueueState,
            Route::CreateSecureQueue { .. } => K::CreateSecureQueue,
            Route::CreateGroup => K::CreateGroup,
            Route::GetGroup { .. } => K::GetGroup,
            Route::ChangeGroup { .. } => K::ChangeGroup,
            Route::DeleteGroup { .. } => K::DeleteGroup,
        }
    }
}

impl RelayRoute {
    fn kind(self) -> RouteKind {
        use RouteKind as K;
        match self {
            RelayRoute::Ping => K::RelayPing,
            RelayRoute::Connect => K::RelayConnect,
            RelayRoute::Locate => K::RelayLocate,
            RelayRoute::Client => K::RelayClient,
            RelayRoute::Agent => K::RelayAgent,
            RelayRoute::AgentReply => K::RelayAgentReply,
            RelayRoute::Hello => K::ClusterHello,
            RelayRoute::Connected => K::ClusterConnected,
            RelayRoute::Find => K::ClusterFind,
            RelayRoute::GetUniversalId => K::GetUniversalId,
            RelayRoute::Range => K::ClusterRange,
            RelayRoute::NotPost => K::RelayNotPost,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_sits_at_its_own_index_under_a_name_of_its_own() {
        for (i, kind) in RouteKind::ALL.iter().enumerate() {
            assert_eq!(*kind as usize, i);
        }
        let mut names: Vec<_> = RouteKind::ALL.iter().map(|k| k.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), RouteKind::ALL.len());
    }
}
