//! A trusted-state directory bound to one scope (`verify`, `bundle import`): a state holds
//! one scope's trusted metadata and is never used for another (`.pullguard-scope`, written
//! after the first successful refresh). Its initial root comes from the operator, checked
//! before it is installed.

use std::path::{Path, PathBuf};

use chrono::Utc;

use super::dir::DirStore;
use crate::io::{read_file, read_text_file, write_atomic};
use crate::registry::{Digest, Scope};
use crate::tuf::state::{StoreError, TrustStore};
use crate::tuf::{Limits, RoleName, TrustedSet};
use crate::verdict::ReasonCode;

/// Names the scope whose trusted state a state directory holds.
const SCOPE_MARKER: &str = ".pullguard-scope";
/// The sha256 of the root last installed from a given file, while no refresh has proven it.
const GIVEN_ROOT_MARKER: &str = ".pullguard-given-root";
const MARKER_MAX: u64 = 4096;

/// An opened state, and whether a given root was left unused (the stored one is proven).
pub struct Opened {
    pub store: DirStore,
    pub root_not_used: bool,
}

/// Opens the trusted state of `scope` in `state`; using a state of another scope is
/// refused, never mixed.
///
/// A given `root` is checked (well-formed, signed by a threshold of its own root keys, TUF
/// 5.2) before it is installed. Until a refresh has proven the stored root against the
/// scope's metadata, a given root replaces it: one wrong root (garbage, or another scope's)
/// never locks a new state out. The same root as last time keeps what it led to (root
/// rotations already verified). Once proven, the stored root (which may have been rotated
/// since) is kept and the given one is not used.
pub fn open(state: &Path, root: Option<&Path>, scope: &Scope) -> Result<Opened, ScopeError> {
    let mut store = DirStore::open(state)?;
    let marker = state.join(SCOPE_MARKER);
    let bound = match read_text_file(&marker, MARKER_MAX) {
        Ok(recorded) if recorded.trim() != scope.to_string() => {
            return Err(ScopeError::OtherScope {
                state: state.to_path_buf(),
                recorded: recorded.trim().to_string(),
                scope: scope.to_string(),
            })
        }
        Ok(_) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(source) => {
            return Err(ScopeError::Io {
                path: marker,
                source,
            })
        }
    };
    let proven = bound || store.load(&RoleName::timestamp())?.is_some();
    let stored = store.load(&RoleName::root())?.is_some();
    match root {
        Some(_) if proven => {
            return Ok(Opened {
                store,
                root_not_used: true,
            })
        }
        Some(root) => {
            let bytes = read_file(root, Limits::default().root_max).map_err(|source| {
                ScopeError::RootUnreadable {
                    path: root.to_path_buf(),
                    source,
                }
            })?;
            let given = state.join(GIVEN_ROOT_MARKER);
            let fingerprint = Digest::sha256_of(&bytes).to_string();
            let same = read_text_file(&given, MARKER_MAX).is_ok_and(|f| f.trim() == fingerprint);
            if !(stored && same) {
                check_root(root, &bytes)?;
                store.install_root(&bytes)?;
                write_atomic(&given, fingerprint.as_bytes()).map_err(|source| ScopeError::Io {
                    path: given.clone(),
                    source,
                })?;
            }
        }
        None if stored => {}
        None => {
            return Err(ScopeError::NoRoot {
                state: state.to_path_buf(),
            })
        }
    }
    Ok(Opened {
        store,
        root_not_used: false,
    })
}

/// A root file the operator gives: its bytes and version, once checked to be well-formed
/// and signed by a threshold of its own root keys (TUF 5.2).
pub fn read_root(path: &Path) -> Result<(Vec<u8>, u64), ScopeError> {
    let bytes = read_file(path, Limits::default().root_max).map_err(|source| {
        ScopeError::RootUnreadable {
            path: path.to_path_buf(),
            source,
        }
    })?;
    let version = check_root(path, &bytes)?;
    Ok((bytes, version))
}

/// The version of the root in `bytes` (read from `path`), once checked.
fn check_root(path: &Path, bytes: &[u8]) -> Result<u64, ScopeError> {
    TrustedSet::from_root(bytes, Utc::now())
        .map(|t| t.root().signed.version.get())
        .map_err(|source| ScopeError::BadRoot {
            path: path.to_path_buf(),
            source: Box::new(source),
        })
}

/// Binds `store` to `scope` once a refresh has succeeded (it trusts a timestamp).
pub fn bind_after_refresh(store: &DirStore, scope: &Scope) -> Result<(), ScopeError> {
    if store.load(&RoleName::timestamp())?.is_none() {
        return Ok(());
    }
    let marker = store.dir().join(SCOPE_MARKER);
    if marker.exists() {
        return Ok(());
    }
    write_atomic(&marker, scope.to_string().as_bytes()).map_err(|source| ScopeError::Io {
        path: marker,
        source,
    })
}

/// Why a state directory could not be used for a scope.
#[derive(Debug, thiserror::Error)]
pub enum ScopeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} holds the trusted state of scope {recorded}, not {scope}", state.display())]
    OtherScope {
        state: PathBuf,
        recorded: String,
        scope: String,
    },
    #[error("{}: {source}", path.display())]
    RootUnreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} has no trusted root yet: pass the scope's root with --root", state.display())]
    NoRoot { state: PathBuf },
    #[error("{} is not a usable trust root (nothing was installed): {source}", path.display())]
    BadRoot {
        path: PathBuf,
        source: Box<crate::tuf::Error>,
    },
}

impl ScopeError {
    /// The reason code of a check that could not start because of this.
    pub fn reason(&self) -> ReasonCode {
        match self {
            ScopeError::Store(_) | ScopeError::Io { .. } => ReasonCode::Internal,
            ScopeError::OtherScope { .. } => ReasonCode::InvalidRequest,
            ScopeError::NoRoot { .. } | ScopeError::RootUnreadable { .. } => {
                ReasonCode::NoTrustRoot
            }
            ScopeError::BadRoot { source, .. } => source.reason(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_serves_one_scope_and_needs_a_usable_root() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("state");
        let scope: Scope = "127.0.0.1:5000/acme".parse().expect("scope");
        let err = open(&state, None, &scope).err().expect("no root");
        assert_eq!(err.reason(), ReasonCode::NoTrustRoot);
        let garbage = dir.path().join("garbage.json");
        std::fs::write(&garbage, br#"{"signed": 1}"#).expect("write");
        let err = open(&state, Some(&garbage), &scope).err().expect("garbage");
        assert_eq!(err.reason(), ReasonCode::Malformed, "{err}");
        assert!(!state.join("root.json").exists(), "nothing installed");
        std::fs::write(state.join(SCOPE_MARKER), "127.0.0.1:5000/other").expect("marker");
        let err = open(&state, None, &scope).err().expect("other scope");
        assert_eq!(err.reason(), ReasonCode::InvalidRequest);
        assert!(err.to_string().contains("not 127.0.0.1:5000/acme"), "{err}");
    }

    #[test]
    fn a_given_root_is_kept_once_proven_and_the_same_root_keeps_what_it_led_to() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut repo = crate::tuf::testing::RepoBuilder::new(&dir.path().join("repo"));
        repo.publish_all();
        let root_file = dir.path().join("1.root.json");
        std::fs::write(&root_file, repo.initial_root()).expect("root");
        let state = dir.path().join("state");
        let scope: Scope = "127.0.0.1:5000/acme".parse().expect("scope");
        let opened = open(&state, Some(&root_file), &scope).expect("installed");
        assert!(!opened.root_not_used);
        // What the stored root became (a rotation verified since, say) stays when the same
        // root is given again before any refresh succeeded.
        let mut store = opened.store;
        store
            .put(&RoleName::root(), 2, br#"{"signed":{"version":2}}"#)
            .expect("rotated");
        let again = open(&state, Some(&root_file), &scope).expect("same root");
        assert!(!again.root_not_used);
        assert_eq!(again.store.version(&RoleName::root()).expect("v"), Some(2));
        // Not bound before a timestamp is trusted; bound after, and then the root stays.
        bind_after_refresh(&again.store, &scope).expect("nothing yet");
        assert!(!state.join(SCOPE_MARKER).exists());
        let mut store = again.store;
        store
            .put(&RoleName::timestamp(), 1, br#"{"signed":{"version":1}}"#)
            .expect("timestamp");
        bind_after_refresh(&store, &scope).expect("bound");
        assert_eq!(
            std::fs::read_to_string(state.join(SCOPE_MARKER)).expect("marker"),
            "127.0.0.1:5000/acme"
        );
        let proven = open(&state, Some(&root_file), &scope).expect("proven");
        assert!(proven.root_not_used);
        assert_eq!(proven.store.version(&RoleName::root()).expect("v"), Some(2));
    }
}
