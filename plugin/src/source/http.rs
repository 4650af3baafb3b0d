//! Plain TUF over HTTP(S): the standard layout under a metadata base URL and a targets base
//! URL. Base URLs end in `/` and are used as given (already percent-encoded); the file names
//! appended to them are built by [`super::metadata_file_name`] and
//! [`super::target_file_path`].

use std::io::Read;
use std::time::Duration;

use super::{metadata_file_name, target_file_path, FetchError, MetadataSource};
use crate::tuf::names::RoleName;

/// A metadata source that speaks HTTP(S).
pub struct HttpSource {
    metadata_base: String,
    targets_base: Option<String>,
    client: reqwest::blocking::Client,
}

impl HttpSource {
    /// `metadata_base` and `targets_base` must end in `/`. `timeout` bounds each request as a
    /// whole (slow-retrieval defence).
    pub fn new(
        metadata_base: &str,
        targets_base: Option<&str>,
        timeout: Duration,
    ) -> Result<Self, String> {
        for base in std::iter::once(metadata_base).chain(targets_base) {
            if !base.ends_with('/') {
                return Err(format!("base URL `{base}` must end in `/`"));
            }
            if !(base.starts_with("http://") || base.starts_with("https://")) {
                return Err(format!("base URL `{base}` is not http:// or https://"));
            }
        }
        let client = reqwest::blocking::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("pullguard/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(HttpSource {
            metadata_base: metadata_base.to_string(),
            targets_base: targets_base.map(str::to_string),
            client,
        })
    }

    fn get(&self, url: &str, max_len: u64) -> Result<Vec<u8>, FetchError> {
        let location = url.to_string();
        let response = self.client.get(url).send().map_err(|e| {
            if e.is_timeout() {
                FetchError::Timeout {
                    location: location.clone(),
                }
            } else {
                FetchError::Unreachable {
                    location: location.clone(),
                    reason: error_chain(&e),
                }
            }
        })?;
        let status = response.status().as_u16();
        // 403 as well as 404: object stores answer 403 for a missing key.
        if status == 404 || status == 403 {
            return Err(FetchError::NotFound { location });
        }
        if !(200..300).contains(&status) {
            return Err(FetchError::Status { location, status });
        }
        if response.content_length().is_some_and(|n| n > max_len) {
            return Err(FetchError::TooLarge {
                location,
                limit: max_len,
            });
        }
        read_capped(response, max_len, &location)
    }
}

/// Reads at most `max_len` bytes; one byte more means the body is too large.
pub(crate) fn read_capped(
    reader: impl Read,
    max_len: u64,
    location: &str,
) -> Result<Vec<u8>, FetchError> {
    let mut body = Vec::new();
    reader
        .take(max_len.saturating_add(1))
        .read_to_end(&mut body)
        .map_err(|e| {
            let timed_out = e.kind() == std::io::ErrorKind::TimedOut
                || e.to_string().to_lowercase().contains("timed out");
            if timed_out {
                FetchError::Timeout {
                    location: location.to_string(),
                }
            } else {
                FetchError::Io {
                    location: location.to_string(),
                    reason: e.to_string(),
                }
            }
        })?;
    if body.len() as u64 > max_len {
        return Err(FetchError::TooLarge {
            location: location.to_string(),
            limit: max_len,
        });
    }
    Ok(body)
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

impl MetadataSource for HttpSource {
    fn fetch_metadata(
        &self,
        role: &RoleName,
        version: Option<u64>,
        max_len: u64,
    ) -> Result<Vec<u8>, FetchError> {
        let url = format!(
            "{}{}",
            self.metadata_base,
            metadata_file_name(role, version)
        );
        self.get(&url, max_len)
    }

    fn fetch_target(
        &self,
        path: &str,
        hash_prefix: Option<&str>,
        max_len: u64,
    ) -> Result<Vec<u8>, FetchError> {
        let base = self
            .targets_base
            .as_deref()
            .ok_or_else(|| FetchError::NotFound {
                location: format!("{path} (no targets base URL configured)"),
            })?;
        let url = format!("{base}{}", target_file_path(path, hash_prefix));
        self.get(&url, max_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_checked() {
        let t = Duration::from_secs(1);
        assert!(HttpSource::new("http://127.0.0.1:1/meta", None, t).is_err());
        assert!(HttpSource::new("ftp://127.0.0.1/meta/", None, t).is_err());
        assert!(HttpSource::new("http://127.0.0.1:1/meta/", Some("http://x/t"), t).is_err());
        assert!(HttpSource::new("http://127.0.0.1:1/meta/", Some("http://x/t/"), t).is_ok());
    }

    #[test]
    fn capped_reads() {
        assert_eq!(read_capped(&b"abc"[..], 3, "x").expect("fits"), b"abc");
        assert_eq!(
            read_capped(&b"abcd"[..], 3, "x"),
            Err(FetchError::TooLarge {
                location: "x".into(),
                limit: 3
            })
        );
    }

    #[test]
    fn unreachable_server_is_an_error_not_a_panic() {
        // Port 9 (discard) on loopback is closed on test machines.
        let source =
            HttpSource::new("http://127.0.0.1:9/", None, Duration::from_secs(2)).expect("source");
        let err = source
            .fetch_metadata(&RoleName::timestamp(), None, 100)
            .expect_err("nothing listens");
        assert!(matches!(err, FetchError::Unreachable { .. } | FetchError::Timeout { .. }));
    }
}
