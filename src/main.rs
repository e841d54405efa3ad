//! The `relaybox` command: run a node, or check a configuration.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use relaybox::config::Settings;
use relaybox::node::Stopped;

// Measured on the 2-core machine (relaybox-bench, before vendor/actix-http shrank the connection
// buffers): with jemalloc a held long-poll cost 10.7 KiB of RSS instead of 16.0 with glibc's
// allocator (less fragmentation between connection buffers; 19,000 held pops, 2026-12), and
// embedded-store pushes run 4-10 % faster. (mimalloc was worse on memory.)
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "relaybox",
    version,
    about = "One node of the relaybox inbox and relay cloud"
)]
struct Cli {
    /// Configuration file [default: ./cluster.toml when present, else built-in defaults]
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node (the default)
    Run,
    /// Validate the configuration and print the effective settings
    CheckConfig,
    /// Draw every chart of the region's statistics (SVG, every type, period and size) into a
    /// directory, named as My Notes' monitor named its PNGs: cpu.1h.svg, cpu-max-s.6h.svg, …
    Charts {
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Print the nginx configuration of a site, from its nodes' settings: the primaries with
    /// their standbys as backups, and each node's own location
    Nginx {
        /// A node's settings file (once per node)
        #[arg(long = "node", value_name = "FILE", required = true)]
        nodes: Vec<PathBuf>,
        /// Where nginx listens
        #[arg(long, default_value = "0.0.0.0:80")]
        listen: std::net::SocketAddr,
        /// Write a whole nginx.conf for an nginx of its own, keeping its files in DIR
        #[arg(long, value_name = "DIR")]
        standalone: Option<PathBuf>,
    },
    /// Check the region's alerts from outside its nodes (as My Notes' monitor did), e.g. on a
    /// monitoring host: it reports the region down when every node is gone
    Watch,
    /// The customer-ID pool and every node's blocks, in the configured store
    Ranges {
        #[command(subcommand)]
        action: RangesAction,
    },
}

#[derive(Subcommand)]
enum RangesAction {
    /// Print the pool, the range master and every node's blocks
    Show,
    /// Set the pool (with the embedded store: while the node is stopped)
    Init {
        #[arg(long)]
        from: u64,
        #[arg(long)]
        to: u64,
        /// Replace an existing pool
        #[arg(long)]
        force: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("relaybox: {e}");
            return ExitCode::from(2);
        }
    };
    let system = || actix_web::rt::System::new();
    match cli.command.unwrap_or(Command::Run) {
        Command::CheckConfig => finish("check-config", Ok::<_, String>(settings.to_toml())),
        Command::Charts { out } => {
            let done = system().block_on(relaybox::stats::chart::publish(&settings, &out));
            let said = done.map(|n| format!("{n} charts written to {}\n", out.display()));
            finish("charts", said)
        }
        Command::Ranges { action } => {
            let done = system().block_on(async {
                match action {
                    RangesAction::Show => relaybox::range::admin::show(&settings).await,
                    RangesAction::Init { from, to, force } => {
                        relaybox::range::admin::init(&settings, from, to, force).await
                    }
                }
            });
            finish("ranges", done.map(|text| format!("{}\n", text.trim_end())))
        }
        Command::Nginx {
            nodes,
            listen,
            standalone,
        } => {
            let site = relaybox::site::Site {
                nodes: &nodes,
                listen,
                standalone: standalone.as_deref(),
            };
            finish("nginx", site.nginx())
        }
        Command::Watch => {
            relaybox::logging::init(&settings.log);
            let done = system().block_on(async {
                relaybox::stats::Alerts::watch_alone(&settings).await?;
                relaybox::node::shutdown_signal().await;
                Ok::<_, String>(String::new())
            });
            finish("watch", done)
        }
        Command::Run => {
            relaybox::logging::init(&settings.log);
            let node = system();
            let ran = node.block_on(relaybox::node::run(settings.clone()));
            if ran.is_err() {
                // It failed after starting actors (a listener that cannot bind, say): dropped,
                // the system would poll them outside any runtime and panic over the error.
                // The process ends now anyway.
                std::mem::forget(node);
            }
            let done = match ran {
                Ok(Stopped::Fenced(reason)) if settings.admin.listen.is_some() => system()
                    .block_on(relaybox::node::serve_fenced(&settings, reason))
                    .map(|()| String::new()),
                Ok(Stopped::Fenced(reason)) => Err(std::io::Error::other(format!(
                    "fenced: {reason}; start it again as a standby of the new primary (README, \
                     \"High availability\")"
                ))),
                Ok(Stopped::Signalled) => Ok(String::new()),
                Err(e) => Err(e),
            };
            finish("run", done)
        }
    }
}

/// How a command ends: what it printed, or its error (exit status 1).
fn finish(command: &str, done: Result<String, impl std::fmt::Display>) -> ExitCode {
    match done {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) if command == "run" => {
            eprintln!("relaybox: {e}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("relaybox {command}: {e}");
            ExitCode::FAILURE
        }
    }
}
