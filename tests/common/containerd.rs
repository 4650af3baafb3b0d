//! A real containerd 2.x for a test: the newer Debian suite's package, unpacked by
//! `scripts/fetch-peers.sh` (run by the setup), with its root, state, sockets and verifier
//! directory under a temp dir, started and stopped by the test.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::RunOutput;

/// containerd's and ctr's paths, from `scripts/fetch-peers.sh containerd` (which does nothing
/// when they are unpacked already).
pub fn binaries() -> &'static (PathBuf, PathBuf) {
    static BINARIES: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    BINARIES.get_or_init(|| {
        let out = Command::new(super::repo_root().join("scripts/fetch-peers.sh"))
            .arg("containerd")
            .stderr(Stdio::inherit())
            .output()
            .expect("run scripts/fetch-peers.sh");
        assert!(
            out.status.success(),
            "scripts/fetch-peers.sh containerd failed; {}",
            super::SETUP_HINT
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let containerd = stdout
            .lines()
            .find_map(|l| l.strip_prefix("containerd="))
            .map(PathBuf::from)
            .unwrap_or_else(|| panic!("fetch-peers printed no containerd path: {stdout}"));
        let ctr = containerd.with_file_name("ctr");
        assert!(ctr.is_file(), "no ctr beside {}", containerd.display());
        (containerd, ctr)
    })
}

/// The hook executable built with the tests.
pub fn hook_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_pullguard-hook"))
}

/// How to start containerd.
pub struct Options {
    /// The registry at 127.0.0.1 that pulls go to over plain HTTP (a `hosts.toml` for it).
    pub registry: String,
    /// The daemon's socket, given to the hook as `PULLGUARD_SOCKET`.
    pub pullguard_socket: PathBuf,
    /// TOML added to the CRI images plugin's table. One that configures the registry
    /// (`mirrors`, which containerd refuses beside `config_path`) replaces the hosts
    /// directory.
    pub cri_images_extra: String,
}

pub struct Containerd {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub bin_dir: PathBuf,
    pub config: PathBuf,
    options: Options,
    child: Option<Child>,
}

impl Containerd {
    /// containerd with the pullguard hook in its verifier directory, serving once its
    /// socket answers.
    pub fn start(options: Options) -> Containerd {
        let dir = super::tempdir();
        let d = dir.path();
        let bin_dir = d.join("verifiers");
        std::fs::create_dir_all(&bin_dir).expect("bin_dir");
        std::os::unix::fs::symlink(hook_binary(), bin_dir.join("pullguard-hook"))
            .expect("install the hook");
        let hosts = d.join("certs.d").join(&options.registry);
        std::fs::create_dir_all(&hosts).expect("certs.d");
        std::fs::write(
            hosts.join("hosts.toml"),
            format!(
                "server = \"http://{0}\"\n[host.\"http://{0}\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
                options.registry
            ),
        )
        .expect("hosts.toml");
        let socket = d.join("containerd.sock");
        let config = d.join("config.toml");
        std::fs::write(&config, config_text(d, &options)).expect("containerd config");
        let mut c = Containerd {
            dir,
            socket,
            bin_dir,
            config,
            options,
            child: None,
        };
        c.launch();
        c
    }

    fn launch(&mut self) {
        let (containerd, _) = binaries();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("containerd.log"))
            .expect("containerd log");
        let child = Command::new(containerd)
            .arg("--config")
            .arg(&self.config)
            .env("PULLGUARD_SOCKET", &self.options.pullguard_socket)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start containerd");
        self.child = Some(child);
        let started = Instant::now();
        loop {
            if self
                .ctr(&["version"])
                .output()
                .is_ok_and(|o| o.status.success())
            {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("containerd exited ({status}) at start:\n{}", self.log());
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "containerd did not answer within 30 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// containerd's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    /// `ctr` against this containerd, in `namespace` unless another `-n` follows.
    pub fn ctr(&self, args: &[&str]) -> Command {
        let (_, ctr) = binaries();
        let mut command = Command::new(ctr);
        command.arg("--address").arg(&self.socket).args(args);
        command
    }

    /// Runs `ctr -n NAMESPACE ARGS`.
    pub fn ctr_in(&self, namespace: &str, args: &[&str]) -> RunOutput {
        let mut all = vec!["-n", namespace];
        all.extend_from_slice(args);
        super::run(self.ctr(&all))
    }

    /// `ctr images pull --plain-http REF` in `namespace`.
    pub fn pull(&self, namespace: &str, reference: &str) -> RunOutput {
        self.ctr_in(namespace, &["images", "pull", "--plain-http", reference])
    }

    /// The image names in `namespace`.
    pub fn images(&self, namespace: &str) -> Vec<String> {
        let out = self.ctr_in(namespace, &["images", "ls", "-q"]);
        assert_eq!(out.code, Some(0), "ctr images ls: {out}");
        out.stdout.lines().map(str::to_string).collect()
    }

    /// Stops containerd (SIGTERM, then SIGKILL after 10 s).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(10) {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops and starts containerd again on the same root and sockets.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// containerd's config: everything under `d`; the native snapshotter (no overlay needed);
/// the bindir verifier on `d/verifiers`; hosts from `d/certs.d`.
fn config_text(d: &Path, options: &Options) -> String {
    let d = d.display();
    let hosts = if options.cri_images_extra.contains(".registry") {
        String::new()
    } else {
        format!(
            "  [plugins.\"io.containerd.cri.v1.images\".registry]\n    config_path = \"{d}/certs.d\"\n"
        )
    };
    format!(
        r#"version = 3
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.nri.v1.nri"]

[grpc]
  address = "{d}/containerd.sock"

[ttrpc]
  address = "{d}/containerd.sock.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"

[plugins."io.containerd.image-verifier.v1.bindir"]
  bin_dir = "{d}/verifiers"
  max_verifiers = 10
  per_verifier_timeout = "10s"

[[plugins."io.containerd.transfer.v1.local".unpack_config]]
  platform = "linux/amd64"
  snapshotter = "native"

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "native"
{extra}
{hosts}"#,
        extra = options.cri_images_extra
    )
}
