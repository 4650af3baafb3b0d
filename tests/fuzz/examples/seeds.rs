//! Writes the seed corpora of the fuzz targets into `seeds/<target>/` (the directory given,
//! default `seeds` beside this crate's Cargo.toml): real documents from the fixed
//! repository (`pullguard_fuzz::repo`), from the plugin's `RepoBuilder` and from the
//! publisher (`publish::repo::Workspace`), OCI documents, a bundle, the shipped node config
//! and the configs and names of the plugin's unit tests. Deterministic: fixed keys (ECDSA
//! and RSA signatures are made by the targets, never stored), fixed times; running it again
//! writes the same files.
//!
//! `cargo run --example seeds [-- DIR]` in tests/fuzz (scripts/fuzz.sh seeds does that).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use chrono::{TimeZone, Utc};
use pullguard_fuzz::input::write_piece;
use pullguard_fuzz::repo::{self, Repo, SCOPE};
use pullguard_plugin::bundle::{Bundle, BundledImage};
use pullguard_plugin::publish::repo::{Expiries, Retention, RoleKeys, Workspace};
use pullguard_plugin::registry::oci::{
    Descriptor, ImageIndex, ImageManifest, ARTIFACT_SIGNATURE, ARTIFACT_TUF,
    MEDIA_TYPE_IMAGE_MANIFEST,
};
use pullguard_plugin::registry::{Digest, Scope};
use pullguard_plugin::tuf::names::RoleName;
use pullguard_plugin::tuf::signing::SigningKey;
use pullguard_plugin::tuf::testing::RepoBuilder;
use serde_json::json;

type Seeds = BTreeMap<String, Vec<u8>>;

fn main() {
    let out = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds"));
    let docs = metadata_documents();
    let targets: [(&str, Seeds); 10] = [
        ("cjson", cjson(&docs)),
        ("schema", docs.clone()),
        ("path_pattern", path_pattern()),
        ("threshold", threshold()),
        ("workflow", workflow()),
        ("reference", reference()),
        ("oci", oci()),
        ("answers", answers()),
        ("bundle", bundle()),
        ("config", config()),
    ];
    for (target, seeds) in targets {
        let dir = out.join(target);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let total: usize = seeds.values().map(Vec::len).sum();
        for (name, bytes) in &seeds {
            fs::write(dir.join(name), bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        println!("{target}: {} seeds, {total} bytes", seeds.len());
    }
}

fn at(year: i32, month: u32, day: u32) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(year, month, day, 0, 0, 0)
        .single()
        .unwrap_or_default()
}

/// TUF documents: the fixed repository, RepoBuilder's, the publisher's.
fn metadata_documents() -> Seeds {
    let mut seeds = Seeds::new();
    let fixed = Repo::get();
    for (name, bytes) in fixed.file_names() {
        seeds.insert(format!("fixed-{name}"), bytes.to_vec());
    }
    for (i, (_, bytes)) in fixed.rotations.iter().enumerate() {
        seeds.insert(format!("fixed-{}.root.json", i + 2), bytes.clone());
    }
    for image in &fixed.images {
        let name = image.target_path.replace(['/', ':'], "-");
        seeds.insert(
            format!("fixed-signature-{name}.json"),
            image.signature.clone(),
        );
    }

    // RepoBuilder (the plugin's test repository writer), with fixed expiries.
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let mut builder = RepoBuilder::new(&tmp.path().join("builder"));
    for role in ["root", "timestamp", "snapshot", "targets"] {
        builder.set_expires(role, at(2100, 1, 1));
    }
    builder.add_target("debian:9.9", b"manifest bytes");
    builder.add_target("team/api:1.4", b"other manifest");
    builder.publish_all();
    builder.publish_timestamp();
    for (role, version) in [
        ("root", 1),
        ("timestamp", 1),
        ("timestamp", 2),
        ("snapshot", 1),
        ("targets", 1),
    ] {
        if let Some(bytes) = builder.published(role, version) {
            seeds.insert(format!("builder-{version}.{role}.json"), bytes.to_vec());
        }
    }

    // The publisher: init, a target, a delegation, a role handed to hash bins.
    let keys: Vec<SigningKey> = (1..=6).map(repo::publisher_key).collect();
    let signers: Vec<&SigningKey> = keys.iter().collect();
    let now = at(2026, 1, 1);
    let role_keys = |i: usize| RoleKeys {
        keys: vec![keys[i].public()],
        threshold: 1,
    };
    let scope: Scope = SCOPE.parse().unwrap_or_else(|e| panic!("{e}"));
    let dir = tmp.path().join("publisher");
    let mut ws = Workspace::init(
        &dir,
        &scope,
        None,
        [
            ("root", role_keys(0)),
            ("targets", role_keys(1)),
            ("snapshot", role_keys(2)),
            ("timestamp", role_keys(3)),
        ],
        Expiries::default(),
        Retention::default(),
        &signers,
        now,
    )
    .unwrap_or_else(|e| panic!("publisher init: {e}"));
    let sha = "ab".repeat(32);
    ws.set_target(
        &RoleName::targets(),
        "app:1",
        10,
        &sha,
        MEDIA_TYPE_IMAGE_MANIFEST,
        1,
        &signers,
        now,
    )
    .unwrap_or_else(|e| panic!("set target: {e}"));
    ws.delegate(
        &RoleName::targets(),
        "team",
        role_keys(4),
        vec!["team/*".into()],
        true,
        &signers,
        &[&keys[4]],
        now,
    )
    .unwrap_or_else(|e| panic!("delegate: {e}"));
    let team = RoleName::new("team").unwrap_or_else(|e| panic!("{e}"));
    ws.add_bins(&team, 4, &[&keys[4]], now)
        .unwrap_or_else(|e| panic!("bins: {e}"));
    ws.snapshot(&signers, now)
        .unwrap_or_else(|e| panic!("snapshot: {e}"));
    ws.timestamp(&signers, now)
        .unwrap_or_else(|e| panic!("timestamp: {e}"));
    let subject = Descriptor::new(MEDIA_TYPE_IMAGE_MANIFEST, b"an image manifest");
    let signature = ws
        .signature_document("app", &["1"], &subject, 1, &[&keys[1]], now)
        .unwrap_or_else(|e| panic!("signature: {e}"));
    seeds.insert("publisher-signature.json".into(), signature);
    let mut files: Vec<PathBuf> = fs::read_dir(ws.metadata_dir())
        .unwrap_or_else(|e| panic!("metadata dir: {e}"))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    for path in files {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        if let (Some(name), Ok(bytes)) = (name, fs::read(&path)) {
            seeds.insert(format!("publisher-{name}"), bytes);
        }
    }
    seeds
}

fn cjson(docs: &Seeds) -> Seeds {
    let mut seeds: Seeds = docs
        .iter()
        .filter(|(name, _)| name.starts_with("fixed-") || name.starts_with("builder-1.root"))
        .map(|(n, b)| (n.clone(), b.clone()))
        .collect();
    for (i, text) in [
        r#"{"b": [1, {"z": null, "a": true}], "a": "x", "c": -5}"#,
        "{\"k\": \"a\\\"b\\\\c\\nd\\u0001\u{e9}\"}",
        "{\"e\u{301}\": 1, \"\u{ff61}\": 1, \"\u{1f600}\": 2, \"z\": 3}",
        r#"{"version": 1.5, "n": -0, "big": 18446744073709551615, "neg": -9223372036854775808}"#,
        r#"{"a": 1, "\u0061": 2}"#,
        r#"[{"x": {"k": 1, "k": 1}}]"#,
        r#"{"a": [1, -2, 3.5, "x", null, true, {"b": {}}]}"#,
        "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
    ]
    .into_iter()
    .enumerate()
    {
        seeds.insert(format!("json-{i}.json"), text.as_bytes().to_vec());
    }
    seeds
}

fn path_pattern() -> Seeds {
    let cases = [
        (1u8, "team/*", "team/api:1"),
        (4, "*", "app:1"),
        (8, "team/[a-m]*/v?", "team/api/v1"),
        (15, "[!abc]pp:*", "app:1"),
        (31, "*.tar.gz", "foo.tar.gz"),
        (0, "a/*/c", "a/b/d/c"),
        (2, "[", "["),
        (3, "[]]x", "]x"),
        (5, "**a*b*c*", "xaxbxcx"),
        (7, "e3b0c4", "team/web:1"),
    ];
    cases
        .iter()
        .enumerate()
        .map(|(i, (bits, pattern, path))| {
            let mut bytes = vec![*bits];
            bytes.extend_from_slice(format!("{pattern}\n{path}").as_bytes());
            (format!("pattern-{i}"), bytes)
        })
        .collect()
}

/// Threshold inputs: a header (see fuzz_targets/threshold.rs) and an envelope.
fn threshold() -> Seeds {
    let fixed = Repo::get();
    let signature = &fixed.images[0].signature;
    let root = fixed.initial_root();
    let timestamp = &fixed.files["timestamp"];
    // mode, listed (u16), signing (u16), threshold, flags, high water
    let headers: [(&str, [u8; 8], &[u8]); 10] = [
        (
            "all-keys-all-sign",
            [0, 0xff, 0x0f, 0xff, 0x00, 3, 0, 0],
            timestamp,
        ),
        ("rsa-two-schemes", [0, 0x60, 0, 0x60, 0, 1, 0, 0], timestamp),
        ("alias-and-dup", [0, 0x81, 0, 0x80, 0, 1, 1, 0], timestamp),
        ("unusable", [0, 0x08, 0x0f, 0x08, 0, 0, 2, 0], timestamp),
        ("ecdsa-spoiled", [0, 0x18, 0, 0x18, 0, 1, 4, 0], timestamp),
        ("own-keys", [0, 0, 0, 0, 0, 0, 8, 0], root),
        ("root", [1, 0, 0, 0, 0, 0, 0, 0], root),
        ("root-extra-sigs", [1, 0, 0, 0x1f, 0, 0, 2, 0], root),
        ("judge", [2, 0x01, 0, 0x01, 0, 0, 32, 1], signature),
        ("judge-no-tag", [2, 0x03, 0, 0x03, 0, 1, 16, 0], signature),
    ];
    headers
        .iter()
        .map(|(name, header, doc)| {
            let mut bytes = header.to_vec();
            bytes.extend_from_slice(doc);
            (name.to_string(), bytes)
        })
        .collect()
}

/// Workflow inputs: a header and records (see fuzz_targets/workflow.rs).
fn workflow() -> Seeds {
    let fixed = Repo::get();
    let signed = |role: &str| serde_json::to_vec(&fixed.signed[role]).unwrap_or_default();
    let record = |out: &mut Vec<u8>, slot: u8, mode: u8, bytes: &[u8]| {
        out.push(slot);
        out.push(mode);
        write_piece(out, bytes);
    };
    let mut seeds = Seeds::new();
    seeds.insert("fixed".into(), vec![0, 0, 0, 128]);
    seeds.insert("fixed-twice-all-paths".into(), vec![5, 1, 1, 129]);
    seeds.insert("stored-state".into(), vec![9, 0, 2, 128]);
    seeds.insert("rotations".into(), vec![2, 0, 0, 128]);

    // Every role as signed JSON that the harness signs, pins rewritten.
    let mut all = vec![1, 0, 1, 130];
    for (slot, role) in [
        (6u8, repo::BINS[0]),
        (7, repo::BINS[1]),
        (5, repo::TEAM),
        (4, "targets"),
        (3, "snapshot"),
        (2, "timestamp"),
    ] {
        record(&mut all, slot, 0x11, &signed(role));
    }
    seeds.insert("all-signed-json".into(), all);

    // A rotation written out: root v2 signed by both root keys, v3 by the new one, the
    // timestamp by the rotated key.
    let mut rotation = vec![0, 0, 0, 128];
    record(
        &mut rotation,
        0,
        0x09,
        &serde_json::to_vec(&fixed.rotations[0].0).unwrap_or_default(),
    );
    record(
        &mut rotation,
        1,
        0x05,
        &serde_json::to_vec(&fixed.rotations[1].0).unwrap_or_default(),
    );
    record(&mut rotation, 2, 0x05, &signed("timestamp"));
    seeds.insert("rotation-json".into(), rotation);

    let mut raw = vec![4, 0, 1, 128];
    record(&mut raw, 2, 0, &fixed.files["timestamp"]);
    record(&mut raw, 4, 0, &fixed.files["targets"]);
    record(&mut raw, 12, 0, b"team/api:1");
    record(&mut raw, 11, 0, b"substituted content");
    seeds.insert("raw-files-and-path".into(), raw);

    let mut errors = vec![1, 0, 0, 128];
    record(&mut errors, 0, 0x0a, b"");
    record(&mut errors, 5, 0x02, b"");
    seeds.insert("fetch-errors".into(), errors);

    let mut stored = vec![1, 0, 1, 127];
    record(&mut stored, 8, 0x01, &signed("timestamp"));
    record(&mut stored, 9, 0, &fixed.files["snapshot"]);
    record(&mut stored, 10, 0, &fixed.files["targets"]);
    seeds.insert("stored-pieces".into(), stored);

    let mut wrong = vec![0, 0, 0, 128];
    record(&mut wrong, 3, 0x13, &signed("snapshot"));
    seeds.insert("wrong-key".into(), wrong);
    seeds
}

fn reference() -> Seeds {
    let hex = "5b0bcabd1ed22e9fb1310cf6c2dec7cdef19f0ad69efa1f392e94a4333501270";
    let cases = [
        format!("127.0.0.1:5000/acme/team/api:1.4\n127.0.0.1:5000/acme\nsha256:{hex}"),
        format!("localhost/acme/api@sha256:{hex}\nlocalhost/acme/\nteam/a?"),
        "127.0.0.1:5000/acme/trust:timestamp\n127.0.0.1:5000/acme\n2.root".to_string(),
        "127.0.0.1:5000/acmex/api:1\n127.0.0.1:5000/acme\n..".to_string(),
        "127.0.0.1:5001/acme/api:1\n127.0.0.1:5000/acme\nsha512:00".to_string(),
        "[::1]:5000/a/b_c/d--e:v1.0-rc\n[::1]:5000/a\ntimestamp".to_string(),
        format!(
            "Registry.Invalid:443/library/debian:9@sha256:{hex}\nregistry.invalid:443/library\n"
        ),
        "debian:9.9\n127.0.0.1:5000\nmd5:00".to_string(),
        "127.0.0.1:5000/acme//api:1\n127.0.0.1:5000/acme/api:-x\n".to_string(),
    ];
    cases
        .iter()
        .enumerate()
        .map(|(i, c)| (format!("ref-{i}"), c.as_bytes().to_vec()))
        .collect()
}

fn oci() -> Seeds {
    let fixed = Repo::get();
    let mut seeds = Seeds::new();
    seeds.insert(
        "image-manifest.json".into(),
        fixed.images[0].manifest.clone(),
    );
    let subject = Descriptor::new(MEDIA_TYPE_IMAGE_MANIFEST, &fixed.images[0].manifest);
    let sig = ImageManifest::artifact(
        ARTIFACT_SIGNATURE,
        &fixed.images[0].signature,
        Some(subject.clone()),
    );
    seeds.insert("signature-artifact.json".into(), sig.to_bytes());
    let tuf = ImageManifest::artifact(ARTIFACT_TUF, &fixed.files["timestamp"], None);
    seeds.insert("tuf-artifact.json".into(), tuf.to_bytes());
    let mut index = ImageIndex::empty();
    let mut entry = Descriptor::new(MEDIA_TYPE_IMAGE_MANIFEST, &sig.to_bytes());
    entry.artifact_type = Some(ARTIFACT_SIGNATURE.into());
    entry.annotations = Some(
        [(
            "org.opencontainers.image.created".to_string(),
            "2026-01-01T00:00:00Z".to_string(),
        )]
        .into(),
    );
    index.manifests.push(entry);
    index
        .manifests
        .push(Descriptor::new(MEDIA_TYPE_IMAGE_MANIFEST, b"cosign"));
    seeds.insert("referrers-index.json".into(), index.to_bytes());
    let digest = Digest::sha256_of(b"sig");
    seeds.insert(
        "referrers-junk.json".into(),
        format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{MEDIA_TYPE_IMAGE_MANIFEST}","digest":"{digest}","size":3,"artifactType":"a/b","annotations":{{"k":"v"}},"x-junk":[[1,2],{{"deep":[]}}]}}],"x-more":{{}}}}"#
        )
        .into_bytes(),
    );
    seeds.insert(
        "docker-list.json".into(),
        serde_json::to_vec(&json!({"schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
            "manifests": [{"mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                           "digest": digest.to_string(), "size": 7,
                           "platform": {"architecture": "amd64", "os": "linux"}}]}))
        .unwrap_or_default(),
    );
    seeds.insert(
        "token.json".into(),
        br#"{"token":"abc","expires_in":300}"#.to_vec(),
    );
    seeds.insert(
        "access-token.json".into(),
        br#"{"access_token":"xyz"}"#.to_vec(),
    );
    seeds.insert(
        "challenge-bearer".into(),
        br#"Bearer realm="https://auth.invalid/token",service="registry.invalid",scope="repository:acme/app:pull""#.to_vec(),
    );
    seeds.insert("challenge-basic".into(), br#"Basic realm="x""#.to_vec());
    seeds.insert(
        "challenge-escapes".into(),
        br#"bearer realm="a\"b,c", scope=x , service="""#.to_vec(),
    );
    seeds
}

fn answers() -> Seeds {
    // A byte that picks the part, then its input (see the target).
    let cases = [
        (
            "link-distribution",
            "L</v2/acme/app/referrers/sha256:ab?last=x&n=1>; rel=\"next\"\n/v2/acme/app/referrers/sha256:ab?n=2",
        ),
        (
            "link-two",
            "L</p0>; rel=\"prev\"; title=\"a, b; c\", <https://cdn.invalid/p2>; rel=\"Next last\"\n?n=2&last=sha256:cd",
        ),
        ("link-relative", "L<./sha256:cd>; rel=next\n../x"),
        ("retry-seconds", "R120\n\u{1}\u{2}"),
        ("retry-date", "RWed, 02 Dec 2026 12:01:30 GMT\n\u{0}\u{0}\u{3}\u{c}"),
        (
            "error-body",
            r#"E{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":[{"Type":"repository","Name":"acme/app","Action":"pull"}]},{"code":"DENIED"}]}"#,
        ),
        (
            "error-html",
            "E<html>\n<body>\u{1b}[31m502 Bad Gateway\u{202e}</body>\n</html>",
        ),
        (
            "docker-config",
            r#"D{"auths":{"https://127.0.0.1:5000/v1/":{"auth":"YWxpY2U6czNjcjN0"},"reg:1":{}},"credHelpers":{"gcr.invalid":"gcloud"},"credsStore":"desktop"}"#,
        ),
        ("docker-lines", "D127.0.0.1:5000\nalice\ns3cr3t: with a colon"),
    ];
    cases
        .iter()
        .map(|(name, text)| (name.to_string(), text.as_bytes().to_vec()))
        .collect()
}

fn bundle() -> Seeds {
    let fixed = Repo::get();
    let mut bundle = Bundle::new(SCOPE);
    for (name, bytes) in fixed.file_names() {
        bundle
            .add_metadata(&name, bytes.to_vec())
            .unwrap_or_else(|e| panic!("{e}"));
    }
    for image in &fixed.images {
        bundle.images.push(BundledImage {
            reference: image.reference.clone(),
            digest: Digest::sha256_of(&image.manifest),
            repository: image.repository.clone(),
            signatures: vec![String::from_utf8_lossy(&image.signature).into_owned()],
        });
    }
    let mut seeds = Seeds::new();
    seeds.insert(
        "fixed-repository.json".into(),
        bundle.to_vec().unwrap_or_default(),
    );
    let mut rotated = bundle.clone();
    for (i, (_, bytes)) in fixed.rotations.iter().enumerate() {
        rotated
            .add_metadata(&format!("{}.root.json", i + 2), bytes.clone())
            .unwrap_or_else(|e| panic!("{e}"));
    }
    seeds.insert(
        "with-rotations.json".into(),
        rotated.to_vec().unwrap_or_default(),
    );
    seeds.insert(
        "small.json".into(),
        br#"{"format":"pullguard-bundle/1","scope":"127.0.0.1:5000/acme","metadata":{"timestamp.json":"{}"},"images":[]}"#.to_vec(),
    );
    seeds
}

fn config() -> Seeds {
    let mut seeds = Seeds::new();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging/pullguard.toml");
    seeds.insert(
        "packaging-pullguard.toml".into(),
        fs::read(&shipped).unwrap_or_else(|e| panic!("{}: {e}", shipped.display())),
    );
    // A root that exists on every machine (validate only asks whether it is a file).
    let root = "/etc/passwd";
    let hex = "a".repeat(64);
    seeds.insert(
        "full.toml".into(),
        format!(
            r#"[daemon]
socket = "/run/pullguard/pullguard.sock"
state_dir = "/var/lib/pullguard"
metrics = "127.0.0.1:9464"
unmatched = "admit"
allow = ["registry.invalid/pause@sha256:{hex}"]
verify_deadline = "5s"
refresh_interval = "60s"

[[scope]]
name = "127.0.0.1:5000/acme"
root = "{root}"
require = "signature"
mode = "warn"
offline_grace = "1h"

[[scope]]
name = "127.0.0.1:5000/acme/team"
root = "{root}"
source = "bundle:///var/lib/pullguard/acme.bundle"
trust_repository = "acme/trust"

[registries."127.0.0.1:5000"]
plain_http = true
timeout_secs = 5
username = "u"
password = "p"

[containerd]
socket = "/run/containerd/containerd.sock"
namespaces = ["k8s.io", "default"]

[cri]
socket = "/run/pullguard/cri.sock"
upstream = "/var/run/crio/crio.sock"
"#
        )
        .into_bytes(),
    );
    for (i, text) in [
        "[daemon]\nsokcet = \"/x\"",
        "[daemon]\nallow = [\"r.io/pause:3.9\"]",
        "[daemon]\nverify_deadline = \"0s\"\nrefresh_interval = \"2d\"",
        "[containerd]\nnamespaces = [\"k8s.io\", \"-x\"]",
        "[cri]\nsocket = \"/run/c.sock\"\nupstream = \"/run/c.sock\"",
        "[[scope]]\nname = \"h:1/a\"\nroot = \"/etc/passwd\"\nsource = \"file:///srv/tuf\"\noffline_grace = \"0s\"",
        "[registries.\"h:1\"]\ntimeout_secs = 9223372036854775807",
        "{\"registries\": {}}",
    ]
    .into_iter()
    .enumerate()
    {
        seeds.insert(format!("case-{i}.toml"), text.as_bytes().to_vec());
    }
    seeds
}
