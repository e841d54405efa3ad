//! Log output: a `RUST_LOG`-style filter (the variable wins over `log.level`), text or JSON
//! lines on standard output. Records from libraries that use the `log` crate (actix-web's access
//! log among them) are carried over.
//!
//! A connection that fails on the client's side (a malformed request, answered `400`; a reset
//! mid-answer) makes actix-http log an error, one line each: a client could flood the log that
//! way. Those lines are counted instead, and summed up in one warning at most every
//! `SUMMARY_EVERY`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber, warn};
use tracing_subscriber::filter::{EnvFilter, filter_fn};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Registry, reload};

use crate::config::{LogFormat, LogSettings};

/// The longest a failed client connection goes unreported, and the shortest time between two
/// reports.
const SUMMARY_EVERY: Duration = Duration::from_secs(60);

/// Where the HTTP library reports connections that failed.
const CONNECTION_ERRORS: &str = "actix_http::h1::dispatcher";

/// The filter in force, changeable while the node runs ([`set_filter`]), and its text.
static FILTER: OnceLock<(reload::Handle<EnvFilter, Registry>, Mutex<String>)> = OnceLock::new();

pub fn init(settings: &LogSettings) {
    let text = std::env::var("RUST_LOG")
        .ok()
        .filter(|text| EnvFilter::try_new(text).is_ok())
        .unwrap_or_else(|| settings.level.clone());
    let (filter, handle) = reload::Layer::new(EnvFilter::new(&text));
    let colours = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let lines = tracing_subscriber::fmt::layer().with_ansi(colours);
    let lines = match settings.format {
        LogFormat::Text => lines.boxed(),
        LogFormat::Json => lines.json().boxed(),
    };
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(lines.with_filter(filter_fn(|meta| !connection_error(meta))))
        .with(FailedConnections);
    // Only fails when a subscriber is already set, which then keeps logging.
    if registry.try_init().is_ok() {
        let _ = FILTER.set((handle, Mutex::new(text)));
        std::thread::Builder::new()
            .name("log-summary".to_owned())
            .spawn(summarise_failed_connections)
            .expect("a thread can be started");
    }
}

/// The log filter in force (`RUST_LOG` syntax), if logging was set up.
pub fn filter() -> Option<String> {
    let (_, text) = FILTER.get()?;
    Some(text.lock().unwrap_or_else(|p| p.into_inner()).clone())
}

/// Changes the log filter while the node runs (`info,relaybox::shard=debug`); the error names
/// what is wrong with `text`. (The access log keeps the state it had at start: it is built only
/// when its target was enabled then.)
pub fn set_filter(text: &str) -> Result<(), String> {
    let filter =
        EnvFilter::try_new(text).map_err(|e| format!("invalid log filter {text:?}: {e}"))?;
    let (handle, current) = FILTER.get().ok_or("logging is not set up")?;
    handle.reload(filter).map_err(|e| e.to_string())?;
    *current.lock().unwrap_or_else(|p| p.into_inner()) = text.to_owned();
    Ok(())
}

fn connection_error(meta: &Metadata<'_>) -> bool {
    *meta.level() == Level::ERROR && meta.target() == CONNECTION_ERRORS
}

/// Client connections that failed since the last report, and what the last one said.
static FAILED: AtomicU64 = AtomicU64::new(0);
static LAST_FAILURE: Mutex<String> = Mutex::new(String::new());

/// Counts the failed connections (see the module's documentation).
struct FailedConnections;

impl<S: Subscriber> Layer<S> for FailedConnections {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if !connection_error(event.metadata()) {
            return;
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        *LAST_FAILURE.lock().unwrap_or_else(|p| p.into_inner()) = message.0;
        FAILED.fetch_add(1, Ordering::Relaxed);
    }
}

/// An event's `message` field.
struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

/// Reports failed client connections: the first within a second, then at most one line every
/// `SUMMARY_EVERY`, for the life of the process.
fn summarise_failed_connections() {
    let mut reported: Option<Instant> = None;
    loop {
        std::thread::sleep(Duration::from_secs(1));
        if reported.is_some_and(|at| at.elapsed() < SUMMARY_EVERY) {
            continue;
        }
        let failed = FAILED.swap(0, Ordering::Relaxed);
        if failed == 0 {
            continue;
        }
        let last = std::mem::take(&mut *LAST_FAILURE.lock().unwrap_or_else(|p| p.into_inner()));
        warn!(
            failed,
            last = %last,
            "client connections failed (malformed requests answered 400, or cut off); at most \
             one such line a minute"
        );
        reported = Some(Instant::now());
    }
}
