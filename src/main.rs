//! The `pullguard` command.

#![forbid(unsafe_code)]

mod tuf_client;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "pullguard",
    version,
    about = "Verifies container images against detached signatures and TUF freshness metadata"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// A TUF client with the conformance-suite command line (init / refresh / download).
    TufClient(tuf_client::TufClientArgs),
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
    let outcome = std::panic::catch_unwind(|| match cli.command {
        Command::TufClient(a) => tuf_client::run(a),
    });
    match outcome {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("pullguard: {e:#}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("pullguard: internal error (panic); the command was aborted");
            ExitCode::FAILURE
        }
    }
}
