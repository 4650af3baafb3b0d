//! Helpers shared by the integration tests: where the Python venv and `faketime` are,
//! temporary directories, a static HTTP server that logs every request, and running the
//! `pullguard` binary.

#![allow(dead_code)]

pub mod containerd;
pub mod daemon;
pub mod fixture;
pub mod front;
pub mod registry;

use std::fmt;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How to get the Python venv and other test tools.
pub const SETUP_HINT: &str = "run `. scripts/setup.sh` (it installs faketime and creates the \
     python-tuf venv, exporting PULLGUARD_VENV), or create the venv by hand: \
     `python3 -m venv .venv && .venv/bin/pip install -r tests/interop/requirements.txt`";

/// The workspace root (the `pullguard` package's directory).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The venv's Python: `$PULLGUARD_VENV/bin/python`, else `<repo>/.venv/bin/python`. Panics
/// (the test fails, it is not skipped) when neither exists.
pub fn python() -> PathBuf {
    let candidates: Vec<PathBuf> = match std::env::var_os("PULLGUARD_VENV") {
        Some(venv) if !venv.is_empty() => vec![PathBuf::from(venv).join("bin/python")],
        _ => vec![repo_root().join(".venv/bin/python")],
    };
    for candidate in &candidates {
        if candidate.is_file() {
            return candidate.clone();
        }
    }
    panic!(
        "no Python venv with python-tuf: looked for {}; {SETUP_HINT}",
        candidates
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(" and ")
    );
}

/// The `faketime` wrapper (libfaketime). Panics when it is missing.
pub fn faketime() -> PathBuf {
    let path = PathBuf::from("/usr/bin/faketime");
    assert!(
        path.is_file(),
        "{} not found: install the Debian package `faketime` (apt-get install faketime); \
         {SETUP_HINT}",
        path.display()
    );
    path
}

/// `command` run under `faketime -f OFFSET` (same program, arguments, environment and
/// directory).
pub fn at_time(offset: &str, command: &Command) -> Command {
    wrapped(&faketime(), &["-f", offset], command)
}

/// `wrapper WRAPPER_ARGS PROGRAM ARGS`, with `command`'s environment and directory.
fn wrapped(wrapper: &Path, wrapper_args: &[&str], command: &Command) -> Command {
    let mut c = Command::new(wrapper);
    c.args(wrapper_args)
        .arg(command.get_program())
        .args(command.get_args());
    for (k, v) in command.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    if let Some(dir) = command.get_current_dir() {
        c.current_dir(dir);
    }
    c
}

/// A JSON file's content (the test fails, naming the file, if it cannot be read).
pub fn read_json(path: &Path) -> serde_json::Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

/// A fresh temporary directory, removed when dropped.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("pullguard-test-")
        .tempdir()
        .expect("create a temporary directory")
}

/// How a command ended.
#[derive(Debug, Clone)]
pub struct RunOutput {
    pub command: String,
    /// The exit code; `None` if a signal ended the process.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl fmt::Display for RunOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "$ {}", self.command)?;
        writeln!(f, "exit code: {:?}", self.code)?;
        writeln!(f, "--- stderr ---\n{}", self.stderr.trim_end())?;
        write!(f, "--- stdout ---\n{}", self.stdout.trim_end())
    }
}

/// Runs `command` to completion and captures its output.
pub fn run(mut command: Command) -> RunOutput {
    let shown = format!("{command:?}");
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot start {shown}: {e}"));
    RunOutput {
        command: shown,
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The `pullguard` binary built for this test run, or `$PULLGUARD_BIN` when set (to
/// measure another build, such as the one before a change, with the same scenarios).
pub fn pullguard() -> Command {
    match std::env::var_os("PULLGUARD_BIN") {
        Some(bin) if !bin.is_empty() => Command::new(bin),
        _ => Command::new(env!("CARGO_BIN_EXE_pullguard")),
    }
}

/// What a whole process cost: its peak resident memory and its wall time.
#[derive(Debug, Clone, Copy)]
pub struct Cost {
    pub max_rss_kib: u64,
    pub wall: Duration,
}

/// Runs `command` under GNU time (Debian package `time`) and reads its peak RSS.
pub fn run_measured(command: &Command) -> (RunOutput, Cost) {
    const MARK: &str = "pullguard-test-max-rss-kib=";
    let time = Path::new("/usr/bin/time");
    assert!(
        time.is_file(),
        "/usr/bin/time not found: install the Debian package `time`; {SETUP_HINT}"
    );
    let format = format!("{MARK}%M");
    let c = wrapped(time, &["-f", &format], command);
    let started = std::time::Instant::now();
    let mut out = run(c);
    let wall = started.elapsed();
    let line = out
        .stderr
        .lines()
        .rfind(|l| l.starts_with(MARK))
        .unwrap_or_else(|| panic!("no GNU time report\n{out}"))
        .to_string();
    let max_rss_kib = line[MARK.len()..].trim().parse().expect("a number of KiB");
    out.stderr = out.stderr.replace(&format!("{line}\n"), "");
    (out, Cost { max_rss_kib, wall })
}

/// One request the [`StaticServer`] answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The request path without the leading `/`, exactly as sent (still percent-encoded).
    pub path: String,
    pub status: u16,
}

/// A minimal HTTP/1.1 static file server on `127.0.0.1:<free port>`: answers `GET` with a
/// file under its root (request paths are *not* percent-decoded, so `1.%3F.json` is the file
/// of that name), 404 otherwise, one request per connection. Every request is logged, so
/// tests can assert the exact sequence a client made. Stops when dropped.
pub struct StaticServer {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl StaticServer {
    pub fn start(root: &Path) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (root, thread_log, thread_stop) = (root.to_path_buf(), log.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if thread_stop.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    serve_one(stream, &root, &thread_log);
                }
            }
        });
        StaticServer {
            addr,
            log,
            stop,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:<port>/<dir>/` (with the trailing slash the TUF CLI expects).
    pub fn url(&self, dir: &str) -> String {
        format!("http://{}/{dir}/", self.addr)
    }

    /// Every request so far, oldest first.
    pub fn log(&self) -> Vec<Request> {
        self.log.lock().expect("request log").clone()
    }

    /// The paths of every request so far, oldest first.
    pub fn requests(&self) -> Vec<String> {
        self.log().into_iter().map(|r| r.path).collect()
    }

    pub fn clear(&self) {
        self.log.lock().expect("request log").clear();
    }

    /// The request log, one request per line, for failure messages.
    pub fn describe(&self) -> String {
        let lines: Vec<String> = self
            .log()
            .iter()
            .map(|r| format!("  GET /{} -> {}", r.path, r.status))
            .collect();
        if lines.is_empty() {
            "  (no requests)".to_string()
        } else {
            lines.join("\n")
        }
    }
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve_one(mut stream: TcpStream, root: &Path, log: &Mutex<Vec<Request>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head);
    let mut parts = head.lines().next().unwrap_or("").split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return; // Not a request (e.g. the wake-up connection from Drop).
    };
    let path = target.trim_start_matches('/').to_string();
    let body = if method == "GET" {
        resolve(root, &path).and_then(|file| std::fs::read(file).ok())
    } else {
        None
    };
    let status = if body.is_some() { 200 } else { 404 };
    log.lock()
        .expect("request log")
        .push(Request { path, status });
    let body = body.unwrap_or_else(|| b"not found\n".to_vec());
    let reason = if status == 200 { "OK" } else { "Not Found" };
    let header = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Length: {}\r\n\
         Content-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(header.as_bytes());
    let _ = stream.write_all(&body);
    let _ = stream.flush();
}

/// The file under `root` that `path` names; `None` for anything that could leave `root`.
fn resolve(root: &Path, path: &str) -> Option<PathBuf> {
    let relative = Path::new(path);
    let plain = relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)));
    let file = root.join(relative);
    (plain && !path.is_empty() && file.is_file()).then_some(file)
}
