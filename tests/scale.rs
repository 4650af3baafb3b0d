//! 100,000 signed tags in one scope, with and without hash bins (DESIGN §3): what the
//! publisher's `sign` of one more image costs, and what a fresh node fetches, from a real
//! `docker-registry`, to verify one image. A measurement, ignored by `cargo test`;
//! `benches/compare/scale.sh` runs it in a release build and prints the table.

mod common;

use std::time::{Duration, Instant};

use chrono::Utc;
use common::fixture::Fixture;
use common::registry::TestRegistry;
use pullguard_plugin::publish::keyfile;
use pullguard_plugin::publish::repo::{NewTarget, Workspace};
use pullguard_plugin::registry::oci::MEDIA_TYPE_IMAGE_MANIFEST;

/// What the registry answered while a command ran: requests, and bytes of response bodies.
#[derive(Debug, Default)]
struct Traffic {
    requests: usize,
    trust_requests: usize,
    bytes: u64,
}

/// Reads the registry's log of answered requests (`response completed` lines) after `from`.
fn traffic(registry: &TestRegistry, from: usize) -> Traffic {
    let log = registry.log();
    let mut t = Traffic::default();
    for line in log[from.min(log.len())..].lines() {
        // `response completed`, and `response completed with error` (a 404 among them).
        if !line.contains("msg=\"response completed") {
            continue;
        }
        t.requests += 1;
        if line.contains("/v2/acme/trust/") {
            t.trust_requests += 1;
        }
        let written = line
            .split("http.response.written=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok());
        t.bytes += written.unwrap_or(0);
    }
    t
}

fn timed(f: &Fixture, args: &[&str]) -> (Duration, common::RunOutput) {
    let started = Instant::now();
    let out = f.ok(args);
    (started.elapsed(), out)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// Lists `images` targets (`svcNNNN:TAG`, 1,000 repositories) in the working copy at once,
/// signed by the targets key: the scope as if that many tags had been signed.
fn fill(f: &Fixture, images: usize) {
    let key = keyfile::read_private(&f.path("targets.key")).expect("targets key");
    let mut ws = Workspace::open(&f.path("pullguard-repo")).expect("open");
    let entries: Vec<NewTarget> = (0..images)
        .map(|i| {
            let path = format!("svc{:04}:{}", i % 1000, i / 1000);
            let role = ws.responsible_role(&path).expect("role");
            let manifest = format!("manifest {i}");
            let digest = pullguard_plugin::registry::Digest::sha256_of(manifest.as_bytes());
            NewTarget {
                role,
                path,
                length: manifest.len() as u64,
                sha256_hex: digest.sha256_hex().expect("sha256").to_string(),
                media_type: MEDIA_TYPE_IMAGE_MANIFEST.into(),
                signature_version: 1,
            }
        })
        .collect();
    ws.set_targets(&entries, &[&key], Utc::now()).expect("fill");
}

struct Figures {
    sign: Duration,
    snapshot: Duration,
    timestamp: Duration,
    publish: Duration,
    published_files: usize,
    published_bytes: u64,
    verify: Vec<Duration>,
    node: Traffic,
}

fn measure(images: usize, bins: Option<&str>) -> Figures {
    let registry = TestRegistry::start_with_access_log();
    let config = format!("[registries.\"{}\"]\nplain_http = true\n", registry.host);
    let f = Fixture::on(registry, &config);
    for tag in ["probe", "new"] {
        f.registry
            .push_image("acme/app", tag, &format!("image {tag}"));
    }
    for k in ["root", "targets", "snapshot", "timestamp"] {
        f.ok(&["key", "generate", &format!("{k}.key")]);
    }
    let extra: Vec<&str> = bins.map(|b| vec!["--bins", b]).unwrap_or_default();
    f.ok(&f.init_args(&extra));
    fill(&f, images);
    f.sign_and_publish_with("targets.key", &["probe"]);

    let (sign, _) = timed(&f, &["sign", &f.image("new"), "--key", "targets.key"]);
    let (snapshot, _) = timed(&f, &["repo", "snapshot", "--key", "snapshot.key"]);
    let (timestamp, _) = timed(&f, &["repo", "timestamp", "--key", "timestamp.key"]);
    let (publish, out) = timed(&f, &["repo", "publish"]);
    let files: Vec<&str> = out
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("published "))
        .collect();
    let published_bytes = files
        .iter()
        .map(|name| {
            std::fs::metadata(f.path("pullguard-repo/metadata").join(name)).map_or(0, |m| m.len())
        })
        .sum();

    let mut verify = Vec::new();
    let mut node = Traffic::default();
    for run in 0..15 {
        let state = format!("node-{run}");
        let from = f.registry.log().len();
        let started = Instant::now();
        f.admitted("probe", &state);
        verify.push(started.elapsed());
        node = traffic(&f.registry, from);
    }
    verify.sort();
    Figures {
        sign,
        snapshot,
        timestamp,
        publish,
        published_files: files.len(),
        published_bytes,
        verify,
        node,
    }
}

#[test]
#[ignore = "a measurement of minutes: benches/compare/scale.sh runs it"]
fn a_hundred_thousand_images_in_one_scope() {
    let images: usize = std::env::var("PULLGUARD_SCALE_IMAGES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    let bins = std::env::var("PULLGUARD_SCALE_BINS").unwrap_or_else(|_| "1024".into());
    let rows = [
        ("one targets role".to_string(), measure(images, None)),
        (format!("{bins} hash bins"), measure(images, Some(&bins))),
    ];
    println!("\n{images} signed tags in one scope");
    println!(
        "| scope | sign one more | snapshot | timestamp | publish (files, bytes) | fresh node's verify: median (min-max) | node's requests (to the trust repository) | node's bytes fetched |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (label, r) in &rows {
        println!(
            "| {label} | {} | {} | {} | {} ({}, {} KiB) | {} ({}-{}) | {} ({}) | {} KiB |",
            ms(r.sign),
            ms(r.snapshot),
            ms(r.timestamp),
            ms(r.publish),
            r.published_files,
            r.published_bytes / 1024,
            ms(r.verify[r.verify.len() / 2]),
            ms(r.verify[0]),
            ms(r.verify[r.verify.len() - 1]),
            r.node.requests,
            r.node.trust_requests,
            r.node.bytes / 1024,
        );
    }
    let (_, binned) = &rows[1];
    assert!(
        binned.node.bytes < 1024 * 1024,
        "with bins a node fetches well under 1 MiB: {:?}",
        binned.node
    );
}
