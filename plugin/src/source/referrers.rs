//! Detached signatures in a registry: the referrers of an image (the referrers API, or the
//! tag-schema fallback) that are pullguard signature artifacts, read within one deadline.
//! Referrers that are not pullguard signatures (cosign, oras, SBOMs) are skipped, never
//! fatal; the listing's claims are checked against each manifest, never trusted.

use crate::image::SignatureSource;
use crate::io::Deadline;
use crate::registry::oci::{ImageManifest, ARTIFACT_SIGNATURE, MEDIA_TYPE_IMAGE_MANIFEST};
use crate::registry::{Digest, Registry, RegistryError};
use crate::tuf::fetch::FetchError;
use crate::verdict::ReasonCode;
use crate::verify::{SignatureRead, Unreadable};

/// Largest signature artifact manifest and signature document read.
pub const SIGNATURE_MAX: u64 = 64 * 1024;
/// How many referrers of one image are read at most (each costs two requests). Those that
/// claim to be pullguard signatures come first; the claim is checked, never trusted.
pub const REFERRERS_READ_MAX: usize = 32;

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
                out.push(Err(Unreadable::new(cut.reason(), cut.to_string())));
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
                    out.push(Err(Unreadable::new(
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
            return Ok(vec![Err(Unreadable::new(
                ReasonCode::Malformed,
                format!(
                    "too many unreadable referrers: {listed} are listed as attached to {repo}@{digest}; the {missing} read first do not exist in the registry, and the rest were not read"
                ),
            ))]);
        }
        Ok(out)
    }
}

fn unreadable(e: RegistryError) -> Unreadable {
    let message = e.to_string();
    Unreadable::new(FetchError::from(e).reason(), message)
}
