//! pullguard's configuration file (JSON): how to reach each registry. Read and validated
//! before anything connects; unknown keys are errors, so a typo never silently weakens a
//! setting (such as `plain_http`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use crate::registry::client::SetupError;
use crate::registry::{Registry, RegistryConfig};

/// The largest config file read.
pub const CONFIG_FILE_MAX: u64 = 1024 * 1024;

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
    /// Per registry host (`name[:port]`).
    #[serde(default)]
    pub registries: BTreeMap<String, RegistryConfig>,
    /// A Docker-style `config.json` for credentials; default `$DOCKER_CONFIG/config.json`
    /// or `~/.docker/config.json`.
    #[serde(default)]
    pub docker_config: Option<PathBuf>,
}

impl Config {
    /// Reads `path`; `None` means the default (`$PULLGUARD_CONFIG`, else
    /// `/etc/pullguard/config.json` when it exists, else an empty config).
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let path = match path {
            Some(p) => Some(p.to_path_buf()),
            None => std::env::var_os("PULLGUARD_CONFIG")
                .map(PathBuf::from)
                .or_else(|| {
                    let p = PathBuf::from("/etc/pullguard/config.json");
                    p.exists().then_some(p)
                }),
        };
        let Some(path) = path else {
            return Ok(Config::default());
        };
        let bytes = match crate::io::read_file(&path, CONFIG_FILE_MAX) {
            Ok(b) => b,
            Err(source) => return Err(ConfigError::Unreadable { path, source }),
        };
        let config: Config = match serde_json::from_slice(&bytes) {
            Ok(c) => c,
            Err(e) => {
                return Err(ConfigError::Syntax {
                    path,
                    reason: e.to_string(),
                })
            }
        };
        if let Err(source) = config.validate() {
            return Err(ConfigError::Invalid { path, source });
        }
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), InvalidSetting> {
        let invalid = |key: String, reason: String| Err(InvalidSetting { key, reason });
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
                        format!("registries.{host}.ca_file"),
                        format!("{} does not exist", ca.display()),
                    );
                }
            }
            let max = crate::io::REQUEST_TIMEOUT_MAX.as_secs();
            if let Some(t) = r.timeout_secs.filter(|t| !(1..=max).contains(t)) {
                return invalid(
                    format!("registries.{host}.timeout_secs"),
                    format!("{t} is not between 1 and {max}"),
                );
            }
            if r.username.is_some() != (r.password.is_some() || r.password_file.is_some()) {
                return invalid(
                    format!("registries.{host}"),
                    "username and password go together".into(),
                );
            }
        }
        Ok(())
    }

    /// A client for `host`, configured as this file says (HTTPS and anonymous by default).
    pub fn registry(&self, host: &str) -> Result<Arc<Registry>, SetupError> {
        let rc = self.registries.get(host).cloned().unwrap_or_default();
        let docker = self
            .docker_config
            .clone()
            .or_else(crate::registry::auth::docker_config_path);
        Registry::new(host, &rc, docker.as_deref()).map(Arc::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_and_half_credentials_are_refused() {
        let ok: Config = serde_json::from_str(
            r#"{"registries": {"127.0.0.1:5000": {"plain_http": true, "timeout_secs": 5}}}"#,
        )
        .expect("parse");
        assert!(ok.validate().is_ok());
        assert!(ok.registries["127.0.0.1:5000"].plain_http);
        assert!(
            serde_json::from_str::<Config>(r#"{"registries": {"h:1": {"plain-http": true}}}"#)
                .is_err()
        );
        let half: Config =
            serde_json::from_str(r#"{"registries": {"h:1": {"username": "u"}}}"#).expect("parse");
        assert!(half.validate().is_err());
        let bad_ca: Config =
            serde_json::from_str(r#"{"registries": {"h:1": {"ca_file": "/nonexistent/ca.pem"}}}"#)
                .expect("parse");
        assert!(bad_ca.validate().is_err());
        for t in ["0", "3601", "18446744073709551615"] {
            let c: Config = serde_json::from_str(&format!(
                r#"{{"registries": {{"h:1": {{"timeout_secs": {t}}}}}}}"#
            ))
            .expect("parse");
            let err = c.validate().expect_err(t);
            assert_eq!(err.key, "registries.h:1.timeout_secs");
            assert!(err.reason.contains(t), "{err}");
        }
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
