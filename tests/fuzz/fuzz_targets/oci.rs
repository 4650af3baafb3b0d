//! What pullguard parses of a registry's answers (`registry::oci`, `registry::auth`):
//! image manifests and indexes, referrers listings (the referrers API page and the
//! tag-schema index, as `Registry::referrers` reads them), the checks made of a signature
//! or metadata artifact (`single_layer`, `effective_artifact_type`, the subject, as
//! `source::referrers` and `source::oci` make them), the media type a manifest declares,
//! token answers and `WWW-Authenticate` challenges.
//!
//! Properties: a parsed manifest or index written back parses to the same value; a
//! referrers entry kept holds only media types of at most `MEDIA_TYPE_MAX` bytes; an
//! artifact's single layer has the artifact's type; a token handed out is not empty.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pullguard_plugin::registry::auth::{parse_challenge, Challenge, TokenResponse};
use pullguard_plugin::registry::oci::{
    declared_media_type, Descriptor, ImageIndex, ImageManifest, Referrer, ReferrersListing,
    ARTIFACT_SIGNATURE, ARTIFACT_TUF, MEDIA_TYPE_IMAGE_MANIFEST, MEDIA_TYPE_MAX,
};

fn manifest(data: &[u8]) {
    let Ok(m) = serde_json::from_slice::<ImageManifest>(data) else {
        return;
    };
    let back: ImageManifest =
        serde_json::from_slice(&m.to_bytes()).expect("a written manifest parses");
    assert_eq!(back, m, "a manifest changed when written back");
    for artifact in [ARTIFACT_SIGNATURE, ARTIFACT_TUF] {
        if let Ok(layer) = m.single_layer(artifact) {
            assert_eq!(layer.media_type, artifact);
            assert_eq!(m.effective_artifact_type(), artifact);
            assert_eq!(m.layers.len(), 1);
        }
    }
    let _ = Descriptor::new(MEDIA_TYPE_IMAGE_MANIFEST, data);
}

fn index(data: &[u8]) {
    let Ok(i) = serde_json::from_slice::<ImageIndex>(data) else {
        return;
    };
    let back: ImageIndex = serde_json::from_slice(&i.to_bytes()).expect("a written index parses");
    assert_eq!(back, i, "an index changed when written back");
}

fn listing(data: &[u8]) {
    let Ok(listing) = serde_json::from_slice::<ReferrersListing>(data) else {
        return;
    };
    let listed = listing.manifests.len();
    let kept: Vec<Referrer> = listing
        .manifests
        .into_iter()
        .filter_map(Referrer::from_listed)
        .collect();
    assert!(kept.len() <= listed);
    for r in &kept {
        assert!(r.media_type.len() <= MEDIA_TYPE_MAX);
        assert!(r
            .artifact_type
            .as_ref()
            .is_none_or(|t| t.len() <= MEDIA_TYPE_MAX));
    }
}

fn auth(data: &[u8]) {
    if let Ok(token) = serde_json::from_slice::<TokenResponse>(data) {
        if let Some((token, _)) = token.into_token() {
            assert!(!token.is_empty());
        }
    }
    let Ok(header) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(Challenge::Bearer { realm, .. }) = parse_challenge(header) {
        let _ = realm.len();
    }
}

fuzz_target!(|data: &[u8]| {
    manifest(data);
    index(data);
    listing(data);
    let _ = declared_media_type(data);
    let _ = serde_json::from_slice::<Descriptor>(data);
    auth(data);
});
