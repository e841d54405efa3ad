//! Log output: a `RUST_LOG`-style filter (the variable wins over `log.level`), text or JSON
//! lines on standard output. Records from libraries that use the `log` crate (actix-web's access
//! log among them) are carried over.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{LogFormat, LogSettings};

pub fn init(settings: &LogSettings) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.level));
    let colours = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colours);
    // Only fails when a subscriber is already set, which then keeps logging.
    let _ = match settings.format {
        LogFormat::Text => builder.finish().try_init(),
        LogFormat::Json => builder.json().finish().try_init(),
    };
}
