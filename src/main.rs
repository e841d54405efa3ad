//! The `relaybox` command: run a node, or check a configuration.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use relaybox::config::Settings;

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
    match cli.command.unwrap_or(Command::Run) {
        Command::CheckConfig => {
            print!("{}", settings.to_toml());
            ExitCode::SUCCESS
        }
        Command::Run => {
            relaybox::logging::init(&settings.log);
            match actix_web::rt::System::new().block_on(relaybox::node::run(settings)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("relaybox: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
