//! Plain TUF over HTTP(S): the standard layout under a metadata base URL and a targets base
//! URL. Base URLs end in `/` and are used as given (already percent-encoded); the file names
//! appended to them are built by [`super::metadata_file_name`] and
//! [`super::target_file_path`].

use std::time::{Duration, Instant};

use crate::io::{error_chain, instant_after, read_capped_sized, Deadline, ReadError};
use crate::tuf::fetch::{metadata_file_name, target_file_path, FetchError, MetadataSource};
use crate::tuf::names::RoleName;

/// A metadata source that speaks HTTP(S).
pub struct HttpSource {
    metadata_base: String,
    targets_base: Option<String>,
    client: reqwest::blocking::Client,
    timeout: Duration,
    /// The whole operation's time limit, when it has one.
    deadline: Option<Deadline>,
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
        let timeout = timeout.min(crate::io::REQUEST_TIMEOUT_MAX);
        // A source served over plain HTTP does not load the system's CA certificates (a
        // hundred-odd files read and parsed per process): a redirect to HTTPS then fails.
        let plain = std::iter::once(metadata_base)
            .chain(targets_base)
            .all(|b| b.starts_with("http://"));
        let client = reqwest::blocking::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("pullguard/", env!("CARGO_PKG_VERSION")))
            .tls_built_in_root_certs(!plain)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(HttpSource {
            metadata_base: with_slash(metadata_base),
            targets_base: targets_base.map(with_slash),
            client,
            timeout,
            deadline: None,
        })
    }

    /// The same source, with every request finished before `deadline` (none is sent after).
    pub fn with_deadline(mut self, deadline: Deadline) -> Self {
        self.deadline = Some(deadline);
        self
    }

    fn get(&self, url: &str, max_len: u64) -> Result<Vec<u8>, FetchError> {
        self.get_within(url, max_len)
            .map_err(|e| match (e, &self.deadline) {
                // A timeout once the operation's deadline has passed is that deadline's doing.
                (FetchError::Timeout { location }, Some(d)) if d.has_passed() => {
                    FetchError::DeadlineExceeded {
                        location,
                        budget: d.budget(),
                    }
                }
                (e, _) => e,
            })
    }

    fn get_within(&self, url: &str, max_len: u64) -> Result<Vec<u8>, FetchError> {
        let location = url.to_string();
        let deadline = match &self.deadline {
            Some(d) if d.has_passed() => {
                return Err(FetchError::DeadlineExceeded {
                    location,
                    budget: d.budget(),
                })
            }
            Some(d) => d.within(self.timeout),
            None => instant_after(self.timeout),
        };
        let request = self
            .client
            .get(url)
            .timeout(deadline.saturating_duration_since(Instant::now()));
        let response = request.send().map_err(|e| {
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
        let announced = response.content_length();
        read_capped_sized(response, max_len, Some(deadline), announced)
            .map_err(|e| fetch_error(e, location))
    }
}

/// A capped read's failure, at `location`.
pub(crate) fn fetch_error(e: ReadError, location: String) -> FetchError {
    match e {
        ReadError::TooLarge { limit } => FetchError::TooLarge { location, limit },
        ReadError::Timeout => FetchError::Timeout { location },
        ReadError::Failed { reason } => FetchError::Io { location, reason },
    }
}

fn with_slash(base: &str) -> String {
    if base.ends_with('/') {
        base.to_string()
    } else {
        format!("{base}/")
    }
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
