//! Conversions between the generated protobuf types and the domain types.

use pullguard_proto::v1 as pb;

use crate::verdict::{Evidence, ReasonCode, Verdict};

impl From<ReasonCode> for pb::Reason {
    fn from(code: ReasonCode) -> Self {
        match code {
            ReasonCode::Verified => pb::Reason::Verified,
            ReasonCode::Expired => pb::Reason::Expired,
            ReasonCode::Rollback => pb::Reason::Rollback,
            ReasonCode::VersionMismatch => pb::Reason::VersionMismatch,
            ReasonCode::ThresholdNotMet => pb::Reason::ThresholdNotMet,
            ReasonCode::NotSigned => pb::Reason::NotSigned,
            ReasonCode::UnknownTarget => pb::Reason::UnknownTarget,
            ReasonCode::DigestMismatch => pb::Reason::DigestMismatch,
            ReasonCode::LengthMismatch => pb::Reason::LengthMismatch,
            ReasonCode::MixAndMatch => pb::Reason::MixAndMatch,
            ReasonCode::Malformed => pb::Reason::Malformed,
            ReasonCode::Oversized => pb::Reason::Oversized,
            ReasonCode::ClockRollback => pb::Reason::ClockRollback,
            ReasonCode::TooManyRotations => pb::Reason::TooManyRotations,
            ReasonCode::NoTrustRoot => pb::Reason::NoTrustRoot,
            ReasonCode::Unavailable => pb::Reason::Unavailable,
            ReasonCode::InvalidRequest => pb::Reason::InvalidRequest,
            ReasonCode::Internal => pb::Reason::Internal,
            ReasonCode::Unauthorized => pb::Reason::Unauthorized,
            ReasonCode::RateLimited => pb::Reason::RateLimited,
            ReasonCode::Unchecked => pb::Reason::Unchecked,
        }
    }
}

impl TryFrom<pb::Reason> for ReasonCode {
    type Error = String;
    fn try_from(reason: pb::Reason) -> Result<Self, Self::Error> {
        ReasonCode::ALL
            .into_iter()
            .find(|code| pb::Reason::from(*code) == reason)
            .ok_or_else(|| format!("{} has no reason code", reason.as_str_name()))
    }
}

impl From<&Verdict> for pb::Verdict {
    fn from(v: &Verdict) -> Self {
        pb::Verdict {
            admitted: v.admitted,
            reason: pb::Reason::from(v.reason) as i32,
            message: v.message.clone(),
            valid_until: v.valid_until.map_or(0, |t| t.timestamp()),
            ..pb::Verdict::default()
        }
    }
}

impl From<&Evidence> for pb::Evidence {
    fn from(e: &Evidence) -> Self {
        pb::Evidence {
            root_version: e.root_version,
            timestamp_version: e.timestamp_version,
            snapshot_version: e.snapshot_version,
            role: e.role.clone(),
            role_version: e.role_version,
            signature_version: e.signature_version,
            key_ids: e.key_ids.clone(),
            length: e.length,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_code_has_its_own_protobuf_reason_and_back() {
        for code in ReasonCode::ALL {
            let pb_reason = pb::Reason::from(code);
            // The protobuf name is the reason code, upper-cased, behind REASON_.
            assert_eq!(
                pb_reason.as_str_name(),
                format!("REASON_{}", code.as_str().to_uppercase())
            );
            assert_eq!(ReasonCode::try_from(pb_reason), Ok(code));
        }
        assert!(ReasonCode::try_from(pb::Reason::Unspecified).is_err());
    }

    #[test]
    fn verdicts_convert_with_expiry() {
        let t = chrono::DateTime::from_timestamp(1_900_000_000, 0).expect("time");
        let pb_v = pb::Verdict::from(&Verdict::admit("ok", t));
        assert!(pb_v.admitted);
        assert_eq!(pb_v.valid_until, 1_900_000_000);
        let denied = pb::Verdict::from(&Verdict::deny(ReasonCode::Rollback, "old"));
        assert_eq!(denied.reason, pb::Reason::Rollback as i32);
        assert_eq!(denied.valid_until, 0);
    }
}
