//! Names that appear in metadata and in file names or URLs built from them.

use std::fmt;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::{Deserialize, Deserializer, Serialize};

/// Everything but ASCII letters, digits and `-._~` is percent-encoded (RFC 3986 unreserved),
/// as python-tuf encodes role names in URLs and file names: `/`, `..`, `?` and `#` in a role
/// name can then never escape a directory or change the meaning of a URL.
pub(crate) const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A role name: any non-empty string (delegated role names are chosen by repository owners).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct RoleName(String);

impl RoleName {
    pub fn new(name: impl Into<String>) -> Result<Self, String> {
        let name = name.into();
        if name.is_empty() {
            return Err("a role name may not be empty".into());
        }
        Ok(RoleName(name))
    }

    pub fn root() -> Self {
        RoleName("root".into())
    }
    pub fn timestamp() -> Self {
        RoleName("timestamp".into())
    }
    pub fn snapshot() -> Self {
        RoleName("snapshot".into())
    }
    pub fn targets() -> Self {
        RoleName("targets".into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name made safe for a file name or a URL path segment.
    pub fn encoded(&self) -> String {
        encode_component(&self.0)
    }

    /// `<encoded name>.json`, the name of this role's file in a snapshot's `meta`
    /// (unencoded there) and on disk (encoded).
    pub fn meta_key(&self) -> String {
        format!("{}.json", self.0)
    }
}

impl fmt::Display for RoleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for RoleName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        RoleName::new(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// Percent-encodes everything but ASCII letters, digits and `-._~`.
pub fn encode_component(s: &str) -> String {
    utf8_percent_encode(s, UNRESERVED).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_unusual_role_names() {
        let cases = [
            ("targets", "targets"),
            ("a-b_c.d~e", "a-b_c.d~e"),
            ("?", "%3F"),
            ("#", "%23"),
            ("/x", "%2Fx"),
            ("../x", "..%2Fx"),
            ("é", "%C3%A9"),
            ("a b", "a%20b"),
        ];
        for (name, encoded) in cases {
            assert_eq!(RoleName::new(name).expect("name").encoded(), encoded);
        }
    }

    #[test]
    fn empty_name_is_rejected() {
        assert!(RoleName::new("").is_err());
        assert!(serde_json::from_str::<RoleName>("\"\"").is_err());
    }
}
