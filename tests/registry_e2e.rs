//! End to end against a real registry (Debian `docker-registry`, started per test on
//! 127.0.0.1): a publisher inits a scope, delegates `app` to a team, signs two tags and
//! publishes; the verifier fetches everything back from the registry and admits. Then each
//! attack is done to the registry for real and must be denied with its own reason.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;

use common::daemon::{daemon_client, start_daemon, stop_daemon};
use common::fixture::Fixture;
use common::front::Front;
use common::registry::TestRegistry;
use common::{run, run_measured, tempdir, Cost, RunOutput};
use pullguard_plugin::registry::oci::{
    Descriptor, ImageIndex, ImageManifest, ARTIFACT_SIGNATURE, MEDIA_TYPE_IMAGE_INDEX,
    MEDIA_TYPE_IMAGE_MANIFEST,
};
use pullguard_plugin::registry::Digest;

fn state_file(dir: &Path, name: &str) -> serde_json::Value {
    common::read_json(&dir.join(name))
}

#[test]
fn signed_tags_are_admitted_from_the_registry() {
    let f = Fixture::published();
    f.admitted("1", "state");
    f.admitted("2", "state");
    // The trusted state holds what the registry served, at the published versions.
    let ts = state_file(&f.path("state"), "timestamp.json");
    assert_eq!(ts["signed"]["version"], 1);
    let team = state_file(&f.path("state"), "team.json");
    assert!(team["signed"]["targets"]["app:1"].is_object());
    // A digest-pinned reference to the signed digest is admitted too.
    let digest = f.app_digest("1");
    let out = f.pg(&[
        "verify",
        &format!("{}@{digest}", f.image("1")),
        "--scope",
        &f.scope,
        "--state",
        "state",
    ]);
    assert_eq!(out.code, Some(0), "{out}");
    // An unsigned tag is not (images outside the scope: see the digest-pin test).
    f.registry.push_image("acme/app", "3", "image three");
    f.denied("3", "state", "unknown_target");
}

#[test]
fn a_different_image_under_a_signed_tag_is_rejected() {
    let f = Fixture::published();
    f.admitted("1", "state");
    // The registry (or whoever can push) points app:1 at another, validly signed image.
    let client = f.registry.client();
    let two = client
        .get_manifest("acme/app", "2", &[MEDIA_TYPE_IMAGE_MANIFEST], 1 << 20)
        .expect("app:2");
    client
        .put_manifest("acme/app", "1", MEDIA_TYPE_IMAGE_MANIFEST, &two.bytes)
        .expect("retag");
    let out = f.denied("1", "state", "digest_mismatch");
    assert!(out.stdout.contains("role team"), "{out}");
}

#[test]
fn republished_old_timestamp_and_snapshot_are_rejected() {
    let f = Fixture::published();
    let old_timestamp = f.trust_tag("timestamp");
    f.sign_and_publish(&["2"]);
    f.admitted("2", "state");
    // Replay of timestamp v1 after the node has seen v2.
    f.retag_trust("timestamp", &old_timestamp);
    let out = f.denied("2", "state", "rollback");
    assert!(out.stdout.contains("timestamp rollback"), "{out}");

    // A rollback of the snapshot: a new timestamp (validly signed by the online key) that
    // pins the old snapshot version 1, while the node trusts snapshot 2.
    let f = Fixture::published();
    f.sign_and_publish(&["2"]);
    f.admitted("2", "state");
    let meta = f.path("pullguard-repo/metadata");
    std::fs::remove_file(meta.join("2.snapshot.json")).expect("drop snapshot 2 locally");
    f.ok(&["repo", "timestamp", "--key", "timestamp.key"]);
    // The publisher refuses: the snapshot no longer pins the current targets versions.
    f.fails(&["repo", "publish"], "the snapshot pins");
    let ts = std::fs::read(meta.join("timestamp.json")).expect("timestamp");
    f.registry
        .client()
        .push_artifact(
            "acme/trust",
            Some("timestamp"),
            pullguard_plugin::registry::oci::ARTIFACT_TUF,
            &ts,
            None,
            None,
        )
        .expect("push the forged timestamp");
    let out = f.denied("2", "state", "rollback");
    assert!(out.stdout.contains("snapshot rollback"), "{out}");
}

#[test]
fn an_expired_timestamp_is_rejected() {
    let f = Fixture::published();
    f.admitted("1", "state");
    // Nobody re-signs the timestamp (expiry 1 day): two days later the node must refuse.
    let args = f.verify_args("1", "state");
    let out = f.pg_at("+2d", &args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stdout
            .starts_with("DENY expired app:1: timestamp expired"),
        "{out}"
    );
}

#[test]
fn a_key_not_delegated_for_the_repository_is_rejected() {
    let f = Fixture::published();
    f.admitted("1", "state");
    // Mallory runs pullguard's publisher on a repository of her own for the same scope and
    // signs with her own key.
    let evil = f.path("evil");
    let evil = evil.to_str().expect("utf-8");
    f.mallory_repo(evil);
    // First she signs the genuine image and hides the genuine signature: the digest is the
    // one trusted metadata lists, so only the signature check can refuse.
    f.ok(&["sign", &f.image("1"), "--key", "mallory.key", "--dir", evil]);
    let digest = f.app_digest("1");
    let mut index = signature_entries(&f, &digest);
    assert_eq!(index.manifests.len(), 2, "{index:?}");
    index.manifests.remove(0);
    set_signature_entries(&f, &digest, &index);
    let out = f.denied("1", "state", "not_signed");
    assert!(out.stdout.contains("not delegated"), "{out}");

    // Then she pushes her own image under app:1 and signs that.
    f.registry.push_image("acme/app", "1", "mallory's image");
    f.ok(&["sign", &f.image("1"), "--key", "mallory.key", "--dir", evil]);
    let out = f.denied("1", "state", "not_signed");
    assert!(out.stdout.contains("not delegated"), "{out}");
    // Our own publisher refuses to sign with a key that is not delegated.
    let refused = f.pg(&["sign", &f.image("1"), "--key", "mallory.key"]);
    assert_eq!(refused.code, Some(2), "{refused}");
    assert!(
        refused.stderr.contains("is delegated for app:1"),
        "{refused}"
    );
}

#[test]
fn a_replayed_older_signature_is_rejected() {
    let f = Fixture::published();
    let digest = f.app_digest("1");
    // app:1 is signed again (version 2), and the node sees it.
    f.sign_and_publish(&["1"]);
    let out = f.verify("1", "state");
    assert_eq!(out.code, Some(0), "{out}");
    assert!(out.stdout.contains("signed (version 2)"), "{out}");
    // The registry hides version 2 and serves only the older signature artifact.
    let mut index = signature_entries(&f, &digest);
    assert_eq!(index.manifests.len(), 2, "{index:?}");
    index.manifests.remove(1);
    set_signature_entries(&f, &digest, &index);
    let out = f.denied("1", "state", "rollback");
    assert!(
        out.stdout.contains("version 1 is older than version 2"),
        "{out}"
    );
    // A node that never saw version 2 still accepts version 1.
    f.admitted("1", "new-node");
}

#[test]
fn a_digest_pin_is_signed_and_verified_without_a_tag() {
    let f = Fixture::published();
    let digest = f.registry.push_image("acme/app", "build-7", "pinned build");
    let pinned = format!("{}/acme/app@{digest}", f.registry.host);
    // Not signed as a pin yet: the digest alone names no target.
    let out = f.pg(&[
        "verify",
        &pinned,
        "--scope",
        &f.scope,
        "--state",
        "state",
        "--root",
        "pullguard-repo/metadata/1.root.json",
    ]);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stdout
            .starts_with(&format!("DENY unknown_target app@{digest}")),
        "{out}"
    );
    f.ok(&["sign", &pinned, "--key", "team.key"]);
    f.ok(&["repo", "snapshot", "--key", "snapshot.key"]);
    f.ok(&["repo", "timestamp", "--key", "timestamp.key"]);
    f.ok(&["repo", "publish"]);
    let out = f.pg(&["verify", &pinned, "--scope", &f.scope, "--state", "state"]);
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stdout.starts_with(&format!("ADMIT app@{digest}")),
        "{out}"
    );
    // Outside the scope, nothing is admitted; and a state directory serves one scope only.
    let outside = f.pg(&[
        "verify",
        &format!("{}/other/app@{digest}", f.registry.host),
        "--scope",
        &f.scope,
        "--state",
        "state",
    ]);
    assert_eq!(outside.code, Some(2), "{outside}");
    assert!(
        outside.stdout.starts_with("DENY invalid_request"),
        "{outside}"
    );
    let other_scope = f.pg(&[
        "verify",
        &format!("{}/other/app@{digest}", f.registry.host),
        "--scope",
        &format!("{}/other", f.registry.host),
        "--state",
        "state",
    ]);
    assert_eq!(other_scope.code, Some(2), "{other_scope}");
    assert!(
        other_scope.stdout.starts_with("DENY invalid_request ")
            && other_scope
                .stdout
                .contains("holds the trusted state of scope"),
        "{other_scope}"
    );
}

/// Replaces the tag-schema referrers index of `digest` (what a hostile registry can do).
fn set_signature_entries(f: &Fixture, digest: &Digest, index: &ImageIndex) {
    f.registry
        .client()
        .put_manifest(
            "acme/app",
            &digest.referrers_tag(),
            MEDIA_TYPE_IMAGE_INDEX,
            &index.to_bytes(),
        )
        .expect("rewrite the referrers index");
}

/// The attached signature artifacts of `digest` (from the tag-schema index: the Debian
/// registry has no referrers API).
fn signature_entries(f: &Fixture, digest: &Digest) -> ImageIndex {
    let client = f.registry.client();
    let m = client
        .get_manifest(
            "acme/app",
            &digest.referrers_tag(),
            &[MEDIA_TYPE_IMAGE_INDEX],
            1 << 20,
        )
        .expect("referrers index");
    serde_json::from_slice(&m.bytes).expect("index")
}

#[test]
fn a_tampered_signature_artifact_is_rejected() {
    let f = Fixture::published();
    let client = f.registry.client();
    let digest = f.app_digest("1");
    let index = signature_entries(&f, &digest);
    assert_eq!(index.manifests.len(), 1, "{index:?}");
    let entry = &index.manifests[0];
    let manifest = client
        .get_manifest(
            "acme/app",
            &entry.digest.to_string(),
            &[MEDIA_TYPE_IMAGE_MANIFEST],
            1 << 20,
        )
        .expect("signature manifest");
    let parsed: ImageManifest = serde_json::from_slice(&manifest.bytes).expect("manifest");
    let doc = client
        .get_blob("acme/app", &parsed.layers[0].digest, 1 << 20)
        .expect("signature");

    // On disk: the registry now serves bytes that do not match their digest.
    let blob = f.registry.blob_path(&parsed.layers[0].digest);
    let mut on_disk = std::fs::read(&blob).expect("blob on disk");
    let at = on_disk.len() / 2;
    on_disk[at] ^= 0x01;
    std::fs::write(&blob, &on_disk).expect("tamper on disk");
    let out = f.denied("1", "state", "digest_mismatch");
    assert!(out.stdout.contains("content digest"), "{out}");

    // Re-pushed: a consistent artifact whose signature bytes were changed replaces the
    // genuine one in the referrers index.
    let mut value: serde_json::Value = serde_json::from_slice(&doc).expect("json");
    let sig = value["signatures"][0]["sig"]
        .as_str()
        .expect("sig")
        .to_string();
    // Flip the first hex digit of the signature.
    let first = if sig.starts_with('0') { "1" } else { "0" };
    let flipped = format!("{first}{}", sig.get(1..).unwrap_or_default());
    value["signatures"][0]["sig"] = flipped.into();
    let tampered = serde_json::to_vec(&value).expect("json");
    let subject = Descriptor::new(MEDIA_TYPE_IMAGE_MANIFEST, b"");
    let subject = Descriptor {
        digest: digest.clone(),
        size: parsed.subject.as_ref().expect("subject").size,
        ..subject
    };
    let pushed = client
        .push_artifact(
            "acme/app",
            None,
            ARTIFACT_SIGNATURE,
            &tampered,
            Some(subject),
            None,
        )
        .expect("push tampered");
    let mut index = signature_entries(&f, &digest);
    index.manifests.retain(|d| d.digest == pushed.digest);
    set_signature_entries(&f, &digest, &index);
    let out = f.denied("1", "state2", "threshold_not_met");
    assert!(out.stdout.contains("0 of 1 required signatures"), "{out}");
}

/// A new node (trusted state `http-node`) admits `acme/app:TAG` from TUF metadata at `url`.
fn verify_over_http(f: &Fixture, tag: &str, url: &str) {
    let out = f.pg(&[
        "verify",
        &f.image(tag),
        "--scope",
        &f.scope,
        "--state",
        "http-node",
        "--root",
        "pullguard-repo/metadata/1.root.json",
        "--metadata-url",
        url,
    ]);
    assert_eq!(out.code, Some(0), "{out}");
}

#[test]
fn metadata_published_to_a_directory_verifies_the_same() {
    let f = Fixture::published();
    f.ok(&["repo", "publish", "--to-dir", "served"]);
    let out = f.pg(&[
        "verify",
        &f.image("1"),
        "--scope",
        &f.scope,
        "--state",
        "state",
        "--root",
        "pullguard-repo/metadata/1.root.json",
        "--metadata-dir",
        "served",
    ]);
    assert_eq!(out.code, Some(0), "{out}");
    let again = f.ok(&["repo", "publish", "--to-dir", "served"]);
    assert!(again.stdout.contains("nothing to publish"), "{again}");

    // The same files over plain HTTP (the standard TUF layout), for a new node.
    let server = common::StaticServer::start(f.dir.path());
    verify_over_http(&f, "2", &server.url("served"));
    let fetched = server.requests();
    assert_eq!(
        fetched,
        [
            "served/2.root.json",
            "served/timestamp.json",
            "served/1.snapshot.json",
            "served/1.targets.json",
            "served/1.team.json"
        ],
        "the TUF client's request sequence"
    );
}

#[test]
fn hash_bins_let_a_node_fetch_only_the_bin_of_its_image() {
    let f = Fixture::empty();
    for (tag, content) in [("1", "image one"), ("2", "image two"), ("3", "image three")] {
        f.registry.push_image("acme/app", tag, content);
    }
    for k in ["root", "targets", "snapshot", "timestamp"] {
        f.ok(&["key", "generate", &format!("{k}.key")]);
    }
    let out = f.pg(&f.init_args(&["--bins", "12"]));
    assert_eq!(out.code, Some(2), "{out}");
    assert!(
        out.stderr
            .contains("a bin count must be a power of two from 2 to 16384, not 12"),
        "{out}"
    );
    assert!(
        !f.path("pullguard-repo").exists(),
        "a refused init writes nothing"
    );
    let out = f.ok(&f.init_args(&["--bins", "16"]));
    assert!(
        out.stdout
            .contains("targets hands its paths to 16 hash bins"),
        "{out}"
    );
    f.sign_and_publish_with("targets.key", &["1", "2"]);
    f.admitted("1", "state");
    f.admitted("2", "state");
    f.denied("3", "state", "unknown_target");

    // Over plain HTTP a new node asks for the timestamp, the snapshot, targets (which only
    // names the bins) and the one bin of its image: bin-<first hex digit of sha256(path)>.
    f.ok(&["repo", "publish", "--to-dir", "served"]);
    let bin = |path: &str| {
        use sha2::Digest as _;
        format!(
            "bin-{}",
            &hex::encode(sha2::Sha256::digest(path.as_bytes()))[..1]
        )
    };
    let server = common::StaticServer::start(f.dir.path());
    verify_over_http(&f, "1", &server.url("served"));
    assert_eq!(
        server.requests(),
        [
            "served/2.root.json".to_string(),
            "served/timestamp.json".into(),
            "served/1.snapshot.json".into(),
            "served/1.targets.json".into(),
            format!("served/1.{}.json", bin("app:1")),
        ],
        "the TUF client's request sequence"
    );
    // One more image re-signs only its bin: publish sends it, the snapshot and the timestamp.
    f.ok(&["sign", &f.image("3"), "--key", "targets.key"]);
    f.ok(&["repo", "snapshot", "--key", "snapshot.key"]);
    f.ok(&["repo", "timestamp", "--key", "timestamp.key"]);
    let out = f.ok(&["repo", "publish"]);
    let pushed: Vec<&str> = out
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("published "))
        .collect();
    let bin3 = bin("app:3");
    assert_eq!(
        pushed,
        [
            format!("2.{bin3}.json").as_str(),
            "2.snapshot.json",
            "timestamp.json"
        ],
        "{out}"
    );
    f.admitted("3", "state");
}

#[test]
fn bundles_verify_offline_after_the_registry_is_gone() {
    let mut f = Fixture::published();
    f.ok(&[
        "bundle",
        "export",
        "--scope",
        &f.scope,
        "--out",
        "edge.json",
        &f.image("1"),
        &f.image("2"),
    ]);
    // The registry stops: the edge device has only the bundle and root v1.
    f.registry.stop();
    let out = f.ok(&[
        "bundle",
        "import",
        "edge.json",
        "--state",
        "edge",
        "--root",
        "pullguard-repo/metadata/1.root.json",
    ]);
    assert_eq!(out.stdout.matches("ADMIT").count(), 2, "{out}");
    // A tampered bundle changes nothing: the trusted state stays at what was verified.
    let mut bundle: serde_json::Value =
        serde_json::from_slice(&std::fs::read(f.path("edge.json")).expect("bundle")).expect("json");
    let mut ts: serde_json::Value = serde_json::from_str(
        bundle["metadata"]["timestamp.json"]
            .as_str()
            .expect("timestamp"),
    )
    .expect("timestamp json");
    ts["signed"]["version"] = 7.into();
    bundle["metadata"]["timestamp.json"] = ts.to_string().into();
    std::fs::write(
        f.path("bad.json"),
        serde_json::to_vec(&bundle).expect("json"),
    )
    .expect("write");
    let bad = f.pg(&["bundle", "import", "bad.json", "--state", "edge"]);
    assert_eq!(bad.code, Some(1), "{bad}");
    assert!(bad.stdout.contains("DENY threshold_not_met"), "{bad}");
    assert_eq!(
        state_file(&f.path("edge"), "timestamp.json")["signed"]["version"],
        1
    );
    let kept = std::fs::read(f.path("edge/bundle.json")).expect("kept bundle");
    assert_eq!(
        kept,
        std::fs::read(f.path("edge.json")).expect("bundle"),
        "the bad bundle replaced the good one"
    );
    let garbage = f.pg(&["bundle", "import", "pullguard.toml", "--state", "edge"]);
    assert_eq!(garbage.code, Some(2), "{garbage}");
    assert!(
        garbage.stderr.contains("not a pullguard bundle"),
        "{garbage}"
    );
}

/// Fetches peer tools (Debian packages of a newer suite, unpacked, never installed) with
/// `scripts/fetch-peers.sh`; returns name → binary path.
fn peers(names: &[&str]) -> std::collections::BTreeMap<String, PathBuf> {
    let mut cmd = std::process::Command::new("bash");
    cmd.arg(common::repo_root().join("scripts/fetch-peers.sh"))
        .args(names);
    let out = run(cmd);
    assert_eq!(out.code, Some(0), "fetching peer tools failed\n{out}");
    out.stdout
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), PathBuf::from(v)))
        .collect()
}

#[test]
fn cosign_signatures_and_oras_attachments_are_skipped_not_fatal() {
    let tools = peers(&["oras", "cosign"]);
    let f = Fixture::published();
    let client = f.registry.client();
    let digest = f.app_digest("1");
    let pinned = format!("{}@{digest}", f.image("1"));
    let peer = |tool: &str, args: &[&str], env: &[(&str, &str)]| {
        let mut c = std::process::Command::new(&tools[tool]);
        c.current_dir(f.dir.path())
            .env("HOME", f.dir.path())
            .args(args);
        for (k, v) in env {
            c.env(k, v);
        }
        c.stdin(std::process::Stdio::null());
        let out = run(c);
        assert_eq!(out.code, Some(0), "{out}");
    };
    let pw = [("COSIGN_PASSWORD", "pw")];
    peer("cosign", &["generate-key-pair"], &pw);
    // cosign's classic `sha256-<hex>.sig` tag, then its OCI 1.1 referrer (which also lands in
    // the tag-schema index pullguard reads).
    let sign = [
        "sign",
        "--key",
        "cosign.key",
        "--tlog-upload=false",
        "--allow-http-registry",
        "--yes",
        &pinned,
    ];
    peer("cosign", &sign, &pw);
    let mut oci11 = sign.to_vec();
    oci11.insert(1, "--registry-referrers-mode=oci-1-1");
    peer(
        "cosign",
        &oci11,
        &[("COSIGN_PASSWORD", "pw"), ("COSIGN_EXPERIMENTAL", "1")],
    );
    std::fs::write(f.path("sbom.json"), r#"{"sbom": true}"#).expect("sbom");
    peer(
        "oras",
        &[
            "attach",
            "--plain-http",
            "--artifact-type",
            "application/vnd.example.sbom.v1+json",
            &pinned,
            "sbom.json:application/json",
        ],
        &[],
    );

    let index = signature_entries(&f, &digest);
    let types: Vec<String> = index
        .manifests
        .iter()
        .map(|d| d.artifact_type.clone().unwrap_or_default())
        .collect();
    assert!(
        index.manifests.len() >= 3,
        "expected pullguard, cosign and oras referrers: {types:?}"
    );
    assert!(types.iter().any(|t| t.contains("cosign")), "{types:?}");
    assert!(types.iter().any(|t| t.contains("sbom")), "{types:?}");
    f.admitted("1", "state");
    let tags = client.get_manifest(
        "acme/app",
        &format!("{}.sig", digest.referrers_tag()),
        &[MEDIA_TYPE_IMAGE_MANIFEST],
        1 << 20,
    );
    assert!(tags.is_ok(), "cosign's classic signature tag is there too");
}

/// A registry over HTTPS with a private CA and htpasswd (basic) authentication: pullguard
/// needs the CA in its config and the credentials from a Docker-style `config.json`.
#[test]
fn https_with_a_private_ca_and_basic_auth() {
    let dir = tempdir();
    let d = dir.path().to_path_buf();
    // A private CA and a server certificate for 127.0.0.1 signed by it.
    std::fs::write(
        d.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .expect("ext");
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    for args in [
        [
            &["req", "-x509"][..],
            &ec,
            &[
                "-days",
                "2",
                "-subj",
                "/CN=pullguard test CA",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
            ],
        ]
        .concat(),
        [
            &["req"][..],
            &ec,
            &[
                "-subj",
                "/CN=127.0.0.1",
                "-keyout",
                "key.pem",
                "-out",
                "leaf.csr",
            ],
        ]
        .concat(),
        vec![
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
            "-out",
            "cert.pem",
        ],
    ] {
        let mut c = std::process::Command::new("openssl");
        c.current_dir(&d).args(&args);
        let out = run(c);
        assert_eq!(out.code, Some(0), "{out}");
    }
    let hash = run({
        let mut c = std::process::Command::new("python3");
        c.args(["-W", "ignore", "-c", "import crypt; print(crypt.crypt('s3cret', crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16)))"]);
        c
    });
    assert_eq!(hash.code, Some(0), "{hash}");
    std::fs::write(
        d.join("htpasswd"),
        format!("alice:{}\n", hash.stdout.trim()),
    )
    .expect("htpasswd");
    let auth = format!(
        "auth:\n  htpasswd:\n    realm: pullguard-test\n    path: {}/htpasswd\n",
        d.display()
    );
    let registry = TestRegistry::start_in(dir, &auth, true);
    let ca = registry.dir.path().join("ca.pem");

    // Not reachable as configured yet: pullguard's config names no CA.
    let f = Fixture::on(registry, "");
    for k in ["root", "snapshot", "timestamp"] {
        f.ok(&["key", "generate", &format!("{k}.key")]);
    }
    // The image signer uses an ECDSA P-256 key.
    f.ok(&["key", "generate", "targets.key", "--type", "ecdsa-p256"]);
    let shown = f.ok(&["key", "show", "targets.key.pub"]);
    assert!(shown.stdout.contains("ecdsa-sha2-nistp256"), "{shown}");
    f.init_scope();

    // No CA configured: the system roots do not know this certificate.
    let out = f.fails(&["repo", "publish"], "unreachable");
    assert!(out.stderr.to_lowercase().contains("certificate"), "{out}");

    // The CA, but no credentials: unauthorised, and said so.
    let config = format!(
        "[registries.\"{}\"]\nca_file = \"{}\"\ndocker_config = \"{}\"\n",
        f.registry.host,
        ca.display(),
        f.path("docker/config.json").display()
    );
    std::fs::write(f.path("pullguard.toml"), config).expect("config");
    let out = f.fails(&["repo", "publish"], "unauthorised");
    assert!(out.stderr.contains("none are configured"), "{out}");

    // Credentials in a Docker-style config.json: publishing and verifying work.
    std::fs::create_dir_all(f.path("docker")).expect("docker dir");
    let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
    std::fs::write(
        f.path("docker/config.json"),
        format!(
            r#"{{"auths": {{"{}": {{"auth": "{auth}"}}}}}}"#,
            f.registry.host
        ),
    )
    .expect("docker config");
    let client = pullguard_plugin::registry::Registry::new(
        &f.registry.host,
        &pullguard_plugin::registry::RegistryConfig {
            ca_file: Some(ca.clone()),
            ..Default::default()
        },
        Some(&f.path("docker/config.json")),
    )
    .expect("client");
    common::registry::push_image(&client, "acme/app", "1", "secured image");
    f.ok(&["repo", "publish"]);
    f.sign_and_publish_with("targets.key", &["1"]);
    let out = f.verify("1", "state");
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stdout.contains("signed (version 1) by role targets"),
        "{out}"
    );
    // A node without the credentials is told so, apart from an outage.
    std::fs::remove_file(f.path("docker/config.json")).expect("forget the credentials");
    let out = f.verify("1", "state-anonymous");
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stdout.starts_with("DENY unauthorized app:1: ")
            && out.stdout.contains("none are configured"),
        "{out}"
    );
}

#[test]
fn rotated_root_and_delegated_keys_are_followed_by_nodes() {
    let f = Fixture::published();
    f.admitted("1", "state");
    for k in ["root2", "team2"] {
        f.ok(&["key", "generate", &format!("{k}.key")]);
    }
    f.ok(&[
        "repo",
        "rotate",
        "--role",
        "root",
        "--new-key",
        "root2.key",
        "--signing-key",
        "root.key",
    ]);
    f.ok(&[
        "repo",
        "rotate",
        "--role",
        "team",
        "--new-key",
        "team2.key",
        "--signing-key",
        "targets.key",
    ]);
    // The old team key is no longer delegated; the new one signs.
    f.fails(
        &["sign", &f.image("2"), "--key", "team.key"],
        "is delegated for app:2",
    );
    f.ok(&["sign", &f.image("2"), "--key", "team2.key"]);
    f.ok(&["repo", "snapshot", "--key", "snapshot.key"]);
    f.ok(&["repo", "timestamp", "--key", "timestamp.key"]);
    f.ok(&["repo", "publish"]);
    // A node that trusted root v1 follows the chain to v2 and accepts the re-signed role.
    f.admitted("2", "state");
    assert_eq!(
        state_file(&f.path("state"), "root.json")["signed"]["version"],
        2
    );
    // app:1's signature was made with the retired key: it no longer counts until re-signed.
    f.denied("1", "state", "not_signed");
    f.sign_and_publish_with("team2.key", &["1"]);
    f.admitted("1", "state");
    // Two root changes before one publish: root v3 (the root key changes back, signed by
    // v2's key and its own) and root v4 (a new timestamp key, authorised by v3's root key).
    // Nodes follow the chain v2 -> v3 -> v4.
    f.ok(&["key", "generate", "timestamp2.key"]);
    f.ok(&[
        "repo",
        "rotate",
        "--role",
        "root",
        "--new-key",
        "root.key",
        "--signing-key",
        "root2.key",
    ]);
    f.ok(&[
        "repo",
        "rotate",
        "--role",
        "timestamp",
        "--new-key",
        "timestamp2.key",
        "--signing-key",
        "root.key",
    ]);
    f.ok(&["repo", "snapshot", "--key", "snapshot.key"]);
    f.ok(&["repo", "timestamp", "--key", "timestamp2.key"]);
    f.ok(&["repo", "publish"]);
    f.admitted("2", "state");
    assert_eq!(
        state_file(&f.path("state"), "root.json")["signed"]["version"],
        4
    );
    f.admitted("2", "fresh-node");
    // A rotation authorised by a key that is not a root key is refused.
    let bad = f.pg(&[
        "repo",
        "rotate",
        "--role",
        "root",
        "--new-key",
        "root2.key",
        "--signing-key",
        "team2.key",
    ]);
    assert_eq!(bad.code, Some(2), "{bad}");
    assert!(
        bad.stderr.contains("none of the given keys may sign it"),
        "{bad}"
    );
}

#[test]
fn oversized_and_foreign_metadata_artifacts_are_refused_and_change_nothing() {
    let f = Fixture::published();
    f.admitted("1", "state");
    let client = f.registry.client();
    let genuine = f.trust_tag("timestamp");
    // A 1 MiB "timestamp" (the limit is 16 KiB): refused from the manifest's layer size,
    // before the blob is read.
    let huge = vec![b' '; 1 << 20];
    client
        .push_artifact(
            "acme/trust",
            Some("timestamp"),
            pullguard_plugin::registry::oci::ARTIFACT_TUF,
            &huge,
            None,
            None,
        )
        .expect("push");
    let out = f.denied("1", "state", "oversized");
    assert!(out.stdout.contains("16384"), "{out}");
    // Something else entirely under the tag: malformed, not a registry outage.
    client
        .push_artifact(
            "acme/trust",
            Some("timestamp"),
            "application/vnd.example.sbom.v1+json",
            b"{}",
            None,
            None,
        )
        .expect("push");
    let out = f.denied("1", "state", "malformed");
    assert!(
        out.stdout.contains("not a pullguard TUF metadata artifact"),
        "{out}"
    );
    // The genuine timestamp back: admitted, at the version trusted before.
    f.retag_trust("timestamp", &genuine);
    f.admitted("1", "state");
    assert_eq!(
        state_file(&f.path("state"), "timestamp.json")["signed"]["version"],
        1
    );
}

// ---- A malicious or slow registry, and bad local input (hardening) ----

/// The published fixture seen through a [`Front`]: a config that reaches the front over
/// plain HTTP, and `verify` arguments that name the front as the registry.
struct Fronted {
    f: Fixture,
    front: Front,
}

impl Fronted {
    fn new(f: Fixture, delay: std::time::Duration, rule: Arc<common::front::Rule>) -> Self {
        let front = Front::start(&f.registry.host, delay, rule);
        let config = format!(
            "[registries.\"{}\"]\nplain_http = true\n[registries.\"{}\"]\nplain_http = true\n",
            f.registry.host, front.host
        );
        std::fs::write(f.path("pullguard.toml"), config).expect("config");
        Fronted { f, front }
    }

    fn verify_args<'a>(
        &'a self,
        image: &'a str,
        scope: &'a str,
        extra: &[&'a str],
    ) -> Vec<&'a str> {
        let mut args = vec![
            "verify",
            image,
            "--scope",
            scope,
            "--state",
            "state",
            "--root",
            "pullguard-repo/metadata/1.root.json",
        ];
        args.extend(extra.iter().copied());
        args
    }

    /// `verify` of `acme/app:1` through the front, measured.
    fn verify(&self, extra: &[&str]) -> (RunOutput, Cost) {
        let image = format!("{}/acme/app:1", self.front.host);
        let scope = format!("{}/acme", self.front.host);
        let args = self.verify_args(&image, &scope, extra);
        let (out, cost) = run_measured(&self.f.cmd(&args));
        eprintln!(
            "measured: {} MiB peak RSS, {:.2} s wall: {}",
            cost.max_rss_kib / 1024,
            cost.wall.as_secs_f64(),
            out.stdout.trim()
        );
        (out, cost)
    }
}

/// An image index with `entries` descriptors, the first one carrying `junk` (raw JSON) as
/// an unknown field.
fn junk_index(entries: usize, junk: &str) -> Vec<u8> {
    let mut text = String::from(
        r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":["#,
    );
    for i in 0..entries {
        if i > 0 {
            text.push(',');
        }
        let d = Digest::sha256_of(format!("junk {i}").as_bytes());
        let extra = if i == 0 { junk } else { "0" };
        text.push_str(&format!(
            r#"{{"mediaType":"{MEDIA_TYPE_IMAGE_MANIFEST}","digest":"{d}","size":100,"x-junk":{extra}}}"#
        ));
    }
    text.push_str("]}");
    text.into_bytes()
}

/// About 4 MiB of JSON array, just under the 4 MiB index cap with the rest of a page.
fn four_mib_array() -> String {
    format!("[{}0]", "0,".repeat(2 * 1024 * 1024 - 256))
}

const RSS_GOAL_KIB: u64 = 64 * 1024;

/// Answers every referrers API request with `page` and a link to one more page: the client
/// follows as many as it allows.
fn endless_referrer_pages(page: Vec<u8>) -> Arc<common::front::Rule> {
    Arc::new(move |method: &str, path: &str| {
        (method == "GET" && path.contains("/referrers/")).then(|| {
            let base = path.split('?').next().unwrap_or(path);
            let headers = vec![
                (
                    "Content-Type".to_string(),
                    MEDIA_TYPE_IMAGE_INDEX.to_string(),
                ),
                (
                    "Link".to_string(),
                    format!("<{base}?page=next>; rel=\"next\""),
                ),
            ];
            (200, headers, page.clone())
        })
    })
}

/// Answers `GET` of the tag-schema index of `app:1` in `f` with what `index` holds then.
fn tag_schema_index(
    f: &Fixture,
    index: Arc<std::sync::Mutex<Vec<u8>>>,
) -> Arc<common::front::Rule> {
    let tag_path = format!(
        "/v2/acme/app/manifests/{}",
        f.app_digest("1").referrers_tag()
    );
    Arc::new(move |_: &str, path: &str| {
        (path == tag_path).then(|| {
            let headers = vec![(
                "Content-Type".to_string(),
                MEDIA_TYPE_IMAGE_INDEX.to_string(),
            )];
            (200, headers, index.lock().expect("index").clone())
        })
    })
}

#[test]
fn referrer_pages_full_of_junk_keep_verify_small() {
    let rule = endless_referrer_pages(junk_index(1, &four_mib_array()));
    let fr = Fronted::new(Fixture::published(), std::time::Duration::ZERO, rule);
    denied_small(&fr, "16 junk pages");
}

/// `verify` through `fr` is denied because the junk entries name manifests the registry
/// does not have, and stays under the memory goal.
fn denied_small(fr: &Fronted, case: &str) {
    let (out, cost) = fr.verify(&[]);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stdout.starts_with("DENY unavailable app:1: ") && out.stdout.contains("not found"),
        "{out}"
    );
    assert!(
        cost.max_rss_kib < RSS_GOAL_KIB,
        "{case} took {} KiB\n{out}",
        cost.max_rss_kib
    );
}

#[test]
fn a_junk_tag_schema_index_keeps_verify_small_and_a_junk_flood_is_named() {
    let f = Fixture::published();
    let which = Arc::new(std::sync::Mutex::new(junk_index(1, &four_mib_array())));
    let rule = tag_schema_index(&f, Arc::clone(&which));
    let fr = Fronted::new(f, std::time::Duration::ZERO, rule);
    denied_small(&fr, "a 4 MiB junk index");
    // 1000 referrers that do not exist: the cause is named, not one missing manifest.
    *which.lock().expect("index") = junk_index(1000, "0");
    let (out, _) = fr.verify(&[]);
    assert!(
        out.stdout
            .starts_with("DENY malformed app:1: too many unreadable referrers: 1000 are listed"),
        "{out}"
    );
}

#[test]
fn a_line_break_in_what_a_registry_says_cannot_forge_a_verdict_line() {
    let rule: Arc<common::front::Rule> = Arc::new(|_: &str, path: &str| {
        (path == "/v2/acme/trust/manifests/timestamp").then(|| {
            let body = br#"{"errors":[{"code":"DENIED","message":"no\nADMIT app:1: forged"}]}"#;
            (403, Vec::new(), body.to_vec())
        })
    });
    let fr = Fronted::new(Fixture::published(), std::time::Duration::ZERO, rule);
    let (out, _) = fr.verify(&[]);
    assert_eq!(out.code, Some(1), "{out}");
    assert_eq!(out.stdout.lines().count(), 1, "one verdict line\n{out}");
    assert!(
        out.stdout.starts_with("DENY unauthorized app:1: ")
            && out
                .stdout
                .contains("access denied (DENIED: no\\nADMIT app:1: forged)"),
        "{out}"
    );
}

#[test]
fn a_registry_that_answers_late_gets_unavailable_within_the_deadline() {
    let rule: Arc<common::front::Rule> = Arc::new(|_: &str, _: &str| None);
    // 0.7 s for every answer, 2 s for the whole check: the third request runs out of time.
    let delay = std::time::Duration::from_millis(700);
    let fr = Fronted::new(Fixture::published(), delay, rule);
    let (out, cost) = fr.verify(&["--deadline", "2s"]);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stdout.starts_with("DENY unavailable app:1: ")
            && out
                .stdout
                .contains("deadline of 2 s for the whole operation")
            && out.stdout.contains("GET /v2/"),
        "the slow step is named\n{out}"
    );
    assert!(
        cost.wall < std::time::Duration::from_secs(4),
        "took {:?}\n{out}",
        cost.wall
    );
    // The same registry, given time, admits: the deadline is the only thing in the way.
    let (out, _) = fr.verify(&["--deadline", "60s"]);
    assert_eq!(out.code, Some(0), "{out}");
    assert!(out.stdout.starts_with("ADMIT app:1: "), "{out}");
}

#[test]
fn a_wrong_root_on_a_new_state_changes_nothing_and_the_right_one_still_works() {
    let f = Fixture::published();
    let verify_with = |root: &str| {
        let mut args = f.verify_args("1", "fresh");
        let at = args.len() - 1;
        args[at] = root.to_string();
        f.pg(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    std::fs::write(f.path("garbage.json"), b"{\"signed\": 1}").expect("write");
    let out = verify_with("garbage.json");
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stdout.starts_with("DENY malformed ") && out.stdout.contains("nothing was installed"),
        "{out}"
    );
    assert!(
        !f.path("fresh/root.json").exists(),
        "a garbage root was installed"
    );
    // The root of another scope: well-formed, but its keys sign nothing here.
    for k in ["o-root", "o-targets", "o-snapshot", "o-timestamp"] {
        f.ok(&["key", "generate", &format!("{k}.key")]);
    }
    f.ok(&[
        "repo",
        "init",
        "--dir",
        "other",
        "--scope",
        "127.0.0.1:1/other",
        "--root-key",
        "o-root.key",
        "--targets-key",
        "o-targets.key",
        "--snapshot-key",
        "o-snapshot.key",
        "--timestamp-key",
        "o-timestamp.key",
    ]);
    let out = verify_with("other/metadata/1.root.json");
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stdout.starts_with("DENY threshold_not_met app:1: "),
        "{out}"
    );
    // The right root now: taken, although a root is stored (it was never proven).
    let out = verify_with("pullguard-repo/metadata/1.root.json");
    assert_eq!(out.code, Some(0), "{out}");
    assert!(!out.stderr.contains("--root is not used"), "{out}");
    // Proven now: a later wrong --root is not used.
    let out = verify_with("other/metadata/1.root.json");
    assert_eq!(out.code, Some(0), "{out}");
    assert!(out.stderr.contains("--root is not used"), "{out}");
}

#[test]
fn bad_local_input_gets_one_verdict_line_with_its_cause() {
    let f = Fixture::published();
    let mut args = f.verify_args("1", "state");
    let line = |args: &[String]| {
        let out = f.pg(&args.iter().map(String::as_str).collect::<Vec<_>>());
        // Bad input and local failures are errors (2); anything else is a denial (1).
        let error = ["DENY invalid_request ", "DENY internal "]
            .iter()
            .any(|p| out.stdout.starts_with(p));
        assert_eq!(out.code, Some(if error { 2 } else { 1 }), "{out}");
        assert_eq!(out.stdout.lines().count(), 1, "one verdict line\n{out}");
        out
    };
    // Files that never end are refused at their cap.
    let root_at = args.len() - 1;
    args[root_at] = "/dev/zero".into();
    let out = line(&args);
    assert!(
        out.stdout
            .starts_with("DENY no_trust_root app:1: /dev/zero: larger than the"),
        "{out}"
    );
    args[root_at] = "pullguard-repo/metadata/1.root.json".into();
    let mut endless = args.clone();
    endless.splice(0..0, ["--config".to_string(), "/dev/zero".to_string()]);
    let out = line(&endless);
    assert!(
        out.stdout
            .starts_with("DENY invalid_request app:1: config: /dev/zero: larger than the"),
        "{out}"
    );
    let mut bundle = args.clone();
    bundle.extend(["--bundle".to_string(), "/dev/zero".to_string()]);
    let out = line(&bundle);
    assert!(
        out.stdout
            .starts_with("DENY invalid_request app:1: /dev/zero: larger than the"),
        "{out}"
    );
    // A state "directory" that is a file: said once.
    std::fs::write(f.path("file"), b"x").expect("write");
    let mut file_state = args.clone();
    file_state[5] = "file".into();
    let out = line(&file_state);
    assert!(out.stdout.starts_with("DENY internal app:1: "), "{out}");
    assert_eq!(out.stdout.matches("is not a directory").count(), 1, "{out}");
    // No reference at all: still a named place in the line.
    let mut empty = args.clone();
    empty[1] = String::new();
    let out = line(&empty);
    assert!(
        out.stdout.starts_with("DENY invalid_request \"\": "),
        "{out}"
    );
    // Outside the scope: the reference is named where the path would be.
    let mut outside = args.clone();
    outside[1] = format!("{}/elsewhere/app:1", f.registry.host);
    let out = line(&outside);
    assert!(
        out.stdout.starts_with(&format!(
            "DENY invalid_request {}/elsewhere/app:1: ",
            f.registry.host
        )),
        "{out}"
    );
    // The registry failing while the tag is resolved: a verdict, not a bare error.
    let mut down = args.clone();
    down[1] = "127.0.0.1:9/acme/app:1".into();
    down[3] = "127.0.0.1:9/acme".into();
    down[5] = "state-down".into();
    std::fs::write(
        f.path("pullguard.toml"),
        "[registries.\"127.0.0.1:9\"]\nplain_http = true\n",
    )
    .expect("config");
    let out = line(&down);
    assert!(
        out.stdout
            .starts_with("DENY unavailable app:1: resolving the tag: registry 127.0.0.1:9: "),
        "{out}"
    );
}

/// The adversarial review's cases, measured (peak RSS and wall time of `verify` as a whole
/// process): 16 referrer pages each with one descriptor carrying a 4 MiB unknown array, one
/// 4 MiB tag-schema index of that shape, and a registry that answers every request 9 s late
/// under a 10 s per-request limit. Run by hand, also against another build:
/// `PULLGUARD_BIN=/path/to/old/pullguard cargo test --test registry_e2e -- --ignored --nocapture measure`.
#[test]
#[ignore = "a measurement (about two minutes against an old build), not a check"]
fn measure_adversarial_cases() {
    let pages = endless_referrer_pages(junk_index(1, &four_mib_array()));
    let fr = Fronted::new(Fixture::published(), std::time::Duration::ZERO, pages);
    let (_, pages_cost) = fr.verify(&[]);
    drop(fr);

    let f = Fixture::published();
    let index = tag_schema_index(
        &f,
        Arc::new(std::sync::Mutex::new(junk_index(1, &four_mib_array()))),
    );
    let fr = Fronted::new(f, std::time::Duration::ZERO, index);
    let (_, index_cost) = fr.verify(&[]);
    drop(fr);

    let honest: Arc<common::front::Rule> = Arc::new(|_: &str, _: &str| None);
    let fr = Fronted::new(
        Fixture::published(),
        std::time::Duration::from_secs(9),
        honest,
    );
    let config = format!(
        "[registries.\"{}\"]\nplain_http = true\ntimeout_secs = 10\n",
        fr.front.host
    );
    std::fs::write(fr.f.path("pullguard.toml"), config).expect("config");
    let (_, slow_cost) = fr.verify(&[]);
    for (case, cost) in [
        ("16 junk referrer pages", pages_cost),
        ("4 MiB junk tag-schema index", index_cost),
        ("every answer 9 s late", slow_cost),
    ] {
        println!(
            "{case}: {} MiB peak RSS, {:.1} s wall",
            cost.max_rss_kib / 1024,
            cost.wall.as_secs_f64()
        );
    }
}

#[test]
fn a_config_that_cannot_be_used_exits_64_naming_the_file_and_the_key() {
    let f = Fixture::published();
    let config = f.path("pullguard.toml");
    for (text, says) in [
        (
            format!("[registries.\"{}\"]\nplain-http = true\n", f.registry.host),
            "unknown field `plain-http`",
        ),
        (
            "[[scope]]\nname = \"127.0.0.1:1/acme\"\nroot = \"/nonexistent.json\"\n".to_string(),
            "scope[0].root: /nonexistent.json is not a readable file",
        ),
    ] {
        std::fs::write(&config, &text).expect("config");
        let out = f.pg(&["sign", &f.image("1"), "--key", "team.key"]);
        assert_eq!(out.code, Some(64), "{out}");
        assert!(
            out.stderr.contains(&config.display().to_string()) && out.stderr.contains(says),
            "{out}"
        );
    }
}

// ---- The node daemon ----

/// A client of the daemon's socket.

#[test]
fn the_daemon_answers_on_its_socket_keeps_rollback_state_across_restarts_and_stops_on_sigterm() {
    use pullguard_proto::v1 as pb;
    use std::os::unix::fs::PermissionsExt;
    let f = Fixture::published();
    let socket = f.path("run/pullguard.sock");
    let config = format!(
        "[daemon]\nsocket = \"{}\"\nstate_dir = \"{}\"\naudit_log = \"{}\"\n\n[[scope]]\nname = \"{}\"\nroot = \"{}\"\n\n[registries.\"{}\"]\nplain_http = true\n",
        socket.display(),
        f.path("daemon-state").display(),
        f.path("audit.jsonl").display(),
        f.scope,
        f.path("pullguard-repo/metadata/1.root.json").display(),
        f.registry.host
    );
    std::fs::write(f.path("pullguard.toml"), config).expect("config");
    // A second timestamp is published, so there is an older one to replay later.
    let old_timestamp = f.trust_tag("timestamp");
    f.ok(&["repo", "timestamp", "--key", "timestamp.key"]);
    f.ok(&["repo", "publish"]);
    let daemon = start_daemon(&f, &socket);
    let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode(&socket), 0o660);
    assert_eq!(mode(&f.path("run")), 0o750);
    // A second daemon (its own state) does not take over a socket that is served.
    let second = f.path("second.toml");
    let text = std::fs::read_to_string(f.path("pullguard.toml")).expect("config");
    let text = text.replace("daemon-state", "daemon-state-2");
    std::fs::write(&second, text).expect("config");
    let out = run({
        let mut c = f.cmd(&["serve"]);
        c.env("PULLGUARD_CONFIG", &second);
        c
    });
    assert_eq!(out.code, Some(2), "{out}");
    assert!(out.stderr.contains("is served by another process"), "{out}");
    assert!(socket.exists(), "the first daemon's socket stays");

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let one = f.app_digest("1").to_string();
    let two = f.app_digest("2").to_string();
    let image = f.image("1");
    let elsewhere = format!("{}/other/app:1", f.registry.host);
    let answers = runtime.block_on(async {
        let client = daemon_client(socket.clone()).await;
        let ask = |reference: &str, digest: &str| {
            let request = pb::VerifyRequest {
                reference: reference.to_string(),
                digest: digest.to_string(),
                descriptor_json: String::new(),
            };
            let mut client = client.clone();
            async move { client.verify(request).await.map(|r| r.into_inner()) }
        };
        let admitted = ask(&image, &one).await;
        let again = ask(&image, &one).await;
        let substituted = ask(&image, &two).await;
        let unmatched = ask(&elsewhere, &one).await;
        let garbage = ask("not a reference", &one).await;
        (admitted, again, substituted, unmatched, garbage)
    });
    let (admitted, again, substituted, unmatched, garbage) = answers;
    let admitted = admitted.expect("an answer");
    assert!(admitted.admitted, "{admitted:?}");
    assert!(
        admitted.message.contains("signed (version 1) by role team"),
        "{admitted:?}"
    );
    assert!(!admitted.cached, "{admitted:?}");
    let again = again.expect("an answer");
    assert!(again.admitted && again.cached, "{again:?}");
    let evidence = again.evidence.as_ref().expect("evidence");
    assert_eq!(
        (evidence.role.as_str(), evidence.signature_version),
        ("team", 1)
    );
    let substituted = substituted.expect("an answer");
    assert!(!substituted.admitted);
    assert_eq!(
        substituted.reason,
        pb::Reason::DigestMismatch as i32,
        "{substituted:?}"
    );
    let unmatched = unmatched.expect("an answer");
    assert!(!unmatched.admitted);
    assert!(
        unmatched.message.contains("in no configured scope"),
        "{unmatched:?}"
    );
    let garbage = garbage.expect_err("bad input");
    assert_eq!(garbage.code(), tonic::Code::InvalidArgument, "{garbage:?}");

    stop_daemon(daemon, &socket);

    // A restart keeps the trusted state: the registry replays the older timestamp while
    // the daemon is down, and the restarted daemon still knows the newer one.
    f.retag_trust("timestamp", &old_timestamp);
    let daemon = start_daemon(&f, &socket);
    let replayed = runtime.block_on(async {
        let request = pb::VerifyRequest {
            reference: image.clone(),
            digest: one.clone(),
            descriptor_json: String::new(),
        };
        daemon_client(socket.clone()).await.verify(request).await
    });
    let replayed = replayed.expect("an answer").into_inner();
    assert!(!replayed.admitted, "{replayed:?}");
    assert_eq!(replayed.reason, pb::Reason::Rollback as i32, "{replayed:?}");
    stop_daemon(daemon, &socket);
}
