//! The differential check against python-tuf (issue 10): `tests/interop/differential.py`
//! builds 1,000 repositories from a fixed seed, mutates each one's next publication
//! (versions, expiries, signatures, thresholds, key types, delegations and paths, hashes and
//! lengths, root rotations, role names, document structure), runs `pullguard tuf-client` and
//! python-tuf's ngclient on each over HTTP on 127.0.0.1, and compares their decisions and the
//! versions each trusts afterwards. It fails on any disagreement that its `KEPT` list does
//! not explain with the spec section behind it. `PULLGUARD_DIFFERENTIAL_CASES` and
//! `PULLGUARD_DIFFERENTIAL_SEED` override the count and the seed.

mod common;

use std::process::Command;

#[test]
fn pullguard_and_python_tuf_decide_alike_on_mutated_repositories() {
    let cases = std::env::var("PULLGUARD_DIFFERENTIAL_CASES").unwrap_or_else(|_| "1000".into());
    let seed = std::env::var("PULLGUARD_DIFFERENTIAL_SEED").unwrap_or_else(|_| "20261202".into());
    let dir = common::tempdir();
    let report = dir.path().join("report.json");
    let mut cmd = Command::new(common::python());
    cmd.arg(common::repo_root().join("tests/interop/differential.py"))
        .arg("--pullguard")
        .arg(env!("CARGO_BIN_EXE_pullguard"))
        .args(["--seed", &seed, "--cases", &cases])
        .arg("--out")
        .arg(&report);
    let out = common::run(cmd);
    println!("{}", out.stdout);
    assert_eq!(out.code, Some(0), "{out}");
    let results: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(&report).expect("report")).expect("report json");
    assert_eq!(results.len().to_string(), cases, "one result per case");
    // Every case's first stage is a valid repository that both clients must accept.
    for r in &results {
        assert_eq!(r["stage1"]["pullguard"], "accept", "{r}");
        assert_eq!(r["stage1"]["python-tuf"], "accept", "{r}");
    }
    let rejected = results
        .iter()
        .filter(|r| r["stage2"]["pullguard"] == "reject")
        .count();
    assert!(
        rejected > results.len() / 3 && rejected < results.len(),
        "the mutations both break and keep repositories: {rejected} of {} rejected",
        results.len()
    );
}
