//! pullguard on a node with a real containerd 2.1 (the newer Debian suite's package, unpacked
//! by the setup), a real registry (Debian `docker-registry`) and a real `pullguard serve`:
//! pulls through containerd's bindir verifier hook.

mod common;

use std::path::{Path, PathBuf};

use common::containerd::{Containerd, Options};
use common::daemon::{faketime_env, start_daemon, start_daemon_with, stop_daemon, write_config_on};
use common::fixture::Fixture;
use common::RunOutput;

/// The node's config for the fixture's scope; returns the daemon's socket.
fn node_config(f: &Fixture) -> PathBuf {
    write_config_on(f, &f.registry.host, "", "")
}

/// containerd with the hook, asking the daemon at `socket`; `cri_images_extra` goes into the
/// CRI images plugin's table.
fn containerd(f: &Fixture, socket: &Path, cri_images_extra: &str) -> Containerd {
    Containerd::start(Options {
        registry: f.registry.host.clone(),
        pullguard_socket: socket.to_path_buf(),
        cri_images_extra: cri_images_extra.to_string(),
    })
}

/// containerd refused the pull because the hook printed `DENY reason`.
fn assert_blocked(out: &RunOutput, reason: &str) {
    assert_ne!(out.code, Some(0), "{out}");
    assert!(
        out.stderr.contains("image verifier bindir blocked pull")
            && out.stderr.contains(&format!("DENY {reason} ")),
        "expected the hook's `DENY {reason}` in containerd's error\n{out}"
    );
}

#[test]
fn ctr_pulls_of_signed_images_are_admitted_and_attacks_are_blocked_by_the_hook() {
    let f = Fixture::published();
    f.registry.push_image("acme/app", "3", "never signed");
    let socket = node_config(&f);
    let daemon = start_daemon(&f, &socket);
    let c = containerd(&f, &socket, "");

    let out = c.pull("default", &f.image("1"));
    assert_eq!(out.code, Some(0), "{out}\n{}", c.log());
    assert!(c.images("default").contains(&f.image("1")));

    assert_blocked(&c.pull("default", &f.image("3")), "unknown_target");
    // Substitution: the registry points the signed tag 2 at image one.
    let two = f.app_digest("2");
    f.registry.push_image("acme/app", "2", "image one");
    assert_blocked(&c.pull("default", &f.image("2")), "digest_mismatch");
    f.registry.push_image("acme/app", "2", "image two");
    assert_eq!(f.app_digest("2"), two);

    // Rollback: a newer timestamp is published and seen, then the registry replays the older.
    let old_timestamp = f.trust_tag("timestamp");
    f.ok(&["repo", "timestamp", "--key", "timestamp.key"]);
    f.ok(&["repo", "publish"]);
    let socket_arg = socket.to_str().expect("utf-8");
    f.ok(&["refresh", "--socket", socket_arg]);
    let current = f.trust_tag("timestamp");
    f.retag_trust("timestamp", &old_timestamp);
    let refused = f.pg(&["refresh", "--socket", socket_arg]);
    assert!(refused.stdout.contains("rollback"), "{refused}");
    assert_blocked(&c.pull("default", &f.image("2")), "rollback");
    let denied_images = c.images("default");
    assert!(!denied_images.contains(&f.image("2")), "{denied_images:?}");
    f.retag_trust("timestamp", &current);
    stop_daemon(daemon, &socket);

    // Freeze: two days on, the registry still serves the one-day timestamp.
    let daemon = start_daemon_with(&f, &socket, &faketime_env("+2d"));
    assert_blocked(&c.pull("default", &f.image("1")), "expired");
    stop_daemon(daemon, &socket);
}

#[test]
fn with_the_daemon_down_the_hook_fails_closed_and_pulls_work_once_it_is_back() {
    let f = Fixture::published();
    let socket = node_config(&f);
    let c = containerd(&f, &socket, "");
    let out = c.pull("default", &f.image("1"));
    assert_blocked(&out, "unavailable");
    assert!(
        out.stderr.contains("cannot reach the pullguard daemon")
            && out.stderr.contains(socket.to_str().expect("utf-8")),
        "{out}"
    );
    assert!(c.images("default").is_empty());
    let daemon = start_daemon(&f, &socket);
    let out = c.pull("default", &f.image("1"));
    assert_eq!(out.code, Some(0), "{out}");
    stop_daemon(daemon, &socket);
}

/// Waits up to 15 s for `done`, saying `what` if it never is.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !done() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(15),
            "not within 15 s: {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Adds the event watcher of `c`'s namespace `k8s.io` to the node's config.
fn watch_config(f: &Fixture, c: &Containerd) {
    let path = f.path("pullguard.toml");
    let config = std::fs::read_to_string(&path).expect("config")
        + &format!(
            "\n[containerd]\nsocket = \"{}\"\nnamespaces = [\"k8s.io\"]\n",
            c.socket.display()
        );
    std::fs::write(path, config).expect("config");
}

#[test]
fn images_that_bypass_the_hook_are_removed_by_the_watcher_which_follows_containerd_restarts() {
    let f = Fixture::published();
    f.registry.push_image("acme/app", "3", "never signed");
    let socket = node_config(&f);
    let mut c = containerd(&f, &socket, "");
    let local = |c: &Containerd, ns: &str, image: &str| {
        let out = c.ctr_in(ns, &["images", "pull", "--local", "--plain-http", image]);
        assert_eq!(out.code, Some(0), "{out}");
    };
    let (one, unsigned) = (f.image("1"), f.image("3"));
    // Already there when the daemon starts: the first sweep removes it.
    local(&c, "k8s.io", &unsigned);
    assert!(c.images("k8s.io").contains(&unsigned));
    watch_config(&f, &c);
    let daemon = start_daemon(&f, &socket);
    wait_until("the sweep removes the unsigned image", || {
        !c.images("k8s.io").contains(&unsigned)
    });

    // Pulled past the hook while the daemon runs: the signed one stays, the unsigned goes.
    local(&c, "k8s.io", &one);
    local(&c, "k8s.io", &unsigned);
    wait_until("the watcher removes the unsigned image", || {
        !c.images("k8s.io").contains(&unsigned)
    });
    assert!(c.images("k8s.io").contains(&one));

    // Imported: an archive made from another namespace, which is not watched.
    local(&c, "scratch", &unsigned);
    let archive = c.dir.path().join("unsigned.tar");
    let archive = archive.to_str().expect("utf-8");
    let out = c.ctr_in("scratch", &["images", "export", archive, &unsigned]);
    assert_eq!(out.code, Some(0), "{out}");
    let out = c.ctr_in("k8s.io", &["images", "import", archive]);
    assert_eq!(out.code, Some(0), "{out}");
    wait_until("the watcher removes the imported image", || {
        !c.images("k8s.io").contains(&unsigned)
    });
    assert!(c.images("scratch").contains(&unsigned));

    // containerd restarts under the daemon: the watcher reconnects and goes on.
    c.restart();
    local(&c, "k8s.io", &unsigned);
    wait_until("the reconnected watcher removes the unsigned image", || {
        !c.images("k8s.io").contains(&unsigned)
    });
    assert!(c.images("k8s.io").contains(&one));
    stop_daemon(daemon, &socket);
}
