//! The I/O helpers every adapter shares: reads with a size cap (files and network bodies),
//! atomic file replacement, one deadline for a whole operation, and an error's cause chain.
//! Nothing here knows about TUF or registries; callers put their own names on the errors.

use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

/// Why a capped read failed. The caller knows what was read and says so.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error("larger than the {limit}-byte limit")]
    TooLarge { limit: u64 },
    #[error("timed out")]
    Timeout,
    #[error("{reason}")]
    Failed { reason: String },
}

/// The most room [`read_capped_sized`] takes before the bytes arrive.
pub const PRESIZE_MAX: u64 = 8 * 1024 * 1024;

/// Reads at most `max_len` bytes; one byte more means the body is too large. With a
/// deadline, a body still arriving when it passes is a timeout, however steadily it trickles
/// (reqwest's own timeout only bounds each read).
pub fn read_capped(
    reader: impl Read,
    max_len: u64,
    deadline: Option<Instant>,
) -> Result<Vec<u8>, ReadError> {
    read_capped_sized(reader, max_len, deadline, None)
}

/// [`read_capped`] of a body that announced its length (`Content-Length`): room for that
/// much is taken at once rather than grown into, up to `max_len` and to [`PRESIZE_MAX`] (a
/// server that announces more than it sends costs no more than one that sends it).
pub fn read_capped_sized(
    mut reader: impl Read,
    max_len: u64,
    deadline: Option<Instant>,
    announced: Option<u64>,
) -> Result<Vec<u8>, ReadError> {
    let room = announced.map_or(0, |n| n.min(max_len).min(PRESIZE_MAX).saturating_add(1));
    let mut body = Vec::with_capacity(usize::try_from(room).unwrap_or(0));
    let mut chunk = [0u8; 64 * 1024];
    loop {
        if deadline.is_some_and(|d| Instant::now() > d) {
            return Err(ReadError::Timeout);
        }
        let n = match reader.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                // An HTTP client reports its own time limit as a cause of the body error.
                let timed_out = e.kind() == ErrorKind::TimedOut
                    || error_chain(&e).to_lowercase().contains("timed out");
                return Err(if timed_out {
                    ReadError::Timeout
                } else {
                    ReadError::Failed {
                        reason: e.to_string(),
                    }
                });
            }
        };
        if (body.len() as u64).saturating_add(n as u64) > max_len {
            return Err(ReadError::TooLarge { limit: max_len });
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok(body)
}

/// Reads a whole file of at most `max_len` bytes. A longer file (or a device that never
/// ends, such as `/dev/zero`) is an error of kind [`ErrorKind::FileTooLarge`] after reading
/// one byte past the limit, never an allocation of the whole thing.
pub fn read_file(path: &Path, max_len: u64) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::FileTypeExt;
    // Opening a named pipe or a socket would wait for a writer that may never come.
    let kind = fs::metadata(path)?.file_type();
    if kind.is_fifo() || kind.is_socket() {
        return Err(std::io::Error::new(
            ErrorKind::InvalidInput,
            "is a named pipe or a socket, not a file",
        ));
    }
    let file = fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(max_len.saturating_add(1))
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max_len {
        return Err(std::io::Error::new(
            ErrorKind::FileTooLarge,
            format!("larger than the {max_len}-byte limit for this file"),
        ));
    }
    Ok(bytes)
}

/// [`read_file`] of a UTF-8 text file.
pub fn read_text_file(path: &Path, max_len: u64) -> std::io::Result<String> {
    String::from_utf8(read_file(path, max_len)?)
        .map_err(|_| std::io::Error::new(ErrorKind::InvalidData, "not UTF-8 text"))
}

/// Replaces `path` with `bytes` atomically: a hidden temporary file beside it (never ending
/// in `.json`), fsync, rename, fsync of the directory. A crash leaves the old or the new
/// bytes, never a mix; a failure leaves no temporary file behind.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    let result = (|| {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// `e` and each of its causes on one line (shared with the hook, which links only the
/// generated client).
pub use pullguard_proto::client::error_chain;

/// `now + d`, or a time far enough ahead to mean "no limit" when `d` would overflow the
/// clock (a timeout taken from a config file or a server's answer can be any number).
pub fn instant_after(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d)
        .or_else(|| now.checked_add(FOREVER))
        .unwrap_or(now)
}

/// The longest time limit one request may have, whatever a config or a flag asks for: an
/// HTTP client computes `now + timeout`, which must not overflow.
pub const REQUEST_TIMEOUT_MAX: Duration = Duration::from_secs(3600);

/// What "no limit" means for a time limit: longer than any process runs.
const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// One time limit for a whole operation (a verification: its tag resolution, TUF refresh
/// and signature reads together). Each request asks it how long it may take at most; once
/// it has passed, no request is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    at: Instant,
    budget: Duration,
}

impl Deadline {
    pub fn after(budget: Duration) -> Self {
        Deadline {
            at: instant_after(budget),
            budget,
        }
    }

    /// The whole budget this deadline was given.
    pub fn budget(&self) -> Duration {
        self.budget
    }

    pub fn at(&self) -> Instant {
        self.at
    }

    pub fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    pub fn has_passed(&self) -> bool {
        Instant::now() >= self.at
    }

    /// The earlier of this deadline and `limit` from now.
    pub fn within(&self, limit: Duration) -> Instant {
        self.at.min(instant_after(limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capped_reads() {
        assert_eq!(read_capped(&b"abc"[..], 3, None), Ok(b"abc".to_vec()));
        assert_eq!(
            read_capped(&b"abcd"[..], 3, None),
            Err(ReadError::TooLarge { limit: 3 })
        );
        let past = Instant::now();
        assert_eq!(
            read_capped(&b"abc"[..], 3, Some(past)),
            Err(ReadError::Timeout)
        );
    }

    #[test]
    fn an_announced_length_sizes_the_buffer_but_never_decides_the_result() {
        // Announced right, too long, too short: the bytes that arrive count, and the cap.
        for announced in [Some(3), Some(1 << 40), Some(1), None] {
            let body = read_capped_sized(&b"abc"[..], 3, None, announced).expect("read");
            assert_eq!(body, b"abc");
            assert!(body.capacity() <= (PRESIZE_MAX + 1) as usize);
            assert_eq!(
                read_capped_sized(&b"abcd"[..], 3, None, announced),
                Err(ReadError::TooLarge { limit: 3 })
            );
        }
        // A lie of 1 TiB under a 1 TiB cap takes no more than PRESIZE_MAX up front.
        let body = read_capped_sized(&b""[..], 1 << 40, None, Some(1 << 40)).expect("read");
        assert!(body.capacity() <= (PRESIZE_MAX + 1) as usize);
    }

    #[test]
    fn files_are_read_with_a_cap_even_when_they_never_end() {
        let err = read_file(Path::new("/dev/zero"), 1024).expect_err("endless");
        assert_eq!(err.kind(), ErrorKind::FileTooLarge);
        assert!(err.to_string().contains("1024-byte limit"), "{err}");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        fs::write(&path, b"12345").expect("write");
        assert_eq!(read_file(&path, 5).expect("fits"), b"12345");
        assert_eq!(
            read_file(&path, 4).expect_err("over").kind(),
            ErrorKind::FileTooLarge
        );
        assert_eq!(
            read_file(&dir.path().join("absent"), 5)
                .expect_err("absent")
                .kind(),
            ErrorKind::NotFound
        );
        fs::write(&path, [0xff, 0xfe]).expect("write");
        assert!(read_text_file(&path, 5).is_err());
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo");
        assert!(made.success());
        let err = read_file(&fifo, 5).expect_err("a pipe");
        assert!(err.to_string().contains("named pipe"), "{err}");
    }

    #[test]
    fn a_cause_is_told_once() {
        let io = std::io::Error::new(ErrorKind::AlreadyExists, "File exists (os error 17)");
        #[derive(Debug, thiserror::Error)]
        #[error("/state: {source}")]
        struct Shows {
            #[source]
            source: std::io::Error,
        }
        let e = Shows { source: io };
        assert_eq!(error_chain(&e), "/state: File exists (os error 17)");
        #[derive(Debug, thiserror::Error)]
        #[error("opening the state")]
        struct Hides {
            #[source]
            source: Shows,
        }
        let outer = Hides { source: e };
        assert_eq!(
            error_chain(&outer),
            "opening the state: /state: File exists (os error 17)"
        );
    }

    #[test]
    fn time_limits_never_overflow() {
        let far = instant_after(Duration::from_secs(u64::MAX));
        assert!(far > Instant::now() + Duration::from_secs(3600));
        let d = Deadline::after(Duration::MAX);
        assert!(!d.has_passed());
        assert_eq!(d.budget(), Duration::MAX);
        let short = Deadline::after(Duration::from_millis(0));
        assert!(short.has_passed());
        assert_eq!(short.remaining(), Duration::ZERO);
        assert!(short.within(Duration::from_secs(u64::MAX)) <= Instant::now());
    }
}
