//! What the registry client reads of an answer beside the document it asked for: the `Link`
//! header that pages the referrers API (OCI distribution spec, "Listing Referrers"; RFC 8288),
//! `Retry-After` (RFC 9110 §10.2.3), and the error codes and messages of a refusal (OCI
//! distribution spec, "Error Codes"). Pure functions over header values and body bytes: the
//! client hands them what it read, with its caps and deadlines already applied.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::Url;
use serde::Deserialize;

use crate::verdict::one_line;

/// The most characters of a registry's error text that are shown, escapes included, plus an
/// ellipsis when there was more.
pub const DETAIL_MAX_CHARS: usize = 200;

/// The `rel="next"` target of a `Link` header, resolved against the URL of the page that
/// carried it (RFC 8288 §3.1 and §3.2): a relative target stays on the page's origin, an
/// absolute one may leave it (the client sends credentials to its own origin only). Targets
/// that are not http or https URLs are not followed. The first `rel` of a link counts
/// (§3.3); it is a list of relation types, matched without regard to case.
pub fn next_link(header: &str, page: &Url) -> Option<Url> {
    let mut rest = header;
    loop {
        let start = rest.find('<')?;
        let after = &rest[start + 1..];
        let end = after.find('>')?;
        let target = after[..end].trim();
        let (params, next) = split_unquoted(&after[end + 1..], ',');
        if rel_is_next(params) {
            return page
                .join(target)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https"));
        }
        rest = next?;
    }
}

/// `s` up to the first `sep` outside a quoted string, and what follows it (None at the end).
fn split_unquoted(s: &str, sep: char) -> (&str, Option<&str>) {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == sep && !quoted => return (&s[..i], Some(&s[i + c.len_utf8()..])),
            _ => {}
        }
    }
    (s, None)
}

/// Whether a link's parameters (`; rel="next"; title="…"`) name the relation `next`.
fn rel_is_next(params: &str) -> bool {
    let mut rest = Some(params);
    while let Some(s) = rest {
        let (param, next) = split_unquoted(s, ';');
        rest = next;
        let Some((name, value)) = param.split_once('=') else {
            continue;
        };
        if !name.trim().eq_ignore_ascii_case("rel") {
            continue;
        }
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        return value
            .split_ascii_whitespace()
            .any(|t| t.eq_ignore_ascii_case("next"));
    }
    false
}

/// How long `Retry-After` asks to wait, from `now`: delay-seconds (a number past `u64`
/// saturates), or an HTTP date, a date already past being no wait. None when the value is
/// neither.
pub fn retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Duration::from_secs(
            value.parse::<u64>().unwrap_or(u64::MAX),
        ));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?;
    let secs = at.timestamp().saturating_sub(now.timestamp()).max(0);
    Some(Duration::from_secs(u64::try_from(secs).unwrap_or(0)))
}

/// What a refusal's body says, for an error message: the registry's error codes and
/// messages (`{"errors": [{"code", "message"}]}`) joined with `; `, else the start of the
/// body as text; empty when it says nothing. At most [`DETAIL_MAX_CHARS`] characters (and
/// `…`), escaped by `verdict::one_line` (`\n`, `\u{1b}`, `\u{202e}`), so that a registry
/// cannot write lines or terminal sequences into the node's logs.
pub fn error_detail(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Errors {
        errors: Vec<ErrorEntry>,
    }
    #[derive(Deserialize)]
    struct ErrorEntry {
        code: Option<String>,
        message: Option<String>,
    }
    if let Ok(errors) = serde_json::from_slice::<Errors>(body) {
        let said = |s: &Option<String>| {
            s.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let parts: Vec<String> = errors
            .errors
            .iter()
            .filter_map(|e| match (said(&e.code), said(&e.message)) {
                (Some(c), Some(m)) => Some(format!("{c}: {m}")),
                (c, m) => c.or(m),
            })
            .collect();
        if !parts.is_empty() {
            return shown(&parts.join("; "));
        }
    }
    shown(&String::from_utf8_lossy(body))
}

/// `text`, trimmed, escaped and cut to [`DETAIL_MAX_CHARS`] (a cut may end inside an
/// escape).
fn shown(text: &str) -> String {
    let escaped = one_line(text.trim());
    let mut chars = escaped.chars();
    let mut out: String = chars.by_ref().take(DETAIL_MAX_CHARS).collect();
    if chars.next().is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page() -> Url {
        Url::parse("http://registry.test:5000/v2/acme/app/referrers/sha256:ab?n=1").expect("url")
    }

    fn next(header: &str) -> Option<String> {
        next_link(header, &page()).map(String::from)
    }

    #[test]
    fn next_links_resolve_against_the_page() {
        let on_page = |rest: &str| Some(format!("http://registry.test:5000{rest}"));
        // As the distribution registry writes it.
        assert_eq!(
            next(r#"</v2/acme/app/referrers/sha256:ab?last=x&n=1>; rel="next""#),
            on_page("/v2/acme/app/referrers/sha256:ab?last=x&n=1")
        );
        // Relative forms: a query alone, a sibling path. Before, these were glued to the
        // registry's base URL as text (`http://registry.test:5000?last=x`, and for a base
        // without a port a target like `.example/x` named another host).
        assert_eq!(
            next(r#"<?last=x>; rel="next""#),
            on_page("/v2/acme/app/referrers/sha256:ab?last=x")
        );
        assert_eq!(
            next(r#"<./sha256:cd>; rel=next"#),
            on_page("/v2/acme/app/referrers/sha256:cd")
        );
        // RFC 3986 §4.2: a first segment with a colon is a scheme, and not one followed.
        assert_eq!(next(r#"<sha256:cd>; rel=next"#), None);
        assert_eq!(
            next(r#"<.example/x>; rel="next""#),
            on_page("/v2/acme/app/referrers/.example/x")
        );
        // Absolute targets are taken as they are; other schemes are not followed.
        assert_eq!(
            next(r#"<https://cdn.test/p2>; rel="next""#),
            Some("https://cdn.test/p2".into())
        );
        assert_eq!(next(r#"<file:///etc/passwd>; rel="next""#), None);
        assert_eq!(next(r#"<javascript:x>; rel="next""#), None);
    }

    #[test]
    fn only_a_next_relation_is_followed() {
        let expected = Some("http://registry.test:5000/p2".to_string());
        // Several links, the next one second; a comma and a semicolon inside a quoted title.
        assert_eq!(
            next(r#"</p0>; rel="prev"; title="a, b; c", </p2>; rel="next""#),
            expected
        );
        // A target holding a comma; rel as a list, in another case.
        assert_eq!(
            next(r#"</p2?a=1,2>; rel="Next last""#),
            Some("http://registry.test:5000/p2?a=1,2".into())
        );
        // The first rel counts (RFC 8288 §3.3); "nextpage" is another relation.
        assert_eq!(next(r#"</p0>; rel="prev"; rel="next""#), None);
        assert_eq!(next(r#"</p0>; rel="nextpage""#), None);
        assert_eq!(next(r#"</p0>; title="rel=\"next\"""#), None);
        assert_eq!(next(""), None);
        assert_eq!(next("</p0"), None);
        assert_eq!(next(r#"rel="next""#), None);
    }

    #[test]
    fn retry_after_is_seconds_or_a_date() {
        let now = DateTime::parse_from_rfc3339("2026-12-02T12:00:00Z")
            .expect("time")
            .with_timezone(&Utc);
        assert_eq!(retry_after(" 120 ", now), Some(Duration::from_secs(120)));
        assert_eq!(retry_after("0", now), Some(Duration::ZERO));
        assert_eq!(
            retry_after("99999999999999999999999", now),
            Some(Duration::from_secs(u64::MAX)),
            "a delay past u64 is as long a wait as there is"
        );
        assert_eq!(
            retry_after("Wed, 02 Dec 2026 12:01:30 GMT", now),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            retry_after("Wed, 02 Dec 2026 11:00:00 GMT", now),
            Some(Duration::ZERO),
            "a date already past"
        );
        for bad in ["", "+5", "-1", "1.5", "soon", "2026-12-02T12:01:30Z"] {
            assert_eq!(retry_after(bad, now), None, "{bad:?}");
        }
    }

    #[test]
    fn error_details_are_short_and_cannot_write_lines_into_logs() {
        assert_eq!(
            error_detail(
                br#"{"errors":[{"code":"DENIED","message":"no"},{"code":" ","message":"m2"},{}]}"#
            ),
            "DENIED: no; m2"
        );
        assert_eq!(
            error_detail(b"  404 page not found\n"),
            "404 page not found"
        );
        assert_eq!(error_detail(b""), "");
        assert_eq!(
            error_detail(b"line one\nFAKE LOG LINE \x1b[31mred\x1b[0m"),
            r"line one\nFAKE LOG LINE \u{1b}[31mred\u{1b}[0m"
        );
        assert_eq!(
            error_detail(r#"{"errors":[{"message":"a\u202eb\nc"}]}"#.as_bytes()),
            r"a\u{202e}b\nc"
        );
        let long = error_detail(&[b'x'; 5000]);
        assert_eq!(long.chars().count(), DETAIL_MAX_CHARS + 1);
        assert!(long.ends_with('…'));
        // Not valid UTF-8: replaced, not refused.
        assert_eq!(error_detail(b"bad \xff byte"), "bad \u{fffd} byte");
    }
}
