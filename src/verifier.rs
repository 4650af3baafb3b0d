//! `pullguard verify` and `pullguard bundle`: check an image against a scope's trust data
//! (from the registry, a plain TUF HTTP server, a directory, or an offline bundle), keeping
//! the trusted state in a directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use chrono::Utc;
use clap::{Args, Subcommand};
use pullguard_plugin::bundle::{Bundle, BundledImage};
use pullguard_plugin::config::Config;
use pullguard_plugin::image::{verify_image, Checked, SignatureSource};
use pullguard_plugin::registry::oci::IMAGE_MEDIA_TYPES;
use pullguard_plugin::registry::{ImageRef, Registry, Scope};
use pullguard_plugin::source::dir::DirSource;
use pullguard_plugin::source::http::HttpSource;
use pullguard_plugin::source::oci::OciSource;
use pullguard_plugin::source::{metadata_file_name, MetadataSource};
use pullguard_plugin::store::dir::{write_atomic, DirStore};
use pullguard_plugin::store::TrustStore;
use pullguard_plugin::tuf::schema::{Envelope, Snapshot, Timestamp};
use pullguard_plugin::tuf::{Limits, RoleName, Updater};

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// REGISTRY/NAMESPACE/REPO:TAG, optionally @sha256:... (else the tag is resolved in the
    /// registry, as a pull would).
    image: String,
    /// The trust scope, REGISTRY/NAMESPACE.
    #[arg(long)]
    scope: String,
    /// Directory of trusted state for this scope.
    #[arg(long)]
    state: PathBuf,
    /// The scope's initial trust root, needed the first time a state directory is used.
    #[arg(long)]
    root: Option<PathBuf>,
    /// Registry repository of the metadata (default: NAMESPACE/trust).
    #[arg(long)]
    trust_repository: Option<String>,
    /// Read metadata from a plain TUF server (base URL) instead of the registry.
    #[arg(long, conflicts_with_all = ["metadata_dir", "bundle"])]
    metadata_url: Option<String>,
    /// Read metadata from a directory in the standard layout instead of the registry.
    #[arg(long, conflicts_with = "bundle")]
    metadata_dir: Option<PathBuf>,
    /// Read metadata and signatures from an offline bundle.
    #[arg(long)]
    bundle: Option<PathBuf>,
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

/// Opens the trusted state of `scope` in `state`. A state directory belongs to one scope
/// (recorded in `.pullguard-scope`): using it for another is refused, never mixed.
fn open_state(state: &Path, root: Option<&Path>, scope: &Scope) -> Result<DirStore> {
    let mut store = DirStore::open(state)?;
    let marker = state.join(SCOPE_MARKER);
    match std::fs::read_to_string(&marker) {
        Ok(recorded) if recorded.trim() != scope.to_string() => bail!(
            "{} holds the trusted state of scope {}, not {scope}",
            state.display(),
            recorded.trim()
        ),
        Ok(_) => {}
        // Bound to the scope after its first successful refresh (see `check`).
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(anyhow!("{}: {e}", marker.display())),
    }
    if store.load(&RoleName::root())?.is_some() {
        if root.is_some() {
            eprintln!(
                "note: {} already trusts a root (it may have been rotated since); --root is not used",
                state.display()
            );
        }
    } else {
        let root = root.ok_or_else(|| {
            anyhow!(
                "{} has no trusted root yet: pass the scope's root with --root",
                state.display()
            )
        })?;
        let bytes = std::fs::read(root).with_context(|| root.display().to_string())?;
        store.install_root(&bytes)?;
    }
    Ok(store)
}

fn report(checked: &Checked) -> bool {
    let v = &checked.verdict;
    if v.admitted {
        println!("ADMIT {}: {}", checked.target_path, v.message);
    } else {
        println!(
            "DENY {} {}: {}",
            v.reason.as_str(),
            checked.target_path,
            v.message
        );
    }
    v.admitted
}

fn scope_of(s: &str) -> Result<Scope> {
    s.parse().map_err(|e: String| anyhow!(e))
}

fn check<S: MetadataSource>(
    updater: &mut Updater<S, DirStore>,
    signatures: &dyn SignatureSource,
    scope: &Scope,
    image: &ImageRef,
) -> Checked {
    let checked = verify_image(updater, signatures, scope, image, Utc::now());
    // Once a refresh for this scope succeeded, the state directory belongs to it.
    let store = updater.store();
    if let Ok(Some(_)) = store.load(&RoleName::timestamp()) {
        let marker = store.dir().join(SCOPE_MARKER);
        if !marker.exists() {
            if let Err(e) = write_atomic(&marker, scope.to_string().as_bytes()) {
                eprintln!("warning: {}: {e}", marker.display());
            }
        }
    }
    checked
}

/// Names the scope whose trusted state a state directory holds.
const SCOPE_MARKER: &str = ".pullguard-scope";

fn updater<S: MetadataSource>(source: S, store: DirStore) -> Updater<S, DirStore> {
    Updater::new(source, store, Limits::default())
}

/// Verifies one image; `Ok(false)` is a denial (already reported). The config is read only
/// when the registry is used (an offline check with `--bundle` needs none).
pub fn verify(a: VerifyArgs, config: &dyn Fn() -> Result<Config>) -> Result<bool> {
    let scope = scope_of(&a.scope)?;
    let mut image: ImageRef = a.image.parse().map_err(|e: String| anyhow!(e))?;
    let store = open_state(&a.state, a.root.as_deref(), &scope)?;
    if let Some(path) = &a.bundle {
        let bundle = read_bundle(path)?;
        if scope_of(&bundle.scope)? != scope {
            bail!(
                "{} is a bundle for scope {}, not {scope}",
                path.display(),
                bundle.scope
            );
        }
        if image.digest().is_none() {
            let found = bundle
                .images
                .iter()
                .find(|i| i.reference == image.to_string())
                .ok_or_else(|| anyhow!("{image} is not in the bundle; give its digest"))?;
            image = image.with_digest(found.digest.clone());
        }
        return Ok(report(&check(
            &mut updater(&bundle, store),
            &bundle,
            &scope,
            &image,
        )));
    }
    let registry = config()?
        .registry(scope.registry())
        .map_err(|e| anyhow!(e))?;
    if image.digest().is_none() {
        let tag = image.tag().unwrap_or_default().to_string();
        let digest = registry
            .resolve(image.repository(), &tag, &IMAGE_MEDIA_TYPES)?
            .ok_or_else(|| anyhow!("{image} does not exist in the registry"))?;
        image = image.with_digest(digest);
    }
    let checked = match (&a.metadata_url, &a.metadata_dir) {
        (Some(url), _) => {
            let source =
                HttpSource::new(url, None, Duration::from_secs(30)).map_err(|e| anyhow!(e))?;
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
    Ok(report(&checked))
}

/// Reads a bundle, never more than one byte past the limit that `Bundle::from_slice` checks.
fn read_bundle(path: &Path) -> Result<Bundle> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| {
            f.take(pullguard_plugin::bundle::BUNDLE_MAX + 1)
                .read_to_end(&mut bytes)
        })
        .with_context(|| path.display().to_string())?;
    Bundle::from_slice(&bytes).map_err(|e| anyhow!("{}: {e}", path.display()))
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
            let bundle = export(&source, &registry, &scope, &images)?;
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
                let image: ImageRef = img.reference.parse().map_err(|e: String| anyhow!(e))?;
                let image = image.with_digest(img.digest.clone());
                all_ok &= report(&check(&mut updater, &b, &scope, &image));
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

/// Reads the current metadata (every root version, then timestamp, snapshot and the targets
/// roles the snapshot lists) and each image's signatures. Nothing is trusted here: the
/// importing side verifies it all.
fn export(
    source: &OciSource,
    registry: &Arc<Registry>,
    scope: &Scope,
    images: &[String],
) -> Result<Bundle> {
    let limits = Limits::default();
    let mut bundle = Bundle::new(&scope.to_string());
    let root = RoleName::root();
    for version in 1..=limits.max_root_rotations + 1 {
        match source.fetch_metadata(&root, Some(version), limits.root_max) {
            Ok(bytes) => bundle
                .add_metadata(&metadata_file_name(&root, Some(version)), bytes)
                .map_err(|e| anyhow!(e))?,
            Err(e) if e.is_not_found() => break,
            Err(e) => return Err(e.into()),
        }
    }
    let ts_bytes = source.fetch_metadata(&RoleName::timestamp(), None, limits.timestamp_max)?;
    let ts = Envelope::<Timestamp>::from_slice(&ts_bytes).map_err(|e| anyhow!("timestamp: {e}"))?;
    let snapshot_version = ts.signed.snapshot_meta().version.get();
    bundle
        .add_metadata("timestamp.json", ts_bytes)
        .map_err(|e| anyhow!(e))?;
    let snap_bytes = source.fetch_metadata(
        &RoleName::snapshot(),
        Some(snapshot_version),
        limits.snapshot_max,
    )?;
    let snap =
        Envelope::<Snapshot>::from_slice(&snap_bytes).map_err(|e| anyhow!("snapshot: {e}"))?;
    bundle
        .add_metadata(
            &metadata_file_name(&RoleName::snapshot(), Some(snapshot_version)),
            snap_bytes,
        )
        .map_err(|e| anyhow!(e))?;
    for (file, meta) in &snap.signed.meta {
        let role = RoleName::new(file.trim_end_matches(".json")).map_err(|e| anyhow!(e))?;
        let v = meta.version.get();
        let bytes = source.fetch_metadata(&role, Some(v), limits.targets_max)?;
        bundle
            .add_metadata(&metadata_file_name(&role, Some(v)), bytes)
            .map_err(|e| anyhow!(e))?;
    }
    for reference in images {
        let image: ImageRef = reference.parse().map_err(|e: String| anyhow!(e))?;
        let digest = match image.digest() {
            Some(d) => d.clone(),
            None => registry
                .resolve(
                    image.repository(),
                    image.tag().unwrap_or_default(),
                    &IMAGE_MEDIA_TYPES,
                )?
                .ok_or_else(|| anyhow!("{image} does not exist in the registry"))?,
        };
        let mut signatures = Vec::new();
        for read in registry.signatures(image.repository(), &digest)? {
            match read {
                Ok(b) => signatures.push(
                    String::from_utf8(b)
                        .map_err(|_| anyhow!("a signature of {image} is not UTF-8"))?,
                ),
                // Left out, and said so: the importing side would only see it missing.
                Err((reason, message)) => eprintln!(
                    "warning: a signature of {image} is not bundled ({}): {message}",
                    reason.as_str()
                ),
            }
        }
        bundle.images.push(BundledImage {
            reference: reference.split('@').next().unwrap_or(reference).to_string(),
            digest,
            repository: image.repository().to_string(),
            signatures,
        });
    }
    Ok(bundle)
}
