//! Verifying one image against a scope's trust data (DESIGN §2, §5 step 3): fresh,
//! rollback-checked TUF metadata must map the image's `repository:tag` to its digest
//! (`targets`), and a detached signature by the keys of the role responsible for that path
//! must name the image, unexpired and not older than the newest one seen (`signature`).
//! Signatures are read through [`SignatureSource`]; referrers that are not pullguard
//! signatures (cosign, oras, SBOMs) are skipped, never fatal.

use chrono::{DateTime, Utc};

use crate::io::Deadline;
use crate::registry::oci::{ImageManifest, ARTIFACT_SIGNATURE, MEDIA_TYPE_IMAGE_MANIFEST};
use crate::registry::{Digest, ImageRef, Registry, RegistryError, Scope};
use crate::tuf::client::Updater;
use crate::tuf::fetch::{FetchError, MetadataSource};
use crate::tuf::schema::{Envelope, SignatureDoc};
use crate::tuf::state::TrustStore;
use crate::tuf::verify::check_threshold;
use crate::verdict::{ReasonCode, Verdict};

/// Largest signature artifact manifest and signature document read.
pub const SIGNATURE_MAX: u64 = 64 * 1024;
/// How many referrers of one image are read at most (each costs two requests). Those that
/// claim to be pullguard signatures come first; the claim is checked, never trusted.
pub const REFERRERS_READ_MAX: usize = 32;

/// A pullguard signature attached to an image, or why an attached artifact that claims to
/// be one could not be read.
pub type SignatureRead = Result<Vec<u8>, (ReasonCode, String)>;

/// Where detached signatures come from: the registry (referrers) or a bundle.
pub trait SignatureSource {
    /// The signature documents attached to `digest` in the registry repository `repo`.
    fn signatures(&self, repo: &str, digest: &Digest) -> Result<Vec<SignatureRead>, FetchError>;
}

impl SignatureSource for Registry {
    /// Lists every referrer (the listing's `artifactType` is not trusted: a tag-schema index
    /// can be written by anybody), reads each manifest, and keeps pullguard signatures whose
    /// `subject` is `digest`. Everything happens within the registry's deadline (the
    /// verification's), else within one request time limit for the whole listing, however
    /// many referrers an attacker attached.
    fn signatures(&self, repo: &str, digest: &Digest) -> Result<Vec<SignatureRead>, FetchError> {
        let deadline = self
            .deadline()
            .unwrap_or_else(|| Deadline::after(self.timeout()));
        let registry = self.with_deadline(deadline);
        let found = registry.referrers(repo, digest, None)?;
        let listed = found.listed;
        let mut referrers = found.entries;
        referrers.retain(|d| d.media_type == MEDIA_TYPE_IMAGE_MANIFEST);
        let to_read = referrers.len().min(REFERRERS_READ_MAX);
        // Newest first (a tag-schema index grows at its end), claimed signatures before
        // anything else: a crowd of old or junk entries cannot push the newest signature out.
        referrers.reverse();
        referrers.sort_by_key(|d| d.artifact_type.as_deref() != Some(ARTIFACT_SIGNATURE));
        referrers.truncate(REFERRERS_READ_MAX);
        let mut out = Vec::new();
        let mut missing = 0;
        for (read, d) in referrers.into_iter().enumerate() {
            if deadline.has_passed() {
                let cut = FetchError::DeadlineExceeded {
                    location: format!(
                        "registry {}: the referrers of {repo}@{digest} ({read} of {to_read} read)",
                        self.host()
                    ),
                    budget: deadline.budget(),
                };
                if out.is_empty() {
                    return Err(cut);
                }
                // Judge what was read in time; if that admits nothing, the cut is why.
                out.push(Err((cut.reason(), cut.to_string())));
                break;
            }
            let manifest = match registry.get_manifest(
                repo,
                &d.digest.to_string(),
                &[MEDIA_TYPE_IMAGE_MANIFEST],
                SIGNATURE_MAX,
            ) {
                Ok(m) => m,
                Err(e) => {
                    missing += usize::from(e.is_not_found());
                    out.push(Err(unreadable(e)));
                    continue;
                }
            };
            let Ok(parsed) = serde_json::from_slice::<ImageManifest>(&manifest.bytes) else {
                continue;
            };
            if parsed.effective_artifact_type() != ARTIFACT_SIGNATURE {
                continue;
            }
            if parsed.subject.as_ref().map(|s| &s.digest) != Some(digest) {
                continue;
            }
            let layer = match parsed.single_layer(ARTIFACT_SIGNATURE) {
                Ok(l) => l,
                Err(why) => {
                    out.push(Err((
                        ReasonCode::Malformed,
                        format!("signature artifact {}: {why}", d.digest),
                    )));
                    continue;
                }
            };
            out.push(
                registry
                    .get_blob(repo, &layer.digest, SIGNATURE_MAX)
                    .map_err(unreadable),
            );
        }
        // A listing whose entries the registry itself does not have, more of them than are
        // read: the cause is the listing, not any one missing manifest.
        if missing > 0 && missing == out.len() && to_read < listed {
            return Ok(vec![Err((
                ReasonCode::Malformed,
                format!(
                    "too many unreadable referrers: {listed} are listed as attached to {repo}@{digest}; the {missing} read first do not exist in the registry, and the rest were not read"
                ),
            ))]);
        }
        Ok(out)
    }
}

fn unreadable(e: RegistryError) -> (ReasonCode, String) {
    let message = e.to_string();
    (FetchError::from(e).reason(), message)
}

/// What a verification found, for the verdict and for the caller's report.
#[derive(Debug, Clone)]
pub struct Checked {
    pub verdict: Verdict,
    /// The TUF target path checked (`repo:tag` or `repo@digest`; empty outside the scope).
    pub target_path: String,
    /// The accepted signature's version.
    pub signature_version: Option<u64>,
}

/// Verifies `image` (which must carry its manifest digest) in `scope`.
pub fn verify_image<S: MetadataSource, T: TrustStore>(
    updater: &mut Updater<S, T>,
    signatures: &dyn SignatureSource,
    scope: &Scope,
    image: &ImageRef,
    now: DateTime<Utc>,
) -> Checked {
    let target_path = scope.target_path(image).unwrap_or_default();
    let (verdict, signature_version) = match evaluate(updater, signatures, scope, image, now) {
        Ok((verdict, version)) => (verdict, Some(version)),
        Err(verdict) => (verdict, None),
    };
    Checked {
        verdict,
        target_path,
        signature_version,
    }
}

/// The admission with the accepted signature version, or the denial.
fn evaluate<S: MetadataSource, T: TrustStore>(
    updater: &mut Updater<S, T>,
    signatures: &dyn SignatureSource,
    scope: &Scope,
    image: &ImageRef,
    now: DateTime<Utc>,
) -> Result<(Verdict, u64), Verdict> {
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
    let info = updater
        .target_info(&path)
        .map_err(tuf_denial)?
        .ok_or_else(|| {
            Verdict::deny(
                ReasonCode::UnknownTarget,
                format!("no trusted targets role lists {path}"),
            )
        })?;
    let listed = info.file.hashes.get("sha256").cloned().unwrap_or_default();
    let targets_match = digest.sha256_hex() == Some(listed.as_str());

    let docs = signatures
        .signatures(&scope.full_repository(repo), digest)
        .map_err(|e| {
            Verdict::deny(
                e.reason(),
                format!("reading the signatures of {image}: {e}"),
            )
        })?;
    let internal = |message: String| Verdict::deny(ReasonCode::Internal, message);
    let trusted = updater
        .trusted()
        .ok_or_else(|| internal("no trusted metadata after a refresh".into()))?;
    let spec = trusted
        .signing_spec(&info.role, &info.delegator)
        .ok_or_else(|| internal(format!("no keys known for role {}", info.role)))?;
    let high_water = updater
        .store()
        .signature_version(&path)
        .map_err(|e| internal(e.to_string()))?
        .unwrap_or(0);
    let mut best: Option<(u64, DateTime<Utc>)> = None;
    let mut failures: Vec<(ReasonCode, String)> = Vec::new();
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
                failures.push((
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
            && match image.tag() {
                Some(t) => sig.tags.iter().any(|x| x == t),
                None => sig.tags.is_empty(),
            };
        if !names_it || sig.subject.digest != digest.to_string() {
            continue;
        }
        let version = sig.version.get();
        let failure = if targets_match && sig.subject.size != info.file.length {
            Some((
                ReasonCode::LengthMismatch,
                format!(
                    "the signature of {path} gives size {}, trusted metadata lists {}",
                    sig.subject.size, info.file.length
                ),
            ))
        } else if !env
            .signatures
            .iter()
            .any(|s| spec.keyids.contains(&s.keyid))
        {
            Some((
                ReasonCode::NotSigned,
                format!(
                    "the signature of {path} is by keys not delegated for it (role {} trusts {})",
                    info.role,
                    spec.keyids.join(", ")
                ),
            ))
        } else if let Err(e) = check_threshold(&spec, &env.canonical, &env.signatures) {
            Some((
                ReasonCode::ThresholdNotMet,
                format!("signature of {path}: {e}"),
            ))
        } else if sig.expires.is_expired(now) {
            Some((
                ReasonCode::Expired,
                format!("the signature of {path} expired at {}", sig.expires.0),
            ))
        } else if version < high_water {
            Some((
                ReasonCode::Rollback,
                format!("signature rollback for {path}: version {version} is older than version {high_water} already seen"),
            ))
        } else {
            None
        };
        match failure {
            Some(f) => failures.push(f),
            None if best.is_none_or(|(v, _)| version > v) => best = Some((version, sig.expires.0)),
            None => {}
        }
    }

    // Failures of signatures that name this path say most about an attack; then the
    // targets mapping; then the absence of any signature.
    let worst = failures.into_iter().min_by_key(|(r, _)| failure_rank(*r));
    match (targets_match, best, worst) {
        (true, Some((version, expires)), _) => {
            let valid_until = trusted.valid_until().min(expires);
            let admitted = Verdict::admit(
                format!("{path} is {digest}, signed (version {version}) by role {}", info.role),
                valid_until,
            );
            updater
                .store_mut()
                .record_signature_version(&path, version)
                .map_err(|e| internal(e.to_string()))?;
            Ok((admitted, version))
        }
        (_, None, Some((reason, message))) => Err(Verdict::deny(reason, message)),
        (false, _, _) => Err(Verdict::deny(
            ReasonCode::DigestMismatch,
            format!(
                "{path} is {digest} in the registry, but trusted metadata (role {}) lists sha256:{listed}",
                info.role
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
        // A registry that did not answer in time, or at all, may have held back the
        // signature that would admit: that says more than a junk entry beside it.
        ReasonCode::Unavailable => 6,
        ReasonCode::Malformed => 7,
        _ => 8,
    }
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
    use crate::tuf::names::RoleName;
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
            let state = self.dir.path().join("state");
            let mut store = DirStore::open(&state).expect("store");
            if store.load(&RoleName::root()).expect("load").is_none() {
                let root = std::fs::read(self.ws.metadata_dir().join("1.root.json")).expect("root");
                store.persist(&RoleName::root(), 1, &root).expect("persist");
            }
            let source = DirSource::new(self.ws.metadata_dir(), self.dir.path().join("none"));
            let mut updater = Updater::new(source, store, Limits::default());
            let image: ImageRef = format!("127.0.0.1:5000/acme/app:1@{}", self.subject.digest)
                .parse()
                .expect("ref");
            verify_image(&mut updater, &Given(given), &self.scope, &image, Utc::now())
        }
    }

    fn reason(c: &Checked) -> ReasonCode {
        c.verdict.reason
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
        let unreadable = Err((ReasonCode::DigestMismatch, "blob corrupt".to_string()));
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
