//! The OCI image-spec documents pullguard reads and writes: descriptors, image manifests
//! (artifacts) and image indexes (the referrers response and its tag-schema fallback).
//! Unknown fields are kept, so a document read and written back loses nothing.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::reference::Digest;

pub const MEDIA_TYPE_IMAGE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_TYPE_IMAGE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MEDIA_TYPE_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const MEDIA_TYPE_DOCKER_LIST: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";
pub const MEDIA_TYPE_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// The empty JSON object `{}`, the config of artifacts that have none.
pub const EMPTY_CONFIG: &[u8] = b"{}";

/// artifactType (and layer media type) of a TUF metadata file in the trust repository.
pub const ARTIFACT_TUF: &str = "application/vnd.pullguard.tuf.v1+json";
/// artifactType (and layer media type) of a detached image signature.
pub const ARTIFACT_SIGNATURE: &str = "application/vnd.pullguard.signature.v1+json";

/// The manifest media types pullguard accepts as an image (what a tag may point at).
pub const IMAGE_MEDIA_TYPES: [&str; 4] = [
    MEDIA_TYPE_IMAGE_MANIFEST,
    MEDIA_TYPE_IMAGE_INDEX,
    MEDIA_TYPE_DOCKER_MANIFEST,
    MEDIA_TYPE_DOCKER_LIST,
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(
        rename = "artifactType",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Map<String, Value>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Descriptor {
    pub fn new(media_type: &str, bytes: &[u8]) -> Self {
        Descriptor {
            media_type: media_type.to_string(),
            digest: Digest::sha256_of(bytes),
            size: bytes.len() as u64,
            artifact_type: None,
            annotations: None,
            extra: Map::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageManifest {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(
        rename = "artifactType",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub artifact_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Map<String, Value>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ImageManifest {
    /// An artifact: the empty config and one layer holding `content`.
    pub fn artifact(artifact_type: &str, content: &[u8], subject: Option<Descriptor>) -> Self {
        ImageManifest {
            schema_version: 2,
            media_type: Some(MEDIA_TYPE_IMAGE_MANIFEST.to_string()),
            artifact_type: Some(artifact_type.to_string()),
            config: Descriptor::new(MEDIA_TYPE_EMPTY, EMPTY_CONFIG),
            layers: vec![Descriptor::new(artifact_type, content)],
            subject,
            annotations: None,
            extra: Map::new(),
        }
    }

    /// The artifact type as the referrers API reports it: `artifactType`, else the config's
    /// media type.
    pub fn effective_artifact_type(&self) -> &str {
        self.artifact_type
            .as_deref()
            .unwrap_or(self.config.media_type.as_str())
    }

    /// The single layer of an artifact of type `artifact_type`, or why this is not one.
    pub fn single_layer(&self, artifact_type: &str) -> Result<&Descriptor, String> {
        if self.effective_artifact_type() != artifact_type {
            return Err(format!(
                "artifact type is `{}`, not `{artifact_type}`",
                self.effective_artifact_type()
            ));
        }
        match self.layers.as_slice() {
            [layer] if layer.media_type == artifact_type => Ok(layer),
            [layer] => Err(format!(
                "its layer has media type `{}`, not `{artifact_type}`",
                layer.media_type
            )),
            layers => Err(format!("it has {} layers, not 1", layers.len())),
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        // Only string-keyed maps and plain values: serialising cannot fail.
        serde_json::to_vec(self).expect("OCI documents serialise")
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageIndex {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Map<String, Value>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ImageIndex {
    pub fn empty() -> Self {
        ImageIndex {
            schema_version: 2,
            media_type: Some(MEDIA_TYPE_IMAGE_INDEX.to_string()),
            manifests: Vec::new(),
            annotations: None,
            extra: Map::new(),
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        // Only string-keyed maps and plain values: serialising cannot fail.
        serde_json::to_vec(self).expect("OCI documents serialise")
    }
}

/// The media type a manifest declares in its body (`mediaType`), if any.
pub fn declared_media_type(bytes: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Probe {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
    }
    serde_json::from_slice::<Probe>(bytes).ok()?.media_type
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_round_trip_keeps_unknown_fields() {
        let subject = Descriptor::new(MEDIA_TYPE_IMAGE_MANIFEST, b"image");
        let m = ImageManifest::artifact(ARTIFACT_SIGNATURE, b"{\"signed\":{}}", Some(subject));
        let mut value: Value = serde_json::from_slice(&m.to_bytes()).expect("json");
        value["x-extra"] = Value::from(7);
        let back: ImageManifest = serde_json::from_value(value).expect("parse");
        assert_eq!(back.extra.get("x-extra"), Some(&Value::from(7)));
        assert_eq!(back.effective_artifact_type(), ARTIFACT_SIGNATURE);
        assert!(back.single_layer(ARTIFACT_SIGNATURE).is_ok());
        assert!(back.single_layer(ARTIFACT_TUF).is_err());
        assert_eq!(
            declared_media_type(&m.to_bytes()).as_deref(),
            Some(MEDIA_TYPE_IMAGE_MANIFEST)
        );
    }

    #[test]
    fn artifact_type_falls_back_to_config_media_type() {
        let mut m = ImageManifest::artifact(ARTIFACT_TUF, b"{}", None);
        m.artifact_type = None;
        assert_eq!(m.effective_artifact_type(), MEDIA_TYPE_EMPTY);
    }
}
