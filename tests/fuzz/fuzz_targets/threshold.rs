//! Threshold signature checks (`tuf::verify::check_threshold`) and what wraps them: the
//! trusted root's self-check (`TrustedSet::from_root`, TUF 5.2) and the detached signature
//! rules (`verify::judge`), over fuzzed envelopes and fixed keys of every supported type
//! (ed25519, ECDSA P-256 and P-384, RSA-PSS and PKCS#1 v1.5 under one key material, an
//! alias key ID for an ed25519 key; and keys that cannot be used).
//!
//! Input: an 8-byte header, then a JSON envelope.
//!   0      mode: 0 check_threshold, 1 TrustedSet::from_root, 2 verify::judge
//!   1..=2  which fixed keys the role lists (bit i: signer i; bits 8..=11: unusable keys)
//!   3..=4  which fixed signers add a valid signature over the document's canonical bytes
//!   5      threshold (1..=12)
//!   6      flags: 1 list the first key twice, 2 put the valid signatures first, 4 spoil
//!          the first valid signature, 8 add the document's own key table and root keys,
//!          16 the signature names no tag, 32 the targets mapping is required, 64 the
//!          digest is another one
//!   7      high-water signature version (judge)
//! Valid signatures are made by the harness (the fuzzer cannot forge them), so every
//! counting rule is reachable; RSA signatures of a message are cached.
//!
//! Properties: the threshold is met when enough distinct key materials signed, never when
//! fewer usable materials are listed than it asks; a threshold error counts at least the
//! materials the harness signed for and never more than the role lists; an admitted
//! signature is unexpired, not below the high-water mark, and by listed keys only.
#![no_main]

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroU64;

use libfuzzer_sys::fuzz_target;
use pullguard_fuzz::input::Reader;
use pullguard_fuzz::keys::{signers, unusable_keys, MISSING_KEY_ID};
use pullguard_fuzz::now;
use pullguard_plugin::registry::Digest;
use pullguard_plugin::tuf::cjson::{parse_unique, to_canonical};
use pullguard_plugin::tuf::keys::PublicKey;
use pullguard_plugin::tuf::names::RoleName;
use pullguard_plugin::tuf::schema::{Envelope, Key, Signature, SignatureDoc};
use pullguard_plugin::tuf::verify::{check_threshold, RoleSpec};
use pullguard_plugin::tuf::TrustedSet;
use pullguard_plugin::verdict::ReasonCode;
use pullguard_plugin::verify::{judge, Claim, Evidence, Unreadable};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let mut input = Reader::new(data);
    let mode = input.byte() % 3;
    let listed = input.u16();
    let signing = input.u16();
    let threshold = NonZeroU64::new(u64::from(input.byte() % 12) + 1).unwrap_or(NonZeroU64::MIN);
    let flags = input.byte();
    let high_water = u64::from(input.byte() % 4);
    let Ok(mut envelope) = parse_unique(input.rest()) else {
        return;
    };
    let Some(signed) = envelope.get("signed").filter(|s| s.is_object()) else {
        return;
    };
    let Ok(canonical) = to_canonical(signed) else {
        return;
    };

    // The key table: every fixed key, the unusable ones, and (flag 8) the document's own.
    let mut keys: BTreeMap<String, Key> = signers()
        .iter()
        .map(|s| (s.id.clone(), s.key.clone()))
        .chain(unusable_keys().iter().cloned())
        .collect();
    let mut keyids: Vec<String> = Vec::new();
    for (i, s) in signers().iter().enumerate() {
        if listed & (1 << i) != 0 {
            keyids.push(s.id.clone());
        }
    }
    for (i, (id, _)) in unusable_keys().iter().enumerate() {
        if listed & (1 << (8 + i)) != 0 {
            keyids.push(id.clone());
        }
    }
    if listed & (1 << 11) != 0 {
        keyids.push(MISSING_KEY_ID.into());
    }
    if flags & 1 != 0 {
        if let Some(first) = keyids.first().cloned() {
            keyids.push(first);
        }
    }
    if flags & 8 != 0 {
        if let Some(theirs) = signed.get("keys").cloned() {
            if let Ok(theirs) = serde_json::from_value::<BTreeMap<String, Key>>(theirs) {
                keys.extend(theirs);
            }
        }
        if let Some(ids) = signed
            .pointer("/roles/root/keyids")
            .and_then(Value::as_array)
        {
            keyids.extend(ids.iter().filter_map(Value::as_str).map(str::to_string));
        }
    }

    // The signatures: the document's own, and the valid ones the harness makes.
    let mut signatures: Vec<Signature> = envelope
        .get("signatures")
        .cloned()
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default();
    let mut valid: Vec<Signature> = Vec::new();
    let mut signed_by: Vec<usize> = Vec::new();
    for (i, s) in signers().iter().enumerate() {
        if signing & (1 << i) != 0 {
            valid.push(Signature {
                keyid: s.id.clone(),
                sig: s.sign(&canonical),
                extra: Default::default(),
            });
            signed_by.push(i);
        }
    }
    if flags & 4 != 0 {
        if let Some(first) = valid.first_mut() {
            // One hex digit changed: a signature that no longer verifies.
            let flipped = if first.sig.starts_with('0') { "1" } else { "0" };
            first.sig.replace_range(0..1.min(first.sig.len()), flipped);
            signed_by.remove(0);
        }
    }
    if flags & 2 != 0 {
        valid.extend(signatures);
        signatures = valid;
    } else {
        signatures.extend(valid);
    }

    match mode {
        0 => {
            let spec = RoleSpec {
                name: "root",
                keyids: &keyids,
                threshold,
                keys: &keys,
            };
            check_counts(&spec, &canonical, &signatures, &signed_by);
        }
        1 => {
            envelope["signatures"] = serde_json::to_value(&signatures).unwrap_or_default();
            let bytes = serde_json::to_vec(&envelope).unwrap_or_default();
            if let Ok(trusted) = TrustedSet::from_root(&bytes, now()) {
                let root = &trusted.root().signed;
                let spec = RoleSpec {
                    name: "root",
                    keyids: &root.role("root").keyids,
                    threshold: root.role("root").threshold,
                    keys: &root.keys,
                };
                assert!(check_threshold(&spec, &canonical, &signatures).is_ok());
                let _ = trusted.check_root_fresh();
                let _ = trusted.valid_until();
            }
        }
        _ => {
            envelope["signatures"] = serde_json::to_value(&signatures).unwrap_or_default();
            let bytes = serde_json::to_vec(&envelope).unwrap_or_default();
            judge_signature(&bytes, &keyids, &keys, threshold, flags, high_water);
        }
    }
});

/// Distinct usable key materials among `ids`.
fn materials(ids: &[String], keys: &BTreeMap<String, Key>) -> BTreeSet<Vec<u8>> {
    ids.iter()
        .filter_map(|id| keys.get(id))
        .filter_map(|k| PublicKey::from_metadata(k).ok())
        .map(|p| p.material().to_vec())
        .collect()
}

fn check_counts(
    spec: &RoleSpec<'_>,
    canonical: &[u8],
    signatures: &[Signature],
    signed_by: &[usize],
) {
    let result = check_threshold(spec, canonical, signatures);
    let usable = materials(spec.keyids, spec.keys).len() as u64;
    // Materials of listed keys for which the harness made a valid signature.
    let listed: BTreeSet<&String> = spec.keyids.iter().collect();
    let signed_ids: Vec<String> = signed_by
        .iter()
        .map(|&i| signers()[i].id.clone())
        .filter(|id| listed.contains(id) && spec.keys.get(id).is_some())
        .collect();
    // Only ids whose table entry is still the fixed key (the document may redefine one).
    let signed_ids: Vec<String> = signed_ids
        .into_iter()
        .filter(|id| {
            signers()
                .iter()
                .any(|s| &s.id == id && spec.keys.get(id) == Some(&s.key))
        })
        .collect();
    let at_least = materials(&signed_ids, spec.keys).len() as u64;
    let threshold = spec.threshold.get();
    match result {
        Ok(()) => assert!(
            usable >= threshold,
            "met with {usable} usable keys of {threshold}"
        ),
        Err(e) => {
            assert_eq!(e.threshold, threshold);
            assert!(e.valid < threshold);
            assert!(e.valid <= usable, "{} valid of {usable} usable", e.valid);
            assert!(
                e.valid >= at_least,
                "{} valid, but {at_least} listed materials signed",
                e.valid
            );
        }
    }
}

fn judge_signature(
    bytes: &[u8],
    keyids: &[String],
    keys: &BTreeMap<String, Key>,
    threshold: NonZeroU64,
    flags: u8,
    high_water: u64,
) {
    let fallback: Digest = format!("sha256:{}", "ab".repeat(32))
        .parse()
        .unwrap_or_else(|_| Digest::sha256_of(b""));
    // What the claim is about: what the document says, so that an admission is reachable.
    let doc = Envelope::<SignatureDoc>::from_slice(bytes).ok();
    let repo = doc.as_ref().map_or("app", |d| d.signed.repository.as_str());
    let tag = match (&doc, flags & 16 != 0) {
        (_, true) => None,
        (Some(d), false) => d.signed.tags.first().map(String::as_str),
        (None, false) => Some("1"),
    };
    let digest = match (&doc, flags & 64 != 0) {
        (Some(d), false) => d.signed.subject.digest.parse().unwrap_or(fallback),
        _ => fallback,
    };
    let size = doc.as_ref().map_or(0, |d| d.signed.subject.size);
    let path = match tag {
        Some(t) => format!("{repo}:{t}"),
        None => format!("{repo}@{digest}"),
    };
    let sha256 = digest.sha256_hex().unwrap_or_default().to_string();
    let spec = RoleSpec {
        name: "targets",
        keyids,
        threshold,
        keys,
    };
    let role = RoleName::targets();
    let evidence = Evidence {
        role: &role,
        spec: &spec,
        listed: (flags & 32 != 0).then_some((size, sha256.as_str())),
        high_water,
    };
    let image = format!("127.0.0.1:5000/acme/{path}");
    let claim = Claim {
        repo,
        tag,
        path: &path,
        digest: &digest,
        image: &image,
    };
    let docs = vec![
        Ok(bytes.to_vec()),
        Err(Unreadable::new(
            ReasonCode::Unavailable,
            "one referrer did not answer",
        )),
    ];
    if let Ok(accepted) = judge(&claim, &evidence, docs, now()) {
        assert!(
            accepted.version >= high_water,
            "a signature below the high-water mark"
        );
        assert!(accepted.expires > now(), "an expired signature admitted");
        assert!(
            accepted.key_ids.iter().all(|k| keyids.contains(k)),
            "admitted on keys the role does not list"
        );
    }
}
