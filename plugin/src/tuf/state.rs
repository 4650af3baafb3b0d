//! Where the trust core keeps its trusted state: the verified bytes of each role's current
//! metadata, the highest time ever seen, and the highest signature version per target. The
//! core talks to storage only through [`TrustStore`]; the stores themselves (files, RocksDB)
//! live outside the core.

use chrono::{DateTime, Utc};

use super::names::RoleName;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("database: {source}")]
    Database {
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("stored {what} is corrupt: {reason}")]
    Corrupt { what: String, reason: String },
    #[error("refusing to store {role} version {new} over the trusted version {stored}")]
    Rollback { role: String, stored: u64, new: u64 },
}

/// Trusted state of one TUF repository (one scope).
///
/// Every write is durable when the call returns (the trust core persists each role as soon
/// as it is verified, in specification order, so a crash can never leave a role older than
/// one that was already trusted).
pub trait TrustStore {
    /// The bytes of `role`'s trusted metadata, if any.
    fn load(&self, role: &RoleName) -> Result<Option<Vec<u8>>, StoreError>;
    /// The version of `role`'s trusted metadata, if any.
    fn version(&self, role: &RoleName) -> Result<Option<u64>, StoreError>;
    /// Stores `bytes` (version `version`) as `role`'s trusted metadata (no checks: see
    /// [`TrustStore::persist`]).
    fn put(&mut self, role: &RoleName, version: u64, bytes: &[u8]) -> Result<(), StoreError>;
    /// Makes `bytes` (version `version`) the trusted metadata of `role`. Root versions never
    /// go back, not even through a fast-forward recovery: every store refuses a lower one, so
    /// a bug above cannot undo a root rotation.
    fn persist(&mut self, role: &RoleName, version: u64, bytes: &[u8]) -> Result<(), StoreError> {
        if role == &RoleName::root() {
            if let Some(stored) = self.version(role)?.filter(|&stored| version < stored) {
                return Err(StoreError::Rollback {
                    role: role.to_string(),
                    stored,
                    new: version,
                });
            }
        }
        self.put(role, version, bytes)
    }
    /// Forgets `role`'s trusted metadata (TUF 5.3.11, fast-forward attack recovery).
    fn remove(&mut self, role: &RoleName) -> Result<(), StoreError>;
    /// The highest wall-clock time ever recorded.
    fn highest_time(&self) -> Result<Option<DateTime<Utc>>, StoreError>;
    /// Records `time` as seen (callers only ever move it forward).
    fn record_time(&mut self, time: DateTime<Utc>) -> Result<(), StoreError>;
    /// The highest detached-signature version accepted for `target` (`repository:tag`).
    fn signature_version(&self, target: &str) -> Result<Option<u64>, StoreError>;
    /// Stores `version` as the highest accepted for `target` (no checks: see
    /// [`TrustStore::record_signature_version`]).
    fn put_signature_version(&mut self, target: &str, version: u64) -> Result<(), StoreError>;
    /// Records `version` as accepted for `target`; a lower version than the one recorded is
    /// refused (signature rollback), an equal one writes nothing.
    fn record_signature_version(&mut self, target: &str, version: u64) -> Result<(), StoreError> {
        match self.signature_version(target)? {
            Some(stored) if version < stored => Err(StoreError::Rollback {
                role: format!("signature of {target}"),
                stored,
                new: version,
            }),
            Some(stored) if version == stored => Ok(()),
            _ => self.put_signature_version(target, version),
        }
    }
}
