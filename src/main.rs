//! The `pullguard` command.

#![forbid(unsafe_code)]

mod ask;
mod doctor;
mod exit;
mod publisher;
mod tuf_client;
mod verifier;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use exit::Exit;

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
    /// Verify an image: ask the daemon, or check here with --scope and --state (exit 0
    /// admitted, 1 denied, 2 error).
    Verify(verifier::VerifyArgs),
    /// How the daemon's scopes stand: trusted versions, expiries, last refresh, cache.
    Status(ask::SocketArgs),
    /// Make the daemon refresh a scope's metadata now (every scope when none is named).
    Refresh(ask::RefreshArgs),
    /// Offline bundles of metadata and signatures: export, import.
    #[command(subcommand)]
    Bundle(verifier::BundleCommand),
    /// A TUF client with the conformance-suite command line (init / refresh / download).
    TufClient(tuf_client::TufClientArgs),
    /// The node daemon: answers verifications on its Unix socket (`[daemon]` in the
    /// config) until SIGTERM or SIGINT.
    Serve,
    /// Check that this node sends every image through pullguard, one line per check, and
    /// say what to fix (exit 1 when a check fails).
    Doctor(doctor::DoctorArgs),
}

/// Runs a command; a denial or bad input is already reported when it returns.
fn run(command: Command, config_path: Option<&std::path::Path>) -> anyhow::Result<Exit> {
    let config = || {
        pullguard_plugin::config::Config::load(config_path)
            .map_err(|e| anyhow::Error::new(e).context("config"))
    };
    // Read only by the commands that reach a registry.
    match command {
        Command::Key(c) => publisher::key(c).map(|()| Exit::Admitted),
        Command::Repo(c) => publisher::repo(c, &config).map(|()| Exit::Admitted),
        Command::Sign(a) => publisher::sign(a, &config()?).map(|()| Exit::Admitted),
        Command::Verify(a) => verifier::verify(a, &config),
        Command::Status(a) => ask::status(a, &config),
        Command::Refresh(a) => ask::refresh(a, &config),
        Command::Doctor(a) => doctor::doctor(a, &config),
        Command::Bundle(c) => verifier::bundle(c, &config).map(Exit::from),
        Command::TufClient(a) => tuf_client::run(a).map(|()| Exit::Admitted),
        Command::Serve => {
            // The daemon needs its config file: none is not a config of defaults here.
            let required =
                pullguard_plugin::config::Config::path(config_path).unwrap_or_else(|| {
                    std::path::PathBuf::from(pullguard_plugin::config::DEFAULT_PATH)
                });
            // Checked here, so that a bad file is said the same way as for every command;
            // then the daemon binary takes over this process (same pid, same signals).
            pullguard_plugin::config::Config::load(Some(&required))
                .map_err(|e| anyhow::Error::new(e).context("config"))?;
            Err(exec_daemon(&required))
        }
    }
}

/// Replaces this process by `pullguard-daemon --config CONFIG`, found beside this
/// executable; returns only the error when it cannot.
fn exec_daemon(config: &std::path::Path) -> anyhow::Error {
    use std::os::unix::process::CommandExt;
    let daemon = match std::env::current_exe() {
        Ok(exe) => exe.with_file_name("pullguard-daemon"),
        Err(e) => return anyhow::Error::new(e).context("finding the pullguard-daemon executable"),
    };
    let mut command = std::process::Command::new(&daemon);
    command.arg("--config").arg(config);
    // glibc gives every thread that allocates an arena of its own, and memory freed in one
    // stays there: two are enough for a daemon of a few threads, and keep its memory
    // bounded (with 100,000 cached verdicts: 46 MiB against 63 MiB). An operator's own
    // setting is kept.
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        command.env("MALLOC_ARENA_MAX", "2");
    }
    let e = command.exec();
    anyhow::Error::new(e).context(format!("starting {}", daemon.display()))
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
    // Any failure that is not a denial exits 2 (the conformance client: 1).
    let error_exit = if strict_exit { 1 } else { exit::ERROR };
    match outcome {
        Ok(Ok(exit)) => ExitCode::from(exit),
        Ok(Err(e)) => {
            eprintln!(
                "pullguard: {}",
                pullguard_plugin::io::error_chain(e.as_ref())
            );
            // A config that cannot be used is a usage error (sysexits EX_USAGE).
            if e.downcast_ref::<pullguard_plugin::config::ConfigError>()
                .is_some()
            {
                ExitCode::from(usage_exit)
            } else {
                ExitCode::from(error_exit)
            }
        }
        Err(_) => {
            eprintln!("pullguard: internal error (panic); the command was aborted");
            ExitCode::from(error_exit)
        }
    }
}
