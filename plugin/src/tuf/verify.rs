//! Threshold signature checks (TUF §5: "signed by a threshold of keys").
//!
//! Pure functions over parsed documents: which keys a role trusts, how many must sign, and
//! the canonical bytes they sign.

use std::collections::{BTreeMap, HashSet};
use std::num::NonZeroU64;

use super::keys::{KeyError, PublicKey};
use super::schema::{Key, Signature};

/// Why a threshold was not met, with enough detail for an operator to act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{role}: {valid} of {threshold} required signatures are valid{detail}", detail = unusable_detail(.unusable_keys))]
pub struct ThresholdError {
    pub role: String,
    pub threshold: u64,
    pub valid: u64,
    /// Keys of the role that could not be used at all (unsupported type, malformed, absent).
    pub unusable_keys: Vec<(String, String)>,
}

fn unusable_detail(keys: &[(String, String)]) -> String {
    if keys.is_empty() {
        return String::new();
    }
    let list: Vec<String> = keys
        .iter()
        .map(|(id, why)| format!("{id}: {why}"))
        .collect();
    format!(" (unusable keys: {})", list.join("; "))
}

/// Who may sign a role.
#[derive(Debug, Clone, Copy)]
pub struct RoleSpec<'a> {
    pub name: &'a str,
    pub keyids: &'a [String],
    pub threshold: NonZeroU64,
    /// The key table the key IDs refer to (root's `keys` or a delegator's `delegations.keys`).
    pub keys: &'a BTreeMap<String, Key>,
}

/// Checks that at least `threshold` distinct keys of `role` signed `canonical`.
///
/// Each key counts at most once: a key ID listed twice, two signatures by one key ID, or two
/// key IDs for the same key material all count as one. Signatures by unknown keys and
/// malformed signatures are ignored; counting stops as soon as the threshold is met, so
/// garbage after enough good signatures is harmless.
pub fn check_threshold(
    role: &RoleSpec<'_>,
    canonical: &[u8],
    signatures: &[Signature],
) -> Result<(), ThresholdError> {
    let threshold = role.threshold.get();
    let mut counted_ids: HashSet<&str> = HashSet::new();
    let mut counted_material: HashSet<Vec<u8>> = HashSet::new();
    let mut unusable = Vec::new();
    let mut valid = 0u64;

    for keyid in role.keyids {
        if !counted_ids.insert(keyid.as_str()) {
            continue;
        }
        let public = match role.keys.get(keyid) {
            None => {
                unusable.push((keyid.clone(), "not in the key table".to_string()));
                continue;
            }
            Some(key) => match PublicKey::from_metadata(key) {
                Ok(public) => public,
                Err(e @ (KeyError::Unsupported { .. } | KeyError::Malformed { .. })) => {
                    unusable.push((keyid.clone(), e.to_string()));
                    continue;
                }
            },
        };
        if counted_material.contains(public.material()) {
            continue;
        }
        let signed = signatures
            .iter()
            .filter(|s| &s.keyid == keyid)
            .any(|s| public.verify(canonical, &s.sig));
        if signed {
            counted_material.insert(public.material().to_vec());
            valid += 1;
            if valid >= threshold {
                return Ok(());
            }
        }
    }
    Err(ThresholdError {
        role: role.name.to_string(),
        threshold,
        valid,
        unusable_keys: unusable,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tuf::keys::tests::TestKey;

    fn nz(n: u64) -> NonZeroU64 {
        NonZeroU64::new(n).expect("nonzero")
    }

    fn sig(keyid: &str, sig: String) -> Signature {
        Signature {
            keyid: keyid.into(),
            sig,
            extra: Default::default(),
        }
    }

    struct Fixture {
        keys: BTreeMap<String, Key>,
        signers: Vec<TestKey>,
    }

    fn fixture() -> Fixture {
        let signers = vec![TestKey::ed25519(1), TestKey::ed25519(2), TestKey::ecdsa()];
        let keys = signers
            .iter()
            .enumerate()
            .map(|(i, k)| (format!("k{i}"), k.metadata()))
            .collect();
        Fixture { keys, signers }
    }

    #[test]
    fn threshold_met_and_not_met() {
        let f = fixture();
        let ids: Vec<String> = vec!["k0".into(), "k1".into(), "k2".into()];
        let msg = b"canonical";
        let sigs = vec![
            sig("k0", f.signers[0].sign(msg)),
            sig("k2", f.signers[2].sign(msg)),
        ];
        let spec = |t| RoleSpec {
            name: "snapshot",
            keyids: &ids,
            threshold: nz(t),
            keys: &f.keys,
        };
        assert!(check_threshold(&spec(2), msg, &sigs).is_ok());
        let err = check_threshold(&spec(3), msg, &sigs).expect_err("2 of 3");
        assert_eq!((err.valid, err.threshold), (2, 3));
        assert!(check_threshold(&spec(1), b"other", &sigs).is_err());
    }

    #[test]
    fn a_key_never_counts_twice() {
        let f = fixture();
        let msg = b"canonical";
        let good = f.signers[0].sign(msg);
        // The same signature twice, and the key listed twice.
        let ids: Vec<String> = vec!["k0".into(), "k0".into()];
        let sigs = vec![sig("k0", good.clone()), sig("k0", good.clone())];
        let spec = RoleSpec {
            name: "root",
            keyids: &ids,
            threshold: nz(2),
            keys: &f.keys,
        };
        assert_eq!(
            check_threshold(&spec, msg, &sigs)
                .expect_err("one key")
                .valid,
            1
        );

        // The same key material under two key IDs.
        let mut keys = f.keys.clone();
        keys.insert("alias".into(), f.signers[0].metadata());
        let ids: Vec<String> = vec!["k0".into(), "alias".into()];
        let sigs = vec![sig("k0", good.clone()), sig("alias", good)];
        let spec = RoleSpec {
            name: "root",
            keyids: &ids,
            threshold: nz(2),
            keys: &keys,
        };
        assert_eq!(
            check_threshold(&spec, msg, &sigs)
                .expect_err("one key")
                .valid,
            1
        );
    }

    #[test]
    fn garbage_signatures_are_ignored() {
        let f = fixture();
        let msg = b"canonical";
        let ids: Vec<String> = vec!["k0".into(), "k1".into()];
        let sigs = vec![
            sig("unknown", "00".into()),
            sig("k1", "not hex".into()),
            sig("k0", "abcd".into()),
            sig("k0", f.signers[0].sign(msg)),
            sig("k1", "ff".repeat(64)),
        ];
        let spec = RoleSpec {
            name: "timestamp",
            keyids: &ids,
            threshold: nz(1),
            keys: &f.keys,
        };
        assert!(check_threshold(&spec, msg, &sigs).is_ok());
    }

    #[test]
    fn unusable_keys_are_named() {
        let f = fixture();
        let mut keys = f.keys.clone();
        let mut odd = f.signers[0].metadata();
        odd.keytype = "x-unknown".into();
        keys.insert("odd".into(), odd);
        let ids: Vec<String> = vec!["odd".into(), "missing".into()];
        let spec = RoleSpec {
            name: "targets",
            keyids: &ids,
            threshold: nz(1),
            keys: &keys,
        };
        let err = check_threshold(&spec, b"m", &[]).expect_err("no usable keys");
        assert_eq!(err.unusable_keys.len(), 2);
        assert!(err.to_string().contains("unsupported key type"), "{err}");
    }
}
