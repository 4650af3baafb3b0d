//! `pullguard-daemon --config FILE`: the node daemon (`pullguard serve` execs it). Exit 0
//! after SIGTERM or SIGINT, 64 when the config or a scope of it cannot be used, 2 on any
//! other failure.

#![forbid(unsafe_code)]

mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "pullguard-daemon",
    version,
    about = "The pullguard node daemon (started by `pullguard serve`)"
)]
struct Args {
    /// The node's config file (TOML).
    #[arg(long)]
    config: PathBuf,
}

/// EX_USAGE from sysexits.h.
const EX_USAGE: u8 = 64;

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(EX_USAGE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let outcome = pullguard_plugin::config::Config::load(Some(&args.config))
        .map_err(|e| anyhow::Error::new(e).context("config"))
        .and_then(|config| serve::serve(&config));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "pullguard: {}",
                pullguard_plugin::io::error_chain(e.as_ref())
            );
            let usage = e
                .downcast_ref::<pullguard_plugin::config::ConfigError>()
                .is_some()
                || e.downcast_ref::<pullguard_node::NodeError>().is_some();
            ExitCode::from(if usage { EX_USAGE } else { 2 })
        }
    }
}
