//! The device relay (the My Notes protocol): desktops hold long polls on the node, apps'
//! requests are relayed to them as the polls' responses, and the desktops' replies are streamed
//! back to the apps.
//!
//! [`Relay`] is the one entry point the HTTP layer uses. Per customer it keeps one
//! [`CustomerSession`] actor, which pairs polls and requests and owns every timer; where each
//! desktop is attached lives in the store, so that every node over it can redirect apps there.
//! Bodies travel through [`body`] channels, a chunk at a time.

pub mod body;
mod customer;
pub mod headers;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use actix::prelude::*;
use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use futures_util::future::join_all;
use tokio::sync::oneshot;

pub use crate::model::Location;
pub use body::BodyReceiver;
pub use customer::{
    ClientOutcome, CustomerSession, DesktopView, PollOutcome, ReplyVerdict, Report,
};

use crate::cluster::Cluster;
use crate::config::RelaySettings;
use crate::store::{Store, StoreResult};
use customer::{Client, Describe, DrainPolls, Poll, Reply};

/// Identifies one interaction (an app's request and the desktop's reply); unguessable.
pub type RequestId = String;

/// A request or a reply on its way to the other side: its status line, end-to-end headers and
/// body.
#[derive(Debug)]
pub struct Relayed {
    pub status: StatusCode,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The body's `Content-Length`, when the sender gave one.
    pub length: Option<u64>,
    pub body: BodyReceiver,
}

/// The protocol's four timeouts, and how long a relayed body may stall.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub agent: Duration,
    pub cache: Duration,
    pub client: Duration,
    pub no_reply: Duration,
    pub stall: Duration,
}

#[derive(Clone)]
pub struct Relay {
    inner: Arc<Inner>,
}

struct Inner {
    here: Location,
    timeouts: Timeouts,
    settings: RelaySettings,
    store: Arc<dyn Store>,
    /// The other regions, asked when the store does not know where a desktop is.
    cluster: Cluster,
    sessions: Mutex<HashMap<String, Addr<CustomerSession>>>,
    /// Which customer each interaction under way belongs to (`/agentreply` names only the id).
    interactions: Mutex<HashMap<RequestId, String>>,
    /// Desktop polls are answered at once (see [`Relay::drain`]).
    draining: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Relay {
    pub fn new(
        here: Location,
        settings: RelaySettings,
        store: Arc<dyn Store>,
        cluster: Cluster,
    ) -> Self {
        let secs = Duration::from_secs_f64;
        let timeouts = Timeouts {
            agent: secs(settings.timeout_agent),
            cache: secs(settings.timeout_cache),
            client: secs(settings.timeout_client),
            no_reply: secs(settings.timeout_no_reply),
            stall: secs(settings.stall_timeout),
        };
        Relay {
            inner: Arc::new(Inner {
                here,
                timeouts,
                settings,
                store,
                cluster,
                sessions: Mutex::default(),
                interactions: Mutex::default(),
                draining: AtomicBool::new(false),
            }),
        }
    }

    /// This node, as desktops and apps address it.
    pub fn here(&self) -> &Location {
        &self.inner.here
    }

    pub fn timeouts(&self) -> &Timeouts {
        &self.inner.timeouts
    }

    /// The chunk size for relaying a body of `length` bytes.
    pub fn chunk_size(&self, length: Option<u64>) -> usize {
        self.inner.settings.chunk_size(length)
    }

    /// The customer's session, started on this thread if it has none.
    fn session(&self, customer: &str) -> Addr<CustomerSession> {
        let mut sessions = lock(&self.inner.sessions);
        if let Some(addr) = sessions.get(customer).filter(|a| a.connected()) {
            return addr.clone();
        }
        let addr = CustomerSession::new(customer.to_owned(), self.clone()).start();
        sessions.insert(customer.to_owned(), addr.clone());
        addr
    }

    /// Stops (`true`) or resumes holding desktop polls: draining, every held poll is answered
    /// "no client" now, and every new one at once (after any app request waiting for it).
    pub async fn drain(&self, draining: bool) {
        self.inner.draining.store(draining, Ordering::Relaxed);
        if draining {
            let sessions: Vec<_> = lock(&self.inner.sessions).values().cloned().collect();
            join_all(sessions.iter().map(|s| s.send(DrainPolls))).await;
        }
    }

    pub fn draining(&self) -> bool {
        self.inner.draining.load(Ordering::Relaxed)
    }

    /// The sessions of this node's desktops, by customer id, from the first after `after`:
    /// at most `limit`.
    pub async fn desktops(&self, after: Option<&str>, limit: usize) -> Vec<DesktopView> {
        let mut sessions: Vec<(String, Addr<CustomerSession>)> = lock(&self.inner.sessions)
            .iter()
            .filter(|(customer, _)| after.is_none_or(|after| customer.as_str() > after))
            .map(|(customer, addr)| (customer.clone(), addr.clone()))
            .collect();
        sessions.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        sessions.truncate(limit);
        let views = join_all(sessions.iter().map(|(_, s)| s.send(Describe))).await;
        views.into_iter().flatten().collect()
    }

    /// A session leaves the registry (it goes on passing on what still reaches it).
    fn retire(&self, customer: &str, session: &Addr<CustomerSession>) {
        let mut sessions = lock(&self.inner.sessions);
        if sessions.get(customer) == Some(session) {
            sessions.remove(customer);
        }
    }

    fn new_request_id() -> RequestId {
        uuid::Uuid::new_v4().simple().to_string()
    }

    fn interaction_started(&self, id: &RequestId, customer: &str) {
        lock(&self.inner.interactions).insert(id.clone(), customer.to_owned());
    }

    fn interaction_ended(&self, id: &RequestId) {
        lock(&self.inner.interactions).remove(id);
    }

    /// How long a desktop's attachment lasts without a poll refreshing it: a poll's length and
    /// the time it may take to come back.
    fn attachment_ttl(&self) -> Duration {
        self.inner.timeouts.agent + self.inner.timeouts.cache * 2
    }

    /// Every poll: the desktop is attached here.
    async fn attach(&self, customer: &str) -> StoreResult<()> {
        self.remember(customer, self.here()).await
    }

    /// `/connect`: the desktop is attached here, and the other regions are told.
    pub async fn connect(&self, customer: &str) -> StoreResult<()> {
        self.attach(customer).await?;
        self.inner.cluster.announce(customer, self.here());
        Ok(())
    }

    /// Records where `customer`'s desktop is attached (here, or as another region said).
    pub async fn remember(&self, customer: &str, location: &Location) -> StoreResult<()> {
        let ttl = self.attachment_ttl();
        self.inner.store.attach(customer, location, ttl).await
    }

    /// Where this region has the desktop of `customer` attached, if anywhere.
    pub async fn locate_here(&self, customer: &str) -> StoreResult<Option<Location>> {
        self.inner.store.locate(customer).await
    }

    /// Where the desktop of `customer` is attached, in this region or, asked, another.
    pub async fn locate(&self, customer: &str) -> StoreResult<Option<Location>> {
        if let Some(location) = self.locate_here(customer).await? {
            return Ok(Some(location));
        }
        let Some(location) = self.inner.cluster.find(customer).await else {
            return Ok(None);
        };
        self.remember(customer, &location).await?;
        Ok(Some(location))
    }

    /// A desktop's long poll: an app's request for it, or "no client" after `timeout_agent`.
    pub async fn poll(&self, customer: &str) -> StoreResult<PollOutcome> {
        self.attach(customer).await?;
        let (reply, outcome) = oneshot::channel();
        self.session(customer).do_send(Poll { reply });
        // The session only drops a poll unanswered when the node stops.
        Ok(outcome.await.unwrap_or(PollOutcome::NoClient))
    }

    /// An app's request for the desktop of `customer`.
    pub async fn client(&self, customer: &str, message: Relayed) -> ClientOutcome {
        let (reply, outcome) = oneshot::channel();
        self.session(customer).do_send(Client { message, reply });
        outcome.await.unwrap_or(ClientOutcome::Failed {
            status: StatusCode::SERVICE_UNAVAILABLE,
            reason: "HTTP 503: Service Unavailable (the node is shutting down)".to_owned(),
        })
    }

    /// A desktop's reply to interaction `id`.
    pub async fn reply(
        &self,
        id: RequestId,
        customer: String,
        message: Result<Relayed, String>,
    ) -> ReplyVerdict {
        let owner = lock(&self.inner.interactions).get(&id).cloned();
        let Some(owner) = owner else {
            return ReplyVerdict::Refused {
                status: StatusCode::BAD_GATEWAY,
                reason: "HTTP 502: Bad Gateway (No client to reply)".to_owned(),
            };
        };
        let (verdict, answer) = oneshot::channel();
        self.session(&owner).do_send(Reply {
            id,
            customer,
            message,
            verdict,
        });
        answer.await.unwrap_or(ReplyVerdict::Refused {
            status: StatusCode::SERVICE_UNAVAILABLE,
            reason: "HTTP 503: Service Unavailable (the node is shutting down)".to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};
    use std::time::Instant;

    use super::*;
    use crate::config::ClusterSettings;
    use crate::store::memory::MemoryStore;

    fn relay() -> Relay {
        let here = Location {
            host: "localhost".to_owned(),
            port: "3001".to_owned(),
        };
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new(1));
        let cluster = Cluster::new(
            here.clone(),
            &ClusterSettings::default(),
            Arc::clone(&store),
        );
        Relay::new(here, RelaySettings::default(), store, cluster)
    }

    /// Runs `future` on this thread by polling it without pause, as a desktop's connection
    /// served by another worker thread would be driven at full speed. Gives up after 5 s.
    fn spin<F: Future>(future: F) -> F::Output {
        let mut future = pin!(future);
        let mut cx = Context::from_waker(Waker::noop());
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
                return output;
            }
            assert!(Instant::now() < deadline, "no answer within 5 s");
            std::hint::spin_loop();
        }
    }

    /// A desktop whose poll is served on another thread than its session may reply the instant
    /// it has the request: its `/agentreply` must find the interaction, every time.
    #[actix::test]
    async fn a_reply_sent_the_instant_the_request_arrives_finds_its_interaction() {
        let relay = relay();
        let customer = "desk";
        // The session lives on this thread; the desktop's side runs on its own.
        drop(relay.session(customer));
        for round in 0..200 {
            let (polled_tx, polled) = std::sync::mpsc::channel();
            let (verdict_tx, verdict) = oneshot::channel();
            let desktop = relay.clone();
            let thread = std::thread::spawn(move || {
                let mut poll = pin!(desktop.poll(customer));
                let mut cx = Context::from_waker(Waker::noop());
                // The first poll hands the session the desktop's poll.
                let first = poll.as_mut().poll(&mut cx);
                polled_tx.send(()).unwrap();
                let outcome = match first {
                    Poll::Ready(outcome) => outcome,
                    Poll::Pending => spin(poll),
                };
                let Ok(PollOutcome::Request { id, .. }) = outcome else {
                    panic!("round {round}: the poll got no request");
                };
                let reply = Err("unusable".to_owned());
                let verdict = spin(desktop.reply(id, customer.to_owned(), reply));
                let _ = verdict_tx.send(verdict);
            });
            // The poll reaches the session's mailbox before the app's request does.
            polled.recv().unwrap();
            let app = relay.clone();
            let asked = actix::spawn(async move {
                let (_sender, body) = body::channel();
                let message = Relayed {
                    status: StatusCode::OK,
                    headers: Vec::new(),
                    length: None,
                    body,
                };
                app.client(customer, message).await
            });
            match verdict.await.expect("the desktop thread answers") {
                // The reply reached the interaction, which refused it for what it held.
                ReplyVerdict::Refused { status, .. } if status == StatusCode::BAD_REQUEST => {}
                ReplyVerdict::Refused { status, reason } => {
                    panic!("round {round}: the reply was refused with {status}: {reason}")
                }
                ReplyVerdict::Go { .. } => panic!("round {round}: an unusable reply was taken"),
            }
            thread.join().unwrap();
            let outcome = tokio::time::timeout(Duration::from_secs(5), asked).await;
            let Ok(Ok(ClientOutcome::Failed { status, .. })) = outcome else {
                panic!("round {round}: the app did not hear of the unusable reply");
            };
            assert_eq!(status, StatusCode::BAD_GATEWAY);
        }
    }
}
