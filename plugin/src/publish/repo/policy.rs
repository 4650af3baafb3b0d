//! Expiry and retention policy of a working copy: durations as `7d`/`12h`/`30m`/`90s`, how
//! long each kind of document stays valid, and which targets stay signed.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Pruned, RepoError, Result};
use crate::tuf::names::RoleName;

/// A duration written as `<n>d`, `<n>h`, `<n>m` or `<n>s`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let bad = || format!("`{s}` is not a duration (write e.g. 7d, 12h, 30m, 90s)");
    let unit = s.chars().last().ok_or_else(bad)?;
    let digits = &s[..s.len() - unit.len_utf8()];
    let n: i64 = digits
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (write e.g. 7d, 12h, 30m, 90s)"))?;
    if n <= 0 {
        return Err(format!("`{s}`: a duration must be positive"));
    }
    let d = match unit {
        'd' => Duration::try_days(n),
        'h' => Duration::try_hours(n),
        'm' => Duration::try_minutes(n),
        's' => Duration::try_seconds(n),
        _ => None,
    }
    .ok_or_else(bad)?;
    if d > Duration::days(36_500) {
        return Err(format!("`{s}`: longer than 100 years"));
    }
    Ok(d)
}

/// How long each kind of document stays valid after it is signed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Expiries {
    pub root: String,
    pub targets: String,
    pub snapshot: String,
    pub timestamp: String,
    pub signature: String,
}

impl Default for Expiries {
    fn default() -> Self {
        Expiries {
            root: "365d".into(),
            targets: "90d".into(),
            snapshot: "7d".into(),
            timestamp: "1d".into(),
            signature: "90d".into(),
        }
    }
}

impl Expiries {
    pub(super) fn for_role(&self, role: &str) -> &str {
        match role {
            "root" => &self.root,
            "snapshot" => &self.snapshot,
            "timestamp" => &self.timestamp,
            _ => &self.targets,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        for d in [
            &self.root,
            &self.targets,
            &self.snapshot,
            &self.timestamp,
            &self.signature,
        ] {
            parse_duration(d)?;
        }
        Ok(())
    }
}

/// Which targets stay signed: the newest `keep` per repository and/or those signed within
/// `max_age`. Applied whenever a targets role is re-signed.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Retention {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<String>,
}

impl Retention {
    pub fn validate(&self) -> Result<(), String> {
        if self.keep == Some(0) {
            return Err("retention: --keep must be at least 1 (0 would drop every image)".into());
        }
        if let Some(age) = &self.max_age {
            parse_duration(age)?;
        }
        Ok(())
    }
}

/// When a target was signed (if known) and its path.
type SignedTarget = (Option<DateTime<Utc>>, String);

/// Keeps the newest `keep` targets per repository and drops those signed before
/// `now - max_age`. Targets without `signedAt` count as oldest. The targets being signed
/// (`protect`, oldest first) are never dropped for their age, and count as the newest.
pub(super) fn apply_retention(
    role: &RoleName,
    signed: &mut Value,
    retention: &Retention,
    now: DateTime<Utc>,
    protect: &[&str],
) -> Result<Pruned> {
    let mut pruned = Pruned {
        role: role.to_string(),
        removed: Vec::new(),
    };
    let Some(targets) = signed["targets"].as_object_mut() else {
        return Ok(pruned);
    };
    let signed_at = |v: &Value| {
        v["custom"]["signedAt"]
            .as_str()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&Utc))
    };
    if let Some(age) = &retention.max_age {
        let cutoff = now - parse_duration(age).map_err(RepoError::Invalid)?;
        let old: Vec<String> = targets
            .iter()
            .filter(|(k, v)| {
                !protect.contains(&k.as_str()) && signed_at(v).is_none_or(|t| t < cutoff)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in old {
            targets.remove(&k);
            pruned.removed.push(k);
        }
    }
    if let Some(keep) = retention.keep {
        // At least the target being signed stays, whatever a hand-edited config says.
        let keep = keep.max(1);
        let mut by_repo: BTreeMap<String, Vec<SignedTarget>> = BTreeMap::new();
        for (path, v) in targets.iter() {
            let repo = path.split([':', '@']).next().unwrap_or(path).to_string();
            // The target being signed right now is the newest, whatever the clocks said.
            let at = match protect.iter().rposition(|p| *p == path.as_str()) {
                Some(i) => DateTime::<Utc>::MAX_UTC
                    .checked_sub_signed(Duration::seconds((protect.len() - i) as i64)),
                None => signed_at(v),
            };
            by_repo.entry(repo).or_default().push((at, path.clone()));
        }
        for (_, mut entries) in by_repo {
            entries.sort_by(|a, b| b.cmp(a));
            for (_, path) in entries.into_iter().skip(keep) {
                targets.remove(&path);
                pruned.removed.push(path);
            }
        }
    }
    Ok(pruned)
}
