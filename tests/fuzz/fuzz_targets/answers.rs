//! What the registry client reads of an answer beside the document it asked for
//! (`registry::answer`): the `Link` header that pages the referrers API, `Retry-After`, a
//! refusal's error text; and the credentials of a Docker `config.json`
//! (`registry::auth::docker_config_credentials`).
//!
//! Input: a byte that picks the part, then that part's bytes: a `Link` header and a target;
//! a `Retry-After` value and a number; an error body (also read as lines: a code, a
//! message); a `config.json` (also read as lines: a registry, a user, a password). From the
//! lines the harness also builds well-formed headers, bodies and configs whose meaning it
//! knows.
//!
//! Properties: a next link is an http or https URL, and one written without a scheme, a
//! host or a backslash is on the page's origin; a link's parameters are read past quoted
//! commas and semicolons; delay-seconds and dates are the waits they say; error text is at
//! most `DETAIL_MAX_CHARS` characters and an ellipsis, with no control or bidirectional
//! formatting characters, and holds a well-formed body's code and message as written;
//! credentials written for a registry are read back as written, and a credential helper
//! named for it is an error only when no inline credentials are there.
#![no_main]

use base64::Engine as _;
use chrono::{DateTime, Duration as Span, Utc};
use libfuzzer_sys::fuzz_target;
use pullguard_plugin::registry::answer::{error_detail, next_link, retry_after, DETAIL_MAX_CHARS};
use pullguard_plugin::registry::auth::{docker_config_credentials, CredentialError, Credentials};
use pullguard_plugin::verdict::needs_escape;
use std::path::Path;
use std::time::Duration;
use url::Url;

const PAGE: &str = "http://registry.test:5000/v2/acme/app/referrers/sha256:ab?n=1";

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z")
        .expect("fixed time")
        .with_timezone(&Utc)
}

fn links(header: &str, free: &str) {
    let page = Url::parse(PAGE).expect("page url");
    if let Some(url) = next_link(header, &page) {
        assert!(matches!(url.scheme(), "http" | "https"), "{url}");
        let may_leave = [":", "\\", "//", "\t", "\r"]
            .iter()
            .any(|s| header.contains(s));
        if !may_leave {
            assert_eq!(
                url.origin(),
                page.origin(),
                "`{header}` left the page's origin: {url}"
            );
        }
    }
    // A next link after another link whose quoted title holds a comma and a semicolon.
    let target: String = free.chars().filter(|c| !"<>\",;".contains(*c)).collect();
    let header =
        format!(r#"</p0>; rel="prev"; title="a, b; rel=next", <{target}>; REL="last next""#);
    let expected = page
        .join(target.trim())
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"));
    assert_eq!(next_link(&header, &page), expected, "{header}");
    let header = format!(r#"<{target}>; rel="prev next-ish""#);
    assert_eq!(next_link(&header, &page), None, "{header}");
}

fn waits(value: &str, n: u32) {
    let now = now();
    let trimmed = value.trim();
    let wait = retry_after(value, now);
    if !trimmed.is_empty() && trimmed.bytes().all(|b| b.is_ascii_digit()) {
        let secs = trimmed.parse::<u64>().unwrap_or(u64::MAX);
        assert_eq!(wait, Some(Duration::from_secs(secs)));
    }
    let n_secs = Duration::from_secs(u64::from(n));
    assert_eq!(retry_after(&n.to_string(), now), Some(n_secs));
    let at = now + Span::seconds(i64::from(n));
    for date in [
        at.to_rfc2822(),
        at.format("%a, %d %b %Y %H:%M:%S GMT").to_string(),
    ] {
        assert_eq!(retry_after(&date, now), Some(n_secs), "{date}");
    }
    // Within 30 years back (RFC 2822 dates start in 1900).
    let past = now - Span::seconds(i64::from(n % 1_000_000_000));
    assert_eq!(
        retry_after(&past.to_rfc2822(), now),
        Some(Duration::ZERO),
        "a date past"
    );
}

fn check_shown(text: &str, from: &[u8]) {
    assert!(
        text.chars().count() <= DETAIL_MAX_CHARS + 1,
        "{} characters from {} bytes",
        text.chars().count(),
        from.len()
    );
    assert!(
        !text.chars().any(needs_escape),
        "an unsafe character kept: {text:?}"
    );
}

fn errors(data: &[u8], code: &str, message: &str) {
    check_shown(&error_detail(data), data);
    let body = serde_json::json!({"errors": [{"code": code, "message": message}, {}]});
    let body = serde_json::to_vec(&body).expect("json");
    let text = error_detail(&body);
    check_shown(&text, &body);
    let (code, message) = (code.trim(), message.trim());
    let plain = |s: &str| !s.is_empty() && !s.chars().any(needs_escape);
    if plain(code)
        && plain(message)
        && code.chars().count() + message.chars().count() + 2 <= DETAIL_MAX_CHARS
    {
        assert_eq!(text, format!("{code}: {message}"));
    }
}

fn credentials(data: &[u8], registry: &str, user: &str, password: &str) {
    let path = Path::new("/fuzz/config.json");
    let _ = docker_config_credentials(data, path, registry);
    if registry.is_empty() || registry.contains('/') || user.contains(':') {
        return;
    }
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let written = Credentials {
        username: user.to_string(),
        password: password.to_string(),
    };
    for key in [
        registry.to_string(),
        format!("https://{registry}"),
        format!("https://{registry}/v1/"),
    ] {
        let config = serde_json::json!({
            "auths": {key.clone(): {"auth": auth}},
            "credHelpers": {registry: "secretservice"},
        });
        let bytes = serde_json::to_vec(&config).expect("json");
        assert_eq!(
            docker_config_credentials(&bytes, path, registry),
            Ok(Some(written.clone())),
            "{key}"
        );
        let plain =
            serde_json::json!({"auths": {key.clone(): {"username": user, "password": password}}});
        let bytes = serde_json::to_vec(&plain).expect("json");
        assert_eq!(
            docker_config_credentials(&bytes, path, registry),
            Ok(Some(written.clone())),
            "{key}"
        );
    }
    let helper_only = serde_json::json!({"auths": {registry: {}}, "credsStore": "desktop"});
    let bytes = serde_json::to_vec(&helper_only).expect("json");
    assert!(matches!(
        docker_config_credentials(&bytes, path, registry),
        Err(CredentialError::Helper { .. })
    ));
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks the part (`L`ink, `R`etry-After, `E`rror body, `D`ocker config,
    // or any other byte modulo 4); the rest is that part's input.
    let Some((&which, data)) = data.split_first() else {
        return;
    };
    let text = std::str::from_utf8(data).ok();
    let mut lines = text.unwrap_or_default().splitn(3, '\n');
    let (first, second, rest) = (
        lines.next().unwrap_or_default(),
        lines.next().unwrap_or_default(),
        lines.next().unwrap_or_default(),
    );
    match which {
        b'L' => links(first, second),
        b'R' => waits(first, number(second.as_bytes())),
        b'E' => errors(data, first, second),
        b'D' => {
            let user: String = second.chars().filter(|c| *c != ':').collect();
            credentials(data, first, &user, rest);
        }
        other => match other % 4 {
            0 => links(first, second),
            1 => waits(first, number(data)),
            2 => errors(data, first, second),
            _ => credentials(data, first, second, rest),
        },
    }
});

/// A wait of up to about 136 years from the first four bytes.
fn number(bytes: &[u8]) -> u32 {
    bytes
        .iter()
        .take(4)
        .fold(0u32, |n, b| (n << 8) | u32::from(*b))
}
