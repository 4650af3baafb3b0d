//! Trust-core benchmarks (DESIGN §8): signature checks per key type and backend, a 10,000
//! target role, a full refresh from a local directory, and a RocksDB trusted-state read.
//!
//! Run with `cargo bench --bench trust_core`.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::num::NonZeroU64;
use std::sync::Arc;

use chrono::{Duration, Utc};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use pullguard_cache::Store;
use pullguard_node::rocks::RocksTrustStore;
use pullguard_plugin::source::dir::DirSource;
use pullguard_plugin::store::dir::DirStore;
use pullguard_plugin::tuf::keys::PublicKey;
use pullguard_plugin::tuf::schema::{Envelope, Key, KeyVal, Targets, Timestamp};
use pullguard_plugin::tuf::signing::{sign_document, SigningKey};
use pullguard_plugin::tuf::state::TrustStore;
use pullguard_plugin::tuf::testing::RepoBuilder;
use pullguard_plugin::tuf::verify::{check_threshold, RoleSpec};
use pullguard_plugin::tuf::{Limits, RoleName, Updater};
use serde_json::{json, Value};
use sha2::Digest as _;

fn timestamp_doc() -> Value {
    json!({"_type": "timestamp", "spec_version": "1.0.31", "version": 7,
           "expires": (Utc::now() + Duration::days(1)).format("%Y-%m-%dT%H:%M:%SZ").to_string(),
           "meta": {"snapshot.json": {"version": 7, "length": 1234,
                     "hashes": {"sha256": "5b0b6a25c6a3fe5ad7d6cba3e7bb3ee8a8ea1fe1dd1ea4f0ad2dbd3c4d5e6f70"}}}})
}

/// A signed RSA-PSS (SHA-256, salt = digest length) document and its public key.
fn rsa_signed(signed: &Value) -> (Vec<u8>, Key) {
    use rsa::pkcs8::{EncodePublicKey, LineEnding};
    use rsa::signature::{RandomizedSigner, SignatureEncoding};
    let mut rng = rand_core::OsRng;
    let private = rsa::RsaPrivateKey::new(&mut rng, 2048).expect("rsa key");
    let public_pem = private
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .expect("pem");
    let key = Key {
        keytype: "rsa".into(),
        scheme: "rsassa-pss-sha256".into(),
        keyval: KeyVal {
            public: Some(public_pem),
            extra: Default::default(),
        },
        extra: Default::default(),
    };
    let canonical = pullguard_plugin::tuf::cjson::to_canonical(signed).expect("canonical");
    let signer = rsa::pss::BlindedSigningKey::<sha2::Sha256>::new(private);
    let sig = signer.sign_with_rng(&mut rng, &canonical).to_vec();
    let envelope =
        json!({"signed": signed, "signatures": [{"keyid": "rsa", "sig": hex::encode(sig)}]});
    (serde_json::to_vec(&envelope).expect("json"), key)
}

fn verify_document(c: &mut Criterion) {
    let signed = timestamp_doc();
    // (name, signed document, key table, key ID)
    type Case = (&'static str, Vec<u8>, BTreeMap<String, Key>, String);
    let mut cases: Vec<Case> = Vec::new();
    for (name, key) in [
        ("ed25519", SigningKey::generate_ed25519().expect("ed25519")),
        (
            "ecdsa-p256",
            SigningKey::generate_ecdsa_p256().expect("ecdsa"),
        ),
    ] {
        let bytes = sign_document(&signed, &[&key]).expect("sign");
        let keys = BTreeMap::from([(key.key_id(), key.public())]);
        cases.push((name, bytes, keys, key.key_id()));
    }
    let (bytes, key) = rsa_signed(&signed);
    cases.push((
        "rsassa-pss-2048",
        bytes,
        BTreeMap::from([("rsa".to_string(), key)]),
        "rsa".into(),
    ));

    let mut group = c.benchmark_group("verify_signed_document");
    for (name, bytes, keys, keyid) in &cases {
        let keyids = vec![keyid.clone()];
        group.bench_function(*name, |b| {
            b.iter(|| {
                let env = Envelope::<Timestamp>::from_slice(black_box(bytes)).expect("parse");
                let spec = RoleSpec {
                    name: "timestamp",
                    keyids: &keyids,
                    threshold: NonZeroU64::MIN,
                    keys,
                };
                check_threshold(&spec, &env.canonical, &env.signatures).expect("valid");
            })
        });
    }
    group.finish();

    // Backends for ECDSA P-256, signature check only (key parsed once): ring vs RustCrypto.
    let key = SigningKey::generate_ecdsa_p256().expect("ecdsa");
    let message = b"canonical bytes of a signed document".repeat(8);
    let sig_hex = key.sign(&message).expect("sign");
    let public = PublicKey::from_metadata(&key.public()).expect("public");
    let mut group = c.benchmark_group("ecdsa_p256_backend");
    group.bench_function("ring", |b| {
        b.iter(|| assert!(public.verify(black_box(&message), &sig_hex)))
    });
    let pem = key.public().keyval.public.expect("pem");
    let vk = {
        use p256::pkcs8::DecodePublicKey;
        p256::ecdsa::VerifyingKey::from_public_key_pem(&pem).expect("p256 key")
    };
    let sig_der = hex::decode(&sig_hex).expect("hex");
    group.bench_function("p256_rustcrypto", |b| {
        b.iter(|| {
            use p256::ecdsa::signature::Verifier;
            let sig = p256::ecdsa::DerSignature::from_bytes(black_box(&sig_der)).expect("der");
            assert!(vk.verify(black_box(&message), &sig).is_ok())
        })
    });
    group.finish();
}

fn targets_10k(c: &mut Criterion) {
    let key = SigningKey::generate_ed25519().expect("ed25519");
    let targets: serde_json::Map<String, Value> = (0..10_000)
        .map(|i| {
            (
                format!("team/app-{i}:1.{i}"),
                json!({"length": 1000 + i, "hashes": {"sha256": format!("{:064x}", i)},
                       "custom": {"mediaType": "application/vnd.oci.image.index.v1+json"}}),
            )
        })
        .collect();
    let signed = json!({"_type": "targets", "spec_version": "1.0.31", "version": 3,
                        "expires": "2030-01-01T00:00:00Z", "targets": targets});
    let bytes = sign_document(&signed, &[&key]).expect("sign");
    let keys = BTreeMap::from([(key.key_id(), key.public())]);
    let keyids = vec![key.key_id()];
    let mut group = c.benchmark_group("targets_10k");
    group.sample_size(20);
    // The floor DESIGN §8 measures a refresh against: parsing that much JSON into a value,
    // plus hashing it.
    group.bench_function(
        format!(
            "floor: serde_json parse + sha256 ({} KiB)",
            bytes.len() / 1024
        ),
        |b| {
            b.iter(|| {
                let v: Value = serde_json::from_slice(black_box(&bytes)).expect("json");
                let digest = sha2::Sha256::digest(black_box(&bytes));
                (v.is_object(), digest[0])
            })
        },
    );
    group.bench_function(
        format!("parse_canonicalise_verify ({} KiB)", bytes.len() / 1024),
        |b| {
            b.iter(|| {
                let env = Envelope::<Targets>::from_slice(black_box(&bytes)).expect("parse");
                let spec = RoleSpec {
                    name: "targets",
                    keyids: &keyids,
                    threshold: NonZeroU64::MIN,
                    keys: &keys,
                };
                check_threshold(&spec, &env.canonical, &env.signatures).expect("valid");
                env.signed.targets.len()
            })
        },
    );
    group.finish();
}

fn refresh_from_dir(c: &mut Criterion) {
    let mut group = c.benchmark_group("refresh_local_dir");
    group.sample_size(20);
    for n in [1usize, 1_000, 10_000] {
        let repo_dir = tempfile::tempdir().expect("tempdir");
        let mut repo = RepoBuilder::new(repo_dir.path());
        for i in 0..n {
            repo.add_target(
                &format!("team/app-{i}:1.0"),
                format!("manifest {i}").as_bytes(),
            );
        }
        repo.publish_all();
        let root = repo.initial_root();
        group.bench_function(format!("{n}_targets_refresh_and_lookup"), |b| {
            b.iter_batched(
                || {
                    let state = tempfile::tempdir().expect("tempdir");
                    let mut store = DirStore::open(state.path()).expect("store");
                    store.persist(&RoleName::root(), 1, &root).expect("root");
                    (state, store)
                },
                |(state, store)| {
                    let source = DirSource::new(repo.metadata_dir(), repo.targets_dir());
                    let mut updater = Updater::new(source, store, Limits::default());
                    updater.refresh(Utc::now()).expect("refresh");
                    let info = updater
                        .target_info(&format!("team/app-{}:1.0", n / 2))
                        .expect("lookup");
                    assert!(info.is_some());
                    // Returned, so criterion drops (deletes) it outside the measurement.
                    (state, updater)
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

fn rocksdb_read(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Arc::new(Store::open(dir.path()).expect("open"));
    let mut store = RocksTrustStore::new(db, "127.0.0.1:5000/library");
    let doc = sign_document(
        &timestamp_doc(),
        &[&SigningKey::generate_ed25519().expect("ed25519")],
    )
    .expect("sign");
    store
        .persist(&RoleName::timestamp(), 7, &doc)
        .expect("persist");
    let role = RoleName::timestamp();
    c.bench_function("rocksdb_trusted_state_read (timestamp, warm)", |b| {
        b.iter(|| black_box(store.load(black_box(&role)).expect("load")))
    });
}

criterion_group!(
    benches,
    verify_document,
    targets_10k,
    refresh_from_dir,
    rocksdb_read
);
criterion_main!(benches);
