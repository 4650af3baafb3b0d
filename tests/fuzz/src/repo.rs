//! A fixed, valid TUF repository for scope [`SCOPE`], built in memory once per process with
//! the plugin's own signing code (the plugin's `RepoBuilder` writes files and has no
//! delegations): root v1 (and a v2 and v3 that rotate the root and timestamp keys, not
//! served unless an input asks), timestamp, snapshot, top-level targets listing `app:1` and
//! delegating `team/*` to `team`, which hands its paths to two hash bins (TAP 15).
//! Every document expires in 2100, every key is ed25519 from a fixed seed.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use pullguard_plugin::tuf::schema::SuccinctRoles;
use pullguard_plugin::tuf::signing::sign_document;
use pullguard_plugin::tuf::signing::SigningKey;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::keys::Signer;
use crate::FAR_EXPIRY;

pub const SCOPE: &str = "127.0.0.1:5000/acme";
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// The delegated role and its hash bins.
pub const TEAM: &str = "team";
pub const BIN_PREFIX: &str = "team-bin";
pub const BINS: [&str; 2] = ["team-bin-0", "team-bin-1"];

/// The repository's keys, one ed25519 key per role, and the keys the rotations move to.
pub struct Keys {
    pub root: Signer,
    pub root2: Signer,
    pub timestamp: Signer,
    pub timestamp2: Signer,
    pub snapshot: Signer,
    pub targets: Signer,
    pub team: Signer,
    pub bins: Signer,
}

/// One image of the repository: where it lives and what is signed about it.
pub struct Image {
    /// `host/namespace/repo:tag`.
    pub reference: String,
    /// Full registry repository (`acme/app`).
    pub repository: String,
    pub target_path: String,
    pub manifest: Vec<u8>,
    /// The detached signature document, signed by the role responsible for the path.
    pub signature: Vec<u8>,
}

pub struct Repo {
    pub keys: Keys,
    /// The `signed` part of each document, by role name (`root` is v1).
    pub signed: BTreeMap<String, Value>,
    /// The signed envelope of each document, by role name.
    pub files: BTreeMap<String, Vec<u8>>,
    /// Root v2 and v3 (signed values and envelopes).
    pub rotations: Vec<(Value, Vec<u8>)>,
    pub images: Vec<Image>,
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Signs `signed` with `keys` (any number, none included) into an envelope.
pub fn sign(signed: &Value, keys: &[&Signer]) -> Vec<u8> {
    // The plugin's sign_document takes its own key type; the fixed signers include others.
    let Ok(canonical) = pullguard_plugin::tuf::cjson::to_canonical(signed) else {
        return sign_document(signed, &[]).unwrap_or_default();
    };
    let signatures: Vec<Value> = keys
        .iter()
        .map(|k| json!({"keyid": k.id, "sig": k.sign(&canonical)}))
        .collect();
    serde_json::to_vec(&json!({"signed": signed, "signatures": signatures})).unwrap_or_default()
}

fn key_entry(s: &Signer) -> Value {
    serde_json::to_value(&s.key).unwrap_or(Value::Null)
}

fn role(keys: &[&Signer]) -> Value {
    json!({"keyids": keys.iter().map(|k| k.id.clone()).collect::<Vec<_>>(), "threshold": 1})
}

fn header(kind: &str, version: u64) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    m.insert("_type".into(), json!(kind));
    m.insert("spec_version".into(), json!("1.0.31"));
    m.insert("version".into(), json!(version));
    m.insert("expires".into(), json!(FAR_EXPIRY));
    m
}

fn root_signed(version: u64, root_keys: &[&Signer], k: &Keys, timestamp: &Signer) -> Value {
    let mut m = header("root", version);
    m.insert("consistent_snapshot".into(), json!(true));
    let mut keys = serde_json::Map::new();
    for s in root_keys
        .iter()
        .copied()
        .chain([timestamp, &k.snapshot, &k.targets])
    {
        keys.insert(s.id.clone(), key_entry(s));
    }
    m.insert("keys".into(), Value::Object(keys));
    m.insert(
        "roles".into(),
        json!({"root": role(root_keys), "timestamp": role(&[timestamp]),
               "snapshot": role(&[&k.snapshot]), "targets": role(&[&k.targets])}),
    );
    Value::Object(m)
}

fn targets_signed(entries: &[(&str, &[u8])], delegations: Option<Value>) -> Value {
    let mut m = header("targets", 1);
    let targets: serde_json::Map<String, Value> = entries
        .iter()
        .map(|(path, bytes)| {
            (
                path.to_string(),
                json!({"length": bytes.len(), "hashes": {"sha256": sha256_hex(bytes)},
                       "custom": {"mediaType": MANIFEST_MEDIA_TYPE}}),
            )
        })
        .collect();
    m.insert("targets".into(), Value::Object(targets));
    if let Some(d) = delegations {
        m.insert("delegations".into(), d);
    }
    Value::Object(m)
}

/// A small OCI image manifest (the content of a target).
pub fn manifest(label: &str) -> Vec<u8> {
    let config = b"{}";
    let layer = label.as_bytes();
    serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": MANIFEST_MEDIA_TYPE,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": format!("sha256:{}", sha256_hex(config)), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": format!("sha256:{}", sha256_hex(layer)), "size": layer.len()}],
        "annotations": {"org.opencontainers.image.title": label},
    }))
    .unwrap_or_default()
}

/// A detached signature document (DESIGN §2) for `repository:tag` at `manifest`.
pub fn signature_signed(repository: &str, tags: &[&str], manifest: &[u8], version: u64) -> Value {
    json!({"_type": "signature", "spec_version": "1.0", "version": version,
           "expires": FAR_EXPIRY,
           "subject": {"mediaType": MANIFEST_MEDIA_TYPE, "size": manifest.len(),
                       "digest": format!("sha256:{}", sha256_hex(manifest))},
           "repository": repository, "tags": tags})
}

impl Repo {
    /// The repository (built on first use).
    pub fn get() -> &'static Repo {
        static REPO: OnceLock<Repo> = OnceLock::new();
        REPO.get_or_init(Repo::build)
    }

    fn build() -> Repo {
        let keys = Keys {
            root: Signer::ed25519(11),
            root2: Signer::ed25519(12),
            timestamp: Signer::ed25519(13),
            timestamp2: Signer::ed25519(14),
            snapshot: Signer::ed25519(15),
            targets: Signer::ed25519(16),
            team: Signer::ed25519(17),
            bins: Signer::ed25519(18),
        };
        let k = &keys;
        let mut signed = BTreeMap::new();
        let mut files = BTreeMap::new();
        let mut put = |name: &str, value: Value, by: &Signer| {
            let bytes = sign(&value, &[by]);
            files.insert(name.to_string(), bytes.clone());
            signed.insert(name.to_string(), value);
            bytes
        };
        put("root", root_signed(1, &[&k.root], k, &k.timestamp), &k.root);

        let succinct = SuccinctRoles {
            keyids: vec![k.bins.id.clone()],
            threshold: std::num::NonZeroU64::MIN,
            bit_length: 1,
            name_prefix: BIN_PREFIX.into(),
            extra: Default::default(),
        };
        let app = manifest("app:1");
        let team_images: Vec<(String, Vec<u8>)> = ["team/api:1", "team/web:1"]
            .iter()
            .map(|p| (p.to_string(), manifest(p)))
            .collect();
        let mut images = vec![Image {
            reference: format!("{SCOPE}/app:1"),
            repository: "acme/app".into(),
            target_path: "app:1".into(),
            signature: sign(&signature_signed("app", &["1"], &app, 1), &[&k.targets]),
            manifest: app.clone(),
        }];
        for bin in BINS {
            let entries: Vec<(&str, &[u8])> = team_images
                .iter()
                .filter(|(p, _)| succinct.role_for(p) == bin)
                .map(|(p, m)| (p.as_str(), m.as_slice()))
                .collect();
            put(bin, targets_signed(&entries, None), &k.bins);
        }
        for (path, manifest) in &team_images {
            let (repo, tag) = path.split_once(':').unwrap_or((path, ""));
            images.push(Image {
                reference: format!("{SCOPE}/{path}"),
                repository: format!("acme/{repo}"),
                target_path: path.clone(),
                signature: sign(&signature_signed(repo, &[tag], manifest, 1), &[&k.bins]),
                manifest: manifest.clone(),
            });
        }
        let team_delegations = json!({
            "keys": {k.bins.id.clone(): key_entry(&k.bins)},
            "succinct_roles": serde_json::to_value(&succinct).unwrap_or(Value::Null),
        });
        put(TEAM, targets_signed(&[], Some(team_delegations)), &k.team);
        let delegations = json!({
            "keys": {k.team.id.clone(): key_entry(&k.team)},
            "roles": [{"name": TEAM, "keyids": [k.team.id.clone()], "threshold": 1,
                       "terminating": false, "paths": ["team/*"]}],
        });
        let targets_bytes = put(
            "targets",
            targets_signed(&[("app:1", &app)], Some(delegations)),
            &k.targets,
        );

        let mut snapshot = header("snapshot", 1);
        let mut meta = serde_json::Map::new();
        meta.insert(
            "targets.json".into(),
            json!({"version": 1, "length": targets_bytes.len(),
                   "hashes": {"sha256": sha256_hex(&targets_bytes)}}),
        );
        for name in [TEAM, BINS[0], BINS[1]] {
            meta.insert(format!("{name}.json"), json!({"version": 1}));
        }
        snapshot.insert("meta".into(), Value::Object(meta));
        let snapshot_bytes = put("snapshot", Value::Object(snapshot), &k.snapshot);

        let mut timestamp = header("timestamp", 1);
        timestamp.insert(
            "meta".into(),
            json!({"snapshot.json": {"version": 1, "length": snapshot_bytes.len(),
                                     "hashes": {"sha256": sha256_hex(&snapshot_bytes)}}}),
        );
        put("timestamp", Value::Object(timestamp), &k.timestamp);

        let v2 = root_signed(2, &[&k.root, &k.root2], k, &k.timestamp2);
        let v3 = root_signed(3, &[&k.root2], k, &k.timestamp2);
        let rotations = vec![
            (v2.clone(), sign(&v2, &[&k.root, &k.root2])),
            (v3.clone(), sign(&v3, &[&k.root2])),
        ];
        Repo {
            keys,
            signed,
            files,
            rotations,
            images,
        }
    }

    /// The keys that sign `role` (root and timestamp: before and after the rotations).
    pub fn signers_of(&self, role: &str) -> [&Signer; 2] {
        let k = &self.keys;
        match role {
            "root" => [&k.root, &k.root2],
            "timestamp" => [&k.timestamp, &k.timestamp2],
            "snapshot" => [&k.snapshot, &k.snapshot],
            "targets" => [&k.targets, &k.targets],
            TEAM => [&k.team, &k.team],
            _ => [&k.bins, &k.bins],
        }
    }

    /// A key that `role` does not trust.
    pub fn stranger_to(&self, role: &str) -> &Signer {
        match role {
            "targets" | TEAM => &self.keys.bins,
            _ => &self.keys.targets,
        }
    }

    /// The trusted root an operator installs.
    pub fn initial_root(&self) -> &[u8] {
        &self.files["root"]
    }

    /// The file name of each document in the standard layout (consistent snapshots).
    pub fn file_names(&self) -> Vec<(String, &[u8])> {
        let mut out: Vec<(String, &[u8])> = self
            .files
            .iter()
            .map(|(role, bytes)| {
                let name = if role == "timestamp" {
                    "timestamp.json".to_string()
                } else {
                    format!("1.{role}.json")
                };
                (name, bytes.as_slice())
            })
            .collect();
        out.sort();
        out
    }
}

/// A plugin signing key for the publisher's seeds (the generator only).
pub fn publisher_key(seed: u8) -> SigningKey {
    SigningKey::ed25519_from_seed([seed; 32])
}
