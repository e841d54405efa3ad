//! The cloud beyond this node's region. A region is the set of nodes over one store behind one
//! front proxy: they see each other's desktops through the store. Regions that do not share a
//! store know each other as *members*, addressed by public `host[:port]`:
//!
//! - at start a node greets its `sites` with `/hello`, learns the members they know from the
//!   answer and greets those too;
//! - a desktop's `/connect` is told to every member with `/connected`;
//! - an app asking for a desktop nobody here knows makes the node ask every member with `/find`.
//!
//! Members live in the store, so every node of a region shares them and their health: failed
//! `/hello` and `/connected` calls are counted, a successful `/connected` resets the count, and
//! past `max_instance_failed` the member is forgotten until it greets again. Every node-to-node
//! call carries the cluster secret; a node without one neither makes nor accepts them.

mod peers;

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tracing::{debug, info, warn};

pub use peers::{CallError, Peers};

use crate::config::ClusterSettings;
use crate::model::Location;
use crate::secret::Secret;
use crate::store::{Store, StoreResult};

/// Most regions a start-up greeting walks through (gossip ends there even if answers go on
/// naming new ones).
const MAX_GREETED: usize = 1000;

/// Why a node-to-node call was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("this node takes no node-to-node calls: it has no [cluster] secret")]
    NoSecret,
    #[error("missing or wrong X-IWP-Secret (the [cluster] secret)")]
    WrongSecret,
}

#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    here: Location,
    secret: Option<Secret>,
    /// The client for calls to other regions; none without a secret.
    peers: Option<Peers>,
    sites: Vec<String>,
    max_failed: u32,
    call_timeout: Duration,
    store: Arc<dyn Store>,
}

impl Cluster {
    pub fn new(here: Location, settings: &ClusterSettings, store: Arc<dyn Store>) -> Self {
        let timeout = Duration::from_secs_f64(settings.call_timeout);
        let peers = settings
            .secret
            .as_ref()
            .map(|secret| Peers::new(secret.clone(), here.clone(), timeout));
        Cluster {
            inner: Arc::new(Inner {
                secret: settings.secret.as_deref().map(Secret::new),
                peers,
                sites: settings.sites.clone(),
                max_failed: settings.max_instance_failed,
                call_timeout: timeout,
                here,
                store,
            }),
        }
    }

    /// How long one node-to-node call may take.
    pub fn call_timeout(&self) -> Duration {
        self.inner.call_timeout
    }

    /// The client for node-to-node calls; none without a secret.
    pub fn peers(&self) -> Option<&Peers> {
        self.inner.peers.as_ref()
    }

    /// Whether a node-to-node call that carried `given` as its secret may go on.
    pub fn admit(&self, given: Option<&str>) -> Result<(), Refusal> {
        let secret = self.inner.secret.as_ref().ok_or(Refusal::NoSecret)?;
        match given {
            Some(given) if secret.matches(given) => Ok(()),
            _ => Err(Refusal::WrongSecret),
        }
    }

    /// Another region's address, not this one's (nodes of this region share the store and need
    /// no telling).
    fn is_other(&self, server: &str) -> bool {
        !server.is_empty() && server != self.inner.here.host
    }

    /// The other regions known, each with its failed calls since its last success.
    pub async fn members(&self) -> StoreResult<Vec<(String, u32)>> {
        self.inner.store.members().await
    }

    /// Remembers `server` as a member, if it is another region.
    pub async fn learn(&self, server: &str) -> StoreResult<()> {
        if !self.is_other(server) {
            return Ok(());
        }
        self.inner.store.member_add(server).await
    }

    /// `/hello` from `newcomer`: the members it should know (not itself), then it is one.
    pub async fn greeted_by(&self, newcomer: &str) -> StoreResult<Vec<String>> {
        let known = self
            .members()
            .await?
            .into_iter()
            .map(|(server, _)| server)
            .filter(|server| server != newcomer)
            .collect();
        self.learn(newcomer).await?;
        Ok(known)
    }

    /// Greets the configured sites and, in turn, every member their answers name. Runs once,
    /// at start.
    pub async fn greet_sites(&self) {
        let Some(peers) = &self.inner.peers else {
            return;
        };
        let mut next: VecDeque<String> = self.inner.sites.iter().cloned().collect();
        let mut seen = HashSet::new();
        while let Some(server) = next.pop_front() {
            if !self.is_other(&server) || !seen.insert(server.clone()) {
                continue;
            }
            if seen.len() > MAX_GREETED {
                warn!(limit = MAX_GREETED, "stopped greeting regions: too many");
                break;
            }
            if let Err(e) = self.learn(&server).await {
                warn!(%server, error = %e, "cannot record a member");
            }
            match peers.hello(&server).await {
                Ok(known) => {
                    info!(%server, "greeted");
                    next.extend(known);
                }
                Err(e) => self.failed(&server, &e).await,
            }
        }
    }

    /// Tells every member that `customer`'s desktop is attached at `holder`, in the background.
    pub fn announce(&self, customer: &str, holder: &Location) {
        if self.inner.peers.is_none() {
            return;
        }
        let (cluster, customer, holder) = (self.clone(), customer.to_owned(), holder.clone());
        actix::spawn(async move {
            let members = match cluster.members().await {
                Ok(members) => members,
                Err(e) => return warn!(error = %e, "cannot read members to tell of a desktop"),
            };
            let peers = cluster.inner.peers.as_ref().expect("checked above");
            let calls: FuturesUnordered<_> = members
                .into_iter()
                .map(|(server, _)| {
                    let cluster = &cluster;
                    let (customer, holder) = (&customer, &holder);
                    async move {
                        match peers.connected(&server, customer, holder).await {
                            Ok(()) => {
                                if let Err(e) = cluster.inner.store.member_ok(&server).await {
                                    warn!(%server, error = %e, "cannot record a member's success");
                                }
                            }
                            Err(e) => cluster.failed(&server, &e).await,
                        }
                    }
                })
                .collect();
            calls.collect::<()>().await;
        });
    }

    /// Asks every member where `customer`'s desktop is; the first that knows answers.
    pub async fn find(&self, customer: &str) -> Option<Location> {
        let peers = self.inner.peers.as_ref()?;
        let members = self.members().await.ok()?;
        let mut asks: FuturesUnordered<_> = members
            .iter()
            .map(|(server, _)| peers.find(server, customer))
            .collect();
        while let Some(answer) = asks.next().await {
            match answer {
                // A member may still have this node down as the holder: that is no news.
                Ok(Some(location)) if location != self.inner.here => return Some(location),
                Ok(_) => {}
                // Not counted: a region that cannot answer now is told again at the next
                // `/connect`, which counts.
                Err(e) => debug!(error = %e, "find failed"),
            }
        }
        None
    }

    /// Counts a failed call to `server`, forgetting it past the limit.
    async fn failed(&self, server: &str, error: &CallError) {
        warn!(error = %error, "call to another region failed");
        match self
            .inner
            .store
            .member_failed(server, self.inner.max_failed)
            .await
        {
            Ok(true) => warn!(
                %server,
                limit = self.inner.max_failed,
                "region forgotten after too many failed calls; it is known again when it greets"
            ),
            Ok(false) => {}
            Err(e) => warn!(%server, error = %e, "cannot count a member's failure"),
        }
    }
}
