//! Metadata and targets in a local directory, in the standard TUF layout: for offline edge
//! devices and for tests and benchmarks that must not touch the network.

use std::fs::File;
use std::io::ErrorKind;
use std::path::PathBuf;

use super::http::fetch_error;
use crate::tuf::fetch::{metadata_file_name, target_file_path, FetchError, MetadataSource};
use crate::tuf::names::RoleName;

pub struct DirSource {
    metadata_dir: PathBuf,
    targets_dir: PathBuf,
}

impl DirSource {
    pub fn new(metadata_dir: impl Into<PathBuf>, targets_dir: impl Into<PathBuf>) -> Self {
        DirSource {
            metadata_dir: metadata_dir.into(),
            targets_dir: targets_dir.into(),
        }
    }

    fn read(&self, path: PathBuf, max_len: u64) -> Result<Vec<u8>, FetchError> {
        let location = path.display().to_string();
        let file = File::open(&path).map_err(|e| match e.kind() {
            ErrorKind::NotFound => FetchError::NotFound {
                location: location.clone(),
            },
            _ => FetchError::Io {
                location: location.clone(),
                reason: e.to_string(),
            },
        })?;
        crate::io::read_capped(file, max_len, None).map_err(|e| fetch_error(e, location))
    }
}

impl MetadataSource for DirSource {
    fn fetch_metadata(
        &self,
        role: &RoleName,
        version: Option<u64>,
        max_len: u64,
    ) -> Result<Vec<u8>, FetchError> {
        self.read(
            self.metadata_dir.join(metadata_file_name(role, version)),
            max_len,
        )
    }

    fn fetch_target(
        &self,
        path: &str,
        hash_prefix: Option<&str>,
        max_len: u64,
    ) -> Result<Vec<u8>, FetchError> {
        // Target paths come from signed metadata, but still never leave the directory.
        if path
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
        {
            return Err(FetchError::NotFound {
                location: format!("{path} (not a plain relative path)"),
            });
        }
        self.read(
            self.targets_dir.join(target_file_path(path, hash_prefix)),
            max_len,
        )
    }
}
