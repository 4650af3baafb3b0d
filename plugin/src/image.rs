//! Verifying one image against a scope's trust data (DESIGN §2, §5 step 3): refresh the
//! scope's TUF metadata, find the role responsible for the image's target path, read the
//! detached signatures through a [`SignatureSource`], and let the pure rules of
//! [`crate::verify`] decide; an admission records the signature version accepted.

use chrono::{DateTime, Utc};

use crate::config::Require;
use crate::registry::oci::IMAGE_MEDIA_TYPES;
use crate::registry::{Digest, ImageRef, Registry, Scope};
use crate::tuf::client::Updater;
use crate::tuf::fetch::{FetchError, MetadataSource};
use crate::tuf::names::RoleName;
use crate::tuf::state::TrustStore;
use crate::verdict::{Evidence, ReasonCode, Verdict};
use crate::verify::{judge, Claim, Evidence as Listed, SignatureRead};

/// Where detached signatures come from: the registry (referrers) or a bundle.
pub trait SignatureSource {
    /// The signature documents attached to `digest` in the registry repository `repo`.
    fn signatures(&self, repo: &str, digest: &Digest) -> Result<Vec<SignatureRead>, FetchError>;
}

/// `image` pinned to the digest its tag names in `registry` now, as a pull would resolve
/// it (unchanged when it names a digest already); else the denial that says why not.
pub fn pin(registry: &Registry, image: &ImageRef) -> Result<ImageRef, Verdict> {
    if image.digest().is_some() {
        return Ok(image.clone());
    }
    let tag = image.tag().unwrap_or_default();
    match registry.resolve(image.repository(), tag, &IMAGE_MEDIA_TYPES) {
        Ok(Some(digest)) => Ok(image.with_digest(digest)),
        Ok(None) => Err(Verdict::deny(
            ReasonCode::InvalidRequest,
            format!("{image} does not exist in the registry"),
        )),
        Err(e) => {
            let message = format!("resolving the tag: {e}");
            Err(Verdict::deny(FetchError::from(e).reason(), message))
        }
    }
}

/// What a verification found, for the verdict and for the caller's report.
#[derive(Debug, Clone)]
pub struct Checked {
    pub verdict: Verdict,
    /// The TUF target path checked (`repo:tag` or `repo@digest`; empty outside the scope).
    pub target_path: String,
    /// The accepted signature's version.
    pub signature_version: Option<u64>,
    /// What an admission rests on, and until when it holds beyond the timestamp's expiry
    /// (which bounds the verdict too, but is renewed by routine timestamps).
    pub evidence: Option<(Evidence, DateTime<Utc>)>,
}

/// Verifies `image` (which must carry its manifest digest) in `scope`.
pub fn verify_image<S: MetadataSource, T: TrustStore>(
    updater: &mut Updater<S, T>,
    signatures: &dyn SignatureSource,
    scope: &Scope,
    image: &ImageRef,
    require: Require,
    now: DateTime<Utc>,
) -> Checked {
    let target_path = scope.target_path(image).unwrap_or_default();
    match evaluate(updater, signatures, scope, image, require, now) {
        Ok((verdict, evidence, lasting)) => Checked {
            verdict,
            target_path,
            signature_version: Some(evidence.signature_version),
            evidence: Some((evidence, lasting)),
        },
        Err(verdict) => Checked {
            verdict,
            target_path,
            signature_version: None,
            evidence: None,
        },
    }
}

/// The admission with its evidence and how long that holds beyond the timestamp, or the
/// denial.
fn evaluate<S: MetadataSource, T: TrustStore>(
    updater: &mut Updater<S, T>,
    signatures: &dyn SignatureSource,
    scope: &Scope,
    image: &ImageRef,
    require: Require,
    now: DateTime<Utc>,
) -> Result<(Verdict, Evidence, DateTime<Utc>), Verdict> {
    let (Some(repo), Some(path)) = (scope.relative_repository(image), scope.target_path(image))
    else {
        return Err(Verdict::deny(
            ReasonCode::InvalidRequest,
            format!("{image} is not in scope {scope}"),
        ));
    };
    let digest = image.digest().ok_or_else(|| {
        Verdict::deny(
            ReasonCode::InvalidRequest,
            format!("{image}: the manifest digest is needed"),
        )
    })?;
    let tuf_denial = |e: crate::tuf::Error| Verdict::from(&e);
    updater.refresh(now).map_err(tuf_denial)?;
    // TUF: which role is responsible for the path, and what digest it lists.
    let info = updater.target_info(&path).map_err(tuf_denial)?;
    let unlisted = || {
        Verdict::deny(
            ReasonCode::UnknownTarget,
            format!("no trusted targets role lists {path}"),
        )
    };
    let internal = |message: String| Verdict::deny(ReasonCode::Internal, message);
    let version_of = |v: Option<std::num::NonZeroU64>| v.map_or(0, std::num::NonZeroU64::get);
    let evidence_of =
        |trusted: &crate::tuf::trusted::TrustedSet, role: &RoleName, length| Evidence {
            root_version: trusted.root().signed.version.get(),
            timestamp_version: version_of(trusted.timestamp().map(|t| t.signed.version)),
            snapshot_version: version_of(trusted.snapshot().map(|t| t.signed.version)),
            role: role.to_string(),
            role_version: version_of(trusted.targets(role).map(|t| t.signed.version)),
            length,
            signature_version: 0,
            key_ids: Vec::new(),
        };
    if require == Require::Targets {
        // DESIGN §2, `targets`: the digest is the current target for the path in fresh,
        // rollback-checked metadata; no signature is asked for.
        let info = info.ok_or_else(unlisted)?;
        let listed = info.file.hashes.get("sha256").map(String::as_str);
        if digest.sha256_hex() != listed {
            return Err(Verdict::deny(
                ReasonCode::DigestMismatch,
                format!(
                    "{path} is {digest} in the registry, but trusted metadata (role {}) lists sha256:{}",
                    info.role,
                    listed.unwrap_or_default()
                ),
            ));
        }
        let trusted = updater
            .trusted()
            .ok_or_else(|| internal("no trusted metadata after a refresh".into()))?;
        let admitted = Verdict::admit(
            format!(
                "{path} is {digest}, listed by role {} (no signature required)",
                info.role
            ),
            trusted.valid_until(),
        );
        let evidence = evidence_of(trusted, &info.role, info.file.length);
        return Ok((admitted, evidence, trusted.valid_until_but_timestamp()));
    }
    // `both` needs the listing; `signature` only the role that signs for the path.
    let (role, delegator, listed) = match (require, info) {
        (Require::Signature, Some(info)) => (info.role, info.delegator, None),
        (Require::Signature, None) => {
            let (role, delegator) = updater.responsible_role(&path).map_err(tuf_denial)?;
            (role, delegator, None)
        }
        (_, None) => return Err(unlisted()),
        (_, Some(info)) => {
            let sha256 = info.file.hashes.get("sha256").cloned().unwrap_or_default();
            (info.role, info.delegator, Some((info.file.length, sha256)))
        }
    };

    let docs = signatures
        .signatures(&scope.full_repository(repo), digest)
        .map_err(|e| {
            Verdict::deny(
                e.reason(),
                format!("reading the signatures of {image}: {e}"),
            )
        })?;
    let trusted = updater
        .trusted()
        .ok_or_else(|| internal("no trusted metadata after a refresh".into()))?;
    let spec = trusted
        .signing_spec(&role, &delegator)
        .ok_or_else(|| internal(format!("no keys known for role {role}")))?;
    let high_water = updater
        .store()
        .signature_version(&path)
        .map_err(|e| internal(e.to_string()))?
        .unwrap_or(0);
    let claim = Claim {
        repo,
        tag: image.tag(),
        path: &path,
        digest,
        image: &image.to_string(),
    };
    let evidence_in = Listed {
        role: &role,
        spec: &spec,
        listed: listed
            .as_ref()
            .map(|(length, sha256)| (*length, sha256.as_str())),
        high_water,
    };
    let accepted = judge(&claim, &evidence_in, docs, now)?;
    let valid_until = trusted.valid_until().min(accepted.expires);
    let lasting = trusted.valid_until_but_timestamp().min(accepted.expires);
    // The trusted length: listed by targets, else (`signature` alone) the signed one.
    let length = listed.as_ref().map_or(accepted.size, |(length, _)| *length);
    let evidence = Evidence {
        signature_version: accepted.version,
        key_ids: accepted.key_ids.clone(),
        ..evidence_of(trusted, &role, length)
    };
    let admitted = Verdict::admit(
        format!(
            "{path} is {digest}, signed (version {}) by role {role}",
            accepted.version
        ),
        valid_until,
    );
    updater
        .store_mut()
        .record_signature_version(&path, accepted.version)
        .map_err(|e| internal(e.to_string()))?;
    Ok((admitted, evidence, lasting))
}

#[cfg(test)]
mod tests {
    //! The signature policy on a repository written by the publisher's own code, read from
    //! a directory; signatures are handed in directly.
    use super::*;
    use crate::publish::repo::{Retention, Workspace};
    use crate::registry::oci::Descriptor;
    use crate::source::dir::DirSource;
    use crate::store::dir::DirStore;
    use crate::tuf::signing::SigningKey;
    use crate::tuf::Limits;

    struct Given(Vec<SignatureRead>);
    impl SignatureSource for Given {
        fn signatures(&self, _: &str, _: &Digest) -> Result<Vec<SignatureRead>, FetchError> {
            Ok(self.0.clone())
        }
    }

    struct Repo {
        dir: tempfile::TempDir,
        ws: Workspace,
        keys: Vec<SigningKey>,
        subject: Descriptor,
        scope: Scope,
    }

    impl Repo {
        fn new() -> Self {
            let dir = tempfile::tempdir().expect("tempdir");
            let keys = crate::publish::repo::tests::keys();
            let signers: Vec<&SigningKey> = keys.iter().collect();
            let scope: Scope = "127.0.0.1:5000/acme".parse().expect("scope");
            let now = Utc::now();
            let mut ws = crate::publish::repo::tests::init(
                &dir.path().join("repo"),
                &keys,
                &signers,
                Retention::default(),
            )
            .expect("init");
            let subject = Descriptor::new(
                crate::registry::oci::MEDIA_TYPE_IMAGE_MANIFEST,
                b"the manifest",
            );
            let hex = subject.digest.sha256_hex().expect("sha256").to_string();
            ws.set_target(
                &RoleName::targets(),
                "app:1",
                subject.size,
                &hex,
                &subject.media_type,
                1,
                &signers,
                now,
            )
            .expect("target");
            ws.snapshot(&signers, now).expect("snapshot");
            ws.timestamp(&signers, now).expect("timestamp");
            Repo {
                dir,
                ws,
                keys,
                subject,
                scope,
            }
        }

        fn signature(
            &self,
            tag: &str,
            version: u64,
            subject: &Descriptor,
            signed_at: DateTime<Utc>,
        ) -> SignatureRead {
            Ok(self
                .ws
                .signature_document("app", &[tag], subject, version, &[&self.keys[1]], signed_at)
                .expect("signature"))
        }

        fn check(&self, given: Vec<SignatureRead>) -> Checked {
            self.check_as("1", Require::Both, given)
        }

        /// `app:TAG` at the subject's digest, under `require`.
        fn check_as(&self, tag: &str, require: Require, given: Vec<SignatureRead>) -> Checked {
            let state = self.dir.path().join(format!("state-{require:?}"));
            let mut store = DirStore::open(&state).expect("store");
            if store.load(&RoleName::root()).expect("load").is_none() {
                let root = std::fs::read(self.ws.metadata_dir().join("1.root.json")).expect("root");
                store.persist(&RoleName::root(), 1, &root).expect("persist");
            }
            let source = DirSource::new(self.ws.metadata_dir(), self.dir.path().join("none"));
            let mut updater = Updater::new(source, store, Limits::default());
            let image: ImageRef = format!("127.0.0.1:5000/acme/app:{tag}@{}", self.subject.digest)
                .parse()
                .expect("ref");
            verify_image(
                &mut updater,
                &Given(given),
                &self.scope,
                &image,
                require,
                Utc::now(),
            )
        }
    }

    fn reason(c: &Checked) -> ReasonCode {
        c.verdict.reason
    }

    #[test]
    fn each_policy_asks_for_its_own_evidence() {
        let r = Repo::new();
        let now = Utc::now();
        // app:9 is listed nowhere, but signed by the key of the role that covers it.
        let unlisted = r.signature("9", 1, &r.subject, now);
        let signature = r.check_as("9", Require::Signature, vec![unlisted.clone()]);
        assert!(signature.verdict.admitted, "{:?}", signature.verdict);
        // Its trusted length is the signed one (a runtime's descriptor is held to it).
        let (evidence, _) = signature.evidence.expect("evidence");
        assert_eq!(evidence.length, r.subject.size);
        assert_eq!(
            reason(&r.check_as("9", Require::Both, vec![unlisted.clone()])),
            ReasonCode::UnknownTarget
        );
        assert_eq!(
            reason(&r.check_as("9", Require::Targets, vec![unlisted])),
            ReasonCode::UnknownTarget
        );
        // app:1 is listed: `targets` admits it without any signature, `signature` does not.
        let listed = r.check_as("1", Require::Targets, Vec::new());
        assert!(listed.verdict.admitted, "{:?}", listed.verdict);
        assert_eq!(listed.signature_version, Some(0));
        assert_eq!(
            reason(&r.check_as("1", Require::Signature, Vec::new())),
            ReasonCode::NotSigned
        );
    }

    #[test]
    fn newest_signature_wins_and_older_ones_are_a_rollback() {
        let r = Repo::new();
        let now = Utc::now();
        let v1 = r.signature("1", 1, &r.subject, now);
        let v2 = r.signature("1", 2, &r.subject, now);
        let first = r.check(vec![v1.clone()]);
        assert!(first.verdict.admitted, "{:?}", first.verdict);
        let second = r.check(vec![v1.clone(), v2]);
        assert_eq!(second.signature_version, Some(2), "{:?}", second.verdict);
        let replay = r.check(vec![v1]);
        assert_eq!(
            reason(&replay),
            ReasonCode::Rollback,
            "{:?}",
            replay.verdict
        );
    }

    #[test]
    fn each_bad_signature_has_its_reason() {
        let r = Repo::new();
        let now = Utc::now();
        let expired = r.signature("1", 1, &r.subject, now - chrono::Duration::days(100));
        assert_eq!(reason(&r.check(vec![expired])), ReasonCode::Expired);
        let mut bigger = r.subject.clone();
        bigger.size += 1;
        let wrong_size = r.signature("1", 1, &bigger, now);
        assert_eq!(
            reason(&r.check(vec![wrong_size])),
            ReasonCode::LengthMismatch
        );
        assert_eq!(
            reason(&r.check(vec![Ok(b"{not json".to_vec())])),
            ReasonCode::Malformed
        );
        let unreadable = Err(crate::verify::Unreadable::new(
            ReasonCode::DigestMismatch,
            "blob corrupt",
        ));
        assert_eq!(
            reason(&r.check(vec![unreadable])),
            ReasonCode::DigestMismatch
        );
        // A signature of another tag of the same image says nothing about app:1.
        let other_tag = r.signature("2", 1, &r.subject, now);
        assert_eq!(reason(&r.check(vec![other_tag])), ReasonCode::NotSigned);
        assert_eq!(reason(&r.check(Vec::new())), ReasonCode::NotSigned);
        // Nothing above was recorded as accepted.
        let good = r.check(vec![r.signature("1", 1, &r.subject, now)]);
        assert!(good.verdict.admitted, "{:?}", good.verdict);
    }

    #[test]
    fn images_outside_the_scope_or_without_a_digest_are_invalid_requests() {
        let r = Repo::new();
        let store = DirStore::open(r.dir.path().join("s2")).expect("store");
        let mut updater = Updater::new(
            DirSource::new(r.ws.metadata_dir(), r.dir.path()),
            store,
            Limits::default(),
        );
        for image in ["127.0.0.1:5000/other/app:1", "127.0.0.1:5000/acme/app:1"] {
            let image: ImageRef = image.parse().expect("ref");
            let c = verify_image(
                &mut updater,
                &Given(Vec::new()),
                &r.scope,
                &image,
                Require::Both,
                Utc::now(),
            );
            assert_eq!(
                c.verdict.reason,
                ReasonCode::InvalidRequest,
                "{:?}",
                c.verdict
            );
        }
    }
}
