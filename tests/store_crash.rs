//! Trusted state survives a crash between writes: a child process persists ever-newer
//! versions of each role and reports each acknowledged write; the parent kills it with
//! SIGKILL at varying points, reopens the store, and checks that every role's version is at
//! least the last acknowledged one, never older, and that its bytes are exactly that
//! version's bytes. Done for the RocksDB store (daemon) and the directory store (tuf-client).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use pullguard_cache::Store;
use pullguard_node::rocks::RocksTrustStore;
use pullguard_plugin::store::dir::DirStore;
use pullguard_plugin::tuf::state::TrustStore;
use pullguard_plugin::tuf::RoleName;

const ROLES: [&str; 3] = ["root", "timestamp", "snapshot"];
const CHILD_ENV: &str = "PULLGUARD_CRASH_CHILD";

fn bytes_for(role: &str, version: u64) -> Vec<u8> {
    // Big enough that a torn write would show, distinct per role and version; shaped like
    // metadata (`signed.version`), which a store may read its versions from.
    format!(
        "{{\"signed\":{{\"role\":\"{role}\",\"version\":{version}}},\"pad\":\"{}\"}}",
        "x".repeat(4096)
    )
    .into_bytes()
}

fn open(kind: &str, dir: &Path) -> Box<dyn TrustStore> {
    match kind {
        "rocks" => Box::new(RocksTrustStore::new(
            Arc::new(Store::open(dir).expect("open rocksdb")),
            "127.0.0.1:5000/library",
        )),
        "dir" => Box::new(DirStore::open(dir).expect("open dir store")),
        other => panic!("unknown store kind {other}"),
    }
}

/// The stored version of `role`, checking that its bytes are exactly that version's.
fn stored_version(store: &dyn TrustStore, role: &str) -> u64 {
    let name = RoleName::new(role).expect("role");
    let Some(bytes) = store.load(&name).expect("load") else {
        return 0;
    };
    let v: serde_json::Value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{role}: stored bytes are not the JSON written: {e}"));
    let version = v["signed"]["version"].as_u64().expect("version");
    assert_eq!(
        bytes,
        bytes_for(role, version),
        "{role} v{version}: bytes differ"
    );
    version
}

/// The child: continue from the stored versions and write forever, acknowledging each write.
/// Started only by `trusted_state_survives_sigkill_*`, never on its own.
#[test]
#[ignore = "the child process of the crash tests"]
fn crash_child() {
    let spec = std::env::var(CHILD_ENV).expect("started by the crash tests");
    let (kind, dir) = spec.split_once(':').expect("kind:dir");
    let mut store = open(kind, Path::new(dir));
    let mut versions: Vec<u64> = ROLES
        .iter()
        .map(|r| stored_version(store.as_ref(), r))
        .collect();
    loop {
        for (i, role) in ROLES.iter().enumerate() {
            let v = versions[i] + 1;
            let name = RoleName::new(*role).expect("role");
            store
                .persist(&name, v, &bytes_for(role, v))
                .expect("persist");
            versions[i] = v;
            println!("ack {role} {v}");
        }
    }
}

fn survives_sigkill(kind: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("test binary");
    let mut acked = [0u64; 3];
    for (round, kill_after) in [1usize, 7, 23, 50, 111].into_iter().enumerate() {
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child", "--ignored", "--nocapture"])
            .env(CHILD_ENV, format!("{kind}:{}", dir.path().display()))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        // (role index, version) of each acknowledgement line.
        let mut next_ack = || {
            lines.by_ref().map_while(Result::ok).find_map(|line| {
                let (role, v) = line.strip_prefix("ack ")?.split_once(' ')?;
                let i = ROLES.iter().position(|r| *r == role).expect("role");
                Some((i, v.parse::<u64>().expect("version")))
            })
        };
        for _ in 0..kill_after {
            let (i, v) = next_ack().expect("the child stopped acknowledging");
            acked[i] = v;
        }
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        // The child goes on writing until the kill lands: whatever it acknowledged after the
        // parent stopped reading may have landed too, plus the one write in flight.
        let mut printed = acked;
        while let Some((i, v)) = next_ack() {
            printed[i] = v;
        }

        let store = open(kind, dir.path());
        for (i, role) in ROLES.iter().enumerate() {
            let v = stored_version(store.as_ref(), role);
            assert!(
                v >= acked[i],
                "round {round}: {role} is at v{v} after v{} was acknowledged",
                acked[i]
            );
            // At most the one write in flight when the kill came may have landed.
            assert!(
                v <= printed[i] + 1,
                "round {round}: {role} v{v} was never written (last acknowledged: v{})",
                printed[i]
            );
            acked[i] = v;
        }
    }
    assert!(
        acked.iter().all(|&v| v > 0),
        "the child wrote nothing: {acked:?}"
    );
}

#[test]
fn trusted_state_survives_sigkill_rocksdb() {
    survives_sigkill("rocks");
}

#[test]
fn trusted_state_survives_sigkill_dir_store() {
    survives_sigkill("dir");
}
