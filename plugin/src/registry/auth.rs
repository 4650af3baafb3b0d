//! Registry authentication: credentials (Docker-style `config.json`, or pullguard's own
//! config) and the `WWW-Authenticate` challenge (RFC 7235; Docker's token flow).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;

/// A user name and password (or token) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, <hidden>)", self.username)
    }
}

impl Credentials {
    /// The `Authorization` header value for HTTP basic auth.
    pub fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

#[derive(Debug, Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, DockerAuth>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
}

#[derive(Debug, Deserialize)]
struct DockerAuth {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

/// The largest Docker `config.json` read.
const DOCKER_CONFIG_MAX: u64 = 1024 * 1024;

/// Where Docker keeps its client config: `$DOCKER_CONFIG/config.json`, else
/// `~/.docker/config.json`.
pub fn docker_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker/config.json"))
}

/// Why credentials could not be read from a Docker-style `config.json`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error("{path}: {reason}")]
    Unreadable { path: String, reason: String },
    #[error("{path}: the credentials for {registry} are kept by `docker-credential-{helper}`; pullguard does not run credential helpers: put them in the pullguard config or in `auths`")]
    Helper {
        path: String,
        registry: String,
        helper: String,
    },
    #[error("{path}: auths.{key}.auth is {problem}")]
    BadAuth {
        path: String,
        key: String,
        problem: String,
    },
}

/// Credentials for `registry` from a Docker-style `config.json` (the `auths` map; keys may be
/// `host`, `https://host`, or `https://host/v1/`). A missing file means no credentials; a file
/// that cannot be read or parsed is an error (silently pulling anonymously would hide it).
/// Credential helpers (`credsStore`, `credHelpers`) are not run.
pub fn from_docker_config(
    path: &Path,
    registry: &str,
) -> Result<Option<Credentials>, CredentialError> {
    let bytes = match crate::io::read_file(path, DOCKER_CONFIG_MAX) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(CredentialError::Unreadable {
                path: path.display().to_string(),
                reason: e.to_string(),
            })
        }
    };
    docker_config_credentials(&bytes, path, registry)
}

/// Credentials for `registry` in the bytes of a Docker-style `config.json` read from `path`
/// (named in errors), as [`from_docker_config`] finds them.
pub fn docker_config_credentials(
    bytes: &[u8],
    path: &Path,
    registry: &str,
) -> Result<Option<Credentials>, CredentialError> {
    let shown = || path.display().to_string();
    let unreadable = |reason: String| CredentialError::Unreadable {
        path: shown(),
        reason,
    };
    let config: DockerConfig =
        serde_json::from_slice(bytes).map_err(|e| unreadable(e.to_string()))?;
    let entry = config.auths.iter().find(|(key, _)| {
        let host = key
            .trim_start_matches("https://")
            .trim_start_matches("http://");
        host.split('/').next() == Some(registry)
    });
    // Credentials kept by a helper are expected but out of reach: a helper named for
    // exactly this registry, or the empty `auths` entry that `docker login` leaves beside a
    // `credsStore`. Going on anonymously would only fail later, and less clearly.
    let helper = config.cred_helpers.get(registry).or(match entry {
        Some((_, a)) if a.auth.is_none() && a.username.is_none() => config.creds_store.as_ref(),
        _ => None,
    });
    if let Some(helper) = helper {
        let has_inline = entry.is_some_and(|(_, a)| a.auth.is_some() || a.username.is_some());
        if !has_inline {
            return Err(CredentialError::Helper {
                path: shown(),
                registry: registry.to_string(),
                helper: helper.clone(),
            });
        }
    }
    let Some((key, auth)) = entry else {
        return Ok(None);
    };
    if let (Some(u), Some(p)) = (&auth.username, &auth.password) {
        return Ok(Some(Credentials {
            username: u.clone(),
            password: p.clone(),
        }));
    }
    let Some(encoded) = &auth.auth else {
        return Ok(None);
    };
    let bad = |problem: String| CredentialError::BadAuth {
        path: shown(),
        key: key.clone(),
        problem,
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|e| bad(format!("not base64: {e}")))?;
    let text = String::from_utf8(decoded).map_err(|_| bad("not UTF-8".into()))?;
    let (username, password) = text
        .split_once(':')
        .ok_or_else(|| bad("not user:password".into()))?;
    Ok(Some(Credentials {
        username: username.to_string(),
        password: password.to_string(),
    }))
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parses `Basic realm="x"` or `Bearer realm="…",service="…",scope="…"`.
pub fn parse_challenge(header: &str) -> Result<Challenge, String> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let params = parse_params(rest)?;
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Ok(Challenge::Basic),
        "bearer" => Ok(Challenge::Bearer {
            realm: params
                .get("realm")
                .cloned()
                .ok_or_else(|| format!("bearer challenge without a realm: `{header}`"))?,
            service: params.get("service").cloned(),
            scope: params.get("scope").cloned(),
        }),
        other => Err(format!("unsupported authentication scheme `{other}`")),
    }
}

/// `key="quoted, value",key2=token` → map (keys lowercased).
fn parse_params(s: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let (key, after) = rest
            .split_once('=')
            .ok_or_else(|| format!("malformed challenge parameters `{s}`"))?;
        let key = key.trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (value, remainder) = if let Some(quoted) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, escaped)) = chars.next() {
                            value.push(escaped);
                        }
                    }
                    '"' => {
                        end = Some(i);
                        break;
                    }
                    c => value.push(c),
                }
            }
            let end = end.ok_or_else(|| format!("unterminated quote in `{s}`"))?;
            (value, &quoted[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        out.insert(key, value);
        rest = remainder.trim_start().trim_start_matches(',').trim_start();
    }
    Ok(out)
}

/// A token endpoint's answer (Docker token spec: `token`, or OAuth2's `access_token`).
#[derive(Debug, Deserialize)]
pub struct TokenResponse {
    pub token: Option<String>,
    pub access_token: Option<String>,
    pub expires_in: Option<u64>,
}

impl TokenResponse {
    pub fn into_token(self) -> Option<(String, Option<u64>)> {
        let token = self.token.or(self.access_token)?;
        (!token.is_empty()).then_some((token, self.expires_in))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Ok(Challenge::Basic)
        );
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#
            ),
            Ok(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into()),
                scope: Some("repository:a/b:pull,push".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"Bearer realm=http://127.0.0.1:1/t, service = "s\"x""#),
            Ok(Challenge::Bearer {
                realm: "http://127.0.0.1:1/t".into(),
                service: Some("s\"x".into()),
                scope: None,
            })
        );
        assert!(parse_challenge("Bearer service=\"x\"").is_err());
        assert!(parse_challenge("Negotiate abc").is_err());
        assert!(parse_challenge(r#"Bearer realm="open"#).is_err());
    }

    #[test]
    fn docker_config() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"auths": {"https://127.0.0.1:5000/v1/": {"auth": "YWxpY2U6czNjcjN0"},
                          "other:1": {"username": "bob", "password": "pw"}}}"#,
        )
        .expect("write");
        let alice = from_docker_config(&path, "127.0.0.1:5000").expect("read");
        assert_eq!(
            alice,
            Some(Credentials {
                username: "alice".into(),
                password: "s3cr3t".into()
            })
        );
        assert_eq!(
            from_docker_config(&path, "other:1")
                .expect("read")
                .map(|c| c.username),
            Some("bob".into())
        );
        assert_eq!(from_docker_config(&path, "nowhere:1"), Ok(None));
        assert_eq!(
            from_docker_config(&dir.path().join("absent.json"), "x"),
            Ok(None)
        );
        std::fs::write(&path, r#"{"credHelpers": {"reg:1": "ecr-login"}}"#).expect("write");
        let helper = from_docker_config(&path, "reg:1").expect_err("helper only");
        assert!(
            helper.to_string().contains("docker-credential-ecr-login"),
            "{helper}"
        );
        assert_eq!(from_docker_config(&path, "other:1"), Ok(None));
        // `docker login` with a credential store leaves an empty entry behind.
        std::fs::write(&path, r#"{"auths": {"reg:1": {}}, "credsStore": "pass"}"#).expect("write");
        let store = from_docker_config(&path, "reg:1").expect_err("store only");
        assert!(
            store.to_string().contains("docker-credential-pass"),
            "{store}"
        );
        assert_eq!(
            from_docker_config(&path, "public:1"),
            Ok(None),
            "no entry: anonymous"
        );
        std::fs::write(&path, "{not json").expect("write");
        assert!(from_docker_config(&path, "127.0.0.1:5000").is_err());
        assert!(!format!("{alice:?}").contains("s3cr3t"));
    }
}
