//! The answer pullguard gives about an image: admitted or denied, a stable reason code, a
//! human-readable message, and how long the answer may be reused.
//!
//! Reason codes are part of the API (gRPC, the containerd hook's output, the audit log):
//! their string forms never change meaning once released.

use std::fmt;

use chrono::{DateTime, Utc};

/// Why an image was admitted or denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReasonCode {
    /// Admitted: all required evidence is valid.
    Verified,
    /// Metadata or a signature is past its expiry (a freeze attack, or a stale mirror).
    Expired,
    /// A version older than the trusted one was served (replay / rollback).
    Rollback,
    /// A document's version differs from the one its file name, snapshot or timestamp pins.
    VersionMismatch,
    /// Too few valid signatures by the keys trusted for the role.
    ThresholdNotMet,
    /// Nothing signed says anything about this image.
    NotSigned,
    /// No trusted targets role lists the target (image tag, digest pin, or file).
    UnknownTarget,
    /// Content does not have the digest that trusted metadata lists.
    DigestMismatch,
    /// Content does not have the length that trusted metadata lists.
    LengthMismatch,
    /// Metadata combines documents from different points in time.
    MixAndMatch,
    /// A document is not well-formed TUF / pullguard metadata.
    Malformed,
    /// A response is larger than the limit for its document type.
    Oversized,
    /// The node clock is behind a time already seen.
    ClockRollback,
    /// The root rotation chain is longer than allowed in one update.
    TooManyRotations,
    /// No trust root is configured for the scope.
    NoTrustRoot,
    /// The metadata source could not be reached or timed out.
    Unavailable,
    /// The request itself was malformed.
    InvalidRequest,
    /// The registry refused pullguard's credentials, or has none for it (not an outage:
    /// the node's configuration needs fixing).
    Unauthorized,
    /// The registry asks to come back later.
    RateLimited,
    /// Admitted without any check, as the node's config says (`daemon.allow`,
    /// `unmatched = "admit"`, a scope in `off` mode): never a verification.
    Unchecked,
    /// A local failure (trusted-state storage).
    Internal,
}

impl ReasonCode {
    pub const ALL: [ReasonCode; 21] = [
        ReasonCode::Verified,
        ReasonCode::Expired,
        ReasonCode::Rollback,
        ReasonCode::VersionMismatch,
        ReasonCode::ThresholdNotMet,
        ReasonCode::NotSigned,
        ReasonCode::UnknownTarget,
        ReasonCode::DigestMismatch,
        ReasonCode::LengthMismatch,
        ReasonCode::MixAndMatch,
        ReasonCode::Malformed,
        ReasonCode::Oversized,
        ReasonCode::ClockRollback,
        ReasonCode::TooManyRotations,
        ReasonCode::NoTrustRoot,
        ReasonCode::Unavailable,
        ReasonCode::InvalidRequest,
        ReasonCode::Internal,
        ReasonCode::Unauthorized,
        ReasonCode::RateLimited,
        ReasonCode::Unchecked,
    ];

    /// The stable string form.
    pub fn as_str(self) -> &'static str {
        match self {
            ReasonCode::Verified => "verified",
            ReasonCode::Expired => "expired",
            ReasonCode::Rollback => "rollback",
            ReasonCode::VersionMismatch => "version_mismatch",
            ReasonCode::ThresholdNotMet => "threshold_not_met",
            ReasonCode::NotSigned => "not_signed",
            ReasonCode::UnknownTarget => "unknown_target",
            ReasonCode::DigestMismatch => "digest_mismatch",
            ReasonCode::LengthMismatch => "length_mismatch",
            ReasonCode::MixAndMatch => "mix_and_match",
            ReasonCode::Malformed => "malformed",
            ReasonCode::Oversized => "oversized",
            ReasonCode::ClockRollback => "clock_rollback",
            ReasonCode::TooManyRotations => "too_many_rotations",
            ReasonCode::NoTrustRoot => "no_trust_root",
            ReasonCode::Unavailable => "unavailable",
            ReasonCode::InvalidRequest => "invalid_request",
            ReasonCode::Internal => "internal",
            ReasonCode::Unauthorized => "unauthorized",
            ReasonCode::RateLimited => "rate_limited",
            ReasonCode::Unchecked => "unchecked",
        }
    }

    /// Transient failures say nothing about the image and are never cached as verdicts.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            ReasonCode::Unavailable
                | ReasonCode::Internal
                | ReasonCode::InvalidRequest
                | ReasonCode::Unauthorized
                | ReasonCode::RateLimited
        )
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ReasonCode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ReasonCode::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| format!("unknown reason code `{s}`"))
    }
}

/// What an admission rests on: the trusted metadata versions and the accepted signature.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Evidence {
    pub root_version: u64,
    pub timestamp_version: u64,
    pub snapshot_version: u64,
    /// The targets role that lists the image, and its version.
    pub role: String,
    pub role_version: u64,
    /// The image manifest's length as trusted metadata lists it.
    pub length: u64,
    pub signature_version: u64,
    /// The trusted keys that signed the accepted signature.
    pub key_ids: Vec<String>,
}

impl fmt::Display for Evidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "root v{}, timestamp v{}, snapshot v{}, {} v{}",
            self.root_version,
            self.timestamp_version,
            self.snapshot_version,
            self.role,
            self.role_version,
        )?;
        if self.signature_version == 0 {
            return f.write_str(", no signature required");
        }
        let keys: Vec<&str> = self
            .key_ids
            .iter()
            .map(|k| k.get(..12).unwrap_or(k))
            .collect();
        write!(
            f,
            ", signature v{} by {}",
            self.signature_version,
            keys.join(", ")
        )
    }
}

/// A decision about one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub admitted: bool,
    pub reason: ReasonCode,
    pub message: String,
    /// The earliest expiry among the evidence used; the verdict may be reused until then.
    pub valid_until: Option<DateTime<Utc>>,
}

impl Verdict {
    /// An admission that checked nothing (the config says so): its own reason, and never
    /// reusable, so a cache cannot mistake it for a verification.
    pub fn admit_unchecked(message: impl Into<String>) -> Self {
        Verdict {
            admitted: true,
            reason: ReasonCode::Unchecked,
            message: message.into(),
            valid_until: None,
        }
    }

    pub fn admit(message: impl Into<String>, valid_until: DateTime<Utc>) -> Self {
        Verdict {
            admitted: true,
            reason: ReasonCode::Verified,
            message: message.into(),
            valid_until: Some(valid_until),
        }
    }

    pub fn deny(reason: ReasonCode, message: impl Into<String>) -> Self {
        Verdict {
            admitted: false,
            reason,
            message: message.into(),
            valid_until: None,
        }
    }

    /// May this verdict be cached and reused at `now`?
    pub fn reusable_at(&self, now: DateTime<Utc>) -> bool {
        !self.reason.is_transient() && self.valid_until.is_some_and(|t| now < t)
    }
}

/// `text` on one line: control characters (a line break a registry put into an error
/// message or a media type, say) and bidirectional-formatting characters (which reorder how
/// a line reads) are written as escapes, so that one verdict is always one line that reads
/// as it is, whatever the parts of its message came from.
pub fn one_line(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if needs_escape(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// The characters [`one_line`] escapes: control characters, and the zero-width and
/// bidirectional-formatting ones (U+200B–U+200F, U+202A–U+202E, U+2066–U+2069).
pub fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_one_line_whatever_it_holds() {
        assert_eq!(one_line("plain: text ü"), "plain: text ü");
        assert_eq!(
            one_line("bad\nADMIT app:1: forged\r\u{1b}[2K"),
            "bad\\nADMIT app:1: forged\\r\\u{1b}[2K"
        );
        assert_eq!(one_line("a\u{85}b"), "a\\u{85}b");
        assert_eq!(one_line("ok\u{202e}gnp.exe"), "ok\\u{202e}gnp.exe");
    }

    #[test]
    fn reason_codes_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for code in ReasonCode::ALL {
            assert!(seen.insert(code.as_str()));
            assert_eq!(code.as_str().parse::<ReasonCode>(), Ok(code));
        }
        assert!("nope".parse::<ReasonCode>().is_err());
    }

    #[test]
    fn denials_and_transient_errors_are_not_reusable() {
        let now = Utc::now();
        let later = now + chrono::Duration::hours(1);
        assert!(Verdict::admit("ok", later).reusable_at(now));
        assert!(!Verdict::admit("ok", now).reusable_at(later));
        assert!(!Verdict::deny(ReasonCode::Unavailable, "down").reusable_at(now));
    }
}
