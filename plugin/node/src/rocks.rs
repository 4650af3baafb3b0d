//! A scope's trusted state in RocksDB (the daemon's store): one `trusted_meta` record per
//! role holding its version and bytes together, and the scope's highest time seen in
//! `clock`. Every write is synced before it returns.

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use pullguard_cache::{
    Clock, Durability, HighWater, ScopedName, Store, TrustedMeta, TrustedRecord,
};

use pullguard_plugin::tuf::names::RoleName;
use pullguard_plugin::tuf::state::{StoreError, TrustStore};

pub struct RocksTrustStore {
    db: Arc<Store>,
    scope: String,
}

impl RocksTrustStore {
    pub fn new(db: Arc<Store>, scope: impl Into<String>) -> Self {
        RocksTrustStore {
            db,
            scope: scope.into(),
        }
    }

    fn key_for(&self, name: &str) -> ScopedName {
        ScopedName {
            scope: self.scope.clone(),
            name: name.to_string(),
        }
    }

    fn key(&self, role: &RoleName) -> ScopedName {
        self.key_for(role.as_str())
    }
}

impl TrustStore for RocksTrustStore {
    fn load(&self, role: &RoleName) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .db
            .get::<TrustedMeta>(&self.key(role))
            .map_err(database)?
            .map(|r| r.bytes))
    }

    fn version(&self, role: &RoleName) -> Result<Option<u64>, StoreError> {
        Ok(self
            .db
            .get::<TrustedMeta>(&self.key(role))
            .map_err(database)?
            .map(|r| r.version))
    }

    fn put(&mut self, role: &RoleName, version: u64, bytes: &[u8]) -> Result<(), StoreError> {
        let key = self.key(role);
        let record = TrustedRecord {
            version,
            bytes: bytes.to_vec(),
        };
        self.db
            .put::<TrustedMeta>(&key, &record, Durability::Synced)
            .map_err(database)
    }

    fn remove(&mut self, role: &RoleName) -> Result<(), StoreError> {
        self.db
            .delete::<TrustedMeta>(&self.key(role), Durability::Synced)
            .map_err(database)
    }

    fn highest_time(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let Some(micros) = self.db.get::<Clock>(&self.scope).map_err(database)? else {
            return Ok(None);
        };
        Utc.timestamp_micros(micros)
            .single()
            .map(Some)
            .ok_or_else(|| StoreError::Corrupt {
                what: format!("clock of scope {}", self.scope),
                reason: format!("{micros} µs is not a representable time"),
            })
    }

    fn record_time(&mut self, time: DateTime<Utc>) -> Result<(), StoreError> {
        self.db
            .put::<Clock>(&self.scope, &time.timestamp_micros(), Durability::Synced)
            .map_err(database)
    }

    fn signature_version(&self, target: &str) -> Result<Option<u64>, StoreError> {
        self.db
            .get::<HighWater>(&self.key_for(target))
            .map_err(database)
    }

    fn put_signature_version(&mut self, target: &str, version: u64) -> Result<(), StoreError> {
        self.db
            .put::<HighWater>(&self.key_for(target), &version, Durability::Synced)
            .map_err(database)
    }
}

/// A database failure, as the trust core's store error.
fn database(e: pullguard_cache::Error) -> StoreError {
    StoreError::Database {
        source: Box::new(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_survives_reopen_and_root_never_goes_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let t = Utc
            .with_ymd_and_hms(2026, 11, 25, 10, 0, 0)
            .single()
            .expect("time");
        {
            let db = Arc::new(Store::open(dir.path()).expect("open"));
            let mut store = RocksTrustStore::new(db, "127.0.0.1:5000/library");
            store
                .persist(&RoleName::root(), 3, b"root3")
                .expect("persist");
            store
                .persist(&RoleName::timestamp(), 9, b"ts9")
                .expect("persist");
            store.record_time(t).expect("clock");
            let err = store
                .persist(&RoleName::root(), 2, b"root2")
                .expect_err("root rollback");
            assert!(matches!(
                err,
                StoreError::Rollback {
                    stored: 3,
                    new: 2,
                    ..
                }
            ));
        }
        let db = Arc::new(Store::open(dir.path()).expect("reopen"));
        let mut store = RocksTrustStore::new(db.clone(), "127.0.0.1:5000/library");
        assert_eq!(store.version(&RoleName::root()).expect("v"), Some(3));
        assert_eq!(
            store.load(&RoleName::root()).expect("load"),
            Some(b"root3".to_vec())
        );
        assert_eq!(store.highest_time().expect("clock"), Some(t));
        store.remove(&RoleName::timestamp()).expect("remove");
        assert_eq!(store.load(&RoleName::timestamp()).expect("load"), None);
        // Another scope sees nothing.
        let other = RocksTrustStore::new(db, "127.0.0.1:5000/other");
        assert_eq!(other.load(&RoleName::root()).expect("load"), None);
        assert_eq!(other.highest_time().expect("clock"), None);
    }
}
