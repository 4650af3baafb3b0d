//! A real registry for tests: Debian's `docker-registry` (CNCF distribution 2.8) on
//! 127.0.0.1 with its storage in a temporary directory, stopped when dropped. Images are
//! built and pushed by the tests themselves through pullguard's own registry client.

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pullguard_plugin::registry::oci::{Descriptor, ImageManifest, MEDIA_TYPE_IMAGE_MANIFEST};
use pullguard_plugin::registry::{Digest, Registry, RegistryConfig};

pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

pub struct TestRegistry {
    child: Child,
    pub host: String,
    pub dir: tempfile::TempDir,
    pub tls: bool,
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

impl TestRegistry {
    /// A registry without authentication, over plain HTTP.
    pub fn start() -> Self {
        Self::start_with("", false)
    }

    /// `extra` is YAML added to the config's top level (e.g. an `auth:` section); with
    /// `tls`, the `http:` section gets `tls.certificate/key` from `cert.pem`/`key.pem`,
    /// which the caller must have written into [`TestRegistry::dir`]'s path — so TLS
    /// registries are started with [`TestRegistry::start_in`].
    pub fn start_with(extra: &str, tls: bool) -> Self {
        let dir = super::tempdir();
        Self::start_in(dir, extra, tls)
    }

    pub fn start_in(dir: tempfile::TempDir, extra: &str, tls: bool) -> Self {
        Self::start_logging(dir, extra, tls, "warn")
    }

    /// A plain-HTTP registry that logs every request it answers (`http.request.uri`,
    /// `http.response.written`) into [`TestRegistry::log`].
    pub fn start_with_access_log() -> Self {
        Self::start_logging(super::tempdir(), "", false, "info")
    }

    fn start_logging(dir: tempfile::TempDir, extra: &str, tls: bool, level: &str) -> Self {
        assert!(
            Path::new(REGISTRY_BIN).is_file(),
            "{REGISTRY_BIN} not found: install the Debian package `docker-registry` ({})",
            super::SETUP_HINT
        );
        let port = free_port();
        let host = format!("127.0.0.1:{port}");
        let tls_yaml = if tls {
            format!(
                "  tls:\n    certificate: {0}/cert.pem\n    key: {0}/key.pem\n",
                dir.path().display()
            )
        } else {
            String::new()
        };
        let config = format!(
            "version: 0.1\nlog:\n  level: {level}\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}/storage\n  delete:\n    enabled: true\nhttp:\n  addr: {host}\n{tls_yaml}{extra}",
            dir.path().display()
        );
        let config_path = dir.path().join("registry.yml");
        std::fs::write(&config_path, config).expect("write registry config");
        let log = std::fs::File::create(dir.path().join("registry.log")).expect("log file");
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let mut registry = TestRegistry {
            child,
            host,
            dir,
            tls,
        };
        registry.wait_ready();
        registry
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("docker-registry exited ({status}): {}", self.log());
            }
            if std::net::TcpStream::connect(&self.host).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry did not start: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(self.dir.path().join("registry.log")) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// pullguard's client for this registry (plain HTTP, or HTTPS with its CA; anonymous).
    pub fn client(&self) -> Arc<Registry> {
        let config = RegistryConfig {
            plain_http: !self.tls,
            ca_file: self.tls.then(|| self.dir.path().join("ca.pem")),
            ..Default::default()
        };
        Arc::new(Registry::new(&self.host, &config, None).expect("registry client"))
    }

    /// Builds and pushes a small single-layer image; returns its manifest digest.
    pub fn push_image(&self, repo: &str, tag: &str, content: &str) -> Digest {
        push_image(&self.client(), repo, tag, content)
    }

    /// The blob file of `digest` in the registry's storage (to tamper with it on disk).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        self.storage().join(format!(
            "docker/registry/v2/blobs/sha256/{}/{hex}/data",
            &hex[..2]
        ))
    }
}

impl TestRegistry {
    /// Stops the registry (its storage stays until the value is dropped).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Pushes an image made of a config and one layer: a tar holding `content` as one file, so
/// that a runtime can unpack it.
pub fn push_image(client: &Registry, repo: &str, tag: &str, content: &str) -> Digest {
    let layer = tar_of("content.txt", content.as_bytes());
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{}"]}},"config":{{"Labels":{{"test":"{tag}"}}}}}}"#,
        Digest::sha256_of(&layer)
    );
    client
        .put_blob(repo, config.as_bytes())
        .expect("push config");
    client.put_blob(repo, &layer).expect("push layer");
    let mut manifest =
        ImageManifest::artifact("application/vnd.oci.image.config.v1+json", &layer, None);
    manifest.artifact_type = None;
    manifest.config = Descriptor::new(
        "application/vnd.oci.image.config.v1+json",
        config.as_bytes(),
    );
    manifest.layers = vec![Descriptor::new(
        "application/vnd.oci.image.layer.v1.tar",
        &layer,
    )];
    let bytes = manifest.to_bytes();
    let (digest, _) = client
        .put_manifest(repo, tag, MEDIA_TYPE_IMAGE_MANIFEST, &bytes)
        .expect("push manifest");
    digest
}

/// A tar archive (ustar) of one regular file.
pub fn tar_of(name: &str, content: &[u8]) -> Vec<u8> {
    fn octal(field: &mut [u8], value: u64) {
        let text = format!("{value:0width$o}\0", width = field.len() - 1);
        field.copy_from_slice(text.as_bytes());
    }
    let mut header = [0u8; 512];
    header[..name.len()].copy_from_slice(name.as_bytes());
    octal(&mut header[100..108], 0o644);
    octal(&mut header[108..116], 0);
    octal(&mut header[116..124], 0);
    octal(&mut header[124..136], content.len() as u64);
    octal(&mut header[136..148], 0);
    header[156] = b'0';
    header[257..263].copy_from_slice(b"ustar\0");
    header[263..265].copy_from_slice(b"00");
    header[148..156].fill(b' ');
    let sum: u64 = header.iter().map(|&b| u64::from(b)).sum();
    header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let mut out = header.to_vec();
    out.extend_from_slice(content);
    out.resize(out.len().div_ceil(512) * 512 + 1024, 0);
    out
}
