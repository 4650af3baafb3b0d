//! Errors of the TUF workflow. Each denial has its own variant, with the facts an operator
//! needs (which role, which versions, which times), and maps to a stable [`ReasonCode`].

use chrono::{DateTime, Utc};

use super::keys::KeyError;
use super::schema::{Expires, SchemaError};
use super::verify::ThresholdError;
use crate::tuf::fetch::FetchError;
use crate::tuf::state::StoreError;
use crate::verdict::{ReasonCode, Verdict};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{file}: longer than the {expected} bytes that {by} lists (at {location})")]
    TooLong {
        file: String,
        by: String,
        expected: u64,
        location: String,
    },
    #[error("{file}: {source}")]
    Fetch {
        file: String,
        #[source]
        source: FetchError,
    },
    #[error("{file} is malformed: {source}")]
    Malformed {
        file: String,
        #[source]
        source: SchemaError,
    },
    /// A document lists a key this client cannot use (an unknown type, a scheme that does not
    /// fit the type, bad key bytes): the whole document is refused, as python-tuf refuses it.
    #[error("{file} lists key {keyid}, which cannot be used: {source}")]
    UnusableKey {
        file: String,
        keyid: String,
        #[source]
        source: KeyError,
    },
    #[error("{0}")]
    Threshold(#[from] ThresholdError),
    #[error("{role} rollback: version {new} is older than the trusted version {trusted}")]
    Rollback {
        role: String,
        trusted: u64,
        new: u64,
    },
    #[error("{role}: expected version {expected}, found version {found}")]
    VersionMismatch {
        role: String,
        expected: u64,
        found: u64,
    },
    #[error("{role} expired at {expires} (now {now})")]
    Expired {
        role: String,
        expires: Expires,
        now: DateTime<Utc>,
    },
    #[error("{file}: length {found} differs from the {expected} bytes that {by} lists")]
    LengthMismatch {
        file: String,
        by: String,
        expected: u64,
        found: u64,
    },
    #[error("{file}: {algorithm} hash {found} differs from {expected} listed by {by}")]
    HashMismatch {
        file: String,
        by: String,
        algorithm: String,
        expected: String,
        found: String,
    },
    #[error("{file}: {by} lists a hash algorithm pullguard cannot check (`{listed}`; sha256 and sha512 are supported)")]
    NoSupportedHash {
        file: String,
        by: String,
        listed: String,
    },
    #[error("{role} is delegated but snapshot has no entry for it")]
    NotInSnapshot { role: String },
    #[error("snapshot no longer lists {file}, which the trusted snapshot did")]
    RemovedFromSnapshot { file: String },
    #[error("{role} is not delegated by {delegator}")]
    NotDelegated { role: String, delegator: String },
    #[error("more than {limit} root rotations in one update")]
    TooManyRootRotations { limit: u64 },
    #[error("the clock reads {now}, behind the latest time already seen, {highest}")]
    ClockRollback {
        now: DateTime<Utc>,
        highest: DateTime<Utc>,
    },
    #[error("no trusted root: {0}")]
    NoTrustedRoot(String),
    #[error("target {0} is not listed by any trusted targets role")]
    UnknownTarget(String),
    #[error("trusted state: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Usage(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn malformed(file: impl Into<String>, source: SchemaError) -> Self {
        Error::Malformed {
            file: file.into(),
            source,
        }
    }

    /// The stable reason code for this error in a verdict.
    pub fn reason(&self) -> ReasonCode {
        match self {
            Error::Fetch { source, .. } => source.reason(),
            Error::Malformed { .. } | Error::UnusableKey { .. } => ReasonCode::Malformed,
            Error::Threshold(_) => ReasonCode::ThresholdNotMet,
            Error::Rollback { .. } => ReasonCode::Rollback,
            Error::VersionMismatch { .. } => ReasonCode::VersionMismatch,
            Error::Expired { .. } => ReasonCode::Expired,
            Error::LengthMismatch { .. } | Error::TooLong { .. } => ReasonCode::LengthMismatch,
            Error::HashMismatch { .. } | Error::NoSupportedHash { .. } => {
                ReasonCode::DigestMismatch
            }
            Error::NotInSnapshot { .. } | Error::RemovedFromSnapshot { .. } => {
                ReasonCode::MixAndMatch
            }
            Error::NotDelegated { .. } => ReasonCode::NotSigned,
            Error::TooManyRootRotations { .. } => ReasonCode::TooManyRotations,
            Error::ClockRollback { .. } => ReasonCode::ClockRollback,
            Error::NoTrustedRoot(_) => ReasonCode::NoTrustRoot,
            Error::UnknownTarget(_) => ReasonCode::UnknownTarget,
            Error::Store(_) => ReasonCode::Internal,
            Error::Usage(_) => ReasonCode::InvalidRequest,
        }
    }
}

impl From<&Error> for Verdict {
    fn from(e: &Error) -> Self {
        Verdict::deny(e.reason(), e.to_string())
    }
}
