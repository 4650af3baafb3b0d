//! What containerd hands the hook: three flags and the descriptor on stdin, checked before the
//! daemon is asked. Anything unexpected is refused, naming what was wrong.

use std::path::PathBuf;
use std::time::Duration;

/// The only stdin media type containerd sends.
pub const DESCRIPTOR_MEDIA_TYPE: &str = "application/vnd.oci.descriptor.v1+json";

/// The largest descriptor read from stdin, as the daemon takes it.
pub const MAX_DESCRIPTOR: usize = 64 * 1024;

/// The longest image reference taken.
const MAX_NAME: usize = 4096;

/// The default deadline for an answer: below containerd's 10 s `per_verifier_timeout`, so
/// that the pull error shows the hook's reason rather than a kill.
pub const DEFAULT_DEADLINE: Duration = Duration::from_millis(8000);

/// The range a deadline from the environment must fall in.
const DEADLINE_RANGE_MS: std::ops::RangeInclusive<u64> = 100..=9500;

const USAGE: &str = "usage: pullguard-hook -name REF -digest DIGEST -stdin-media-type \
                     application/vnd.oci.descriptor.v1+json (descriptor on stdin)";

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum HookError {
    #[error("unknown flag '{flag}'; {USAGE}")]
    UnknownFlag { flag: String },
    #[error("flag -{flag} needs a value; {USAGE}")]
    MissingValue { flag: &'static str },
    #[error("flag -{flag} given twice")]
    RepeatedFlag { flag: &'static str },
    #[error("flag -{flag} is missing; {USAGE}")]
    MissingFlag { flag: &'static str },
    #[error("-digest '{digest}' is not sha256:<64 hex> or sha512:<128 hex>")]
    BadDigest { digest: String },
    #[error("-name '{name}' is not an image reference")]
    BadName { name: String },
    #[error("-stdin-media-type '{media_type}': only {DESCRIPTOR_MEDIA_TYPE} is understood")]
    MediaType { media_type: String },
    #[error("cannot read the descriptor from stdin: {reason}")]
    Stdin { reason: String },
    #[error("the descriptor on stdin is larger than {limit} bytes")]
    Oversized { limit: usize },
    #[error("the descriptor on stdin is not an OCI descriptor: {reason}")]
    Descriptor { reason: String },
    #[error("the descriptor's digest {descriptor} is not -digest {flag}")]
    DescriptorDigest { flag: String, descriptor: String },
    #[error(
        "PULLGUARD_HOOK_DEADLINE_MS '{value}' is not a whole number of milliseconds in 100..=9500"
    )]
    Deadline { value: String },
}

impl HookError {
    /// The reason code printed for this refusal (the daemon's vocabulary).
    pub fn reason_code(&self) -> &'static str {
        match self {
            HookError::Oversized { .. } => "oversized",
            HookError::Descriptor { .. } => "malformed",
            HookError::DescriptorDigest { .. } => "digest_mismatch",
            HookError::Stdin { .. } => "internal",
            _ => "invalid_request",
        }
    }
}

/// One pull to check.
#[derive(Debug, PartialEq, Eq)]
pub struct Request {
    pub name: String,
    pub digest: String,
    /// Empty until `with_descriptor`.
    pub descriptor_json: String,
}

impl Request {
    /// Parses the flags the way Go's `flag` package writes them: `-name V`, `-name=V`, and
    /// the same with two dashes. Each of the three must be given once; nothing else is taken.
    pub fn parse(args: &[String]) -> Result<Request, HookError> {
        let mut name = None;
        let mut digest = None;
        let mut media_type = None;
        let mut rest = args.iter();
        while let Some(arg) = rest.next() {
            let bare = arg
                .strip_prefix("--")
                .or_else(|| arg.strip_prefix('-'))
                .filter(|b| !b.is_empty() && !b.starts_with('-'))
                .ok_or_else(|| HookError::UnknownFlag { flag: arg.clone() })?;
            let (key, inline) = match bare.split_once('=') {
                Some((k, v)) => (k, Some(v.to_string())),
                None => (bare, None),
            };
            let (flag, slot): (&'static str, &mut Option<String>) = match key {
                "name" => ("name", &mut name),
                "digest" => ("digest", &mut digest),
                "stdin-media-type" => ("stdin-media-type", &mut media_type),
                _ => return Err(HookError::UnknownFlag { flag: arg.clone() }),
            };
            let value = match inline {
                Some(v) => v,
                None => rest
                    .next()
                    .cloned()
                    .ok_or(HookError::MissingValue { flag })?,
            };
            if slot.replace(value).is_some() {
                return Err(HookError::RepeatedFlag { flag });
            }
        }
        let name = name.ok_or(HookError::MissingFlag { flag: "name" })?;
        let digest = digest.ok_or(HookError::MissingFlag { flag: "digest" })?;
        let media_type = media_type.ok_or(HookError::MissingFlag {
            flag: "stdin-media-type",
        })?;
        if name.is_empty()
            || name.len() > MAX_NAME
            || name.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(HookError::BadName { name });
        }
        if !is_digest(&digest) {
            return Err(HookError::BadDigest { digest });
        }
        if media_type != DESCRIPTOR_MEDIA_TYPE {
            return Err(HookError::MediaType { media_type });
        }
        Ok(Request {
            name,
            digest,
            descriptor_json: String::new(),
        })
    }

    /// Takes the descriptor read from stdin (at most `MAX_DESCRIPTOR` + 1 bytes, so that a
    /// longer one is seen to be longer): a JSON object whose `digest` is the flag's and whose
    /// `size` is a whole number. The daemon checks the size against trusted metadata.
    pub fn with_descriptor(self, stdin: &[u8]) -> Result<Request, HookError> {
        if stdin.len() > MAX_DESCRIPTOR {
            return Err(HookError::Oversized {
                limit: MAX_DESCRIPTOR,
            });
        }
        let bad = |reason: String| HookError::Descriptor { reason };
        let text = std::str::from_utf8(stdin).map_err(|e| bad(format!("not UTF-8 ({e})")))?;
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| bad(format!("not JSON ({e})")))?;
        let object = value
            .as_object()
            .ok_or_else(|| bad("not a JSON object".into()))?;
        let digest = object
            .get("digest")
            .and_then(|d| d.as_str())
            .ok_or_else(|| bad("no \"digest\" string".into()))?;
        if object.get("size").and_then(|s| s.as_u64()).is_none() {
            return Err(bad("no \"size\" that is a whole number".into()));
        }
        if object.get("mediaType").and_then(|m| m.as_str()).is_none() {
            return Err(bad("no \"mediaType\" string".into()));
        }
        if digest != self.digest {
            return Err(HookError::DescriptorDigest {
                flag: self.digest,
                descriptor: digest.to_string(),
            });
        }
        Ok(Request {
            descriptor_json: text.to_string(),
            ..self
        })
    }
}

fn is_digest(d: &str) -> bool {
    let hex_of = |h: &str, n: usize| {
        h.len() == n
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    match d.split_once(':') {
        Some(("sha256", h)) => hex_of(h, 64),
        Some(("sha512", h)) => hex_of(h, 128),
        _ => false,
    }
}

/// Where to ask and how long to wait, from the environment.
#[derive(Debug, PartialEq, Eq)]
pub struct Settings {
    pub socket: PathBuf,
    pub deadline: Duration,
}

impl Settings {
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Settings, HookError> {
        let socket = var("PULLGUARD_SOCKET")
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(pullguard_proto::client::DEFAULT_SOCKET));
        let deadline = match var("PULLGUARD_HOOK_DEADLINE_MS").filter(|s| !s.is_empty()) {
            None => DEFAULT_DEADLINE,
            Some(value) => match value.parse::<u64>() {
                Ok(ms) if DEADLINE_RANGE_MS.contains(&ms) => Duration::from_millis(ms),
                _ => return Err(HookError::Deadline { value }),
            },
        };
        Ok(Settings { socket, deadline })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    fn good() -> Vec<String> {
        args(&[
            "-name",
            "127.0.0.1:5000/app:v1",
            "-digest",
            D,
            "-stdin-media-type",
            DESCRIPTOR_MEDIA_TYPE,
        ])
    }

    #[test]
    fn containerds_flags_parse_in_either_form() {
        let r = Request::parse(&good()).expect("parses");
        assert_eq!(r.name, "127.0.0.1:5000/app:v1");
        assert_eq!(r.digest, D);
        let eq = args(&[
            "--name=127.0.0.1:5000/app:v1",
            &format!("-digest={D}"),
            &format!("-stdin-media-type={DESCRIPTOR_MEDIA_TYPE}"),
        ]);
        assert_eq!(Request::parse(&eq).expect("parses"), r);
    }

    #[test]
    fn garbage_flags_are_refused_naming_the_flag() {
        let mut a = good();
        a.push("-verbose".into());
        assert_eq!(
            Request::parse(&a),
            Err(HookError::UnknownFlag {
                flag: "-verbose".into()
            })
        );
        assert!(matches!(
            Request::parse(&args(&["name", "x"])),
            Err(HookError::UnknownFlag { .. })
        ));
        assert!(matches!(
            Request::parse(&args(&["---name", "x"])),
            Err(HookError::UnknownFlag { .. })
        ));
        let mut a = good();
        a.truncate(5);
        assert_eq!(
            Request::parse(&a),
            Err(HookError::MissingValue {
                flag: "stdin-media-type"
            })
        );
        let mut a = good();
        a.extend(args(&["-name", "other:v1"]));
        assert_eq!(
            Request::parse(&a),
            Err(HookError::RepeatedFlag { flag: "name" })
        );
        assert_eq!(
            Request::parse(&good()[2..]),
            Err(HookError::MissingFlag { flag: "name" })
        );
        assert!(Request::parse(&[]).is_err());
    }

    #[test]
    fn bad_values_are_refused() {
        let with = |i: usize, v: &str| {
            let mut a = good();
            a[i] = v.to_string();
            Request::parse(&a)
        };
        assert!(matches!(with(1, ""), Err(HookError::BadName { .. })));
        assert!(matches!(with(1, "a b:v1"), Err(HookError::BadName { .. })));
        assert!(matches!(
            with(3, "sha256:abc"),
            Err(HookError::BadDigest { .. })
        ));
        assert!(matches!(
            with(3, &D.to_uppercase()),
            Err(HookError::BadDigest { .. })
        ));
        assert!(matches!(
            with(3, "md5:00"),
            Err(HookError::BadDigest { .. })
        ));
        assert!(matches!(
            with(5, "application/json"),
            Err(HookError::MediaType { .. })
        ));
    }

    #[test]
    fn the_descriptor_must_be_one_for_the_digest() {
        let r = || Request::parse(&good()).expect("parses");
        let desc = format!(
            r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{D}","size":527}}"#
        );
        let ok = r().with_descriptor(desc.as_bytes()).expect("taken");
        assert_eq!(ok.descriptor_json, desc);

        let other = desc.replace("0123", "4567");
        assert!(matches!(
            r().with_descriptor(other.as_bytes()),
            Err(HookError::DescriptorDigest { .. })
        ));
        for bad in [
            "",
            "not json",
            "[]",
            r#"{"digest":1,"size":1,"mediaType":"x"}"#,
            &desc.replace("527", "-1"),
            &desc.replace("527", "\"527\""),
            &desc.replace("mediaType", "kind"),
        ] {
            let e = r().with_descriptor(bad.as_bytes()).expect_err(bad);
            assert_eq!(e.reason_code(), "malformed", "{bad}: {e}");
        }
        assert!(matches!(
            r().with_descriptor(&[0xff, 0xfe]),
            Err(HookError::Descriptor { .. })
        ));
        let huge = vec![b' '; MAX_DESCRIPTOR + 1];
        assert_eq!(
            r().with_descriptor(&huge),
            Err(HookError::Oversized {
                limit: MAX_DESCRIPTOR
            })
        );
    }

    #[test]
    fn settings_come_from_the_environment_and_are_checked() {
        let none = Settings::from_env(|_| None).expect("defaults");
        assert_eq!(
            none.socket,
            PathBuf::from(pullguard_proto::client::DEFAULT_SOCKET)
        );
        assert_eq!(none.deadline, DEFAULT_DEADLINE);
        let set = Settings::from_env(|k| match k {
            "PULLGUARD_SOCKET" => Some("/tmp/x.sock".into()),
            "PULLGUARD_HOOK_DEADLINE_MS" => Some("250".into()),
            _ => None,
        })
        .expect("taken");
        assert_eq!(set.socket, PathBuf::from("/tmp/x.sock"));
        assert_eq!(set.deadline, Duration::from_millis(250));
        for bad in ["0", "99", "10000", "1s", "-5"] {
            assert_eq!(
                Settings::from_env(|k| (k == "PULLGUARD_HOOK_DEADLINE_MS").then(|| bad.into())),
                Err(HookError::Deadline { value: bad.into() })
            );
        }
    }
}
