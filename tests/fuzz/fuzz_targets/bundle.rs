//! Offline bundles (`bundle::Bundle`): `from_slice`, then what `bundle import` and a node
//! with a `bundle://` source do with one, as far as it is I/O-free: the bundle's scope must
//! be the configured one, each image is pinned to the digest the bundle holds for it and
//! verified (`image::verify_image`) with the bundle as both the metadata source and the
//! signature source, against an in-memory trusted state holding the fixed trusted root.
//! Images are checked under `require = "both"`, `"signature"` and `"targets"` in turn.
//!
//! Properties: a bundle written back reads as the same bundle; a document the bundle serves
//! is no longer than the cap asked for; an admitted image is in the scope, and is the
//! digest its target lists (`both`, `targets`) and names an accepted signature version
//! (`both`, `signature`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pullguard_fuzz::mem::MemStore;
use pullguard_fuzz::now;
use pullguard_fuzz::repo::{Repo, SCOPE};
use pullguard_plugin::bundle::Bundle;
use pullguard_plugin::config::Require;
use pullguard_plugin::image::verify_image;
use pullguard_plugin::registry::{ImageRef, Scope};
use pullguard_plugin::tuf::fetch::MetadataSource;
use pullguard_plugin::tuf::names::RoleName;
use pullguard_plugin::tuf::{Limits, Updater};

/// At most this many images of one bundle are verified (each is a TUF refresh).
const IMAGES_MAX: usize = 4;

fuzz_target!(|data: &[u8]| {
    let Ok(bundle) = Bundle::from_slice(data) else {
        return;
    };
    let written = bundle.to_vec().expect("a bundle encodes");
    assert_eq!(
        Bundle::from_slice(&written).as_ref(),
        Ok(&bundle),
        "a bundle changed when written back"
    );
    for (role, version) in [
        ("root", Some(1)),
        ("timestamp", None),
        ("snapshot", Some(1)),
    ] {
        let role = RoleName::new(role).unwrap_or_else(|_| RoleName::targets());
        if let Ok(bytes) = bundle.fetch_metadata(&role, version, 4096) {
            assert!(bytes.len() <= 4096);
        }
    }

    // bundle import / a bundle:// scope: the bundle must be for the configured scope.
    let scope: Scope = SCOPE.parse().expect("the fixed scope");
    if bundle.scope.parse::<Scope>().ok().as_ref() != Some(&scope) {
        return;
    }
    let repo = Repo::get();
    let mut store = MemStore::with_root(repo.initial_root());
    let requires = [Require::Both, Require::Signature, Require::Targets];
    for (i, listed) in bundle.images.iter().take(IMAGES_MAX).enumerate() {
        let Ok(image) = listed.reference.parse::<ImageRef>() else {
            continue;
        };
        let Ok(pinned) = bundle.pin(&image) else {
            continue;
        };
        let require = requires[i % requires.len()];
        let mut updater = Updater::new(&bundle, store, Limits::default());
        let checked = verify_image(&mut updater, &bundle, &scope, &pinned, require, now());
        store = updater.into_store();
        if !checked.verdict.admitted {
            continue;
        }
        assert!(scope.contains(&pinned), "admitted outside the scope");
        let path = scope
            .target_path(&pinned)
            .expect("an admitted image has a target path");
        assert_eq!(checked.target_path, path);
        let digest = pinned.digest().expect("pinned");
        if require != Require::Signature {
            let mut u = Updater::new(&bundle, store.clone(), Limits::default());
            u.refresh(now())
                .expect("admitted on metadata that refreshes");
            let info = u
                .target_info(&path)
                .expect("lookup")
                .expect("admitted on a listed target");
            assert_eq!(
                info.file.hashes.get("sha256").map(String::as_str),
                digest.sha256_hex()
            );
        }
        if require != Require::Targets {
            let version = checked.signature_version.expect("a signature version");
            assert_eq!(store.signature_versions.get(&path), Some(&version));
        }
    }
});
