//! `pullguard tuf-client`: drives the trust core the way the TUF conformance suite drives a
//! client (CLIENT-CLI of theupdateframework/tuf-conformance).
//!
//! ```text
//! pullguard tuf-client --metadata-dir D init ROOT_FILE
//! pullguard tuf-client --metadata-url U --metadata-dir D refresh
//! pullguard tuf-client --metadata-url U --metadata-dir D --target-name T [--target-name T2 ...]
//!     --target-dir TD --target-base-url TU download
//! ```
//! Trusted state lives in `D` ([`DirStore`]); targets are written to `TD` under their
//! percent-encoded target path, only after their length and hashes are verified.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use chrono::Utc;
use clap::{Args, Subcommand};
use pullguard_plugin::io::{read_file, write_atomic};
use pullguard_plugin::source::http::HttpSource;
use pullguard_plugin::store::dir::DirStore;

use pullguard_plugin::tuf::names::encode_component;
use pullguard_plugin::tuf::trusted::{check_hashes, check_length};
use pullguard_plugin::tuf::{Limits, TargetInfo, Updater};

#[derive(Debug, Args)]
pub struct TufClientArgs {
    /// Base URL of the repository's metadata (ends in `/`, already percent-encoded).
    #[arg(long, global = true)]
    metadata_url: Option<String>,
    /// Directory holding the trusted metadata.
    #[arg(long, global = true)]
    metadata_dir: Option<PathBuf>,
    /// Target path to download (repeatable; looked up in order with one trusted state).
    #[arg(long = "target-name", global = true)]
    target_names: Vec<String>,
    /// Directory to write verified targets into.
    #[arg(long, global = true)]
    target_dir: Option<PathBuf>,
    /// Base URL of the repository's targets (ends in `/`, already percent-encoded).
    #[arg(long, global = true)]
    target_base_url: Option<String>,
    /// Print progress to stderr.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Per-request time limit, in seconds.
    #[arg(long, global = true, default_value_t = 30)]
    timeout: u64,
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Trust ROOT_FILE: copy it into the metadata directory as root.json.
    Init { root_file: PathBuf },
    /// Update the trusted metadata from the repository.
    Refresh,
    /// Refresh, then download and verify each --target-name into --target-dir.
    Download,
}

impl TufClientArgs {
    fn metadata_dir(&self) -> Result<&Path> {
        self.metadata_dir
            .as_deref()
            .ok_or_else(|| anyhow!("--metadata-dir is required"))
    }

    fn log(&self, message: impl AsRef<str>) {
        if self.verbose > 0 {
            eprintln!("tuf-client: {}", message.as_ref());
        }
    }
}

pub fn run(args: TufClientArgs) -> Result<()> {
    match &args.action {
        Action::Init { root_file } => init(&args, root_file),
        Action::Refresh => {
            // As after a download: the process ends next.
            std::mem::forget(refresh(&args, None)?);
            Ok(())
        }
        Action::Download => download(&args),
    }
}

fn init(args: &TufClientArgs, root_file: &Path) -> Result<()> {
    let dir = args.metadata_dir()?;
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let bytes = read_file(root_file, Limits::default().root_max)
        .with_context(|| format!("reading {}", root_file.display()))?;
    let mut store = DirStore::open(dir)?;
    // No checks here: the root is verified (self-signed by a threshold) on first refresh.
    store.install_root(&bytes)?;
    args.log(format!(
        "trusted root copied to {}",
        dir.join("root.json").display()
    ));
    Ok(())
}

type Client = Updater<HttpSource, DirStore>;

fn refresh(args: &TufClientArgs, targets_base: Option<&str>) -> Result<Client> {
    let dir = args.metadata_dir()?;
    let url = args
        .metadata_url
        .as_deref()
        .ok_or_else(|| anyhow!("--metadata-url is required"))?;
    let source = HttpSource::new(url, targets_base, Duration::from_secs(args.timeout))
        .map_err(|e| anyhow!(e))?;
    let store = DirStore::open(dir)?;
    let mut updater = Updater::new(source, store, Limits::default());
    // The update start time (TUF 5.1), read through libc so that faketime applies.
    let now = Utc::now();
    updater.refresh(now).context("refresh failed")?;
    if let Some(t) = updater.trusted() {
        args.log(format!(
            "refreshed: root v{}, valid until {}",
            t.root().signed.version,
            t.valid_until()
        ));
    }
    Ok(updater)
}

fn download(args: &TufClientArgs) -> Result<()> {
    let target_dir = args
        .target_dir
        .as_deref()
        .ok_or_else(|| anyhow!("--target-dir is required"))?;
    let base = args
        .target_base_url
        .as_deref()
        .ok_or_else(|| anyhow!("--target-base-url is required"))?;
    if args.target_names.is_empty() {
        bail!("--target-name is required");
    }
    let mut updater = refresh(args, Some(base))?;
    fs::create_dir_all(target_dir).with_context(|| format!("creating {}", target_dir.display()))?;
    for name in &args.target_names {
        let info = updater
            .target_info(name)
            .with_context(|| format!("looking up target {name}"))?
            .ok_or_else(|| anyhow!("target {name} is not listed by any trusted targets role"))?;
        let path = target_dir.join(encode_component(name));
        if is_cached(&info, &path) {
            args.log(format!("{name}: already present and valid"));
            continue;
        }
        let bytes = updater
            .fetch_target(&info)
            .with_context(|| format!("downloading target {name}"))?;
        // Through a hidden temporary file: a failure never leaves a partial target, and an
        // old verified file stays until the new one is complete.
        write_atomic(&path, &bytes).with_context(|| format!("writing {}", path.display()))?;
        args.log(format!("{name}: {} bytes verified, written", bytes.len()));
    }
    // The process ends next: its memory goes back to the system at once, without a walk
    // over every trusted target to free them one by one (a few ms for 10,000). Everything
    // written is already durable.
    std::mem::forget(updater);
    Ok(())
}

/// A target already on disk with the trusted length and every trusted hash is not fetched.
fn is_cached(info: &TargetInfo, path: &Path) -> bool {
    let Ok(bytes) = read_file(path, info.file.length) else {
        return false;
    };
    check_length(&info.path, "", info.file.length, &bytes).is_ok()
        && check_hashes(&info.path, "", &info.file.hashes, &bytes).is_ok()
}
