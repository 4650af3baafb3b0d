//! The TUF client workflow (TUF §5): refresh the top-level metadata, find a target through
//! the delegation graph, fetch a target and check it. Network and disk are behind
//! [`MetadataSource`] and [`TrustStore`]; all verification is in [`TrustedSet`].

use std::collections::HashSet;

use chrono::{DateTime, Utc};

use super::error::{Error, Result};
use super::names::RoleName;
use super::schema::{Root, TargetFile};
use super::trusted::{check_hashes, check_length, TimestampUpdate, TrustedSet};
use crate::tuf::fetch::{metadata_file_name, target_file_path, FetchError, MetadataSource};
use crate::tuf::state::TrustStore;

/// Size and count limits (endless-data and graph-bomb defences).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub root_max: u64,
    pub timestamp_max: u64,
    /// Used when the timestamp does not list the snapshot's length.
    pub snapshot_max: u64,
    /// Used when the snapshot does not list a targets role's length.
    pub targets_max: u64,
    /// No document is read past this, whatever a listed length says.
    pub hard_max: u64,
    pub max_root_rotations: u64,
    /// How many targets roles one lookup may visit.
    pub max_delegations: usize,
    /// How far the clock may read behind the highest time seen before it counts as rolled
    /// back: small NTP steps and restarts under a fixed fake time are not attacks, a jump
    /// back by hours or days is.
    pub clock_tolerance: std::time::Duration,
}

impl Default for Limits {
    fn default() -> Self {
        // The same defaults as python-tuf's ngclient, plus an absolute cap.
        Limits {
            root_max: 512_000,
            timestamp_max: 16_384,
            snapshot_max: 2_000_000,
            targets_max: 5_000_000,
            hard_max: 64 * 1024 * 1024,
            max_root_rotations: 256,
            max_delegations: 32,
            clock_tolerance: std::time::Duration::from_secs(60),
        }
    }
}

/// A target found in trusted metadata: its path, what is known about it, and which role
/// vouched for it.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetInfo {
    pub path: String,
    pub file: TargetFile,
    pub role: RoleName,
    /// The role that delegated `role` on the search path (`root` for `targets`).
    pub delegator: RoleName,
}

/// Drives one repository's update.
pub struct Updater<S, T> {
    source: S,
    store: T,
    limits: Limits,
    trusted: Option<TrustedSet>,
}

impl<S: MetadataSource, T: TrustStore> Updater<S, T> {
    pub fn new(source: S, store: T, limits: Limits) -> Self {
        Updater {
            source,
            store,
            limits,
            trusted: None,
        }
    }

    pub fn store(&self) -> &T {
        &self.store
    }

    pub fn store_mut(&mut self) -> &mut T {
        &mut self.store
    }

    pub fn into_store(self) -> T {
        self.store
    }

    /// The trusted set after a successful [`Updater::refresh`].
    pub fn trusted(&self) -> Option<&TrustedSet> {
        self.trusted.as_ref()
    }

    /// TUF 5.1–5.6: updates root, timestamp, snapshot and top-level targets. `now` is the
    /// update start time; it must not be behind the highest time this store has seen.
    pub fn refresh(&mut self, now: DateTime<Utc>) -> Result<()> {
        self.trusted = None;
        let highest = self.check_clock(now)?;
        self.refresh_at(now)?;
        // Only a time at which metadata was accepted counts as seen: a failed run under a
        // wrong clock leaves nothing behind that would block later runs.
        if highest.is_none_or(|highest| now > highest) {
            self.store.record_time(now)?;
        }
        Ok(())
    }

    fn refresh_at(&mut self, now: DateTime<Utc>) -> Result<()> {
        let root_bytes = self
            .store
            .load(&RoleName::root())?
            .ok_or_else(|| Error::NoTrustedRoot("the trusted state has no root.json".into()))?;
        let mut trusted = TrustedSet::from_root(&root_bytes, now)?;
        let initial_root = trusted.root().signed.clone();

        self.update_root(&mut trusted)?;
        trusted.check_root_fresh()?;
        if keys_rotated(&initial_root, &trusted.root().signed) {
            // TUF 5.3.11: fast-forward attack recovery.
            self.store.remove(&RoleName::timestamp())?;
            self.store.remove(&RoleName::snapshot())?;
        }
        self.update_timestamp(&mut trusted)?;
        self.update_snapshot(&mut trusted)?;
        self.load_targets(&mut trusted, &RoleName::targets(), &RoleName::root())?;
        self.trusted = Some(trusted);
        Ok(())
    }

    /// The clock may never go behind the highest time seen (clock rollback would revive
    /// expired metadata). Returns that highest time.
    fn check_clock(&self, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>> {
        let tolerance = chrono::Duration::from_std(self.limits.clock_tolerance)
            .unwrap_or(chrono::Duration::zero());
        match self.store.highest_time()? {
            Some(highest) if now + tolerance < highest => {
                Err(Error::ClockRollback { now, highest })
            }
            highest => Ok(highest),
        }
    }

    fn fetch(&self, role: &RoleName, version: Option<u64>, max_len: u64) -> Result<Vec<u8>> {
        self.source
            .fetch_metadata(role, version, max_len.min(self.limits.hard_max))
            .map_err(|source| Error::Fetch {
                file: metadata_file_name(role, version),
                source,
            })
    }

    /// TUF 5.3: follow the root chain N+1, N+2, … until a version is missing.
    fn update_root(&mut self, trusted: &mut TrustedSet) -> Result<()> {
        let root = RoleName::root();
        let start = trusted.root().signed.version.get();
        let after = version_after(start, self.limits.max_root_rotations)?;
        for next in start + 1..after {
            let bytes = match self.fetch(&root, Some(next), self.limits.root_max) {
                Ok(bytes) => bytes,
                Err(Error::Fetch { source, .. }) if source.is_not_found() => return Ok(()),
                Err(e) => return Err(e),
            };
            trusted.update_root(&bytes)?;
            // 5.3.8: persist each new root as soon as it is trusted.
            self.store.persist(&root, next, &bytes)?;
        }
        // The chain did not end within the limit: is there yet another root?
        match self.fetch(&root, Some(after), self.limits.root_max) {
            Ok(_) => Err(Error::TooManyRootRotations {
                limit: self.limits.max_root_rotations,
            }),
            Err(Error::Fetch { source, .. }) if source.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// TUF 5.4: the local timestamp (even expired) guards against rollback of the remote one.
    fn update_timestamp(&mut self, trusted: &mut TrustedSet) -> Result<()> {
        let role = RoleName::timestamp();
        if let Some(local) = self.store.load(&role)? {
            // An invalid local timestamp is simply not trusted.
            let _ = trusted.update_timestamp(&local);
        }
        let bytes = self.fetch(&role, None, self.limits.timestamp_max)?;
        match trusted.update_timestamp(&bytes)? {
            TimestampUpdate::Unchanged => Ok(()),
            TimestampUpdate::Updated => {
                let version = trusted.timestamp().map_or(0, |t| t.signed.version.get());
                Ok(self.store.persist(&role, version, &bytes)?)
            }
        }
    }

    /// TUF 5.5: reuse the local snapshot if it is the one the timestamp pins, else download.
    fn update_snapshot(&mut self, trusted: &mut TrustedSet) -> Result<()> {
        let role = RoleName::snapshot();
        if let Some(local) = self.store.load(&role)? {
            if trusted.update_snapshot(&local, true).is_ok() {
                return Ok(());
            }
        }
        let (version, length) = {
            let ts = trusted
                .timestamp()
                .ok_or_else(|| Error::Usage("no trusted timestamp".into()))?;
            let meta = ts.signed.snapshot_meta();
            (meta.version.get(), meta.length)
        };
        let consistent = trusted.root().signed.consistent_snapshot;
        let bytes = self.fetch(
            &role,
            consistent.then_some(version),
            length.unwrap_or(self.limits.snapshot_max),
        )?;
        trusted.update_snapshot(&bytes, false)?;
        Ok(self.store.persist(&role, version, &bytes)?)
    }

    /// TUF 5.6: load a targets role (local copy if still the pinned one, else download).
    fn load_targets(
        &mut self,
        trusted: &mut TrustedSet,
        role: &RoleName,
        delegator: &RoleName,
    ) -> Result<()> {
        if let Some(loaded) = trusted.targets(role) {
            if trusted.verified_by(role, delegator) {
                return Ok(());
            }
            // Reached through another delegator (a diamond): its keys must vouch too.
            let bytes = loaded.bytes.clone();
            return trusted.update_targets(role, delegator, &bytes);
        }
        if let Some(local) = self.store.load(role)? {
            if trusted.update_targets(role, delegator, &local).is_ok() {
                return Ok(());
            }
        }
        let pinned = trusted
            .snapshot()
            .and_then(|s| s.signed.meta.get(&role.meta_key()))
            .ok_or_else(|| Error::NotInSnapshot {
                role: role.to_string(),
            })?;
        let (version, length) = (pinned.version.get(), pinned.length);
        let consistent = trusted.root().signed.consistent_snapshot;
        let bytes = self.fetch(
            role,
            consistent.then_some(version),
            length.unwrap_or(self.limits.targets_max),
        )?;
        trusted.update_targets(role, delegator, &bytes)?;
        Ok(self.store.persist(role, version, &bytes)?)
    }

    /// TUF 5.6.7: preorder depth-first search of the delegation graph for `path`, honouring
    /// `terminating` and the role path patterns; delegated roles are loaded on demand.
    pub fn target_info(&mut self, path: &str) -> Result<Option<TargetInfo>> {
        let mut trusted = self
            .trusted
            .take()
            .ok_or_else(|| Error::Usage("refresh before looking up targets".into()))?;
        let result = self.walk(&mut trusted, path, &mut None);
        self.trusted = Some(trusted);
        result
    }

    /// The role whose keys sign for `path` (and its delegator): the role that lists it, else
    /// the first role of the same search that delegates it no further (DESIGN §2: keys are
    /// those of the delegated role that covers the repository), else top-level targets.
    pub fn responsible_role(&mut self, path: &str) -> Result<(RoleName, RoleName)> {
        let mut trusted = self
            .trusted
            .take()
            .ok_or_else(|| Error::Usage("refresh before looking up targets".into()))?;
        let mut leaf = None;
        let result = self.walk(&mut trusted, path, &mut leaf);
        self.trusted = Some(trusted);
        Ok(match result? {
            Some(info) => (info.role, info.delegator),
            None => leaf.unwrap_or_else(|| (RoleName::targets(), RoleName::root())),
        })
    }

    /// The search of [`Updater::target_info`]; `leaf` gets the first role visited that
    /// delegates `path` no further.
    fn walk(
        &mut self,
        trusted: &mut TrustedSet,
        path: &str,
        leaf: &mut Option<(RoleName, RoleName)>,
    ) -> Result<Option<TargetInfo>> {
        let mut stack = vec![(RoleName::targets(), RoleName::root())];
        let mut visited: HashSet<RoleName> = HashSet::new();
        while visited.len() <= self.limits.max_delegations {
            let Some((role, delegator)) = stack.pop() else {
                break;
            };
            if visited.contains(&role) {
                continue;
            }
            self.load_targets(trusted, &role, &delegator)?;
            let targets = &trusted
                .targets(&role)
                .ok_or_else(|| Error::Usage(format!("{role} was not loaded")))?
                .signed;
            if let Some(file) = targets.targets.get(path) {
                return Ok(Some(TargetInfo {
                    path: path.to_string(),
                    file: file.clone(),
                    role,
                    delegator,
                }));
            }
            let mut children = Vec::new();
            if let Some(delegations) = &targets.delegations {
                if let Some(roles) = &delegations.roles {
                    for child in roles.iter().filter(|r| r.covers(path)) {
                        children.push((child.name.clone(), role.clone()));
                        if child.terminating {
                            stack.clear();
                            break;
                        }
                    }
                } else if let Some(succinct) = &delegations.succinct_roles {
                    // Hash bins are terminating: exactly one bin is responsible.
                    let bin = RoleName::new(succinct.role_for(path)).map_err(Error::Usage)?;
                    children.push((bin, role.clone()));
                    stack.clear();
                }
            }
            if children.is_empty() && leaf.is_none() {
                *leaf = Some((role.clone(), delegator.clone()));
            }
            visited.insert(role);
            stack.extend(children.into_iter().rev());
        }
        Ok(None)
    }

    /// Fetches a target and checks its length and hashes against trusted metadata. Only
    /// verified bytes are returned.
    pub fn fetch_target(&self, info: &TargetInfo) -> Result<Vec<u8>> {
        let trusted = self
            .trusted
            .as_ref()
            .ok_or_else(|| Error::Usage("refresh before fetching targets".into()))?;
        let prefix = trusted
            .root()
            .signed
            .consistent_snapshot
            .then(|| info.file.hashes.values().next().map(String::as_str))
            .flatten();
        let bytes = self
            .source
            .fetch_target(&info.path, prefix, info.file.length)
            .map_err(|source| match source {
                FetchError::TooLarge { location, .. } => Error::TooLong {
                    file: info.path.clone(),
                    by: info.role.to_string(),
                    expected: info.file.length,
                    location,
                },
                source => Error::Fetch {
                    file: target_file_path(&info.path, prefix),
                    source,
                },
            })?;
        let by = info.role.to_string();
        check_length(&info.path, &by, info.file.length, &bytes)?;
        check_hashes(&info.path, &by, &info.file.hashes, &bytes)?;
        Ok(bytes)
    }
}

/// `version + n + 1`, the version after the last one a chain of `n` rotations may reach.
fn version_after(version: u64, n: u64) -> Result<u64> {
    version
        .checked_add(n)
        .and_then(|v| v.checked_add(1))
        .ok_or_else(|| Error::Usage(format!("root version {version} is too large to follow")))
}

/// Whether the timestamp or snapshot role's keys or threshold changed between two roots.
fn keys_rotated(before: &Root, after: &Root) -> bool {
    ["timestamp", "snapshot"]
        .iter()
        .any(|role| role_keys(before, role) != role_keys(after, role))
}

/// A role's threshold and its (key ID, public key) pairs, sorted.
fn role_keys<'a>(root: &'a Root, role: &str) -> (u64, Vec<(&'a str, Option<&'a str>)>) {
    let r = root.role(role);
    let mut keys: Vec<(&str, Option<&str>)> = r
        .keyids
        .iter()
        .map(|id| {
            (
                id.as_str(),
                root.keys.get(id).and_then(|k| k.keyval.public.as_deref()),
            )
        })
        .collect();
    keys.sort_unstable();
    (r.threshold.get(), keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::dir::DirSource;
    use crate::store::dir::DirStore;
    use crate::tuf::testing::RepoBuilder;
    use crate::verdict::ReasonCode;
    use std::cell::RefCell;

    /// A directory source that records what was asked for.
    struct Recording {
        inner: DirSource,
        log: RefCell<Vec<String>>,
    }

    impl MetadataSource for Recording {
        fn fetch_metadata(
            &self,
            role: &RoleName,
            version: Option<u64>,
            max_len: u64,
        ) -> std::result::Result<Vec<u8>, FetchError> {
            self.log
                .borrow_mut()
                .push(metadata_file_name(role, version));
            self.inner.fetch_metadata(role, version, max_len)
        }
        fn fetch_target(
            &self,
            path: &str,
            hash_prefix: Option<&str>,
            max_len: u64,
        ) -> std::result::Result<Vec<u8>, FetchError> {
            self.log
                .borrow_mut()
                .push(format!("targets/{}", target_file_path(path, hash_prefix)));
            self.inner.fetch_target(path, hash_prefix, max_len)
        }
    }

    struct Fixture {
        _tmp: tempfile::TempDir,
        repo: RepoBuilder,
        state: std::path::PathBuf,
    }

    fn fixture() -> Fixture {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut repo = RepoBuilder::new(&tmp.path().join("repo"));
        repo.add_target("debian:9.9", b"manifest bytes");
        repo.publish_all();
        let state = tmp.path().join("state");
        let mut store = DirStore::open(&state).expect("store");
        store
            .persist(&RoleName::root(), 1, &repo.initial_root())
            .expect("init");
        Fixture {
            _tmp: tmp,
            repo,
            state,
        }
    }

    fn updater(f: &Fixture) -> Updater<Recording, DirStore> {
        let source = Recording {
            inner: DirSource::new(f.repo.metadata_dir(), f.repo.targets_dir()),
            log: RefCell::new(Vec::new()),
        };
        Updater::new(
            source,
            DirStore::open(&f.state).expect("store"),
            Limits::default(),
        )
    }

    fn requests(u: &Updater<Recording, DirStore>) -> Vec<String> {
        u.source.log.borrow().clone()
    }

    fn trusted_version(f: &Fixture, role: RoleName) -> Option<u64> {
        let store = DirStore::open(&f.state).expect("store");
        let bytes = store.load(&role).expect("load")?;
        let v: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        v["signed"]["version"].as_u64()
    }

    #[test]
    fn fresh_refresh_requests_exactly_the_spec_sequence_then_reuses_local_metadata() {
        let f = fixture();
        let mut u = updater(&f);
        u.refresh(Utc::now()).expect("refresh");
        assert_eq!(
            requests(&u),
            [
                "2.root.json",
                "timestamp.json",
                "1.snapshot.json",
                "1.targets.json"
            ]
        );
        let mut u = updater(&f);
        u.refresh(Utc::now()).expect("second refresh");
        assert_eq!(requests(&u), ["2.root.json", "timestamp.json"]);
    }

    #[test]
    fn finds_and_verifies_a_target() {
        let f = fixture();
        let mut u = updater(&f);
        u.refresh(Utc::now()).expect("refresh");
        let info = u.target_info("debian:9.9").expect("lookup").expect("found");
        assert_eq!(u.fetch_target(&info).expect("fetch"), b"manifest bytes");
        assert!(u.target_info("debian:10").expect("lookup").is_none());

        // Substituted content under the same (hash-prefixed) name is rejected.
        let hash = info.file.hashes["sha256"].clone();
        let path = f.repo.targets_dir().join(format!("{hash}.debian:9.9"));
        std::fs::write(&path, b"manifest bytez").expect("tamper");
        let err = u.fetch_target(&info).expect_err("tampered");
        assert_eq!(err.reason(), ReasonCode::DigestMismatch, "{err}");
        std::fs::write(&path, b"manifest bytes, longer").expect("tamper");
        let err = u.fetch_target(&info).expect_err("too long");
        assert_eq!(err.reason(), ReasonCode::LengthMismatch, "{err}");
        assert!(
            err.to_string().contains("longer than the 14 bytes"),
            "{err}"
        );
        std::fs::write(&path, b"manifest").expect("tamper");
        let err = u.fetch_target(&info).expect_err("too short");
        assert_eq!(err.reason(), ReasonCode::LengthMismatch, "{err}");
    }

    #[test]
    fn timestamp_rollback_is_rejected_and_trusted_state_kept() {
        let mut f = fixture();
        let mut u = updater(&f);
        u.refresh(Utc::now()).expect("refresh");
        f.repo.publish_timestamp();
        let mut u = updater(&f);
        u.refresh(Utc::now()).expect("refresh v2");
        assert_eq!(trusted_version(&f, RoleName::timestamp()), Some(2));

        f.repo.serve_old_timestamp(1);
        let mut u = updater(&f);
        let err = u.refresh(Utc::now()).expect_err("rollback");
        assert_eq!(err.reason(), ReasonCode::Rollback, "{err}");
        assert_eq!(trusted_version(&f, RoleName::timestamp()), Some(2));
    }

    #[test]
    fn expired_timestamp_is_rejected_and_not_persisted() {
        let mut f = fixture();
        let mut u = updater(&f);
        u.refresh(Utc::now()).expect("refresh");
        f.repo
            .set_expires("timestamp", Utc::now() - chrono::Duration::hours(1));
        f.repo.publish_timestamp();
        let mut u = updater(&f);
        let err = u.refresh(Utc::now()).expect_err("expired");
        assert_eq!(err.reason(), ReasonCode::Expired, "{err}");
        assert_eq!(trusted_version(&f, RoleName::timestamp()), Some(1));
    }

    #[test]
    fn a_clock_behind_the_highest_time_seen_is_rejected() {
        let f = fixture();
        let now = Utc::now();
        let mut u = updater(&f);
        u.refresh(now).expect("refresh");
        let mut u = updater(&f);
        // Within the tolerance: fine (a restart under a fixed fake time, an NTP step).
        u.refresh(now - chrono::Duration::seconds(5))
            .expect("small step back");
        let mut u = updater(&f);
        let err = u
            .refresh(now - chrono::Duration::days(2))
            .expect_err("clock rollback");
        assert_eq!(err.reason(), ReasonCode::ClockRollback, "{err}");
        assert!(
            requests(&u).is_empty(),
            "nothing fetched: {:?}",
            requests(&u)
        );

        // A failed run under a clock far ahead leaves no trace that blocks later runs.
        std::fs::remove_file(f.repo.metadata_dir().join("timestamp.json")).expect("rm");
        let mut u = updater(&f);
        u.refresh(now + chrono::Duration::days(30))
            .expect_err("timestamp missing");
        std::fs::write(
            f.repo.metadata_dir().join("timestamp.json"),
            f.repo.published("timestamp", 1).expect("v1"),
        )
        .expect("restore");
        let mut u = updater(&f);
        u.refresh(now)
            .expect("the failed future run was not recorded");
    }

    #[test]
    fn an_untrusted_initial_root_fetches_nothing() {
        let f = fixture();
        let mut store = DirStore::open(&f.state).expect("store");
        let mut root: serde_json::Value =
            serde_json::from_slice(&f.repo.initial_root()).expect("json");
        root["signed"]["version"] = serde_json::json!(7);
        store
            .persist(
                &RoleName::root(),
                1,
                &serde_json::to_vec(&root).expect("ser"),
            )
            .expect("persist");
        let mut u = updater(&f);
        let err = u.refresh(Utc::now()).expect_err("bad root");
        assert_eq!(err.reason(), ReasonCode::ThresholdNotMet, "{err}");
        assert!(requests(&u).is_empty());
    }

    #[test]
    fn oversized_timestamp_is_rejected() {
        let f = fixture();
        let path = f.repo.metadata_dir().join("timestamp.json");
        let mut bytes = std::fs::read(&path).expect("read");
        bytes.extend(std::iter::repeat_n(b' ', 20_000));
        std::fs::write(&path, bytes).expect("write");
        let mut u = updater(&f);
        let err = u.refresh(Utc::now()).expect_err("oversized");
        assert_eq!(err.reason(), ReasonCode::Oversized, "{err}");
        assert_eq!(trusted_version(&f, RoleName::timestamp()), None);
    }

    #[test]
    fn malformed_remote_metadata_changes_nothing() {
        let f = fixture();
        let mut u = updater(&f);
        u.refresh(Utc::now()).expect("refresh");
        let before = std::fs::read(f.state.join("timestamp.json")).expect("read");
        for garbage in [
            &b"{"[..],
            b"[]",
            b"{\"signed\":{},\"signatures\":[]}",
            b"\x00\xff",
        ] {
            std::fs::write(f.repo.metadata_dir().join("timestamp.json"), garbage).expect("w");
            let mut u = updater(&f);
            let err = u.refresh(Utc::now()).expect_err("malformed");
            assert_eq!(err.reason(), ReasonCode::Malformed, "{err}");
            assert_eq!(
                std::fs::read(f.state.join("timestamp.json")).expect("read"),
                before
            );
        }
    }
}
