//! Names (`registry::reference`): `Digest`, `ImageRef` and `Scope` parsing, and what a scope
//! says about an image (`contains`, `relative_repository`, `target_path`,
//! `full_repository`); with them the repository and tag rules, role names as file names
//! and registry tags (`tuf::names`, `source::oci::metadata_tag`).
//!
//! Input: UTF-8 lines: an image reference, a scope, and anything (a digest, a role name).
//!
//! Properties: every name prints as it parses back (so one image is never two); registry
//! hosts are lowercase; an image the scope gives a relative repository to is in the scope,
//! has a target path `<relative>:<tag>` or `<relative>@<digest>`, and its full repository
//! is the scope's; an encoded role name holds only unreserved characters and escapes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pullguard_plugin::registry::reference::{check_repository, check_tag};
use pullguard_plugin::registry::{Digest, ImageRef, Scope};
use pullguard_plugin::source::oci::metadata_tag;
use pullguard_plugin::tuf::fetch::{metadata_file_name, target_file_path};
use pullguard_plugin::tuf::names::RoleName;

fn check_image(text: &str) -> Option<ImageRef> {
    let image: ImageRef = text.parse().ok()?;
    let shown = image.to_string();
    let again: ImageRef = shown
        .parse()
        .unwrap_or_else(|e| panic!("`{shown}` (from `{text}`) does not parse back: {e}"));
    assert_eq!(again, image, "`{shown}` parses to another image");
    assert_eq!(image.registry(), image.registry().to_ascii_lowercase());
    assert!(image.tag().is_some() || image.digest().is_some());
    assert!(check_repository(image.repository()).is_ok());
    if let Some(tag) = image.tag() {
        assert!(check_tag(tag).is_ok());
    }
    let pinned = image.with_digest(Digest::sha256_of(text.as_bytes()));
    assert_eq!(pinned.tag(), image.tag());
    assert_eq!(
        pinned.to_string().parse::<ImageRef>().ok(),
        Some(pinned.clone())
    );
    Some(image)
}

fn check_scope(text: &str) -> Option<Scope> {
    let scope: Scope = text.parse().ok()?;
    let shown = scope.to_string();
    let again: Scope = shown
        .parse()
        .unwrap_or_else(|e| panic!("scope `{shown}` (from `{text}`) does not parse back: {e}"));
    assert_eq!(again, scope);
    assert_eq!(scope.registry(), scope.registry().to_ascii_lowercase());
    assert!(check_repository(&scope.trust_repository()).is_ok() || scope.namespace().len() > 249);
    Some(scope)
}

fn check_membership(scope: &Scope, image: &ImageRef) {
    let relative = scope.relative_repository(image);
    let path = scope.target_path(image);
    assert_eq!(relative.is_some(), path.is_some());
    let Some(relative) = relative else {
        return;
    };
    assert!(scope.contains(image), "relative to a scope it is not in");
    assert_ne!(relative, "trust");
    assert_eq!(scope.full_repository(relative), image.repository());
    let path = path.unwrap_or_default();
    let rest = path
        .strip_prefix(relative)
        .expect("a target path starts with the repository");
    assert!(rest.starts_with(':') || rest.starts_with('@'), "{path}");
    // The same image rebuilt from its scope and target path parts.
    let rebuilt = ImageRef::new(
        scope.registry(),
        &scope.full_repository(relative),
        image.tag(),
        image.digest().cloned(),
    )
    .expect("rebuilt from valid parts");
    assert_eq!(&rebuilt, image);
}

fn check_names(text: &str) {
    if let Ok(d) = text.parse::<Digest>() {
        assert_eq!(d.to_string(), text, "a digest prints as written");
        assert!(d.referrers_tag().len() <= 128);
        assert!(check_tag(&d.referrers_tag()).is_ok());
        assert!(d.of_same_kind(b"x").matches(b"x"));
    }
    let _ = check_repository(text);
    let _ = check_tag(text);
    if let Ok(role) = RoleName::new(text) {
        let encoded = role.encoded();
        assert!(
            encoded
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b)),
            "{encoded}"
        );
        assert!(!encoded.contains('/'));
        let _ = metadata_file_name(&role, Some(7));
        if let Ok(tag) = metadata_tag(&role, Some(3)) {
            assert!(check_tag(&tag).is_ok());
        }
    }
    let _ = target_file_path(text, Some("ab"));
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.splitn(3, '\n');
    let image_text = lines.next().unwrap_or_default();
    let scope_text = lines.next().unwrap_or_default();
    let other = lines.next().unwrap_or_default();

    let image = check_image(image_text);
    let scope = check_scope(scope_text);
    check_names(other);
    check_names(image_text);
    if let (Some(scope), Some(image)) = (&scope, &image) {
        check_membership(scope, image);
        if let Ok(trust) = format!("{scope}/trust:timestamp").parse::<ImageRef>() {
            assert_eq!(
                scope.relative_repository(&trust),
                None,
                "the trust repository is no image"
            );
        }
    }
    // The scope's own repository as an image: inside by `contains`, but not an image.
    if let Some(scope) = &scope {
        if let Ok(image) = format!("{scope}:1").parse::<ImageRef>() {
            assert_eq!(scope.relative_repository(&image), None);
        }
    }
});
