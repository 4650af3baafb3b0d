//! How the trust core reaches metadata: it asks a [`MetadataSource`] for a role's file (a
//! version, or the current one) with a size cap; the source decides names and transport.
//! Every source enforces the cap while reading: no response is read past it. The sources
//! themselves (registry, HTTP, directory, bundle) live outside the core.

use super::names::RoleName;
use crate::verdict::ReasonCode;

/// Why a fetch failed. `NotFound` is distinct because the TUF workflow needs it: a missing
/// `N.root.json` ends the root rotation chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("not found at {location}")]
    NotFound { location: String },
    #[error("{location} is larger than the {limit}-byte limit")]
    TooLarge { location: String, limit: u64 },
    #[error("{location} answered HTTP {status}")]
    Status { location: String, status: u16 },
    #[error("{location} timed out")]
    Timeout { location: String },
    /// The deadline of the whole operation (one verification) ran out at `location`.
    #[error("{location}: still unanswered when the deadline of {} s for the whole operation ran out", budget.as_secs_f64())]
    DeadlineExceeded {
        location: String,
        budget: std::time::Duration,
    },
    #[error("{location} could not be reached: {reason}")]
    Unreachable { location: String, reason: String },
    #[error("reading {location} failed: {reason}")]
    Io { location: String, reason: String },
    /// The source refused access: no, or wrong, credentials, or not allowed.
    #[error("{location}: {reason}")]
    Refused { location: String, reason: String },
    /// The source asks to come back later (HTTP 429, or 503 with `Retry-After`).
    #[error("{location}: rate-limited{}", retry_after.map(|d| format!(" (retry after {} s)", d.as_secs())).unwrap_or_default())]
    RateLimited {
        location: String,
        retry_after: Option<std::time::Duration>,
    },
    /// The transport delivered bytes that are not what was asked for (a registry blob or
    /// manifest whose content does not have its digest).
    #[error("{location} is corrupt: {reason}")]
    Corrupt { location: String, reason: String },
    /// The transport holds something that is not what this source stores there (e.g. a
    /// registry tag of the trust repository that is not a pullguard metadata artifact).
    #[error("{location}: {reason}")]
    Invalid { location: String, reason: String },
}

impl FetchError {
    pub fn reason(&self) -> ReasonCode {
        match self {
            FetchError::TooLarge { .. } => ReasonCode::Oversized,
            FetchError::Corrupt { .. } => ReasonCode::DigestMismatch,
            FetchError::Invalid { .. } => ReasonCode::Malformed,
            FetchError::Refused { .. } => ReasonCode::Unauthorized,
            FetchError::RateLimited { .. } => ReasonCode::RateLimited,
            _ => ReasonCode::Unavailable,
        }
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, FetchError::NotFound { .. })
    }
}

/// A store of TUF metadata and targets, read-only from the client's point of view.
pub trait MetadataSource {
    /// Fetches `role`'s metadata: `<version>.<role>.json` when a version is given (consistent
    /// snapshots, root chain), else `<role>.json`. At most `max_len` bytes are read; a longer
    /// response is [`FetchError::TooLarge`].
    fn fetch_metadata(
        &self,
        role: &RoleName,
        version: Option<u64>,
        max_len: u64,
    ) -> Result<Vec<u8>, FetchError>;

    /// Fetches a target file by its target path; with consistent snapshots the caller passes
    /// the hash that prefixes the file's base name (`dir/<hash>.<name>`).
    fn fetch_target(
        &self,
        path: &str,
        hash_prefix: Option<&str>,
        max_len: u64,
    ) -> Result<Vec<u8>, FetchError>;
}

/// A borrowed source is a source: one in-memory bundle can serve an [`Updater`] per use
/// without being copied.
///
/// [`Updater`]: crate::tuf::Updater
impl<S: MetadataSource + ?Sized> MetadataSource for &S {
    fn fetch_metadata(
        &self,
        role: &RoleName,
        version: Option<u64>,
        max_len: u64,
    ) -> Result<Vec<u8>, FetchError> {
        (**self).fetch_metadata(role, version, max_len)
    }

    fn fetch_target(
        &self,
        path: &str,
        hash_prefix: Option<&str>,
        max_len: u64,
    ) -> Result<Vec<u8>, FetchError> {
        (**self).fetch_target(path, hash_prefix, max_len)
    }
}

/// The file name of a role's metadata in the standard TUF layout (role name percent-encoded).
pub fn metadata_file_name(role: &RoleName, version: Option<u64>) -> String {
    match version {
        Some(v) => format!("{v}.{}.json", role.encoded()),
        None => format!("{}.json", role.encoded()),
    }
}

/// A target's path with the consistent-snapshot hash prefix on its base name.
pub fn target_file_path(path: &str, hash_prefix: Option<&str>) -> String {
    match hash_prefix {
        None => path.to_string(),
        Some(hash) => match path.rsplit_once('/') {
            Some((dir, base)) => format!("{dir}/{hash}.{base}"),
            None => format!("{hash}.{path}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names() {
        let role = RoleName::new("team/a?").expect("name");
        assert_eq!(metadata_file_name(&role, Some(3)), "3.team%2Fa%3F.json");
        assert_eq!(
            metadata_file_name(&RoleName::timestamp(), None),
            "timestamp.json"
        );
        assert_eq!(target_file_path("a/b/c.txt", Some("ab")), "a/b/ab.c.txt");
        assert_eq!(target_file_path("c.txt", Some("ab")), "ab.c.txt");
        assert_eq!(target_file_path("c.txt", None), "c.txt");
    }
}
