//! The audit log (DESIGN §1, §5): one JSON line per decision, written by a thread of its
//! own so that a verification never waits on the disk. The file is bounded: past its
//! size limit it is renamed to `FILE.1` (replacing the one before) and a new one begun.
//! When the writer falls behind, entries are dropped and counted, never the answer held.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit log {}: {source}", path.display())]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// How many entries may wait for the writer. The queue holds boxes: a bounded channel
/// allocates all of its slots at once, 8 bytes each this way (an `Entry` is 200).
const QUEUE: usize = 65_536;

/// A decision, as the audit log records it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Entry {
    /// RFC 3339, UTC.
    pub time: String,
    pub reference: String,
    pub digest: String,
    pub admitted: bool,
    pub reason: &'static str,
    pub mode: &'static str,
    pub scope: Option<String>,
    pub cached: bool,
    pub offline_grace: bool,
    pub would_deny: Option<&'static str>,
    pub evidence: Option<String>,
    pub message: String,
}

pub struct AuditLog {
    queue: Option<SyncSender<Box<Entry>>>,
    writer: Option<JoinHandle<()>>,
}

impl AuditLog {
    /// Opens (appends to) `path`, creating its directory 0750 and the file 0640, and
    /// starts its writer. `max_bytes` bounds the file before it is rotated.
    pub fn open(path: &Path, max_bytes: u64) -> Result<Self, AuditError> {
        let err = |source| AuditError::Open {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.exists() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o750)
                    .create(dir)
                    .map_err(err)?;
            }
        }
        let file = open_append(path).map_err(err)?;
        let size = file.metadata().map_err(err)?.len();
        let (queue, entries) = sync_channel(QUEUE);
        let mut w = Writer {
            path: path.to_path_buf(),
            out: BufWriter::new(file),
            size,
            max_bytes,
        };
        let writer = std::thread::Builder::new()
            .name("pullguard-audit".into())
            .spawn(move || w.run(entries))
            .map_err(err)?;
        Ok(AuditLog {
            queue: Some(queue),
            writer: Some(writer),
        })
    }

    /// Queues `entry`; false when it was dropped (the writer is behind or gone).
    pub fn record(&self, entry: Entry) -> bool {
        let Some(queue) = &self.queue else {
            return false;
        };
        match queue.try_send(Box::new(entry)) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
        }
    }
}

impl Drop for AuditLog {
    /// Everything queued is written before the log is let go.
    fn drop(&mut self) {
        self.queue.take();
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

fn open_append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
}

struct Writer {
    path: PathBuf,
    out: BufWriter<File>,
    size: u64,
    max_bytes: u64,
}

impl Writer {
    fn run(&mut self, entries: Receiver<Box<Entry>>) {
        loop {
            match entries.recv_timeout(Duration::from_millis(200)) {
                Ok(entry) => self.write(&entry),
                // Written out whenever the queue is quiet, and at the end.
                Err(RecvTimeoutError::Timeout) => {
                    let _ = self.out.flush();
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let _ = self.out.flush();
                    return;
                }
            }
        }
    }

    fn write(&mut self, entry: &Entry) {
        let Ok(mut line) = serde_json::to_vec(entry) else {
            return;
        };
        line.push(b'\n');
        if self.size > 0 && self.size + line.len() as u64 > self.max_bytes {
            self.rotate();
        }
        if self.out.write_all(&line).is_ok() {
            self.size += line.len() as u64;
        }
    }

    /// FILE becomes FILE.1 and a new FILE is begun; on failure the old file goes on.
    fn rotate(&mut self) {
        let _ = self.out.flush();
        let mut rotated = self.path.clone().into_os_string();
        rotated.push(".1");
        if std::fs::rename(&self.path, &rotated).is_err() {
            return;
        }
        if let Ok(file) = open_append(&self.path) {
            self.out = BufWriter::new(file);
            self.size = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: usize) -> Entry {
        Entry {
            time: "2026-12-01T00:00:00Z".into(),
            reference: format!("r.io/app:{n}"),
            digest: "sha256:00".into(),
            admitted: n.is_multiple_of(2),
            reason: "verified",
            mode: "enforce",
            scope: Some("r.io/acme".into()),
            cached: false,
            offline_grace: false,
            would_deny: None,
            evidence: None,
            message: "line\nbreak".into(),
        }
    }

    #[test]
    fn every_entry_is_one_json_line_and_the_file_rotates_at_its_bound() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("log/audit.jsonl");
        let log = AuditLog::open(&path, 2_000).expect("open");
        for n in 0..40 {
            assert!(log.record(entry(n)));
        }
        drop(log);
        let current = std::fs::read_to_string(&path).expect("current");
        let rotated = std::fs::read_to_string(dir.path().join("log/audit.jsonl.1")).expect(".1");
        assert!(current.len() <= 2_000 && rotated.len() <= 2_000);
        let lines: Vec<&str> = rotated.lines().chain(current.lines()).collect();
        assert!(lines.len() < 40, "older entries rotated out");
        for line in &lines {
            let v: serde_json::Value = serde_json::from_str(line).expect("one JSON value");
            assert_eq!(v["message"], "line\nbreak");
        }
        // The newest entry is the last line.
        assert!(lines.last().expect("some").contains("r.io/app:39"));
    }

    #[test]
    fn a_log_that_cannot_be_opened_says_which_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("file"), b"").expect("file");
        let err = AuditLog::open(&dir.path().join("file/audit.jsonl"), 1_000)
            .err()
            .expect("not a directory");
        assert!(err.to_string().contains("file/audit.jsonl"), "{err}");
    }
}
