//! Hash-bin delegation (TAP 15 succinct roles), for scopes with many images: a targets role
//! hands all of its paths to `2^k` bins named `<prefix>-<hex>`, the bin of a path chosen by
//! the first `k` bits of the path's SHA-256. The bins share the keys of the role that hands
//! them its paths, so `sign` takes the same keys as before; a node fetches only the bin on
//! the path of the image it checks (DESIGN §3), and `publish` pushes only the bins that
//! changed.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::{contains, empty_targets, RepoError, Result, RoleKeys, Spec, Workspace};
use crate::tuf::names::RoleName;
use crate::tuf::schema::{Key, SuccinctRoles};
use crate::tuf::signing::{key_id, SigningKey};

/// The most bins one role may hand its paths to: 2^14, each a file and a registry tag.
pub const MAX_BINS: u32 = 1 << 14;

/// One role's hash bins, as its current metadata delegates them.
#[derive(Debug, Clone)]
pub(super) struct BinSet {
    pub(super) parent: RoleName,
    pub(super) roles: SuccinctRoles,
    keys: BTreeMap<String, Key>,
}

impl BinSet {
    /// Who may sign each bin.
    pub(super) fn spec(&self) -> Spec {
        Spec {
            keys: self.keys.clone(),
            keyids: self.roles.keyids.clone(),
            threshold: self.roles.threshold.get(),
        }
    }

    pub(super) fn count(&self) -> u64 {
        1u64 << self.roles.bit_length
    }

    /// Every bin, in order.
    pub(super) fn names(&self) -> impl Iterator<Item = RoleName> + '_ {
        let width = self.roles.bit_length.div_ceil(4) as usize;
        (0..self.count()).filter_map(move |bin| {
            RoleName::new(format!("{}-{bin:0width$x}", self.roles.name_prefix)).ok()
        })
    }

    /// The bin responsible for `path`.
    pub(super) fn bin_for(&self, path: &str) -> Result<RoleName> {
        RoleName::new(self.roles.role_for(path)).map_err(RepoError::Invalid)
    }

    fn holds(&self, role: &RoleName) -> bool {
        self.roles.is_bin(role.as_str())
    }
}

/// The bins that the targets document `signed` (of role `parent`) hands its paths to.
pub(super) fn succinct_of(parent: &RoleName, signed: &Value) -> Result<Option<BinSet>> {
    let Some(entry) = signed
        .get("delegations")
        .and_then(|d| d.get("succinct_roles"))
    else {
        return Ok(None);
    };
    let bad = |e: String| RepoError::Invalid(format!("{parent}: delegations.succinct_roles: {e}"));
    let roles: SuccinctRoles =
        serde_json::from_value(entry.clone()).map_err(|e| bad(e.to_string()))?;
    if !(1..=32).contains(&roles.bit_length) {
        return Err(bad(format!(
            "bit_length {} is not 1 to 32",
            roles.bit_length
        )));
    }
    let keys: BTreeMap<String, Key> = serde_json::from_value(signed["delegations"]["keys"].clone())
        .map_err(|e| bad(e.to_string()))?;
    Ok(Some(BinSet {
        parent: parent.clone(),
        roles,
        keys,
    }))
}

/// Whether writing `bytes` as `role` may change the hash-bin delegations known so far: it
/// may when it delegates bins, or delegated some before.
pub(super) fn may_change_bin_sets(
    known: Option<&Vec<BinSet>>,
    role: &RoleName,
    bytes: &[u8],
) -> bool {
    known.is_some_and(|sets| {
        contains(bytes, b"\"succinct_roles\"") || sets.iter().any(|s| &s.parent == role)
    })
}

/// Refuses a bin count that [`Workspace::add_bins`] would refuse (before anything is written).
pub fn check_bin_count(count: u32) -> Result<()> {
    bit_length(count).map(|_| ())
}

/// `count` bins as a TAP 15 `bit_length`.
fn bit_length(count: u32) -> Result<u32> {
    if !(2..=MAX_BINS).contains(&count) || !count.is_power_of_two() {
        return Err(RepoError::Invalid(format!(
            "a bin count must be a power of two from 2 to {MAX_BINS}, not {count}"
        )));
    }
    Ok(count.trailing_zeros())
}

/// The bins' name prefix: `bin` for the top-level targets role, else `<role>-bin`.
fn prefix_for(role: &RoleName) -> String {
    if role == &RoleName::targets() {
        "bin".into()
    } else {
        format!("{role}-bin")
    }
}

/// Gives the bins that `signed` delegates the keys `rk` (a rotation of the role that owns
/// them, whose keys they share). Returns whether `signed` has bins.
pub(super) fn rekey_bins(signed: &mut Value, rk: &RoleKeys) -> Result<bool> {
    let Some(entry) = signed
        .get_mut("delegations")
        .and_then(|d| d.get_mut("succinct_roles"))
    else {
        return Ok(false);
    };
    entry["keyids"] = json!(rk.keyids());
    entry["threshold"] = json!(rk.threshold);
    let mut keys = Map::new();
    for k in &rk.keys {
        keys.insert(key_id(k), serde_json::to_value(k).unwrap_or(Value::Null));
    }
    signed["delegations"]["keys"] = Value::Object(keys);
    Ok(true)
}

impl Workspace {
    /// Every hash-bin delegation in the working copy (read once, then kept until a write
    /// may change it).
    pub(super) fn bin_sets(&self) -> Result<&[BinSet]> {
        if let Some(sets) = self.bin_sets.get() {
            return Ok(sets);
        }
        let mut sets = Vec::new();
        for role in self.targets_roles()? {
            if !self.mentions(&role, "\"succinct_roles\"")? {
                continue;
            }
            if let Some((_, signed)) = self.signed_of(&role)? {
                sets.extend(succinct_of(&role, &signed)?);
            }
        }
        Ok(self.bin_sets.get_or_init(|| sets))
    }

    /// The bin set that `role` is a bin of.
    pub(super) fn bin_set_of(&self, role: &RoleName) -> Result<Option<&BinSet>> {
        Ok(self.bin_sets()?.iter().find(|s| s.holds(role)))
    }

    /// The bin set that `role` hands its paths to.
    pub(super) fn bins_of(&self, role: &RoleName) -> Result<Option<&BinSet>> {
        Ok(self.bin_sets()?.iter().find(|s| &s.parent == role))
    }

    /// How many hash bins `role` hands its paths to (0: none).
    #[cfg(test)]
    fn bin_count(&self, role: &RoleName) -> Result<u64> {
        Ok(self.bins_of(role)?.map_or(0, BinSet::count))
    }

    /// Hands every path of `role` to `count` hash bins that share its keys: the role's
    /// targets move into their bins, and the role keeps only the delegation. `signers`
    /// must meet the role's threshold. The bins are written before the role that delegates
    /// them, so an interrupted run changes nothing a client would see, and running it
    /// again finishes it.
    pub fn add_bins(
        &mut self,
        role: &RoleName,
        count: u32,
        signers: &[&SigningKey],
        now: DateTime<Utc>,
    ) -> Result<()> {
        let bit_length = bit_length(count)?;
        let (_, mut signed) = self.signed_of(role)?.ok_or_else(|| {
            RepoError::Invalid(format!(
                "{role} has no metadata yet: delegate it with its private keys first"
            ))
        })?;
        let spec = self.spec_of(role)?;
        spec.signers_among(role, signers)?;
        let prefix = prefix_for(role);
        if let Some(set) = self.bins_of(role)? {
            if set.roles.bit_length == bit_length && set.roles.name_prefix == prefix {
                return Ok(());
            }
            return Err(RepoError::Invalid(format!(
                "{role} already hands its paths to {} hash bins",
                set.count()
            )));
        }
        if signed["delegations"]["roles"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
        {
            return Err(RepoError::Invalid(format!(
                "{role} delegates to named roles: a role hands its paths either to named roles or to hash bins (TAP 15), not both"
            )));
        }
        let keys: BTreeMap<String, Key> = spec
            .keys
            .iter()
            .filter(|(id, _)| spec.keyids.contains(id))
            .map(|(id, k)| (id.clone(), k.clone()))
            .collect();
        let delegations = json!({"keys": keys, "succinct_roles": {
            "keyids": spec.keyids, "threshold": spec.threshold,
            "bit_length": bit_length, "name_prefix": prefix}});
        let set = succinct_of(role, &json!({ "delegations": delegations }))?
            .ok_or_else(|| RepoError::Invalid(format!("{role}: no bins")))?;
        // A bin may not take the name of a role some other role delegates.
        let taken = self.delegated_names()?;
        let mut bins: BTreeMap<RoleName, Value> = BTreeMap::new();
        for bin in set.names() {
            super::check_role_name(bin.as_str())?;
            if taken.contains(&bin) {
                return Err(RepoError::Invalid(format!(
                    "the bin name {bin} is taken by a delegated role"
                )));
            }
            bins.insert(bin, empty_targets());
        }
        if let Some(targets) = signed["targets"].as_object() {
            for (path, target) in targets {
                if let Some(doc) = bins.get_mut(&set.bin_for(path)?) {
                    doc["targets"][path] = target.clone();
                }
            }
        }
        let bin_spec = set.spec();
        for (bin, doc) in bins {
            self.write_role_as(&bin, doc, &bin_spec, signers, now)?;
        }
        signed["targets"] = json!({});
        signed["delegations"] = delegations;
        self.write_role(role, signed, signers, now)?;
        self.save()
    }

    /// Re-signs every bin of `role` (after a rotation of the keys they share).
    pub(super) fn resign_bins(
        &mut self,
        role: &RoleName,
        signers: &[&SigningKey],
        now: DateTime<Utc>,
    ) -> Result<()> {
        let Some(set) = self.bins_of(role)?.cloned() else {
            return Ok(());
        };
        let spec = set.spec();
        for bin in set.names() {
            let doc = match self.signed_of(&bin)? {
                Some((_, doc)) => doc,
                None => empty_targets(),
            };
            self.write_role_as(&bin, doc, &spec, signers, now)?;
        }
        Ok(())
    }

    /// The names of every role some targets role delegates to by name.
    fn delegated_names(&self) -> Result<BTreeSet<RoleName>> {
        let mut names = BTreeSet::new();
        for role in self.targets_roles()? {
            if self.bins_of(&role)?.is_none() {
                names.extend(self.delegated_by(&role)?);
            }
        }
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{init, keys, publish_all, unpublished_names};
    use super::super::{Retention, Workspace};
    use super::*;

    /// A new snapshot and timestamp, and a publishable working copy.
    fn seal(ws: &mut Workspace, signers: &[&SigningKey]) {
        ws.snapshot(signers, Utc::now()).expect("snapshot");
        ws.timestamp(signers, Utc::now()).expect("timestamp");
        ws.check_consistent().expect("consistent");
    }

    fn list(ws: &mut Workspace, signers: &[&SigningKey], path: &str) -> Vec<super::super::Pruned> {
        let role = ws.responsible_role(path).expect("role");
        let entry = super::super::NewTarget {
            role,
            path: path.into(),
            length: 10,
            sha256_hex: "ab".repeat(32),
            media_type: "m".into(),
            signature_version: 1,
        };
        ws.set_targets(&[entry], signers, Utc::now()).expect("set")
    }

    fn targets_of(ws: &Workspace, role: &RoleName) -> Vec<String> {
        let (_, signed) = ws.signed_of(role).expect("read").expect("exists");
        signed["targets"]
            .as_object()
            .expect("targets")
            .keys()
            .cloned()
            .collect()
    }

    #[test]
    fn bins_take_the_paths_and_the_targets_of_their_role() {
        let dir = tempfile::tempdir().expect("tempdir");
        let k = keys();
        let signers: Vec<&SigningKey> = k.iter().collect();
        let mut ws = init(dir.path(), &k, &signers, Retention::default()).expect("init");
        list(&mut ws, &signers, "app:1");
        list(&mut ws, &signers, "app:2");
        ws.add_bins(&RoleName::targets(), 16, &signers, Utc::now())
            .expect("bins");
        assert_eq!(ws.bin_count(&RoleName::targets()).expect("count"), 16);
        assert!(
            targets_of(&ws, &RoleName::targets()).is_empty(),
            "moved out"
        );
        let set = ws
            .bins_of(&RoleName::targets())
            .expect("sets")
            .expect("set")
            .clone();
        // python-tuf: SuccinctRoles(..., 4, "bin").get_role_for_target("app:1")
        for path in ["app:1", "app:2"] {
            let bin = set.bin_for(path).expect("bin");
            assert_eq!(ws.responsible_role(path).expect("role"), bin);
            assert!(
                targets_of(&ws, &bin).contains(&path.to_string()),
                "{path} in {bin}"
            );
        }
        assert_eq!(set.names().count(), 16);
        assert_eq!(
            set.names().next().map(|n| n.to_string()).as_deref(),
            Some("bin-0")
        );
        // Each bin is signed by the targets key, and the repository is publishable.
        seal(&mut ws, &signers);
        assert_eq!(ws.unpublished("test").expect("list").len(), 1 + 1 + 16 + 2);
        // Running it again changes nothing; another count is refused.
        ws.add_bins(&RoleName::targets(), 16, &signers, Utc::now())
            .expect("again");
        assert!(matches!(
            ws.add_bins(&RoleName::targets(), 32, &signers, Utc::now()),
            Err(RepoError::Invalid(_))
        ));

        // After a publish, one more image changes its bin, the snapshot and the timestamp.
        publish_all(&mut ws);
        list(&mut ws, &signers, "app:3");
        seal(&mut ws, &signers);
        let bin = set.bin_for("app:3").expect("bin");
        assert_eq!(
            unpublished_names(&ws),
            [
                format!("2.{bin}.json"),
                "2.snapshot.json".into(),
                "timestamp.json".into()
            ]
        );
        // A bin cannot be delegated to or rotated on its own, nor can targets delegate more.
        let child = RoleKeys {
            keys: vec![SigningKey::ed25519_from_seed([9; 32]).public()],
            threshold: 1,
        };
        let err = ws
            .delegate(
                &RoleName::targets(),
                "team",
                child,
                vec!["team/*".into()],
                false,
                &signers,
                &[],
                Utc::now(),
            )
            .expect_err("targets has bins");
        assert!(err.to_string().contains("TAP 15"), "{err}");
        let new_key = SigningKey::ed25519_from_seed([8; 32]);
        let err = ws
            .rotate(&bin, &[&new_key], 1, &signers, Utc::now())
            .expect_err("a bin");
        assert!(err.to_string().contains("rotate targets instead"), "{err}");
    }

    #[test]
    fn a_delegated_role_can_have_bins_and_rotation_resigns_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let k = keys();
        let signers: Vec<&SigningKey> = k.iter().collect();
        let mut ws = init(dir.path(), &k, &signers, Retention::default()).expect("init");
        let team = SigningKey::ed25519_from_seed([7; 32]);
        ws.delegate(
            &RoleName::targets(),
            "team",
            RoleKeys {
                keys: vec![team.public()],
                threshold: 1,
            },
            vec!["team/*".into()],
            true,
            &signers,
            &[&team],
            Utc::now(),
        )
        .expect("delegate");
        let role = RoleName::new("team").expect("name");
        // The team's bins take the team's keys, not the targets key.
        assert!(matches!(
            ws.add_bins(&role, 4, &signers, Utc::now()),
            Err(RepoError::Signing { .. })
        ));
        ws.add_bins(&role, 4, &[&team], Utc::now()).expect("bins");
        let bin = ws.responsible_role("team/api:1").expect("role");
        assert!(bin.as_str().starts_with("team-bin-"), "{bin}");
        assert_eq!(
            ws.responsible_role("other:1").expect("role"),
            RoleName::targets()
        );
        list(&mut ws, &[&team], "team/api:1");
        assert!(targets_of(&ws, &bin).contains(&"team/api:1".to_string()));
        seal(&mut ws, &signers);
        publish_all(&mut ws);

        // Rotating the team's keys rotates its bins' keys too and re-signs every bin.
        let new_team = SigningKey::ed25519_from_seed([6; 32]);
        ws.rotate(&role, &[&new_team], 1, &signers, Utc::now())
            .expect("rotate");
        seal(&mut ws, &signers);
        let set = ws.bins_of(&role).expect("sets").expect("set").clone();
        assert_eq!(set.roles.keyids, vec![new_team.key_id()]);
        for b in set.names() {
            assert_eq!(ws.current_version(&b), Some(2), "{b} re-signed");
        }
        assert!(
            ws.check_signers(&bin, &[&team]).is_err(),
            "the old key signs no more"
        );
        ws.check_signers(&bin, &[&new_team])
            .expect("the new key signs");
    }

    #[test]
    fn retention_counts_a_repository_over_all_its_bins() {
        let dir = tempfile::tempdir().expect("tempdir");
        let k = keys();
        let signers: Vec<&SigningKey> = k.iter().collect();
        let retention = Retention {
            keep: Some(2),
            max_age: None,
        };
        let mut ws = init(dir.path(), &k, &signers, retention).expect("init");
        ws.add_bins(&RoleName::targets(), 64, &signers, Utc::now())
            .expect("bins");
        let set = ws
            .bins_of(&RoleName::targets())
            .expect("sets")
            .expect("set")
            .clone();
        let tags: Vec<String> = (1..=5).map(|i| format!("app:{i}")).collect();
        let spread: BTreeSet<RoleName> =
            tags.iter().map(|t| set.bin_for(t).expect("bin")).collect();
        assert!(spread.len() >= 3, "the tags are in several bins");
        let mut dropped = Vec::new();
        for tag in &tags {
            for p in list(&mut ws, &signers, tag) {
                assert_eq!(p.role, set.bin_for(&p.removed[0]).expect("bin").to_string());
                dropped.extend(p.removed);
            }
        }
        assert_eq!(dropped, ["app:1", "app:2", "app:3"]);
        let left: BTreeSet<String> = set
            .names()
            .flat_map(|b| ws.signed_of(&b).expect("read").map(|(_, s)| s))
            .flat_map(|s| {
                s["targets"]
                    .as_object()
                    .map(|t| t.keys().cloned().collect::<Vec<_>>())
                    .unwrap_or_default()
            })
            .collect();
        assert_eq!(left, ["app:4", "app:5"].map(String::from).into());
    }

    #[test]
    fn bad_bin_counts_are_refused_and_change_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let k = keys();
        let signers: Vec<&SigningKey> = k.iter().collect();
        let mut ws = init(dir.path(), &k, &signers, Retention::default()).expect("init");
        let before = ws.unpublished("test").expect("list");
        for count in [0, 1, 3, 100, MAX_BINS * 2] {
            let err = ws
                .add_bins(&RoleName::targets(), count, &signers, Utc::now())
                .expect_err("refused");
            assert!(err.to_string().contains("power of two"), "{err}");
        }
        assert!(
            matches!(
                ws.add_bins(&RoleName::targets(), 8, &[&k[0]], Utc::now()),
                Err(RepoError::Signing { .. })
            ),
            "the root key cannot sign targets' bins"
        );
        assert_eq!(ws.unpublished("test").expect("list"), before);
        assert_eq!(ws.bin_count(&RoleName::targets()).expect("count"), 0);
    }
}
