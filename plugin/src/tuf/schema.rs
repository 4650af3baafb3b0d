//! TUF 1.0 metadata documents (spec §4) and pullguard's detached signature document
//! (DESIGN §2), as serde types that mirror the specification one to one.
//!
//! Documents are parsed in two steps: the bytes become a JSON value, the canonical form of its
//! `signed` member is kept (signatures are checked over exactly that, so unknown fields stay
//! covered), then the value becomes the typed document. Unknown fields are kept in `extra`.
//! Checks that the specification puts on the *shape* of a document (versions ≥ 1, thresholds
//! ≥ 1, the four top-level roles, unique delegated role names, …) happen here; checks that
//! need trusted state happen in [`super::trusted`].

use std::collections::BTreeMap;
use std::fmt;
use std::num::NonZeroU64;

use chrono::{DateTime, NaiveDateTime, Utc};
use indexmap::IndexMap;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::cjson::{self, CanonicalError};
use super::names::RoleName;

/// Unknown fields of a document, kept so that nothing a signer wrote is lost.
pub type Extra = Map<String, Value>;

/// Why a document does not have the shape the specification requires.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    #[error("not valid JSON: {0}")]
    Json(String),
    #[error("the envelope must be an object with `signed` (an object) and `signatures` (a list)")]
    Envelope,
    #[error("expected a `{expected}` document, found `{found}`")]
    WrongType {
        expected: &'static str,
        found: String,
    },
    #[error("unsupported spec_version `{0}` (pullguard reads TUF 1.x)")]
    SpecVersion(String),
    #[error("{0}")]
    Canonical(#[from] CanonicalError),
    #[error("invalid document: {0}")]
    Invalid(String),
}

/// `expires`: an instant written as `YYYY-MM-DDTHH:MM:SSZ` (TUF §4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Expires(pub DateTime<Utc>);

impl Expires {
    pub fn parse(s: &str) -> Result<Self, String> {
        // The format is fixed: no fractions, no offsets other than Z, and every field its
        // digits (chrono's `%Y` alone would take a sign or a space: `-999-01-01T…`).
        let shape = s.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            10 => b == b'T',
            13 | 16 => b == b':',
            19 => b == b'Z',
            _ => b.is_ascii_digit(),
        });
        if s.len() != 20 || !shape {
            return Err(format!("expires `{s}` is not YYYY-MM-DDTHH:MM:SSZ"));
        }
        NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%SZ")
            .map(|t| Expires(t.and_utc()))
            .map_err(|_| format!("expires `{s}` is not YYYY-MM-DDTHH:MM:SSZ"))
    }

    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.0 <= now
    }
}

impl fmt::Display for Expires {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.format("%Y-%m-%dT%H:%M:%SZ"))
    }
}

impl Serialize for Expires {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Expires {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Expires::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A public key as written in metadata (TUF §4.2). The key ID is the map key that names it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Key {
    pub keytype: String,
    pub scheme: String,
    pub keyval: KeyVal,
    #[serde(flatten, deserialize_with = "cjson::literal_map")]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyVal {
    /// Absent for key types that are not plain public keys (e.g. sigstore identities):
    /// such keys are listed but never verify anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public: Option<String>,
    #[serde(flatten, deserialize_with = "cjson::literal_map")]
    pub extra: Extra,
}

/// A top-level role in root: which keys sign it and how many must.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoleKeys {
    pub keyids: Vec<String>,
    pub threshold: NonZeroU64,
    #[serde(flatten, deserialize_with = "cjson::literal_map")]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Root {
    #[serde(rename = "_type")]
    pub type_: String,
    pub spec_version: String,
    pub version: NonZeroU64,
    pub expires: Expires,
    #[serde(default)]
    pub consistent_snapshot: bool,
    pub keys: BTreeMap<String, Key>,
    pub roles: BTreeMap<String, RoleKeys>,
    #[serde(flatten, deserialize_with = "cjson::literal_map")]
    pub extra: Extra,
}

/// What a timestamp or snapshot says about another metadata file (TUF §4.4, §4.5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetaFile {
    pub version: NonZeroU64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hashes: Option<IndexMap<String, String>>,
    #[serde(flatten, deserialize_with = "cjson::literal_map")]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timestamp {
    #[serde(rename = "_type")]
    pub type_: String,
    pub spec_version: String,
    pub version: NonZeroU64,
    pub expires: Expires,
    pub meta: BTreeMap<String, MetaFile>,
    #[serde(flatten, deserialize_with = "cjson::literal_map")]
    pub extra: Extra,
}

impl Timestamp {
    /// The snapshot entry (validated present when the document is parsed).
    pub fn snapshot_meta(&self) -> &MetaFile {
        &self.meta["snapshot.json"]
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    #[serde(rename = "_type")]
    pub type_: String,
    pub spec_version: String,
    pub version: NonZeroU64,
    pub expires: Expires,
    pub meta: BTreeMap<String, MetaFile>,
    #[serde(flatten, deserialize_with = "cjson::literal_map")]
    pub extra: Extra,
}

/// A target file: its length, its hashes (in the order written) and free-form `custom` data.
/// Other fields are covered by the signatures (over the canonical form of the whole
/// document) but not kept: a role lists thousands of targets, and collecting each one's
/// unknown fields cost more than the rest of its parse.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetFile {
    pub length: u64,
    pub hashes: IndexMap<String, String>,
    #[serde(
        default,
        deserialize_with = "cjson::literal_some",
        skip_serializing_if = "Option::is_none"
    )]
    pub custom: Option<Value>,
}

/// A delegated targets role (TUF §4.5 `delegations.roles[]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DelegatedRole {
    pub name: RoleName,
    pub keyids: Vec<String>,
    pub threshold: NonZeroU64,
    #[serde(default)]
    pub terminating: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_hash_prefixes: Option<Vec<String>>,
    #[serde(flatten, deserialize_with = "cjson::literal_map")]
    pub extra: Extra,
}

/// Succinct hash-bin delegations (TAP 15): `2^bit_length` roles named
/// `<name_prefix>-<hex bin>`, sharing one set of keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuccinctRoles {
    pub keyids: Vec<String>,
    pub threshold: NonZeroU64,
    pub bit_length: u32,
    pub name_prefix: String,
    #[serde(flatten, deserialize_with = "cjson::literal_map")]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delegations {
    pub keys: BTreeMap<String, Key>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<DelegatedRole>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub succinct_roles: Option<SuccinctRoles>,
    #[serde(flatten, deserialize_with = "cjson::literal_map")]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Targets {
    #[serde(rename = "_type")]
    pub type_: String,
    pub spec_version: String,
    pub version: NonZeroU64,
    pub expires: Expires,
    pub targets: BTreeMap<String, TargetFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegations: Option<Delegations>,
    #[serde(flatten, deserialize_with = "cjson::literal_map")]
    pub extra: Extra,
}

/// The manifest a detached signature is about (an OCI descriptor's core).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subject {
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub size: u64,
    pub digest: String,
    #[serde(flatten, deserialize_with = "cjson::literal_map")]
    pub extra: Extra,
}

/// pullguard's detached image signature (DESIGN §2): signed by the keys of the targets role
/// that covers `repository`, versioned per repository:tag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignatureDoc {
    #[serde(rename = "_type")]
    pub type_: String,
    pub spec_version: String,
    pub version: NonZeroU64,
    pub expires: Expires,
    pub subject: Subject,
    pub repository: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(flatten, deserialize_with = "cjson::literal_map")]
    pub extra: Extra,
}

/// One entry of an envelope's `signatures` list. Entries are not validated beyond their
/// shape: a signature that names an unknown key, or is not hex, simply never counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signature {
    pub keyid: String,
    pub sig: String,
    #[serde(flatten, deserialize_with = "cjson::literal_map")]
    pub extra: Extra,
}

/// The common header of every signed document.
pub trait Document: DeserializeOwned {
    /// The `_type` value.
    const TYPE: &'static str;
    fn type_field(&self) -> &str;
    fn spec_version(&self) -> &str;
    fn version(&self) -> u64;
    fn expires(&self) -> Expires;
    /// Shape rules beyond what serde checks.
    fn check(&self) -> Result<(), String> {
        Ok(())
    }
}

macro_rules! document {
    ($t:ty, $name:literal) => {
        impl Document for $t {
            const TYPE: &'static str = $name;
            fn type_field(&self) -> &str {
                &self.type_
            }
            fn spec_version(&self) -> &str {
                &self.spec_version
            }
            fn version(&self) -> u64 {
                self.version.get()
            }
            fn expires(&self) -> Expires {
                self.expires
            }
            fn check(&self) -> Result<(), String> {
                self.check_shape()
            }
        }
    };
}

document!(Root, "root");
document!(Timestamp, "timestamp");
document!(Snapshot, "snapshot");
document!(Targets, "targets");
document!(SignatureDoc, "signature");

/// The top-level role names, which a delegation may not reuse.
pub const TOP_LEVEL_ROLES: [&str; 4] = ["root", "timestamp", "snapshot", "targets"];

impl Root {
    fn check_shape(&self) -> Result<(), String> {
        let names: Vec<&str> = self.roles.keys().map(String::as_str).collect();
        let mut expected = TOP_LEVEL_ROLES.to_vec();
        expected.sort_unstable();
        if names != expected {
            return Err(format!(
                "root must define exactly the roles root, snapshot, targets, timestamp; found {names:?}"
            ));
        }
        for (name, role) in &self.roles {
            check_unique_keyids(name, &role.keyids)?;
        }
        Ok(())
    }

    pub fn role(&self, name: &str) -> &RoleKeys {
        // Presence of the four roles is checked at parse time.
        &self.roles[name]
    }
}

impl Timestamp {
    fn check_shape(&self) -> Result<(), String> {
        let meta = self
            .meta
            .get("snapshot.json")
            .ok_or("timestamp has no meta entry for snapshot.json")?;
        meta.check_shape("snapshot.json")
    }
}

impl Snapshot {
    fn check_shape(&self) -> Result<(), String> {
        self.meta
            .iter()
            .try_for_each(|(name, meta)| meta.check_shape(name))
    }
}

impl MetaFile {
    fn check_shape(&self, name: &str) -> Result<(), String> {
        if let Some(hashes) = &self.hashes {
            if hashes.is_empty() {
                return Err(format!("meta entry {name} has an empty hashes object"));
            }
        }
        Ok(())
    }
}

impl Targets {
    fn check_shape(&self) -> Result<(), String> {
        for (path, target) in &self.targets {
            if target.hashes.is_empty() {
                return Err(format!("target {path} has no hashes"));
            }
        }
        let Some(delegations) = &self.delegations else {
            return Ok(());
        };
        match (&delegations.roles, &delegations.succinct_roles) {
            (Some(_), Some(_)) => Err("delegations has both roles and succinct_roles".into()),
            (None, None) => Err("delegations has neither roles nor succinct_roles".into()),
            (None, Some(succinct)) => {
                if !(1..=32).contains(&succinct.bit_length) {
                    return Err(format!(
                        "succinct_roles bit_length {} is not within 1..=32",
                        succinct.bit_length
                    ));
                }
                check_unique_keyids(&succinct.name_prefix, &succinct.keyids)
            }
            (Some(roles), None) => {
                let mut seen = std::collections::HashSet::new();
                for role in roles {
                    if TOP_LEVEL_ROLES.contains(&role.name.as_str()) {
                        return Err(format!(
                            "delegated role name `{}` is a top-level role name",
                            role.name
                        ));
                    }
                    if !seen.insert(role.name.as_str()) {
                        return Err(format!("delegated role `{}` is listed twice", role.name));
                    }
                    if role.paths.is_some() == role.path_hash_prefixes.is_some() {
                        return Err(format!(
                            "delegated role `{}` must have exactly one of paths and path_hash_prefixes",
                            role.name
                        ));
                    }
                    check_unique_keyids(role.name.as_str(), &role.keyids)?;
                }
                Ok(())
            }
        }
    }
}

impl SignatureDoc {
    fn check_shape(&self) -> Result<(), String> {
        if self.repository.is_empty() {
            return Err("signature names no repository".into());
        }
        Ok(())
    }
}

fn check_unique_keyids(role: &str, keyids: &[String]) -> Result<(), String> {
    let mut seen = std::collections::HashSet::new();
    for keyid in keyids {
        if !seen.insert(keyid) {
            return Err(format!("role `{role}` lists key ID {keyid} twice"));
        }
    }
    Ok(())
}

/// From this size of `signed` on, its canonical form is written on a second thread while the
/// typed parse runs (a role of 10,000 targets is about 1.2 MB).
const SIDE_BY_SIDE_FROM: usize = 256 * 1024;

fn envelope_error(e: cjson::EnvelopeError) -> SchemaError {
    match e {
        cjson::EnvelopeError::Json(e) => SchemaError::Json(e),
        cjson::EnvelopeError::Canonical(e) => SchemaError::Canonical(e),
        cjson::EnvelopeError::Envelope => SchemaError::Envelope,
    }
}

/// A parsed, not yet verified, signed document: the typed `signed` part, the signatures, and
/// the canonical bytes of `signed` that the signatures must cover.
#[derive(Debug, Clone)]
pub struct Envelope<T> {
    pub signed: T,
    pub signatures: Vec<Signature>,
    pub canonical: Vec<u8>,
}

impl<T: Document> Envelope<T> {
    pub fn from_slice(bytes: &[u8]) -> Result<Self, SchemaError> {
        // One pass writes the canonical form of `signed` (a duplicate key anywhere makes the
        // document ambiguous: refused, never resolved); the typed parse reads the text as
        // written, without a `Value` in between. For a large document the two passes run
        // side by side.
        let (signed_text, signatures_text) = cjson::envelope_text(bytes).map_err(envelope_error)?;
        let (canonical, typed) = std::thread::scope(|s| {
            let beside = (signed_text.len() >= SIDE_BY_SIDE_FROM)
                .then(|| {
                    std::thread::Builder::new()
                        .name("canonical".into())
                        .spawn_scoped(s, || cjson::canonical_object(signed_text))
                        .ok()
                })
                .flatten();
            let typed = serde_json::from_str::<T>(signed_text);
            let canonical = match beside {
                Some(handle) => handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                None => cjson::canonical_object(signed_text),
            };
            (canonical, typed)
        });
        let (canonical, signed_type) = canonical.map_err(envelope_error)?;
        let found_type = signed_type.as_deref().unwrap_or("<none>");
        if found_type != T::TYPE {
            return Err(SchemaError::WrongType {
                expected: T::TYPE,
                found: found_type.to_string(),
            });
        }
        let signed: T = typed.map_err(|e| SchemaError::Invalid(e.to_string()))?;
        check_spec_version(signed.spec_version())?;
        signed.check().map_err(SchemaError::Invalid)?;
        let signatures: Vec<Signature> = serde_json::from_str(signatures_text)
            .map_err(|e| SchemaError::Invalid(format!("signatures: {e}")))?;
        // Two signatures under one key ID make the document ambiguous (as python-tuf rules).
        let mut seen = std::collections::HashSet::new();
        if let Some(dup) = signatures.iter().find(|s| !seen.insert(s.keyid.as_str())) {
            return Err(SchemaError::Invalid(format!(
                "more than one signature for key ID {}",
                dup.keyid
            )));
        }
        Ok(Envelope {
            signed,
            signatures,
            canonical,
        })
    }
}

/// TUF 1.x only: `MAJOR.MINOR` or `MAJOR.MINOR.PATCH`, all digits, major 1.
fn check_spec_version(v: &str) -> Result<(), SchemaError> {
    let parts: Vec<&str> = v.split('.').collect();
    let digits = parts
        .iter()
        .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if !(2..=3).contains(&parts.len()) || !digits || parts[0] != "1" {
        return Err(SchemaError::SpecVersion(v.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes_of(v: &Value) -> Vec<u8> {
        serde_json::to_vec(v).expect("json")
    }
    use serde_json::json;

    fn root_value() -> Value {
        json!({
            "signed": {
                "_type": "root", "spec_version": "1.0.31", "version": 1,
                "expires": "2030-01-01T00:00:00Z", "consistent_snapshot": true,
                "keys": {"k1": {"keytype": "ed25519", "scheme": "ed25519",
                                "keyval": {"public": "00"}, "x-custom": 7}},
                "roles": {
                    "root": {"keyids": ["k1"], "threshold": 1},
                    "timestamp": {"keyids": ["k1"], "threshold": 1},
                    "snapshot": {"keyids": ["k1"], "threshold": 1},
                    "targets": {"keyids": ["k1"], "threshold": 1}
                },
                "x-unknown": {"b": 1, "a": 2}
            },
            "signatures": [{"keyid": "k1", "sig": "abcd"}]
        })
    }

    #[test]
    fn parses_root_and_keeps_unknown_fields_in_the_signed_bytes() {
        let env = Envelope::<Root>::from_slice(&bytes_of(&root_value())).expect("parses");
        assert_eq!(env.signed.version.get(), 1);
        assert!(env.signed.consistent_snapshot);
        assert_eq!(env.signed.extra["x-unknown"], json!({"b": 1, "a": 2}));
        assert_eq!(env.signed.keys["k1"].extra["x-custom"], json!(7));
        let canonical = String::from_utf8(env.canonical).expect("utf8");
        assert!(
            canonical.contains(r#""x-unknown":{"a":2,"b":1}"#),
            "{canonical}"
        );
    }

    #[test]
    fn free_form_fields_are_read_as_written_whatever_their_keys() {
        // serde_json's own `Value` reader (its `raw_value` feature is on) would read this
        // object as the JSON its string holds, `{"a": 1}`; the document says an object with
        // one odd key, and that is what every field of it must hold.
        let odd = json!({"$serde_json::private::RawValue": "{\"a\": 1}"});
        assert_ne!(
            serde_json::from_slice::<Value>(&bytes_of(&odd)).ok(),
            Some(odd.clone()),
            "serde_json's quirk this test is about is gone"
        );
        let mut v = root_value();
        v["signed"]["x-unknown"] = odd.clone();
        v["signed"]["keys"]["k1"]["x-custom"] = json!([odd.clone()]);
        let env = Envelope::<Root>::from_slice(&bytes_of(&v)).expect("parses");
        assert_eq!(env.signed.extra["x-unknown"], odd);
        assert_eq!(
            env.signed.keys["k1"].extra["x-custom"],
            json!([odd.clone()])
        );

        let targets = json!({
            "signed": {"_type": "targets", "spec_version": "1.0", "version": 1,
                       "expires": "2030-01-01T00:00:00Z",
                       "targets": {"a:1": {"length": 5, "hashes": {"sha256": "bb"},
                                           "custom": odd.clone()},
                                   "b:1": {"length": 5, "hashes": {"sha256": "bb"},
                                           "custom": null}}},
            "signatures": []
        });
        let env = Envelope::<Targets>::from_slice(&bytes_of(&targets)).expect("parses");
        assert_eq!(env.signed.targets["a:1"].custom, Some(odd));
        assert_eq!(env.signed.targets["b:1"].custom, Some(Value::Null));
        let written = serde_json::to_value(&env.signed).expect("writes");
        assert_eq!(
            written["targets"], targets["signed"]["targets"],
            "written back as read"
        );
    }

    #[test]
    fn rejects_wrong_type() {
        let err =
            Envelope::<Timestamp>::from_slice(&bytes_of(&root_value())).expect_err("wrong type");
        assert_eq!(
            err,
            SchemaError::WrongType {
                expected: "timestamp",
                found: "root".into()
            }
        );
    }

    #[test]
    fn rejects_bad_shapes() {
        let cases: Vec<(&str, Value)> = vec![
            ("/signed/version", json!(0)),
            ("/signed/version", json!(-1)),
            ("/signed/version", json!(1.5)),
            ("/signed/version", json!("1")),
            ("/signed/expires", json!("2030-01-01 00:00:00")),
            ("/signed/expires", json!("2030-01-01T00:00:00+01:00")),
            ("/signed/spec_version", json!("2.0.0")),
            ("/signed/spec_version", json!("1")),
            ("/signed/spec_version", json!("1.0.x")),
            ("/signed/roles/root/threshold", json!(0)),
            ("/signed/roles/root/keyids", json!(["k1", "k1"])),
            ("/signed/roles/extra", json!({"keyids": [], "threshold": 1})),
            ("/signed/keys", json!([])),
            ("/signatures", json!({})),
        ];
        for (pointer, bad) in cases {
            let mut v = root_value();
            let (parent, field) = pointer.rsplit_once('/').expect("pointer");
            v.pointer_mut(parent).expect("parent")[field] = bad.clone();
            assert!(
                Envelope::<Root>::from_slice(&bytes_of(&v)).is_err(),
                "{pointer} = {bad} should be rejected"
            );
        }
        let mut v = root_value();
        v["signed"]["roles"]
            .as_object_mut()
            .expect("roles")
            .remove("snapshot");
        assert!(Envelope::<Root>::from_slice(&bytes_of(&v)).is_err());
    }

    #[test]
    fn rejects_two_signatures_with_one_keyid() {
        let mut v = root_value();
        v["signatures"] = json!([{"keyid": "k1", "sig": "ab"}, {"keyid": "k1", "sig": "ab"}]);
        let err = Envelope::<Root>::from_slice(&bytes_of(&v)).expect_err("duplicate");
        assert!(err.to_string().contains("more than one signature"), "{err}");
    }

    #[test]
    fn a_duplicate_key_anywhere_makes_a_signed_document_malformed() {
        let text = serde_json::to_string(&root_value()).expect("json");
        assert!(Envelope::<Root>::from_slice(text.as_bytes()).is_ok());
        // The same key twice at each depth: the envelope, `signed`, a role, a key's value,
        // and inside a signature entry.
        for (once, twice) in [
            (r#""signatures":"#, r#""signatures":[],"signatures":"#),
            (r#""version":1"#, r#""version":1,"version":2"#),
            (r#""threshold":1"#, r#""threshold":1,"threshold":1"#),
            (r#""public":"00""#, r#""public":"00","public":"01""#),
            (r#""sig":"abcd""#, r#""sig":"abcd","sig":"abcd""#),
        ] {
            assert!(text.contains(once), "{once}");
            let doubled = text.replacen(once, twice, 1);
            let err = Envelope::<Root>::from_slice(doubled.as_bytes()).expect_err(twice);
            assert!(
                matches!(&err, SchemaError::Json(m) if m.contains("appears twice")),
                "{twice}: {err}"
            );
        }
        let signature = r#"{"signed": {"_type": "signature", "spec_version": "1.0", "version": 1,
            "expires": "2030-01-01T00:00:00Z", "repository": "app", "tags": ["1"],
            "subject": {"mediaType": "m", "size": 1, "digest": "sha256:aa", "digest": "sha256:bb"}},
            "signatures": []}"#;
        let err = Envelope::<SignatureDoc>::from_slice(signature.as_bytes()).expect_err("dup");
        assert!(err.to_string().contains("`digest` appears twice"), "{err}");
        let once = signature.replace(r#", "digest": "sha256:bb""#, "");
        assert!(Envelope::<SignatureDoc>::from_slice(once.as_bytes()).is_ok());
    }

    #[test]
    fn rejects_non_objects_and_garbage() {
        for bytes in [
            &b"[]"[..],
            b"{}",
            b"null",
            b"{\"signed\":1,\"signatures\":[]}",
            b"\xff",
        ] {
            assert!(Envelope::<Root>::from_slice(bytes).is_err());
        }
    }

    #[test]
    fn targets_delegation_rules() {
        let base = json!({
            "signed": {"_type": "targets", "spec_version": "1.0", "version": 3,
                       "expires": "2030-01-01T00:00:00Z",
                       "targets": {"a:1": {"length": 5, "hashes": {"sha512": "aa", "sha256": "bb"}}},
                       "delegations": {"keys": {}, "roles": [
                           {"name": "team", "keyids": [], "threshold": 1, "terminating": true,
                            "paths": ["team/*"]}]}},
            "signatures": []
        });
        let env = Envelope::<Targets>::from_slice(&bytes_of(&base.clone())).expect("parses");
        let hashes: Vec<&String> = env.signed.targets["a:1"].hashes.keys().collect();
        assert_eq!(hashes, ["sha512", "sha256"], "hash order as written");

        for bad_role in [
            json!({"name": "snapshot", "keyids": [], "threshold": 1, "paths": []}),
            json!({"name": "team", "keyids": [], "threshold": 1, "paths": []}),
            json!({"name": "x", "keyids": [], "threshold": 1, "paths": [], "path_hash_prefixes": []}),
            json!({"name": "y", "keyids": [], "threshold": 1}),
            json!({"name": "", "keyids": [], "threshold": 1, "paths": []}),
        ] {
            let mut v = base.clone();
            v["signed"]["delegations"]["roles"]
                .as_array_mut()
                .expect("roles")
                .push(bad_role.clone());
            assert!(
                Envelope::<Targets>::from_slice(&bytes_of(&v)).is_err(),
                "{bad_role} should be rejected"
            );
        }
        let mut v = base;
        v["signed"]["targets"]["a:1"]["hashes"] = json!({});
        assert!(Envelope::<Targets>::from_slice(&bytes_of(&v)).is_err());
    }

    #[test]
    fn a_large_document_reads_the_same_side_by_side() {
        let targets: serde_json::Map<String, Value> = (0..4000)
            .map(|i| {
                (
                    format!("app-{i}:1"),
                    json!({"length": i, "hashes": {"sha256": format!("{i:064x}")}}),
                )
            })
            .collect();
        let signed = json!({"_type": "targets", "spec_version": "1.0.31", "version": 2,
                            "expires": "2030-01-01T00:00:00Z", "targets": targets});
        let doc = json!({"signed": signed, "signatures": []});
        let bytes = bytes_of(&doc);
        assert!(bytes.len() > SIDE_BY_SIDE_FROM, "{} bytes", bytes.len());
        let env = Envelope::<Targets>::from_slice(&bytes).expect("parses");
        assert_eq!(
            env.canonical,
            cjson::to_canonical(&signed).expect("canonical")
        );
        assert_eq!(env.signed.targets.len(), 4000);
        // The same refusals as a small document: the wrong type, a duplicate key deep inside.
        let err = Envelope::<Snapshot>::from_slice(&bytes).expect_err("wrong type");
        assert!(matches!(err, SchemaError::WrongType { .. }), "{err}");
        let text = String::from_utf8(bytes).expect("utf8");
        let dup = text.replacen("\"length\":3999", "\"length\":3999,\"length\":3999", 1);
        assert_ne!(dup, text);
        let err = Envelope::<Targets>::from_slice(dup.as_bytes()).expect_err("duplicate");
        assert!(matches!(err, SchemaError::Json(_)), "{err}");
    }

    #[test]
    fn expires_format_is_strict() {
        assert!(Expires::parse("2030-01-01T00:00:00Z").is_ok());
        for bad in [
            "2030-01-01T00:00:00.5Z",
            "2030-01-01T00:00:00",
            "2030-13-01T00:00:00Z",
            // Found by the `schema` fuzz target (tests/fuzz/artifacts-found/schema): a sign or
            // a space where the year's digits go.
            "-999-01-01T00:00:00Z",
            "+999-01-01T00:00:00Z",
            " 999-01-01T00:00:00Z",
            "2030-01-01 00:00:00Z",
            "2030-1-01T00:00:00ZZ",
        ] {
            assert!(Expires::parse(bad).is_err(), "{bad}");
        }
    }
}
