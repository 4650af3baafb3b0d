//! `pullguard verify` and `pullguard bundle`: check an image against a scope's trust data
//! (from the registry, a plain TUF HTTP server, a directory, or an offline bundle), keeping
//! the trusted state in a directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use chrono::Utc;
use clap::{Args, Subcommand};
use pullguard_plugin::bundle::{export, Bundle};
use pullguard_plugin::config::{Config, Require, DEADLINE_MAX};
use pullguard_plugin::image::{pin, verify_image, Checked, SignatureSource};
use pullguard_plugin::io::{error_chain, write_atomic, Deadline};
use pullguard_plugin::registry::{ImageRef, NameError, Scope};
use pullguard_plugin::source::dir::DirSource;
use pullguard_plugin::source::http::HttpSource;
use pullguard_plugin::source::oci::OciSource;
use pullguard_plugin::store::dir::DirStore;
use pullguard_plugin::store::scoped::{self, ScopeError};
use pullguard_plugin::tuf::fetch::MetadataSource;
use pullguard_plugin::tuf::{Limits, Updater};
use pullguard_plugin::verdict::{one_line, ReasonCode, Verdict};

use crate::ask::SocketArgs;
use crate::exit::Exit;

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// REGISTRY/NAMESPACE/REPO:TAG, optionally @sha256:... (else the tag is resolved in the
    /// registry, as a pull would).
    image: String,
    /// The trust scope, REGISTRY/NAMESPACE (with --state).
    #[arg(long, requires = "state")]
    scope: Option<String>,
    /// Check here, keeping this scope's trusted state in this directory, instead of asking
    /// the daemon.
    #[arg(long, requires = "scope")]
    state: Option<PathBuf>,
    #[command(flatten)]
    daemon: SocketArgs,
    /// The scope's initial trust root, needed the first time a state directory is used.
    #[arg(long, requires = "state")]
    root: Option<PathBuf>,
    /// Registry repository of the metadata (default: NAMESPACE/trust).
    #[arg(long, requires = "state")]
    trust_repository: Option<String>,
    /// Read metadata from a plain TUF server (base URL) instead of the registry.
    #[arg(long, conflicts_with_all = ["metadata_dir", "bundle"], requires = "state")]
    metadata_url: Option<String>,
    /// Read metadata from a directory in the standard layout instead of the registry.
    #[arg(long, conflicts_with = "bundle", requires = "state")]
    metadata_dir: Option<PathBuf>,
    /// Read metadata and signatures from an offline bundle.
    #[arg(long, requires = "state")]
    bundle: Option<PathBuf>,
    /// One time limit for the whole check (tag resolution, metadata refresh, signatures),
    /// e.g. `5s`; when it runs out the answer is `DENY unavailable`, naming the slow step.
    #[arg(long, default_value = "5s", value_parser = parse_deadline)]
    deadline: Duration,
}

fn parse_deadline(s: &str) -> std::result::Result<Duration, String> {
    let d = pullguard_plugin::config::parse_setting_duration(s, false)?;
    if d > DEADLINE_MAX {
        return Err(format!(
            "`{s}`: a deadline is at most {} s",
            DEADLINE_MAX.as_secs()
        ));
    }
    Ok(d)
}

#[derive(Debug, Subcommand)]
pub enum BundleCommand {
    /// Collect a scope's current metadata and the signatures of IMAGES into one file.
    Export {
        #[arg(long)]
        scope: String,
        #[arg(long)]
        trust_repository: Option<String>,
        #[arg(long)]
        out: PathBuf,
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Verify every image of a bundle offline and keep the result as trusted state.
    Import {
        bundle: PathBuf,
        #[arg(long)]
        state: PathBuf,
        /// The scope the bundle must be for (else the bundle's own, which must then match
        /// the state directory's).
        #[arg(long)]
        scope: Option<String>,
        #[arg(long)]
        root: Option<PathBuf>,
    },
}

/// Prints the one verdict line of a check: `ADMIT <path>: …` or `DENY <reason> <path>: …`,
/// where the path is the image's target path in the scope, else `shown`.
fn report(checked: &Checked, shown: &str) -> bool {
    let v = &checked.verdict;
    let what = match checked.target_path.as_str() {
        "" => shown,
        path => path,
    };
    let what = match what {
        "" => "\"\"",
        w => w,
    };
    let (what, message) = (one_line(what), one_line(&v.message));
    if v.admitted {
        println!("ADMIT {what}: {message}");
    } else {
        println!("DENY {} {what}: {message}", v.reason.as_str());
    }
    v.admitted
}

fn scope_of(s: &str) -> Result<Scope> {
    s.parse().map_err(anyhow::Error::from)
}

/// [`scoped::open`], saying so when a given root is not used.
fn open_state(state: &Path, root: Option<&Path>, scope: &Scope) -> Result<DirStore, ScopeError> {
    let opened = scoped::open(state, root, scope)?;
    if opened.root_not_used {
        eprintln!(
            "note: {} already trusts a root (it may have been rotated since); --root is not used",
            state.display()
        );
    }
    Ok(opened.store)
}

fn check<S: MetadataSource>(
    updater: &mut Updater<S, DirStore>,
    signatures: &dyn SignatureSource,
    scope: &Scope,
    image: &ImageRef,
) -> Checked {
    let checked = verify_image(updater, signatures, scope, image, Require::Both, Utc::now());
    // Once a refresh for this scope succeeded, the state directory belongs to it.
    if let Err(e) = scoped::bind_after_refresh(updater.store(), scope) {
        eprintln!("warning: {e}");
    }
    checked
}

fn updater<S: MetadataSource>(source: S, store: DirStore) -> Updater<S, DirStore> {
    Updater::new(source, store, Limits::default())
}

/// Verifies one image and prints its one verdict line, whatever happened: here with
/// `--state`, else by asking the daemon. Bad input is [`Exit::Error`] (its line is still
/// printed). The config is read only when the registry or the daemon is used (an offline
/// check with `--bundle` needs none).
pub fn verify(a: VerifyArgs, config: &dyn Fn() -> Result<Config>) -> Result<Exit> {
    if a.state.is_none() {
        return crate::ask::verify(&a.image, a.daemon, config);
    }
    if a.daemon.socket.is_some() || a.daemon.json {
        bail!("--socket and --json ask the daemon: they do not go with --state");
    }
    // Named by its target path when the image is in the scope, else as given.
    let shown = match (
        scope_of(a.scope.as_deref().unwrap_or("")),
        a.image.parse::<ImageRef>(),
    ) {
        (Ok(scope), Ok(image)) => scope.target_path(&image),
        _ => None,
    }
    .unwrap_or_else(|| a.image.clone());
    // A check that ends before a verdict is reached (bad input, no usable state, the
    // registry failing while the tag is resolved) is still one verdict line.
    let checked = check_image(a, config).unwrap_or_else(|verdict| Checked {
        verdict,
        target_path: String::new(),
        signature_version: None,
        evidence: None,
    });
    let admitted = report(&checked, &shown);
    Ok(match checked.verdict.reason {
        ReasonCode::InvalidRequest | ReasonCode::Internal => Exit::Error,
        _ => Exit::from(admitted),
    })
}

/// A denial for bad input, saying the whole cause.
fn invalid(e: impl Into<anyhow::Error>) -> Verdict {
    Verdict::deny(ReasonCode::InvalidRequest, error_chain(e.into().as_ref()))
}

fn check_image(
    a: VerifyArgs,
    config: &dyn Fn() -> Result<Config>,
) -> std::result::Result<Checked, Verdict> {
    let scope = scope_of(a.scope.as_deref().unwrap_or("")).map_err(invalid)?;
    let image: ImageRef = a.image.parse().map_err(|e: NameError| invalid(e))?;
    if scope.target_path(&image).is_none() {
        return Err(invalid(anyhow!("{image} is not in scope {scope}")));
    }
    let state = a.state.as_deref().unwrap_or(Path::new("."));
    let store = open_state(state, a.root.as_deref(), &scope)
        .map_err(|e| Verdict::deny(e.reason(), error_chain(&e)))?;
    let deadline = Deadline::after(a.deadline);
    if let Some(path) = &a.bundle {
        let bundle = read_bundle(path).map_err(invalid)?;
        if scope_of(&bundle.scope).map_err(invalid)? != scope {
            return Err(invalid(anyhow!(
                "{} is a bundle for scope {}, not {scope}",
                path.display(),
                bundle.scope
            )));
        }
        let image = bundle.pin(&image)?;
        return Ok(check(&mut updater(&bundle, store), &bundle, &scope, &image));
    }
    let registry = config()
        .and_then(|c| c.registry(scope.registry()).map_err(|e| anyhow!(e)))
        .map_err(invalid)?;
    let registry = Arc::new(registry.with_deadline(deadline));
    let image = pin(&registry, &image)?;
    let checked = match (&a.metadata_url, &a.metadata_dir) {
        (Some(url), _) => {
            let source = HttpSource::new(url, None, Duration::from_secs(30))
                .map_err(|e| invalid(anyhow!(e)))?
                .with_deadline(deadline);
            check(
                &mut updater(source, store),
                registry.as_ref(),
                &scope,
                &image,
            )
        }
        (None, Some(dir)) => check(
            &mut updater(DirSource::new(dir, dir.join("targets")), store),
            registry.as_ref(),
            &scope,
            &image,
        ),
        (None, None) => {
            let mut source = OciSource::new(Arc::clone(&registry), scope.clone());
            if let Some(repo) = &a.trust_repository {
                source = source.with_trust_repository(repo);
            }
            check(
                &mut updater(source, store),
                registry.as_ref(),
                &scope,
                &image,
            )
        }
    };
    Ok(checked)
}

fn read_bundle(path: &Path) -> Result<Bundle> {
    Bundle::read(path).map_err(|e| anyhow!(e))
}

/// `bundle export` reads the config (it talks to the registry); `bundle import` does not.
pub fn bundle(cmd: BundleCommand, config: &dyn Fn() -> Result<Config>) -> Result<bool> {
    match cmd {
        BundleCommand::Export {
            scope,
            trust_repository,
            out,
            images,
        } => {
            let scope = scope_of(&scope)?;
            let registry = config()?
                .registry(scope.registry())
                .map_err(|e| anyhow!(e))?;
            let mut source = OciSource::new(Arc::clone(&registry), scope.clone());
            if let Some(repo) = &trust_repository {
                source = source.with_trust_repository(repo);
            }
            let images = images
                .iter()
                .map(|i| i.parse::<ImageRef>().map_err(anyhow::Error::from))
                .collect::<Result<Vec<_>>>()?;
            let (bundle, left_out) = export(&source, &registry, &scope, &images)?;
            // Said here: the importing side would only see them missing.
            for l in left_out {
                eprintln!(
                    "warning: a signature of {} is not bundled ({}): {}",
                    l.image,
                    l.why.reason.as_str(),
                    l.why.message
                );
            }
            let bytes = bundle.to_vec().map_err(|e| anyhow!(e))?;
            write_atomic(&out, &bytes).with_context(|| out.display().to_string())?;
            println!(
                "wrote {}: {} metadata file(s), {} image(s)",
                out.display(),
                bundle.metadata.len(),
                bundle.images.len()
            );
            Ok(true)
        }
        BundleCommand::Import {
            bundle,
            state,
            scope: expected,
            root,
        } => {
            let b = read_bundle(&bundle)?;
            let scope = scope_of(&b.scope)?;
            if let Some(expected) = expected {
                if scope_of(&expected)? != scope {
                    bail!(
                        "{} is a bundle for scope {scope}, not {expected}",
                        bundle.display()
                    );
                }
            }
            // One trusted state and one updater for every image of the bundle.
            let mut updater = updater(&b, open_state(&state, root.as_deref(), &scope)?);
            let mut all_ok = true;
            for img in &b.images {
                let image: ImageRef = img.reference.parse().map_err(anyhow::Error::from)?;
                let image = image.with_digest(img.digest.clone());
                all_ok &= report(&check(&mut updater, &b, &scope, &image), &img.reference);
            }
            // Kept for later offline checks (`verify --bundle STATE/bundle.json`), but only a
            // bundle whose every image verified.
            if all_ok {
                let kept = state.join("bundle.json");
                let bytes = b.to_vec().map_err(|e| anyhow!(e))?;
                write_atomic(&kept, &bytes).with_context(|| kept.display().to_string())?;
            }
            Ok(all_ok)
        }
    }
}
