//! Registry-native TUF metadata (DESIGN §3): each metadata file is an OCI artifact in the
//! scope's trust repository, tagged by its consistent-snapshot name (`timestamp`,
//! `3.snapshot`, `2.root`, `5.team-api`). Targets are images: a target `repo:tag` is the
//! manifest of `<namespace>/repo`, fetched by the digest that trusted metadata lists.

use std::sync::Arc;

use crate::registry::oci::{
    ImageManifest, ARTIFACT_TUF, IMAGE_MEDIA_TYPES, MEDIA_TYPE_IMAGE_MANIFEST,
};
use crate::registry::reference::{check_tag, Digest};
use crate::registry::{ErrorKind, Registry, RegistryError, Scope};
use crate::tuf::fetch::{FetchError, MetadataSource};
use crate::tuf::names::RoleName;

/// The largest artifact manifest read for one metadata file (it only describes one layer).
const ARTIFACT_MANIFEST_MAX: u64 = 64 * 1024;

/// The tag of a role's metadata: `<version>.<role>`, or `<role>` for the current version.
/// Role names must be tag-safe (letters, digits, `_.-`).
pub fn metadata_tag(role: &RoleName, version: Option<u64>) -> Result<String, String> {
    let tag = match version {
        Some(v) => format!("{v}.{}", role.as_str()),
        None => role.as_str().to_string(),
    };
    check_tag(&tag).map_err(|e| format!("role {role} cannot be stored in a registry: {e}"))?;
    Ok(tag)
}

pub struct OciSource {
    registry: Arc<Registry>,
    scope: Scope,
    trust_repository: String,
}

impl OciSource {
    pub fn new(registry: Arc<Registry>, scope: Scope) -> Self {
        let trust_repository = scope.trust_repository();
        OciSource {
            registry,
            scope,
            trust_repository,
        }
    }

    pub fn with_trust_repository(mut self, repository: &str) -> Self {
        self.trust_repository = repository.to_string();
        self
    }

    /// Reads the metadata artifact tagged `tag`: its manifest must be a pullguard TUF
    /// artifact with one layer, no longer than `max_len`.
    pub fn read_artifact(&self, tag: &str, max_len: u64) -> Result<Vec<u8>, FetchError> {
        let repo = &self.trust_repository;
        let manifest = self
            .registry
            .get_manifest(
                repo,
                tag,
                &[MEDIA_TYPE_IMAGE_MANIFEST],
                ARTIFACT_MANIFEST_MAX,
            )
            .map_err(FetchError::from)?;
        let location = format!("registry {}: {repo}:{tag}", self.registry.host());
        let parsed: ImageManifest =
            serde_json::from_slice(&manifest.bytes).map_err(|e| FetchError::Invalid {
                location: location.clone(),
                reason: format!("not an OCI image manifest: {e}"),
            })?;
        let layer = parsed
            .single_layer(ARTIFACT_TUF)
            .map_err(|reason| FetchError::Invalid {
                location: location.clone(),
                reason: format!("not a pullguard TUF metadata artifact: {reason}"),
            })?;
        if layer.size > max_len {
            return Err(FetchError::TooLarge {
                location,
                limit: max_len,
            });
        }
        Ok(self.registry.get_blob(repo, &layer.digest, max_len)?)
    }
}

impl MetadataSource for OciSource {
    fn fetch_metadata(
        &self,
        role: &RoleName,
        version: Option<u64>,
        max_len: u64,
    ) -> Result<Vec<u8>, FetchError> {
        let tag = metadata_tag(role, version).map_err(|reason| FetchError::Invalid {
            location: format!(
                "registry {}: {}",
                self.registry.host(),
                self.trust_repository
            ),
            reason,
        })?;
        self.read_artifact(&tag, max_len)
    }

    /// A target `repo:tag` or `repo@digest` is the image manifest; with consistent snapshots
    /// it is fetched by the sha256 that metadata lists, so a re-pointed tag cannot interfere.
    fn fetch_target(
        &self,
        path: &str,
        hash_prefix: Option<&str>,
        max_len: u64,
    ) -> Result<Vec<u8>, FetchError> {
        let invalid = |reason: String| FetchError::Invalid {
            location: format!("registry {}: target {path}", self.registry.host()),
            reason,
        };
        let (repo, reference) = match path.split_once('@') {
            Some((repo, digest)) => (
                repo,
                digest
                    .parse::<Digest>()
                    .map_err(|e| invalid(e.to_string()))?
                    .to_string(),
            ),
            None => {
                let (repo, tag) = path.rsplit_once(':').ok_or_else(|| {
                    invalid("target paths are repository:tag or repository@digest".into())
                })?;
                match hash_prefix {
                    Some(hex) => (
                        repo,
                        Digest::from_sha256_hex(hex)
                            .map_err(|e| invalid(e.to_string()))?
                            .to_string(),
                    ),
                    None => {
                        check_tag(tag).map_err(|e| invalid(e.to_string()))?;
                        (repo, tag.to_string())
                    }
                }
            }
        };
        let full = self.scope.full_repository(repo);
        crate::registry::reference::check_repository(&full).map_err(|e| invalid(e.to_string()))?;
        let manifest =
            self.registry
                .get_manifest(&full, &reference, &IMAGE_MEDIA_TYPES, max_len)?;
        Ok(manifest.bytes)
    }
}

/// A registry failure, as the trust core sees a fetch failure.
impl From<RegistryError> for FetchError {
    fn from(e: RegistryError) -> Self {
        let location = e.location();
        match e.kind {
            ErrorKind::NotFound => FetchError::NotFound { location },
            ErrorKind::TooLarge { limit } => FetchError::TooLarge { location, limit },
            ErrorKind::Timeout => FetchError::Timeout { location },
            ErrorKind::DeadlineExceeded { budget } => {
                FetchError::DeadlineExceeded { location, budget }
            }
            ErrorKind::Unreachable { reason } => FetchError::Unreachable { location, reason },
            ErrorKind::DigestMismatch { expected, found } => FetchError::Corrupt {
                location,
                reason: format!("content digest {found} differs from {expected}"),
            },
            ErrorKind::Status { status, .. } => FetchError::Status { location, status },
            // Kept apart up to the verdict: bad credentials are not a registry outage.
            kind @ (ErrorKind::Unauthorized { .. } | ErrorKind::Denied { .. }) => {
                FetchError::Refused {
                    location,
                    reason: kind.to_string(),
                }
            }
            ErrorKind::RateLimited { retry_after } => FetchError::RateLimited {
                location,
                retry_after,
            },
            ErrorKind::Protocol { detail } => FetchError::Invalid {
                location,
                reason: format!("unexpected answer: {detail}"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_credentials_and_rate_limits_are_not_outages() {
        use crate::verdict::ReasonCode;
        let at = |kind: ErrorKind| {
            FetchError::from(RegistryError {
                registry: "r:1".into(),
                request: "GET /v2/a/manifests/1".into(),
                kind,
            })
        };
        let refused = at(ErrorKind::Unauthorized {
            detail: "the configured credentials were refused".into(),
        });
        assert_eq!(refused.reason(), ReasonCode::Unauthorized);
        assert_eq!(
            refused.to_string(),
            "registry r:1: GET /v2/a/manifests/1: unauthorised (the configured credentials were refused)"
        );
        let denied = at(ErrorKind::Denied {
            detail: String::new(),
        });
        assert_eq!(denied.reason(), ReasonCode::Unauthorized);
        let limited = at(ErrorKind::RateLimited {
            retry_after: Some(std::time::Duration::from_secs(120)),
        });
        assert_eq!(limited.reason(), ReasonCode::RateLimited);
        assert!(
            limited
                .to_string()
                .ends_with("rate-limited (retry after 120 s)"),
            "{limited}"
        );
        let down = at(ErrorKind::Unreachable {
            reason: "connection refused".into(),
        });
        assert_eq!(down.reason(), ReasonCode::Unavailable);
        let junk = at(ErrorKind::Protocol {
            detail: "not an image index".into(),
        });
        assert_eq!(junk.reason(), ReasonCode::Malformed);
        // None of them is cached as a verdict.
        for r in [ReasonCode::Unauthorized, ReasonCode::RateLimited] {
            assert!(r.is_transient(), "{r}");
        }
    }

    #[test]
    fn tags_of_metadata() {
        let role = |n: &str| RoleName::new(n).expect("role");
        assert_eq!(
            metadata_tag(&role("timestamp"), None).as_deref(),
            Ok("timestamp")
        );
        assert_eq!(
            metadata_tag(&role("root"), Some(2)).as_deref(),
            Ok("2.root")
        );
        assert_eq!(
            metadata_tag(&role("team-api"), Some(5)).as_deref(),
            Ok("5.team-api")
        );
        assert!(metadata_tag(&role("team/api"), Some(1)).is_err());
        assert!(metadata_tag(&role("?"), None).is_err());
        assert!(metadata_tag(&role(&"x".repeat(130)), None).is_err());
    }
}
