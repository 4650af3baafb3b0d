//! Trusted state as files, the layout TUF clients and the conformance suite expect: one flat
//! directory holding exactly the verified bytes as received — `root.json`,
//! `timestamp.json`, `snapshot.json`, `targets.json` and `<encoded role>.json` — and nothing
//! else ending in `.json`. The highest time seen is kept in `.pullguard-clock`.
//!
//! Files are replaced atomically (write a temporary file, fsync, rename, fsync the
//! directory), so a crash leaves either the old or the new bytes, never a mix.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::io::{read_file, read_text_file, write_atomic};
use crate::tuf::names::RoleName;
use crate::tuf::state::{StoreError, TrustStore};

const CLOCK_FILE: &str = ".pullguard-clock";
/// The largest state file read: a role's metadata is never longer than the trust core's
/// absolute cap ([`crate::tuf::Limits::hard_max`]); the clock file is one timestamp.
const ROLE_FILE_MAX: u64 = 64 * 1024 * 1024;
const CLOCK_FILE_MAX: u64 = 1024;
const SIGNATURES_FILE_MAX: u64 = 64 * 1024 * 1024;
/// Highest detached-signature version per `repository:tag`, as a JSON object.
const SIGNATURES_FILE: &str = ".pullguard-signatures";

pub struct DirStore {
    dir: PathBuf,
}

impl DirStore {
    /// Opens (creating if needed) a metadata directory.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let dir = dir.into();
        if dir.exists() && !dir.is_dir() {
            let e = std::io::Error::new(
                ErrorKind::NotADirectory,
                "exists and is not a directory (a state directory is needed here)",
            );
            return Err(io_error(&dir, e));
        }
        fs::create_dir_all(&dir).map_err(|e| io_error(&dir, e))?;
        Ok(DirStore { dir })
    }

    /// Forgets the highest time seen (a new trust root starts a new history).
    pub fn clear_clock(&mut self) -> Result<(), StoreError> {
        let path = self.dir.join(CLOCK_FILE);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error(&path, e)),
        }
    }

    fn signature_versions(&self) -> Result<std::collections::BTreeMap<String, u64>, StoreError> {
        let path = self.dir.join(SIGNATURES_FILE);
        match read_file(&path, SIGNATURES_FILE_MAX) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
                what: path.display().to_string(),
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(Default::default()),
            Err(e) => Err(io_error(&path, e)),
        }
    }

    /// Trusts `root` as the initial root (verified, self-signed by a threshold of its keys,
    /// on the first refresh) and starts a new history of time. This is the operator's
    /// explicit reset of a state, so it replaces whatever root is stored, whatever its
    /// version (the version rule of [`TrustStore::persist`] guards updates, not resets).
    pub fn install_root(&mut self, root: &[u8]) -> Result<(), StoreError> {
        self.put(&RoleName::root(), 1, root)?;
        self.clear_clock()
    }

    /// The directory holding this state.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path_of(&self, role: &RoleName) -> PathBuf {
        self.dir.join(format!("{}.json", role.encoded()))
    }
}

fn io_error(path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

impl TrustStore for DirStore {
    fn load(&self, role: &RoleName) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.path_of(role);
        match read_file(&path, ROLE_FILE_MAX) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error(&path, e)),
        }
    }

    /// Read from the stored document itself (`signed.version`): the layout keeps only the
    /// bytes as received.
    fn version(&self, role: &RoleName) -> Result<Option<u64>, StoreError> {
        #[derive(serde::Deserialize)]
        struct Versioned {
            signed: Signed,
        }
        #[derive(serde::Deserialize)]
        struct Signed {
            version: u64,
        }
        let Some(bytes) = self.load(role)? else {
            return Ok(None);
        };
        serde_json::from_slice::<Versioned>(&bytes)
            .map(|v| Some(v.signed.version))
            .map_err(|e| StoreError::Corrupt {
                what: self.path_of(role).display().to_string(),
                reason: format!("no readable signed.version: {e}"),
            })
    }

    fn put(&mut self, role: &RoleName, _version: u64, bytes: &[u8]) -> Result<(), StoreError> {
        let path = self.path_of(role);
        write_atomic(&path, bytes).map_err(|e| io_error(&path, e))
    }

    fn remove(&mut self, role: &RoleName) -> Result<(), StoreError> {
        let path = self.path_of(role);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error(&path, e)),
        }
    }

    fn highest_time(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let path = self.dir.join(CLOCK_FILE);
        let text = match read_text_file(&path, CLOCK_FILE_MAX) {
            Ok(text) => text,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error(&path, e)),
        };
        DateTime::parse_from_rfc3339(text.trim())
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|e| StoreError::Corrupt {
                what: path.display().to_string(),
                reason: e.to_string(),
            })
    }

    fn record_time(&mut self, time: DateTime<Utc>) -> Result<(), StoreError> {
        let path = self.dir.join(CLOCK_FILE);
        write_atomic(&path, time.to_rfc3339().as_bytes()).map_err(|e| io_error(&path, e))
    }

    fn signature_version(&self, target: &str) -> Result<Option<u64>, StoreError> {
        Ok(self.signature_versions()?.get(target).copied())
    }

    fn put_signature_version(&mut self, target: &str, version: u64) -> Result<(), StoreError> {
        let mut all = self.signature_versions()?;
        all.insert(target.to_string(), version);
        let path = self.dir.join(SIGNATURES_FILE);
        let bytes = serde_json::to_vec(&all).map_err(|e| StoreError::Corrupt {
            what: path.display().to_string(),
            reason: e.to_string(),
        })?;
        write_atomic(&path, &bytes).map_err(|e| io_error(&path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_flat_encoded_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = DirStore::open(dir.path()).expect("open");
        let odd = RoleName::new("../x").expect("name");
        store.persist(&odd, 1, b"{}").expect("persist");
        store
            .persist(&RoleName::root(), 2, b"root")
            .expect("persist");
        let mut names: Vec<String> = fs::read_dir(dir.path())
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["..%2Fx.json", "root.json"]);
        assert_eq!(store.load(&odd).expect("load"), Some(b"{}".to_vec()));
        store.remove(&odd).expect("remove");
        store.remove(&odd).expect("removing twice is fine");
        assert_eq!(store.load(&odd).expect("load"), None);
    }

    #[test]
    fn a_lower_root_version_is_refused_as_in_every_store() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = DirStore::open(dir.path()).expect("open");
        let root =
            |v: u64| format!(r#"{{"signed":{{"_type":"root","version":{v}}},"signatures":[]}}"#);
        store
            .persist(&RoleName::root(), 3, root(3).as_bytes())
            .expect("v3");
        assert_eq!(store.version(&RoleName::root()).expect("version"), Some(3));
        let err = store
            .persist(&RoleName::root(), 2, root(2).as_bytes())
            .expect_err("rollback");
        assert!(
            matches!(
                err,
                StoreError::Rollback {
                    stored: 3,
                    new: 2,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(store.version(&RoleName::root()).expect("kept"), Some(3));
        // Other roles may go back here: the trust core decides (TUF 5.3.11, fast-forward
        // recovery replaces a timestamp whose keys were rotated away).
        store
            .persist(&RoleName::timestamp(), 5, root(5).as_bytes())
            .expect("timestamp v5");
        store
            .persist(&RoleName::timestamp(), 1, root(1).as_bytes())
            .expect("timestamp v1 after v5");
        assert_eq!(store.version(&RoleName::timestamp()).expect("ts"), Some(1));
        // An operator's explicit reset is not an update.
        store.install_root(root(1).as_bytes()).expect("reset");
        assert_eq!(store.version(&RoleName::root()).expect("reset"), Some(1));
    }

    #[test]
    fn a_file_is_not_a_state_directory_and_state_files_are_capped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("state");
        fs::write(&file, b"x").expect("write");
        let err = DirStore::open(&file).err().expect("a file");
        let text = crate::io::error_chain(&err);
        assert_eq!(
            text.matches("is not a directory").count(),
            1,
            "said once: {text}"
        );
        let store = DirStore::open(dir.path().join("s")).expect("open");
        fs::write(store.dir().join(CLOCK_FILE), vec![b'9'; 4096]).expect("write");
        let err = store.highest_time().expect_err("too long");
        assert!(err.to_string().contains("1024-byte limit"), "{err}");
    }

    #[test]
    fn clock_round_trips_and_garbage_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = DirStore::open(dir.path()).expect("open");
        assert_eq!(store.highest_time().expect("none"), None);
        let t = DateTime::parse_from_rfc3339("2026-11-25T10:00:00Z")
            .expect("time")
            .with_timezone(&Utc);
        store.record_time(t).expect("record");
        assert_eq!(store.highest_time().expect("some"), Some(t));
        fs::write(dir.path().join(CLOCK_FILE), "yesterday").expect("write");
        assert!(matches!(
            store.highest_time(),
            Err(StoreError::Corrupt { .. })
        ));
        store.clear_clock().expect("clear");
        assert_eq!(store.highest_time().expect("none"), None);
    }
}
