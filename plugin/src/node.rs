//! The node's verifier (DESIGN §5): what `pullguard serve` answers for one image. It finds
//! the image's scope (the longest configured prefix), keeps each scope's trusted state in
//! RocksDB, refreshes it and checks the image with [`crate::image::verify_image`], within
//! one deadline, then applies the scope's mode. Blocking: the gRPC layer calls it off the
//! async runtime.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use pullguard_cache::Store;

use crate::bundle::Bundle;
use crate::config::{
    parse_setting_duration, Config, Mode, Require, ScopeConfig, SourceKind, Unmatched,
};
use crate::image::{verify_image, SignatureSource};
use crate::io::Deadline;
use crate::registry::{Digest, ImageRef, Registry, Scope};
use crate::source::dir::DirSource;
use crate::source::http::HttpSource;
use crate::source::oci::OciSource;
use crate::store::rocks::RocksTrustStore;
use crate::store::scoped::read_root;
use crate::tuf::fetch::MetadataSource;
use crate::tuf::state::TrustStore;
use crate::tuf::{Limits, RoleName, Updater};
use crate::verdict::{ReasonCode, Verdict};

/// Why a node could not be set up from its config (before anything is served).
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("scope[{index}].{key}: {reason}")]
    Scope {
        index: usize,
        key: &'static str,
        reason: String,
    },
    #[error("registry {host}: {source}")]
    Registry {
        host: String,
        source: crate::registry::client::SetupError,
    },
}

/// One configured scope and what is needed to check its images.
struct NodeScope {
    scope: Scope,
    /// The configured root's bytes and version, checked at start.
    root: (Vec<u8>, u64),
    config: ScopeConfig,
    registry: Arc<Registry>,
    source: ScopeSource,
    /// One check at a time per scope: a refresh writes the scope's trusted state.
    busy: Mutex<()>,
}

/// Where a scope's metadata comes from, resolved at start (a bundle is read then).
enum ScopeSource {
    Oci,
    Http(String),
    Dir(std::path::PathBuf),
    /// Metadata and signatures both.
    Bundle(Arc<Bundle>),
}

/// The verifier of one node.
pub struct Node {
    db: Arc<Store>,
    scopes: Vec<NodeScope>,
    unmatched: Unmatched,
    allow: Vec<ImageRef>,
    deadline: Duration,
}

impl Node {
    /// A node for `config` (already validated), keeping trusted state in `db`.
    pub fn new(config: &Config, db: Arc<Store>) -> Result<Self, NodeError> {
        let mut scopes = Vec::new();
        let mut registries: BTreeMap<String, Arc<Registry>> = BTreeMap::new();
        for (index, s) in config.scopes.iter().enumerate() {
            let bad = |key: &'static str, reason: String| NodeError::Scope { index, key, reason };
            let scope: Scope = s.name.parse().map_err(|e| bad("name", format!("{e}")))?;
            // The root must be usable now: a daemon that starts but can never verify a
            // scope would look healthy while denying it. Read once, kept for installing.
            let root = read_root(&s.root).map_err(|e| bad("root", e.to_string()))?;
            if s.require != Require::Both {
                return Err(bad(
                    "require",
                    "only `both` (targets and signature) is implemented so far".into(),
                ));
            }
            let host = scope.registry().to_string();
            let registry = match registries.get(&host) {
                Some(r) => Arc::clone(r),
                None => {
                    let r = config
                        .registry(&host)
                        .map_err(|source| NodeError::Registry {
                            host: host.clone(),
                            source,
                        })?;
                    registries.insert(host, Arc::clone(&r));
                    r
                }
            };
            let source = match SourceKind::parse(&s.source).map_err(|e| bad("source", e))? {
                SourceKind::Bundle(path) => {
                    let b = Bundle::read(&path).map_err(|e| bad("source", e))?;
                    if b.scope.parse::<Scope>().ok().as_ref() != Some(&scope) {
                        return Err(bad(
                            "source",
                            format!(
                                "{} is a bundle for scope {}, not {scope}",
                                path.display(),
                                b.scope
                            ),
                        ));
                    }
                    ScopeSource::Bundle(Arc::new(b))
                }
                SourceKind::Oci => ScopeSource::Oci,
                SourceKind::Http(url) => ScopeSource::Http(url),
                SourceKind::Dir(dir) => ScopeSource::Dir(dir),
            };
            scopes.push(NodeScope {
                scope,
                root,
                config: s.clone(),
                registry,
                source,
                busy: Mutex::new(()),
            });
        }
        let allow = config
            .daemon
            .allow
            .iter()
            .filter_map(|a| a.parse().ok())
            .collect();
        let deadline = parse_setting_duration(&config.daemon.verify_deadline, false)
            .unwrap_or(Duration::from_secs(5));
        Ok(Node {
            db,
            scopes,
            unmatched: config.daemon.unmatched,
            allow,
            deadline,
        })
    }

    /// The verdict for `reference` (as the runtime names it) with manifest `digest`.
    pub fn verify(&self, reference: &str, digest: &str) -> Verdict {
        let invalid = |m: String| Verdict::deny(ReasonCode::InvalidRequest, m);
        let image: ImageRef = match reference.parse() {
            Ok(i) => i,
            Err(e) => return invalid(format!("reference: {e}")),
        };
        let digest: Digest = match digest.parse() {
            Ok(d) => d,
            Err(e) => return invalid(format!("digest: {e}")),
        };
        if image.digest().is_some_and(|d| *d != digest) {
            return invalid(format!("{image} names another digest than {digest}"));
        }
        let image = image.with_digest(digest);
        if self.allow.iter().any(|a| is_same_image(a, &image)) {
            return Verdict::admit_unchecked(format!(
                "{image} is allowed by digest (daemon.allow)"
            ));
        }
        let Some(s) = self.scope_of(&image) else {
            return match self.unmatched {
                Unmatched::Deny => Verdict::deny(
                    ReasonCode::NoTrustRoot,
                    format!("{image} is in no configured scope (daemon.unmatched = \"deny\")"),
                ),
                Unmatched::Admit => Verdict::admit_unchecked(format!(
                    "{image} is in no configured scope (daemon.unmatched = \"admit\")"
                )),
            };
        };
        match s.config.mode {
            Mode::Off => Verdict::admit_unchecked(format!(
                "scope {} is off: {image} is not checked",
                s.scope
            )),
            Mode::Enforce => self.check(s, &image),
            Mode::Warn => {
                let v = self.check(s, &image);
                if v.admitted {
                    v
                } else {
                    Verdict {
                        admitted: true,
                        message: format!("warn mode, would deny: {}", v.message),
                        ..v
                    }
                }
            }
        }
    }

    /// The scope with the longest namespace that holds `image`.
    fn scope_of(&self, image: &ImageRef) -> Option<&NodeScope> {
        self.scopes
            .iter()
            .filter(|s| s.scope.contains(image))
            .max_by_key(|s| s.scope.namespace().len())
    }

    fn check(&self, s: &NodeScope, image: &ImageRef) -> Verdict {
        if s.scope.relative_repository(image).is_none() {
            return Verdict::deny(
                ReasonCode::UnknownTarget,
                format!(
                    "{image} is in the trust repository of scope {}, not an image of it",
                    s.scope
                ),
            );
        }
        // The deadline counts from the request, waiting for the scope included.
        let deadline = Deadline::after(self.deadline);
        let _one_at_a_time = s.busy.lock().unwrap_or_else(|p| p.into_inner());
        if deadline.has_passed() {
            return Verdict::deny(
                ReasonCode::Unavailable,
                format!(
                    "the deadline of {} s ran out while other checks of scope {} ran",
                    deadline.budget().as_secs_f64(),
                    s.scope
                ),
            );
        }
        let registry = s.registry.with_deadline(deadline);
        let mut store = RocksTrustStore::new(Arc::clone(&self.db), s.scope.to_string());
        if let Err(e) = ensure_root(&mut store, &s.root) {
            return Verdict::deny(ReasonCode::Internal, e.to_string());
        }
        let signatures: &dyn SignatureSource = match &s.source {
            ScopeSource::Bundle(b) => b.as_ref(),
            _ => &registry,
        };
        // One of these is the scope's source; each kind lives for this check only.
        let (oci, http, dir);
        let source: &dyn MetadataSource = match &s.source {
            ScopeSource::Oci => {
                let mut o = OciSource::new(Arc::new(registry.clone()), s.scope.clone());
                if let Some(repo) = &s.config.trust_repository {
                    o = o.with_trust_repository(repo);
                }
                oci = o;
                &oci
            }
            ScopeSource::Http(url) => match HttpSource::new(url, None, registry.timeout()) {
                Ok(h) => {
                    http = h.with_deadline(deadline);
                    &http
                }
                Err(e) => return Verdict::deny(ReasonCode::Internal, e),
            },
            ScopeSource::Dir(d) => {
                dir = DirSource::new(d.clone(), d.join("targets"));
                &dir
            }
            ScopeSource::Bundle(b) => b.as_ref(),
        };
        let mut updater = Updater::new(source, store, Limits::default());
        verify_image(&mut updater, signatures, &s.scope, image, Utc::now()).verdict
    }
}

/// `allowed` and `image` are the same repository and digest.
fn is_same_image(allowed: &ImageRef, image: &ImageRef) -> bool {
    allowed.registry() == image.registry()
        && allowed.repository() == image.repository()
        && allowed.digest() == image.digest()
}

/// A scope's state starts from its configured root (checked at start); later roots come
/// only through verified rotations.
fn ensure_root(
    store: &mut RocksTrustStore,
    (bytes, version): &(Vec<u8>, u64),
) -> Result<(), crate::tuf::state::StoreError> {
    if store.load(&RoleName::root())?.is_none() {
        store.persist(&RoleName::root(), *version, bytes)?;
    }
    Ok(())
}
#[cfg(test)]
mod tests {
    use super::*;

    fn node(config: &str) -> (Node, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let config: Config = toml::from_str(config).expect("config");
        config.validate().expect("valid");
        let db = Arc::new(Store::open(&dir.path().join("db")).expect("db"));
        (Node::new(&config, db).expect("node"), dir)
    }

    /// A usable root (of a repository that nothing serves).
    fn root_file(dir: &std::path::Path) -> std::path::PathBuf {
        let mut repo = crate::tuf::testing::RepoBuilder::new(&dir.join("repo"));
        repo.publish_all();
        let root = dir.join("root.json");
        std::fs::write(&root, repo.initial_root()).expect("root");
        root
    }

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn images_in_no_scope_get_the_unmatched_policy_and_the_allow_list_by_digest() {
        let digest = format!("sha256:{HEX}");
        let (deny, _d1) = node(&format!("[daemon]\nallow = [\"r.io/pause@{digest}\"]\n"));
        let v = deny.verify("r.io/app:1", &digest);
        assert!(!v.admitted);
        assert_eq!(v.reason, ReasonCode::NoTrustRoot);
        assert!(
            v.message.contains("daemon.unmatched = \"deny\""),
            "{}",
            v.message
        );
        // Allowed by digest: under any tag, but not another repository with that digest.
        assert!(deny.verify("r.io/pause:3.9", &digest).admitted);
        assert!(!deny.verify("r.io/other:3.9", &digest).admitted);
        let (admit, _d2) = node("[daemon]\nunmatched = \"admit\"\n");
        let v = admit.verify("r.io/app:1", &digest);
        assert!(v.admitted, "{}", v.message);
        // Admitted, but said to be unchecked and never reusable.
        assert_eq!(v.reason, ReasonCode::Unchecked);
        assert!(!v.reusable_at(Utc::now()));
        let allowed = deny.verify("r.io/pause:3.9", &digest);
        assert_eq!(allowed.reason, ReasonCode::Unchecked);
    }

    #[test]
    fn the_longest_scope_wins_and_its_trust_repository_is_no_image() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = root_file(dir.path());
        let text = format!(
            "[[scope]]\nname = \"127.0.0.1:1/acme\"\nroot = \"{r}\"\nmode = \"off\"\n\
             [[scope]]\nname = \"127.0.0.1:1/acme/team\"\nroot = \"{r}\"\n",
            r = root.display()
        );
        let (n, _d) = node(&text);
        let digest = format!("sha256:{HEX}");
        // acme is off, acme/team enforces: an image of acme/team is checked (and denied
        // here, as nothing is published), one of acme is not.
        assert!(n.verify("127.0.0.1:1/acme/app:1", &digest).admitted);
        let team = n.verify("127.0.0.1:1/acme/team/app:1", &digest);
        assert!(!team.admitted, "{}", team.message);
        // A look-alike namespace is no scope of these.
        let evil = n.verify("127.0.0.1:1/acme-evil/app:1", &digest);
        assert!(!evil.admitted && evil.message.contains("in no configured scope"));
        let trust = n.verify("127.0.0.1:1/acme/team/trust:timestamp", &digest);
        assert_eq!(trust.reason, ReasonCode::UnknownTarget, "{}", trust.message);
    }

    #[test]
    fn bad_requests_are_invalid_and_say_why() {
        let (n, _d) = node("");
        let digest = format!("sha256:{HEX}");
        for (reference, digest, says) in [
            ("app:1", digest.as_str(), "reference"),
            ("r.io/app:1", "sha256:xyz", "digest"),
            (
                &format!("r.io/app@sha256:{}", "f".repeat(64)) as &str,
                digest.as_str(),
                "another digest",
            ),
        ] {
            let v = n.verify(reference, digest);
            assert_eq!(v.reason, ReasonCode::InvalidRequest, "{reference}");
            assert!(v.message.contains(says), "{reference}: {}", v.message);
        }
    }

    #[test]
    fn a_scope_in_off_mode_admits_unchecked_and_only_both_is_implemented() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = root_file(dir.path());
        let scope = |extra: &str| {
            format!(
                "[[scope]]\nname = \"127.0.0.1:1/acme\"\nroot = \"{}\"\n{extra}",
                root.display()
            )
        };
        let (off, _d) = node(&scope("mode = \"off\""));
        let v = off.verify("127.0.0.1:1/acme/app:1", &format!("sha256:{HEX}"));
        assert!(v.admitted && v.message.contains("is off"), "{}", v.message);
        let config: Config = toml::from_str(&scope("require = \"targets\"")).expect("config");
        let db = Arc::new(Store::open(&dir.path().join("db")).expect("db"));
        let err = Node::new(&config, db).err().expect("not implemented");
        assert!(
            err.to_string().starts_with("scope[0].require: only `both`"),
            "{err}"
        );
    }
}
