//! pullguard on a node with a real containerd 2.1 (the newer Debian suite's package, unpacked
//! by the setup), a real registry (Debian `docker-registry`) and a real `pullguard serve`:
//! pulls through containerd's bindir verifier hook, the event watcher, and the CRI image
//! proxy (a CRI client in the test, as kubelet would be).

mod common;

use std::path::{Path, PathBuf};

use common::containerd::{Containerd, Options};
use common::daemon::{faketime_env, start_daemon, start_daemon_with, stop_daemon, write_config_on};
use common::fixture::Fixture;
use common::RunOutput;
use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_client::ImageServiceClient;

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

/// Rollback: a newer timestamp is published and seen by the daemon at `socket`, then the
/// registry replays the older one and the daemon's refresh refuses it. Returns the newer,
/// to put back.
fn replay_old_timestamp(f: &Fixture, socket: &Path) -> pullguard_plugin::registry::Digest {
    let old_timestamp = f.trust_tag("timestamp");
    f.ok(&["repo", "timestamp", "--key", "timestamp.key"]);
    f.ok(&["repo", "publish"]);
    let socket_arg = socket.to_str().expect("utf-8");
    f.ok(&["refresh", "--socket", socket_arg]);
    let current = f.trust_tag("timestamp");
    f.retag_trust("timestamp", &old_timestamp);
    let refused = f.pg(&["refresh", "--socket", socket_arg]);
    assert!(refused.stdout.contains("rollback"), "{refused}");
    current
}

/// Adds the CRI proxy on `run/cri.sock`, in front of `c`, to the node's config; returns the
/// proxy's socket.
fn proxy_config(f: &Fixture, c: &Containerd) -> PathBuf {
    let proxy = f.path("run/cri.sock");
    add_to_config(
        f,
        &format!(
            "[cri]\nsocket = \"{}\"\nupstream = \"{}\"\n",
            proxy.display(),
            c.socket.display()
        ),
    );
    proxy
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

    let current = replay_old_timestamp(&f, &socket);
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
    add_to_config(
        f,
        &format!(
            "[containerd]\nsocket = \"{}\"\nnamespaces = [\"k8s.io\"]\n",
            c.socket.display()
        ),
    );
}

/// Appends `toml` (whole tables) to the node's config.
fn add_to_config(f: &Fixture, toml: &str) {
    let path = f.path("pullguard.toml");
    let config = std::fs::read_to_string(&path).expect("config") + "\n" + toml;
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
    // Exported by ctr itself (`--local`), not streamed through the transfer service: once,
    // in a loaded CI run, the import of a streamed export found no image in the archive
    // (`ctr: unrecognized image format`; not seen again in a dozen reruns). The import stays
    // on the transfer service, as a user's would.
    let out = c.ctr_in(
        "scratch",
        &["images", "export", "--local", archive, &unsigned],
    );
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

/// A CRI image client of the server on `socket` (containerd's, or the proxy's), on the
/// runtime that uses it.
async fn cri_client(socket: &Path) -> ImageServiceClient<tonic::transport::Channel> {
    let channel = pullguard_proto::client::channel(socket, std::time::Duration::from_secs(5))
        .await
        .expect("connect to the CRI socket");
    ImageServiceClient::new(channel)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// CRI `PullImage` of `image` at `socket`: the image ref, or the error.
fn cri_pull(socket: &Path, image: &str) -> Result<String, Box<tonic::Status>> {
    runtime().block_on(async {
        cri_client(socket)
            .await
            .pull_image(cri::PullImageRequest {
                image: Some(cri::ImageSpec {
                    image: image.to_string(),
                    ..Default::default()
                }),
                auth: None,
                sandbox_config: None,
            })
            .await
            .map(|r| r.into_inner().image_ref)
            .map_err(Box::new)
    })
}

/// CRI `ImageStatus` of `image` at `socket`: its repo digests when present.
fn cri_status(socket: &Path, image: &str) -> Option<Vec<String>> {
    runtime().block_on(async {
        cri_client(socket)
            .await
            .image_status(cri::ImageStatusRequest {
                image: Some(cri::ImageSpec {
                    image: image.to_string(),
                    ..Default::default()
                }),
                verbose: false,
            })
            .await
            .expect("ImageStatus")
            .into_inner()
            .image
            .map(|i| i.repo_digests)
    })
}

#[test]
fn a_cri_pull_straight_to_containerd_goes_through_the_hook_unless_a_mirror_makes_it_pull_locally() {
    let f = Fixture::published();
    f.registry.push_image("acme/app", "3", "never signed");
    let socket = node_config(&f);
    let daemon = start_daemon(&f, &socket);
    let c = containerd(&f, &socket, "");
    let admitted = cri_pull(&c.socket, &f.image("1")).expect("signed image pulled");
    assert!(admitted.starts_with("sha256:"), "{admitted}");
    let denied = cri_pull(&c.socket, &f.image("3")).expect_err("unsigned image refused");
    assert!(
        denied.message().contains("DENY unknown_target"),
        "{denied:?}"
    );
    let good = doctor(&f, &c);
    assert_eq!(good.code, Some(0), "{good}");
    for line in [
        "ok   daemon: answering on",
        "ok   containerd version: 2.1",
        "ok   containerd hook: ",
        "ok   containerd CRI pulls: through the transfer service and the hook",
    ] {
        assert!(good.stdout.contains(line), "`{line}` in\n{good}");
    }
    eprintln!("doctor on a good node:\n{}", good.stdout);
    drop(c);

    // A registry mirror in CRI's config: containerd silently pulls past the hook.
    let mirror = format!(
        "  [plugins.\"io.containerd.cri.v1.images\".registry.mirrors.\"{0}\"]\n    endpoint = [\"http://{0}\"]\n",
        f.registry.host
    );
    let c = containerd(&f, &socket, &mirror);
    cri_pull(&c.socket, &f.image("3")).expect("pulled without the hook");
    assert!(
        c.log().contains("Falling back to local image pull mode"),
        "{}",
        c.log()
    );
    let bad = doctor(&f, &c);
    assert_eq!(bad.code, Some(1), "{bad}");
    assert!(
        bad.stdout.contains(
            "FAIL containerd CRI pulls: plugins.\"io.containerd.cri.v1.images\".registry.mirrors is set"
        ),
        "{bad}"
    );
    // The hook gone from bin_dir: containerd would admit everything.
    std::fs::remove_file(c.bin_dir.join("pullguard-hook")).expect("remove the hook");
    stop_daemon(daemon, &socket);
    let worse = doctor(&f, &c);
    for line in [
        "FAIL containerd hook: bin_dir",
        "FAIL daemon: ",
        "FAIL daemon socket: ",
    ] {
        assert!(worse.stdout.contains(line), "`{line}` in\n{worse}");
    }
    eprintln!("doctor on a misconfigured node:\n{}", worse.stdout);
    // A config containerd itself would refuse is named with containerd's reason.
    std::fs::write(&c.config, "version = 3\n[plugins\n").expect("break the config");
    let broken = doctor(&f, &c);
    assert!(
        broken.stdout.contains("FAIL containerd config: ")
            && broken
                .stdout
                .contains("containerd would not start with this config"),
        "{broken}"
    );
}

/// `pullguard doctor` about `c` and the fixture's node config (no kubelet, no CRI-O).
fn doctor(f: &Fixture, c: &Containerd) -> RunOutput {
    let (containerd, _) = common::containerd::binaries();
    f.pg(&[
        "doctor",
        "--containerd",
        containerd.to_str().expect("utf-8"),
        "--containerd-config",
        c.config.to_str().expect("utf-8"),
        "--kubelet-config",
        f.path("no-kubelet.yaml").to_str().expect("utf-8"),
        "--crio-socket",
        f.path("no-crio.sock").to_str().expect("utf-8"),
    ])
}

#[test]
fn the_cri_proxy_pulls_exactly_the_verified_digest_and_hides_unverified_images() {
    let f = Fixture::published();
    f.registry.push_image("acme/app", "3", "never signed");
    let socket = node_config(&f);
    let c = containerd(&f, &socket, "");
    let proxy = proxy_config(&f, &c);

    // Daemon down: the proxy is down with it, and the hook refuses a pull sent straight on.
    assert!(cri_client_fails(&proxy));
    let daemon = start_daemon(&f, &socket);

    let one = f.app_digest("1").to_string();
    let image_ref = cri_pull(&proxy, &f.image("1")).expect("signed image pulled");
    assert!(image_ref.starts_with("sha256:"), "{image_ref}");
    // Pulled by digest: the record is repository@digest, of the verified digest.
    // containerd asked the hook about the digest-only name, which the daemon answered as
    // the tag the proxy checked.
    let pinned = format!("{}/acme/app@{one}", f.registry.host);
    let records = c.images("k8s.io");
    assert!(records.contains(&pinned), "{records:?}");
    assert!(!records.contains(&f.image("1")), "{records:?}");
    // Trusted metadata lists app:1, not the digest alone as a pin: asked by that name, the
    // proxy reports the image absent (containerd has it).
    assert_eq!(cri_status(&proxy, &pinned), None);
    assert_eq!(cri_status(&c.socket, &pinned), Some(vec![pinned.clone()]));

    let denied = cri_pull(&proxy, &f.image("3")).expect_err("refused");
    assert_eq!(denied.code(), tonic::Code::PermissionDenied, "{denied:?}");
    assert!(
        denied
            .message()
            .starts_with("pullguard: DENY unknown_target "),
        "{denied:?}"
    );
    let missing = cri_pull(&proxy, &f.image("nope")).expect_err("refused");
    assert!(
        missing.message().contains("does not exist in the registry"),
        "{missing:?}"
    );
    // Substitution: tag 2 now points at image one's manifest; the proxy refuses the tag.
    f.registry.push_image("acme/app", "2", "image one");
    let denied = cri_pull(&proxy, &f.image("2")).expect_err("refused");
    assert!(
        denied.message().contains("DENY digest_mismatch"),
        "{denied:?}"
    );

    // Rolled back, then frozen (two days on, nobody re-signed the timestamp).
    f.registry.push_image("acme/app", "2", "image two");
    let current = replay_old_timestamp(&f, &socket);
    let denied = cri_pull(&proxy, &f.image("2")).expect_err("refused");
    assert!(denied.message().contains("DENY rollback"), "{denied:?}");
    f.retag_trust("timestamp", &current);
    stop_daemon(daemon, &socket);
    let daemon = start_daemon_with(&f, &socket, &faketime_env("+2d"));
    let denied = cri_pull(&proxy, &f.image("1")).expect_err("refused");
    assert!(denied.message().contains("DENY expired"), "{denied:?}");
    stop_daemon(daemon, &socket);
    let daemon = start_daemon(&f, &socket);

    // An image put in past every check is there for containerd, absent for kubelet.
    let out = c.ctr_in(
        "k8s.io",
        &["images", "pull", "--local", "--plain-http", &f.image("3")],
    );
    assert_eq!(out.code, Some(0), "{out}");
    assert!(cri_status(&c.socket, &f.image("3")).is_some());
    assert_eq!(cri_status(&proxy, &f.image("3")), None);
    assert!(
        cri_status(&proxy, &f.image("1")).is_none(),
        "no tag record was made"
    );
    // Malformed requests are refused, upstream untouched.
    let bad = cri_pull(&proxy, "Not A Reference").expect_err("refused");
    assert_eq!(bad.code(), tonic::Code::InvalidArgument, "{bad:?}");
    stop_daemon(daemon, &socket);
    assert!(!proxy.exists(), "the daemon removes its CRI socket");

    // With the watcher on the same containerd: the proxy tags what it pulled, so kubelet
    // finds it by its tag, and the watcher keeps every record of it while removing the
    // unverified image.
    watch_config(&f, &c);
    let daemon = start_daemon(&f, &socket);
    wait_until("the sweep removes the unverified image", || {
        !c.images("k8s.io").contains(&f.image("3"))
    });
    f.registry.push_image("acme/app", "2", "image two");
    let two = f.app_digest("2").to_string();
    let image_ref = cri_pull(&proxy, &f.image("2")).expect("signed image pulled");
    let pinned = format!("{}/acme/app@{two}", f.registry.host);
    assert_eq!(
        cri_status(&proxy, &f.image("2")),
        Some(vec![pinned.clone()])
    );
    // Now tagged, the digest-only name and the image ID are admitted through the tag.
    assert_eq!(cri_status(&proxy, &pinned), Some(vec![pinned.clone()]));
    assert_eq!(cri_status(&proxy, &image_ref), Some(vec![pinned.clone()]));
    // Events are handled in order: once a later unverified image is removed, the records
    // of the proxy's pull have been checked.
    let out = c.ctr_in(
        "k8s.io",
        &["images", "pull", "--local", "--plain-http", &f.image("3")],
    );
    assert_eq!(out.code, Some(0), "{out}");
    wait_until("the watcher removes the unverified image", || {
        !c.images("k8s.io").contains(&f.image("3"))
    });
    let records = c.images("k8s.io");
    for kept in [&pinned, &f.image("2"), &image_ref] {
        assert!(records.contains(kept), "{kept} in {records:?}");
    }
    stop_daemon(daemon, &socket);
}

/// Whether a CRI client cannot reach `socket`.
fn cri_client_fails(socket: &Path) -> bool {
    runtime()
        .block_on(pullguard_proto::client::channel(
            socket,
            std::time::Duration::from_secs(1),
        ))
        .is_err()
}

/// The CRI proxy's cost per `PullImage` of an image already present and verified, against
/// containerd's CRI directly: 100 of each, interleaved, on connections kept open (as
/// kubelet keeps its own). A measurement: run with
/// `cargo test --release --test containerd_e2e cri_proxy_latency -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement, not a test; see the README's figures"]
fn cri_proxy_latency() {
    let f = Fixture::published();
    let socket = node_config(&f);
    let c = containerd(&f, &socket, "");
    let proxy = proxy_config(&f, &c);
    let daemon = start_daemon(&f, &socket);
    let request = || cri::PullImageRequest {
        image: Some(cri::ImageSpec {
            image: f.image("1"),
            ..Default::default()
        }),
        auth: None,
        sandbox_config: None,
    };
    let (mut via_proxy, mut direct) = (Vec::new(), Vec::new());
    runtime().block_on(async {
        let mut p = cri_client(&proxy).await;
        let mut d = cri_client(&c.socket).await;
        // Present and verified before the clock starts.
        p.pull_image(request())
            .await
            .expect("pull through the proxy");
        d.pull_image(request()).await.expect("pull directly");
        for _ in 0..100 {
            let t = std::time::Instant::now();
            p.pull_image(request())
                .await
                .expect("pull through the proxy");
            via_proxy.push(t.elapsed());
            let t = std::time::Instant::now();
            d.pull_image(request()).await.expect("pull directly");
            direct.push(t.elapsed());
        }
    });
    let stats = |v: &mut Vec<std::time::Duration>| {
        v.sort();
        (v[v.len() / 2], v[v.len() * 99 / 100])
    };
    let (pm, p99) = stats(&mut via_proxy);
    let (dm, d99) = stats(&mut direct);
    println!(
        "PullImage of a present, verified image, 100 each: through the proxy median {:.2} ms, p99 {:.2} ms; \
         containerd directly median {:.2} ms, p99 {:.2} ms; added median {:.2} ms",
        pm.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        dm.as_secs_f64() * 1e3,
        d99.as_secs_f64() * 1e3,
        (pm.as_secs_f64() - dm.as_secs_f64()) * 1e3
    );
    stop_daemon(daemon, &socket);
}
