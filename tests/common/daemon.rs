//! A real `pullguard serve` process for a test, and a gRPC client of its socket.

use std::path::{Path, PathBuf};

use super::fixture::Fixture;

/// [`write_config`] for the scope as served by `host` (the registry, or a front before it).
pub fn write_config_on(f: &Fixture, host: &str, daemon_extra: &str, scope_extra: &str) -> PathBuf {
    let socket = f.path("run/pullguard.sock");
    let config = format!(
        "[daemon]\nsocket = \"{}\"\nstate_dir = \"{}\"\naudit_log = \"{}\"\n{daemon_extra}\n\n\
         [[scope]]\nname = \"{host}/acme\"\nroot = \"{}\"\n{scope_extra}\n\n\
         [registries.\"{host}\"]\nplain_http = true\n",
        socket.display(),
        f.path("daemon-state").display(),
        f.path("log/audit.jsonl").display(),
        f.path("pullguard-repo/metadata/1.root.json").display(),
    );
    std::fs::write(f.path("pullguard.toml"), config).expect("config");
    socket
}

/// A channel to the daemon at `socket`.
pub async fn daemon_channel(socket: PathBuf) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_static("http://daemon.invalid")
        .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
            let socket = socket.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(socket).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
            }
        }))
        .await
        .expect("connect to the daemon")
}

/// A client of the daemon at `socket`.
pub async fn daemon_client(
    socket: PathBuf,
) -> pullguard_proto::v1::verifier_client::VerifierClient<tonic::transport::Channel> {
    pullguard_proto::v1::verifier_client::VerifierClient::new(daemon_channel(socket).await)
}

/// A running daemon, killed if a test fails before it is stopped.
pub struct Daemon(pub Option<std::process::Child>);

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `pullguard serve` with the fixture's config, once its socket is there.
pub fn start_daemon(f: &Fixture, socket: &Path) -> Daemon {
    start_daemon_with(f, socket, &[])
}

/// The environment that runs a program with its wall clock moved by `offset` (libfaketime
/// preloaded, e.g. `+2d`); its monotonic clock, which timers use, keeps real time.
pub fn faketime_env(offset: &str) -> Vec<(String, String)> {
    let out = std::process::Command::new("dpkg")
        .args(["-L", "libfaketime"])
        .output()
        .expect("dpkg -L libfaketime");
    let lib = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.ends_with("/libfaketimeMT.so.1"))
        .unwrap_or_else(|| panic!("libfaketime is not installed; {}", super::SETUP_HINT))
        .to_string();
    vec![
        ("LD_PRELOAD".into(), lib),
        ("FAKETIME".into(), offset.into()),
        ("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into()),
    ]
}

/// [`start_daemon`] with more environment (e.g. [`faketime_env`]).
pub fn start_daemon_with(f: &Fixture, socket: &Path, env: &[(String, String)]) -> Daemon {
    let mut command = f.cmd(&["serve"]);
    command.envs(env.iter().map(|(k, v)| (k, v)));
    let mut daemon = command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the daemon");
    let started = std::time::Instant::now();
    // Served, not only there: a socket left by a killed daemon may be there already.
    while std::os::unix::net::UnixStream::connect(socket).is_err() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "no daemon on the socket after 20 s"
        );
        if let Ok(Some(status)) = daemon.try_wait() {
            panic!("the daemon exited: {status}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Daemon(Some(daemon))
}

/// SIGTERM: the daemon must exit 0 and remove its socket.
pub fn stop_daemon(mut daemon: Daemon, socket: &Path) {
    let daemon = daemon.0.take().expect("running");
    let term = std::process::Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status()
        .expect("kill");
    assert!(term.success());
    let out = daemon.wait_with_output().expect("the daemon stops");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!socket.exists(), "the socket is removed");
}
