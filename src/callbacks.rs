//! Delivery callbacks: when a message with a `callback` URL is delivered from a queue, the node
//! `POST`s the event there, as PopBox did:
//!
//! ```json
//! {"transaction":"<id>","queue":"<queue id>","state":"Delivered","callback":"<url>","timestamp":"2026-11-22T05:30:00.123Z"}
//! ```
//!
//! Calls run in the background, never in a delivery's way: a slow or dead target delays and
//! fails nothing but its own call. A call that fails (no connection, timeout, 5xx) is retried a
//! few times with back-off, then logged and given up. `https://` works.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::sync::{Semaphore, mpsc};
use tracing::{debug, warn};

use crate::stats::counters;

/// How long one attempt may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// Waits before the retries; one attempt more than there are entries.
const BACKOFF: [Duration; 3] = [
    Duration::from_millis(500),
    Duration::from_secs(2),
    Duration::from_secs(8),
];
/// Calls in flight at once; more wait their turn.
const CONCURRENT_CALLS: usize = 256;

/// One delivery to report.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveredEvent {
    pub transaction: String,
    /// The queue id as the client knows it (no namespace).
    pub queue: String,
    pub state: &'static str,
    pub callback: String,
    pub timestamp: String,
}

impl DeliveredEvent {
    pub fn new(transaction: &str, queue: &str, callback: &str) -> Self {
        DeliveredEvent {
            transaction: transaction.to_owned(),
            queue: queue.to_owned(),
            state: "Delivered",
            callback: callback.to_owned(),
            timestamp: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        }
    }
}

/// Where deliveries are reported; cheap to clone. Dropping every clone stops the sender.
#[derive(Clone)]
pub struct Callbacks {
    events: mpsc::UnboundedSender<DeliveredEvent>,
}

impl Callbacks {
    /// Starts the sender on the current tokio runtime.
    pub fn start() -> Self {
        let (events, rx) = mpsc::unbounded_channel();
        tokio::spawn(send_all(rx));
        Callbacks { events }
    }

    /// A sink that drops every event (for actors tested without a node around them).
    pub fn disabled() -> Self {
        let (events, _) = mpsc::unbounded_channel();
        Callbacks { events }
    }

    /// Reports one delivery; returns at once.
    pub fn delivered(&self, event: DeliveredEvent) {
        // Closed only when the node is going down.
        let _ = self.events.send(event);
    }
}

async fn send_all(mut events: mpsc::UnboundedReceiver<DeliveredEvent>) {
    let client = match reqwest::Client::builder()
        .timeout(ATTEMPT_TIMEOUT)
        .user_agent(concat!("relaybox/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(client) => client,
        Err(e) => {
            warn!(error = %e, "no HTTP client for delivery callbacks; callbacks are off");
            return;
        }
    };
    let slots = Arc::new(Semaphore::new(CONCURRENT_CALLS));
    while let Some(event) = events.recv().await {
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let client = client.clone();
        tokio::spawn(async move {
            call(&client, &event).await;
            drop(slot);
        });
    }
}

/// Posts one event, retrying what may succeed later.
async fn call(client: &reqwest::Client, event: &DeliveredEvent) {
    let body = serde_json::to_vec(event).expect("events serialise");
    let mut waits = BACKOFF.iter();
    loop {
        let attempt = client
            .post(&event.callback)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await;
        let problem = match attempt {
            Ok(r) if !r.status().is_server_error() => {
                debug!(url = %event.callback, status = %r.status(), "callback delivered");
                counters().callbacks_delivered.one();
                return;
            }
            Ok(r) => format!("answered {}", r.status()),
            Err(e) if e.is_builder() => {
                warn!(url = %event.callback, error = %e, tx = %event.transaction, "callback URL unusable; not called");
                counters().callbacks_failed.one();
                return;
            }
            Err(e) => e.to_string(),
        };
        match waits.next() {
            Some(wait) => {
                debug!(url = %event.callback, %problem, "callback failed; retrying");
                tokio::time::sleep(*wait).await;
            }
            None => {
                warn!(url = %event.callback, %problem, tx = %event.transaction, queue = %event.queue, "callback failed; giving up");
                counters().callbacks_failed.one();
                return;
            }
        }
    }
}
