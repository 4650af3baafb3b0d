//! Offline bundles (DESIGN §3, "Files"): a scope's TUF metadata and the detached signatures
//! of a set of images in one JSON file, for edge devices that pull without reaching the
//! registry. Each document is kept as its exact text, so hashes and signatures still match;
//! the trust core verifies everything on import exactly as it does online.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::image::SignatureSource;
use crate::registry::oci::IMAGE_MEDIA_TYPES;
use crate::registry::{Digest, ImageRef, Registry, RegistryError, Scope};
use crate::tuf::fetch::{metadata_file_name, FetchError, MetadataSource};
use crate::tuf::names::RoleName;
use crate::tuf::schema::{Envelope, SchemaError, Snapshot, Timestamp};
use crate::tuf::Limits;
use crate::verdict::ReasonCode;
use crate::verify::{SignatureRead, Unreadable};

pub const FORMAT: &str = "pullguard-bundle/1";
/// No bundle larger than this is read.
pub const BUNDLE_MAX: u64 = 256 * 1024 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BundledImage {
    /// The reference as exported (`host/repo:tag`).
    pub reference: String,
    pub digest: Digest,
    /// Full registry repository name.
    pub repository: String,
    /// Signature documents attached to the digest, as their exact text.
    pub signatures: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    pub format: String,
    pub scope: String,
    /// Standard TUF file name (`1.root.json`, `timestamp.json`, `3.snapshot.json`, ...) →
    /// exact text.
    pub metadata: BTreeMap<String, String>,
    pub images: Vec<BundledImage>,
}

impl Bundle {
    pub fn new(scope: &str) -> Self {
        Bundle {
            format: FORMAT.to_string(),
            scope: scope.to_string(),
            metadata: BTreeMap::new(),
            images: Vec::new(),
        }
    }

    /// Reads and parses a bundle file, never more than one byte past [`BUNDLE_MAX`]; the
    /// error names the file.
    pub fn read(path: &std::path::Path) -> Result<Self, String> {
        let bytes = crate::io::read_file(path, BUNDLE_MAX)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Bundle::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn from_slice(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() as u64 > BUNDLE_MAX {
            return Err(format!(
                "larger than the {BUNDLE_MAX}-byte limit for bundles"
            ));
        }
        // Duplicate keys (two texts for one file name, say) are refused, not resolved. The
        // documents inside are checked the same way when they are verified.
        crate::tuf::cjson::check_unique_keys(bytes)
            .map_err(|e| format!("not a pullguard bundle: {e}"))?;
        let bundle: Bundle =
            serde_json::from_slice(bytes).map_err(|e| format!("not a pullguard bundle: {e}"))?;
        if bundle.format != FORMAT {
            return Err(format!(
                "bundle format `{}` is not `{FORMAT}`",
                bundle.format
            ));
        }
        Ok(bundle)
    }

    pub fn to_vec(&self) -> Result<Vec<u8>, String> {
        serde_json::to_vec_pretty(self).map_err(|e| format!("cannot encode the bundle: {e}"))
    }

    /// `image` pinned to the digest the bundle holds for it (unchanged when it names a
    /// digest already); else the denial that says why not.
    pub fn pin(&self, image: &ImageRef) -> Result<ImageRef, crate::verdict::Verdict> {
        if image.digest().is_some() {
            return Ok(image.clone());
        }
        let shown = image.to_string();
        self.images
            .iter()
            .find(|i| i.reference == shown)
            .map(|i| image.with_digest(i.digest.clone()))
            .ok_or_else(|| {
                crate::verdict::Verdict::deny(
                    ReasonCode::InvalidRequest,
                    format!("{image} is not in the bundle; give its digest"),
                )
            })
    }

    /// Adds a document under its file name; only UTF-8 documents can be bundled.
    pub fn add_metadata(&mut self, file: &str, bytes: Vec<u8>) -> Result<(), String> {
        let text = String::from_utf8(bytes).map_err(|_| format!("{file} is not UTF-8 JSON"))?;
        self.metadata.insert(file.to_string(), text);
        Ok(())
    }
}

impl MetadataSource for Bundle {
    fn fetch_metadata(
        &self,
        role: &RoleName,
        version: Option<u64>,
        max_len: u64,
    ) -> Result<Vec<u8>, FetchError> {
        let name = metadata_file_name(role, version);
        let location = format!("bundle: {name}");
        let text = self.metadata.get(&name).ok_or(FetchError::NotFound {
            location: location.clone(),
        })?;
        if text.len() as u64 > max_len {
            return Err(FetchError::TooLarge {
                location,
                limit: max_len,
            });
        }
        Ok(text.as_bytes().to_vec())
    }

    fn fetch_target(&self, path: &str, _: Option<&str>, _: u64) -> Result<Vec<u8>, FetchError> {
        Err(FetchError::NotFound {
            location: format!("bundle: target {path} (bundles carry no image content)"),
        })
    }
}

impl SignatureSource for Bundle {
    fn signatures(&self, repo: &str, digest: &Digest) -> Result<Vec<SignatureRead>, FetchError> {
        Ok(self
            .images
            .iter()
            .filter(|i| i.repository == repo && &i.digest == digest)
            .flat_map(|i| i.signatures.iter().map(|s| Ok(s.as_bytes().to_vec())))
            .collect())
    }
}

/// Why a bundle could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{file}: {source}")]
    Fetch { file: String, source: FetchError },
    #[error("{file} is malformed: {source}")]
    Malformed { file: String, source: SchemaError },
    #[error("{file}: {reason}")]
    NotText { file: String, reason: String },
    #[error("{image}: {source}")]
    Registry {
        image: String,
        source: RegistryError,
    },
    #[error("the signatures of {image}: {source}")]
    Signatures { image: String, source: FetchError },
    #[error("{image} does not exist in the registry")]
    NoSuchImage { image: String },
    #[error("the snapshot lists `{file}`, which is not a role's metadata file: {reason}")]
    BadRole { file: String, reason: String },
}

/// A signature left out of a bundle because it could not be read: the image, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeftOut {
    pub image: String,
    pub why: Unreadable,
}

/// Reads a scope's current metadata from `source` (every root version, then timestamp,
/// snapshot and the targets roles the snapshot lists) and the signatures of each image
/// from `registry`, into one bundle. Nothing is trusted here: the importing side verifies
/// it all. Signatures that cannot be read are left out and listed.
pub fn export(
    source: &dyn MetadataSource,
    registry: &Registry,
    scope: &Scope,
    images: &[ImageRef],
) -> Result<(Bundle, Vec<LeftOut>), ExportError> {
    let limits = Limits::default();
    let mut bundle = Bundle::new(&scope.to_string());
    let fetch = |role: &RoleName, version: Option<u64>, max: u64| {
        let file = metadata_file_name(role, version);
        source
            .fetch_metadata(role, version, max)
            .map_err(|source| ExportError::Fetch {
                file: file.clone(),
                source,
            })
            .map(|bytes| (file, bytes))
    };
    let add = |bundle: &mut Bundle, file: &str, bytes: Vec<u8>| {
        bundle
            .add_metadata(file, bytes)
            .map_err(|reason| ExportError::NotText {
                file: file.to_string(),
                reason,
            })
    };
    let root = RoleName::root();
    for version in 1..=limits.max_root_rotations.saturating_add(1) {
        match fetch(&root, Some(version), limits.root_max) {
            Ok((file, bytes)) => add(&mut bundle, &file, bytes)?,
            Err(ExportError::Fetch { source, .. }) if source.is_not_found() => break,
            Err(e) => return Err(e),
        }
    }
    let (file, ts_bytes) = fetch(&RoleName::timestamp(), None, limits.timestamp_max)?;
    let ts =
        Envelope::<Timestamp>::from_slice(&ts_bytes).map_err(|source| ExportError::Malformed {
            file: file.clone(),
            source,
        })?;
    let snapshot_version = ts.signed.snapshot_meta().version.get();
    add(&mut bundle, &file, ts_bytes)?;
    let (file, snap_bytes) = fetch(
        &RoleName::snapshot(),
        Some(snapshot_version),
        limits.snapshot_max,
    )?;
    let snap =
        Envelope::<Snapshot>::from_slice(&snap_bytes).map_err(|source| ExportError::Malformed {
            file: file.clone(),
            source,
        })?;
    add(&mut bundle, &file, snap_bytes)?;
    for (listed, meta) in &snap.signed.meta {
        let role = RoleName::new(listed.trim_end_matches(".json")).map_err(|reason| {
            ExportError::BadRole {
                file: listed.clone(),
                reason,
            }
        })?;
        let max = meta
            .length
            .unwrap_or(limits.targets_max)
            .min(limits.hard_max);
        let (file, bytes) = fetch(&role, Some(meta.version.get()), max)?;
        add(&mut bundle, &file, bytes)?;
    }
    let mut left_out = Vec::new();
    for image in images {
        let shown = image.to_string();
        let registry_error = |source| ExportError::Registry {
            image: shown.clone(),
            source,
        };
        let digest = match image.digest() {
            Some(d) => d.clone(),
            None => registry
                .resolve(
                    image.repository(),
                    image.tag().unwrap_or_default(),
                    &IMAGE_MEDIA_TYPES,
                )
                .map_err(registry_error)?
                .ok_or_else(|| ExportError::NoSuchImage {
                    image: shown.clone(),
                })?,
        };
        let mut signatures = Vec::new();
        let reads = registry
            .signatures(image.repository(), &digest)
            .map_err(|source| ExportError::Signatures {
                image: shown.clone(),
                source,
            })?;
        for read in reads {
            match read.map(String::from_utf8) {
                Ok(Ok(text)) => signatures.push(text),
                Ok(Err(_)) => left_out.push(LeftOut {
                    image: shown.clone(),
                    why: Unreadable::new(ReasonCode::Malformed, "it is not UTF-8"),
                }),
                Err(why) => left_out.push(LeftOut {
                    image: shown.clone(),
                    why,
                }),
            }
        }
        bundle.images.push(BundledImage {
            reference: shown.split('@').next().unwrap_or(&shown).to_string(),
            digest,
            repository: image.repository().to_string(),
            signatures,
        });
    }
    Ok((bundle, left_out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_bundles_are_refused_and_limits_hold() {
        assert!(Bundle::from_slice(b"{}").is_err());
        assert!(Bundle::from_slice(
            br#"{"format":"other/9","scope":"h:1/a","metadata":{},"images":[]}"#
        )
        .is_err());
        let mut b = Bundle::new("127.0.0.1:5000/acme");
        b.add_metadata("timestamp.json", b"{\"signed\":{}}".to_vec())
            .expect("add");
        assert!(b.add_metadata("x.json", vec![0xff]).is_err());
        let back = Bundle::from_slice(&b.to_vec().expect("encode")).expect("round trip");
        assert_eq!(back, b);
        let ts = RoleName::timestamp();
        assert!(back.fetch_metadata(&ts, None, 1024).is_ok());
        assert!(matches!(
            back.fetch_metadata(&ts, None, 3),
            Err(FetchError::TooLarge { .. })
        ));
        assert!(back
            .fetch_metadata(&RoleName::root(), Some(1), 1024)
            .expect_err("absent")
            .is_not_found());
    }

    #[test]
    fn a_bundle_with_a_duplicate_key_is_refused() {
        let one = r#"{"format":"pullguard-bundle/1","scope":"h:1/a","metadata":{"timestamp.json":"{}"},"images":[]}"#;
        assert!(Bundle::from_slice(one.as_bytes()).is_ok());
        // Two texts for one file: which one a reader takes must never be a question.
        let two = one.replace(
            r#""timestamp.json":"{}""#,
            r#""timestamp.json":"{}","timestamp.json":"[]""#,
        );
        let err = Bundle::from_slice(two.as_bytes()).expect_err("duplicate");
        assert!(err.contains("a key appears twice"), "{err}");
        let scope = one.replace(r#""scope":"h:1/a""#, r#""scope":"h:1/a","scope":"h:1/b""#);
        assert!(Bundle::from_slice(scope.as_bytes()).is_err());
    }
}
