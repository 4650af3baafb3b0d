//! The `pullguard` command.

#![forbid(unsafe_code)]

mod publisher;
mod serve;
mod tuf_client;
mod verifier;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "pullguard",
    version,
    about = "Verifies container images against detached signatures and TUF freshness metadata"
)]
struct Cli {
    /// The node's config file (TOML; default $PULLGUARD_CONFIG, else
    /// /etc/pullguard/pullguard.toml when present): daemon, scopes, registries.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Signing keys: generate, show.
    #[command(subcommand)]
    Key(publisher::KeyCommand),
    /// A scope's TUF repository: init, delegate, rotate, snapshot, timestamp, publish.
    #[command(subcommand)]
    Repo(publisher::RepoCommand),
    /// Sign an image: push a detached signature and list it in the responsible role.
    Sign(publisher::SignArgs),
    /// Verify an image against a scope's trust data (exit 0 admitted, 1 denied).
    Verify(verifier::VerifyArgs),
    /// Offline bundles of metadata and signatures: export, import.
    #[command(subcommand)]
    Bundle(verifier::BundleCommand),
    /// A TUF client with the conformance-suite command line (init / refresh / download).
    TufClient(tuf_client::TufClientArgs),
    /// The node daemon: answers verifications on its Unix socket (`[daemon]` in the
    /// config) until SIGTERM or SIGINT.
    Serve,
}

/// Runs a command; `Ok(false)` is a denial that was already reported (exit 1).
fn run(command: Command, config_path: Option<&std::path::Path>) -> anyhow::Result<bool> {
    let config = || {
        pullguard_plugin::config::Config::load(config_path)
            .map_err(|e| anyhow::Error::new(e).context("config"))
    };
    // Read only by the commands that reach a registry.
    match command {
        Command::Key(c) => publisher::key(c).map(|()| true),
        Command::Repo(c) => publisher::repo(c, &config).map(|()| true),
        Command::Sign(a) => publisher::sign(a, &config()?).map(|()| true),
        Command::Verify(a) => verifier::verify(a, &config),
        Command::Bundle(c) => verifier::bundle(c, &config),
        Command::TufClient(a) => tuf_client::run(a).map(|()| true),
        Command::Serve => {
            // The daemon needs its config file: none is not a config of defaults here.
            let required =
                pullguard_plugin::config::Config::path(config_path).unwrap_or_else(|| {
                    std::path::PathBuf::from(pullguard_plugin::config::DEFAULT_PATH)
                });
            let config = pullguard_plugin::config::Config::load(Some(&required))
                .map_err(|e| anyhow::Error::new(e).context("config"))?;
            serve::serve(&config).map(|()| true)
        }
    }
}

/// EX_USAGE from sysexits.h: the command was used incorrectly.
const EX_USAGE: u8 = 64;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    // The conformance contract: exit 0 on success and exactly 1 on any failure, including
    // bad arguments and panics.
    let strict_exit = args.get(1).is_some_and(|a| a == "tuf-client");
    let usage_exit = if strict_exit { 1 } else { EX_USAGE };

    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(usage_exit)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let config_path = cli.config.clone();
    let outcome = std::panic::catch_unwind(|| run(cli.command, config_path.as_deref()));
    match outcome {
        Ok(Ok(true)) => ExitCode::SUCCESS,
        Ok(Ok(false)) => ExitCode::FAILURE,
        Ok(Err(e)) => {
            eprintln!(
                "pullguard: {}",
                pullguard_plugin::io::error_chain(e.as_ref())
            );
            // A config that cannot be used is a usage error (sysexits EX_USAGE).
            if e.downcast_ref::<pullguard_plugin::config::ConfigError>()
                .is_some()
                || e.downcast_ref::<pullguard_plugin::node::NodeError>()
                    .is_some()
            {
                ExitCode::from(usage_exit)
            } else {
                ExitCode::FAILURE
            }
        }
        Err(_) => {
            eprintln!("pullguard: internal error (panic); the command was aborted");
            ExitCode::FAILURE
        }
    }
}
