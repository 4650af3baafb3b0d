//! Plain TUF over HTTP(S): the standard layout under a metadata base URL and a targets base
//! URL. Base URLs end in `/` and are used as given (already percent-encoded); the file names
//! appended to them are built by [`super::metadata_file_name`] and
//! [`super::target_file_path`].

use std::io::Read;
use std::time::{Duration, Instant};

use super::{metadata_file_name, target_file_path, FetchError, MetadataSource};
use crate::tuf::names::RoleName;

/// A metadata source that speaks HTTP(S).
pub struct HttpSource {
    metadata_base: String,
    targets_base: Option<String>,
    client: reqwest::blocking::Client,
    timeout: Duration,
}

impl HttpSource {
    /// Base URLs are used as given (already percent-encoded); a missing final `/` is added.
    /// `timeout` bounds each request as a whole (slow-retrieval defence).
    pub fn new(
        metadata_base: &str,
        targets_base: Option<&str>,
        timeout: Duration,
    ) -> Result<Self, String> {
        for base in std::iter::once(metadata_base).chain(targets_base) {
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
            metadata_base: with_slash(metadata_base),
            targets_base: targets_base.map(with_slash),
            client,
            timeout,
        })
    }

    fn get(&self, url: &str, max_len: u64) -> Result<Vec<u8>, FetchError> {
        let deadline = Instant::now() + self.timeout;
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
        read_capped(response, max_len, &location, Some(deadline))
    }
}

fn with_slash(base: &str) -> String {
    if base.ends_with('/') {
        base.to_string()
    } else {
        format!("{base}/")
    }
}

/// Reads at most `max_len` bytes; one byte more means the body is too large. With a
/// deadline, a body still arriving when it passes is a timeout, however steadily it trickles
/// (reqwest's own timeout only bounds each read).
pub(crate) fn read_capped(
    mut reader: impl Read,
    max_len: u64,
    location: &str,
    deadline: Option<Instant>,
) -> Result<Vec<u8>, FetchError> {
    let timeout = || FetchError::Timeout {
        location: location.to_string(),
    };
    let mut body = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if deadline.is_some_and(|d| Instant::now() > d) {
            return Err(timeout());
        }
        let n = match reader.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let timed_out = e.kind() == std::io::ErrorKind::TimedOut
                    || e.to_string().to_lowercase().contains("timed out");
                return Err(if timed_out {
                    timeout()
                } else {
                    FetchError::Io {
                        location: location.to_string(),
                        reason: e.to_string(),
                    }
                });
            }
        };
        if (body.len() + n) as u64 > max_len {
            return Err(FetchError::TooLarge {
                location: location.to_string(),
                limit: max_len,
            });
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok(body)
}

pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
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
        assert!(HttpSource::new("ftp://127.0.0.1/meta/", None, t).is_err());
        assert!(HttpSource::new("http://127.0.0.1:1/meta/", Some("file:///t/"), t).is_err());
        let source =
            HttpSource::new("http://127.0.0.1:1/meta", Some("http://x/t"), t).expect("slash added");
        assert_eq!(source.metadata_base, "http://127.0.0.1:1/meta/");
        assert_eq!(source.targets_base.as_deref(), Some("http://x/t/"));
    }

    #[test]
    fn capped_reads() {
        assert_eq!(
            read_capped(&b"abc"[..], 3, "x", None).expect("fits"),
            b"abc"
        );
        assert_eq!(
            read_capped(&b"abcd"[..], 3, "x", None),
            Err(FetchError::TooLarge {
                location: "x".into(),
                limit: 3
            })
        );
    }

    /// A one-connection HTTP server on 127.0.0.1 that answers with `head`, then sends
    /// `body_chunks` with `pause` between them (fault injection: slow or endless bodies).
    fn fault_server(
        head: &'static str,
        body_chunks: usize,
        chunk: &'static [u8],
        pause: Duration,
    ) -> String {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        std::thread::spawn(move || {
            let Ok((stream, _)) = listener.accept() else {
                return;
            };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let mut stream = stream;
            if stream.write_all(head.as_bytes()).is_err() {
                return;
            }
            for _ in 0..body_chunks {
                if stream.write_all(chunk).is_err() {
                    return;
                }
                std::thread::sleep(pause);
            }
        });
        format!("http://{addr}/")
    }

    #[test]
    fn a_trickling_response_times_out() {
        let base = fault_server(
            "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n",
            100,
            b"x",
            Duration::from_millis(200),
        );
        let source = HttpSource::new(&base, None, Duration::from_secs(1)).expect("source");
        let started = std::time::Instant::now();
        let err = source
            .fetch_metadata(&RoleName::timestamp(), None, 1000)
            .expect_err("too slow");
        assert!(matches!(err, FetchError::Timeout { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn an_endless_response_is_cut_at_the_limit() {
        // No Content-Length: the body only ends when the server closes the connection.
        let base = fault_server(
            "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n",
            10_000,
            &[b'{'; 1024],
            Duration::ZERO,
        );
        let source = HttpSource::new(&base, None, Duration::from_secs(10)).expect("source");
        let err = source
            .fetch_metadata(&RoleName::timestamp(), None, 16_384)
            .expect_err("too large");
        assert!(
            matches!(err, FetchError::TooLarge { limit: 16_384, .. }),
            "{err}"
        );
    }

    #[test]
    fn a_declared_oversized_response_is_refused_before_reading() {
        let base = fault_server(
            "HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n",
            0,
            b"",
            Duration::ZERO,
        );
        let source = HttpSource::new(&base, None, Duration::from_secs(10)).expect("source");
        let err = source
            .fetch_metadata(&RoleName::timestamp(), None, 16_384)
            .expect_err("too large");
        assert!(matches!(err, FetchError::TooLarge { .. }), "{err}");
    }

    #[test]
    fn server_errors_and_missing_files_are_told_apart() {
        type Expect = fn(&FetchError) -> bool;
        let cases: [(&'static str, Expect); 3] = [
            ("503 Service Unavailable", |e| {
                matches!(e, FetchError::Status { status: 503, .. })
            }),
            ("404 Not Found", FetchError::is_not_found),
            // Object stores answer 403 for a missing key.
            ("403 Forbidden", FetchError::is_not_found),
        ];
        for (status, expected) in cases {
            let head: &'static str = Box::leak(
                format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").into_boxed_str(),
            );
            let base = fault_server(head, 0, b"", Duration::ZERO);
            let source = HttpSource::new(&base, None, Duration::from_secs(10)).expect("source");
            let err = source
                .fetch_metadata(&RoleName::root(), Some(2), 100)
                .expect_err(status);
            assert!(expected(&err), "{status}: {err}");
        }
    }

    #[test]
    fn unreachable_server_is_an_error_not_a_panic() {
        // Port 9 (discard) on loopback is closed on test machines.
        let source =
            HttpSource::new("http://127.0.0.1:9/", None, Duration::from_secs(2)).expect("source");
        let err = source
            .fetch_metadata(&RoleName::timestamp(), None, 100)
            .expect_err("nothing listens");
        assert!(matches!(
            err,
            FetchError::Unreachable { .. } | FetchError::Timeout { .. }
        ));
    }
}
