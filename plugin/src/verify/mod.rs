//! The pure rules of an image check (DESIGN §2): given what fresh, trusted metadata says
//! about a target and the detached signature documents read for its digest, admit or deny.
//! No I/O: everything arrives as arguments, so the rules are unit-tested on documents alone.
//!
//! The targets rule: trusted metadata must map the target path to the registry's digest.
//! The signature rule: a signature document that names the repository, the tag (or, for a
//! digest pin, no tag) and the digest, signed by a threshold of the keys of the role
//! responsible for the path, unexpired, and not older than the newest version seen.

use chrono::{DateTime, Utc};

use crate::registry::Digest;
use crate::tuf::names::RoleName;
use crate::tuf::schema::{Envelope, SignatureDoc};
use crate::tuf::verify::{check_threshold, RoleSpec};
use crate::verdict::{ReasonCode, Verdict};

/// A pullguard signature attached to an image, or why an attached artifact that claims to
/// be one could not be read.
pub type SignatureRead = Result<Vec<u8>, Unreadable>;

/// Why a signature could not be read: the reason code it would deny with, and what
/// happened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Unreadable {
    pub reason: ReasonCode,
    pub message: String,
}

impl Unreadable {
    pub fn new(reason: ReasonCode, message: impl Into<String>) -> Self {
        Unreadable {
            reason,
            message: message.into(),
        }
    }
}

/// What is being checked.
pub struct Claim<'a> {
    /// The repository, relative to the scope.
    pub repo: &'a str,
    pub tag: Option<&'a str>,
    /// The TUF target path (`repo:tag`, or `repo@sha256:…` for a digest pin).
    pub path: &'a str,
    /// The manifest digest the registry serves.
    pub digest: &'a Digest,
    /// The reference as asked for, for messages.
    pub image: &'a str,
}

/// What trusted metadata says about the target.
pub struct Evidence<'a> {
    /// The role responsible for the path, and who may sign for it.
    pub role: &'a RoleName,
    pub spec: &'a RoleSpec<'a>,
    /// The trusted length and sha256 (hex) of the target, when the policy requires the
    /// targets mapping (`None`: a signature alone decides, `require = "signature"`).
    pub listed: Option<(u64, &'a str)>,
    /// The highest signature version accepted for the path so far.
    pub high_water: u64,
}

/// The signature that admits: its version, its expiry, the manifest size it signs and the
/// trusted keys that signed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub version: u64,
    pub expires: DateTime<Utc>,
    pub size: u64,
    pub key_ids: Vec<String>,
}

/// Applies both rules to the signatures read: the newest valid one admits; otherwise the
/// denial says most about an attack.
pub fn judge(
    claim: &Claim<'_>,
    evidence: &Evidence<'_>,
    docs: Vec<SignatureRead>,
    now: DateTime<Utc>,
) -> Result<Accepted, Verdict> {
    let Claim {
        repo,
        tag,
        path,
        digest,
        image,
    } = *claim;
    let spec = evidence.spec;
    let high_water = evidence.high_water;
    let targets_match = evidence
        .listed
        .is_none_or(|(_, sha256)| digest.sha256_hex() == Some(sha256));
    let mut best: Option<Accepted> = None;
    let mut failures: Vec<Unreadable> = Vec::new();
    for doc in docs {
        let bytes = match doc {
            Ok(b) => b,
            Err(f) => {
                failures.push(f);
                continue;
            }
        };
        let env = match Envelope::<SignatureDoc>::from_slice(&bytes) {
            Ok(env) => env,
            Err(e) => {
                failures.push(Unreadable::new(
                    ReasonCode::Malformed,
                    format!("a signature of {image} is malformed: {e}"),
                ));
                continue;
            }
        };
        let sig = &env.signed;
        // A tag's signature names the tag; a digest pin's names no tag (the two keep separate
        // version counters, so one must not stand in for the other).
        let names_it = sig.repository == repo
            && match tag {
                Some(t) => sig.tags.iter().any(|x| x == t),
                None => sig.tags.is_empty(),
            };
        if !names_it || sig.subject.digest != digest.to_string() {
            continue;
        }
        let version = sig.version.get();
        let trusted_length = evidence.listed.map(|(length, _)| length);
        let failure = if targets_match && trusted_length.is_some_and(|l| sig.subject.size != l) {
            Some(Unreadable::new(
                ReasonCode::LengthMismatch,
                format!(
                    "the signature of {path} gives size {}, trusted metadata lists {}",
                    sig.subject.size,
                    trusted_length.unwrap_or_default()
                ),
            ))
        } else if !env
            .signatures
            .iter()
            .any(|s| spec.keyids.contains(&s.keyid))
        {
            Some(Unreadable::new(
                ReasonCode::NotSigned,
                format!(
                    "the signature of {path} is by keys not delegated for it (role {} trusts {})",
                    evidence.role,
                    spec.keyids.join(", ")
                ),
            ))
        } else if let Err(e) = check_threshold(spec, &env.canonical, &env.signatures) {
            Some(Unreadable::new(
                ReasonCode::ThresholdNotMet,
                format!("signature of {path}: {e}"),
            ))
        } else if sig.expires.is_expired(now) {
            Some(Unreadable::new(
                ReasonCode::Expired,
                format!("the signature of {path} expired at {}", sig.expires.0),
            ))
        } else if version < high_water {
            Some(Unreadable::new(
                ReasonCode::Rollback,
                format!("signature rollback for {path}: version {version} is older than version {high_water} already seen"),
            ))
        } else {
            None
        };
        match failure {
            Some(f) => failures.push(f),
            None if best.as_ref().is_none_or(|b| version > b.version) => {
                let mut key_ids: Vec<String> = env
                    .signatures
                    .iter()
                    .filter(|s| spec.keyids.contains(&s.keyid))
                    .map(|s| s.keyid.clone())
                    .collect();
                key_ids.sort();
                key_ids.dedup();
                best = Some(Accepted {
                    version,
                    expires: sig.expires.0,
                    size: sig.subject.size,
                    key_ids,
                })
            }
            None => {}
        }
    }

    // Failures of signatures that name this path say most about an attack; then the
    // targets mapping; then the absence of any signature.
    let worst = failures.into_iter().min_by_key(|f| failure_rank(f.reason));
    match (targets_match, best, worst) {
        (true, Some(accepted), _) => Ok(accepted),
        (_, None, Some(f)) => Err(Verdict::deny(f.reason, f.message)),
        (false, _, _) => Err(Verdict::deny(
            ReasonCode::DigestMismatch,
            format!(
                "{path} is {digest} in the registry, but trusted metadata (role {}) lists sha256:{}",
                evidence.role,
                evidence.listed.map_or("", |(_, sha256)| sha256)
            ),
        )),
        (true, None, None) => Err(Verdict::deny(
            ReasonCode::NotSigned,
            format!("no pullguard signature of {image} names {path}"),
        )),
    }
}

/// Which failure to report when several signatures fail.
fn failure_rank(r: ReasonCode) -> u8 {
    match r {
        ReasonCode::Rollback => 0,
        ReasonCode::Expired => 1,
        ReasonCode::NotSigned => 2,
        ReasonCode::ThresholdNotMet => 3,
        ReasonCode::DigestMismatch => 4,
        ReasonCode::LengthMismatch => 5,
        // A registry that did not answer in time, or at all, or refused or rate-limited the
        // read, may have held back the signature that would admit: that says more than a
        // junk entry beside it.
        ReasonCode::Unavailable | ReasonCode::Unauthorized | ReasonCode::RateLimited => 6,
        ReasonCode::Malformed => 7,
        _ => 8,
    }
}

#[cfg(test)]
mod tests {
    //! The rules on documents alone: no registry, no metadata repository, no files.
    use super::*;
    use crate::tuf::schema::Key;
    use crate::tuf::signing::{sign_document, SigningKey};
    use std::collections::BTreeMap;
    use std::num::NonZeroU64;

    const SIZE: u64 = 1234;

    struct Case {
        team: SigningKey,
        other: SigningKey,
        keys: BTreeMap<String, Key>,
        keyids: Vec<String>,
        digest: Digest,
        role: RoleName,
    }

    impl Case {
        fn new() -> Self {
            let team = SigningKey::ed25519_from_seed([7; 32]);
            let other = SigningKey::ed25519_from_seed([9; 32]);
            let keys = BTreeMap::from([(team.key_id(), team.public())]);
            Case {
                keyids: vec![team.key_id()],
                keys,
                team,
                other,
                digest: Digest::sha256_of(b"the manifest"),
                role: RoleName::new("team").expect("role"),
            }
        }

        fn doc(
            &self,
            tags: &[&str],
            version: u64,
            expires: &str,
            by: &SigningKey,
        ) -> SignatureRead {
            let signed = serde_json::json!({
                "_type": "signature", "spec_version": "1.0", "version": version,
                "expires": expires, "repository": "app", "tags": tags,
                "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                            "size": SIZE, "digest": self.digest.to_string()}
            });
            Ok(sign_document(&signed, &[by]).expect("signed"))
        }

        fn judge(
            &self,
            tag: Option<&str>,
            listed: &str,
            high_water: u64,
            docs: Vec<SignatureRead>,
        ) -> Result<Accepted, Verdict> {
            let spec = RoleSpec {
                name: "team",
                keyids: &self.keyids,
                threshold: NonZeroU64::MIN,
                keys: &self.keys,
            };
            let path = match tag {
                Some(t) => format!("app:{t}"),
                None => format!("app@{}", self.digest),
            };
            let claim = Claim {
                repo: "app",
                tag,
                path: &path,
                digest: &self.digest,
                image: "127.0.0.1:5000/acme/app:1",
            };
            let evidence = Evidence {
                role: &self.role,
                spec: &spec,
                listed: Some((SIZE, listed)),
                high_water,
            };
            judge(
                &claim,
                &evidence,
                docs,
                "2026-06-01T00:00:00Z".parse().expect("now"),
            )
        }
    }

    const LATER: &str = "2027-01-01T00:00:00Z";

    fn reason(r: Result<Accepted, Verdict>) -> ReasonCode {
        r.expect_err("denied").reason
    }

    #[test]
    fn the_newest_valid_signature_admits() {
        let c = Case::new();
        let hex = c.digest.sha256_hex().expect("sha256").to_string();
        let docs = vec![
            c.doc(&["1"], 2, LATER, &c.team),
            c.doc(&["1"], 3, LATER, &c.team),
        ];
        let accepted = c.judge(Some("1"), &hex, 2, docs).expect("admitted");
        assert_eq!(accepted.version, 3);
        assert_eq!(
            accepted.expires,
            LATER.parse::<DateTime<Utc>>().expect("time")
        );
    }

    #[test]
    fn each_rule_has_its_denial() {
        let c = Case::new();
        let hex = c.digest.sha256_hex().expect("sha256").to_string();
        let good = || c.doc(&["1"], 2, LATER, &c.team);
        // targets: the registry's digest is not the trusted one
        assert_eq!(
            reason(c.judge(Some("1"), "00", 0, vec![good()])),
            ReasonCode::DigestMismatch
        );
        // signature: older than seen, expired, by keys not delegated, none at all
        assert_eq!(
            reason(c.judge(Some("1"), &hex, 5, vec![good()])),
            ReasonCode::Rollback
        );
        let expired = c.doc(&["1"], 2, "2026-01-01T00:00:00Z", &c.team);
        assert_eq!(
            reason(c.judge(Some("1"), &hex, 0, vec![expired])),
            ReasonCode::Expired
        );
        let stranger = c.doc(&["1"], 2, LATER, &c.other);
        assert_eq!(
            reason(c.judge(Some("1"), &hex, 0, vec![stranger])),
            ReasonCode::NotSigned
        );
        assert_eq!(
            reason(c.judge(Some("1"), &hex, 0, Vec::new())),
            ReasonCode::NotSigned
        );
        // a tag's signature does not stand in for a digest pin, nor for another tag
        assert_eq!(
            reason(c.judge(None, &hex, 0, vec![good()])),
            ReasonCode::NotSigned
        );
        assert_eq!(
            reason(c.judge(Some("2"), &hex, 0, vec![good()])),
            ReasonCode::NotSigned
        );
        let pin = c.doc(&[], 1, LATER, &c.team);
        assert!(c.judge(None, &hex, 0, vec![pin]).is_ok());
        // a tampered signature, and junk
        let mut env: serde_json::Value =
            serde_json::from_slice(&good().expect("bytes")).expect("json");
        let sig = env["signatures"][0]["sig"]
            .as_str()
            .expect("sig")
            .to_string();
        let flipped = if sig.starts_with('0') { "1" } else { "0" };
        env["signatures"][0]["sig"] = format!("{flipped}{}", &sig[1..]).into();
        let tampered = serde_json::to_vec(&env).expect("json");
        assert_eq!(
            reason(c.judge(Some("1"), &hex, 0, vec![Ok(tampered)])),
            ReasonCode::ThresholdNotMet
        );
        assert_eq!(
            reason(c.judge(Some("1"), &hex, 0, vec![Ok(b"{".to_vec())])),
            ReasonCode::Malformed
        );
        // a signature of another size than the trusted target
        let mut resized: serde_json::Value =
            serde_json::from_slice(&good().expect("bytes")).expect("json");
        resized["signed"]["subject"]["size"] = (SIZE + 1).into();
        let resized = sign_document(&resized["signed"], &[&c.team]).expect("signed");
        assert_eq!(
            reason(c.judge(Some("1"), &hex, 0, vec![Ok(resized)])),
            ReasonCode::LengthMismatch
        );
        // one good signature admits whatever junk is beside it
        let junk = Err(Unreadable::new(ReasonCode::Unavailable, "not found"));
        assert!(c
            .judge(Some("1"), &hex, 0, vec![junk, Ok(b"[]".to_vec()), good()])
            .is_ok());
    }

    #[test]
    fn the_denial_that_says_most_is_reported() {
        let c = Case::new();
        let hex = c.digest.sha256_hex().expect("sha256").to_string();
        let junk = || Ok(b"{".to_vec());
        let failed = |r| Err(Unreadable::new(r, "could not read"));
        // An attack on a signature that names the path comes first...
        let old = c.doc(&["1"], 1, LATER, &c.team);
        assert_eq!(
            reason(c.judge(
                Some("1"),
                &hex,
                5,
                vec![failed(ReasonCode::Unavailable), junk(), old]
            )),
            ReasonCode::Rollback
        );
        // ...and a read that failed or was refused beats a junk entry beside it: the
        // signature that would admit may be the one not read.
        for r in [
            ReasonCode::Unavailable,
            ReasonCode::Unauthorized,
            ReasonCode::RateLimited,
        ] {
            assert_eq!(
                reason(c.judge(Some("1"), &hex, 0, vec![junk(), failed(r)])),
                r
            );
        }
    }
}
