//! Parsed names: content digests, image references and trust scopes (DESIGN §2). Each type
//! has a private field and a checked constructor, so a value that exists is well-formed.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest as _, Sha256, Sha512};

/// A content digest, `sha256:<64 hex>` or `sha512:<128 hex>`, lowercase.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }
    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }
}

impl Digest {
    /// The sha256 digest of `bytes`.
    pub fn sha256_of(bytes: &[u8]) -> Self {
        Digest {
            algorithm: Algorithm::Sha256,
            hex: hex::encode(Sha256::digest(bytes)),
        }
    }

    /// A sha256 digest from its hex form (as TUF `hashes.sha256` lists it).
    pub fn from_sha256_hex(hex: &str) -> Result<Self, NameError> {
        format!("sha256:{hex}").parse()
    }

    /// The digest of `bytes` under this digest's algorithm.
    pub fn of_same_kind(&self, bytes: &[u8]) -> Digest {
        let hex = match self.algorithm {
            Algorithm::Sha256 => hex::encode(Sha256::digest(bytes)),
            Algorithm::Sha512 => hex::encode(Sha512::digest(bytes)),
        };
        Digest {
            algorithm: self.algorithm,
            hex,
        }
    }

    /// Whether `bytes` have this digest.
    pub fn matches(&self, bytes: &[u8]) -> bool {
        self.of_same_kind(bytes) == *self
    }

    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The hex form if this is a sha256 digest.
    pub fn sha256_hex(&self) -> Option<&str> {
        (self.algorithm == Algorithm::Sha256).then_some(self.hex.as_str())
    }

    /// The tag under which the OCI referrers tag schema keeps this digest's referrers
    /// (`sha256-<hex>`; the distribution spec truncates to 128 characters).
    pub fn referrers_tag(&self) -> String {
        let mut tag = format!("{}-{}", self.algorithm.name(), self.hex);
        tag.truncate(128);
        tag
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.name(), self.hex)
    }
}

/// Why a name (digest, host, repository, tag, image reference, scope) is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("`{text}` is not a digest (expected sha256:<hex>)")]
    NotADigest { text: String },
    #[error("digest algorithm `{algorithm}` is not supported")]
    UnsupportedAlgorithm { algorithm: String },
    #[error("`{text}` is not a {algorithm} digest ({expected} lowercase hex digits expected)")]
    BadDigestHex {
        text: String,
        algorithm: &'static str,
        expected: usize,
    },
    #[error("`{host}` is not a registry host")]
    BadHost { host: String },
    #[error("`{name}` is not a repository name (lowercase letters, digits, `._-` and `/`)")]
    BadRepository { name: String },
    #[error(
        "`{tag}` is not a tag (letters, digits, `_.-`, at most 128, not starting with `.` or `-`)"
    )]
    BadTag { tag: String },
    #[error("{registry}/{repository}: a tag or a digest is required")]
    NoTagOrDigest {
        registry: String,
        repository: String,
    },
    #[error("`{text}` has no registry host (write host[:port]/repository:tag)")]
    NoRegistry { text: String },
    #[error("`{text}` is not a scope (write REGISTRY/NAMESPACE)")]
    NotAScope { text: String },
    #[error("scope namespace: {source}")]
    ScopeNamespace { source: Box<NameError> },
}

impl FromStr for Digest {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        let (alg, hex) = s.split_once(':').ok_or_else(|| NameError::NotADigest {
            text: s.to_string(),
        })?;
        let algorithm = match alg {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            other => {
                return Err(NameError::UnsupportedAlgorithm {
                    algorithm: other.to_string(),
                })
            }
        };
        let lower_hex = hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if hex.len() != algorithm.hex_len() || !lower_hex {
            return Err(NameError::BadDigestHex {
                text: s.to_string(),
                algorithm: algorithm.name(),
                expected: algorithm.hex_len(),
            });
        }
        Ok(Digest {
            algorithm,
            hex: hex.to_string(),
        })
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// A registry host as written in references: `host`, `host:port`, `[v6]:port`. Host names
/// are case-insensitive: references and scopes keep them in lowercase, so one registry is
/// never two.
fn check_host(host: &str) -> Result<(), NameError> {
    let ok = !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(NameError::BadHost {
            host: host.to_string(),
        })
    }
}

/// A repository name per the distribution spec: lowercase components of `[a-z0-9]` with
/// `.`, `_`, `__` or `-` runs inside, joined by `/`.
pub fn check_repository(name: &str) -> Result<(), NameError> {
    let component_ok = |c: &str| {
        let b = c.as_bytes();
        !b.is_empty()
            && b[0].is_ascii_lowercase() | b[0].is_ascii_digit()
            && b[b.len() - 1].is_ascii_lowercase() | b[b.len() - 1].is_ascii_digit()
            && b.iter()
                .all(|&x| x.is_ascii_lowercase() || x.is_ascii_digit() || b"._-".contains(&x))
    };
    if name.is_empty() || name.len() > 255 || !name.split('/').all(component_ok) {
        return Err(NameError::BadRepository {
            name: name.to_string(),
        });
    }
    Ok(())
}

/// A tag per the distribution spec: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn check_tag(tag: &str) -> Result<(), NameError> {
    let b = tag.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|&x| x.is_ascii_alphanumeric() || b"_.-".contains(&x));
    if ok {
        Ok(())
    } else {
        Err(NameError::BadTag {
            tag: tag.to_string(),
        })
    }
}

/// An image reference with an explicit registry: `host[:port]/repo[:tag][@digest]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl ImageRef {
    pub fn new(
        registry: &str,
        repository: &str,
        tag: Option<&str>,
        digest: Option<Digest>,
    ) -> Result<Self, NameError> {
        check_host(registry)?;
        check_repository(repository)?;
        if let Some(t) = tag {
            check_tag(t)?;
        }
        if tag.is_none() && digest.is_none() {
            return Err(NameError::NoTagOrDigest {
                registry: registry.to_ascii_lowercase(),
                repository: repository.to_string(),
            });
        }
        Ok(ImageRef {
            registry: registry.to_ascii_lowercase(),
            repository: repository.to_string(),
            tag: tag.map(str::to_string),
            digest,
        })
    }

    pub fn registry(&self) -> &str {
        &self.registry
    }
    /// The repository's full name in the registry (`library/debian`).
    pub fn repository(&self) -> &str {
        &self.repository
    }
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The same image pinned to `digest` (tag kept).
    pub fn with_digest(&self, digest: Digest) -> ImageRef {
        ImageRef {
            digest: Some(digest),
            ..self.clone()
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl FromStr for ImageRef {
    type Err = NameError;
    /// The registry must be explicit (the first component has a `.` or a `:`, or is
    /// `localhost`): pullguard never guesses a default registry.
    fn from_str(s: &str) -> Result<Self, NameError> {
        let (name, digest) = match s.split_once('@') {
            Some((n, d)) => (n, Some(d.parse::<Digest>()?)),
            None => (s, None),
        };
        let no_registry = || NameError::NoRegistry {
            text: s.to_string(),
        };
        let (registry, path) = name.split_once('/').ok_or_else(no_registry)?;
        if !(registry.contains('.') || registry.contains(':') || registry == "localhost") {
            return Err(no_registry());
        }
        let (repository, tag) = match path.rsplit_once(':') {
            Some((r, t)) if !t.contains('/') => (r, Some(t)),
            _ => (path, None),
        };
        ImageRef::new(registry, repository, tag, digest)
    }
}

/// A trust scope: a registry host and a namespace prefix (DESIGN §2). Its TUF repository
/// lives in `<namespace>/trust` by default.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope {
    registry: String,
    namespace: String,
}

impl Scope {
    pub fn registry(&self) -> &str {
        &self.registry
    }
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The registry repository that holds the scope's TUF metadata.
    pub fn trust_repository(&self) -> String {
        format!("{}/trust", self.namespace)
    }

    /// The full registry repository of a repository named relative to the scope.
    pub fn full_repository(&self, relative: &str) -> String {
        format!("{}/{relative}", self.namespace)
    }

    /// Whether `image` lives under this scope's namespace (its trust repository included).
    pub fn contains(&self, image: &ImageRef) -> bool {
        image.registry() == self.registry
            && image
                .repository()
                .strip_prefix(self.namespace.as_str())
                .is_some_and(|rest| rest.starts_with('/'))
    }

    /// The repository name relative to the scope (the TUF target path's first part), if the
    /// image lies inside the scope.
    pub fn relative_repository<'a>(&self, image: &'a ImageRef) -> Option<&'a str> {
        if image.registry() != self.registry {
            return None;
        }
        let rest = image
            .repository()
            .strip_prefix(self.namespace.as_str())?
            .strip_prefix('/')?;
        (!rest.is_empty() && rest != "trust").then_some(rest)
    }

    /// The TUF target path of an image: `repo:tag`, or `repo@sha256:<hex>` without a tag.
    pub fn target_path(&self, image: &ImageRef) -> Option<String> {
        let repo = self.relative_repository(image)?;
        Some(match (image.tag(), image.digest()) {
            (Some(tag), _) => format!("{repo}:{tag}"),
            (None, Some(d)) => format!("{repo}@{d}"),
            (None, None) => return None,
        })
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.namespace)
    }
}

impl FromStr for Scope {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        let (registry, namespace) = s.split_once('/').ok_or_else(|| NameError::NotAScope {
            text: s.to_string(),
        })?;
        check_host(registry)?;
        let namespace = namespace.trim_end_matches('/');
        check_repository(namespace).map_err(|e| NameError::ScopeNamespace {
            source: Box::new(e),
        })?;
        Ok(Scope {
            registry: registry.to_ascii_lowercase(),
            namespace: namespace.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "5b0bcabd1ed22e9fb1310cf6c2dec7cdef19f0ad69efa1f392e94a4333501270";

    #[test]
    fn digests() {
        let d: Digest = format!("sha256:{HEX}").parse().expect("digest");
        assert_eq!(d.to_string(), format!("sha256:{HEX}"));
        assert_eq!(d.referrers_tag(), format!("sha256-{HEX}"));
        assert!(format!("sha256:{}", HEX.to_uppercase())
            .parse::<Digest>()
            .is_err());
        assert!("sha256:abc".parse::<Digest>().is_err());
        assert!(format!("md5:{HEX}").parse::<Digest>().is_err());
        assert!(Digest::sha256_of(b"x").matches(b"x"));
        assert!(!Digest::sha256_of(b"x").matches(b"y"));
    }

    #[test]
    fn image_refs() {
        let r: ImageRef = "127.0.0.1:5000/acme/team/api:1.4".parse().expect("ref");
        assert_eq!(r.registry(), "127.0.0.1:5000");
        assert_eq!(r.repository(), "acme/team/api");
        assert_eq!(r.tag(), Some("1.4"));
        let pinned: ImageRef = format!("localhost/acme/api@sha256:{HEX}")
            .parse()
            .expect("digest ref");
        assert_eq!(pinned.tag(), None);
        assert_eq!(
            pinned.digest().map(Digest::to_string),
            Some(format!("sha256:{HEX}"))
        );
        for bad in [
            "debian:9.9",
            "registry.invalid/Library/debian:9",
            "127.0.0.1:5000/acme/api",
            "127.0.0.1:5000/acme/api:-x",
            "127.0.0.1:5000/acme//api:1",
        ] {
            assert!(bad.parse::<ImageRef>().is_err(), "{bad}");
        }
    }

    #[test]
    fn scopes_match_images() {
        let scope: Scope = "127.0.0.1:5000/acme".parse().expect("scope");
        assert_eq!(scope.trust_repository(), "acme/trust");
        let img: ImageRef = "127.0.0.1:5000/acme/team/api:1.4".parse().expect("ref");
        assert_eq!(scope.target_path(&img).as_deref(), Some("team/api:1.4"));
        let outside: ImageRef = "127.0.0.1:5000/acmex/api:1".parse().expect("ref");
        assert_eq!(scope.relative_repository(&outside), None);
        let other_host: ImageRef = "127.0.0.1:5001/acme/api:1".parse().expect("ref");
        assert_eq!(scope.relative_repository(&other_host), None);
        let trust: ImageRef = "127.0.0.1:5000/acme/trust:timestamp".parse().expect("ref");
        assert_eq!(scope.relative_repository(&trust), None);
        assert!("127.0.0.1:5000".parse::<Scope>().is_err());
    }
}
