//! The verdict cache (DESIGN §5 step 2): verdicts in RocksDB's `verdicts` column family,
//! keyed by what they were computed from (scope, repository, digest, policy hash, root and
//! snapshot versions, never a tag), behind a bounded in-memory front. Writes are buffered:
//! a verdict lost in a crash only costs a re-verification. A record that cannot be read
//! back (another format, damage) is a miss, for the same reason.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use pullguard_cache::{Durability, Store, VerdictKey, VerdictRecord, Verdicts};

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("verdict cache: {source}")]
    Database {
        #[from]
        source: pullguard_cache::Error,
    },
}

/// What was found and removed by [`VerdictCache::prune`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pruned {
    pub kept: u64,
    pub removed: u64,
    /// Records that could not be decoded (left in place; never read as verdicts).
    pub unreadable: u64,
}

/// Two generations of recently used records: lookups try the young one, then the old one
/// (promoting what they find); when the young one is full it becomes the old one. Bounded
/// at twice `half` entries, and an entry in use survives a generation change.
struct Front {
    young: HashMap<VerdictKey, Arc<VerdictRecord>>,
    old: HashMap<VerdictKey, Arc<VerdictRecord>>,
    half: usize,
}

impl Front {
    fn get(&mut self, key: &VerdictKey) -> Option<Arc<VerdictRecord>> {
        if let Some(r) = self.young.get(key) {
            return Some(Arc::clone(r));
        }
        let r = self.old.remove(key)?;
        self.insert(key.clone(), Arc::clone(&r));
        Some(r)
    }

    fn insert(&mut self, key: VerdictKey, record: Arc<VerdictRecord>) {
        if self.young.len() >= self.half && !self.young.contains_key(&key) {
            self.old = std::mem::take(&mut self.young);
        }
        self.young.insert(key, record);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }
}

pub struct VerdictCache {
    db: Arc<Store>,
    front: Mutex<Front>,
}

impl VerdictCache {
    /// A cache over `db` keeping at most `front_capacity` records in memory.
    pub fn new(db: Arc<Store>, front_capacity: usize) -> Self {
        VerdictCache {
            db,
            front: Mutex::new(Front {
                young: HashMap::new(),
                old: HashMap::new(),
                half: (front_capacity / 2).max(1),
            }),
        }
    }

    fn front(&self) -> MutexGuard<'_, Front> {
        self.front.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The record under `key`, from memory or the database.
    pub fn get(&self, key: &VerdictKey) -> Result<Option<Arc<VerdictRecord>>, CacheError> {
        if let Some(r) = self.front().get(key) {
            return Ok(Some(r));
        }
        let record = match self.db.get::<Verdicts>(key) {
            Ok(Some(r)) => Arc::new(r),
            Ok(None) | Err(pullguard_cache::Error::Decode { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        self.front().insert(key.clone(), Arc::clone(&record));
        Ok(Some(record))
    }

    pub fn put(&self, key: &VerdictKey, record: VerdictRecord) -> Result<(), CacheError> {
        self.db
            .put::<Verdicts>(key, &record, Durability::Buffered)?;
        self.front().insert(key.clone(), Arc::new(record));
        Ok(())
    }

    /// How many records of `scope` the database holds.
    pub fn count(&self, scope: &str) -> Result<u64, CacheError> {
        let mut n = 0;
        self.db
            .for_each::<Verdicts>(Some(&first_key(scope)), |entry| match entry {
                Ok((key, _)) if key.scope == scope => {
                    n += 1;
                    true
                }
                Ok(_) => false,
                Err(_) => true,
            })?;
        Ok(n)
    }

    /// Removes every record `keep` refuses (of a policy or scope no longer configured, or
    /// long expired), in one batch; the front is emptied.
    pub fn prune(
        &self,
        mut keep: impl FnMut(&VerdictKey, &VerdictRecord) -> bool,
    ) -> Result<Pruned, CacheError> {
        let mut pruned = Pruned::default();
        let mut stale = Vec::new();
        self.db.for_each::<Verdicts>(None, |entry| {
            match entry {
                Ok((key, record)) if keep(&key, &record) => pruned.kept += 1,
                Ok((key, _)) => stale.push(key),
                Err(_) => pruned.unreadable += 1,
            }
            true
        })?;
        let mut batch = self.db.batch();
        for key in &stale {
            batch.delete::<Verdicts>(key)?;
        }
        self.db.write(batch, Durability::Buffered)?;
        pruned.removed = stale.len() as u64;
        let mut front = self.front();
        front.young.clear();
        front.old.clear();
        Ok(pruned)
    }

    /// Records held in memory now.
    #[cfg(test)]
    pub fn front_len(&self) -> usize {
        self.front().len()
    }
}

/// The smallest key of `scope`: every key of it sorts at or after this one.
fn first_key(scope: &str) -> VerdictKey {
    VerdictKey {
        scope: scope.to_string(),
        repository: String::new(),
        digest: String::new(),
        policy_hash: [0; 32],
        root_version: 0,
        snapshot_version: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(scope: &str, digest: &str) -> VerdictKey {
        VerdictKey {
            scope: scope.into(),
            repository: "acme/app".into(),
            digest: digest.into(),
            policy_hash: [1; 32],
            root_version: 1,
            snapshot_version: 2,
        }
    }

    fn record(message: &str) -> VerdictRecord {
        VerdictRecord {
            admitted: true,
            reason: "verified".into(),
            message: message.into(),
            valid_until: 0,
            tags: vec!["1".into()],
            timestamp_version: 1,
            role: "targets".into(),
            role_version: 1,
            length: 1,
            signature_version: 1,
            key_ids: Vec::new(),
        }
    }

    #[test]
    fn records_survive_a_reopen_the_front_stays_bounded_and_prune_removes_what_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let db = Arc::new(Store::open(dir.path()).expect("db"));
            let cache = VerdictCache::new(db, 4);
            for i in 0..10 {
                cache
                    .put(&key("a", &format!("d{i}")), record(&format!("m{i}")))
                    .expect("put");
            }
            cache.put(&key("b", "d0"), record("other")).expect("put");
            assert!(cache.front_len() <= 4, "{}", cache.front_len());
        }
        let db = Arc::new(Store::open(dir.path()).expect("db"));
        let cache = VerdictCache::new(db, 4);
        let got = cache.get(&key("a", "d3")).expect("get").expect("kept");
        assert_eq!(got.message, "m3");
        // Another policy hash or snapshot is another key.
        let mut other = key("a", "d3");
        other.snapshot_version = 3;
        assert_eq!(cache.get(&other).expect("get"), None);
        assert_eq!(cache.count("a").expect("count"), 10);
        assert_eq!(cache.count("b").expect("count"), 1);
        let pruned = cache.prune(|k, _| k.scope == "a").expect("prune");
        assert_eq!((pruned.kept, pruned.removed), (10, 1));
        assert_eq!(cache.count("b").expect("count"), 0);
        assert_eq!(cache.get(&key("b", "d0")).expect("get"), None);
    }
}
