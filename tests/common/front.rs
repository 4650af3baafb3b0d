//! A malicious front for a real registry, on 127.0.0.1: every request is forwarded to the
//! registry as it is, except those a test's rule answers itself; every answer can be held
//! back for a while (a registry that is honest but slow). One request per connection.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// An answer made up by the front: status, headers, body.
pub type Answer = (u16, Vec<(String, String)>, Vec<u8>);

/// Decides, from the method and path, whether the front answers itself.
pub type Rule = dyn Fn(&str, &str) -> Option<Answer> + Send + Sync;

pub struct Front {
    pub host: String,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Front {
    /// Forwards to `upstream` (`host:port`), answering what `rule` answers itself, each
    /// answer held back by `delay`.
    pub fn start(upstream: &str, delay: Duration, rule: Arc<Rule>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let host = listener.local_addr().expect("addr").to_string();
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let (stop2, upstream) = (Arc::clone(&stop), upstream.to_string());
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (rule, upstream) = (Arc::clone(&rule), upstream.clone());
                        std::thread::spawn(move || serve(stream, &upstream, delay, rule.as_ref()));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Front {
            host,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(stream: TcpStream, upstream: &str, delay: Duration, rule: &Rule) {
    let _ = stream.set_nonblocking(false);
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut head = Vec::new();
    let mut first = String::new();
    if reader.read_line(&mut first).is_err() || first.is_empty() {
        return;
    }
    let mut parts = first.split_whitespace();
    let (method, path) = (
        parts.next().unwrap_or_default().to_string(),
        parts.next().unwrap_or_default().to_string(),
    );
    head.extend_from_slice(first.as_bytes());
    let mut content_length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() || line.len() <= 2 {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            content_length = v.trim().parse().unwrap_or(0);
        }
        // One request per connection, both ways.
        if !lower.starts_with("connection:") {
            head.extend_from_slice(line.as_bytes());
        }
    }
    head.extend_from_slice(b"Connection: close\r\n\r\n");
    let mut body = vec![0u8; content_length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let answer = match rule(&method, &path) {
        Some((status, headers, body)) => {
            let mut out = format!("HTTP/1.1 {status} X\r\nConnection: close\r\n");
            if method != "HEAD" {
                out.push_str(&format!("Content-Length: {}\r\n", body.len()));
            }
            for (k, v) in headers {
                out.push_str(&format!("{k}: {v}\r\n"));
            }
            out.push_str("\r\n");
            let mut bytes = out.into_bytes();
            if method != "HEAD" {
                bytes.extend_from_slice(&body);
            }
            bytes
        }
        None => {
            let Ok(mut up) = TcpStream::connect(upstream) else {
                return;
            };
            if up
                .write_all(&head)
                .and_then(|()| up.write_all(&body))
                .is_err()
            {
                return;
            }
            let mut bytes = Vec::new();
            if up.read_to_end(&mut bytes).is_err() {
                return;
            }
            bytes
        }
    };
    std::thread::sleep(delay);
    let mut stream = stream;
    let _ = stream.write_all(&answer);
}
