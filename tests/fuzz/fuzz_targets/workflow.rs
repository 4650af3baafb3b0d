//! The whole TUF client workflow (`tuf::client::Updater` over `tuf::trusted::TrustedSet`,
//! TUF §5): the root chain, timestamp, snapshot, top-level targets, then a target lookup
//! through a delegation and hash bins, and fetching the target; optionally a second refresh
//! from the state the first one left.
//!
//! The source serves a fixed valid repository (`pullguard_fuzz::repo`) except where the
//! input replaces a file. Input: a 4-byte header, then records `slot, mode, u16 length,
//! bytes` (later records of a slot win).
//!   header 0  flags: 1 refresh a second time from the stored state, 2 serve the fixed root
//!             rotations (v2, v3), 4 ask for the responsible role too, 8 start from a
//!             store that already holds the fixed timestamp, snapshot and targets
//!   header 1  the clock: hours after 2030-01-01
//!   header 2  which fixed path to look up
//!   header 3  the second refresh's clock: hours from the first's, minus 128
//!   slots     0 root v2, 1 root v3, 2 timestamp, 3 snapshot, 4 targets, 5 team,
//!             6 team-bin-0, 7 team-bin-1, 8 stored timestamp, 9 stored snapshot,
//!             10 stored targets, 11 the looked-up target's content, 12 a path to look up
//!   mode      bits 0-1: 0 the bytes as they are, 1 the bytes are the `signed` JSON and the
//!             harness signs it with the role's keys, 2 a fetch error, 3 signed JSON
//!             signed by a key the role does not trust; bits 2-3: which of the role's
//!             keys sign (first, second, both, none) or which error (not found, too
//!             large, unreachable, HTTP 503); bit 4: the document that pins this one
//!             (snapshot, timestamp) is re-signed pinning its exact version, length and
//!             sha256, so that fuzzed documents get past the pins.
//!
//! An input whose served documents do not all parse stops after parsing them (the client's
//! first step with each): it would only repeat signature checks of the fixed documents
//! before failing where the parse fails.
//!
//! Properties (TUF §5): after a successful refresh the root, timestamp, snapshot and
//! targets in use are unexpired, the snapshot is the version the timestamp pins and the
//! targets the version the snapshot pins, the stored root is the trusted one; a target
//! found is what its role lists, and fetched bytes have the listed length and hash; a
//! second refresh from the stored state never goes back to older versions.
#![no_main]

use std::collections::BTreeMap;

use chrono::Duration;
use libfuzzer_sys::fuzz_target;
use pullguard_fuzz::input::Reader;
use pullguard_fuzz::keys::Signer;
use pullguard_fuzz::mem::{MemSource, MemStore, Served};
use pullguard_fuzz::now;
use pullguard_fuzz::repo::{sign, Repo, BINS, TEAM};
use pullguard_plugin::tuf::cjson::parse_unique;
use pullguard_plugin::tuf::fetch::FetchError;
use pullguard_plugin::tuf::names::RoleName;
use pullguard_plugin::tuf::schema::{Document, Envelope, Root, Snapshot, Targets, Timestamp};
use pullguard_plugin::tuf::state::TrustStore;
use pullguard_plugin::tuf::{Limits, TrustedSet, Updater};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const PATHS: [&str; 6] = [
    "app:1",
    "team/api:1",
    "team/web:1",
    "team/none:1",
    "other:1",
    "team/a/b:1",
];

/// Roles in the order they are built: each document before the one that pins it.
const BUILD_ORDER: [(&str, usize); 6] = [
    (BINS[0], 6),
    (BINS[1], 7),
    (TEAM, 5),
    ("targets", 4),
    ("snapshot", 3),
    ("timestamp", 2),
];

/// Whether `bytes` parse as the document of `slot` (the client's first step with them).
fn parses_as_slot(slot: u8, bytes: &[u8]) -> bool {
    match slot {
        0 | 1 => Envelope::<Root>::from_slice(bytes).is_ok(),
        2 => Envelope::<Timestamp>::from_slice(bytes).is_ok(),
        3 => Envelope::<Snapshot>::from_slice(bytes).is_ok(),
        _ => Envelope::<Targets>::from_slice(bytes).is_ok(),
    }
}

/// A pin to write into the `meta` of the document above: file name, version, bytes.
type Pin = (String, u64, Vec<u8>);

/// What the source serves for a file, the bytes it is, and its `signed` JSON if known.
type Built = (Served, Vec<u8>, Option<Value>);

#[derive(Clone, Copy)]
struct Piece<'a> {
    mode: u8,
    bytes: &'a [u8],
}

fn fetch_error(mode: u8, what: &str) -> FetchError {
    let location = format!("memory: {what}");
    match (mode >> 2) & 3 {
        0 => FetchError::NotFound { location },
        1 => FetchError::TooLarge {
            location,
            limit: 16,
        },
        2 => FetchError::Unreachable {
            location,
            reason: "fuzzed".into(),
        },
        _ => FetchError::Status {
            location,
            status: 503,
        },
    }
}

/// The keys a piece is signed with.
fn keys_for<'r>(repo: &'r Repo, role: &str, mode: u8) -> Vec<&'r Signer> {
    if mode & 3 == 3 {
        return vec![repo.stranger_to(role)];
    }
    let [first, second] = repo.signers_of(role);
    match (mode >> 2) & 3 {
        0 => vec![first],
        1 => vec![second],
        2 if first.id != second.id => vec![first, second],
        2 => vec![first],
        _ => Vec::new(),
    }
}

/// A document's version as its `signed` part says, if it says one.
fn version_of(signed: Option<&Value>, bytes: &[u8]) -> u64 {
    signed
        .and_then(|s| s.get("version").and_then(Value::as_u64))
        .or_else(|| {
            parse_unique(bytes)
                .ok()
                .and_then(|v| v.pointer("/signed/version").and_then(Value::as_u64))
        })
        .unwrap_or(1)
}

/// What the source serves for a role, and the bytes it is (for pins).
fn document(repo: &Repo, role: &str, piece: Option<Piece<'_>>, pins: &[Pin]) -> Option<Built> {
    let (mut signed, keys) = match piece {
        None if pins.is_empty() => {
            let bytes = repo.files.get(role)?.clone();
            return Some((
                Served::Bytes(bytes.clone()),
                bytes,
                repo.signed.get(role).cloned(),
            ));
        }
        None => {
            // A fixed document re-signed for new pins: both keys, whichever root is in use.
            let [first, second] = repo.signers_of(role);
            let keys = if first.id == second.id {
                vec![first]
            } else {
                vec![first, second]
            };
            (repo.signed.get(role)?.clone(), keys)
        }
        Some(p) if p.mode & 3 == 2 => {
            return Some((Served::Error(fetch_error(p.mode, role)), Vec::new(), None));
        }
        Some(p) if p.mode & 3 == 0 => {
            return Some((Served::Bytes(p.bytes.to_vec()), p.bytes.to_vec(), None));
        }
        Some(p) => match serde_json::from_slice::<Value>(p.bytes) {
            Ok(v) if v.is_object() => (v, keys_for(repo, role, p.mode)),
            _ => return Some((Served::Bytes(p.bytes.to_vec()), p.bytes.to_vec(), None)),
        },
    };
    // (`signed` is an object; its `meta` is pinned into only if it is one, or absent.)
    if !pins.is_empty() && signed.get("meta").is_none_or(Value::is_object) {
        for (file, version, bytes) in pins {
            signed["meta"][file] = json!({"version": version, "length": bytes.len(),
                                          "hashes": {"sha256": hex::encode(Sha256::digest(bytes))}});
        }
    }
    let bytes = sign(&signed, &keys);
    Some((Served::Bytes(bytes.clone()), bytes, Some(signed)))
}

fn store_piece(repo: &Repo, store: &mut MemStore, role: &str, piece: Piece<'_>) {
    let bytes = match piece.mode & 3 {
        1 | 3 => match serde_json::from_slice::<Value>(piece.bytes) {
            Ok(v) if v.is_object() => sign(&v, &keys_for(repo, role, piece.mode)),
            _ => piece.bytes.to_vec(),
        },
        _ => piece.bytes.to_vec(),
    };
    let version = version_of(None, &bytes);
    let _ = store.put(
        &RoleName::new(role).unwrap_or_else(|_| RoleName::targets()),
        version,
        &bytes,
    );
}

fn check_refreshed(trusted: &TrustedSet, store: &MemStore) {
    let now = trusted.now();
    let root = &trusted.root().signed;
    assert!(
        !root.expires.is_expired(now),
        "refreshed on an expired root"
    );
    assert_eq!(
        store.version(&RoleName::root()).ok().flatten(),
        Some(root.version.get()),
        "the trusted root is not the stored one"
    );
    let ts = trusted.timestamp().expect("a refresh trusts a timestamp");
    assert!(
        !ts.signed.expires().is_expired(now),
        "expired timestamp in use"
    );
    let snapshot = trusted.snapshot().expect("a refresh trusts a snapshot");
    assert_eq!(snapshot.signed.version, ts.signed.snapshot_meta().version);
    assert!(
        !snapshot.signed.expires.is_expired(now),
        "expired snapshot in use"
    );
    let targets = trusted
        .targets(&RoleName::targets())
        .expect("a refresh loads top-level targets");
    assert_eq!(
        Some(targets.signed.version),
        snapshot.signed.meta.get("targets.json").map(|m| m.version)
    );
    assert!(
        !targets.signed.expires.is_expired(now),
        "expired targets in use"
    );
}

struct Versions([u64; 3]);

fn versions(t: &TrustedSet) -> Versions {
    Versions([
        t.root().signed.version.get(),
        t.timestamp().map_or(0, |t| t.signed.version.get()),
        t.snapshot().map_or(0, |s| s.signed.version.get()),
    ])
}

fn look_up(updater: &mut Updater<MemSource, MemStore>, path: &str, responsible: bool) {
    if let Ok(Some(info)) = updater.target_info(path) {
        assert_eq!(info.path, path);
        let trusted = updater.trusted().expect("still refreshed");
        let role = trusted
            .targets(&info.role)
            .expect("the listing role is loaded");
        assert_eq!(
            role.signed.targets.get(path),
            Some(&info.file),
            "not what the role lists"
        );
        let pinned = trusted
            .snapshot()
            .and_then(|s| s.signed.meta.get(&info.role.meta_key()))
            .map(|m| m.version);
        assert_eq!(
            pinned,
            Some(role.signed.version),
            "{} is not the pinned version",
            info.role
        );
        assert!(!role.signed.expires.is_expired(trusted.now()));
        if let Ok(bytes) = updater.fetch_target(&info) {
            assert_eq!(bytes.len() as u64, info.file.length);
            if let Some(h) = info.file.hashes.get("sha256") {
                assert!(hex::encode(Sha256::digest(&bytes)).eq_ignore_ascii_case(h));
            }
        }
    }
    if responsible {
        let _ = updater.responsible_role(path);
    }
}

fuzz_target!(|data: &[u8]| {
    let repo = Repo::get();
    let mut input = Reader::new(data);
    let flags = input.byte();
    let now = now() + Duration::hours(i64::from(input.byte()));
    let fixed_path = PATHS[usize::from(input.byte()) % PATHS.len()];
    let later = now + Duration::hours(i64::from(input.byte()) - 128);
    let mut pieces: BTreeMap<u8, Piece<'_>> = BTreeMap::new();
    while !input.is_empty() {
        let slot = input.byte() % 13;
        let mode = input.byte();
        pieces.insert(
            slot,
            Piece {
                mode,
                bytes: input.piece(),
            },
        );
    }

    let mut source = MemSource::default();
    // Pins to rewrite, by the role that pins: (file in its meta, version, bytes).
    let mut pins: BTreeMap<&str, Vec<Pin>> = BTreeMap::new();
    for (role, slot) in BUILD_ORDER {
        let piece = pieces.get(&(slot as u8)).copied();
        let Some((served, bytes, signed)) = document(
            repo,
            role,
            piece,
            pins.get(role).map_or(&[][..], Vec::as_slice),
        ) else {
            continue;
        };
        if piece.is_some_and(|p| p.mode & 0x10 != 0) {
            let (pinner, file) = if role == "snapshot" {
                ("timestamp", "snapshot.json".to_string())
            } else {
                ("snapshot", format!("{role}.json"))
            };
            let version = version_of(signed.as_ref(), &bytes);
            pins.entry(pinner).or_default().push((file, version, bytes));
        }
        // Fail fast: a served document that does not even parse ends the refresh (or the
        // lookup) there, after signature checks of everything before it that tell nothing
        // new; its parse is the client's, so that path stays covered. (Stored documents are
        // not checked: an unusable local copy is skipped, and the refresh goes on.)
        if let (Some(_), Served::Bytes(b)) = (piece, &served) {
            if !parses_as_slot(slot as u8, b) {
                return;
            }
        }
        source.roles.insert(role.to_string(), served);
    }
    for (i, slot) in [0u8, 1].into_iter().enumerate() {
        let version = i as u64 + 2;
        match pieces.get(&slot) {
            Some(p) => {
                if let Some((served, _, _)) = document_root(repo, *p) {
                    if let Served::Bytes(b) = &served {
                        if !parses_as_slot(slot, b) {
                            return;
                        }
                    }
                    source.roots.insert(version, served);
                }
            }
            None if flags & 2 != 0 => {
                source
                    .roots
                    .insert(version, Served::Bytes(repo.rotations[i].1.clone()));
            }
            None => {}
        }
    }
    let mut store = MemStore::with_root(repo.initial_root());
    if flags & 8 != 0 {
        for role in ["timestamp", "snapshot", "targets"] {
            let _ = store.put(
                &RoleName::new(role).unwrap_or_else(|_| RoleName::targets()),
                1,
                &repo.files[role],
            );
        }
    }
    for (slot, role) in [(8u8, "timestamp"), (9, "snapshot"), (10, "targets")] {
        if let Some(p) = pieces.get(&slot) {
            store_piece(repo, &mut store, role, *p);
        }
    }
    for image in &repo.images {
        source
            .targets
            .insert(image.target_path.clone(), image.manifest.clone());
    }
    let piece_path = pieces
        .get(&12)
        .and_then(|p| std::str::from_utf8(p.bytes).ok())
        .map(str::to_string);
    if let Some(content) = pieces.get(&11) {
        let path = piece_path.clone().unwrap_or_else(|| fixed_path.to_string());
        source.targets.insert(path, content.bytes.to_vec());
    }

    let limits = Limits::default();
    let mut updater = Updater::new(source.clone(), store, limits);
    if updater.refresh(now).is_err() {
        return;
    }
    let first = {
        let trusted = updater.trusted().expect("refreshed");
        check_refreshed(trusted, updater.store());
        versions(trusted)
    };
    look_up(&mut updater, fixed_path, flags & 4 != 0);
    if let Some(path) = &piece_path {
        look_up(&mut updater, path, flags & 4 != 0);
    }
    if flags & 1 == 0 {
        return;
    }
    let mut again = Updater::new(source, updater.into_store(), limits);
    if again.refresh(later).is_ok() {
        let trusted = again.trusted().expect("refreshed");
        check_refreshed(trusted, again.store());
        let second = versions(trusted);
        for (i, what) in ["root", "timestamp", "snapshot"].iter().enumerate() {
            assert!(
                second.0[i] >= first.0[i],
                "{what} went back from version {} to {}",
                first.0[i],
                second.0[i]
            );
        }
        look_up(&mut again, fixed_path, false);
    }
});

/// What the source serves for a root version piece.
fn document_root(repo: &Repo, piece: Piece<'_>) -> Option<Built> {
    document(repo, "root", Some(piece), &[])
}
