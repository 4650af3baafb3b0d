//! What the node answers: a verdict with what it rests on, and how its scopes stand.

use chrono::{DateTime, Utc};
use pullguard_plugin::config::Mode;
use pullguard_plugin::registry::ImageRef;
use pullguard_plugin::verdict::{Evidence, ReasonCode, Verdict};

/// What an answer needs to know of the scope that decided.
pub(crate) trait Named {
    fn name(&self) -> &str;
}

/// A request about a scope the node does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no scope {name} is configured")]
pub struct UnknownScope {
    pub name: String,
}

/// The node's answer about one image: the verdict and what it rests on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub verdict: Verdict,
    /// Answered from the verdict cache, without checking again.
    pub cached: bool,
    /// The scope that decided, if any.
    pub scope: Option<String>,
    /// The image as checked (its repository, tag and digest).
    pub image: Option<ImageRef>,
    pub evidence: Option<Evidence>,
    /// Admitted after its metadata expired, within the scope's `offline_grace`, because
    /// the source could not be reached.
    pub offline_grace: bool,
    /// In `warn` mode: the denial that was not enforced.
    pub would_deny: Option<ReasonCode>,
}

impl From<Verdict> for Answer {
    fn from(verdict: Verdict) -> Self {
        Answer::of(verdict)
    }
}

impl Answer {
    pub(crate) fn of(verdict: Verdict) -> Self {
        Answer {
            verdict,
            cached: false,
            scope: None,
            image: None,
            evidence: None,
            offline_grace: false,
            would_deny: None,
        }
    }

    pub(crate) fn about(verdict: Verdict, scope: &impl Named, image: &ImageRef) -> Self {
        Answer {
            scope: Some(scope.name().to_string()),
            image: Some(image.clone()),
            ..Answer::of(verdict)
        }
    }
}

/// What the node knows of a scope now (`pullguard status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeStatus {
    pub name: String,
    pub mode: Mode,
    pub root_version: u64,
    pub timestamp_version: u64,
    pub timestamp_expires: Option<DateTime<Utc>>,
    pub snapshot_version: u64,
    pub snapshot_expires: Option<DateTime<Utc>>,
    /// The last refresh that succeeded, and the last attempt.
    pub last_refresh: Option<DateTime<Utc>>,
    pub last_attempt: Option<DateTime<Utc>>,
    /// Why the last attempt failed (none when it succeeded).
    pub last_error: Option<(ReasonCode, String)>,
    pub cached_verdicts: u64,
}

/// How the node stands: every scope, and the counters since start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    pub scopes: Vec<ScopeStatus>,
    pub cache_hits: u64,
    pub cache_misses: u64,
    pub evaluations: u64,
}
