//! The publisher's working copy of a scope's TUF repository: a directory with the signed
//! metadata (`metadata/`, the standard file layout) and `pullguard-repo.json` (scope, expiry
//! and retention policy, signature version counters, what was published where).
//!
//! Every change re-signs the role it touches. A role whose current version was already
//! published gets version + 1; an unpublished one is re-signed in place, so signing 100
//! images before a publish makes one new version, not 100. Thresholds are checked after
//! signing with the same code the client uses.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sha2::{Digest as _, Sha256};

use crate::io::{read_file, write_atomic};
use crate::registry::reference::check_tag;
use crate::registry::Scope;
use crate::tuf::names::RoleName;
use crate::tuf::pattern;
use crate::tuf::schema::Key;
use crate::tuf::signing::{key_id, sign_document, SigningKey};
use crate::tuf::verify::{check_threshold, RoleSpec};

/// The largest working-copy files read: the repository's own settings (which hold a
/// signature version for every tag ever signed: about 4 MB for 100,000), and a metadata
/// document (never longer than the trust core's absolute cap, [`crate::tuf::Limits::hard_max`]).
const CONFIG_FILE_MAX: u64 = 64 * 1024 * 1024;
const METADATA_FILE_MAX: u64 = 64 * 1024 * 1024;

mod bins;
mod policy;
mod rotate;

pub use bins::check_bin_count;
use policy::apply_retention;
pub use policy::{parse_duration, Expiries, Retention};

const CONFIG_FILE: &str = "pullguard-repo.json";
const TOP_LEVEL: [&str; 4] = ["root", "targets", "snapshot", "timestamp"];

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("{path}: {reason}")]
    Io { path: String, reason: String },
    #[error("{0}")]
    Invalid(String),
    #[error("{role}: {reason}")]
    Signing { role: String, reason: String },
    #[error("{0}")]
    Stale(String),
}

type Result<T, E = RepoError> = std::result::Result<T, E>;

fn io(path: &Path, e: impl std::fmt::Display) -> RepoError {
    RepoError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Config {
    scope: String,
    trust_repository: String,
    #[serde(default)]
    expiries: Expiries,
    #[serde(default)]
    retention: Retention,
    /// The last detached-signature version per `repository:tag` (never reused, even after
    /// the target was dropped by retention).
    #[serde(default)]
    signature_versions: BTreeMap<String, u64>,
    /// destination → file name → sha256 of what was published there.
    #[serde(default)]
    published: BTreeMap<String, BTreeMap<String, String>>,
    /// file name → sha256 of every content whose push was started, successful or not. A
    /// version that may have reached a registry is never re-signed with other content.
    #[serde(default)]
    spent: BTreeMap<String, std::collections::BTreeSet<String>>,
}

/// Keys and threshold of a role, as `repo init`, `repo delegate` and `repo rotate` take them.
pub struct RoleKeys {
    pub keys: Vec<Key>,
    pub threshold: u64,
}

impl RoleKeys {
    fn check(&self, role: &str) -> Result<()> {
        if self.keys.is_empty() || self.threshold == 0 || self.threshold > self.keys.len() as u64 {
            return Err(RepoError::Invalid(format!(
                "{role}: a threshold of {} with {} key(s) can never be met",
                self.threshold,
                self.keys.len()
            )));
        }
        Ok(())
    }
    fn keyids(&self) -> Vec<String> {
        self.keys.iter().map(key_id).collect()
    }
}

/// A target for [`Workspace::set_targets`]: its path, in the role responsible for it.
#[derive(Debug, Clone)]
pub struct NewTarget {
    pub role: RoleName,
    pub path: String,
    pub length: u64,
    pub sha256_hex: String,
    pub media_type: String,
    pub signature_version: u64,
}

/// What happened to the targets of one role when a retention policy was applied.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pruned {
    pub role: String,
    pub removed: Vec<String>,
}

pub struct Workspace {
    dir: PathBuf,
    config: Config,
    scope: Scope,
    /// The highest version on disk of every role but the timestamp (one directory read at
    /// open, then kept up to date by [`Workspace::put`]).
    versions: BTreeMap<RoleName, u64>,
    /// The hash-bin delegations of the working copy, found when first needed.
    bin_sets: std::cell::OnceCell<Vec<bins::BinSet>>,
    /// An exclusive lock on `<dir>/.lock`, held while this value lives: two publisher
    /// commands on one working copy run one after the other, never interleaved.
    _lock: fs::File,
}

const LOCK_FILE: &str = ".lock";

fn lock_dir(dir: &Path) -> Result<fs::File> {
    let path = dir.join(LOCK_FILE);
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| io(&path, e))?;
    file.lock().map_err(|e| io(&path, e))?;
    Ok(file)
}

fn expiry_string(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn expires_after(now: DateTime<Utc>, d: Duration) -> Result<DateTime<Utc>> {
    now.checked_add_signed(d).ok_or_else(|| {
        RepoError::Invalid(format!("{now} plus the expiry is not a representable time"))
    })
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn refuse_existing(dir: &Path) -> Result<()> {
    if dir.join(CONFIG_FILE).exists() {
        return Err(RepoError::Invalid(format!(
            "{} already holds a repository",
            dir.display()
        )));
    }
    Ok(())
}

/// Role names stored in a registry must be tag-safe; they also start with a letter or a
/// digit, so file and tag names (`3.<role>`) stay unambiguous to read.
pub fn check_role_name(name: &str) -> Result<RoleName> {
    check_tag(&format!("1.{name}"))
        .map_err(|e| RepoError::Invalid(format!("role name `{name}`: {e}")))?;
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(RepoError::Invalid(format!(
            "role name `{name}` must start with a letter or a digit"
        )));
    }
    if TOP_LEVEL.contains(&name) {
        return Err(RepoError::Invalid(format!(
            "`{name}` is a top-level role and cannot be delegated"
        )));
    }
    RoleName::new(name).map_err(RepoError::Invalid)
}

impl Workspace {
    /// Creates a new repository: root v1 and the first targets, snapshot and timestamp.
    /// `signers` must include a threshold of keys for every top-level role.
    #[allow(clippy::too_many_arguments)]
    pub fn init(
        dir: &Path,
        scope: &Scope,
        trust_repository: Option<&str>,
        roles: [(&str, RoleKeys); 4],
        expiries: Expiries,
        retention: Retention,
        signers: &[&SigningKey],
        now: DateTime<Utc>,
    ) -> Result<Self> {
        expiries.validate().map_err(RepoError::Invalid)?;
        retention.validate().map_err(RepoError::Invalid)?;
        // Refused at once when the repository exists (rather than waiting for the lock a
        // running command holds); checked again under the lock against a racing `init`.
        refuse_existing(dir)?;
        let mut keys = Map::new();
        let mut role_map = Map::new();
        for (name, rk) in &roles {
            rk.check(name)?;
            for k in &rk.keys {
                keys.insert(key_id(k), serde_json::to_value(k).unwrap_or(Value::Null));
            }
            role_map.insert(
                name.to_string(),
                json!({"keyids": rk.keyids(), "threshold": rk.threshold}),
            );
        }
        fs::create_dir_all(dir.join("metadata")).map_err(|e| io(dir, e))?;
        let lock = lock_dir(dir)?;
        refuse_existing(dir)?;
        let mut ws = Workspace {
            _lock: lock,
            versions: scan_versions(&dir.join("metadata"))?,
            bin_sets: Default::default(),
            dir: dir.to_path_buf(),
            scope: scope.clone(),
            config: Config {
                scope: scope.to_string(),
                trust_repository: trust_repository
                    .map(str::to_string)
                    .unwrap_or_else(|| scope.trust_repository()),
                expiries,
                retention,
                signature_versions: BTreeMap::new(),
                published: BTreeMap::new(),
                spent: BTreeMap::new(),
            },
        };
        check_key_separation(&json!({"roles": role_map}))?;
        let root = json!({
            "_type": "root", "spec_version": "1.0.31", "version": 1,
            "expires": "1970-01-01T00:00:00Z", "consistent_snapshot": true,
            "keys": keys, "roles": role_map,
        });
        ws.write_role(&RoleName::root(), root, signers, now)?;
        let targets = empty_targets();
        ws.write_role(&RoleName::targets(), targets, signers, now)?;
        ws.snapshot(signers, now)?;
        ws.timestamp(signers, now)?;
        ws.save()?;
        Ok(ws)
    }

    pub fn open(dir: &Path) -> Result<Self> {
        let path = dir.join(CONFIG_FILE);
        if !path.exists() {
            return Err(RepoError::Invalid(format!(
                "{} holds no repository (run `pullguard repo init` first)",
                dir.display()
            )));
        }
        let lock = lock_dir(dir)?;
        let bytes = read_file(&path, CONFIG_FILE_MAX).map_err(|e| io(&path, e))?;
        let config: Config = serde_json::from_slice(&bytes).map_err(|e| io(&path, e))?;
        let scope = config
            .scope
            .parse()
            .map_err(|e: crate::registry::NameError| RepoError::Invalid(e.to_string()))?;
        config
            .expiries
            .validate()
            .and_then(|()| config.retention.validate())
            .map_err(|e| RepoError::Invalid(format!("{}: {e}", path.display())))?;
        Ok(Workspace {
            _lock: lock,
            versions: scan_versions(&dir.join("metadata"))?,
            bin_sets: Default::default(),
            dir: dir.to_path_buf(),
            config,
            scope,
        })
    }

    pub fn save(&self) -> Result<()> {
        let path = self.dir.join(CONFIG_FILE);
        let bytes = serde_json::to_vec_pretty(&self.config).map_err(|e| io(&path, e))?;
        write_atomic(&path, &bytes).map_err(|e| io(&path, e))
    }

    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    pub fn trust_repository(&self) -> &str {
        &self.config.trust_repository
    }

    pub fn metadata_dir(&self) -> PathBuf {
        self.dir.join("metadata")
    }

    pub fn set_retention(&mut self, retention: Retention) -> Result<()> {
        retention.validate().map_err(RepoError::Invalid)?;
        self.config.retention = retention;
        Ok(())
    }

    fn file_name(role: &RoleName, version: u64) -> String {
        if role == &RoleName::timestamp() {
            "timestamp.json".into()
        } else {
            format!("{version}.{}.json", role.as_str())
        }
    }

    /// The current (highest) version of `role` and its bytes.
    pub fn current(&self, role: &RoleName) -> Result<Option<(u64, Vec<u8>)>> {
        let dir = self.metadata_dir();
        if role == &RoleName::timestamp() {
            let path = dir.join("timestamp.json");
            return match read_file(&path, METADATA_FILE_MAX) {
                Ok(bytes) => {
                    let v = version_of(&bytes).map_err(|e| io(&path, e))?;
                    Ok(Some((v, bytes)))
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(io(&path, e)),
            };
        }
        let Some(v) = self.current_version(role) else {
            return Ok(None);
        };
        let path = dir.join(Self::file_name(role, v));
        let bytes = read_file(&path, METADATA_FILE_MAX).map_err(|e| io(&path, e))?;
        Ok(Some((v, bytes)))
    }

    /// The current version of a role other than the timestamp, without reading it.
    fn current_version(&self, role: &RoleName) -> Option<u64> {
        self.versions.get(role).copied()
    }

    /// Writes `bytes` as `version` of `role` and keeps the version index (and the known
    /// hash-bin delegations) up to date.
    fn put(&mut self, role: &RoleName, version: u64, bytes: &[u8]) -> Result<()> {
        let path = self.metadata_dir().join(Self::file_name(role, version));
        write_atomic(&path, bytes).map_err(|e| io(&path, e))?;
        if role != &RoleName::timestamp() {
            let v = self.versions.entry(role.clone()).or_insert(version);
            *v = (*v).max(version);
        }
        if bins::may_change_bin_sets(self.bin_sets.get(), role, bytes) {
            self.bin_sets = Default::default();
        }
        Ok(())
    }

    fn signed_of(&self, role: &RoleName) -> Result<Option<(u64, Value)>> {
        let Some((v, bytes)) = self.current(role)? else {
            return Ok(None);
        };
        let mut env = crate::tuf::cjson::parse_unique(&bytes)
            .map_err(|e| RepoError::Invalid(format!("{role} v{v}: {e}")))?;
        let signed = env
            .get_mut("signed")
            .map(Value::take)
            .ok_or_else(|| RepoError::Invalid(format!("{role} v{v}: no `signed`")))?;
        Ok(Some((v, signed)))
    }

    fn root_signed(&self) -> Result<Value> {
        self.signed_of(&RoleName::root())?
            .map(|(_, s)| s)
            .ok_or_else(|| RepoError::Invalid("the repository has no root".into()))
    }

    /// Whether this content of `file` was (or may have been) published anywhere.
    fn is_published(&self, file: &str, bytes: &[u8]) -> bool {
        let digest = sha256_hex(bytes);
        self.config
            .published
            .values()
            .any(|files| files.get(file) == Some(&digest))
            || self
                .config
                .spent
                .get(file)
                .is_some_and(|s| s.contains(&digest))
    }

    /// Records, before their pushes start, that these files' contents may reach a
    /// destination (one durable write for the lot).
    pub fn mark_attempts(&mut self, files: &[(String, Vec<u8>)]) -> Result<()> {
        for (file, bytes) in files {
            self.config
                .spent
                .entry(file.clone())
                .or_default()
                .insert(sha256_hex(bytes));
        }
        self.save()
    }

    /// Keys and threshold of `role` per the current metadata: root for top-level roles,
    /// else the delegating targets role.
    fn spec_of(&self, role: &RoleName) -> Result<Spec> {
        if TOP_LEVEL.contains(&role.as_str()) {
            return Spec::in_root(&self.root_signed()?, role.as_str());
        }
        if let Some(set) = self.bin_set_of(role)? {
            return Ok(set.spec());
        }
        let (_, delegator) = self
            .delegator_of(role)?
            .ok_or_else(|| RepoError::Invalid(format!("no targets role delegates `{role}`")))?;
        let entry = delegator["delegations"]["roles"]
            .as_array()
            .and_then(|roles| roles.iter().find(|r| r["name"] == role.as_str()))
            .unwrap_or(&Value::Null);
        Spec::parse(&delegator["delegations"]["keys"], entry, role.as_str())
    }

    /// The targets role (and its signed part) that delegates `role`.
    fn delegator_of(&self, role: &RoleName) -> Result<Option<(RoleName, Value)>> {
        if let Some(set) = self.bin_set_of(role)? {
            let parent = set.parent.clone();
            let signed = self.signed_of(&parent)?.map(|(_, s)| s);
            return Ok(signed.map(|s| (parent, s)));
        }
        // Only a role whose document names `role` can delegate it: the others (hash bins
        // among them, which may be thousands) are not parsed.
        let quoted = format!("\"{role}\"");
        for name in self.targets_roles()? {
            if !self.mentions(&name, &quoted)? {
                continue;
            }
            if let Some((_, signed)) = self.signed_of(&name)? {
                let delegates = signed["delegations"]["roles"]
                    .as_array()
                    .is_some_and(|rs| rs.iter().any(|r| r["name"] == role.as_str()));
                if delegates {
                    return Ok(Some((name, signed)));
                }
            }
        }
        Ok(None)
    }

    /// The roles `role` delegates to: named roles and hash bins.
    fn delegated_by(&self, role: &RoleName) -> Result<Vec<RoleName>> {
        if let Some(set) = self.bins_of(role)? {
            return Ok(set.names().collect());
        }
        if !self.mentions(role, "\"delegations\"")? {
            return Ok(Vec::new());
        }
        let Some((_, signed)) = self.signed_of(role)? else {
            return Ok(Vec::new());
        };
        signed["delegations"]["roles"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| {
                RoleName::new(d["name"].as_str().unwrap_or_default()).map_err(RepoError::Invalid)
            })
            .collect()
    }

    /// Whether the current document of `role` contains `needle` (a cheap test before a parse).
    fn mentions(&self, role: &RoleName, needle: &str) -> Result<bool> {
        Ok(self
            .current(role)?
            .is_some_and(|(_, bytes)| contains(&bytes, needle.as_bytes())))
    }

    /// The keys of every delegation in every targets role.
    fn delegated_keyids(&self) -> Result<std::collections::BTreeSet<String>> {
        let mut ids = std::collections::BTreeSet::new();
        for set in self.bin_sets()? {
            ids.extend(set.roles.keyids.iter().cloned());
        }
        for role in self.targets_roles()? {
            if !self.mentions(&role, "\"delegations\"")? {
                continue;
            }
            if let Some((_, signed)) = self.signed_of(&role)? {
                for d in signed["delegations"]["roles"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    for id in d["keyids"].as_array().into_iter().flatten() {
                        if let Some(id) = id.as_str() {
                            ids.insert(id.to_string());
                        }
                    }
                }
            }
        }
        Ok(ids)
    }

    /// Every targets role with metadata in the working copy, `targets` first.
    pub fn targets_roles(&self) -> Result<Vec<RoleName>> {
        let mut out = vec![RoleName::targets()];
        out.extend(
            self.versions
                .keys()
                .filter(|r| !TOP_LEVEL.contains(&r.as_str()))
                .cloned(),
        );
        Ok(out)
    }

    /// Signs `signed` as the next version of `role` (or re-signs the current, unpublished
    /// one), with a fresh expiry, and checks the role's threshold is met.
    fn write_role(
        &mut self,
        role: &RoleName,
        signed: Value,
        signers: &[&SigningKey],
        now: DateTime<Utc>,
    ) -> Result<u64> {
        // A root is checked against the keys it lists itself.
        let spec = if role == &RoleName::root() {
            Spec::in_root(&signed, "root")?
        } else {
            self.spec_of(role)?
        };
        self.write_role_as(role, signed, &spec, signers, now)
    }

    /// [`Workspace::write_role`] with the keys and threshold given rather than looked up.
    fn write_role_as(
        &mut self,
        role: &RoleName,
        mut signed: Value,
        spec: &Spec,
        signers: &[&SigningKey],
        now: DateTime<Utc>,
    ) -> Result<u64> {
        let version = match self.current(role)? {
            None => 1,
            Some((v, bytes)) if self.is_published(&Self::file_name(role, v), &bytes) => v + 1,
            Some((v, _)) => v,
        };
        let expiry = parse_duration(self.config.expiries.for_role(role.as_str()))
            .map_err(RepoError::Invalid)?;
        signed["version"] = json!(version);
        signed["expires"] = json!(expiry_string(expires_after(now, expiry)?));
        let mine = spec.signers_among(role, signers)?;
        let bytes = sign_document(&signed, &mine).map_err(|e| RepoError::Signing {
            role: role.to_string(),
            reason: e.to_string(),
        })?;
        spec.check(role, &bytes)?;
        self.put(role, version, &bytes)?;
        Ok(version)
    }

    /// Adds (or replaces) the delegation of `child` by `parent` for path patterns `paths`.
    /// With `child_signers` (a threshold of the new role's private keys), the role's empty
    /// first version is written too; otherwise it appears with the first `sign`, and
    /// publishing waits for it.
    #[allow(clippy::too_many_arguments)]
    pub fn delegate(
        &mut self,
        parent: &RoleName,
        child: &str,
        role_keys: RoleKeys,
        paths: Vec<String>,
        terminating: bool,
        signers: &[&SigningKey],
        child_signers: &[&SigningKey],
        now: DateTime<Utc>,
    ) -> Result<()> {
        let child = check_role_name(child)?;
        role_keys.check(child.as_str())?;
        if let Some(set) = self.bin_set_of(&child)? {
            return Err(RepoError::Invalid(format!(
                "`{child}` is the name of one of {}'s hash bins",
                set.parent
            )));
        }
        if self.bins_of(parent)?.is_some() {
            return Err(RepoError::Invalid(format!(
                "{parent} hands all of its paths to hash bins and cannot delegate to named roles as well (TAP 15)"
            )));
        }
        refuse_online_keys(&self.root_signed()?, &role_keys)?;
        if paths.is_empty() {
            return Err(RepoError::Invalid(format!(
                "{child}: at least one path pattern is needed"
            )));
        }
        if !child_signers.is_empty() {
            // Checked before anything is written: a delegation is applied whole or not at all.
            let given = distinct_signers(&role_keys.keyids(), child_signers);
            if given < role_keys.threshold {
                return Err(RepoError::Signing {
                    role: child.to_string(),
                    reason: format!(
                        "{given} of its private keys were given; its threshold is {}",
                        role_keys.threshold
                    ),
                });
            }
        }
        let (_, mut signed) = self
            .signed_of(parent)?
            .ok_or_else(|| RepoError::Invalid(format!("{parent} has no metadata yet")))?;
        if !signed["delegations"].is_object() {
            signed["delegations"] = json!({"keys": {}, "roles": []});
        }
        for k in &role_keys.keys {
            signed["delegations"]["keys"][key_id(k)] =
                serde_json::to_value(k).unwrap_or(Value::Null);
        }
        let entry = json!({"name": child.as_str(), "keyids": role_keys.keyids(),
                           "threshold": role_keys.threshold, "terminating": terminating,
                           "paths": paths});
        let roles = signed["delegations"]["roles"]
            .as_array_mut()
            .ok_or_else(|| {
                RepoError::Invalid(format!("{parent}: delegations.roles is not a list"))
            })?;
        match roles.iter_mut().find(|r| r["name"] == child.as_str()) {
            Some(existing) => *existing = entry,
            None => roles.push(entry),
        }
        self.write_role(parent, signed, signers, now)?;
        if !child_signers.is_empty() {
            // Its first (empty) version, or the current one re-signed under the new keys.
            let child_signed = match self.signed_of(&child)? {
                Some((_, s)) => s,
                None => empty_targets(),
            };
            self.write_role(&child, child_signed, child_signers, now)?;
        }
        self.save()
    }

    /// The targets role responsible for `path`: the first role, in the client's pre-order
    /// search, that lists it or whose delegation covers it and has no delegation of its own
    /// that does (TUF 5.6.7, `terminating` honoured).
    pub fn responsible_role(&self, path: &str) -> Result<RoleName> {
        let mut stack = vec![RoleName::targets()];
        let mut best = RoleName::targets();
        let mut visited = 0;
        while let Some(role) = stack.pop() {
            visited += 1;
            if visited > 64 {
                break;
            }
            best = role.clone();
            let Some((_, signed)) = self.signed_of(&role)? else {
                break;
            };
            if signed["targets"].get(path).is_some() {
                return Ok(role);
            }
            // TAP 15: exactly one bin is responsible for a path.
            if let Some(set) = bins::succinct_of(&role, &signed)? {
                stack = vec![set.bin_for(path)?];
                continue;
            }
            let Some(roles) = signed["delegations"]["roles"].as_array() else {
                break;
            };
            let mut children = Vec::new();
            for r in roles {
                let patterns: Vec<String> =
                    serde_json::from_value(r["paths"].clone()).unwrap_or_default();
                if patterns.iter().any(|p| pattern::path_matches(p, path)) {
                    let name = r["name"].as_str().unwrap_or_default();
                    children.push(RoleName::new(name).map_err(RepoError::Invalid)?);
                    if r["terminating"].as_bool().unwrap_or(false) {
                        break;
                    }
                }
            }
            if children.is_empty() {
                break;
            }
            // Depth first: the first matching child is searched next.
            stack = children.into_iter().rev().collect();
        }
        Ok(best)
    }

    fn spend_signature_version(&mut self, target: &str, version: u64) {
        let entry = self
            .config
            .signature_versions
            .entry(target.to_string())
            .or_insert(0);
        *entry = (*entry).max(version);
    }

    /// Takes the next detached-signature version for `target` and records it at once, before
    /// the signature is pushed anywhere: a failed `sign` never lets a version be reused.
    pub fn reserve_signature_version(&mut self, target: &str, role: &RoleName) -> Result<u64> {
        let v = self.next_signature_version(target, role)?;
        self.spend_signature_version(target, v);
        self.save()?;
        Ok(v)
    }

    /// Checks that `signers` meet `role`'s threshold (before anything is pushed).
    pub fn check_signers(&self, role: &RoleName, signers: &[&SigningKey]) -> Result<()> {
        let spec = self.spec_of(role)?;
        if spec.threshold == 0 {
            return Err(RepoError::Invalid(format!("{role} has no valid threshold")));
        }
        let given = distinct_signers(&spec.keyids, signers);
        if given < spec.threshold {
            return Err(RepoError::Signing {
                role: role.to_string(),
                reason: format!(
                    "{given} of the given keys may sign it, and it needs {} of {}",
                    spec.threshold,
                    spec.keyids.join(", ")
                ),
            });
        }
        Ok(())
    }

    /// The next detached-signature version for `target` (never reused).
    pub fn next_signature_version(&self, target: &str, role: &RoleName) -> Result<u64> {
        let from_config = self
            .config
            .signature_versions
            .get(target)
            .copied()
            .unwrap_or(0);
        let from_metadata = self
            .signed_of(role)?
            .and_then(|(_, s)| s["targets"][target]["custom"]["signatureVersion"].as_u64())
            .unwrap_or(0);
        Ok(from_config.max(from_metadata) + 1)
    }

    /// Lists `target` in `role` (creating the role's first version if it has none), applies
    /// the retention policy to that role, and re-signs it.
    #[allow(clippy::too_many_arguments)]
    pub fn set_target(
        &mut self,
        role: &RoleName,
        target: &str,
        length: u64,
        sha256_hex: &str,
        media_type: &str,
        signature_version: u64,
        signers: &[&SigningKey],
        now: DateTime<Utc>,
    ) -> Result<Pruned> {
        let entry = NewTarget {
            role: role.clone(),
            path: target.to_string(),
            length,
            sha256_hex: sha256_hex.to_string(),
            media_type: media_type.to_string(),
            signature_version,
        };
        let pruned = self.set_targets(std::slice::from_ref(&entry), signers, now)?;
        Ok(Pruned {
            role: role.to_string(),
            removed: pruned.into_iter().flat_map(|p| p.removed).collect(),
        })
    }

    /// Lists every entry in its role, applies the retention policy, and re-signs each role
    /// that changed once, with one write of the settings for the lot. Later entries count
    /// as newer for retention.
    pub fn set_targets(
        &mut self,
        entries: &[NewTarget],
        signers: &[&SigningKey],
        now: DateTime<Utc>,
    ) -> Result<Vec<Pruned>> {
        let mut edited: BTreeMap<RoleName, Value> = BTreeMap::new();
        for e in entries {
            let signed = match edited.entry(e.role.clone()) {
                std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::btree_map::Entry::Vacant(v) => {
                    let current = self.signed_of(&e.role)?.map(|(_, s)| s);
                    v.insert(current.unwrap_or_else(empty_targets))
                }
            };
            signed["targets"][&e.path] = json!({
                "length": e.length,
                "hashes": {"sha256": e.sha256_hex},
                "custom": {"mediaType": e.media_type, "signatureVersion": e.signature_version,
                           "signedAt": now.to_rfc3339_opts(SecondsFormat::Micros, true)},
            });
        }
        let protect: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
        // The roles one retention policy counts together, each group once.
        let mut groups: BTreeMap<Vec<RoleName>, BTreeMap<RoleName, Value>> = BTreeMap::new();
        for (role, signed) in edited {
            groups
                .entry(self.retention_group(&role)?)
                .or_default()
                .insert(role, signed);
        }
        let mut pruned = Vec::new();
        for (group, edited) in groups {
            let (changed, p) = self.retain(&group, edited, &protect, now)?;
            for (role, signed) in changed {
                self.write_role(&role, signed, signers, now)?;
            }
            pruned.extend(p);
        }
        for e in entries {
            self.spend_signature_version(&e.path, e.signature_version);
        }
        self.save()?;
        Ok(pruned)
    }

    /// The roles whose targets the retention policy counts together with `role`'s: all the
    /// bins of its hash-bin set when it keeps a number of tags per repository (a
    /// repository's tags are spread over the bins), else `role` alone.
    fn retention_group(&self, role: &RoleName) -> Result<Vec<RoleName>> {
        if self.config.retention.keep.is_some() {
            if let Some(set) = self.bin_set_of(role)? {
                return Ok(set.names().collect());
            }
        }
        Ok(vec![role.clone()])
    }

    /// Applies the retention policy to the roles of one group, `edited` holding those
    /// already changed; returns every role that changed and what was dropped from each.
    fn retain(
        &self,
        group: &[RoleName],
        mut edited: BTreeMap<RoleName, Value>,
        protect: &[&str],
        now: DateTime<Utc>,
    ) -> Result<(BTreeMap<RoleName, Value>, Vec<Pruned>)> {
        let retention = &self.config.retention;
        if retention.keep.is_none() && retention.max_age.is_none() {
            return Ok((edited, Vec::new()));
        }
        if let [role] = group {
            let (mut signed, was_edited) = match edited.remove(role) {
                Some(s) => (s, true),
                None => match self.signed_of(role)? {
                    Some((_, s)) => (s, false),
                    None => return Ok((edited, Vec::new())),
                },
            };
            let pruned = apply_retention(role, &mut signed, retention, now, protect)?;
            if was_edited || !pruned.removed.is_empty() {
                edited.insert(role.clone(), signed);
            }
            let pruned = (!pruned.removed.is_empty()).then_some(pruned);
            return Ok((edited, pruned.into_iter().collect()));
        }
        // A hash-bin set: the policy runs over the targets of all its bins at once.
        let mut unchanged = BTreeMap::new();
        let mut all = Map::new();
        let mut owner: std::collections::HashMap<String, RoleName> = Default::default();
        for role in group {
            let doc = match edited.get(role) {
                Some(doc) => doc,
                None => match self.signed_of(role)? {
                    Some((_, s)) => unchanged.entry(role.clone()).or_insert(s),
                    None => continue,
                },
            };
            for (path, target) in doc["targets"].as_object().into_iter().flatten() {
                all.insert(path.clone(), target.clone());
                owner.insert(path.clone(), role.clone());
            }
        }
        let mut merged = json!({ "targets": all });
        let dropped = apply_retention(&group[0], &mut merged, retention, now, protect)?;
        let mut by_role: BTreeMap<RoleName, Vec<String>> = BTreeMap::new();
        for path in dropped.removed {
            let Some(role) = owner.get(&path) else {
                continue;
            };
            if let Some(doc) = unchanged.remove(role) {
                edited.insert(role.clone(), doc);
            }
            if let Some(targets) = edited
                .get_mut(role)
                .and_then(|d| d["targets"].as_object_mut())
            {
                targets.remove(&path);
            }
            by_role.entry(role.clone()).or_default().push(path);
        }
        let pruned = by_role
            .into_iter()
            .map(|(role, removed)| Pruned {
                role: role.to_string(),
                removed,
            })
            .collect();
        Ok((edited, pruned))
    }

    /// Applies the retention policy to every targets role that `signers` can re-sign; roles
    /// they cannot sign are reported, unchanged.
    pub fn prune(
        &mut self,
        signers: &[&SigningKey],
        now: DateTime<Utc>,
    ) -> Result<(Vec<Pruned>, Vec<Pruned>)> {
        let mut done = Vec::new();
        let mut skipped = Vec::new();
        let mut groups = std::collections::BTreeSet::new();
        for role in self.targets_roles()? {
            groups.insert(self.retention_group(&role)?);
        }
        for group in groups {
            let (changed, pruned) = self.retain(&group, BTreeMap::new(), &[], now)?;
            if pruned.is_empty() {
                continue;
            }
            if distinct_signers(&self.spec_of(&group[0])?.keyids, signers) > 0 {
                for (role, signed) in changed {
                    self.write_role(&role, signed, signers, now)?;
                }
                done.extend(pruned);
            } else {
                skipped.extend(pruned);
            }
        }
        self.save()?;
        Ok((done, skipped))
    }

    /// A new snapshot of the current version of every targets role.
    pub fn snapshot(&mut self, signers: &[&SigningKey], now: DateTime<Utc>) -> Result<u64> {
        let mut meta = Map::new();
        // A client reads a targets role it knows no length of up to a default cap (python-tuf's
        // and ours: 5 MB); a larger role has its length listed, so clients read it whole.
        let default_cap = crate::tuf::Limits::default().targets_max;
        for role in self.targets_roles()? {
            if let Some(v) = self.current_version(&role) {
                let path = self.metadata_dir().join(Self::file_name(&role, v));
                let length = fs::metadata(&path).map_err(|e| io(&path, e))?.len();
                let entry = if length > default_cap {
                    json!({"version": v, "length": length})
                } else {
                    json!({"version": v})
                };
                meta.insert(role.meta_key(), entry);
            }
        }
        let signed = json!({"_type": "snapshot", "spec_version": "1.0.31", "version": 1,
                            "expires": "1970-01-01T00:00:00Z", "meta": meta});
        let v = self.write_role(&RoleName::snapshot(), signed, signers, now)?;
        self.save()?;
        Ok(v)
    }

    /// A new timestamp of the current snapshot (version, length, sha256).
    pub fn timestamp(&mut self, signers: &[&SigningKey], now: DateTime<Utc>) -> Result<u64> {
        let (v, bytes) = self
            .current(&RoleName::snapshot())?
            .ok_or_else(|| RepoError::Invalid("there is no snapshot to timestamp".into()))?;
        let signed = json!({"_type": "timestamp", "spec_version": "1.0.31", "version": 1,
                            "expires": "1970-01-01T00:00:00Z",
                            "meta": {"snapshot.json": {"version": v, "length": bytes.len(),
                                                       "hashes": {"sha256": sha256_hex(&bytes)}}}});
        let v = self.write_role(&RoleName::timestamp(), signed, signers, now)?;
        self.save()?;
        Ok(v)
    }

    /// Refuses to publish a snapshot that does not pin the current targets roles, or a
    /// timestamp that does not pin the current snapshot.
    pub fn check_consistent(&self) -> Result<()> {
        let (_, snapshot) = self
            .signed_of(&RoleName::snapshot())?
            .ok_or_else(|| RepoError::Stale("there is no snapshot".into()))?;
        for role in self.targets_roles()? {
            for delegated in self.delegated_by(&role)? {
                if self.current_version(&delegated).is_none() {
                    return Err(RepoError::Stale(format!(
                        "role {delegated} is delegated by {role} but has no metadata yet: sign an image with its key first, or delegate it with its private key"
                    )));
                }
            }
            if let Some(v) = self.current_version(&role) {
                let pinned = snapshot["meta"][role.meta_key()]["version"].as_u64();
                if pinned != Some(v) {
                    return Err(RepoError::Stale(format!(
                        "{role} is at version {v} but the snapshot pins {}: run `pullguard repo snapshot` and `pullguard repo timestamp` first",
                        pinned.map_or("none".to_string(), |p| p.to_string())
                    )));
                }
            }
        }
        // Every role's current metadata must meet the threshold that root or its delegator
        // sets now (after a delegation or rotation that was not followed by a re-sign).
        let mut roles = self.targets_roles()?;
        roles.extend([RoleName::snapshot(), RoleName::timestamp()]);
        for role in roles {
            if let Some((v, bytes)) = self.current(&role)? {
                self.spec_of(&role)?.check(&role, &bytes).map_err(|e| {
                    RepoError::Stale(format!(
                        "{role} version {v} is not signed by its current keys ({e}): re-sign it before publishing"
                    ))
                })?;
            }
        }
        let (sv, snapshot_bytes) = self
            .current(&RoleName::snapshot())?
            .ok_or_else(|| RepoError::Stale("there is no snapshot".into()))?;
        let (_, ts) = self
            .signed_of(&RoleName::timestamp())?
            .ok_or_else(|| RepoError::Stale("there is no timestamp".into()))?;
        let pinned = &ts["meta"]["snapshot.json"];
        if pinned["version"].as_u64() != Some(sv)
            || pinned["hashes"]["sha256"].as_str() != Some(&sha256_hex(&snapshot_bytes))
        {
            return Err(RepoError::Stale(format!(
                "the timestamp does not pin snapshot version {sv}: run `pullguard repo timestamp` first"
            )));
        }
        Ok(())
    }

    /// The files a destination has not received yet, in the order a client may safely see
    /// them appear: roots, targets roles, snapshot, then the timestamp. Superseded versions
    /// of roles other than root are not published.
    pub fn unpublished(&self, destination: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let sent = self.config.published.get(destination);
        let mut out = Vec::new();
        let dir = self.metadata_dir();
        let mut roots: Vec<(u64, String)> = Vec::new();
        for entry in fs::read_dir(&dir).map_err(|e| io(&dir, e))? {
            let name = entry
                .map_err(|e| io(&dir, e))?
                .file_name()
                .to_string_lossy()
                .to_string();
            if let Some(v) = name.strip_suffix(".root.json").and_then(|v| v.parse().ok()) {
                roots.push((v, name));
            }
        }
        roots.sort();
        let mut files: Vec<String> = roots.into_iter().map(|(_, n)| n).collect();
        for role in self.targets_roles()? {
            if let Some(v) = self.current_version(&role) {
                files.push(Self::file_name(&role, v));
            }
        }
        if let Some(v) = self.current_version(&RoleName::snapshot()) {
            files.push(Self::file_name(&RoleName::snapshot(), v));
        }
        files.push("timestamp.json".into());
        for name in files {
            let path = dir.join(&name);
            let bytes = read_file(&path, METADATA_FILE_MAX).map_err(|e| io(&path, e))?;
            if sent.and_then(|s| s.get(&name)) != Some(&sha256_hex(&bytes)) {
                out.push((name, bytes));
            }
        }
        Ok(out)
    }

    pub fn mark_published(&mut self, destination: &str, file: &str, bytes: &[u8]) -> Result<()> {
        self.config
            .published
            .entry(destination.to_string())
            .or_default()
            .insert(file.to_string(), sha256_hex(bytes));
        self.save()
    }

    /// Signs a detached image signature document (DESIGN §2).
    pub fn signature_document(
        &self,
        repository: &str,
        tags: &[&str],
        subject: &crate::registry::oci::Descriptor,
        version: u64,
        signers: &[&SigningKey],
        now: DateTime<Utc>,
    ) -> Result<Vec<u8>> {
        let expiry = parse_duration(&self.config.expiries.signature).map_err(RepoError::Invalid)?;
        let signed = json!({
            "_type": "signature", "spec_version": "1.0", "version": version,
            "expires": expiry_string(expires_after(now, expiry)?),
            "subject": {"mediaType": subject.media_type, "size": subject.size,
                        "digest": subject.digest.to_string()},
            "repository": repository, "tags": tags,
        });
        sign_document(&signed, signers).map_err(|e| RepoError::Signing {
            role: format!("signature of {repository}"),
            reason: e.to_string(),
        })
    }
}

/// The highest version of each role in `dir` (`<version>.<role>.json`; the timestamp is
/// `timestamp.json` and not listed).
fn scan_versions(dir: &Path) -> Result<BTreeMap<RoleName, u64>> {
    let mut versions = BTreeMap::new();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(versions),
        Err(e) => return Err(io(dir, e)),
    };
    for entry in entries {
        let name = entry.map_err(|e| io(dir, e))?.file_name();
        let name = name.to_string_lossy();
        let Some((v, role)) = name
            .strip_suffix(".json")
            .and_then(|stem| stem.split_once('.'))
        else {
            continue;
        };
        let (Ok(v), Ok(role)) = (v.parse::<u64>(), RoleName::new(role)) else {
            continue;
        };
        let best = versions.entry(role).or_insert(v);
        *best = (*best).max(v);
    }
    Ok(versions)
}

fn version_of(bytes: &[u8]) -> Result<u64, String> {
    let v = crate::tuf::cjson::parse_unique(bytes).map_err(|e| e.to_string())?;
    v["signed"]["version"]
        .as_u64()
        .ok_or_else(|| "no signed.version".to_string())
}

fn check_signed(
    role: &RoleName,
    bytes: &[u8],
    keys: &BTreeMap<String, Key>,
    keyids: &[String],
    threshold: u64,
) -> Result<()> {
    let value =
        crate::tuf::cjson::parse_unique(bytes).map_err(|e| RepoError::Invalid(e.to_string()))?;
    let canonical = crate::tuf::cjson::to_canonical(&value["signed"])
        .map_err(|e| RepoError::Invalid(e.to_string()))?;
    let signatures: Vec<crate::tuf::schema::Signature> =
        serde_json::from_value(value["signatures"].clone())
            .map_err(|e| RepoError::Invalid(e.to_string()))?;
    let threshold = std::num::NonZeroU64::new(threshold).ok_or_else(|| RepoError::Signing {
        role: role.to_string(),
        reason: "its threshold is 0".into(),
    })?;
    let spec = RoleSpec {
        name: role.as_str(),
        keyids,
        threshold,
        keys,
    };
    check_threshold(&spec, &canonical, &signatures).map_err(|e| RepoError::Signing {
        role: role.to_string(),
        reason: e.to_string(),
    })
}

/// Who may sign a role: the key table its key IDs refer to, the key IDs, the threshold.
pub(super) struct Spec {
    keys: BTreeMap<String, Key>,
    keyids: Vec<String>,
    threshold: u64,
}

impl Spec {
    /// From a key table and a role entry (`{"keyids", "threshold"}`).
    fn parse(keys: &Value, entry: &Value, role: &str) -> Result<Self> {
        Ok(Spec {
            keys: serde_json::from_value(keys.clone())
                .map_err(|e| RepoError::Invalid(format!("keys for {role}: {e}")))?,
            keyids: serde_json::from_value(entry["keyids"].clone())
                .map_err(|e| RepoError::Invalid(format!("keyids of {role}: {e}")))?,
            threshold: entry["threshold"].as_u64().unwrap_or(0),
        })
    }

    /// A top-level role as `root` (its signed part) lists it.
    pub(super) fn in_root(root: &Value, role: &str) -> Result<Self> {
        Self::parse(&root["keys"], &root["roles"][role], role)
    }

    /// Those of `signers` that hold one of these keys; none at all is an error.
    pub(super) fn signers_among<'k>(
        &self,
        role: &RoleName,
        signers: &[&'k SigningKey],
    ) -> Result<Vec<&'k SigningKey>> {
        let mine: Vec<&SigningKey> = signers
            .iter()
            .copied()
            .filter(|k| self.keyids.contains(&k.key_id()))
            .collect();
        if mine.is_empty() {
            return Err(RepoError::Signing {
                role: role.to_string(),
                reason: format!(
                    "none of the given keys may sign it; it needs {} of the keys {}",
                    self.threshold,
                    self.keyids.join(", ")
                ),
            });
        }
        Ok(mine)
    }

    /// Checks that `bytes` are signed by a threshold of these keys.
    pub(super) fn check(&self, role: &RoleName, bytes: &[u8]) -> Result<()> {
        check_signed(role, bytes, &self.keys, &self.keyids, self.threshold)
    }
}

/// Whether `needle` occurs in `haystack`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(haystack, needle).is_some()
}

/// How many distinct keys among `signers` are in `keyids`.
fn distinct_signers(keyids: &[String], signers: &[&SigningKey]) -> u64 {
    let mine: std::collections::BTreeSet<String> = signers
        .iter()
        .map(|k| k.key_id())
        .filter(|id| keyids.contains(id))
        .collect();
    mine.len() as u64
}

/// The key IDs of the online roles, snapshot and timestamp.
fn online_keyids(root: &Value) -> std::collections::BTreeSet<String> {
    keyids_of(root, "snapshot")
        .union(&keyids_of(root, "timestamp"))
        .cloned()
        .collect()
}

/// Refuses image-signing (delegated) keys that are online keys.
pub(super) fn refuse_online_keys(root: &Value, role_keys: &RoleKeys) -> Result<()> {
    let online = online_keyids(root);
    match role_keys.keyids().into_iter().find(|k| online.contains(k)) {
        Some(k) => Err(RepoError::Invalid(format!(
            "key {k} is an online (snapshot/timestamp) key and cannot be delegated image signing"
        ))),
        None => Ok(()),
    }
}

/// A targets role with nothing in it yet (version and expiry are set when it is signed).
fn empty_targets() -> Value {
    json!({"_type": "targets", "spec_version": "1.0.31", "version": 1,
           "expires": "1970-01-01T00:00:00Z", "targets": {}})
}

fn keyids_of(root: &Value, role: &str) -> std::collections::BTreeSet<String> {
    root["roles"][role]["keyids"]
        .as_array()
        .map(|ids| {
            ids.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// DESIGN §1: online keys (snapshot, timestamp) can't sign images, so they may not also be
/// root or targets keys.
fn check_key_separation(root: &Value) -> Result<()> {
    let online = online_keyids(root);
    for role in ["root", "targets"] {
        if let Some(k) = keyids_of(root, role).intersection(&online).next() {
            return Err(RepoError::Invalid(format!(
                "key {k} is both an online (snapshot/timestamp) key and a {role} key: online keys must not be able to sign images or roots"
            )));
        }
    }
    Ok(())
}

/// Removes keys that no top-level role uses any more.
fn prune_unused_keys(root: &mut Value) {
    let used: std::collections::BTreeSet<String> = TOP_LEVEL
        .iter()
        .flat_map(|r| {
            root["roles"][*r]["keyids"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    if let Some(keys) = root["keys"].as_object_mut() {
        keys.retain(|id, _| used.contains(id));
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn delegate(
        ws: &mut Workspace,
        name: &str,
        keys: RoleKeys,
        path: &str,
        signers: &[&SigningKey],
        child: &[&SigningKey],
    ) -> Result<()> {
        ws.delegate(
            &RoleName::targets(),
            name,
            keys,
            vec![path.into()],
            false,
            signers,
            child,
            Utc::now(),
        )
    }

    /// Four ed25519 keys from fixed seeds: root, targets, snapshot, timestamp.
    pub(crate) fn keys() -> Vec<SigningKey> {
        (1..=4)
            .map(|i| SigningKey::ed25519_from_seed([i; 32]))
            .collect()
    }

    /// A repository for `127.0.0.1:5000/acme` with one key per top-level role (`keys[i]`).
    pub(crate) fn init(
        dir: &Path,
        keys: &[SigningKey],
        signers: &[&SigningKey],
        retention: Retention,
    ) -> Result<Workspace> {
        init_with(dir, keys, [0, 1, 2, 3], signers, retention)
    }

    /// The same, with root, targets, snapshot and timestamp keyed by `keys[which[n]]`.
    fn init_with(
        dir: &Path,
        keys: &[SigningKey],
        which: [usize; 4],
        signers: &[&SigningKey],
        retention: Retention,
    ) -> Result<Workspace> {
        let role = |n: usize| RoleKeys {
            keys: vec![keys[which[n]].public()],
            threshold: 1,
        };
        Workspace::init(
            dir,
            &"127.0.0.1:5000/acme".parse().expect("scope"),
            None,
            [
                ("root", role(0)),
                ("targets", role(1)),
                ("snapshot", role(2)),
                ("timestamp", role(3)),
            ],
            Expiries::default(),
            retention,
            signers,
            Utc::now(),
        )
    }

    /// The files that destination `test` has not received.
    pub(crate) fn unpublished_names(ws: &Workspace) -> Vec<String> {
        let files = ws.unpublished("test").expect("list");
        files.into_iter().map(|f| f.0).collect()
    }

    pub(crate) fn publish_all(ws: &mut Workspace) {
        for (name, bytes) in ws.unpublished("test").expect("unpublished") {
            ws.mark_published("test", &name, &bytes).expect("mark");
        }
    }

    fn target(
        ws: &mut Workspace,
        signers: &[&SigningKey],
        path: &str,
        at: DateTime<Utc>,
    ) -> Pruned {
        ws.set_target(
            &RoleName::targets(),
            path,
            10,
            &"ab".repeat(32),
            "m",
            1,
            signers,
            at,
        )
        .expect("set target")
    }

    #[test]
    fn versions_grow_once_per_publish() {
        let dir = tempfile::tempdir().expect("tempdir");
        let k = keys();
        let signers: Vec<&SigningKey> = k.iter().collect();
        let mut ws = init(dir.path(), &k, &signers, Retention::default()).expect("init");
        let version = |ws: &Workspace| {
            ws.current(&RoleName::targets())
                .expect("current")
                .map(|c| c.0)
        };
        target(&mut ws, &signers, "app:1", Utc::now());
        assert_eq!(version(&ws), Some(1), "unpublished: re-signed in place");
        publish_all(&mut ws);
        target(&mut ws, &signers, "app:2", Utc::now());
        target(&mut ws, &signers, "app:3", Utc::now());
        assert_eq!(version(&ws), Some(2));
        // The snapshot no longer pins targets v2: publishing is refused until it does.
        assert!(matches!(ws.check_consistent(), Err(RepoError::Stale(_))));
        ws.snapshot(&signers, Utc::now()).expect("snapshot");
        assert!(
            matches!(ws.check_consistent(), Err(RepoError::Stale(_))),
            "timestamp is stale"
        );
        ws.timestamp(&signers, Utc::now()).expect("timestamp");
        ws.check_consistent().expect("consistent");
        assert_eq!(
            unpublished_names(&ws),
            ["2.targets.json", "2.snapshot.json", "timestamp.json"]
        );
        assert_eq!(
            ws.unpublished("elsewhere").expect("list").len(),
            4,
            "root, targets, snapshot, timestamp"
        );
    }

    #[test]
    fn retention_keeps_the_newest_and_drops_the_old() {
        let dir = tempfile::tempdir().expect("tempdir");
        let k = keys();
        let signers: Vec<&SigningKey> = k.iter().collect();
        let retention = Retention {
            keep: Some(2),
            max_age: Some("30d".into()),
        };
        let mut ws = init(dir.path(), &k, &signers, retention).expect("init");
        let now = Utc::now();
        target(&mut ws, &signers, "app:old", now - Duration::days(40));
        target(&mut ws, &signers, "app:1", now - Duration::days(3));
        target(&mut ws, &signers, "app:2", now - Duration::days(2));
        let pruned = target(&mut ws, &signers, "app:3", now);
        assert_eq!(pruned.removed, ["app:1"]);
        let pruned = target(&mut ws, &signers, "web:1", now);
        assert!(pruned.removed.is_empty(), "retention is per repository");
        let (_, signed) = ws
            .signed_of(&RoleName::targets())
            .expect("read")
            .expect("targets");
        let mut listed: Vec<&String> = signed["targets"]
            .as_object()
            .expect("targets")
            .keys()
            .collect();
        listed.sort();
        assert_eq!(listed, ["app:2", "app:3", "web:1"]);
        assert!(
            ws.next_signature_version("app:1", &RoleName::targets())
                .expect("next")
                > 1,
            "dropped targets keep their counter"
        );
    }

    #[test]
    fn bad_input_is_refused_and_changes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let k = keys();
        // Without the root key nothing can be signed.
        let partial: Vec<&SigningKey> = k[1..].iter().collect();
        let err = init(&dir.path().join("a"), &k, &partial, Retention::default())
            .err()
            .expect("refused");
        assert!(
            err.to_string()
                .contains("none of the given keys may sign it"),
            "{err}"
        );
        let signers: Vec<&SigningKey> = k.iter().collect();
        let mut ws = init(&dir.path().join("b"), &k, &signers, Retention::default()).expect("init");
        assert!(
            init(&dir.path().join("b"), &k, &signers, Retention::default()).is_err(),
            "no re-init over a repository"
        );
        let before = ws.current(&RoleName::targets()).expect("current");
        let team = RoleKeys {
            keys: vec![k[1].public()],
            threshold: 1,
        };
        for name in ["team/api", "snapshot", ".x", ""] {
            let team = RoleKeys {
                keys: team.keys.clone(),
                threshold: 1,
            };
            assert!(
                delegate(&mut ws, name, team, "a:*", &signers, &[]).is_err(),
                "{name}"
            );
        }
        let impossible = RoleKeys {
            keys: vec![k[1].public()],
            threshold: 2,
        };
        assert!(delegate(&mut ws, "team", impossible, "a:*", &signers, &[]).is_err());
        assert_eq!(ws.current(&RoleName::targets()).expect("current"), before);
        for bad in ["", "7", "7w", "-1d", "0h", "d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_duration("90s").expect("90s"), Duration::seconds(90));
        assert!(Workspace::open(&dir.path().join("nowhere")).is_err());
    }

    #[test]
    fn prune_resigns_only_roles_whose_keys_are_given() {
        let dir = tempfile::tempdir().expect("tempdir");
        let k = keys();
        let signers: Vec<&SigningKey> = k.iter().collect();
        let mut ws = init(dir.path(), &k, &signers, Retention::default()).expect("init");
        let team_key = SigningKey::ed25519_from_seed([9; 32]);
        let team = RoleKeys {
            keys: vec![team_key.public()],
            threshold: 1,
        };
        delegate(&mut ws, "team", team, "web:*", &signers, &[]).expect("delegate");
        let old = Utc::now() - Duration::days(10);
        target(&mut ws, &signers, "app:1", old);
        let team_role = RoleName::new("team").expect("role");
        ws.set_target(
            &team_role,
            "web:1",
            10,
            &"cd".repeat(32),
            "m",
            1,
            &[&team_key],
            old,
        )
        .expect("team target");
        ws.set_retention(Retention {
            keep: None,
            max_age: Some("5d".into()),
        })
        .expect("retention");
        // Only the targets key is given: targets is pruned, team is reported and left alone.
        let (done, skipped) = ws.prune(&signers, Utc::now()).expect("prune");
        assert_eq!(
            done,
            [Pruned {
                role: "targets".into(),
                removed: vec!["app:1".into()]
            }]
        );
        assert_eq!(
            skipped,
            [Pruned {
                role: "team".into(),
                removed: vec!["web:1".into()]
            }]
        );
        let (_, team_signed) = ws.signed_of(&team_role).expect("read").expect("team");
        assert!(team_signed["targets"]["web:1"].is_object());
        let (done, _) = ws.prune(&[&team_key], Utc::now()).expect("prune team");
        assert_eq!(done.len(), 1);
        assert!(ws
            .set_retention(Retention {
                keep: None,
                max_age: Some("soon".into())
            })
            .is_err());
    }

    #[test]
    fn online_keys_stay_online_and_spent_versions_are_never_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let k = keys();
        let signers: Vec<&SigningKey> = k.iter().collect();
        // The targets key reused as the timestamp key is refused.
        let err = init_with(
            &dir.path().join("a"),
            &k,
            [0, 1, 2, 1],
            &signers,
            Retention::default(),
        )
        .err()
        .expect("refused");
        assert!(err.to_string().contains("online"), "{err}");
        assert!(init(
            &dir.path().join("k0"),
            &k,
            &signers,
            Retention {
                keep: Some(0),
                max_age: None
            }
        )
        .is_err());

        let mut ws = init(&dir.path().join("b"), &k, &signers, Retention::default()).expect("init");
        // Nor can an online key be delegated image signing.
        let online = RoleKeys {
            keys: vec![k[3].public()],
            threshold: 1,
        };
        assert!(delegate(&mut ws, "ops", online, "a:*", &signers, &[]).is_err());
        // A delegation with the role's private key writes its first version; with only the
        // public key, publishing waits until the role has metadata.
        let team_key = SigningKey::ed25519_from_seed([7; 32]);
        let team = || RoleKeys {
            keys: vec![team_key.public()],
            threshold: 1,
        };
        delegate(&mut ws, "web", team(), "web:*", &signers, &[]).expect("delegate");
        ws.snapshot(&signers, Utc::now()).expect("snapshot");
        ws.timestamp(&signers, Utc::now()).expect("timestamp");
        let stale = ws.check_consistent().expect_err("web has no metadata");
        assert!(
            stale.to_string().contains("role web is delegated"),
            "{stale}"
        );
        delegate(&mut ws, "web", team(), "web:*", &signers, &[&team_key]).expect("delegate");
        assert!(ws
            .current(&RoleName::new("web").expect("role"))
            .expect("current")
            .is_some());

        // A timestamp whose push was started counts as spent even if never confirmed.
        let (_, ts) = ws
            .current(&RoleName::timestamp())
            .expect("current")
            .expect("timestamp");
        ws.mark_attempts(&[("timestamp.json".to_string(), ts.clone())])
            .expect("attempt");
        let before = version_of(&ts).expect("version");
        ws.timestamp(&signers, Utc::now()).expect("timestamp");
        let (after, _) = ws
            .current(&RoleName::timestamp())
            .expect("current")
            .expect("timestamp");
        assert_eq!(after, before + 1);
        // Signature versions are taken before anything is pushed.
        let v1 = ws
            .reserve_signature_version("web:1", &RoleName::targets())
            .expect("v1");
        let v2 = ws
            .reserve_signature_version("web:1", &RoleName::targets())
            .expect("v2");
        assert_eq!((v1, v2), (1, 2));
        // None of these panics (a multi-byte unit, an overflowing count).
        for bad in ["1ч", "999999999d", "1d "] {
            let _ = parse_duration(bad);
        }
        assert!(parse_duration("1ч").is_err());
        assert!(parse_duration("999999999d").is_err());
    }

    #[test]
    fn a_working_copy_is_locked_while_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let k = keys();
        let signers: Vec<&SigningKey> = k.iter().collect();
        let ws = init(dir.path(), &k, &signers, Retention::default()).expect("init");
        let other = fs::OpenOptions::new()
            .write(true)
            .open(dir.path().join(LOCK_FILE))
            .expect("lock file");
        assert!(other.try_lock().is_err(), "a second command must wait");
        drop(ws);
        assert!(other.try_lock().is_ok());
        drop(other);
        let reopened = Workspace::open(dir.path()).expect("open");
        assert_eq!(reopened.scope().to_string(), "127.0.0.1:5000/acme");
    }

    #[test]
    fn key_changes_that_would_break_nodes_or_separation_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let k = keys();
        let signers: Vec<&SigningKey> = k.iter().collect();
        let mut ws = init(dir.path(), &k, &signers, Retention::default()).expect("init");
        let web_key = SigningKey::ed25519_from_seed([7; 32]);
        let web = |key: &SigningKey| RoleKeys {
            keys: vec![key.public()],
            threshold: 1,
        };
        delegate(
            &mut ws,
            "web",
            web(&web_key),
            "web:*",
            &signers,
            &[&web_key],
        )
        .expect("delegate");
        let web_role = RoleName::new("web").expect("role");
        // A delegated role rotated onto the timestamp key, or the snapshot rotated onto a
        // delegated role's key: either way an online key could sign images.
        assert!(ws
            .rotate(&web_role, &[&k[3]], 1, &[&k[1]], Utc::now())
            .is_err());
        let err = ws
            .rotate(&RoleName::snapshot(), &[&web_key], 1, &[&k[0]], Utc::now())
            .expect_err("refused");
        assert!(err.to_string().contains("delegated role"), "{err}");
        // Too few of the new role's private keys: nothing is written.
        let before = ws.current(&RoleName::targets()).expect("current");
        let other = SigningKey::ed25519_from_seed([8; 32]);
        let two = RoleKeys {
            keys: vec![web_key.public(), other.public()],
            threshold: 2,
        };
        assert!(delegate(&mut ws, "api", two, "api:*", &signers, &[&web_key]).is_err());
        assert_eq!(ws.current(&RoleName::targets()).expect("current"), before);
        // New public keys for an existing role leave its metadata signed by the old key:
        // publishing is refused until it is re-signed.
        ws.snapshot(&signers, Utc::now()).expect("snapshot");
        ws.timestamp(&signers, Utc::now()).expect("timestamp");
        ws.check_consistent().expect("consistent");
        delegate(&mut ws, "web", web(&other), "web:*", &signers, &[]).expect("re-delegate");
        ws.snapshot(&signers, Utc::now()).expect("snapshot");
        ws.timestamp(&signers, Utc::now()).expect("timestamp");
        let stale = ws
            .check_consistent()
            .expect_err("web is signed by its old key");
        assert!(
            stale.to_string().contains("not signed by its current keys"),
            "{stale}"
        );
        delegate(&mut ws, "web", web(&other), "web:*", &signers, &[&other]).expect("re-sign");
        ws.snapshot(&signers, Utc::now()).expect("snapshot");
        ws.timestamp(&signers, Utc::now()).expect("timestamp");
        ws.check_consistent().expect("consistent again");
    }
}
