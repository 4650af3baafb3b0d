//! `pullguard-hook`: what the executable containerd's bindir image verifier runs once per pull, as
//! `pullguard-hook -name REF -digest DIGEST -stdin-media-type application/vnd.oci.descriptor.v1+json`
//! with the descriptor on stdin. It asks the daemon's `Verify` over the daemon's socket and
//! prints one line, `ADMIT|DENY <reason_code> <message>`; exit 0 admits, anything else
//! rejects. Fail closed: a daemon that cannot be reached or does not answer within the
//! deadline, bad flags or a bad descriptor all reject, saying why.
//!
//! Environment: `PULLGUARD_SOCKET` (default `/run/pullguard/pullguard.sock`) and
//! `PULLGUARD_HOOK_DEADLINE_MS` (default 8000, below containerd's 10 s per-verifier timeout).

mod request;

use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::Duration;

use pullguard_proto::v1 as pb;

use request::{HookError, Request};

/// The answer, as printed.
#[derive(Debug, PartialEq, Eq)]
pub struct Line {
    pub admit: bool,
    pub reason: String,
    pub message: String,
}

impl Line {
    fn deny(reason: &str, message: String) -> Line {
        Line {
            admit: false,
            reason: reason.to_string(),
            message,
        }
    }

    /// The printed form: one line, no control characters, at most `MAX_LINE` bytes (containerd
    /// truncates what a verifier prints; the reason code must survive).
    pub fn render(&self) -> String {
        let word = if self.admit { "ADMIT" } else { "DENY" };
        let mut out = format!("{word} {} ", self.reason);
        for c in self.message.chars() {
            let c = if c.is_control() { ' ' } else { c };
            if out.len() + c.len_utf8() > MAX_LINE {
                break;
            }
            out.push(c);
        }
        out.trim_end().to_string()
    }
}

/// The longest line printed, in bytes.
pub const MAX_LINE: usize = 4096;

/// The whole hook: the flags from the command line, the descriptor from stdin, one line on
/// stdout, and the exit status.
pub fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let line = run(&args);
    let mut stdout = std::io::stdout().lock();
    // Nothing more can be done if stdout is gone; the exit status still decides.
    let _ = writeln!(stdout, "{}", line.render());
    let _ = stdout.flush();
    if line.admit {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn run(args: &[String]) -> Line {
    let request = match Request::parse(args).and_then(|r| {
        let mut stdin = Vec::new();
        std::io::stdin()
            .lock()
            .take(request::MAX_DESCRIPTOR as u64 + 1)
            .read_to_end(&mut stdin)
            .map_err(|e| HookError::Stdin {
                reason: e.to_string(),
            })?;
        r.with_descriptor(&stdin)
    }) {
        Ok(r) => r,
        Err(e) => return Line::deny(e.reason_code(), e.to_string()),
    };
    let settings = match request::Settings::from_env(|k| std::env::var(k).ok()) {
        Ok(s) => s,
        Err(e) => return Line::deny(e.reason_code(), e.to_string()),
    };
    ask(&settings.socket, settings.deadline, request)
}

/// Asks the daemon; every failure is a denial that says what went wrong.
fn ask(socket: &std::path::Path, deadline: Duration, request: Request) -> Line {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
    {
        Ok(r) => r,
        Err(e) => return Line::deny("internal", format!("cannot start the async runtime: {e}")),
    };
    let unreachable = |why: String| {
        Line::deny(
            "unavailable",
            format!(
                "cannot reach the pullguard daemon at {}: {why} (is `pullguard serve` running?); the pull is refused",
                socket.display()
            ),
        )
    };
    runtime.block_on(async {
        let asked = tokio::time::timeout(deadline, async {
            let mut client = pullguard_proto::client::connect(socket, deadline)
                .await
                .map_err(|e| unreachable(pullguard_proto::client::error_chain(&e)))?;
            client
                .verify(pb::VerifyRequest {
                    reference: request.name,
                    digest: request.digest,
                    descriptor_json: request.descriptor_json,
                })
                .await
                .map(tonic::Response::into_inner)
                .map_err(|s| match s.code() {
                    tonic::Code::InvalidArgument => Line::deny(
                        "invalid_request",
                        format!("the pullguard daemon refused the request: {}", s.message()),
                    ),
                    _ => unreachable(format!("{:?}: {}", s.code(), s.message())),
                })
        })
        .await;
        match asked {
            Ok(Ok(verdict)) => line_of(&verdict),
            Ok(Err(line)) => line,
            Err(_) => unreachable(format!("no answer within {} ms", deadline.as_millis())),
        }
    })
}

/// The reason code of a protobuf reason number: "threshold_not_met" for
/// `REASON_THRESHOLD_NOT_MET`, as the daemon's logs name it.
fn reason_code(n: i32) -> String {
    match pb::Reason::try_from(n) {
        Ok(pb::Reason::Unspecified) | Err(_) => "internal".to_string(),
        Ok(r) => r
            .as_str_name()
            .trim_start_matches("REASON_")
            .to_ascii_lowercase(),
    }
}

/// The daemon's verdict as a line. In warn mode it admits with the denial's reason code, and
/// its message says "warn mode, would deny".
fn line_of(v: &pb::Verdict) -> Line {
    Line {
        admit: v.admitted,
        reason: reason_code(v.reason),
        message: v.message.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_codes_are_the_lower_case_names() {
        assert_eq!(
            reason_code(pb::Reason::ThresholdNotMet as i32),
            "threshold_not_met"
        );
        assert_eq!(reason_code(pb::Reason::Verified as i32), "verified");
        assert_eq!(reason_code(0), "internal");
        assert_eq!(reason_code(9999), "internal");
    }

    #[test]
    fn a_line_is_one_line_and_bounded() {
        let l = Line::deny("malformed", format!("a\nb\r\t{}", "é".repeat(5000)));
        let r = l.render();
        assert!(r.starts_with("DENY malformed a b"));
        assert!(!r.contains('\n') && !r.contains('\r'));
        assert!(r.len() <= MAX_LINE);
    }

    #[test]
    fn warn_mode_admits_with_the_denial_reason() {
        let v = pb::Verdict {
            admitted: true,
            reason: pb::Reason::NotSigned as i32,
            would_deny: pb::Reason::NotSigned as i32,
            message: "warn mode, would deny: no signature".into(),
            ..Default::default()
        };
        assert_eq!(
            line_of(&v).render(),
            "ADMIT not_signed warn mode, would deny: no signature"
        );
    }
}
