//! A small TUF repository writer for tests and benchmarks (feature `test-support`, never on
//! by default): top-level roles with one ed25519 key each, targets in the top-level targets
//! role, consistent snapshots, the standard file layout under `metadata/` and `targets/`.
//! Interoperability with other implementations is tested separately, against python-tuf.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::names::RoleName;
use super::signing::{sign_document, SigningKey};
use crate::tuf::fetch::{metadata_file_name, target_file_path};

pub const ROLES: [&str; 4] = ["root", "timestamp", "snapshot", "targets"];

pub struct RepoBuilder {
    dir: PathBuf,
    keys: BTreeMap<&'static str, SigningKey>,
    versions: BTreeMap<&'static str, u64>,
    expires: BTreeMap<&'static str, DateTime<Utc>>,
    targets: BTreeMap<String, Vec<u8>>,
    /// Every published document: (role, version) → bytes.
    history: BTreeMap<(&'static str, u64), Vec<u8>>,
}

fn write(path: &Path, bytes: &[u8]) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap_or_else(|e| panic!("mkdir {}: {e}", parent.display()));
    }
    fs::write(path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

fn expires(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

impl RepoBuilder {
    /// A repository in `dir` whose documents expire in 30 days; nothing is published yet.
    pub fn new(dir: &Path) -> Self {
        let keys = ROLES
            .iter()
            .enumerate()
            .map(|(i, role)| (*role, SigningKey::ed25519_from_seed([i as u8 + 1; 32])))
            .collect();
        let in_30_days = Utc::now() + Duration::days(30);
        RepoBuilder {
            dir: dir.to_path_buf(),
            keys,
            versions: ROLES.iter().map(|r| (*r, 0)).collect(),
            expires: ROLES.iter().map(|r| (*r, in_30_days)).collect(),
            targets: BTreeMap::new(),
            history: BTreeMap::new(),
        }
    }

    pub fn metadata_dir(&self) -> PathBuf {
        self.dir.join("metadata")
    }

    pub fn targets_dir(&self) -> PathBuf {
        self.dir.join("targets")
    }

    pub fn version(&self, role: &str) -> u64 {
        self.versions[role]
    }

    pub fn set_expires(&mut self, role: &'static str, at: DateTime<Utc>) {
        self.expires.insert(role, at);
    }

    pub fn add_target(&mut self, path: &str, bytes: &[u8]) {
        self.targets.insert(path.to_string(), bytes.to_vec());
    }

    /// The bytes of a published version.
    pub fn published(&self, role: &'static str, version: u64) -> Option<&[u8]> {
        self.history.get(&(role, version)).map(Vec::as_slice)
    }

    fn signed_header(&self, role: &'static str, version: u64) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("_type".into(), json!(role));
        m.insert("spec_version".into(), json!("1.0.31"));
        m.insert("version".into(), json!(version));
        m.insert("expires".into(), json!(expires(self.expires[role])));
        m
    }

    fn store(&mut self, role: &'static str, signed: Value) -> Vec<u8> {
        let version = self.versions[role] + 1;
        self.versions.insert(role, version);
        let key = &self.keys[role];
        let bytes = sign_document(&signed, &[key]).unwrap_or_else(|e| panic!("sign: {e}"));
        let name = RoleName::new(role).unwrap_or_else(|e| panic!("{e}"));
        let served = if role == "timestamp" {
            metadata_file_name(&name, None)
        } else {
            metadata_file_name(&name, Some(version))
        };
        write(&self.metadata_dir().join(served), &bytes);
        self.history.insert((role, version), bytes.clone());
        bytes
    }

    pub fn publish_root(&mut self) -> Vec<u8> {
        let version = self.versions["root"] + 1;
        let mut signed = self.signed_header("root", version);
        let keys: Map<String, Value> = self
            .keys
            .values()
            .map(|k| {
                (
                    k.key_id(),
                    serde_json::to_value(k.public()).unwrap_or(Value::Null),
                )
            })
            .collect();
        let roles: Map<String, Value> = ROLES
            .iter()
            .map(|r| {
                (
                    r.to_string(),
                    json!({"keyids": [self.keys[r].key_id()], "threshold": 1}),
                )
            })
            .collect();
        signed.insert("consistent_snapshot".into(), json!(true));
        signed.insert("keys".into(), Value::Object(keys));
        signed.insert("roles".into(), Value::Object(roles));
        self.store("root", Value::Object(signed))
    }

    /// Publishes targets (and writes the target files), then snapshot and timestamp.
    pub fn publish_targets(&mut self) {
        let version = self.versions["targets"] + 1;
        let mut signed = self.signed_header("targets", version);
        let mut entries = Map::new();
        for (path, bytes) in &self.targets {
            let hash = hex::encode(Sha256::digest(bytes));
            write(
                &self.targets_dir().join(target_file_path(path, Some(&hash))),
                bytes,
            );
            entries.insert(
                path.clone(),
                json!({"length": bytes.len(), "hashes": {"sha256": hash}}),
            );
        }
        signed.insert("targets".into(), Value::Object(entries));
        self.store("targets", Value::Object(signed));
        self.publish_snapshot();
    }

    /// Publishes a snapshot of the current targets version, then a timestamp.
    pub fn publish_snapshot(&mut self) {
        let version = self.versions["snapshot"] + 1;
        let mut signed = self.signed_header("snapshot", version);
        signed.insert(
            "meta".into(),
            json!({"targets.json": {"version": self.versions["targets"]}}),
        );
        self.store("snapshot", Value::Object(signed));
        self.publish_timestamp();
    }

    /// Publishes a timestamp of the current snapshot, with its length and hash.
    pub fn publish_timestamp(&mut self) {
        let version = self.versions["timestamp"] + 1;
        let snapshot_version = self.versions["snapshot"];
        let snapshot = self
            .history
            .get(&("snapshot", snapshot_version))
            .cloned()
            .unwrap_or_default();
        let mut signed = self.signed_header("timestamp", version);
        signed.insert(
            "meta".into(),
            json!({"snapshot.json": {"version": snapshot_version, "length": snapshot.len(),
                                      "hashes": {"sha256": hex::encode(Sha256::digest(&snapshot))}}}),
        );
        self.store("timestamp", Value::Object(signed));
    }

    /// Publishes root v1 and the first targets, snapshot and timestamp.
    pub fn publish_all(&mut self) {
        self.publish_root();
        self.publish_targets();
    }

    /// Serves an older timestamp as the current one (a replay).
    pub fn serve_old_timestamp(&self, version: u64) {
        let bytes = self
            .published("timestamp", version)
            .unwrap_or_else(|| panic!("timestamp v{version} was never published"));
        write(&self.metadata_dir().join("timestamp.json"), bytes);
    }

    /// Root v1, as a client is bootstrapped with.
    pub fn initial_root(&self) -> Vec<u8> {
        self.published("root", 1)
            .unwrap_or_else(|| panic!("root v1 was never published"))
            .to_vec()
    }
}
