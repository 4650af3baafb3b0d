//! Registry errors: which registry, which request, and what went wrong, in kinds an operator
//! can act on (unauthorised vs not found vs rate-limited vs unreachable).

use std::fmt;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// 401 after the challenge flow (no or wrong credentials).
    Unauthorized {
        detail: String,
    },
    /// 403: authenticated but not allowed.
    Denied {
        detail: String,
    },
    NotFound,
    /// 429 (or 503 with `Retry-After`) still answered after the retries allowed.
    RateLimited {
        retry_after: Option<Duration>,
    },
    Unreachable {
        reason: String,
    },
    Timeout,
    /// The whole operation's deadline ran out while this request was due or under way.
    DeadlineExceeded {
        budget: Duration,
    },
    TooLarge {
        limit: u64,
    },
    /// Content, or the `Docker-Content-Digest` header, differs from the digest asked for.
    DigestMismatch {
        expected: String,
        found: String,
    },
    /// Any other status, with the start of the registry's error body.
    Status {
        status: u16,
        detail: String,
    },
    /// A well-transported answer that makes no sense (bad JSON, wrong media type, ...).
    Protocol {
        detail: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryError {
    pub registry: String,
    /// `METHOD /v2/...`
    pub request: String,
    pub kind: ErrorKind,
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "registry {}: {}: {}",
            self.registry, self.request, self.kind
        )
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::Unauthorized { detail } if detail.is_empty() => write!(f, "unauthorised"),
            ErrorKind::Unauthorized { detail } => write!(f, "unauthorised ({detail})"),
            ErrorKind::Denied { detail } if detail.is_empty() => write!(f, "access denied"),
            ErrorKind::Denied { detail } => write!(f, "access denied ({detail})"),
            ErrorKind::NotFound => write!(f, "not found"),
            ErrorKind::RateLimited {
                retry_after: Some(d),
            } => write!(f, "rate-limited (retry after {} s)", d.as_secs()),
            ErrorKind::RateLimited { retry_after: None } => write!(f, "rate-limited"),
            ErrorKind::Unreachable { reason } => write!(f, "unreachable: {reason}"),
            ErrorKind::Timeout => write!(f, "timed out"),
            ErrorKind::DeadlineExceeded { budget } => write!(
                f,
                "still unanswered when the deadline of {} s for the whole operation ran out",
                budget.as_secs_f64()
            ),
            ErrorKind::TooLarge { limit } => {
                write!(f, "response larger than the {limit}-byte limit")
            }
            ErrorKind::DigestMismatch { expected, found } => {
                write!(f, "content digest {found} differs from {expected}")
            }
            ErrorKind::Status { status, detail } if detail.is_empty() => {
                write!(f, "HTTP {status}")
            }
            ErrorKind::Status { status, detail } => write!(f, "HTTP {status}: {detail}"),
            ErrorKind::Protocol { detail } => write!(f, "unexpected answer: {detail}"),
        }
    }
}

impl std::error::Error for RegistryError {}

impl RegistryError {
    pub fn is_not_found(&self) -> bool {
        self.kind == ErrorKind::NotFound
    }

    /// `registry HOST: METHOD /v2/...`: where this error happened.
    pub fn location(&self) -> String {
        format!("registry {}: {}", self.registry, self.request)
    }
}
