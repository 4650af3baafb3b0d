//! The set of trusted metadata and the rules for changing it (TUF §5.2–§5.6): every new
//! document must be signed by a threshold of the keys its delegator trusts, must not roll
//! back, must match what the metadata above it pins, and must not be expired when it is used.
//!
//! Pure state machine: no I/O, no clock reads. The update start time is fixed when the set is
//! created (TUF 5.1) and every expiry check uses it.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256, Sha512};

use super::error::{Error, Result};
use super::keys::PublicKey;
use super::names::RoleName;
use super::schema::{Document, Envelope, Key, MetaFile, Root, Snapshot, Targets, Timestamp};
use super::verify::{check_threshold, RoleSpec};
use crate::tuf::fetch::metadata_file_name;

/// A document whose signatures met its role's threshold, with the exact bytes received.
#[derive(Debug, Clone)]
pub struct Verified<T> {
    pub signed: T,
    pub bytes: Vec<u8>,
}

/// Outcome of offering a new timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampUpdate {
    /// The new timestamp is now trusted (and must be persisted).
    Updated,
    /// Same version as the trusted one: the trusted one stays (TUF 5.4.3.1).
    Unchanged,
}

#[derive(Debug, Clone)]
pub struct TrustedSet {
    now: DateTime<Utc>,
    root: Verified<Root>,
    timestamp: Option<Verified<Timestamp>>,
    snapshot: Option<Verified<Snapshot>>,
    targets: BTreeMap<RoleName, LoadedTargets>,
}

/// A targets role and every delegator whose keys have vouched for these exact bytes: a role
/// reached through a second delegator (a diamond) must satisfy that delegator too.
#[derive(Debug, Clone)]
struct LoadedTargets {
    verified: Verified<Targets>,
    delegators: BTreeSet<RoleName>,
}

fn parse<T: Document>(file: &str, bytes: &[u8]) -> Result<Envelope<T>> {
    Envelope::<T>::from_slice(bytes).map_err(|e| Error::malformed(file, e))
}

/// Every key that a root or a delegation lists must be usable here, signing or not: a key of
/// an unknown type or with a scheme that does not fit its type makes the document malformed
/// (python-tuf refuses it at parse time; accepting it would trust a root whose roles may be
/// unverifiable).
fn check_keys(file: &str, keys: &BTreeMap<String, Key>) -> Result<()> {
    for (keyid, key) in keys {
        PublicKey::from_metadata(key).map_err(|source| Error::UnusableKey {
            file: file.to_string(),
            keyid: keyid.clone(),
            source,
        })?;
    }
    Ok(())
}

fn root_spec<'a>(root: &'a Root, role: &'a str) -> RoleSpec<'a> {
    let keys = root.role(role);
    RoleSpec {
        name: role,
        keyids: &keys.keyids,
        threshold: keys.threshold,
        keys: &root.keys,
    }
}

impl TrustedSet {
    /// TUF 5.2: load the trusted root. It must be signed by a threshold of its own root keys;
    /// it may be expired (a newer root may follow).
    pub fn from_root(bytes: &[u8], now: DateTime<Utc>) -> Result<Self> {
        let env: Envelope<Root> = parse("root.json", bytes)?;
        check_keys("root.json", &env.signed.keys)?;
        check_threshold(
            &root_spec(&env.signed, "root"),
            &env.canonical,
            &env.signatures,
        )?;
        Ok(TrustedSet {
            now,
            root: Verified {
                signed: env.signed,
                bytes: bytes.to_vec(),
            },
            timestamp: None,
            snapshot: None,
            targets: BTreeMap::new(),
        })
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }
    pub fn root(&self) -> &Verified<Root> {
        &self.root
    }
    pub fn timestamp(&self) -> Option<&Verified<Timestamp>> {
        self.timestamp.as_ref()
    }
    pub fn snapshot(&self) -> Option<&Verified<Snapshot>> {
        self.snapshot.as_ref()
    }
    pub fn targets(&self, role: &RoleName) -> Option<&Verified<Targets>> {
        self.targets.get(role).map(|l| &l.verified)
    }

    /// Who may sign for `role`'s paths: root's `targets` entry, or the delegation of `role`
    /// by `delegator`, the role it was reached through on the search path (another
    /// delegator of the same name may set a weaker threshold). Detached image signatures are
    /// checked against this (DESIGN §2: the keys of the role that covers the repository).
    pub fn signing_spec(&self, role: &RoleName, delegator: &RoleName) -> Option<RoleSpec<'_>> {
        if role == &RoleName::targets() && delegator == &RoleName::root() {
            return Some(root_spec(&self.root.signed, "targets"));
        }
        if !self.verified_by(role, delegator) {
            return None;
        }
        let (name, _) = self.targets.get_key_value(role)?;
        let by = self.targets.get(delegator)?;
        delegated_spec(&by.verified.signed, name)
    }

    /// Whether `role` was verified against `delegator`'s delegation.
    pub fn verified_by(&self, role: &RoleName, delegator: &RoleName) -> bool {
        self.targets
            .get(role)
            .is_some_and(|l| l.delegators.contains(delegator))
    }

    /// TUF 5.3.4–5.3.8: a new root, `version` = trusted + 1, signed by a threshold of the
    /// trusted root's root keys *and* of its own root keys.
    pub fn update_root(&mut self, bytes: &[u8]) -> Result<()> {
        if self.timestamp.is_some() {
            return Err(Error::Usage(
                "root cannot be updated after timestamp was loaded".into(),
            ));
        }
        let trusted_version = self.root.signed.version.get();
        let expected = trusted_version.checked_add(1).ok_or_else(|| {
            Error::Usage(format!("root version {trusted_version} cannot be followed"))
        })?;
        let file = metadata_file_name(&RoleName::root(), Some(expected));
        let env: Envelope<Root> = parse(&file, bytes)?;
        check_keys(&file, &env.signed.keys)?;
        // 5.3.4: signed by a threshold of keys from the trusted root.
        check_threshold(
            &root_spec(&self.root.signed, "root"),
            &env.canonical,
            &env.signatures,
        )?;
        // 5.3.4: and by a threshold of keys from the new root itself.
        check_threshold(
            &root_spec(&env.signed, "root"),
            &env.canonical,
            &env.signatures,
        )?;
        // 5.3.5: version N+1 exactly (no rollback, and the file name's version is the one inside).
        let found = env.signed.version.get();
        if found < trusted_version {
            return Err(Error::Rollback {
                role: "root".into(),
                trusted: trusted_version,
                new: found,
            });
        }
        if found != expected {
            return Err(Error::VersionMismatch {
                role: "root".into(),
                expected,
                found,
            });
        }
        self.root = Verified {
            signed: env.signed,
            bytes: bytes.to_vec(),
        };
        Ok(())
    }

    /// TUF 5.3.10: the final root must not be expired (freeze attack).
    pub fn check_root_fresh(&self) -> Result<()> {
        check_expiry("root", &self.root.signed, self.now)
    }

    /// TUF 5.4: a new timestamp, signed by root's timestamp keys, not older than the trusted
    /// one, not pinning an older snapshot. An expired timestamp is kept as trusted (it still
    /// protects against rollback) but reported as expired.
    pub fn update_timestamp(&mut self, bytes: &[u8]) -> Result<TimestampUpdate> {
        if !self.targets.is_empty() || self.snapshot.is_some() {
            return Err(Error::Usage(
                "timestamp cannot be updated after snapshot was loaded".into(),
            ));
        }
        self.check_root_fresh()?;
        let env: Envelope<Timestamp> = parse("timestamp.json", bytes)?;
        check_threshold(
            &root_spec(&self.root.signed, "timestamp"),
            &env.canonical,
            &env.signatures,
        )?;
        if let Some(trusted) = &self.timestamp {
            let (old, new) = (trusted.signed.version.get(), env.signed.version.get());
            // 5.4.3.1: no rollback of the timestamp itself.
            if new < old {
                return Err(Error::Rollback {
                    role: "timestamp".into(),
                    trusted: old,
                    new,
                });
            }
            if new == old {
                return Ok(TimestampUpdate::Unchanged);
            }
            // 5.4.3.2: no rollback of the snapshot it pins.
            let old_snap = trusted.signed.snapshot_meta().version.get();
            let new_snap = env.signed.snapshot_meta().version.get();
            if new_snap < old_snap {
                return Err(Error::Rollback {
                    role: "snapshot".into(),
                    trusted: old_snap,
                    new: new_snap,
                });
            }
        }
        self.timestamp = Some(Verified {
            signed: env.signed,
            bytes: bytes.to_vec(),
        });
        // 5.4.4: freeze check. The timestamp stays trusted for rollback protection.
        self.check_timestamp_fresh()?;
        Ok(TimestampUpdate::Updated)
    }

    fn check_timestamp_fresh(&self) -> Result<&Verified<Timestamp>> {
        let ts = self
            .timestamp
            .as_ref()
            .ok_or_else(|| Error::Usage("no trusted timestamp".into()))?;
        check_expiry("timestamp", &ts.signed, self.now)?;
        Ok(ts)
    }

    /// TUF 5.5: a new snapshot, matching what the timestamp pins (hashes and length only for
    /// bytes just downloaded; local bytes were checked when they were stored), signed by
    /// root's snapshot keys, never dropping a targets role or lowering its version.
    pub fn update_snapshot(&mut self, bytes: &[u8], local: bool) -> Result<()> {
        if !self.targets.is_empty() {
            return Err(Error::Usage(
                "snapshot cannot be updated after targets were loaded".into(),
            ));
        }
        let ts = self.check_timestamp_fresh()?;
        let pinned = ts.signed.snapshot_meta().clone();
        let file = "snapshot.json";
        if !local {
            // 5.5.2: hashes and length as the timestamp lists them.
            check_length_and_hashes(file, "timestamp", &pinned, bytes)?;
        }
        let env: Envelope<Snapshot> = parse(file, bytes)?;
        check_threshold(
            &root_spec(&self.root.signed, "snapshot"),
            &env.canonical,
            &env.signatures,
        )?;
        if let Some(trusted) = &self.snapshot {
            // 5.5.5: every targets role listed before is still listed, never older.
            for (name, old) in &trusted.signed.meta {
                let new = env
                    .signed
                    .meta
                    .get(name)
                    .ok_or_else(|| Error::RemovedFromSnapshot { file: name.clone() })?;
                if new.version < old.version {
                    return Err(Error::Rollback {
                        role: name.trim_end_matches(".json").to_string(),
                        trusted: old.version.get(),
                        new: new.version.get(),
                    });
                }
            }
        }
        self.snapshot = Some(Verified {
            signed: env.signed,
            bytes: bytes.to_vec(),
        });
        self.check_snapshot_final()?;
        Ok(())
    }

    /// 5.5.3 and 5.5.6: the trusted snapshot is the version the timestamp pins, and fresh.
    fn check_snapshot_final(&self) -> Result<&Verified<Snapshot>> {
        let ts = self.check_timestamp_fresh()?;
        let snap = self
            .snapshot
            .as_ref()
            .ok_or_else(|| Error::Usage("no trusted snapshot".into()))?;
        let expected = ts.signed.snapshot_meta().version.get();
        let found = snap.signed.version.get();
        if found != expected {
            return Err(Error::VersionMismatch {
                role: "snapshot".into(),
                expected,
                found,
            });
        }
        check_expiry("snapshot", &snap.signed, self.now)?;
        Ok(snap)
    }

    /// TUF 5.6 / 5.6.7: a top-level or delegated targets role, delegated by `delegator`
    /// (`root` for the top-level `targets`), matching what the snapshot pins.
    pub fn update_targets(
        &mut self,
        role: &RoleName,
        delegator: &RoleName,
        bytes: &[u8],
    ) -> Result<()> {
        let snap = self.check_snapshot_final()?;
        let meta_key = role.meta_key();
        let pinned = snap
            .signed
            .meta
            .get(&meta_key)
            .ok_or_else(|| Error::NotInSnapshot {
                role: role.to_string(),
            })?
            .clone();
        let file = format!("{}.json", role.encoded());
        check_length_and_hashes(&file, "snapshot", &pinned, bytes)?;
        let env: Envelope<Targets> = parse(&file, bytes)?;
        if let Some(delegations) = &env.signed.delegations {
            check_keys(&file, &delegations.keys)?;
        }

        let delegating_targets;
        let spec = if delegator == &RoleName::root() {
            if role != &RoleName::targets() {
                return Err(Error::NotDelegated {
                    role: role.to_string(),
                    delegator: delegator.to_string(),
                });
            }
            root_spec(&self.root.signed, "targets")
        } else {
            delegating_targets = self
                .targets
                .get(delegator)
                .map(|l| &l.verified)
                .ok_or_else(|| Error::NotDelegated {
                    role: role.to_string(),
                    delegator: delegator.to_string(),
                })?;
            delegated_spec(&delegating_targets.signed, role).ok_or_else(|| Error::NotDelegated {
                role: role.to_string(),
                delegator: delegator.to_string(),
            })?
        };
        check_threshold(&spec, &env.canonical, &env.signatures)?;
        // 5.6.4: the version the snapshot pins.
        let (expected, found) = (pinned.version.get(), env.signed.version.get());
        if found != expected {
            return Err(Error::VersionMismatch {
                role: role.to_string(),
                expected,
                found,
            });
        }
        // 5.6.5: freeze check.
        check_expiry(role.as_str(), &env.signed, self.now)?;
        match self.targets.get_mut(role) {
            Some(loaded) if loaded.verified.bytes == bytes => {
                loaded.delegators.insert(delegator.clone());
            }
            _ => {
                self.targets.insert(
                    role.clone(),
                    LoadedTargets {
                        verified: Verified {
                            signed: env.signed,
                            bytes: bytes.to_vec(),
                        },
                        delegators: BTreeSet::from([delegator.clone()]),
                    },
                );
            }
        }
        Ok(())
    }

    /// The earliest expiry of the trusted root, timestamp, snapshot and loaded targets roles:
    /// how long conclusions drawn from this set stay valid.
    pub fn valid_until(&self) -> DateTime<Utc> {
        let t = self.valid_until_but_timestamp();
        match &self.timestamp {
            Some(ts) => t.min(ts.signed.expires.0),
            None => t,
        }
    }

    /// [`TrustedSet::valid_until`] leaving out the timestamp: what a conclusion rests on
    /// beyond the timestamp, whose later versions (pointing at the same snapshot) renew it.
    pub fn valid_until_but_timestamp(&self) -> DateTime<Utc> {
        let mut t = self.root.signed.expires.0;
        if let Some(s) = &self.snapshot {
            t = t.min(s.signed.expires.0);
        }
        for loaded in self.targets.values() {
            t = t.min(loaded.verified.signed.expires.0);
        }
        t
    }
}

/// Who may sign `role` according to `delegator`'s delegations (explicit roles or hash bins).
fn delegated_spec<'a>(delegator: &'a Targets, role: &'a RoleName) -> Option<RoleSpec<'a>> {
    let delegations = delegator.delegations.as_ref()?;
    if let Some(roles) = &delegations.roles {
        let d = roles.iter().find(|d| &d.name == role)?;
        return Some(RoleSpec {
            name: d.name.as_str(),
            keyids: &d.keyids,
            threshold: d.threshold,
            keys: &delegations.keys,
        });
    }
    let succinct = delegations.succinct_roles.as_ref()?;
    succinct.is_bin(role.as_str()).then_some(RoleSpec {
        name: role.as_str(),
        keyids: &succinct.keyids,
        threshold: succinct.threshold,
        keys: &delegations.keys,
    })
}

fn check_expiry<T: Document>(role: &str, doc: &T, now: DateTime<Utc>) -> Result<()> {
    let expires = doc.expires();
    if expires.is_expired(now) {
        return Err(Error::Expired {
            role: role.to_string(),
            expires,
            now,
        });
    }
    Ok(())
}

/// Checks `bytes` against the length and hashes that `meta` (found in `by`) lists. Every
/// listed hash must match; an algorithm pullguard cannot compute (only sha256 and sha512 are
/// supported) is a failure, never skipped, as in python-tuf.
pub fn check_length_and_hashes(file: &str, by: &str, meta: &MetaFile, bytes: &[u8]) -> Result<()> {
    if let Some(expected) = meta.length {
        check_length(file, by, expected, bytes)?;
    }
    if let Some(hashes) = &meta.hashes {
        check_hashes(file, by, hashes, bytes)?;
    }
    Ok(())
}

pub fn check_length(file: &str, by: &str, expected: u64, bytes: &[u8]) -> Result<()> {
    let found = bytes.len() as u64;
    if found != expected {
        return Err(Error::LengthMismatch {
            file: file.to_string(),
            by: by.to_string(),
            expected,
            found,
        });
    }
    Ok(())
}

pub fn check_hashes(
    file: &str,
    by: &str,
    hashes: &indexmap::IndexMap<String, String>,
    bytes: &[u8],
) -> Result<()> {
    if hashes.is_empty() {
        return Err(Error::NoSupportedHash {
            file: file.to_string(),
            by: by.to_string(),
            listed: String::new(),
        });
    }
    for (algorithm, expected) in hashes {
        let found = match algorithm.as_str() {
            "sha256" => hex::encode(Sha256::digest(bytes)),
            "sha512" => hex::encode(Sha512::digest(bytes)),
            _ => {
                return Err(Error::NoSupportedHash {
                    file: file.to_string(),
                    by: by.to_string(),
                    listed: algorithm.clone(),
                })
            }
        };
        if !found.eq_ignore_ascii_case(expected) {
            return Err(Error::HashMismatch {
                file: file.to_string(),
                by: by.to_string(),
                algorithm: algorithm.clone(),
                expected: expected.clone(),
                found,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tuf::signing::{sign_document, SigningKey};
    use crate::tuf::testing::RepoBuilder;
    use crate::verdict::ReasonCode;

    /// The builder's root v1 with `key` added to its key table (used by no role), re-signed.
    fn root_listing(key: serde_json::Value) -> Vec<u8> {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut repo = RepoBuilder::new(tmp.path());
        repo.publish_all();
        let mut root: serde_json::Value =
            serde_json::from_slice(&repo.initial_root()).expect("json");
        root["signed"]["keys"]["ab".repeat(32)] = key;
        // RepoBuilder's root key: the ed25519 key from seed [1; 32].
        sign_document(&root["signed"], &[&SigningKey::ed25519_from_seed([1; 32])]).expect("sign")
    }

    #[test]
    fn a_root_listing_an_unusable_key_is_malformed_even_if_no_role_uses_it() {
        for (key, says) in [
            (
                serde_json::json!({"keytype": "frobnicate", "scheme": "frob", "keyval": {"public": "00"}}),
                "unsupported key type/scheme frobnicate/frob",
            ),
            (
                serde_json::json!({"keytype": "ed25519", "scheme": "rsassa-pss-sha256", "keyval": {"public": "00"}}),
                "unsupported key type/scheme ed25519/rsassa-pss-sha256",
            ),
            (
                serde_json::json!({"keytype": "ed25519", "scheme": "ed25519", "keyval": {"public": "not hex"}}),
                "not hex",
            ),
        ] {
            let err = TrustedSet::from_root(&root_listing(key), Utc::now()).expect_err("refused");
            assert!(matches!(err, Error::UnusableKey { .. }), "{err}");
            assert_eq!(err.reason(), ReasonCode::Malformed);
            assert!(err.to_string().contains(says), "{err}");
        }
        let ok =
            serde_json::to_value(SigningKey::ed25519_from_seed([9; 32]).public()).expect("key");
        TrustedSet::from_root(&root_listing(ok), Utc::now()).expect("a usable unused key is fine");
    }
}
