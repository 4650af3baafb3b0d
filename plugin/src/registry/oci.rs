//! The OCI image-spec documents pullguard reads and writes: descriptors, image manifests
//! (artifacts) and image indexes (the referrers response and its tag-schema fallback).
//!
//! These are typed values holding only the fields the image spec defines and pullguard
//! uses: whatever else a registry sends (unknown fields, and in a referrers listing
//! everything but digest, media type and artifact type) is skipped while parsing, never
//! allocated. A malicious registry's 4 MiB of junk in one descriptor costs nothing beyond
//! reading it (README, "Decisions": why these and not the `oci-spec` crate's types).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

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
    pub annotations: Option<Annotations>,
}

/// OCI annotations: string keys and string values only (image spec, "Annotations").
pub type Annotations = BTreeMap<String, String>;

impl Descriptor {
    pub fn new(media_type: &str, bytes: &[u8]) -> Self {
        Descriptor {
            media_type: media_type.to_string(),
            digest: Digest::sha256_of(bytes),
            size: bytes.len() as u64,
            artifact_type: None,
            annotations: None,
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
    pub annotations: Option<Annotations>,
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
    pub annotations: Option<Annotations>,
}

impl ImageIndex {
    pub fn empty() -> Self {
        ImageIndex {
            schema_version: 2,
            media_type: Some(MEDIA_TYPE_IMAGE_INDEX.to_string()),
            manifests: Vec::new(),
            annotations: None,
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        // Only string-keyed maps and plain values: serialising cannot fail.
        serde_json::to_vec(self).expect("OCI documents serialise")
    }
}

/// One entry of a referrers listing (the referrers API's index, or the tag-schema index),
/// as far as pullguard keeps it: which manifest, and what it claims to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referrer {
    pub media_type: String,
    pub digest: Digest,
    pub artifact_type: Option<String>,
}

impl Referrer {
    /// The entry, unless its media type or artifact type is longer than any media type can
    /// be (such an entry is not anybody's referrer, only junk).
    pub fn from_listed(listed: ListedReferrer) -> Option<Referrer> {
        let artifact_type = match listed.artifact_type {
            None => None,
            Some(BoundedMediaType(None)) => return None,
            Some(BoundedMediaType(t)) => t,
        };
        Some(Referrer {
            media_type: listed.media_type.0?,
            digest: listed.digest,
            artifact_type,
        })
    }
}

/// A referrers listing: an image index of which only each entry's media type, digest and
/// artifact type are read.
#[derive(Debug, Deserialize)]
pub struct ReferrersListing {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(default)]
    pub manifests: Vec<ListedReferrer>,
}

/// An entry of a [`ReferrersListing`] as parsed; see [`Referrer::from_listed`].
#[derive(Debug, Deserialize)]
pub struct ListedReferrer {
    #[serde(rename = "mediaType")]
    media_type: BoundedMediaType,
    digest: Digest,
    #[serde(rename = "artifactType", default)]
    artifact_type: Option<BoundedMediaType>,
}

/// RFC 6838 4.2: type and subtype names are at most 127 characters each.
pub const MEDIA_TYPE_MAX: usize = 255;

/// A media type string, kept only when it is no longer than [`MEDIA_TYPE_MAX`] (`None`
/// otherwise): what a listing entry holds stays small whatever a registry sends.
#[derive(Debug)]
pub struct BoundedMediaType(Option<String>);

impl<'de> Deserialize<'de> for BoundedMediaType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = BoundedMediaType;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a media type string")
            }
            fn visit_str<E>(self, v: &str) -> Result<BoundedMediaType, E> {
                Ok(BoundedMediaType(
                    (v.len() <= MEDIA_TYPE_MAX).then(|| v.to_string()),
                ))
            }
        }
        d.deserialize_str(Visitor)
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
    fn artifacts_round_trip_and_unknown_fields_are_dropped() {
        let subject = Descriptor::new(MEDIA_TYPE_IMAGE_MANIFEST, b"image");
        let m = ImageManifest::artifact(ARTIFACT_SIGNATURE, b"{\"signed\":{}}", Some(subject));
        let mut value: serde_json::Value = serde_json::from_slice(&m.to_bytes()).expect("json");
        value["x-extra"] = serde_json::Value::from(vec![0; 1000]);
        value["layers"][0]["x-junk"] = serde_json::Value::from("junk");
        let back: ImageManifest = serde_json::from_value(value).expect("parse");
        assert_eq!(back, m, "only the image spec's fields are kept");
        assert_eq!(back.effective_artifact_type(), ARTIFACT_SIGNATURE);
        assert!(back.single_layer(ARTIFACT_SIGNATURE).is_ok());
        assert!(back.single_layer(ARTIFACT_TUF).is_err());
        assert_eq!(
            declared_media_type(&m.to_bytes()).as_deref(),
            Some(MEDIA_TYPE_IMAGE_MANIFEST)
        );
    }

    #[test]
    fn a_referrers_listing_keeps_only_what_identifies_each_entry() {
        let d = Descriptor::new(MEDIA_TYPE_IMAGE_MANIFEST, b"sig");
        let text = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{MEDIA_TYPE_IMAGE_MANIFEST}","digest":"{}","size":3,
                "artifactType":"a/b","annotations":{{"k":"v"}},"x-junk":[[1,2],{{"deep":[]}}]}}],"x-more":{{}}}}"#,
            d.digest
        );
        let listing: ReferrersListing = serde_json::from_str(&text).expect("listing");
        let kept: Vec<Referrer> = listing
            .manifests
            .into_iter()
            .filter_map(Referrer::from_listed)
            .collect();
        assert_eq!(
            kept,
            vec![Referrer {
                media_type: MEDIA_TYPE_IMAGE_MANIFEST.into(),
                digest: d.digest.clone(),
                artifact_type: Some("a/b".into()),
            }]
        );
        // A media type or artifact type longer than any media type: the entry is junk.
        let huge = "x".repeat(4 * 1024 * 1024);
        for (media_type, artifact_type) in [
            (huge.as_str(), "a/b"),
            (MEDIA_TYPE_IMAGE_MANIFEST, huge.as_str()),
        ] {
            let long = format!(
                r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{media_type}","digest":"{}","size":3,"artifactType":"{artifact_type}"}}]}}"#,
                d.digest
            );
            let listing: ReferrersListing = serde_json::from_str(&long).expect("listing");
            assert_eq!(listing.manifests.len(), 1);
            assert!(listing
                .manifests
                .into_iter()
                .all(|l| Referrer::from_listed(l).is_none()));
        }
        // Annotations are strings (image spec): anything else is not an OCI document.
        let bad = r#"{"schemaVersion":2,"manifests":[],"annotations":{"k":1}}"#;
        assert!(serde_json::from_str::<ImageIndex>(bad).is_err());
    }

    #[test]
    fn artifact_type_falls_back_to_config_media_type() {
        let mut m = ImageManifest::artifact(ARTIFACT_TUF, b"{}", None);
        m.artifact_type = None;
        assert_eq!(m.effective_artifact_type(), MEDIA_TYPE_EMPTY);
    }

    #[test]
    fn deeply_nested_junk_is_skipped_or_refused_never_a_crash() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let page = format!(r#"{{"schemaVersion":2,"manifests":[],"x-junk":{deep}}}"#);
        // An unknown field is skipped without recursion or allocation...
        let listing: ReferrersListing = serde_json::from_str(&page).expect("skipped");
        assert!(listing.manifests.is_empty());
        // ...and a document that is kept whole stops at the nesting limit.
        let err = crate::tuf::cjson::parse_unique(page.as_bytes()).expect_err("too deep");
        assert!(err.to_string().contains("recursion limit"), "{err}");
    }

    /// Why these types and not `oci-spec`'s: one referrers page within the 4 MiB cap whose
    /// only entry carries 4 MiB of annotations. `oci-spec` keeps all of it (and a listing
    /// has up to 16 pages); what pullguard keeps of the entry is its identity.
    #[test]
    fn oci_spec_keeps_what_a_malicious_page_packs_into_a_descriptor() {
        let mut annotations = String::new();
        for i in 0..95_000 {
            annotations.push_str(&format!(r#""k{i:06}":"{:030}","#, 0));
        }
        annotations.pop();
        let d = Descriptor::new(MEDIA_TYPE_IMAGE_MANIFEST, b"sig");
        let page = format!(
            r#"{{"schemaVersion":2,"mediaType":"{MEDIA_TYPE_IMAGE_INDEX}","manifests":[{{"mediaType":"{MEDIA_TYPE_IMAGE_MANIFEST}","digest":"{}","size":3,"annotations":{{{annotations}}}}}]}}"#,
            d.digest
        );
        assert!(
            page.len() > 4_000_000 && page.len() < 4 * 1024 * 1024,
            "{}",
            page.len()
        );
        let theirs: oci_spec::image::ImageIndex = serde_json::from_str(&page).expect("oci-spec");
        let kept: usize = theirs.manifests()[0]
            .annotations()
            .as_ref()
            .map(|a| a.iter().map(|(k, v)| k.len() + v.len()).sum())
            .unwrap_or(0);
        assert!(
            kept > 3_400_000,
            "oci-spec keeps {kept} bytes of annotations"
        );
        let ours: ReferrersListing = serde_json::from_str(&page).expect("ours");
        let kept: Vec<Referrer> = ours
            .manifests
            .into_iter()
            .filter_map(Referrer::from_listed)
            .collect();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].digest, d.digest);
    }
}
