//! A working directory with a real registry and a published scope: what most end-to-end
//! tests start from.

use std::path::PathBuf;

use super::registry::TestRegistry;
use super::{pullguard, run, tempdir, RunOutput};
use pullguard_plugin::registry::oci::MEDIA_TYPE_IMAGE_MANIFEST;
use pullguard_plugin::registry::Digest;

pub struct Fixture {
    pub registry: TestRegistry,
    pub dir: tempfile::TempDir,
    pub scope: String,
}

impl Fixture {
    /// A registry with images `acme/app:1` and `acme/app:2`, both signed by the `team` role
    /// (delegated `app:*`) and published.
    pub fn published() -> Self {
        let f = Fixture::empty();
        for (tag, content) in [("1", "image one"), ("2", "image two")] {
            f.registry.push_image("acme/app", tag, content);
        }
        for k in [
            "root",
            "targets",
            "snapshot",
            "timestamp",
            "team",
            "mallory",
        ] {
            f.ok(&["key", "generate", &format!("{k}.key")]);
        }
        f.init_scope();
        f.ok(&[
            "repo",
            "delegate",
            "--role",
            "team",
            "--paths",
            "app:*",
            "app@*",
            "--key",
            "team.key.pub",
            "--signing-key",
            "targets.key",
        ]);
        f.sign_and_publish(&["1", "2"]);
        f
    }

    pub fn empty() -> Self {
        let registry = TestRegistry::start();
        let config = format!("[registries.\"{}\"]\nplain_http = true\n", registry.host);
        Fixture::on(registry, &config)
    }

    /// A working directory for `registry`, with `config` as pullguard's config file.
    pub fn on(registry: TestRegistry, config: &str) -> Self {
        let dir = tempdir();
        std::fs::write(dir.path().join("pullguard.toml"), config).expect("config");
        let scope = format!("{}/acme", registry.host);
        Fixture {
            registry,
            dir,
            scope,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn cmd(&self, args: &[&str]) -> std::process::Command {
        let mut c = pullguard();
        c.current_dir(self.dir.path())
            .env("PULLGUARD_CONFIG", self.path("pullguard.toml"))
            .env("DOCKER_CONFIG", self.path("docker"))
            .args(args);
        c
    }

    /// `repo init` of the scope with the key files `root.key`, `targets.key`,
    /// `snapshot.key` and `timestamp.key`.
    pub fn init_scope(&self) {
        self.ok(&self.init_args(&[]));
    }

    /// The arguments of that `repo init`, and `extra`.
    pub fn init_args<'a>(&'a self, extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec![
            "repo",
            "init",
            "--scope",
            &self.scope,
            "--root-key",
            "root.key",
            "--targets-key",
            "targets.key",
            "--snapshot-key",
            "snapshot.key",
            "--timestamp-key",
            "timestamp.key",
        ];
        args.extend(extra);
        args
    }

    pub fn pg(&self, args: &[&str]) -> RunOutput {
        run(self.cmd(args))
    }

    /// `pullguard ARGS` under `faketime -f OFFSET`, with the same environment as [`Fixture::cmd`].
    pub fn pg_at(&self, offset: &str, args: &[&str]) -> RunOutput {
        run(super::at_time(offset, &self.cmd(args)))
    }

    /// Runs a command that must fail (exit 2: an error, not a denial) saying `says` on
    /// stderr.
    pub fn fails(&self, args: &[&str], says: &str) -> RunOutput {
        let out = self.pg(args);
        assert_eq!(out.code, Some(2), "{out}");
        assert!(
            out.stderr.contains(says),
            "expected `{says}` on stderr\n{out}"
        );
        out
    }

    /// The manifest digest `acme/app:TAG` points at now.
    pub fn app_digest(&self, tag: &str) -> Digest {
        self.registry
            .client()
            .resolve("acme/app", tag, &[MEDIA_TYPE_IMAGE_MANIFEST])
            .expect("resolve")
            .expect("tag exists")
    }

    pub fn ok(&self, args: &[&str]) -> RunOutput {
        let out = self.pg(args);
        assert_eq!(out.code, Some(0), "{out}\n{}", self.registry.log());
        out
    }

    pub fn image(&self, tag: &str) -> String {
        format!("{}/acme/app:{tag}", self.registry.host)
    }

    /// Mallory's own repository for the same scope in `dir`, keyed by `mallory.key` (root
    /// and targets) and a new `mallory-online.key` (snapshot and timestamp).
    pub fn mallory_repo(&self, dir: &str) {
        self.ok(&["key", "generate", "mallory-online.key"]);
        self.ok(&[
            "repo",
            "init",
            "--dir",
            dir,
            "--scope",
            &self.scope,
            "--root-key",
            "mallory.key",
            "--targets-key",
            "mallory.key",
            "--snapshot-key",
            "mallory-online.key",
            "--timestamp-key",
            "mallory-online.key",
        ]);
    }

    pub fn sign_and_publish(&self, tags: &[&str]) {
        self.sign_and_publish_with("team.key", tags);
    }

    /// Signs all `tags` with one `pullguard sign`, then snapshot, timestamp and publish.
    pub fn sign_and_publish_with(&self, key: &str, tags: &[&str]) {
        let images: Vec<String> = tags.iter().map(|t| self.image(t)).collect();
        let mut args = vec!["sign"];
        args.extend(images.iter().map(String::as_str));
        args.extend(["--key", key]);
        self.ok(&args);
        self.ok(&["repo", "snapshot", "--key", "snapshot.key"]);
        self.ok(&["repo", "timestamp", "--key", "timestamp.key"]);
        self.ok(&["repo", "publish"]);
    }

    /// Runs `pullguard verify` with trusted state in `state` (created from root v1).
    pub fn verify(&self, tag: &str, state: &str) -> RunOutput {
        self.pg(&self
            .verify_args(tag, state)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>())
    }

    pub fn verify_args(&self, tag: &str, state: &str) -> Vec<String> {
        vec![
            "verify".into(),
            self.image(tag),
            "--scope".into(),
            self.scope.clone(),
            "--state".into(),
            state.into(),
            "--root".into(),
            "pullguard-repo/metadata/1.root.json".into(),
        ]
    }

    pub fn admitted(&self, tag: &str, state: &str) {
        let out = self.verify(tag, state);
        assert_eq!(out.code, Some(0), "{out}");
        assert!(
            out.stdout.starts_with(&format!("ADMIT app:{tag}: ")),
            "{out}"
        );
    }

    pub fn denied(&self, tag: &str, state: &str, reason: &str) -> RunOutput {
        let out = self.verify(tag, state);
        assert_eq!(out.code, Some(1), "{out}");
        assert!(
            out.stdout
                .starts_with(&format!("DENY {reason} app:{tag}: ")),
            "expected a `{reason}` denial\n{out}"
        );
        out
    }

    /// The manifest digest currently tagged `tag` in the trust repository.
    pub fn trust_tag(&self, tag: &str) -> Digest {
        self.registry
            .client()
            .resolve("acme/trust", tag, &[MEDIA_TYPE_IMAGE_MANIFEST])
            .expect("resolve")
            .expect("tag exists")
    }

    /// Points `tag` of the trust repository at an older manifest (a replay by the registry).
    pub fn retag_trust(&self, tag: &str, manifest: &Digest) {
        let client = self.registry.client();
        let m = client
            .get_manifest(
                "acme/trust",
                &manifest.to_string(),
                &[MEDIA_TYPE_IMAGE_MANIFEST],
                1 << 20,
            )
            .expect("old manifest");
        client
            .put_manifest("acme/trust", tag, MEDIA_TYPE_IMAGE_MANIFEST, &m.bytes)
            .expect("retag");
    }
}
