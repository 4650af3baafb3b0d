//! An in-memory [`MetadataSource`] that serves whatever the input says for each file, and
//! an in-memory [`TrustStore`] (the plugin's stores are a directory and RocksDB).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use pullguard_plugin::tuf::fetch::{
    metadata_file_name, target_file_path, FetchError, MetadataSource,
};
use pullguard_plugin::tuf::names::RoleName;
use pullguard_plugin::tuf::state::{StoreError, TrustStore};

/// What the source answers for one file.
#[derive(Debug, Clone)]
pub enum Served {
    Bytes(Vec<u8>),
    Error(FetchError),
}

/// Metadata by role (any version but root's: a role's document is served under whatever
/// version the client asks for, so a fuzzed pin still finds the fuzzed document), root by
/// version, targets by path. What is not there is [`FetchError::NotFound`].
#[derive(Debug, Clone, Default)]
pub struct MemSource {
    pub roots: BTreeMap<u64, Served>,
    pub roles: BTreeMap<String, Served>,
    pub targets: BTreeMap<String, Vec<u8>>,
}

fn answer(served: Option<&Served>, location: String, max_len: u64) -> Result<Vec<u8>, FetchError> {
    match served {
        None => Err(FetchError::NotFound { location }),
        Some(Served::Error(e)) => Err(e.clone()),
        // Every source enforces the cap (MetadataSource's contract).
        Some(Served::Bytes(b)) if b.len() as u64 > max_len => Err(FetchError::TooLarge {
            location,
            limit: max_len,
        }),
        Some(Served::Bytes(b)) => Ok(b.clone()),
    }
}

impl MetadataSource for MemSource {
    fn fetch_metadata(
        &self,
        role: &RoleName,
        version: Option<u64>,
        max_len: u64,
    ) -> Result<Vec<u8>, FetchError> {
        let location = metadata_file_name(role, version);
        let served = if role == &RoleName::root() {
            version.and_then(|v| self.roots.get(&v))
        } else {
            self.roles.get(role.as_str())
        };
        answer(served, location, max_len)
    }

    fn fetch_target(
        &self,
        path: &str,
        hash_prefix: Option<&str>,
        max_len: u64,
    ) -> Result<Vec<u8>, FetchError> {
        let location = target_file_path(path, hash_prefix);
        let served = self.targets.get(path).cloned().map(Served::Bytes);
        answer(served.as_ref(), location, max_len)
    }
}

/// Trusted state in memory.
#[derive(Debug, Clone, Default)]
pub struct MemStore {
    pub roles: BTreeMap<RoleName, (u64, Vec<u8>)>,
    pub highest_time: Option<DateTime<Utc>>,
    pub signature_versions: BTreeMap<String, u64>,
}

impl MemStore {
    /// A store that trusts `root` (version 1), as an operator installs it.
    pub fn with_root(root: &[u8]) -> Self {
        let mut store = MemStore::default();
        store.roles.insert(RoleName::root(), (1, root.to_vec()));
        store
    }
}

impl TrustStore for MemStore {
    fn load(&self, role: &RoleName) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.roles.get(role).map(|(_, b)| b.clone()))
    }

    fn version(&self, role: &RoleName) -> Result<Option<u64>, StoreError> {
        Ok(self.roles.get(role).map(|(v, _)| *v))
    }

    fn put(&mut self, role: &RoleName, version: u64, bytes: &[u8]) -> Result<(), StoreError> {
        self.roles.insert(role.clone(), (version, bytes.to_vec()));
        Ok(())
    }

    fn remove(&mut self, role: &RoleName) -> Result<(), StoreError> {
        self.roles.remove(role);
        Ok(())
    }

    fn highest_time(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(self.highest_time)
    }

    fn record_time(&mut self, time: DateTime<Utc>) -> Result<(), StoreError> {
        self.highest_time = Some(time);
        Ok(())
    }

    fn signature_version(&self, target: &str) -> Result<Option<u64>, StoreError> {
        Ok(self.signature_versions.get(target).copied())
    }

    fn put_signature_version(&mut self, target: &str, version: u64) -> Result<(), StoreError> {
        self.signature_versions.insert(target.to_string(), version);
        Ok(())
    }
}
