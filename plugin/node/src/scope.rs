//! A configured scope as the node holds it: its config, source, policy hash, the trusted
//! state it has in memory (its view), its refresh schedule, and the small rules over them.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use pullguard_cache::{Store, VerdictKey, VerdictRecord};
use pullguard_plugin::bundle::Bundle;
use pullguard_plugin::config::ScopeConfig;
use pullguard_plugin::registry::{ImageRef, Registry, Scope};
use pullguard_plugin::tuf::schema::{Envelope, Snapshot, Timestamp};
use pullguard_plugin::tuf::state::TrustStore;
use pullguard_plugin::tuf::trusted::TrustedSet;
use pullguard_plugin::tuf::{Limits, RoleName};
use pullguard_plugin::verdict::{Evidence, ReasonCode, Verdict};
use sha2::{Digest as _, Sha256};

use crate::answer::{Answer, Named};
use crate::rocks::RocksTrustStore;

/// A scope's trusted state as held in memory: read by every cache lookup, written after
/// every refresh.
#[derive(Debug, Clone, Default)]
pub(crate) struct View {
    pub(crate) root_version: u64,
    pub(crate) timestamp_version: u64,
    pub(crate) timestamp_expires: Option<DateTime<Utc>>,
    pub(crate) snapshot_version: u64,
    pub(crate) snapshot_expires: Option<DateTime<Utc>>,
    pub(crate) highest_time: Option<DateTime<Utc>>,
    pub(crate) last_refresh: Option<DateTime<Utc>>,
    pub(crate) last_attempt: Option<DateTime<Utc>>,
    pub(crate) last_error: Option<(ReasonCode, String)>,
}

impl View {
    /// The view after a refresh at `now` left `trusted`.
    pub(crate) fn refreshed(&mut self, trusted: &TrustedSet, now: DateTime<Utc>) {
        let version = |v: std::num::NonZeroU64| v.get();
        self.root_version = trusted.root().signed.version.get();
        self.timestamp_version = trusted.timestamp().map_or(0, |t| version(t.signed.version));
        self.timestamp_expires = trusted.timestamp().map(|t| t.signed.expires.0);
        self.snapshot_version = trusted.snapshot().map_or(0, |t| version(t.signed.version));
        self.snapshot_expires = trusted.snapshot().map(|t| t.signed.expires.0);
        self.highest_time = Some(self.highest_time.map_or(now, |h| h.max(now)));
        self.last_refresh = Some(now);
        self.last_attempt = Some(now);
        self.last_error = None;
    }

    pub(crate) fn failed(&mut self, reason: ReasonCode, message: String, now: DateTime<Utc>) {
        self.last_attempt = Some(now);
        self.last_error = Some((reason, message));
    }
}

/// When a scope is refreshed next in the background.
pub(crate) struct Schedule {
    pub(crate) next: Instant,
    pub(crate) backoff: Duration,
}

/// One configured scope and what is needed to check its images.
pub(crate) struct NodeScope {
    pub(crate) scope: Scope,
    pub(crate) name: String,
    /// The configured root's bytes and version, checked at start.
    pub(crate) root: (Vec<u8>, u64),
    pub(crate) config: ScopeConfig,
    /// What a verdict of this scope depends on in the config (see [`policy_hash`]).
    pub(crate) policy: [u8; 32],
    pub(crate) offline_grace: Duration,
    pub(crate) registry: Arc<Registry>,
    pub(crate) source: ScopeSource,
    pub(crate) view: RwLock<View>,
    pub(crate) schedule: Mutex<Schedule>,
    /// One check or refresh at a time per scope: both write the scope's trusted state.
    pub(crate) busy: Mutex<()>,
}

/// Where a scope's metadata comes from, resolved at start (a bundle is read then).
pub(crate) enum ScopeSource {
    Oci,
    Http(String),
    Dir(std::path::PathBuf),
    /// Metadata and signatures both.
    Bundle(Arc<Bundle>),
}

impl Named for NodeScope {
    fn name(&self) -> &str {
        &self.name
    }
}

impl NodeScope {
    pub(crate) fn view_mut(&self) -> std::sync::RwLockWriteGuard<'_, View> {
        self.view.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The cache key of `image` under the given trusted state.
    pub(crate) fn key(
        &self,
        image: &ImageRef,
        root_version: u64,
        snapshot_version: u64,
    ) -> Option<VerdictKey> {
        Some(VerdictKey {
            scope: self.name.clone(),
            repository: image.repository().to_string(),
            digest: image.digest()?.to_string(),
            policy_hash: self.policy,
            root_version,
            snapshot_version,
        })
    }

    pub(crate) fn cached_answer(
        &self,
        view: &View,
        image: &ImageRef,
        record: &VerdictRecord,
        until: DateTime<Utc>,
        offline_grace: bool,
    ) -> Answer {
        let verdict = Verdict {
            admitted: true,
            reason: ReasonCode::Verified,
            message: record.message.clone(),
            valid_until: (!offline_grace).then_some(until),
        };
        Answer {
            cached: true,
            offline_grace,
            evidence: Some(Evidence {
                root_version: view.root_version,
                timestamp_version: view.timestamp_version,
                snapshot_version: view.snapshot_version,
                role: record.role.clone(),
                role_version: record.role_version,
                length: record.length,
                signature_version: record.signature_version,
                key_ids: record.key_ids.clone(),
            }),
            ..Answer::about(verdict, self, image)
        }
    }
}

/// The tag a verdict is for: the image's tag, or `""` for its digest pin.
pub(crate) fn tag_of(image: &ImageRef) -> &str {
    image.tag().unwrap_or("")
}

/// A denial when `now` is behind the highest time the scope has seen (beyond the
/// tolerance): a clock set back would revive expired metadata.
pub(crate) fn clock_behind(view: &View, now: DateTime<Utc>) -> Option<Verdict> {
    let tolerance = chrono::Duration::from_std(Limits::default().clock_tolerance).ok()?;
    let highest = view.highest_time?;
    (now + tolerance < highest).then(|| {
        Verdict::deny(
            ReasonCode::ClockRollback,
            format!("the clock ({now}) is behind a time already seen ({highest})"),
        )
    })
}

pub(crate) fn micros_to_time(micros: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_micros(micros).single()
}

/// A duration between 80 % and 100 % of `d`, so that nodes started together do not
/// refresh together.
pub(crate) fn jittered(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |t| t.subsec_nanos());
    let fraction = 0.8 + 0.2 * f64::from(nanos % 1000) / 1000.0;
    d.mul_f64(fraction)
}

/// What a scope's verdicts depend on in the config, beyond the trusted state: its name,
/// its root, where its metadata and signatures come from, and what it requires. Its
/// mode is not part of it (it only decides what a verdict does).
pub(crate) fn policy_hash(name: &str, root: &[u8], s: &ScopeConfig) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in [
        b"pullguard-policy-1".as_slice(),
        name.as_bytes(),
        &Sha256::digest(root),
        s.source.as_bytes(),
        s.trust_repository.as_deref().unwrap_or("").as_bytes(),
        format!("{:?}", s.require).as_bytes(),
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    h.finalize().into()
}

/// The scope's trusted state as stored (read at start, so that verdicts cached before a
/// restart answer before the first refresh, and offline).
pub(crate) fn load_view(db: &Arc<Store>, scope: &str) -> View {
    let store = RocksTrustStore::new(Arc::clone(db), scope.to_string());
    let mut view = View::default();
    let mut read = || -> Result<(), pullguard_plugin::tuf::state::StoreError> {
        view.root_version = store.version(&RoleName::root())?.unwrap_or(0);
        if let Some(bytes) = store.load(&RoleName::timestamp())? {
            if let Ok(env) = Envelope::<Timestamp>::from_slice(&bytes) {
                view.timestamp_version = env.signed.version.get();
                view.timestamp_expires = Some(env.signed.expires.0);
            }
        }
        if let Some(bytes) = store.load(&RoleName::snapshot())? {
            if let Ok(env) = Envelope::<Snapshot>::from_slice(&bytes) {
                view.snapshot_version = env.signed.version.get();
                view.snapshot_expires = Some(env.signed.expires.0);
            }
        }
        view.highest_time = store.highest_time()?;
        Ok(())
    };
    if let Err(e) = read() {
        view = View::default();
        view.last_error = Some((ReasonCode::Internal, e.to_string()));
    }
    view
}

/// A scope's state starts from its configured root (checked at start); later roots come
/// only through verified rotations.
pub(crate) fn ensure_root(
    store: &mut RocksTrustStore,
    (bytes, version): &(Vec<u8>, u64),
) -> Result<(), pullguard_plugin::tuf::state::StoreError> {
    if store.load(&RoleName::root())?.is_none() {
        store.persist(&RoleName::root(), *version, bytes)?;
    }
    Ok(())
}

/// The first background refresh waits this long after start, and failures back off from it.
pub(crate) const FIRST_BACKOFF: Duration = Duration::from_secs(1);
