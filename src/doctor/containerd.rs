//! What containerd's configuration means for pullguard, read the way containerd reads it:
//! whether the bindir verifier runs the hook, and whether CRI pulls go through the transfer
//! service (and so the hook) or fall back to containerd's local pull, which skips it.
//!
//! The input is the merged configuration (`containerd --config FILE config dump`, in which
//! a version-2 file is already migrated and defaults are filled in).

use toml::{Table, Value};

/// The CRI images plugin's table in a version-3 configuration.
pub const CRI_IMAGES: &str = "io.containerd.cri.v1.images";
/// The bindir image verifier's table.
pub const BINDIR: &str = "io.containerd.image-verifier.v1.bindir";
/// containerd's defaults for the bindir verifier.
pub const DEFAULT_BIN_DIR: &str = "/opt/containerd/image-verifier/bin";
const DEFAULT_MAX_VERIFIERS: i64 = 10;

/// One setting that makes CRI pull past the hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fallback {
    /// The full key, as an operator finds it in the file.
    pub key: String,
    pub why: &'static str,
}

fn plugin<'a>(config: &'a Table, id: &str) -> Option<&'a Table> {
    config.get("plugins")?.as_table()?.get(id)?.as_table()
}

fn non_empty_table(t: Option<&Value>) -> bool {
    t.and_then(Value::as_table).is_some_and(|t| !t.is_empty())
}

/// Every setting that makes containerd's CRI plugin use its local pull path, so that CRI
/// (kubelet) pulls skip the verifier hook: `use_local_image_pull`, or, silently (one
/// warning in containerd's log, naming only the first), `disable_snapshot_annotations =
/// false`, `discard_unpacked_layers = true`, registry `mirrors`, `configs` or `auths`,
/// `max_concurrent_downloads` other than 3, `image_pull_with_sync_fs = true`.
pub fn cri_fallbacks(config: &Table) -> Vec<Fallback> {
    let Some(images) = plugin(config, CRI_IMAGES) else {
        return Vec::new();
    };
    let key = |k: &str| format!("plugins.\"{CRI_IMAGES}\".{k}");
    let flag = |k: &str| images.get(k).and_then(Value::as_bool);
    let mut found = Vec::new();
    let mut push = |k: &str, why: &'static str| found.push(Fallback { key: key(k), why });
    if flag("use_local_image_pull") == Some(true) {
        push("use_local_image_pull", "set to true");
    }
    if flag("disable_snapshot_annotations") == Some(false) {
        push(
            "disable_snapshot_annotations",
            "false (snapshot annotations belong to the snapshotter plugin with the transfer service)",
        );
    }
    if flag("discard_unpacked_layers") == Some(true) {
        push(
            "discard_unpacked_layers",
            "true (not supported by the transfer service)",
        );
    }
    let registry = images.get("registry").and_then(Value::as_table);
    for (k, why) in [
        ("mirrors", "set (use config_path and hosts.toml instead)"),
        ("configs", "set (use config_path and hosts.toml instead)"),
        ("auths", "set (use config_path and hosts.toml instead)"),
    ] {
        if non_empty_table(registry.and_then(|r| r.get(k))) {
            push(&format!("registry.{k}"), why);
        }
    }
    if let Some(n) = images
        .get("max_concurrent_downloads")
        .and_then(Value::as_integer)
    {
        if n != 3 {
            push(
                "max_concurrent_downloads",
                "other than 3 (set it in plugins.\"io.containerd.transfer.v1.local\" instead)",
            );
        }
    }
    if flag("image_pull_with_sync_fs") == Some(true) {
        push(
            "image_pull_with_sync_fs",
            "true (not supported by the transfer service)",
        );
    }
    found
}

/// How the bindir verifier is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bindir {
    /// Listed in `disabled_plugins`: no verifier runs at all.
    pub disabled: bool,
    pub bin_dir: String,
    /// Negative: no limit.
    pub max_verifiers: i64,
}

pub fn bindir(config: &Table) -> Bindir {
    let disabled = config
        .get("disabled_plugins")
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|p| p.as_str() == Some(BINDIR)));
    let t = plugin(config, BINDIR);
    Bindir {
        disabled,
        bin_dir: t
            .and_then(|t| t.get("bin_dir"))
            .and_then(Value::as_str)
            .unwrap_or(DEFAULT_BIN_DIR)
            .to_string(),
        max_verifiers: t
            .and_then(|t| t.get("max_verifiers"))
            .and_then(Value::as_integer)
            .unwrap_or(DEFAULT_MAX_VERIFIERS),
    }
}

/// The `major.minor` of `containerd --version`'s output
/// (`containerd github.com/containerd/containerd/v2 2.1.9+unknown <commit>`, or `v1.6.20`).
pub fn version(output: &str) -> Option<(u64, u64)> {
    let v = output.split_whitespace().nth(2)?.trim_start_matches('v');
    let mut parts = v.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Table {
        text.parse().expect("toml")
    }

    #[test]
    fn the_default_config_keeps_cri_on_the_transfer_service() {
        let c = parse(
            r#"version = 3
[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  disable_snapshot_annotations = true
  discard_unpacked_layers = false
  max_concurrent_downloads = 3
  image_pull_with_sync_fs = false
  use_local_image_pull = false
  [plugins."io.containerd.cri.v1.images".registry]
    config_path = "/etc/containerd/certs.d"
"#,
        );
        assert_eq!(cri_fallbacks(&c), vec![]);
        assert_eq!(cri_fallbacks(&Table::new()), vec![]);
    }

    #[test]
    fn each_fallback_setting_is_named() {
        let cases = [
            ("use_local_image_pull = true", "use_local_image_pull"),
            ("disable_snapshot_annotations = false", "disable_snapshot_annotations"),
            ("discard_unpacked_layers = true", "discard_unpacked_layers"),
            ("max_concurrent_downloads = 5", "max_concurrent_downloads"),
            ("image_pull_with_sync_fs = true", "image_pull_with_sync_fs"),
            (
                "[plugins.\"io.containerd.cri.v1.images\".registry.mirrors.\"127.0.0.1:5000\"]\nendpoint = [\"http://127.0.0.1:5000\"]",
                "registry.mirrors",
            ),
            (
                "[plugins.\"io.containerd.cri.v1.images\".registry.configs.\"127.0.0.1:5000\".auth]\nusername = \"u\"",
                "registry.configs",
            ),
            (
                "[plugins.\"io.containerd.cri.v1.images\".registry.auths.\"https://127.0.0.1:5000\"]\nauth = \"x\"",
                "registry.auths",
            ),
        ];
        for (setting, key) in cases {
            let c = parse(&format!(
                "[plugins.\"io.containerd.cri.v1.images\"]\n{setting}\n"
            ));
            let found = cri_fallbacks(&c);
            assert_eq!(found.len(), 1, "{setting}: {found:?}");
            assert_eq!(
                found[0].key,
                format!("plugins.\"io.containerd.cri.v1.images\".{key}")
            );
        }
        // Empty registry tables are what `config dump` prints: not a fallback.
        let c = parse(
            "[plugins.\"io.containerd.cri.v1.images\".registry.mirrors]\n[plugins.\"io.containerd.cri.v1.images\".registry.configs]\n",
        );
        assert_eq!(cri_fallbacks(&c), vec![]);
        // All of them are named, not only the first (containerd logs one).
        let c = parse(
            "[plugins.\"io.containerd.cri.v1.images\"]\nmax_concurrent_downloads = 1\nuse_local_image_pull = true\n",
        );
        assert_eq!(cri_fallbacks(&c).len(), 2);
    }

    #[test]
    fn the_bindir_verifier_has_containerds_defaults() {
        assert_eq!(
            bindir(&Table::new()),
            Bindir {
                disabled: false,
                bin_dir: DEFAULT_BIN_DIR.into(),
                max_verifiers: 10
            }
        );
        let c = parse(
            "disabled_plugins = [\"io.containerd.image-verifier.v1.bindir\"]\n[plugins.\"io.containerd.image-verifier.v1.bindir\"]\nbin_dir = \"/x\"\nmax_verifiers = -1\n",
        );
        assert_eq!(
            bindir(&c),
            Bindir {
                disabled: true,
                bin_dir: "/x".into(),
                max_verifiers: -1
            }
        );
    }

    #[test]
    fn versions_are_read_from_either_form() {
        assert_eq!(
            version("containerd github.com/containerd/containerd/v2 2.1.9+unknown \n"),
            Some((2, 1))
        );
        assert_eq!(
            version("containerd github.com/containerd/containerd v1.6.20 2806fc1"),
            Some((1, 6))
        );
        assert_eq!(version("garbage"), None);
        assert_eq!(version(""), None);
    }
}
