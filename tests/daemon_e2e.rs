//! The node daemon end to end: a real registry (Debian `docker-registry`), a published
//! scope, and a real `pullguard serve` process asked over its Unix socket. Attacks are done
//! to the registry for real; restarts, a registry that goes away, clocks moved either way,
//! modes, policy changes, bad requests and crashes are done to the daemon for real.

mod common;

use std::path::{Path, PathBuf};

use common::daemon::{daemon_client, faketime_env, start_daemon, start_daemon_with, stop_daemon};
use common::fixture::Fixture;
use common::front::Front;
use common::run;
use pullguard_proto::v1 as pb;

/// The node's config for the fixture's scope: `scope_extra` goes into `[[scope]]`,
/// `daemon_extra` into `[daemon]`.
fn write_config(f: &Fixture, daemon_extra: &str, scope_extra: &str) -> PathBuf {
    write_config_on(f, &f.registry.host, daemon_extra, scope_extra)
}

/// [`write_config`] for the scope as served by `host` (the registry, or a front before it).
fn write_config_on(f: &Fixture, host: &str, daemon_extra: &str, scope_extra: &str) -> PathBuf {
    let socket = f.path("run/pullguard.sock");
    let config = format!(
        "[daemon]\nsocket = \"{}\"\nstate_dir = \"{}\"\n{daemon_extra}\n\n\
         [[scope]]\nname = \"{host}/acme\"\nroot = \"{}\"\n{scope_extra}\n\n\
         [registries.\"{host}\"]\nplain_http = true\n",
        socket.display(),
        f.path("daemon-state").display(),
        f.path("pullguard-repo/metadata/1.root.json").display(),
    );
    std::fs::write(f.path("pullguard.toml"), config).expect("config");
    socket
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().expect("runtime")
}

/// Asks the daemon at `socket` about `reference` with `digest` (and a descriptor).
fn ask_with(
    socket: &Path,
    reference: &str,
    digest: &str,
    descriptor: &str,
) -> Result<pb::Verdict, Box<tonic::Status>> {
    runtime().block_on(async {
        let mut client = daemon_client(socket.to_path_buf()).await;
        client
            .verify(pb::VerifyRequest {
                reference: reference.to_string(),
                digest: digest.to_string(),
                descriptor_json: descriptor.to_string(),
            })
            .await
            .map(tonic::Response::into_inner)
            .map_err(Box::new)
    })
}

fn ask(socket: &Path, reference: &str, digest: &str) -> pb::Verdict {
    ask_with(socket, reference, digest, "").expect("a verdict")
}

fn status(socket: &Path) -> pb::StatusResponse {
    runtime().block_on(async {
        let mut client = daemon_client(socket.to_path_buf()).await;
        client
            .status(pb::StatusRequest {})
            .await
            .expect("status")
            .into_inner()
    })
}

fn reason(v: &pb::Verdict) -> pb::Reason {
    pb::Reason::try_from(v.reason).expect("a known reason")
}

#[test]
fn attacks_through_verify_are_denied_and_verdicts_survive_a_restart_without_the_registry() {
    let mut f = Fixture::published();
    f.registry.push_image("acme/app", "3", "never signed");
    let socket = write_config(&f, "", "");
    let daemon = start_daemon(&f, &socket);
    let (one, two) = (f.app_digest("1").to_string(), f.app_digest("2").to_string());
    let first = ask(&socket, &f.image("1"), &one);
    assert!(first.admitted && !first.cached, "{first:?}");
    assert_eq!(first.scope, f.scope);
    assert_eq!(
        (first.repository.as_str(), first.tag.as_str()),
        ("acme/app", "1")
    );
    let evidence = first.evidence.clone().expect("evidence");
    assert_eq!(
        (evidence.role.as_str(), evidence.signature_version),
        ("team", 1)
    );
    assert_eq!(evidence.key_ids.len(), 1, "{evidence:?}");
    assert!(first.valid_until > chrono::Utc::now().timestamp());
    let again = ask(&socket, &f.image("1"), &one);
    assert!(again.admitted && again.cached, "{again:?}");
    // Substitution: another image under a signed tag.
    let substituted = ask(&socket, &f.image("1"), &two);
    assert_eq!(
        reason(&substituted),
        pb::Reason::DigestMismatch,
        "{substituted:?}"
    );
    // A digest admitted under one tag is not thereby admitted under another.
    let other_tag = ask(&socket, &f.image("2"), &one);
    assert!(!other_tag.admitted && !other_tag.cached, "{other_tag:?}");
    assert_eq!(reason(&other_tag), pb::Reason::DigestMismatch);
    let unsigned = ask(&socket, &f.image("3"), &f.app_digest("3").to_string());
    assert_eq!(reason(&unsigned), pb::Reason::UnknownTarget, "{unsigned:?}");
    // The daemon resolves a tag itself when no digest is given.
    let resolved = ask(&socket, &f.image("1"), "");
    assert!(resolved.admitted && resolved.cached, "{resolved:?}");
    assert_eq!(resolved.digest, one);
    stop_daemon(daemon, &socket);

    // The registry goes away; a restarted daemon still admits what it verified before,
    // from its cache, and denies what it cannot check as unavailable.
    f.registry.stop();
    let daemon = start_daemon(&f, &socket);
    let offline = ask(&socket, &f.image("1"), &one);
    assert!(offline.admitted && offline.cached, "{offline:?}");
    let never_checked = ask(&socket, &f.image("2"), &two);
    assert_eq!(
        reason(&never_checked),
        pb::Reason::Unavailable,
        "{never_checked:?}"
    );
    let s = status(&socket);
    assert_eq!(s.scopes.len(), 1);
    assert_eq!(s.scopes[0].timestamp_version, 1);
    assert_eq!(
        pb::Reason::try_from(s.scopes[0].last_error_reason),
        Ok(pb::Reason::Unavailable),
        "{s:?}"
    );
    assert_eq!(s.scopes[0].cached_verdicts, 1, "{s:?}");
    stop_daemon(daemon, &socket);
}

#[test]
fn past_expiry_an_unreachable_source_denies_unless_within_offline_grace_which_says_so() {
    let mut f = Fixture::published();
    let socket = write_config(&f, "", "");
    let one = f.app_digest("1").to_string();
    let daemon = start_daemon(&f, &socket);
    assert!(ask(&socket, &f.image("1"), &one).admitted);
    stop_daemon(daemon, &socket);
    f.registry.stop();
    // Two days on, the one-day timestamp has expired, and the registry is gone.
    let later = faketime_env("+2d");
    let daemon = start_daemon_with(&f, &socket, &later);
    let denied = ask(&socket, &f.image("1"), &one);
    assert!(!denied.admitted, "{denied:?}");
    assert_eq!(reason(&denied), pb::Reason::Unavailable, "{denied:?}");
    stop_daemon(daemon, &socket);
    write_config(&f, "", "offline_grace = \"3d\"");
    let daemon = start_daemon_with(&f, &socket, &later);
    let graced = ask(&socket, &f.image("1"), &one);
    assert!(graced.admitted && graced.offline_grace, "{graced:?}");
    assert_eq!(graced.valid_until, 0, "a graced admission is not reusable");
    assert!(
        graced.message.contains("within offline_grace"),
        "{graced:?}"
    );
    stop_daemon(daemon, &socket);
    // Five days on, past the grace too.
    let daemon = start_daemon_with(&f, &socket, &faketime_env("+5d"));
    let denied = ask(&socket, &f.image("1"), &one);
    assert!(!denied.admitted, "{denied:?}");
    stop_daemon(daemon, &socket);
}

#[test]
fn a_clock_behind_the_highest_time_seen_is_refused() {
    let f = Fixture::published();
    let socket = write_config(&f, "", "");
    let one = f.app_digest("1").to_string();
    // A daemon whose clock runs an hour ahead refreshes, and the state keeps that time.
    let daemon = start_daemon_with(&f, &socket, &faketime_env("+1h"));
    assert!(ask(&socket, &f.image("1"), &one).admitted);
    stop_daemon(daemon, &socket);
    let daemon = start_daemon(&f, &socket);
    let behind = ask(&socket, &f.image("1"), &one);
    assert!(!behind.admitted, "{behind:?}");
    assert_eq!(reason(&behind), pb::Reason::ClockRollback, "{behind:?}");
    stop_daemon(daemon, &socket);
}

#[test]
fn concurrent_requests_for_one_new_digest_share_one_evaluation() {
    let f = Fixture::published();
    let socket = write_config(&f, "", "");
    let one = f.app_digest("1").to_string();
    let daemon = start_daemon(&f, &socket);
    let image = f.image("1");
    let answers = runtime().block_on(async {
        let client = daemon_client(socket.clone()).await;
        let asks = (0..200).map(|_| {
            let mut client = client.clone();
            let request = pb::VerifyRequest {
                reference: image.clone(),
                digest: one.clone(),
                descriptor_json: String::new(),
            };
            tokio::spawn(async move { client.verify(request).await.map(|r| r.into_inner()) })
        });
        let mut answers = Vec::new();
        for a in asks.collect::<Vec<_>>() {
            answers.push(a.await.expect("task").expect("a verdict"));
        }
        answers
    });
    assert!(
        answers.iter().all(|a| a.admitted),
        "{:?}",
        answers.iter().find(|a| !a.admitted)
    );
    let s = status(&socket);
    assert_eq!(s.evaluations, 1, "{s:?}");
    assert_eq!(s.cache_hits + s.cache_misses, 200, "{s:?}");
    stop_daemon(daemon, &socket);
}

#[test]
fn warn_and_off_modes_admit_and_say_so_and_a_policy_change_invalidates_the_cache() {
    let f = Fixture::published();
    let (one, two) = (f.app_digest("1").to_string(), f.app_digest("2").to_string());
    let socket = write_config(&f, "", "mode = \"warn\"");
    let daemon = start_daemon(&f, &socket);
    let warned = ask(&socket, &f.image("1"), &two);
    assert!(warned.admitted, "{warned:?}");
    assert_eq!(
        pb::Reason::try_from(warned.would_deny),
        Ok(pb::Reason::DigestMismatch),
        "{warned:?}"
    );
    assert!(
        warned.message.starts_with("warn mode, would deny: "),
        "{warned:?}"
    );
    assert!(ask(&socket, &f.image("1"), &one).admitted);
    stop_daemon(daemon, &socket);

    write_config(&f, "", "mode = \"off\"");
    let daemon = start_daemon(&f, &socket);
    let off = ask(&socket, &f.image("1"), &two);
    assert!(off.admitted, "{off:?}");
    assert_eq!(reason(&off), pb::Reason::Unchecked, "{off:?}");
    assert_eq!(off.valid_until, 0);
    stop_daemon(daemon, &socket);

    // The mode is not part of the policy: back in enforce mode, the verdict is cached.
    write_config(&f, "", "");
    let daemon = start_daemon(&f, &socket);
    assert!(ask(&socket, &f.image("1"), &one).cached);
    stop_daemon(daemon, &socket);
    // Where the metadata comes from is: the same verdict is computed again.
    write_config(&f, "", "trust_repository = \"acme/trust\"");
    let daemon = start_daemon(&f, &socket);
    let s = status(&socket);
    assert_eq!(
        s.scopes[0].cached_verdicts, 0,
        "old verdicts are removed: {s:?}"
    );
    let recomputed = ask(&socket, &f.image("1"), &one);
    assert!(recomputed.admitted && !recomputed.cached, "{recomputed:?}");
    stop_daemon(daemon, &socket);
}

#[test]
fn malformed_requests_are_invalid_arguments_and_store_nothing() {
    let f = Fixture::published();
    let socket = write_config(&f, "", "");
    let (one, two) = (f.app_digest("1").to_string(), f.app_digest("2").to_string());
    let daemon = start_daemon(&f, &socket);
    let image = f.image("1");
    let descriptor = |digest: &str, size: u64| {
        format!(
            r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{digest}","size":{size}}}"#
        )
    };
    let huge = format!(
        r#"{{"digest":"{one}","size":1,"annotations":{{"a":"{}"}}}}"#,
        "x".repeat(70_000)
    );
    for (reference, digest, descriptor, says) in [
        ("not a reference", one.as_str(), String::new(), "reference"),
        (image.as_str(), "sha256:12", String::new(), "digest"),
        (
            image.as_str(),
            one.as_str(),
            "{not json".to_string(),
            "descriptor",
        ),
        (
            image.as_str(),
            one.as_str(),
            huge,
            "more than the 65536 allowed",
        ),
        (
            image.as_str(),
            one.as_str(),
            descriptor(&two, 1),
            "is not the digest asked about",
        ),
    ] {
        let err = ask_with(&socket, reference, digest, &descriptor).expect_err("invalid");
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
        assert!(err.message().contains(says), "{says}: {err:?}");
    }
    let s = status(&socket);
    assert_eq!(
        (s.scopes[0].cached_verdicts, s.evaluations),
        (0, 0),
        "{s:?}"
    );
    // A descriptor whose size is not the trusted length is a denial, not cached.
    let wrong_size = ask_with(&socket, &image, &one, &descriptor(&one, 1)).expect("verdict");
    assert_eq!(
        reason(&wrong_size),
        pb::Reason::LengthMismatch,
        "{wrong_size:?}"
    );
    stop_daemon(daemon, &socket);
    // A bad config changes nothing either: exit 64 naming the key, nothing served.
    write_config(&f, "verify_deadline = \"forever\"", "");
    let out = run(f.cmd(&["serve"]));
    assert_eq!(out.code, Some(64), "{out}");
    assert!(out.stderr.contains("daemon.verify_deadline"), "{out}");
    assert!(!socket.exists());
}

/// The trusted timestamp version the daemon's state holds, read from RocksDB directly.
fn stored_timestamp_version(f: &Fixture) -> u64 {
    let db = pullguard_cache::Store::open(&f.path("daemon-state")).expect("the state opens");
    let key = pullguard_cache::ScopedName {
        scope: f.scope.clone(),
        name: "timestamp".into(),
    };
    db.get::<pullguard_cache::TrustedMeta>(&key)
        .expect("readable")
        .map_or(0, |r| r.version)
}

#[test]
fn sigkill_during_refreshes_never_sets_trusted_versions_back() {
    let f = Fixture::published();
    let socket = write_config(&f, "refresh_interval = \"1s\"", "");
    let one = f.app_digest("1").to_string();
    let mut highest = 0;
    for round in 0..50u64 {
        // A new timestamp each round, so that every start-up refresh has something to
        // write; the daemon is killed at some point of it (or of serving after it).
        f.ok(&["repo", "timestamp", "--key", "timestamp.key"]);
        f.ok(&["repo", "publish"]);
        let mut daemon = f
            .cmd(&["serve"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start the daemon");
        std::thread::sleep(std::time::Duration::from_millis(round * 37 % 400));
        daemon.kill().expect("SIGKILL");
        let _ = daemon.wait();
        let version = stored_timestamp_version(&f);
        assert!(
            version >= highest,
            "round {round}: v{version} after v{highest}"
        );
        highest = version;
    }
    assert!(highest >= 10, "the refreshes wrote timestamp v{highest}");
    let daemon = start_daemon(&f, &socket);
    let after = ask(&socket, &f.image("1"), &one);
    assert!(after.admitted, "{after:?}");
    assert_eq!(after.evidence.expect("evidence").timestamp_version, highest);
    stop_daemon(daemon, &socket);
}

#[test]
fn forged_frozen_and_slow_registries_are_denied_through_the_daemon() {
    let f = Fixture::published();
    let socket = write_config(&f, "", "");
    let daemon = start_daemon(&f, &socket);
    let genuine = f.app_digest("1").to_string();
    assert!(ask(&socket, &f.image("1"), &genuine).admitted);
    // Mallory pushes her own image under app:1 and signs it with a key of her own.
    let evil = f.path("evil");
    let evil = evil.to_str().expect("utf-8");
    f.ok(&["key", "generate", "mallory-online.key"]);
    f.ok(&[
        "repo",
        "init",
        "--dir",
        evil,
        "--scope",
        &f.scope,
        "--root-key",
        "mallory.key",
        "--targets-key",
        "mallory.key",
        "--snapshot-key",
        "mallory-online.key",
        "--timestamp-key",
        "mallory-online.key",
    ]);
    let hers = f
        .registry
        .push_image("acme/app", "1", "mallory's image")
        .to_string();
    f.ok(&["sign", &f.image("1"), "--key", "mallory.key", "--dir", evil]);
    let forged = ask(&socket, &f.image("1"), &hers);
    assert_eq!(reason(&forged), pb::Reason::NotSigned, "{forged:?}");
    assert!(forged.message.contains("not delegated"), "{forged:?}");
    stop_daemon(daemon, &socket);

    // Freeze: two days on, the registry still serves the one-day timestamp. The cached
    // verdict is not used while the source serves expired metadata.
    let daemon = start_daemon_with(&f, &socket, &faketime_env("+2d"));
    let frozen = ask(&socket, &f.image("1"), &genuine);
    assert_eq!(reason(&frozen), pb::Reason::Expired, "{frozen:?}");
    assert!(!frozen.cached);
    stop_daemon(daemon, &socket);

    // Slow retrieval: every answer 3 s late, a 1 s deadline for the whole verification.
    let front = Front::start(
        &f.registry.host,
        std::time::Duration::from_secs(3),
        std::sync::Arc::new(|_: &str, _: &str| None),
    );
    let socket = write_config_on(&f, &front.host, "verify_deadline = \"1s\"", "");
    std::fs::write(
        f.path("pullguard.toml"),
        std::fs::read_to_string(f.path("pullguard.toml")).expect("config")
            + &format!(
                "\n[registries.\"{}\"]\nplain_http = true\n",
                f.registry.host
            ),
    )
    .expect("config");
    let _ = std::fs::remove_dir_all(f.path("daemon-state"));
    let daemon = start_daemon(&f, &socket);
    let started = std::time::Instant::now();
    let slow = ask(&socket, &format!("{}/acme/app:1", front.host), &genuine);
    let took = started.elapsed();
    assert_eq!(reason(&slow), pb::Reason::Unavailable, "{slow:?}");
    assert!(took < std::time::Duration::from_millis(2500), "{took:?}");
    stop_daemon(daemon, &socket);
}
