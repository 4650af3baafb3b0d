//! The typed metadata documents (`tuf::schema`): `Envelope::<T>::from_slice` for root,
//! timestamp, snapshot, targets and pullguard's detached signature document, then what the
//! trust core reads from a parsed document (roles, pins, delegations, hash bins).
//!
//! Properties: the bytes a signature covers are the canonical form of the raw `signed`
//! value; a parsed document written back by serde parses again to the same document (so
//! nothing read is lost or reinterpreted); every hash bin a succinct delegation names for a
//! path is one of its bins.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pullguard_plugin::tuf::cjson::{parse_unique, to_canonical};
use pullguard_plugin::tuf::schema::{
    Document, Envelope, Root, SignatureDoc, Snapshot, Targets, Timestamp, TOP_LEVEL_ROLES,
};
use serde::Serialize;
use std::fmt::Debug;

fn round_trip<T: Document + Serialize + PartialEq + Debug>(data: &[u8]) -> Option<Envelope<T>> {
    let env = Envelope::<T>::from_slice(data).ok()?;
    let raw = parse_unique(data).expect("a parsed document is JSON");
    let canonical = to_canonical(&raw["signed"]).expect("a parsed document is canonical");
    assert_eq!(
        env.canonical, canonical,
        "signatures cover the raw signed value"
    );
    assert_eq!(env.signed.type_field(), T::TYPE);
    let written = serde_json::to_vec(&serde_json::json!({
        "signed": serde_json::to_value(&env.signed).expect("serialises"),
        "signatures": env.signatures,
    }))
    .expect("serialises");
    let again = Envelope::<T>::from_slice(&written)
        .unwrap_or_else(|e| panic!("a parsed {} does not parse once written back: {e}", T::TYPE));
    assert_eq!(
        again.signed, env.signed,
        "written back, the document changed"
    );
    assert_eq!(again.signatures, env.signatures);
    Some(env)
}

fuzz_target!(|data: &[u8]| {
    if let Some(root) = round_trip::<Root>(data) {
        for name in TOP_LEVEL_ROLES {
            let role = root.signed.role(name);
            assert!(role.threshold.get() >= 1);
        }
    }
    if let Some(ts) = round_trip::<Timestamp>(data) {
        let _ = ts.signed.snapshot_meta().version;
    }
    let _ = round_trip::<Snapshot>(data);
    let _ = round_trip::<SignatureDoc>(data);
    if let Some(targets) = round_trip::<Targets>(data) {
        let Some(delegations) = &targets.signed.delegations else {
            return;
        };
        // Paths worth asking about: the listed targets and the delegations' own patterns.
        let mut paths: Vec<&str> = targets.signed.targets.keys().map(String::as_str).collect();
        paths.push("app:1");
        if let Some(roles) = &delegations.roles {
            for role in roles {
                paths.extend(role.paths.iter().flatten().map(String::as_str));
            }
            for role in roles {
                for path in &paths {
                    let _ = role.covers(path);
                }
            }
        }
        if let Some(succinct) = &delegations.succinct_roles {
            for path in &paths {
                let bin = succinct.role_for(path);
                assert!(succinct.is_bin(&bin), "{bin} is not one of the bins");
            }
        }
    }
});
