//! Which delegated role is trusted for which target path (TUF §4.5 `paths`,
//! `path_hash_prefixes`, and TAP 15 succinct hash bins).
//!
//! Path patterns are matched segment by segment, as python-tuf does: pattern and path must
//! have the same number of `/`-separated segments, and each segment matches like Python's
//! `fnmatch.fnmatchcase` (`*`, `?`, `[abc]`, `[a-z]`, `[!abc]`; case-sensitive). So `*` and
//! `?` never cross a `/`.

use sha2::{Digest, Sha256};

use super::schema::{DelegatedRole, SuccinctRoles};

/// Does `pattern` cover `path`?
pub fn path_matches(pattern: &str, path: &str) -> bool {
    let pattern_parts: Vec<&str> = pattern.split('/').collect();
    let path_parts: Vec<&str> = path.split('/').collect();
    pattern_parts.len() == path_parts.len()
        && pattern_parts.iter().zip(&path_parts).all(|(p, s)| {
            let p: Vec<char> = p.chars().collect();
            let s: Vec<char> = s.chars().collect();
            segment_matches(&p, &s)
        })
}

fn segment_matches(pattern: &[char], text: &[char]) -> bool {
    // Iterative glob matching with single-star backtracking.
    let (mut p, mut t) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() {
            match pattern[p] {
                '*' => {
                    star = Some((p, t));
                    p += 1;
                    continue;
                }
                '?' => {
                    p += 1;
                    t += 1;
                    continue;
                }
                '[' => {
                    if let Some((matched, next)) = class_matches(&pattern[p..], text[t]) {
                        if matched {
                            p += next;
                            t += 1;
                            continue;
                        }
                    } else if text[t] == '[' {
                        // No closing bracket: a literal '['.
                        p += 1;
                        t += 1;
                        continue;
                    }
                }
                c if c == text[t] => {
                    p += 1;
                    t += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, st)) => {
                p = sp + 1;
                t = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

/// Matches `c` against the bracket expression at the start of `pattern`. Returns whether it
/// matched and the expression's length, or `None` if the bracket is never closed.
fn class_matches(pattern: &[char], c: char) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = matches!(pattern.get(i), Some('!'));
    if negate {
        i += 1;
    }
    let start = i;
    let mut matched = false;
    loop {
        let ch = *pattern.get(i)?;
        if ch == ']' && i > start {
            return Some((matched != negate, i + 1));
        }
        if pattern.get(i + 1) == Some(&'-') && pattern.get(i + 2).is_some_and(|&e| e != ']') {
            let end = pattern[i + 2];
            if ch <= c && c <= end {
                matched = true;
            }
            i += 3;
        } else {
            if ch == c {
                matched = true;
            }
            i += 1;
        }
    }
}

/// The lowercase hex SHA-256 of a target path, used by `path_hash_prefixes` and hash bins.
pub fn path_hash(path: &str) -> [u8; 32] {
    Sha256::digest(path.as_bytes()).into()
}

impl DelegatedRole {
    /// Whether this role is trusted for `target` (TUF §5.6.7.2).
    pub fn covers(&self, target: &str) -> bool {
        if let Some(prefixes) = &self.path_hash_prefixes {
            let digest = hex::encode(path_hash(target));
            return prefixes.iter().any(|p| digest.starts_with(p.as_str()));
        }
        if let Some(paths) = &self.paths {
            return paths.iter().any(|p| path_matches(p, target));
        }
        false
    }
}

impl SuccinctRoles {
    /// The hash-bin role responsible for `target` (TAP 15).
    pub fn role_for(&self, target: &str) -> String {
        let digest = path_hash(target);
        let first = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
        let bin = u64::from(first) >> (32 - self.bit_length);
        let width = self.bit_length.div_ceil(4) as usize;
        format!("{}-{:0width$x}", self.name_prefix, bin)
    }

    /// Whether `name` is one of this delegation's bins.
    pub fn is_bin(&self, name: &str) -> bool {
        let width = self.bit_length.div_ceil(4) as usize;
        let Some(suffix) = name
            .strip_prefix(self.name_prefix.as_str())
            .and_then(|s| s.strip_prefix('-'))
        else {
            return false;
        };
        suffix.len() == width
            && u64::from_str_radix(suffix, 16).is_ok_and(|bin| bin < (1u64 << self.bit_length))
            && suffix
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::NonZeroU64;

    #[test]
    fn star_and_question_mark_stay_within_a_segment() {
        assert!(path_matches("team/*", "team/api:1.4"));
        assert!(!path_matches("team/*", "team/sub/api:1.4"));
        assert!(!path_matches("*", "a/b"));
        assert!(path_matches("*/*", "a/b"));
        assert!(path_matches("file?.txt", "file1.txt"));
        assert!(!path_matches("file?.txt", "file/.txt"));
        assert!(!path_matches("file?.txt", "file12.txt"));
        assert!(path_matches("*.tgz", ".tgz"));
        assert!(path_matches("a*b*c", "axxbyyc"));
        assert!(!path_matches("a*b*c", "axxbyy"));
        assert!(path_matches("", ""));
        assert!(!path_matches("", "a"));
    }

    #[test]
    fn matching_is_case_sensitive() {
        assert!(!path_matches("Team/*", "team/x"));
        assert!(path_matches("debian:*", "debian:9.9"));
    }

    #[test]
    fn bracket_expressions() {
        assert!(path_matches("v[0-9].txt", "v5.txt"));
        assert!(!path_matches("v[0-9].txt", "va.txt"));
        assert!(path_matches("v[!0-9].txt", "va.txt"));
        assert!(!path_matches("v[!0-9].txt", "v1.txt"));
        assert!(path_matches("[]]", "]"));
        assert!(path_matches("a[", "a["));
        assert!(path_matches("[a-]", "-"));
    }

    #[test]
    fn hash_bins_match_python_tuf() {
        // python-tuf: SuccinctRoles(keyids, 1, 8, "bin").get_role_for_target("foo") == "bin-2c"
        // (sha256("foo") starts with 2c26b46b...).
        let roles = SuccinctRoles {
            keyids: vec![],
            threshold: NonZeroU64::MIN,
            bit_length: 8,
            name_prefix: "bin".into(),
            extra: Default::default(),
        };
        assert_eq!(roles.role_for("foo"), "bin-2c");
        assert!(roles.is_bin("bin-2c"));
        assert!(!roles.is_bin("bin-2"));
        assert!(!roles.is_bin("bin-2C"));
        assert!(!roles.is_bin("bins-2c"));
        let wide = SuccinctRoles {
            bit_length: 5,
            ..roles
        };
        // 0x2c >> 3 = 5, two hex digits for 5 bits.
        assert_eq!(wide.role_for("foo"), "bin-05");
        assert!(!wide.is_bin("bin-20"));
    }
}
