//! Interoperability: `pullguard tuf-client` against TUF repositories that python-tuf builds
//! (`tests/interop/tufrepo.py`), served over real HTTP on 127.0.0.1.
//!
//! Each test makes a fresh repository and client, changes the repository the way a publisher
//! or an attacker would, runs the client, and checks its exit code, the reason it gives on
//! stderr, the requests it made and what it trusts afterwards (the versions inside the files
//! of its metadata directory). The attack scenarios follow the TUF specification's client
//! workflow (§5) and the TUF conformance suite.
//!
//! Needs a venv with python-tuf (see `common::python`) and the `faketime` Debian package.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{read_json, RunOutput, StaticServer};

const TUFREPO: &str = "tests/interop/tufrepo.py";

/// A python-tuf repository served over HTTP, plus a client's metadata and target directories.
struct Fixture {
    tmp: tempfile::TempDir,
    repo: PathBuf,
    meta: PathBuf,
    targets: PathBuf,
    server: StaticServer,
}

impl Fixture {
    /// Builds a repository with `commands` (the first one is `init ...`), serves it, and
    /// initialises a client with the repository's first root.
    fn new(commands: &[&[&str]]) -> Self {
        let tmp = common::tempdir();
        let repo = tmp.path().join("repo");
        let client = tmp.path().join("client");
        let fixture = Fixture {
            server: StaticServer::start(&repo),
            meta: client.join("metadata"),
            targets: client.join("targets"),
            repo,
            tmp,
        };
        fixture.publish(commands);
        let mut init = common::pullguard();
        init.arg("tuf-client")
            .arg("--metadata-dir")
            .arg(&fixture.meta)
            .arg("init")
            .arg(fixture.repo.join("metadata/1.root.json"));
        let out = common::run(init);
        fixture.ok(&out);
        fixture
    }

    /// Runs tufrepo.py commands against the repository, in one Python process.
    fn publish(&self, commands: &[&[&str]]) {
        let mut cmd = Command::new(common::python());
        cmd.arg(common::repo_root().join(TUFREPO)).arg(&self.repo);
        for (i, command) in commands.iter().enumerate() {
            if i > 0 {
                cmd.arg(";");
            }
            cmd.args(*command);
        }
        let out = common::run(cmd);
        assert_eq!(
            out.code,
            Some(0),
            "the repository generator failed ({}):\n{out}",
            common::SETUP_HINT
        );
    }

    fn client(&self) -> Command {
        let mut cmd = common::pullguard();
        self.client_args(&mut cmd);
        cmd
    }

    fn client_args(&self, cmd: &mut Command) {
        cmd.arg("tuf-client")
            .arg("--metadata-url")
            .arg(self.server.url("metadata"))
            .arg("--metadata-dir")
            .arg(&self.meta);
    }

    fn refresh(&self) -> RunOutput {
        let mut cmd = self.client();
        cmd.arg("refresh");
        common::run(cmd)
    }

    /// A refresh with the clock moved by libfaketime (`spec` as for `faketime -f`).
    fn refresh_at(&self, spec: &str) -> RunOutput {
        let mut cmd = self.client();
        cmd.arg("refresh");
        common::run(common::at_time(spec, &cmd))
    }

    fn download(&self, names: &[&str]) -> RunOutput {
        let mut cmd = self.client();
        for name in names {
            cmd.arg("--target-name").arg(name);
        }
        cmd.arg("--target-dir")
            .arg(&self.targets)
            .arg("--target-base-url")
            .arg(self.server.url("targets"))
            .arg("download");
        common::run(cmd)
    }

    /// The repository's current version of `role`.
    fn repo_version(&self, role: &str) -> u64 {
        let state: serde_json::Value = read_json(&self.repo.join("state.json"));
        state["versions"][role]
            .as_u64()
            .unwrap_or_else(|| panic!("the repository has no role {role}"))
    }

    /// Bytes the repository serves at `path` (relative to its root).
    fn served(&self, path: &str) -> Vec<u8> {
        fs::read(self.repo.join(path)).unwrap_or_else(|e| panic!("reading served {path}: {e}"))
    }

    /// The version inside the client's trusted `<file>.json`, if there is one.
    fn trusted(&self, file: &str) -> Option<u64> {
        let path = self.meta.join(format!("{file}.json"));
        if !path.exists() {
            return None;
        }
        let doc: serde_json::Value = read_json(&path);
        doc["signed"]["version"].as_u64()
    }

    /// Every `*.json` file in the metadata directory with the version inside, sorted by file
    /// name (what the conformance suite calls the trusted roles).
    fn trusted_roles(&self) -> Vec<(String, u64)> {
        let mut roles: Vec<(String, u64)> = list_dir(&self.meta)
            .into_iter()
            .filter_map(|name| name.strip_suffix(".json").map(str::to_string))
            .map(|role| {
                let version = self.trusted(&role).unwrap_or(0);
                (role, version)
            })
            .collect();
        roles.sort();
        roles
    }

    /// Everything a failure message needs: the command's output, the requests the server
    /// saw, and what the client trusts.
    fn context(&self, out: &RunOutput) -> String {
        format!(
            "{out}\n--- requests ---\n{}\n--- trusted ---\n{:?}\n--- target dir ---\n{:?}",
            self.server.describe(),
            self.trusted_roles(),
            list_dir(&self.targets),
        )
    }

    fn ok(&self, out: &RunOutput) {
        assert_eq!(out.code, Some(0), "expected success\n{}", self.context(out));
    }

    /// The command failed with exit code 1 and a `pullguard: ` reason holding every one of
    /// `reasons`.
    fn fails(&self, out: &RunOutput, reasons: &[&str]) {
        assert_eq!(
            out.code,
            Some(1),
            "expected exit code 1\n{}",
            self.context(out)
        );
        assert!(
            out.stderr.contains("pullguard: "),
            "no `pullguard: ` reason on stderr\n{}",
            self.context(out)
        );
        for reason in reasons {
            assert!(
                out.stderr.contains(reason),
                "stderr does not say {reason:?}\n{}",
                self.context(out)
            );
        }
    }

    fn assert_requests(&self, expected: &[&str], out: &RunOutput) {
        assert_eq!(
            self.server.requests(),
            expected,
            "unexpected request sequence\n{}",
            self.context(out)
        );
    }

    fn assert_last_request(&self, expected: &str, out: &RunOutput) {
        assert_eq!(
            self.server.requests().last().map(String::as_str),
            Some(expected),
            "unexpected last request\n{}",
            self.context(out)
        );
    }

    fn assert_trusted(&self, expected: &[(&str, u64)], out: &RunOutput) {
        let expected: Vec<(String, u64)> =
            expected.iter().map(|(r, v)| (r.to_string(), *v)).collect();
        assert_eq!(
            self.trusted_roles(),
            expected,
            "unexpected trusted metadata\n{}",
            self.context(out)
        );
    }
}

/// The names in a directory (hidden ones too), sorted; empty if it does not exist.
fn list_dir(dir: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .map(|e| {
            e.expect("directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

fn meta(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| format!("metadata/{n}")).collect()
}

// ----- 1. normal updates ------------------------------------------------------------------

/// Init, refresh, download, download again — with one key type for every role.
fn normal_update(keytype: &str) {
    let fx = Fixture::new(&[&["init", "--keytype", keytype]]);
    let out = fx.refresh();
    fx.ok(&out);
    let expected = meta(&[
        "2.root.json",
        "timestamp.json",
        "1.snapshot.json",
        "1.targets.json",
    ]);
    fx.assert_requests(
        &expected.iter().map(String::as_str).collect::<Vec<_>>(),
        &out,
    );
    fx.assert_trusted(
        &[
            ("root", 1),
            ("snapshot", 1),
            ("targets", 1),
            ("timestamp", 1),
        ],
        &out,
    );
    assert_eq!(
        fs::read(fx.meta.join("timestamp.json")).expect("trusted timestamp"),
        fx.served("metadata/timestamp.json"),
        "the client must keep the exact bytes it verified"
    );

    let data = format!("a {keytype} target");
    fx.publish(&[&[
        "add-target",
        "path/to/file.txt",
        "--data",
        data.as_str(),
        "--hashes",
        "sha256,sha512",
    ]]);
    fx.server.clear();
    let out = fx.download(&["path/to/file.txt"]);
    fx.ok(&out);
    let requests = fx.server.requests();
    assert_eq!(
        requests[..4],
        meta(&[
            "2.root.json",
            "timestamp.json",
            "2.snapshot.json",
            "2.targets.json"
        ]),
        "{}",
        fx.context(&out)
    );
    // One target request, for `path/to/<hash>.file.txt` with one of the listed hashes.
    let served: Vec<String> = list_dir(&fx.repo.join("targets/path/to"))
        .into_iter()
        .map(|name| format!("targets/path/to/{name}"))
        .collect();
    assert_eq!(requests.len(), 5, "{}", fx.context(&out));
    assert!(
        served.contains(&requests[4]),
        "target request {} is none of {served:?}\n{}",
        requests[4],
        fx.context(&out)
    );
    assert_eq!(
        fs::read(fx.targets.join("path%2Fto%2Ffile.txt")).expect("downloaded target"),
        data.as_bytes()
    );
    assert_eq!(
        list_dir(&fx.targets),
        ["path%2Fto%2Ffile.txt"],
        "{}",
        fx.context(&out)
    );

    // Nothing changed: root probe and timestamp only, and the target comes from the cache.
    fx.server.clear();
    let out = fx.download(&["path/to/file.txt"]);
    fx.ok(&out);
    fx.assert_requests(&["metadata/2.root.json", "metadata/timestamp.json"], &out);
}

#[test]
fn normal_update_ed25519() {
    normal_update("ed25519");
}

#[test]
fn normal_update_ecdsa() {
    normal_update("ecdsa");
}

#[test]
fn normal_update_rsa() {
    normal_update("rsa");
}

#[test]
fn normal_update_without_consistent_snapshots() {
    let fx = Fixture::new(&[
        &["init", "--no-consistent-snapshot"],
        &["add-target", "path/to/file.txt", "--data", "plain layout"],
    ]);
    let out = fx.refresh();
    fx.ok(&out);
    fx.assert_requests(
        &[
            "metadata/2.root.json",
            "metadata/timestamp.json",
            "metadata/snapshot.json",
            "metadata/targets.json",
        ],
        &out,
    );
    fx.server.clear();
    let out = fx.download(&["path/to/file.txt"]);
    fx.ok(&out);
    fx.assert_requests(
        &[
            "metadata/2.root.json",
            "metadata/timestamp.json",
            "targets/path/to/file.txt",
        ],
        &out,
    );
    assert_eq!(
        fs::read(fx.targets.join("path%2Fto%2Ffile.txt")).expect("downloaded target"),
        b"plain layout"
    );
}

// ----- 2. root rotation -------------------------------------------------------------------

#[test]
fn root_rotation_is_followed() {
    let fx = Fixture::new(&[&["init"]]);
    fx.publish(&[
        &["rotate", "root"],
        &["rotate", "root", "--keytype", "ecdsa"],
    ]);
    let out = fx.refresh();
    fx.ok(&out);
    assert_eq!(
        fx.server.requests()[..4],
        meta(&[
            "2.root.json",
            "3.root.json",
            "4.root.json",
            "timestamp.json"
        ]),
        "{}",
        fx.context(&out)
    );
    assert_eq!(fx.trusted("root"), Some(3), "{}", fx.context(&out));
    assert_eq!(
        fs::read(fx.meta.join("root.json")).expect("trusted root"),
        fx.served("metadata/3.root.json")
    );
}

#[test]
fn root_not_signed_by_the_trusted_root_keys_is_rejected() {
    let fx = Fixture::new(&[&["init"]]);
    fx.publish(&[&["rotate", "root", "--sign", "new"]]);
    let out = fx.refresh();
    fx.fails(&out, &["root: 0 of 1 required signatures are valid"]);
    fx.assert_requests(&["metadata/2.root.json"], &out);
    assert_eq!(
        fs::read(fx.meta.join("root.json")).expect("trusted root"),
        fx.served("metadata/1.root.json")
    );
}

#[test]
fn root_not_signed_by_its_own_keys_is_rejected() {
    let fx = Fixture::new(&[&["init"]]);
    fx.publish(&[&["rotate", "root", "--sign", "old"]]);
    let out = fx.refresh();
    fx.fails(&out, &["root: 0 of 1 required signatures are valid"]);
    fx.assert_trusted(&[("root", 1)], &out);
}

// ----- 3. rollback ------------------------------------------------------------------------

#[test]
fn root_rollback_is_rejected() {
    let fx = Fixture::new(&[&["init"], &["publish", "root"]]);
    fx.ok(&fx.refresh());
    // 3.root.json holds the (validly signed) version 1.
    fx.publish(&[&["serve-old", "root", "1"]]);
    fx.server.clear();
    let out = fx.refresh();
    fx.fails(&out, &["rollback", "version 1"]);
    fx.assert_requests(&["metadata/3.root.json"], &out);
    assert_eq!(fx.trusted("root"), Some(2), "{}", fx.context(&out));
}

#[test]
fn timestamp_rollback_is_rejected() {
    let fx = Fixture::new(&[&["init"], &["publish", "timestamp"]]);
    fx.ok(&fx.refresh());
    fx.publish(&[&["serve-old", "timestamp", "1"]]);
    let out = fx.refresh();
    fx.fails(&out, &["timestamp rollback"]);
    fx.assert_last_request("metadata/timestamp.json", &out);
    fx.assert_trusted(
        &[
            ("root", 1),
            ("snapshot", 1),
            ("targets", 1),
            ("timestamp", 2),
        ],
        &out,
    );
}

#[test]
fn snapshot_rollback_is_rejected() {
    let fx = Fixture::new(&[&["init"], &["publish", "snapshot"]]);
    fx.ok(&fx.refresh());
    // Timestamp 3 pins snapshot 1 while the client trusts snapshot 2.
    fx.publish(&[&["publish", "timestamp", "--pin", "snapshot=1"]]);
    let out = fx.refresh();
    fx.fails(&out, &["snapshot rollback"]);
    fx.assert_last_request("metadata/timestamp.json", &out);
    fx.assert_trusted(
        &[
            ("root", 1),
            ("snapshot", 2),
            ("targets", 1),
            ("timestamp", 2),
        ],
        &out,
    );
}

#[test]
fn targets_rollback_is_rejected() {
    let fx = Fixture::new(&[&["init"], &["publish", "targets"]]);
    fx.ok(&fx.refresh());
    // Snapshot 3 lists targets 1 while the trusted snapshot lists targets 2.
    fx.publish(&[&["publish", "snapshot", "--pin", "targets=1"]]);
    let out = fx.refresh();
    fx.fails(&out, &["targets rollback"]);
    fx.assert_last_request("metadata/3.snapshot.json", &out);
    fx.assert_trusted(
        &[
            ("root", 1),
            ("snapshot", 2),
            ("targets", 2),
            ("timestamp", 3),
        ],
        &out,
    );
}

// ----- 4. freeze --------------------------------------------------------------------------

/// Publishes `role` already expired after a good first refresh; the refresh must fail.
fn freeze(role: &str) -> (Fixture, RunOutput) {
    let fx = Fixture::new(&[&["init"]]);
    fx.ok(&fx.refresh());
    fx.publish(&[&["publish", role, "--expired"]]);
    let out = fx.refresh();
    fx.fails(&out, &[&format!("{role} expired")]);
    (fx, out)
}

#[test]
fn frozen_root_is_rejected() {
    let (fx, out) = freeze("root");
    // The new root was verified and kept (TUF 5.3.8) before its expiry was checked.
    fx.assert_trusted(
        &[
            ("root", 2),
            ("snapshot", 1),
            ("targets", 1),
            ("timestamp", 1),
        ],
        &out,
    );
    fx.assert_last_request("metadata/3.root.json", &out);
}

#[test]
fn frozen_timestamp_is_rejected() {
    let (fx, out) = freeze("timestamp");
    fx.assert_trusted(
        &[
            ("root", 1),
            ("snapshot", 1),
            ("targets", 1),
            ("timestamp", 1),
        ],
        &out,
    );
}

#[test]
fn frozen_snapshot_is_rejected() {
    let (fx, out) = freeze("snapshot");
    fx.assert_trusted(
        &[
            ("root", 1),
            ("snapshot", 1),
            ("targets", 1),
            ("timestamp", 2),
        ],
        &out,
    );
}

#[test]
fn frozen_targets_is_rejected() {
    let (fx, out) = freeze("targets");
    fx.assert_trusted(
        &[
            ("root", 1),
            ("snapshot", 2),
            ("targets", 1),
            ("timestamp", 2),
        ],
        &out,
    );
}

// ----- 5. mix-and-match -------------------------------------------------------------------

/// Targets 1 served where snapshot 2 pins targets 2.
fn mix_and_match(init: &[&str], reasons: &[&str]) {
    let fx = Fixture::new(&[init]);
    fx.ok(&fx.refresh());
    fx.publish(&[
        &["add-target", "file.txt", "--data", "new"],
        &["serve-old", "targets", "1"],
    ]);
    let out = fx.refresh();
    fx.fails(&out, reasons);
    fx.assert_last_request("metadata/2.targets.json", &out);
    fx.assert_trusted(
        &[
            ("root", 1),
            ("snapshot", 2),
            ("targets", 1),
            ("timestamp", 2),
        ],
        &out,
    );
}

#[test]
fn mix_and_match_is_rejected_by_version() {
    mix_and_match(&["init"], &["expected version 2, found version 1"]);
}

#[test]
fn mix_and_match_is_rejected_by_length_and_hashes() {
    // Snapshot and timestamp list lengths and hashes of what they pin.
    mix_and_match(&["init", "--meta-hashes"], &["length"]);
}

// ----- 6. signatures ----------------------------------------------------------------------

#[test]
fn snapshot_threshold_not_met_is_rejected() {
    // Root 2 lists a second snapshot key and threshold 2; only the first key signs.
    let fx = Fixture::new(&[&["init"]]);
    fx.ok(&fx.refresh());
    fx.publish(&[
        &["add-key", "snapshot", "--threshold", "2", "--no-sign"],
        &["publish", "snapshot"],
    ]);
    let out = fx.refresh();
    fx.fails(&out, &["snapshot: 1 of 2 required signatures are valid"]);
    assert_eq!(fx.trusted("root"), Some(2), "{}", fx.context(&out));
    assert_eq!(fx.trusted("timestamp"), Some(2), "{}", fx.context(&out));
    // The snapshot keys changed, so the client may have dropped its snapshot (TUF 5.3.11);
    // it must not trust the new one.
    assert_ne!(fx.trusted("snapshot"), Some(2), "{}", fx.context(&out));
}

#[test]
fn unsigned_and_foreign_signed_metadata_is_rejected() {
    let fx = Fixture::new(&[&["init"]]);
    fx.ok(&fx.refresh());

    fx.publish(&[&["tamper", "unsigned", "timestamp"]]);
    let out = fx.refresh();
    fx.fails(&out, &["timestamp: 0 of 1 required signatures are valid"]);
    assert_eq!(fx.trusted("timestamp"), Some(1), "{}", fx.context(&out));

    // Targets 2 signed by a key that root does not delegate targets to.
    fx.publish(&[
        &["publish", "timestamp"],
        &["tamper", "foreign-key", "targets"],
    ]);
    let out = fx.refresh();
    fx.fails(&out, &["targets: 0 of 1 required signatures are valid"]);
    fx.assert_trusted(
        &[
            ("root", 1),
            ("snapshot", 2),
            ("targets", 1),
            ("timestamp", 4),
        ],
        &out,
    );
}

/// Timestamp 2 is signed by the timestamp key, and root 2 declares another type for that
/// key. Root 2 is refused as malformed: a root may list only keys that can be used (python-tuf
/// cannot load it either), so the key never verifies anything and root 1 stays trusted.
fn wrong_key_type(keytype: &str, declared: &[&str]) {
    let fx = Fixture::new(&[&["init", "--keytype", keytype]]);
    let mut tamper = vec!["tamper", "keytype", "timestamp"];
    tamper.extend_from_slice(declared);
    fx.publish(&[&tamper]);
    let out = fx.refresh();
    fx.fails(&out, &["2.root.json lists key", "which cannot be used"]);
    fx.assert_trusted(&[("root", 1)], &out);
}

#[test]
fn ed25519_key_declared_as_ecdsa_is_rejected() {
    wrong_key_type("ed25519", &["--keytype", "ecdsa"]);
}

#[test]
fn ed25519_key_declared_as_ecdsa_with_ecdsa_scheme_is_rejected() {
    wrong_key_type(
        "ed25519",
        &["--keytype", "ecdsa", "--scheme", "ecdsa-sha2-nistp256"],
    );
}

#[test]
fn ecdsa_key_declared_as_ed25519_is_rejected() {
    wrong_key_type("ecdsa", &["--keytype", "ed25519", "--scheme", "ed25519"]);
}

// ----- 8. endless data --------------------------------------------------------------------

#[test]
fn oversized_timestamp_is_rejected() {
    let fx = Fixture::new(&[&["init"]]);
    fx.ok(&fx.refresh());
    fx.publish(&[&["tamper", "pad", "timestamp", "--bytes", "20000"]]);
    let out = fx.refresh();
    fx.fails(&out, &["larger than the 16384-byte limit"]);
    assert_eq!(fx.trusted("timestamp"), Some(1), "{}", fx.context(&out));
}

#[test]
fn oversized_root_is_rejected() {
    let fx = Fixture::new(&[&["init"], &["tamper", "pad", "root", "--bytes", "520000"]]);
    let out = fx.refresh();
    fx.fails(&out, &["larger than the 512000-byte limit"]);
    fx.assert_trusted(&[("root", 1)], &out);
}

// ----- 9. target substitution -------------------------------------------------------------

#[test]
fn substituted_target_is_rejected_and_not_written() {
    let fx = Fixture::new(&[
        &["init"],
        &["add-target", "good.txt", "--data", "hello world"],
        &["add-target", "same-length.txt", "--data", "hello world"],
        &["add-target", "longer.txt", "--data", "hello world"],
        &[
            "tamper",
            "target",
            "same-length.txt",
            "--data",
            "HELLO WORLD",
        ],
        &[
            "tamper",
            "target",
            "longer.txt",
            "--data",
            "hello world, and more",
        ],
    ]);
    let out = fx.download(&["same-length.txt"]);
    fx.fails(&out, &["sha256 hash"]);
    assert_eq!(
        list_dir(&fx.targets),
        Vec::<String>::new(),
        "{}",
        fx.context(&out)
    );

    let out = fx.download(&["longer.txt"]);
    fx.fails(&out, &["longer than the 11 bytes"]);
    assert_eq!(
        list_dir(&fx.targets),
        Vec::<String>::new(),
        "{}",
        fx.context(&out)
    );

    let out = fx.download(&["good.txt"]);
    fx.ok(&out);
    assert_eq!(list_dir(&fx.targets), ["good.txt"], "{}", fx.context(&out));
    assert_eq!(
        fs::read(fx.targets.join("good.txt")).expect("target"),
        b"hello world"
    );
}

// ----- 10. unusual role names -------------------------------------------------------------

#[test]
fn unusual_role_names_are_quoted_and_contained() {
    let roles = [
        ("?", "%3F", "in-question"),
        ("#", "%23", "in-hash"),
        ("/x", "%2Fx", "in-slash"),
        ("../x", "..%2Fx", "in-dotdot"),
    ];
    let mut commands: Vec<Vec<&str>> = vec![vec!["init"]];
    for (role, _, target) in roles {
        commands.push(vec!["delegate", "targets", role, "--paths", "*"]);
        commands.push(vec!["add-target", target, "--data", target, "--role", role]);
    }
    let commands: Vec<&[&str]> = commands.iter().map(Vec::as_slice).collect();
    let fx = Fixture::new(&commands);

    let names: Vec<&str> = roles.iter().map(|(_, _, target)| *target).collect();
    let out = fx.download(&names);
    fx.ok(&out);
    let requests = fx.server.requests();
    for (role, quoted, target) in roles {
        let wanted = format!("metadata/{}.{quoted}.json", fx.repo_version(role));
        assert!(
            requests.contains(&wanted),
            "no request for {wanted}\n{}",
            fx.context(&out)
        );
        assert_eq!(
            fs::read(fx.targets.join(target)).expect("downloaded target"),
            target.as_bytes()
        );
        assert_eq!(
            fs::read(fx.meta.join(format!("{quoted}.json"))).expect("trusted role"),
            fx.served(&format!("metadata/{}.{quoted}.json", fx.repo_version(role))),
            "{role} is stored as {quoted}.json with the bytes served"
        );
    }
    let (json, other): (Vec<String>, Vec<String>) = list_dir(&fx.meta)
        .into_iter()
        .partition(|n| n.ends_with(".json"));
    assert!(
        other.iter().all(|n| n.starts_with('.')),
        "only hidden bookkeeping files may sit beside the metadata: {other:?}"
    );
    assert_eq!(
        json,
        [
            "%23.json",
            "%2Fx.json",
            "%3F.json",
            "..%2Fx.json",
            "root.json",
            "snapshot.json",
            "targets.json",
            "timestamp.json",
        ],
        "{}",
        fx.context(&out)
    );
    // Nothing escaped the client's directories.
    assert_eq!(
        list_dir(&fx.tmp.path().join("client")),
        ["metadata", "targets"]
    );
    assert_eq!(list_dir(fx.tmp.path()), ["client", "repo"]);
    for name in list_dir(&fx.meta) {
        assert!(fx.meta.join(&name).is_file(), "{name} is not a plain file");
    }
}

// ----- 11. clock rollback -----------------------------------------------------------------

#[test]
fn clock_rollback_is_rejected() {
    let fx = Fixture::new(&[&["init"]]);
    fx.ok(&fx.refresh());
    fx.publish(&[&["publish", "timestamp"]]);
    fx.server.clear();
    let out = fx.refresh_at("-2d");
    fx.fails(&out, &["behind the latest time"]);
    fx.assert_requests(&[], &out);
    assert_eq!(fx.trusted("timestamp"), Some(1), "{}", fx.context(&out));
    // Back at the real time, the update goes through.
    let out = fx.refresh();
    fx.ok(&out);
    assert_eq!(fx.trusted("timestamp"), Some(2), "{}", fx.context(&out));
}

// ----- 12. fast-forward attack recovery ---------------------------------------------------

#[test]
fn timestamp_fast_forward_recovery() {
    let fx = Fixture::new(&[&["init"], &["publish", "timestamp", "--version", "100"]]);
    fx.ok(&fx.refresh());
    assert_eq!(fx.trusted("timestamp"), Some(100));
    fx.publish(&[
        &["rotate", "timestamp"],
        &["publish", "timestamp", "--version", "1"],
    ]);
    let out = fx.refresh();
    fx.ok(&out);
    fx.assert_trusted(
        &[
            ("root", 2),
            ("snapshot", 1),
            ("targets", 1),
            ("timestamp", 1),
        ],
        &out,
    );
}

#[test]
fn snapshot_fast_forward_recovery() {
    let fx = Fixture::new(&[&["init"], &["publish", "snapshot", "--version", "100"]]);
    fx.ok(&fx.refresh());
    assert_eq!(fx.trusted("snapshot"), Some(100));
    fx.publish(&[
        &["rotate", "snapshot"],
        &["rotate", "timestamp"],
        &["publish", "snapshot", "--version", "1"],
    ]);
    let out = fx.refresh();
    fx.ok(&out);
    assert_eq!(fx.trusted("snapshot"), Some(1), "{}", fx.context(&out));
    assert_eq!(fx.trusted("root"), Some(3), "{}", fx.context(&out));
}

#[test]
fn targets_fast_forward_recovery() {
    let fx = Fixture::new(&[&["init"], &["publish", "targets", "--version", "100"]]);
    fx.ok(&fx.refresh());
    assert_eq!(fx.trusted("targets"), Some(100));
    fx.publish(&[
        &["rotate", "snapshot"],
        &["publish", "targets", "--version", "1"],
    ]);
    let out = fx.refresh();
    fx.ok(&out);
    assert_eq!(fx.trusted("targets"), Some(1), "{}", fx.context(&out));
}

// ----- delegations ------------------------------------------------------------------------

/// A delegated role `team` (paths `team/*`) holding `team/app`.
fn team_repo(extra: &[&[&str]]) -> Fixture {
    let mut commands: Vec<&[&str]> = vec![
        &["init"],
        &["delegate", "targets", "team", "--paths", "team/*"],
        &["add-target", "team/app", "--data", "app", "--role", "team"],
    ];
    commands.extend_from_slice(extra);
    Fixture::new(&commands)
}

#[test]
fn delegated_role_is_used() {
    let fx = team_repo(&[]);
    let out = fx.download(&["team/app"]);
    fx.ok(&out);
    assert_eq!(
        fs::read(fx.targets.join("team%2Fapp")).expect("target"),
        b"app"
    );
    assert_eq!(fx.trusted("team"), Some(2), "{}", fx.context(&out));
}

#[test]
fn frozen_delegated_role_is_rejected() {
    let fx = team_repo(&[&["publish", "team", "--expired"]]);
    let out = fx.download(&["team/app"]);
    fx.fails(&out, &["team expired"]);
    assert_eq!(fx.trusted("team"), None, "{}", fx.context(&out));
    assert_eq!(
        list_dir(&fx.targets),
        Vec::<String>::new(),
        "{}",
        fx.context(&out)
    );
}

#[test]
fn delegated_role_signed_by_a_foreign_key_is_rejected() {
    let fx = team_repo(&[&["tamper", "foreign-key", "team"]]);
    let out = fx.download(&["team/app"]);
    fx.fails(&out, &["team: 0 of 1 required signatures are valid"]);
    assert_eq!(fx.trusted("team"), None, "{}", fx.context(&out));
    assert_eq!(
        list_dir(&fx.targets),
        Vec::<String>::new(),
        "{}",
        fx.context(&out)
    );
}

#[test]
fn terminating_delegation_ends_the_search() {
    let fx = Fixture::new(&[
        &["init"],
        &["delegate", "targets", "a", "--paths", "*", "--terminating"],
        &["delegate", "targets", "b", "--paths", "*"],
        &["add-target", "only-in-b", "--data", "b", "--role", "b"],
    ]);
    let out = fx.download(&["only-in-b"]);
    fx.fails(
        &out,
        &["only-in-b is not listed by any trusted targets role"],
    );
    let requests = fx.server.requests();
    assert!(
        requests.contains(&"metadata/1.a.json".to_string())
            && !requests.iter().any(|r| r.ends_with(".b.json")),
        "a must be searched and b must not\n{}",
        fx.context(&out)
    );
}
