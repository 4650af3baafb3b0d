//! The node's configuration: one TOML file, `/etc/pullguard/pullguard.toml` (the format
//! containerd and CRI-O operators already use). The daemon's settings (`[daemon]`), the
//! trust scopes (`[[scope]]`) and how to reach each registry (`[registries."host"]`); the
//! publisher commands read the same file. It is read and validated before anything binds
//! or connects, and unknown keys are errors, so a typo never silently weakens a setting
//! (such as `plain_http` or `mode`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::registry::client::SetupError;
use crate::registry::{ImageRef, Registry, RegistryConfig, Scope};

/// The largest config file read.
pub const CONFIG_FILE_MAX: u64 = 1024 * 1024;
/// The longest deadline one verification may be given.
pub const DEADLINE_MAX: Duration = Duration::from_secs(3600);
/// Where the config is when neither `--config` nor `$PULLGUARD_CONFIG` names it.
pub const DEFAULT_PATH: &str = "/etc/pullguard/pullguard.toml";

/// Why a config file cannot be used: which file, and what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {reason}", path.display())]
    Syntax { path: PathBuf, reason: String },
    #[error("{}: {source}", path.display())]
    Invalid {
        path: PathBuf,
        source: InvalidSetting,
    },
}

/// A setting that is well-formed but not usable, named by its key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct InvalidSetting {
    pub key: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub daemon: DaemonConfig,
    /// The trust scopes; an image belongs to the one with the longest matching prefix.
    #[serde(default, rename = "scope")]
    pub scopes: Vec<ScopeConfig>,
    /// Per registry host (`name[:port]`).
    #[serde(default)]
    pub registries: BTreeMap<String, RegistryConfig>,
    /// The containerd event watcher.
    #[serde(default)]
    pub containerd: ContainerdConfig,
    /// The CRI image proxy.
    #[serde(default)]
    pub cri: CriConfig,
}

/// `[containerd]`: the event watcher, which checks images that reached containerd by a path
/// the hook does not see (`ctr images pull --local`, `ctr images import`, CRI's local-pull
/// fallback) and, where the verdict denies, removes their image records.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ContainerdConfig {
    /// containerd's gRPC socket; absent: no watcher.
    pub socket: Option<PathBuf>,
    /// The namespaces watched.
    pub namespaces: Vec<String>,
}

impl Default for ContainerdConfig {
    fn default() -> Self {
        ContainerdConfig {
            socket: None,
            namespaces: vec!["k8s.io".into()],
        }
    }
}

/// `[cri]`: the CRI image proxy (`runtime.v1.ImageService`) for kubelet's
/// `imageServiceEndpoint`, in front of containerd's or CRI-O's CRI socket.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct CriConfig {
    /// The proxy's socket; absent: no proxy.
    pub socket: Option<PathBuf>,
    /// The runtime's CRI socket (containerd: its main socket; CRI-O: `/var/run/crio/crio.sock`).
    pub upstream: PathBuf,
}

impl Default for CriConfig {
    fn default() -> Self {
        CriConfig {
            socket: None,
            upstream: PathBuf::from("/run/containerd/containerd.sock"),
        }
    }
}

/// Whether `ns` is a containerd namespace name (its own rule: a letter or digit, then
/// letters, digits, `.`, `_` and `-`, at most 76 characters).
fn is_namespace(ns: &str) -> bool {
    let mut chars = ns.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && ns.len() <= 76
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// `[daemon]`: where `pullguard serve` listens and keeps its state.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonConfig {
    /// The gRPC socket (its directory is created 0750, the socket 0660).
    pub socket: PathBuf,
    /// The RocksDB state.
    pub state_dir: PathBuf,
    /// `host:port` of the Prometheus `/metrics` endpoint; absent means off.
    pub metrics: Option<String>,
    pub audit_log: PathBuf,
    /// What an image in no scope gets.
    pub unmatched: Unmatched,
    /// Images always admitted, by digest only (`host/repo@sha256:…`).
    pub allow: Vec<String>,
    /// One time limit for a whole verification (below containerd's 10 s hook limit).
    pub verify_deadline: String,
    /// How often, at most, each scope's timestamp is fetched in the background (sooner
    /// when it would expire first): how long a revocation may take to reach the node.
    pub refresh_interval: String,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            socket: PathBuf::from("/run/pullguard/pullguard.sock"),
            state_dir: PathBuf::from("/var/lib/pullguard"),
            metrics: None,
            audit_log: PathBuf::from("/var/log/pullguard/audit.jsonl"),
            unmatched: Unmatched::Deny,
            allow: Vec::new(),
            verify_deadline: "5s".into(),
            refresh_interval: "60s".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Unmatched {
    Deny,
    Admit,
}

/// `[[scope]]`: one trust root and where its metadata lives.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ScopeConfig {
    /// `REGISTRY/NAMESPACE`.
    pub name: String,
    /// The pinned initial root (no trust on first use).
    pub root: PathBuf,
    /// `oci`, an `https://` or `http://` TUF base URL, `file:///dir` or `bundle:///file`.
    #[serde(default = "default_source")]
    pub source: String,
    /// The registry repository of the metadata (default `NAMESPACE/trust`).
    #[serde(default)]
    pub trust_repository: Option<String>,
    #[serde(default = "default_require")]
    pub require: Require,
    #[serde(default = "default_mode")]
    pub mode: Mode,
    /// How long past expiry cached metadata may still admit while the source cannot be
    /// reached (`0s`: not at all).
    #[serde(default = "default_grace")]
    pub offline_grace: String,
}

fn default_source() -> String {
    "oci".into()
}
fn default_require() -> Require {
    Require::Both
}
fn default_mode() -> Mode {
    Mode::Enforce
}
fn default_grace() -> String {
    "0s".into()
}

/// Which evidence a scope requires (DESIGN §2, policy).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Require {
    Targets,
    Signature,
    Both,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Enforce,
    Warn,
    Off,
}

impl Mode {
    /// As the config writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Warn => "warn",
            Mode::Off => "off",
        }
    }
}

/// Where a scope's metadata comes from, as [`ScopeConfig::source`] names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceKind {
    Oci,
    Http(String),
    Dir(PathBuf),
    Bundle(PathBuf),
}

impl SourceKind {
    pub fn parse(s: &str) -> Result<Self, String> {
        if s == "oci" {
            Ok(SourceKind::Oci)
        } else if s.starts_with("https://") || s.starts_with("http://") {
            Ok(SourceKind::Http(s.to_string()))
        } else if let Some(dir) = s.strip_prefix("file://") {
            Ok(SourceKind::Dir(PathBuf::from(dir)))
        } else if let Some(file) = s.strip_prefix("bundle://") {
            Ok(SourceKind::Bundle(PathBuf::from(file)))
        } else {
            Err(format!(
                "`{s}` is not a source (oci, an https:// or http:// URL, file:///dir or bundle:///file)"
            ))
        }
    }
}

/// A duration of the config (`5s`, `10m`, `1h`, `7d`); `zero_ok` lets `0s` through.
/// The longest `daemon.refresh_interval`.
pub const REFRESH_INTERVAL_MAX: Duration = Duration::from_secs(86_400);

pub fn parse_setting_duration(s: &str, zero_ok: bool) -> Result<Duration, String> {
    let zero = s.trim().strip_suffix(['s', 'm', 'h', 'd']) == Some("0");
    if zero && zero_ok {
        return Ok(Duration::ZERO);
    }
    crate::publish::repo::parse_duration(s)?
        .to_std()
        .map_err(|_| format!("`{s}` is not a duration"))
}

impl Config {
    /// The file to read: `path`, else `$PULLGUARD_CONFIG`, else [`DEFAULT_PATH`] when it
    /// exists (else none: the defaults).
    pub fn path(path: Option<&Path>) -> Option<PathBuf> {
        match path {
            Some(p) => Some(p.to_path_buf()),
            None => std::env::var_os("PULLGUARD_CONFIG")
                .filter(|p| !p.is_empty())
                .map(PathBuf::from)
                .or_else(|| {
                    let p = PathBuf::from(DEFAULT_PATH);
                    p.exists().then_some(p)
                }),
        }
    }

    /// Reads and validates the config (see [`Config::path`]).
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let Some(path) = Config::path(path) else {
            return Ok(Config::default());
        };
        let bytes = match crate::io::read_file(&path, CONFIG_FILE_MAX) {
            Ok(b) => b,
            Err(source) => return Err(ConfigError::Unreadable { path, source }),
        };
        let syntax = |reason: String| ConfigError::Syntax {
            path: path.clone(),
            reason,
        };
        let text = String::from_utf8(bytes).map_err(|_| syntax("not UTF-8 text".into()))?;
        let config: Config = toml::from_str(&text).map_err(|e| syntax(one_line(&e)))?;
        if let Err(source) = config.validate() {
            return Err(ConfigError::Invalid { path, source });
        }
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), InvalidSetting> {
        let invalid = |key: String, reason: String| Err(InvalidSetting { key, reason });
        let d = &self.daemon;
        if let Some(m) = &d.metrics {
            if m.parse::<SocketAddr>().is_err() {
                return invalid(
                    "daemon.metrics".into(),
                    format!("`{m}` is not host:port (an IP address and a port)"),
                );
            }
        }
        for (i, a) in d.allow.iter().enumerate() {
            let pinned = a.parse::<ImageRef>().map(|r| r.digest().is_some());
            match pinned {
                Ok(true) => {}
                Ok(false) => {
                    return invalid(
                        format!("daemon.allow[{i}]"),
                        format!("`{a}` names no digest: images are allowed by digest only"),
                    )
                }
                Err(e) => return invalid(format!("daemon.allow[{i}]"), e.to_string()),
            }
        }
        match parse_setting_duration(&d.verify_deadline, false) {
            Ok(t) if t <= DEADLINE_MAX => {}
            Ok(_) => {
                return invalid(
                    "daemon.verify_deadline".into(),
                    "longer than an hour".into(),
                )
            }
            Err(e) => return invalid("daemon.verify_deadline".into(), e),
        }
        match parse_setting_duration(&d.refresh_interval, false) {
            Ok(t) if t >= Duration::from_secs(1) && t <= REFRESH_INTERVAL_MAX => {}
            Ok(_) => {
                return invalid(
                    "daemon.refresh_interval".into(),
                    "must be between 1 s and 1 day".into(),
                )
            }
            Err(e) => return invalid("daemon.refresh_interval".into(), e),
        }
        if self.containerd.namespaces.is_empty() {
            return invalid(
                "containerd.namespaces".into(),
                "names no namespace (the default is [\"k8s.io\"])".into(),
            );
        }
        for (i, ns) in self.containerd.namespaces.iter().enumerate() {
            if !is_namespace(ns) {
                return invalid(
                    format!("containerd.namespaces[{i}]"),
                    format!("`{ns}` is not a containerd namespace name"),
                );
            }
        }
        if let Some(cri) = &self.cri.socket {
            if cri == &d.socket {
                return invalid(
                    "cri.socket".into(),
                    "is the daemon's own socket (daemon.socket)".into(),
                );
            }
            if cri == &self.cri.upstream {
                return invalid(
                    "cri.upstream".into(),
                    "is the proxy's own socket: the proxy would ask itself".into(),
                );
            }
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, s) in self.scopes.iter().enumerate() {
            let key = |k: &str| format!("scope[{i}].{k}");
            if let Err(e) = s.name.parse::<Scope>() {
                return invalid(key("name"), e.to_string());
            }
            if !names.insert(s.name.trim_end_matches('/')) {
                return invalid(key("name"), format!("scope {} is configured twice", s.name));
            }
            if !s.root.is_file() {
                return invalid(
                    key("root"),
                    format!("{} is not a readable file", s.root.display()),
                );
            }
            if let Err(e) = SourceKind::parse(&s.source) {
                return invalid(key("source"), e);
            }
            if let Some(repo) = &s.trust_repository {
                if let Err(e) = crate::registry::reference::check_repository(repo) {
                    return invalid(key("trust_repository"), e.to_string());
                }
            }
            if let Err(e) = parse_setting_duration(&s.offline_grace, true) {
                return invalid(key("offline_grace"), e);
            }
        }
        for (host, r) in &self.registries {
            if host.is_empty() || host.contains('/') {
                return invalid(
                    "registries".into(),
                    format!("`{host}` is not a registry host"),
                );
            }
            if let Some(ca) = &r.ca_file {
                if !ca.exists() {
                    return invalid(
                        format!("registries.\"{host}\".ca_file"),
                        format!("{} does not exist", ca.display()),
                    );
                }
            }
            let max = crate::io::REQUEST_TIMEOUT_MAX.as_secs();
            if let Some(t) = r.timeout_secs.filter(|t| !(1..=max).contains(t)) {
                return invalid(
                    format!("registries.\"{host}\".timeout_secs"),
                    format!("{t} is not between 1 and {max}"),
                );
            }
            if r.username.is_some() != (r.password.is_some() || r.password_file.is_some()) {
                return invalid(
                    format!("registries.\"{host}\""),
                    "username and password go together".into(),
                );
            }
        }
        Ok(())
    }

    /// A client for `host`, configured as this file says (HTTPS and anonymous by default).
    /// Credentials come from the registry's own settings, else its `docker_config`, else
    /// `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`.
    pub fn registry(&self, host: &str) -> Result<Arc<Registry>, SetupError> {
        // Host names are case-insensitive; references keep them in lowercase.
        let rc = self
            .registries
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(host))
            .map(|(_, r)| r.clone())
            .unwrap_or_default();
        let docker = rc
            .docker_config
            .clone()
            .or_else(crate::registry::auth::docker_config_path);
        Registry::new(host, &rc, docker.as_deref()).map(Arc::new)
    }
}

/// A TOML error on one line (it quotes the offending line with a caret below it).
fn one_line(e: &toml::de::Error) -> String {
    let message = e.message().trim();
    match e.span() {
        Some(span) => format!("{message} (at byte {})", span.start),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        let config: Config = toml::from_str(text).map_err(|e| one_line(&e))?;
        config.validate().map_err(|e| e.to_string())?;
        Ok(config)
    }

    #[test]
    fn a_full_node_config_reads_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("acme.root.json");
        std::fs::write(&root, "{}").expect("root");
        let text = format!(
            r#"
[daemon]
socket = "/run/pullguard/pullguard.sock"
state_dir = "/var/lib/pullguard"
metrics = "127.0.0.1:9464"
unmatched = "admit"
allow = ["registry.k8s.io/pause@sha256:{hex}"]

[[scope]]
name = "127.0.0.1:5000/acme"
root = "{root}"
require = "signature"
mode = "warn"
offline_grace = "1h"

[[scope]]
name = "127.0.0.1:5000/acme/team"
root = "{root}"
source = "https://tuf.example/metadata/"

[registries."127.0.0.1:5000"]
plain_http = true
timeout_secs = 5

[containerd]
socket = "/run/containerd/containerd.sock"
namespaces = ["k8s.io", "default"]

[cri]
socket = "/run/pullguard/cri.sock"
upstream = "/var/run/crio/crio.sock"
"#,
            hex = "a".repeat(64),
            root = root.display()
        );
        let c = parse(&text).expect("valid");
        assert_eq!(c.daemon.unmatched, Unmatched::Admit);
        assert_eq!(c.daemon.verify_deadline, "5s");
        assert_eq!(c.scopes.len(), 2);
        assert_eq!(c.scopes[0].mode, Mode::Warn);
        assert_eq!(c.scopes[0].require, Require::Signature);
        assert_eq!(c.scopes[1].require, Require::Both);
        assert_eq!(
            SourceKind::parse(&c.scopes[1].source),
            Ok(SourceKind::Http("https://tuf.example/metadata/".into()))
        );
        assert!(c.registries["127.0.0.1:5000"].plain_http);
        assert_eq!(c.containerd.namespaces, ["k8s.io", "default"]);
        assert_eq!(
            c.cri.socket.as_deref(),
            Some(Path::new("/run/pullguard/cri.sock"))
        );
        // Off unless configured.
        let bare = parse("").expect("valid");
        assert_eq!((bare.containerd.socket, bare.cri.socket), (None, None));
        assert_eq!(bare.containerd.namespaces, ["k8s.io"]);
    }

    #[test]
    fn each_bad_setting_is_named() {
        let cases = [
            ("[daemon]\nsokcet = \"/x\"", "unknown field `sokcet`"),
            (
                "[registries.\"h:1\"]\nplain-http = true",
                "unknown field `plain-http`",
            ),
            ("[daemon]\nunmatched = \"maybe\"", "unknown variant `maybe`"),
            ("[daemon]\nmetrics = \"localhost\"", "daemon.metrics"),
            (
                "[daemon]\nallow = [\"r.io/pause:3.9\"]",
                "daemon.allow[0]: `r.io/pause:3.9` names no digest",
            ),
            (
                "[daemon]\nverify_deadline = \"0s\"",
                "daemon.verify_deadline",
            ),
            ("[containerd]\nnamespaces = []", "containerd.namespaces"),
            (
                "[containerd]\nnamespaces = [\"k8s.io\", \"-x\"]",
                "containerd.namespaces[1]: `-x` is not a containerd namespace name",
            ),
            ("[containerd]\nsocket = 1", "invalid type"),
            (
                "[cri]\nsocket = \"/run/pullguard/pullguard.sock\"",
                "cri.socket: is the daemon's own socket",
            ),
            (
                "[cri]\nsocket = \"/run/c.sock\"\nupstream = \"/run/c.sock\"",
                "cri.upstream: is the proxy's own socket",
            ),
            ("[cri]\nupstrem = \"/x\"", "unknown field `upstrem`"),
            (
                "[daemon]\nrefresh_interval = \"2d\"",
                "daemon.refresh_interval: must be between 1 s and 1 day",
            ),
            (
                "[[scope]]\nname = \"nohost\"\nroot = \"/x\"",
                "scope[0].name",
            ),
            (
                "[[scope]]\nname = \"h:1/a\"\nroot = \"/nonexistent/root.json\"",
                "scope[0].root: /nonexistent/root.json is not a readable file",
            ),
            ("[[scope]]\nname = \"h:1/a\"", "missing field `root`"),
            (
                "[registries.\"h:1\"]\nusername = \"u\"",
                "registries.\"h:1\": username and password go together",
            ),
            (
                "[registries.\"h:1\"]\nca_file = \"/nonexistent/ca.pem\"",
                "registries.\"h:1\".ca_file",
            ),
            (
                "[registries.\"h:1\"]\ntimeout_secs = 0",
                "registries.\"h:1\".timeout_secs: 0 is not between 1 and 3600",
            ),
            (
                // TOML integers are 64-bit signed: the number is refused as written.
                "[registries.\"h:1\"]\ntimeout_secs = 18446744073709551615",
                "number too large",
            ),
            (
                "[registries.\"h:1\"]\ntimeout_secs = 9223372036854775807",
                "registries.\"h:1\".timeout_secs",
            ),
            ("{\"registries\": {}}", "at byte"),
        ];
        for (text, says) in cases {
            let err = parse(text).expect_err(text);
            assert!(err.contains(says), "{text}: {err}");
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("r.json");
        std::fs::write(&root, "{}").expect("root");
        let scope = |extra: &str| {
            format!(
                "[[scope]]\nname = \"h:1/a\"\nroot = \"{}\"\n{extra}",
                root.display()
            )
        };
        for (extra, says) in [
            ("source = \"ftp://x\"", "scope[0].source"),
            ("offline_grace = \"soon\"", "scope[0].offline_grace"),
            ("mode = \"audit\"", "unknown variant `audit`"),
            (
                "trust_repository = \"Acme/Trust\"",
                "scope[0].trust_repository",
            ),
        ] {
            let err = parse(&scope(extra)).expect_err(extra);
            assert!(err.contains(says), "{extra}: {err}");
        }
        assert!(parse(&scope("offline_grace = \"0s\"")).is_ok());
        assert!(parse(&scope("offline_grace = \"0sm\"")).is_err());
        let twice = format!("{}\n{}", scope(""), scope(""));
        assert!(parse(&twice)
            .expect_err("twice")
            .contains("configured twice"));
    }

    #[test]
    fn an_endless_or_huge_config_file_is_refused() {
        let err = Config::load(Some(Path::new("/dev/zero"))).expect_err("endless");
        let text = err.to_string();
        assert!(
            text.contains("/dev/zero") && text.contains("limit"),
            "{text}"
        );
    }
}
