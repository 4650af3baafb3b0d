//! Image names as the runtimes write them, made into the references pullguard checks.
//!
//! pullguard itself never guesses a registry, but kubelet passes the pod's image string,
//! which may be a Docker Hub short name; the runtime pulls `docker.io/library/NAME:latest`
//! for `NAME`, so that is what is checked. Names that are not references (containerd's
//! `sha256:<config>` image IDs) are told apart.

use pullguard_plugin::registry::{Digest, ImageRef};

/// What an image name is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageName {
    /// A reference, normalised as the runtime does.
    Reference(String),
    /// containerd's record of an image by its config digest, with no repository.
    Id(Digest),
}

/// `name` as the runtime pulls it: a host-less name goes to `docker.io` (one-component
/// names under `library/`), and a name with neither tag nor digest gets `:latest`. Returns
/// the text unchanged when it is already a full reference; `None` when it is not a name.
pub fn normalize(name: &str) -> Option<String> {
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    let (path, digest) = match name.split_once('@') {
        Some((p, d)) => (p, Some(d)),
        None => (name, None),
    };
    let first = path.split('/').next().unwrap_or_default();
    let has_host =
        path.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let mut full = if has_host {
        path.to_string()
    } else if path.contains('/') {
        format!("docker.io/{path}")
    } else {
        format!("docker.io/library/{path}")
    };
    let last = full.rsplit('/').next().unwrap_or_default();
    if digest.is_none() && !last.contains(':') {
        full.push_str(":latest");
    }
    if let Some(d) = digest {
        full.push('@');
        full.push_str(d);
    }
    full.parse::<ImageRef>().ok().map(|r| r.to_string())
}

/// What a containerd image record's name is.
pub fn classify(name: &str) -> Option<ImageName> {
    if let Some(hex) = name.strip_prefix("sha256:") {
        return Digest::from_sha256_hex(hex).ok().map(ImageName::Id);
    }
    normalize(name).map(ImageName::Reference)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn short_names_are_what_the_runtime_pulls() {
        let n = |s: &str| normalize(s);
        assert_eq!(
            n("nginx").as_deref(),
            Some("docker.io/library/nginx:latest")
        );
        assert_eq!(
            n("nginx:1.25").as_deref(),
            Some("docker.io/library/nginx:1.25")
        );
        assert_eq!(n("acme/app:1").as_deref(), Some("docker.io/acme/app:1"));
        assert_eq!(
            n("127.0.0.1:5000/acme/app:1").as_deref(),
            Some("127.0.0.1:5000/acme/app:1")
        );
        assert_eq!(
            n("127.0.0.1:5000/acme/app").as_deref(),
            Some("127.0.0.1:5000/acme/app:latest")
        );
        assert_eq!(n("localhost/app").as_deref(), Some("localhost/app:latest"));
        let pinned = format!("127.0.0.1:5000/acme/app@sha256:{HEX}");
        assert_eq!(n(&pinned), Some(pinned.clone()));
        let both = format!("127.0.0.1:5000/acme/app:1@sha256:{HEX}");
        assert_eq!(n(&both), Some(both.clone()));
        for bad in ["", "a b", "UPPER/Case:1", "app@sha256:short", "x/\n"] {
            assert_eq!(n(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn image_ids_are_not_references() {
        assert_eq!(
            classify(&format!("sha256:{HEX}")),
            Some(ImageName::Id(Digest::from_sha256_hex(HEX).expect("digest")))
        );
        assert_eq!(classify("sha256:xyz"), None);
        assert_eq!(
            classify("127.0.0.1:5000/acme/app:1"),
            Some(ImageName::Reference("127.0.0.1:5000/acme/app:1".into()))
        );
    }
}
