//! Key rotation (TUF 5.3.4–5.3.5 for root): replacing the keys of root, of a top-level role
//! or of a delegated role, with online keys kept apart from image-signing keys.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::bins::rekey_bins;
use super::{
    check_key_separation, expires_after, expiry_string, online_keyids, parse_duration,
    prune_unused_keys, refuse_online_keys, RepoError, Result, RoleKeys, Spec, Workspace, TOP_LEVEL,
};
use crate::tuf::names::RoleName;
use crate::tuf::signing::{key_id, sign_document, SigningKey};

impl Workspace {
    /// Replaces the keys of `role`. Root: the new root is signed by a threshold of the old
    /// root keys (`authorizers`) and of the new ones. Other top-level roles: a new root signed
    /// by the root keys, then the role re-signed with its new keys. Delegated roles: the
    /// delegator re-signed by its keys, then the role re-signed with its new keys. New keys
    /// must be private, so the rotated role is never left unsigned.
    pub fn rotate(
        &mut self,
        role: &RoleName,
        new_keys: &[&SigningKey],
        threshold: u64,
        authorizers: &[&SigningKey],
        now: DateTime<Utc>,
    ) -> Result<()> {
        let rk = RoleKeys {
            keys: new_keys.iter().map(|k| k.public()).collect(),
            threshold,
        };
        rk.check(role.as_str())?;
        if let Some(set) = self.bin_set_of(role)? {
            return Err(RepoError::Invalid(format!(
                "{role} is one of the {} hash bins of {}, which share its keys: rotate {} instead",
                set.count(),
                set.parent,
                set.parent
            )));
        }
        let all: Vec<&SigningKey> = authorizers.iter().chain(new_keys).copied().collect();
        if TOP_LEVEL.contains(&role.as_str()) {
            let old_root = self.root_signed()?;
            // The authorising keys must be root keys (refused before anything is built).
            Spec::in_root(&old_root, "root")?.signers_among(&RoleName::root(), authorizers)?;
            let mut root = old_root.clone();
            root["roles"][role.as_str()] = json!({"keyids": rk.keyids(), "threshold": threshold});
            for k in &rk.keys {
                root["keys"][key_id(k)] = serde_json::to_value(k).unwrap_or(Value::Null);
            }
            prune_unused_keys(&mut root);
            check_key_separation(&root)?;
            if let Some(k) = self
                .delegated_keyids()?
                .intersection(&online_keyids(&root))
                .next()
            {
                return Err(RepoError::Invalid(format!(
                    "key {k} signs images for a delegated role and cannot become an online (snapshot/timestamp) key"
                )));
            }
            // TUF 5.3.5: exactly the next version, signed by a threshold of the current root
            // (the one just before it, published or not) and of itself. Roots are never
            // re-signed in place: each version is checked against its predecessor.
            let (v, _) = self
                .current(&RoleName::root())?
                .ok_or_else(|| RepoError::Invalid("the repository has no root".into()))?;
            let next = v + 1;
            let expiry = parse_duration(&self.config.expiries.root).map_err(RepoError::Invalid)?;
            root["version"] = json!(next);
            root["expires"] = json!(expiry_string(expires_after(now, expiry)?));
            // Signed by the authorizing (old) keys and the new keys; checked against the new
            // root's own keys here and against the old root below.
            let signers_for_root: Vec<&SigningKey> = if role == &RoleName::root() {
                all.clone()
            } else {
                authorizers.to_vec()
            };
            let bytes =
                sign_document(&root, &signers_for_root).map_err(|e| RepoError::Signing {
                    role: "root".into(),
                    reason: e.to_string(),
                })?;
            // TUF 5.3.4: a threshold of the old root's keys and of the new root's own.
            for (which, r) in [("the old root", &old_root), ("the new root", &root)] {
                Spec::in_root(r, "root")?
                    .check(&RoleName::root(), &bytes)
                    .map_err(|e| RepoError::Signing {
                        role: "root".into(),
                        reason: format!("not signed by a threshold of {which}'s keys: {e}"),
                    })?;
            }
            self.put(&RoleName::root(), next, &bytes)?;
            if role != &RoleName::root() {
                let (_, mut signed) = self
                    .signed_of(role)?
                    .ok_or_else(|| RepoError::Invalid(format!("{role} has no metadata")))?;
                let had_bins = rekey_bins(&mut signed, &rk)?;
                self.write_role(role, signed, new_keys, now)?;
                if had_bins {
                    self.resign_bins(role, new_keys, now)?;
                }
            }
        } else {
            refuse_online_keys(&self.root_signed()?, &rk)?;
            let (parent, mut signed) = self
                .delegator_of(role)?
                .ok_or_else(|| RepoError::Invalid(format!("no targets role delegates `{role}`")))?;
            let roles = signed["delegations"]["roles"]
                .as_array_mut()
                .ok_or_else(|| {
                    RepoError::Invalid(format!("{parent}: delegations.roles is not a list"))
                })?;
            if let Some(entry) = roles.iter_mut().find(|r| r["name"] == role.as_str()) {
                entry["keyids"] = json!(rk.keyids());
                entry["threshold"] = json!(threshold);
            }
            for k in &rk.keys {
                signed["delegations"]["keys"][key_id(k)] =
                    serde_json::to_value(k).unwrap_or(Value::Null);
            }
            self.write_role(&parent, signed, authorizers, now)?;
            if let Some((_, mut child)) = self.signed_of(role)? {
                let had_bins = rekey_bins(&mut child, &rk)?;
                self.write_role(role, child, new_keys, now)?;
                if had_bins {
                    self.resign_bins(role, new_keys, now)?;
                }
            }
        }
        self.save()
    }
}
