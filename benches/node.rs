//! The node's verifier in process (issue 8, DESIGN §8): a verdict-cache hit, and a cold
//! verification with fresh metadata (a new trusted state: refresh, target lookup,
//! signature check, state and verdict written). The scope's metadata and signatures come
//! from an offline bundle written by the publisher's own code, so nothing here waits on a
//! network; the registry path is measured by the load test over the daemon's socket.
//!
//! Run with `cargo bench --bench node`.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use chrono::Utc;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use pullguard_cache::Store;
use pullguard_node::Node;
use pullguard_plugin::bundle::{Bundle, BundledImage};
use pullguard_plugin::config::Config;
use pullguard_plugin::publish::repo::{Expiries, Retention, RoleKeys, Workspace};
use pullguard_plugin::registry::oci::{Descriptor, MEDIA_TYPE_IMAGE_MANIFEST};
use pullguard_plugin::tuf::names::RoleName;
use pullguard_plugin::tuf::signing::SigningKey;

const SCOPE: &str = "127.0.0.1:5000/acme";

/// A scope with `images` signed tags (`app:0` …), as a bundle and a node config using it.
/// Returns the config text and each image's (reference, digest).
fn scope_with(dir: &Path, images: usize) -> (String, Vec<(String, String)>) {
    let keys: Vec<SigningKey> = (1..=4)
        .map(|i| SigningKey::ed25519_from_seed([i; 32]))
        .collect();
    let signers: Vec<&SigningKey> = keys.iter().collect();
    let role = |k: &SigningKey| RoleKeys {
        keys: vec![k.public()],
        threshold: 1,
    };
    let now = Utc::now();
    let mut ws = Workspace::init(
        &dir.join("repo"),
        &SCOPE.parse().expect("scope"),
        None,
        [
            ("root", role(&keys[0])),
            ("targets", role(&keys[1])),
            ("snapshot", role(&keys[2])),
            ("timestamp", role(&keys[3])),
        ],
        Expiries::default(),
        Retention::default(),
        &signers,
        now,
    )
    .expect("init");
    let mut bundle = Bundle::new(SCOPE);
    let mut refs = Vec::new();
    for i in 0..images {
        let subject = Descriptor::new(
            MEDIA_TYPE_IMAGE_MANIFEST,
            format!("manifest {i}").as_bytes(),
        );
        let hex = subject.digest.sha256_hex().expect("sha256").to_string();
        let tag = i.to_string();
        ws.set_target(
            &RoleName::targets(),
            &format!("app:{tag}"),
            subject.size,
            &hex,
            &subject.media_type,
            1,
            &signers,
            now,
        )
        .expect("target");
        let doc = ws
            .signature_document("app", &[&tag], &subject, 1, &[&keys[1]], now)
            .expect("signature");
        let reference = format!("{SCOPE}/app:{tag}");
        bundle.images.push(BundledImage {
            reference: reference.clone(),
            digest: subject.digest.clone(),
            repository: "acme/app".into(),
            signatures: vec![String::from_utf8(doc).expect("utf-8")],
        });
        refs.push((reference, subject.digest.to_string()));
    }
    ws.snapshot(&signers, now).expect("snapshot");
    ws.timestamp(&signers, now).expect("timestamp");
    for (name, bytes) in ws.unpublished("bench").expect("files") {
        bundle.add_metadata(&name, bytes).expect("text");
    }
    let root = dir.join("root.json");
    std::fs::write(&root, bundle.metadata["1.root.json"].as_bytes()).expect("root");
    let path = dir.join("bundle.json");
    std::fs::write(&path, bundle.to_vec().expect("bundle")).expect("write");
    let config = format!(
        "[[scope]]\nname = \"{SCOPE}\"\nroot = \"{}\"\nsource = \"bundle://{}\"\n",
        root.display(),
        path.display()
    );
    (config, refs)
}

fn node(config: &str, state: &Path) -> Node {
    let config: Config = toml::from_str(config).expect("config");
    config.validate().expect("valid");
    Node::new(&config, Arc::new(Store::open(state).expect("db"))).expect("node")
}

fn verify(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (config, refs) = scope_with(dir.path(), 1_000);
    let warm = node(&config, &dir.path().join("warm"));
    let (reference, digest) = &refs[0];
    let first = warm.verify(reference, digest, None);
    assert!(first.verdict.admitted, "{:?}", first.verdict);
    assert!(warm.verify(reference, digest, None).cached);
    c.bench_function("node/cache_hit", |b| {
        b.iter(|| black_box(warm.verify(black_box(reference), black_box(digest), None)))
    });
    // Cold: a new node state each time (so the refresh writes a whole trusted state), and
    // the image checked for the first time; the 1,000-target role is parsed each time.
    let mut n = 0usize;
    c.bench_function("node/cold_verify_fresh_state_1000_targets", |b| {
        b.iter_batched(
            || {
                n += 1;
                node(&config, &dir.path().join(format!("cold-{n}")))
            },
            |node| {
                let a = node.verify(reference, digest, None);
                assert!(a.verdict.admitted && !a.cached);
                a
            },
            BatchSize::PerIteration,
        )
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = verify
}
criterion_main!(benches);
