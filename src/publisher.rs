//! `pullguard key`, `pullguard repo` and `pullguard sign`: the publisher's commands. They
//! edit a working copy ([`Workspace`]) and talk to the registry for `sign` and `publish`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use chrono::Utc;
use clap::{Args, Subcommand, ValueEnum};
use pullguard_plugin::config::Config;
use pullguard_plugin::io::write_atomic;
use pullguard_plugin::publish::keyfile;
use pullguard_plugin::publish::repo::{
    check_bin_count, Expiries, NewTarget, Retention, RoleKeys, Workspace,
};
use pullguard_plugin::registry::oci::{ARTIFACT_SIGNATURE, ARTIFACT_TUF, IMAGE_MEDIA_TYPES};
use pullguard_plugin::registry::ImageRef;
use pullguard_plugin::tuf::signing::SigningKey;
use pullguard_plugin::tuf::RoleName;

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Write a new private key (PKCS#8 PEM, mode 0600) and its public key (`<file>.pub`).
    Generate {
        file: PathBuf,
        #[arg(long = "type", value_enum, default_value_t = KeyType::Ed25519)]
        key_type: KeyType,
    },
    /// Print a key's ID and its public key as metadata lists it.
    Show { file: PathBuf },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum KeyType {
    Ed25519,
    EcdsaP256,
}

pub fn key(cmd: KeyCommand) -> Result<()> {
    match cmd {
        KeyCommand::Generate { file, key_type } => {
            let key = match key_type {
                KeyType::Ed25519 => SigningKey::generate_ed25519(),
                KeyType::EcdsaP256 => SigningKey::generate_ecdsa_p256(),
            }?;
            keyfile::write_new(&file, &key)?;
            println!("{}  {}", key.key_id(), file.display());
            println!("public key: {}", keyfile::public_path(&file).display());
        }
        KeyCommand::Show { file } => {
            let key = keyfile::read(&file)?;
            println!("keyid: {}", key.key_id());
            println!("{}", serde_json::to_string_pretty(&key.public())?);
        }
    }
    Ok(())
}

/// The working copy: `--dir`, else `./pullguard-repo`.
#[derive(Debug, Args, Clone)]
pub struct DirArg {
    #[arg(long, default_value = "pullguard-repo")]
    dir: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum RepoCommand {
    /// Create root v1 and the first targets, snapshot and timestamp for a scope.
    Init(InitArgs),
    /// Delegate repository path patterns (e.g. `team/*`) to a new targets role.
    Delegate(DelegateArgs),
    /// Replace the keys of a role (root, a top-level role, or a delegated role).
    Rotate(RotateArgs),
    /// Re-sign the snapshot (fresh expiry), applying the retention policy where the keys of
    /// a targets role are given.
    Snapshot(SnapshotArgs),
    /// Re-sign the timestamp of the current snapshot (fresh expiry).
    Timestamp(TimestampArgs),
    /// Push every changed metadata file to the registry's trust repository, or write them
    /// to a directory (`--to-dir`) for plain HTTP or file serving.
    Publish(PublishArgs),
}

#[derive(Debug, Args)]
pub struct InitArgs {
    #[command(flatten)]
    dir: DirArg,
    /// REGISTRY/NAMESPACE, e.g. registry.example.com:5000/acme
    #[arg(long)]
    scope: String,
    /// Registry repository for the metadata (default: NAMESPACE/trust).
    #[arg(long)]
    trust_repository: Option<String>,
    #[arg(long = "root-key", required = true)]
    root_keys: Vec<PathBuf>,
    #[arg(long, default_value_t = 1)]
    root_threshold: u64,
    #[arg(long = "targets-key", required = true)]
    targets_keys: Vec<PathBuf>,
    #[arg(long, default_value_t = 1)]
    targets_threshold: u64,
    #[arg(long = "snapshot-key", required = true)]
    snapshot_keys: Vec<PathBuf>,
    #[arg(long, default_value_t = 1)]
    snapshot_threshold: u64,
    #[arg(long = "timestamp-key", required = true)]
    timestamp_keys: Vec<PathBuf>,
    #[arg(long, default_value_t = 1)]
    timestamp_threshold: u64,
    #[arg(long, default_value = "365d")]
    root_expires: String,
    #[arg(long, default_value = "90d")]
    targets_expires: String,
    #[arg(long, default_value = "7d")]
    snapshot_expires: String,
    #[arg(long, default_value = "1d")]
    timestamp_expires: String,
    /// Validity of detached image signatures.
    #[arg(long, default_value = "90d")]
    signature_expires: String,
    #[command(flatten)]
    retention: RetentionArgs,
    /// Hand every image path to this many hash bins (a power of two, 2 to 16384; TAP 15),
    /// signed by the targets keys: a node then fetches only the bin of the image it checks.
    /// About one bin per hundred images keeps each document small (1024 for 100,000).
    #[arg(long)]
    bins: Option<u32>,
}

#[derive(Debug, Args, Clone, Default)]
pub struct RetentionArgs {
    /// Keep only the newest N signed tags per repository.
    #[arg(long)]
    keep: Option<usize>,
    /// Drop targets signed longer ago than this (e.g. 30d).
    #[arg(long)]
    max_age: Option<String>,
}

impl RetentionArgs {
    fn given(&self) -> bool {
        self.keep.is_some() || self.max_age.is_some()
    }
    fn to_retention(&self) -> Retention {
        Retention {
            keep: self.keep,
            max_age: self.max_age.clone(),
        }
    }
}

#[derive(Debug, Args)]
pub struct DelegateArgs {
    #[command(flatten)]
    dir: DirArg,
    /// Name of the new role (letters, digits, `_.-`; it becomes part of a tag).
    #[arg(long)]
    role: String,
    /// Target path patterns, e.g. `team/*` (`*` and `?` never cross `/`).
    #[arg(long = "paths", required = true, num_args = 1..)]
    paths: Vec<String>,
    /// The role's keys: public `.pub` files are enough (the role's metadata then appears
    /// with its first `sign`); private keys also sign its empty first version.
    #[arg(long = "key", required = true)]
    keys: Vec<PathBuf>,
    #[arg(long, default_value_t = 1)]
    threshold: u64,
    #[arg(long)]
    terminating: bool,
    /// The delegating role.
    #[arg(long, default_value = "targets")]
    parent: String,
    /// Private keys of the delegating role.
    #[arg(long = "signing-key", required = true)]
    signing_keys: Vec<PathBuf>,
    /// Hand the new role's paths to this many hash bins (a power of two, 2 to 16384),
    /// signed by its keys; `--key` must then name its private keys.
    #[arg(long)]
    bins: Option<u32>,
}

#[derive(Debug, Args)]
pub struct RotateArgs {
    #[command(flatten)]
    dir: DirArg,
    #[arg(long)]
    role: String,
    /// The new private keys (they sign the rotated role at once).
    #[arg(long = "new-key", required = true)]
    new_keys: Vec<PathBuf>,
    #[arg(long, default_value_t = 1)]
    threshold: u64,
    /// Keys that authorise the change: the current root keys (root and top-level roles) or
    /// the delegating role's keys.
    #[arg(long = "signing-key", required = true)]
    signing_keys: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SnapshotArgs {
    #[command(flatten)]
    dir: DirArg,
    #[arg(long = "key", required = true)]
    keys: Vec<PathBuf>,
    /// Keys of targets roles, to apply the retention policy to them.
    #[arg(long = "role-key")]
    role_keys: Vec<PathBuf>,
    /// Change the stored retention policy.
    #[command(flatten)]
    retention: RetentionArgs,
}

#[derive(Debug, Args)]
pub struct TimestampArgs {
    #[command(flatten)]
    dir: DirArg,
    #[arg(long = "key", required = true)]
    keys: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    #[command(flatten)]
    dir: DirArg,
    /// Write the standard TUF file layout here instead of pushing to the registry.
    #[arg(long)]
    to_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SignArgs {
    /// Images, REGISTRY/NAMESPACE/REPO:TAG (resolved to the manifest digest), or
    /// REGISTRY/NAMESPACE/REPO@sha256:... to sign a digest pin. Signed in order; the first
    /// failure stops (what was signed before it stays signed).
    #[arg(required = true, num_args = 1..)]
    images: Vec<String>,
    #[arg(long = "key", required = true)]
    keys: Vec<PathBuf>,
    #[command(flatten)]
    dir: DirArg,
}

fn private_keys(paths: &[PathBuf]) -> Result<Vec<SigningKey>> {
    paths
        .iter()
        .map(|p| keyfile::read_private(p).map_err(Into::into))
        .collect()
}

fn refs(keys: &[SigningKey]) -> Vec<&SigningKey> {
    keys.iter().collect()
}

/// Only `repo publish` reads the config (it may talk to the registry).
pub fn repo(cmd: RepoCommand, config: &dyn Fn() -> Result<Config>) -> Result<()> {
    let now = Utc::now();
    match cmd {
        RepoCommand::Init(a) => {
            let scope = a.scope.parse().map_err(anyhow::Error::from)?;
            if let Some(count) = a.bins {
                check_bin_count(count)?;
            }
            let mut signers = Vec::new();
            let mut roles = Vec::new();
            for (name, paths, threshold) in [
                ("root", &a.root_keys, a.root_threshold),
                ("targets", &a.targets_keys, a.targets_threshold),
                ("snapshot", &a.snapshot_keys, a.snapshot_threshold),
                ("timestamp", &a.timestamp_keys, a.timestamp_threshold),
            ] {
                let keys = private_keys(paths).with_context(|| format!("--{name}-key"))?;
                roles.push((
                    name,
                    RoleKeys {
                        keys: keys.iter().map(SigningKey::public).collect(),
                        threshold,
                    },
                ));
                signers.extend(keys);
            }
            let roles: [(&str, RoleKeys); 4] = roles
                .try_into()
                .map_err(|_| anyhow!("four top-level roles expected"))?;
            let expiries = Expiries {
                root: a.root_expires,
                targets: a.targets_expires,
                snapshot: a.snapshot_expires,
                timestamp: a.timestamp_expires,
                signature: a.signature_expires,
            };
            let mut ws = Workspace::init(
                &a.dir.dir,
                &scope,
                a.trust_repository.as_deref(),
                roles,
                expiries,
                a.retention.to_retention(),
                &refs(&signers),
                now,
            )?;
            if let Some(count) = a.bins {
                ws.add_bins(&RoleName::targets(), count, &refs(&signers), now)?;
                ws.snapshot(&refs(&signers), now)?;
                ws.timestamp(&refs(&signers), now)?;
                println!("targets hands its paths to {count} hash bins");
            }
            println!(
                "initialised {} for scope {} (metadata in registry repository {})",
                a.dir.dir.display(),
                ws.scope(),
                ws.trust_repository()
            );
            println!(
                "trust root for clients: {}",
                ws.metadata_dir().join("1.root.json").display()
            );
        }
        RepoCommand::Delegate(a) => {
            let mut ws = Workspace::open(&a.dir.dir)?;
            let parent = RoleName::new(a.parent).map_err(|e| anyhow!(e))?;
            let signers = private_keys(&a.signing_keys)?;
            let files = a
                .keys
                .iter()
                .map(|p| keyfile::read(p))
                .collect::<Result<Vec<_>, _>>()?;
            let keys = files.iter().map(keyfile::KeyFile::public).collect();
            // Private key files of the new role let its (empty) first version be signed now.
            let child: Vec<SigningKey> = files
                .into_iter()
                .filter_map(|f| match f {
                    keyfile::KeyFile::Private(k) => Some(k),
                    keyfile::KeyFile::Public(_) => None,
                })
                .collect();
            if let Some(count) = a.bins {
                check_bin_count(count)?;
                if child.is_empty() {
                    bail!(
                        "--bins needs the private keys of the new role (--key), to sign its bins"
                    );
                }
            }
            ws.delegate(
                &parent,
                &a.role,
                RoleKeys {
                    keys,
                    threshold: a.threshold,
                },
                a.paths.clone(),
                a.terminating,
                &refs(&signers),
                &refs(&child),
                now,
            )?;
            println!("{parent} delegates {} to {}", a.paths.join(" "), a.role);
            if let Some(count) = a.bins {
                let role = RoleName::new(a.role.clone()).map_err(|e| anyhow!(e))?;
                ws.add_bins(&role, count, &refs(&child), now)?;
                println!("{role} hands its paths to {count} hash bins");
            }
        }
        RepoCommand::Rotate(a) => {
            let mut ws = Workspace::open(&a.dir.dir)?;
            let role = RoleName::new(a.role).map_err(|e| anyhow!(e))?;
            let new_keys = private_keys(&a.new_keys)?;
            let signers = private_keys(&a.signing_keys)?;
            ws.rotate(&role, &refs(&new_keys), a.threshold, &refs(&signers), now)?;
            println!("rotated the keys of {role}; run `pullguard repo snapshot`, `repo timestamp` and `repo publish`");
        }
        RepoCommand::Snapshot(a) => {
            let mut ws = Workspace::open(&a.dir.dir)?;
            if a.retention.given() {
                ws.set_retention(a.retention.to_retention())?;
            }
            let role_keys = private_keys(&a.role_keys)?;
            let (done, skipped) = ws.prune(&refs(&role_keys), now)?;
            for p in done {
                println!(
                    "{}: dropped {} target(s) by the retention policy: {}",
                    p.role,
                    p.removed.len(),
                    p.removed.join(", ")
                );
            }
            for p in skipped {
                eprintln!("warning: {} has {} target(s) past the retention policy; pass its key with --role-key to drop them", p.role, p.removed.len());
            }
            let signers = private_keys(&a.keys)?;
            let v = ws.snapshot(&refs(&signers), now)?;
            println!("snapshot version {v}");
        }
        RepoCommand::Timestamp(a) => {
            let mut ws = Workspace::open(&a.dir.dir)?;
            let signers = private_keys(&a.keys)?;
            let v = ws.timestamp(&refs(&signers), now)?;
            println!("timestamp version {v}");
        }
        RepoCommand::Publish(a) => publish(&a, config)?,
    }
    Ok(())
}

enum Destination {
    Dir(PathBuf),
    Registry(std::sync::Arc<pullguard_plugin::registry::Registry>),
}

fn publish(a: &PublishArgs, config: &dyn Fn() -> Result<Config>) -> Result<()> {
    let started = Instant::now();
    let mut ws = Workspace::open(&a.dir.dir)?;
    ws.check_consistent()?;
    let (destination, dir) = match &a.to_dir {
        Some(out) => {
            std::fs::create_dir_all(out).with_context(|| out.display().to_string())?;
            let out = std::fs::canonicalize(out).with_context(|| out.display().to_string())?;
            (format!("dir:{}", out.display()), Some(out))
        }
        None => (
            format!(
                "registry:{}/{}",
                ws.scope().registry(),
                ws.trust_repository()
            ),
            None,
        ),
    };
    let pending = ws.unpublished(&destination)?;
    if pending.is_empty() {
        println!("nothing to publish: {destination} is up to date");
        return Ok(());
    }
    let target = match dir {
        Some(out) => Destination::Dir(out),
        None => Destination::Registry(
            config()?
                .registry(ws.scope().registry())
                .map_err(|e| anyhow!(e))?,
        ),
    };
    ws.mark_attempts(&pending)?;
    for (name, bytes) in &pending {
        match &target {
            Destination::Dir(out) => {
                write_atomic(&out.join(name), bytes)
                    .with_context(|| out.join(name).display().to_string())?;
            }
            Destination::Registry(registry) => {
                let tag = name.trim_end_matches(".json");
                let annotations = [("org.opencontainers.image.title".to_string(), name.clone())]
                    .into_iter()
                    .collect();
                registry.push_artifact(
                    ws.trust_repository(),
                    Some(tag),
                    ARTIFACT_TUF,
                    bytes,
                    None,
                    Some(annotations),
                )?;
            }
        }
        ws.mark_published(&destination, name, bytes)?;
        println!("published {name}");
    }
    println!(
        "{} file(s) published to {destination} in {:.2} s",
        pending.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

pub fn sign(a: SignArgs, config: &Config) -> Result<()> {
    let mut ws = Workspace::open(&a.dir.dir)?;
    let signers = private_keys(&a.keys)?;
    let registry = config
        .registry(ws.scope().registry())
        .map_err(|e| anyhow!(e))?;
    // Each role is re-signed once for all the images (what was signed before a failure
    // stays signed).
    let mut signed = Vec::new();
    let mut failed = None;
    for image in &a.images {
        match sign_one(&mut ws, &registry, &signers, image) {
            Ok(target) => signed.push(target),
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    let pruned = ws.set_targets(&signed, &refs(&signers), Utc::now())?;
    for target in &signed {
        println!("listed {} in role {}", target.path, target.role);
    }
    for p in pruned {
        println!(
            "retention dropped from {}: {}",
            p.role,
            p.removed.join(", ")
        );
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Pushes the detached signature of one image and returns its target, to be listed.
fn sign_one(
    ws: &mut Workspace,
    registry: &pullguard_plugin::registry::Registry,
    signers: &[SigningKey],
    image: &str,
) -> Result<NewTarget> {
    let now = Utc::now();
    let image: ImageRef = image.parse().map_err(anyhow::Error::from)?;
    let scope = ws.scope().clone();
    let Some(repo) = scope.relative_repository(&image) else {
        bail!("{image} is not inside scope {scope}");
    };
    // A tag is signed as `repo:tag`; a reference with only a digest as the pin `repo@digest`
    // (the scope's own rule, as a node derives it).
    let target = scope
        .target_path(&image)
        .ok_or_else(|| anyhow!("{image}: a tag or a digest is needed"))?;
    let (reference, tags): (String, Vec<&str>) = match (image.tag(), image.digest()) {
        (Some(tag), _) => (tag.to_string(), vec![tag]),
        (None, Some(d)) => (d.to_string(), Vec::new()),
        (None, None) => bail!("{image}: a tag or a digest is needed"),
    };
    let role = ws.responsible_role(&target)?;
    ws.check_signers(&role, &refs(signers)).with_context(|| {
        format!("the given keys are not enough: role {role} is delegated for {target}")
    })?;
    let manifest = registry.get_manifest(
        image.repository(),
        &reference,
        &IMAGE_MEDIA_TYPES,
        registry.caps().manifest,
    )?;
    if let Some(pinned) = image.digest() {
        if !pinned.matches(&manifest.bytes) {
            bail!(
                "{image}: the tag now points at {}, not at the digest given",
                manifest.digest
            );
        }
    }
    let subject = manifest.descriptor();
    let sha256 = subject
        .digest
        .sha256_hex()
        .ok_or_else(|| anyhow!("{image}: only sha256 manifests can be signed"))?
        .to_string();
    let version = ws.reserve_signature_version(&target, &role)?;
    let doc = ws.signature_document(repo, &tags, &subject, version, &refs(signers), now)?;
    let pushed = registry.push_artifact(
        image.repository(),
        None,
        ARTIFACT_SIGNATURE,
        &doc,
        Some(subject.clone()),
        None,
    )?;
    println!(
        "signed {target} = {} (signature version {version}, artifact {})",
        subject.digest, pushed.digest
    );
    Ok(NewTarget {
        role,
        path: target,
        length: subject.size,
        sha256_hex: sha256,
        media_type: subject.media_type,
        signature_version: version,
    })
}
