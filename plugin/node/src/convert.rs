//! Conversions of the daemon's answers to protobuf (the library's own types convert in
//! `pullguard_plugin::grpc::convert`).

use pullguard_proto::v1 as pb;

use crate::{Answer, NodeStatus, ScopeStatus};

impl From<&Answer> for pb::Verdict {
    fn from(a: &Answer) -> Self {
        let image = a.image.as_ref();
        pb::Verdict {
            cached: a.cached,
            scope: a.scope.clone().unwrap_or_default(),
            repository: image
                .map(|i| i.repository().to_string())
                .unwrap_or_default(),
            tag: image.and_then(|i| i.tag()).unwrap_or_default().to_string(),
            digest: image
                .and_then(|i| i.digest())
                .map(|d| d.to_string())
                .unwrap_or_default(),
            evidence: a.evidence.as_ref().map(pb::Evidence::from),
            offline_grace: a.offline_grace,
            would_deny: a
                .would_deny
                .map_or(pb::Reason::Unspecified, pb::Reason::from) as i32,
            ..pb::Verdict::from(&a.verdict)
        }
    }
}

fn unix(t: Option<chrono::DateTime<chrono::Utc>>) -> i64 {
    t.map_or(0, |t| t.timestamp())
}

impl From<&ScopeStatus> for pb::ScopeStatus {
    fn from(s: &ScopeStatus) -> Self {
        let (reason, error) = match &s.last_error {
            Some((r, m)) => (pb::Reason::from(*r), m.clone()),
            None => (pb::Reason::Unspecified, String::new()),
        };
        pb::ScopeStatus {
            name: s.name.clone(),
            mode: s.mode.as_str().to_string(),
            root_version: s.root_version,
            timestamp_version: s.timestamp_version,
            timestamp_expires: unix(s.timestamp_expires),
            snapshot_version: s.snapshot_version,
            snapshot_expires: unix(s.snapshot_expires),
            last_refresh: unix(s.last_refresh),
            last_attempt: unix(s.last_attempt),
            last_error_reason: reason as i32,
            last_error: error,
            cached_verdicts: s.cached_verdicts,
        }
    }
}

impl From<&NodeStatus> for pb::StatusResponse {
    fn from(s: &NodeStatus) -> Self {
        pb::StatusResponse {
            scopes: s.scopes.iter().map(pb::ScopeStatus::from).collect(),
            cache_hits: s.cache_hits,
            cache_misses: s.cache_misses,
            evaluations: s.evaluations,
        }
    }
}
