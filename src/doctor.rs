//! `pullguard doctor`: checks that this node sends every image through pullguard, and says
//! what to fix. One line per check (`ok`, `FAIL`, `warn` or `skip`, what was checked, and
//! for a failure the fix); exit 1 when any check fails.

mod containerd;

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Result;
use clap::Args;
use pullguard_plugin::config::Config;

use crate::exit::Exit;

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// containerd's configuration file.
    #[arg(long, default_value = "/etc/containerd/config.toml")]
    containerd_config: PathBuf,
    /// The containerd binary, asked for its version and its merged configuration
    /// (`containerd --config FILE config dump`); found on PATH by default.
    #[arg(long, default_value = "containerd")]
    containerd: PathBuf,
    /// kubelet's configuration file (KubeletConfiguration).
    #[arg(long, default_value = "/var/lib/kubelet/config.yaml")]
    kubelet_config: PathBuf,
    /// CRI-O's socket.
    #[arg(long, default_value = "/var/run/crio/crio.sock")]
    crio_socket: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Ok,
    Warn,
    Skip,
    Fail,
}

/// The report: each line printed as it is found, and kept.
#[derive(Default)]
struct Report {
    failed: usize,
    lines: Vec<String>,
}

impl Report {
    fn line(&mut self, level: Level, check: &str, text: impl AsRef<str>) {
        let word = match level {
            Level::Ok => "ok  ",
            Level::Warn => "warn",
            Level::Skip => "skip",
            Level::Fail => {
                self.failed += 1;
                "FAIL"
            }
        };
        let line = format!("{word} {check}: {}", text.as_ref());
        println!("{line}");
        self.lines.push(line);
    }
}

pub fn doctor(args: DoctorArgs, config: &dyn Fn() -> Result<Config>) -> Result<Exit> {
    let mut r = Report::default();
    let config = match config() {
        Ok(c) => {
            r.line(
                Level::Ok,
                "config",
                format!("{} scope(s) configured", c.scopes.len()),
            );
            Some(c)
        }
        Err(e) => {
            r.line(
                Level::Fail,
                "config",
                format!(
                    "{} — fix the named key",
                    pullguard_plugin::io::error_chain(e.as_ref())
                ),
            );
            None
        }
    };
    if let Some(c) = &config {
        pullguard_checks(&mut r, c);
    }
    containerd_checks(&mut r, &args);
    runtime_front_checks(&mut r, &args, config.as_ref());
    if r.failed > 0 {
        println!(
            "{} check(s) failed: images can reach this node without pullguard's check",
            r.failed
        );
    }
    Ok(Exit::from(r.failed == 0))
}

/// The daemon, its sockets and its scopes.
fn pullguard_checks(r: &mut Report, c: &Config) {
    if c.scopes.is_empty() {
        r.line(
            Level::Warn,
            "scopes",
            format!(
                "none configured: every image gets daemon.unmatched ({:?})",
                c.daemon.unmatched
            ),
        );
    }
    for s in &c.scopes {
        let check = format!("trust root of {}", s.name);
        match std::fs::read(&s.root) {
            Ok(bytes) => match serde_json::from_slice::<serde_json::Value>(&bytes) {
                Ok(v) if v["signed"]["_type"] == "root" => {
                    r.line(Level::Ok, &check, format!("{} is a root", s.root.display()))
                }
                _ => r.line(
                    Level::Fail,
                    &check,
                    format!(
                        "{} is not TUF root metadata — pin the scope's root.json",
                        s.root.display()
                    ),
                ),
            },
            Err(e) => r.line(
                Level::Fail,
                &check,
                format!("{}: {e} — make it readable by root", s.root.display()),
            ),
        }
    }
    socket_check(r, "daemon socket", &c.daemon.socket);
    if let Some(cri) = &c.cri.socket {
        socket_check(r, "CRI proxy socket", cri);
    }
    match crate::ask::ask_status(&c.daemon.socket, None) {
        Err(e) => r.line(
            Level::Fail,
            "daemon",
            format!(
                "{} — start it: systemctl start pullguard (or pullguard serve)",
                pullguard_plugin::io::error_chain(e.as_ref())
            ),
        ),
        Ok(status) => {
            r.line(
                Level::Ok,
                "daemon",
                format!(
                    "answering on {} ({} scope(s); {} hits, {} misses)",
                    c.daemon.socket.display(),
                    status.scopes.len(),
                    status.cache_hits,
                    status.cache_misses
                ),
            );
            let now = chrono::Utc::now().timestamp();
            for s in &status.scopes {
                let check = format!("scope {}", s.name);
                if !s.last_error.is_empty() {
                    r.line(
                        Level::Fail,
                        &check,
                        format!(
                            "the last refresh failed: {} — check the registry and `pullguard refresh`",
                            s.last_error
                        ),
                    );
                } else if s.last_refresh == 0 {
                    r.line(Level::Fail, &check, "never refreshed — `pullguard refresh`");
                } else if s.timestamp_expires <= now {
                    r.line(
                        Level::Fail,
                        &check,
                        "its timestamp has expired: every image is denied — the publisher must re-sign it",
                    );
                } else {
                    r.line(
                        Level::Ok,
                        &check,
                        format!(
                            "{} mode, timestamp v{} expires in {} s",
                            s.mode,
                            s.timestamp_version,
                            s.timestamp_expires - now
                        ),
                    );
                }
            }
        }
    }
}

/// A socket the daemon serves: there, a socket, and not open to every user.
fn socket_check(r: &mut Report, check: &str, path: &Path) {
    match std::fs::symlink_metadata(path) {
        Err(e) => r.line(
            Level::Fail,
            check,
            format!("{}: {e} — is the daemon running?", path.display()),
        ),
        Ok(m) if !m.file_type().is_socket() => r.line(
            Level::Fail,
            check,
            format!("{} is not a socket", path.display()),
        ),
        Ok(m) => {
            let mode = m.permissions().mode() & 0o777;
            if mode & 0o002 != 0 {
                r.line(
                    Level::Fail,
                    check,
                    format!(
                        "{} is mode {mode:o}: any user may use it — the daemon makes it 0660; \
                         was it changed?",
                        path.display()
                    ),
                )
            } else {
                r.line(
                    Level::Ok,
                    check,
                    format!("{} (mode {mode:o})", path.display()),
                )
            }
        }
    }
}

/// containerd's merged configuration, as containerd itself reads `--containerd-config`
/// (`config dump`: defaults filled in, a version-2 file migrated).
fn containerd_config(args: &DoctorArgs) -> Result<(toml::Table, String), String> {
    let source = format!(
        "`{} --config {} config dump`",
        args.containerd.display(),
        args.containerd_config.display()
    );
    let out = Command::new(&args.containerd)
        .arg("--config")
        .arg(&args.containerd_config)
        .args(["config", "dump"])
        .output()
        .map_err(|e| format!("{source}: {e}"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "{source} failed ({}): {} — containerd would not start with this config",
            out.status,
            stderr.trim().lines().last().unwrap_or("no message")
        ));
    }
    String::from_utf8_lossy(&out.stdout)
        .parse()
        .map(|t| (t, source.clone()))
        .map_err(|e| format!("{source} printed no TOML: {e}"))
}

fn containerd_checks(r: &mut Report, args: &DoctorArgs) {
    let version = Command::new(&args.containerd).arg("--version").output();
    let Ok(version) = version else {
        r.line(
            Level::Skip,
            "containerd",
            format!("{} not found", args.containerd.display()),
        );
        return;
    };
    let text = String::from_utf8_lossy(&version.stdout);
    match containerd::version(&text) {
        Some((major, minor)) if major >= 2 => r.line(
            Level::Ok,
            "containerd version",
            format!("{major}.{minor} (has the image-verifier hook)"),
        ),
        Some((major, minor)) => r.line(
            Level::Fail,
            "containerd version",
            format!(
                "{major}.{minor}: the image-verifier hook needs containerd 2.0 or later — \
                 upgrade, or point kubelet at the CRI proxy"
            ),
        ),
        None => r.line(
            Level::Fail,
            "containerd version",
            format!("cannot read `{}`", text.trim()),
        ),
    }
    if !args.containerd_config.exists() {
        r.line(
            Level::Warn,
            "containerd config",
            format!(
                "{} does not exist: containerd runs on its defaults (checked below)",
                args.containerd_config.display()
            ),
        );
    }
    let (config, source) = match containerd_config(args) {
        Ok(c) => c,
        Err(e) => {
            r.line(Level::Fail, "containerd config", e);
            return;
        }
    };
    let b = containerd::bindir(&config);
    let check = "containerd hook";
    if b.disabled {
        r.line(
            Level::Fail,
            check,
            format!(
                "{} is in disabled_plugins: no verifier runs — remove it from disabled_plugins",
                containerd::BINDIR
            ),
        );
    } else {
        hook_check(r, check, &b);
    }
    let fallbacks = containerd::cri_fallbacks(&config);
    if fallbacks.is_empty() {
        r.line(
            Level::Ok,
            "containerd CRI pulls",
            format!("through the transfer service and the hook ({source})"),
        );
    }
    for f in fallbacks {
        r.line(
            Level::Fail,
            "containerd CRI pulls",
            format!(
                "{} is {}: CRI pulls fall back to local pull and skip the hook — change it \
                 (or point kubelet at the CRI proxy); read from {source}",
                f.key, f.why
            ),
        );
    }
}

/// The bindir holds an executable hook that is among the verifiers containerd runs.
fn hook_check(r: &mut Report, check: &str, b: &containerd::Bindir) {
    let dir = Path::new(&b.bin_dir);
    let mut entries: Vec<String> = match std::fs::read_dir(dir) {
        Ok(list) => list
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(e) => {
            r.line(
                Level::Fail,
                check,
                format!(
                    "bin_dir {}: {e}: containerd admits every image — install the hook there \
                     (pullguard-hook)",
                    dir.display()
                ),
            );
            return;
        }
    };
    entries.sort();
    let Some(at) = entries.iter().position(|e| e == "pullguard-hook") else {
        r.line(
            Level::Fail,
            check,
            format!(
                "bin_dir {} has no pullguard-hook — install it there",
                dir.display()
            ),
        );
        return;
    };
    let hook = dir.join("pullguard-hook");
    let executable = std::fs::metadata(&hook).is_ok_and(|m| m.permissions().mode() & 0o111 != 0);
    if !executable {
        r.line(
            Level::Fail,
            check,
            format!(
                "{} is not executable (or a dangling link): containerd refuses every pull",
                hook.display()
            ),
        );
    } else if b.max_verifiers >= 0 && at as i64 >= b.max_verifiers {
        r.line(
            Level::Fail,
            check,
            format!(
                "{} is entry {} of {} in name order, past max_verifiers = {}: containerd skips it",
                hook.display(),
                at + 1,
                entries.len(),
                b.max_verifiers
            ),
        );
    } else {
        r.line(
            Level::Ok,
            check,
            format!("{} is run for every pull", hook.display()),
        );
    }
}

/// kubelet's image endpoint, and CRI-O, which has no hook.
fn runtime_front_checks(r: &mut Report, args: &DoctorArgs, config: Option<&Config>) {
    let proxy = config.and_then(|c| c.cri.socket.clone());
    let upstream = config.map(|c| c.cri.upstream.clone());
    match std::fs::read_to_string(&args.kubelet_config) {
        Err(_) => r.line(
            Level::Skip,
            "kubelet",
            format!("no kubelet config at {}", args.kubelet_config.display()),
        ),
        Ok(text) => {
            let endpoint = text.lines().find_map(|l| {
                l.trim()
                    .strip_prefix("imageServiceEndpoint:")
                    .map(|v| v.trim().trim_matches('"').trim_matches('\'').to_string())
            });
            let wanted = proxy.as_ref().map(|p| format!("unix://{}", p.display()));
            match (endpoint, wanted) {
                (Some(e), Some(w)) if e == w => {
                    r.line(Level::Ok, "kubelet", format!("imageServiceEndpoint is {e}"))
                }
                (e, Some(w)) => r.line(
                    Level::Fail,
                    "kubelet",
                    format!(
                        "imageServiceEndpoint is {} in {}: kubelet pulls go around the CRI \
                         proxy — set it to {w}",
                        e.as_deref().unwrap_or("unset"),
                        args.kubelet_config.display()
                    ),
                ),
                (Some(e), None) => r.line(
                    Level::Warn,
                    "kubelet",
                    format!("imageServiceEndpoint is {e}, but [cri] socket is not configured"),
                ),
                (None, None) => r.line(
                    Level::Ok,
                    "kubelet",
                    "pulls go to the runtime (no CRI proxy configured): the containerd hook must check them",
                ),
            }
        }
    }
    if !args.crio_socket.exists() {
        r.line(
            Level::Skip,
            "CRI-O",
            format!("no CRI-O socket at {}", args.crio_socket.display()),
        );
    } else if proxy.is_some() && upstream.as_deref() == Some(args.crio_socket.as_path()) {
        r.line(
            Level::Ok,
            "CRI-O",
            "behind the CRI proxy ([cri] upstream is CRI-O's socket)",
        );
    } else {
        r.line(
            Level::Fail,
            "CRI-O",
            format!(
                "CRI-O at {} has no verifier hook — set [cri] socket and upstream = \"{}\", and \
                 kubelet's imageServiceEndpoint to the proxy",
                args.crio_socket.display(),
                args.crio_socket.display()
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(dir: &Path) -> DoctorArgs {
        DoctorArgs {
            containerd_config: dir.join("config.toml"),
            containerd: dir.join("no-containerd"),
            kubelet_config: dir.join("kubelet.yaml"),
            crio_socket: dir.join("crio.sock"),
        }
    }

    fn with_proxy(upstream: &Path) -> Config {
        let mut c = Config::default();
        c.cri.socket = Some(PathBuf::from("/run/pullguard/cri.sock"));
        c.cri.upstream = upstream.to_path_buf();
        c
    }

    fn front(a: &DoctorArgs, c: Option<&Config>) -> (usize, Vec<String>) {
        let mut r = Report::default();
        runtime_front_checks(&mut r, a, c);
        (r.failed, r.lines)
    }

    #[test]
    fn kubelet_must_point_at_the_proxy_when_there_is_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = args(dir.path());
        let c = with_proxy(Path::new("/run/containerd/containerd.sock"));
        let (failed, lines) = front(&a, Some(&c));
        assert_eq!(failed, 0, "{lines:?}");
        assert!(
            lines[0].starts_with("skip kubelet: no kubelet config"),
            "{lines:?}"
        );
        assert!(lines[1].starts_with("skip CRI-O"), "{lines:?}");

        std::fs::write(&a.kubelet_config, "kind: KubeletConfiguration\n").expect("write");
        let (failed, lines) = front(&a, Some(&c));
        assert_eq!(failed, 1);
        assert!(
            lines[0].contains("imageServiceEndpoint is unset")
                && lines[0].contains("set it to unix:///run/pullguard/cri.sock"),
            "{lines:?}"
        );
        std::fs::write(
            &a.kubelet_config,
            "kind: KubeletConfiguration\nimageServiceEndpoint: \"unix:///run/pullguard/cri.sock\"\n",
        )
        .expect("write");
        let (failed, lines) = front(&a, Some(&c));
        assert_eq!(failed, 0, "{lines:?}");
        assert!(lines[0]
            .starts_with("ok   kubelet: imageServiceEndpoint is unix:///run/pullguard/cri.sock"));
    }

    #[test]
    fn cri_o_must_be_behind_the_proxy() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = args(dir.path());
        std::fs::write(&a.crio_socket, "").expect("a stand-in for the socket");
        let (failed, lines) = front(&a, Some(&Config::default()));
        assert_eq!(failed, 1);
        assert!(lines[1].starts_with("FAIL CRI-O") && lines[1].contains("no verifier hook"));
        let (failed, lines) = front(&a, Some(&with_proxy(&a.crio_socket)));
        assert_eq!(failed, 0, "{lines:?}");
        assert!(lines[1].starts_with("ok   CRI-O: behind the CRI proxy"));
    }
}
