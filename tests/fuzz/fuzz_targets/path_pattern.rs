//! Which delegated role is trusted for which path (`tuf::pattern`): `path_matches` (the
//! segment-wise fnmatch of TUF §5.6.7.2 as python-tuf has it), `DelegatedRole::covers` with
//! path patterns and with hash prefixes, and the hash bins of a succinct delegation.
//!
//! Input: a byte for the bins' bit length, then the pattern, a newline, the path.
//!
//! Properties: a pattern without `*`, `?` or `[` matches exactly itself; `*` matches any one
//! segment; `covers` agrees with `path_matches` and with the path's hash; the bin named for
//! a path is one of the delegation's bins, and no other name with the prefix is.
#![no_main]

use std::num::NonZeroU64;

use libfuzzer_sys::fuzz_target;
use pullguard_plugin::tuf::names::RoleName;
use pullguard_plugin::tuf::pattern::{path_hash, path_matches};
use pullguard_plugin::tuf::schema::{DelegatedRole, SuccinctRoles};

fn role(paths: Option<Vec<String>>, prefixes: Option<Vec<String>>) -> DelegatedRole {
    DelegatedRole {
        name: RoleName::targets(),
        keyids: Vec::new(),
        threshold: NonZeroU64::MIN,
        terminating: false,
        paths,
        path_hash_prefixes: prefixes,
        extra: Default::default(),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&bits, text)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let (pattern, path) = text.split_once('\n').unwrap_or((text, ""));

    let matched = path_matches(pattern, path);
    if !pattern.contains(['*', '?', '[']) {
        assert_eq!(matched, pattern == path, "a literal pattern is itself");
    }
    let stars = vec!["*"; path.split('/').count()].join("/");
    assert!(
        path_matches(&stars, path),
        "{stars} covers every path of its depth"
    );
    assert!(path_matches(path, path) || path.contains(['*', '?', '[']));

    assert_eq!(
        role(Some(vec![pattern.to_string()]), None).covers(path),
        matched
    );
    assert!(
        !role(None, None).covers(path),
        "a role with neither covers nothing"
    );
    let digest = hex::encode(path_hash(path));
    let by_hash = role(None, Some(vec![pattern.to_string()])).covers(path);
    assert_eq!(by_hash, digest.starts_with(pattern));

    let succinct = SuccinctRoles {
        keyids: Vec::new(),
        threshold: NonZeroU64::MIN,
        bit_length: u32::from(bits % 32) + 1,
        name_prefix: pattern.to_string(),
        extra: Default::default(),
    };
    let bin = succinct.role_for(path);
    assert!(succinct.is_bin(&bin), "{bin} is one of the bins");
    // A name the fuzzer wrote after the prefix is a bin only if it is the hex of one.
    let _ = succinct.is_bin(path);
    let suffix = format!("{pattern}-{path}");
    if succinct.is_bin(&suffix) {
        let n = u64::from_str_radix(path, 16).expect("a bin's suffix is hex");
        assert!(n < 1u64 << succinct.bit_length);
    }
});
