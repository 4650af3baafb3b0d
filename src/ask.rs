//! The commands that ask the daemon over its socket: `verify` (without `--state`),
//! `status` and `refresh`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use clap::Args;
use pullguard_plugin::config::Config;
use pullguard_plugin::grpc::client::connect;
use pullguard_plugin::verdict::{one_line, ReasonCode};
use pullguard_proto::v1 as pb;
use serde_json::json;

use crate::exit::Exit;

/// How long a command waits to reach the daemon.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Args)]
pub struct SocketArgs {
    /// The daemon's socket (default: the config's `daemon.socket`).
    #[arg(long)]
    pub socket: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RefreshArgs {
    /// The scope to refresh, REGISTRY/NAMESPACE (default: every scope).
    scope: Option<String>,
    #[command(flatten)]
    socket: SocketArgs,
}

fn socket_of(given: Option<PathBuf>, config: &dyn Fn() -> Result<Config>) -> Result<PathBuf> {
    match given {
        Some(s) => Ok(s),
        None => Ok(config()?.daemon.socket),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// The reason code a protobuf reason number stands for, if any.
fn reason_of(n: i32) -> Option<ReasonCode> {
    pb::Reason::try_from(n)
        .ok()
        .and_then(|r| ReasonCode::try_from(r).ok())
}

fn reason_str(n: i32) -> &'static str {
    reason_of(n).map_or("unspecified", ReasonCode::as_str)
}

/// Asks the daemon about `image` and prints its verdict: one line, or JSON.
pub fn verify(
    image: &str,
    socket: SocketArgs,
    config: &dyn Fn() -> Result<Config>,
) -> Result<Exit> {
    let path = socket_of(socket.socket, config)?;
    let rt = runtime()?;
    let (answer, took) = rt.block_on(async {
        let mut client = connect(&path, CONNECT_TIMEOUT).await?;
        let request = pb::VerifyRequest {
            reference: image.to_string(),
            digest: String::new(),
            descriptor_json: String::new(),
        };
        let started = Instant::now();
        let answer = client.verify(request).await;
        Ok::<_, anyhow::Error>((answer, started.elapsed()))
    })?;
    let verdict = match answer {
        Ok(v) => v.into_inner(),
        Err(status) if status.code() == tonic::Code::InvalidArgument => {
            let message = one_line(status.message()).into_owned();
            if socket.json {
                println!(
                    "{}",
                    json!({"admitted": false, "reason": "invalid_request", "message": message})
                );
            } else {
                println!("DENY invalid_request {}: {message}", one_line(image));
            }
            return Ok(Exit::Error);
        }
        Err(status) => {
            return Err(anyhow::anyhow!(
                "the daemon at {} failed the request ({:?}): {}",
                path.display(),
                status.code(),
                status.message()
            ))
        }
    };
    let shown = match (image.contains('@'), verdict.digest.as_str()) {
        (false, d) if !d.is_empty() => format!("{image}@{d}"),
        _ => image.to_string(),
    };
    if socket.json {
        println!("{}", verdict_json(&verdict, took));
    } else {
        let mut notes = Vec::new();
        if verdict.cached {
            notes.push("cached".to_string());
        }
        if verdict.offline_grace {
            notes.push("offline grace".to_string());
        }
        notes.push(format!("answered in {}", latency(took)));
        let (what, message) = (one_line(&shown), one_line(&verdict.message));
        let notes = notes.join(", ");
        if verdict.admitted {
            println!("ADMIT {what}: {message} [{notes}]");
        } else {
            println!(
                "DENY {} {what}: {message} [{notes}]",
                reason_str(verdict.reason)
            );
        }
    }
    Ok(if verdict.admitted {
        Exit::Admitted
    } else {
        Exit::Denied
    })
}

fn latency(d: Duration) -> String {
    if d < Duration::from_millis(10) {
        format!("{} µs", d.as_micros())
    } else {
        format!("{} ms", d.as_millis())
    }
}

fn verdict_json(v: &pb::Verdict, took: Duration) -> serde_json::Value {
    json!({
        "admitted": v.admitted,
        "reason": reason_str(v.reason),
        "message": v.message,
        "valid_until": (v.valid_until != 0).then(|| unix_time(v.valid_until)),
        "cached": v.cached,
        "scope": v.scope,
        "repository": v.repository,
        "tag": v.tag,
        "digest": v.digest,
        "evidence": v.evidence.as_ref().map(|e| json!({
            "root_version": e.root_version,
            "timestamp_version": e.timestamp_version,
            "snapshot_version": e.snapshot_version,
            "role": e.role,
            "role_version": e.role_version,
            "signature_version": e.signature_version,
            "key_ids": e.key_ids,
            "length": e.length,
        })),
        "offline_grace": v.offline_grace,
        "would_deny": reason_of(v.would_deny).map(ReasonCode::as_str),
        "latency_us": took.as_micros() as u64,
    })
}

fn unix_time(secs: i64) -> String {
    DateTime::<Utc>::from_timestamp(secs, 0).map_or_else(|| secs.to_string(), |t| t.to_rfc3339())
}

/// `pullguard status`: how each scope stands.
pub fn status(socket: SocketArgs, config: &dyn Fn() -> Result<Config>) -> Result<Exit> {
    let path = socket_of(socket.socket, config)?;
    let status = ask_status(&path, None)?;
    print_status(&status, socket.json);
    Ok(Exit::Admitted)
}

/// `pullguard refresh [SCOPE]`: refreshes now; exit 1 when a scope's refresh failed.
pub fn refresh(a: RefreshArgs, config: &dyn Fn() -> Result<Config>) -> Result<Exit> {
    let path = socket_of(a.socket.socket, config)?;
    let status = ask_status(&path, Some(a.scope.unwrap_or_default()))?;
    print_status(&status, a.socket.json);
    Ok(if status.scopes.iter().any(|s| !s.last_error.is_empty()) {
        Exit::Denied
    } else {
        Exit::Admitted
    })
}

/// Status, or a refresh of `refresh` (empty: every scope) when given.
pub(crate) fn ask_status(path: &Path, refresh: Option<String>) -> Result<pb::StatusResponse> {
    runtime()?.block_on(async {
        let mut client = connect(path, CONNECT_TIMEOUT).await?;
        let answer = match refresh {
            None => client.status(pb::StatusRequest {}).await,
            Some(scope) => client.refresh(pb::RefreshRequest { scope }).await,
        };
        answer
            .map(tonic::Response::into_inner)
            .map_err(|s| anyhow::anyhow!("the daemon at {}: {}", path.display(), s.message()))
    })
}

fn print_status(status: &pb::StatusResponse, as_json: bool) {
    let time = |t: i64| (t != 0).then(|| unix_time(t));
    if as_json {
        let scopes: Vec<_> = status
            .scopes
            .iter()
            .map(|s| {
                json!({
                    "name": s.name,
                    "mode": s.mode,
                    "root_version": s.root_version,
                    "timestamp_version": s.timestamp_version,
                    "timestamp_expires": time(s.timestamp_expires),
                    "snapshot_version": s.snapshot_version,
                    "snapshot_expires": time(s.snapshot_expires),
                    "last_refresh": time(s.last_refresh),
                    "last_attempt": time(s.last_attempt),
                    "last_error": (!s.last_error.is_empty()).then(|| json!({
                        "reason": reason_str(s.last_error_reason),
                        "message": s.last_error,
                    })),
                    "cached_verdicts": s.cached_verdicts,
                })
            })
            .collect();
        println!(
            "{}",
            json!({
                "scopes": scopes,
                "cache_hits": status.cache_hits,
                "cache_misses": status.cache_misses,
                "evaluations": status.evaluations,
            })
        );
        return;
    }
    let never = || "never".to_string();
    for s in &status.scopes {
        println!(
            "scope {} ({}): root v{}, timestamp v{} (expires {}), snapshot v{} (expires {}); \
             last refresh {}; {} cached verdict(s)",
            s.name,
            s.mode,
            s.root_version,
            s.timestamp_version,
            time(s.timestamp_expires).unwrap_or_else(never),
            s.snapshot_version,
            time(s.snapshot_expires).unwrap_or_else(never),
            time(s.last_refresh).unwrap_or_else(never),
            s.cached_verdicts
        );
        if !s.last_error.is_empty() {
            println!(
                "  last attempt {} failed ({}): {}",
                time(s.last_attempt).unwrap_or_else(never),
                reason_str(s.last_error_reason),
                one_line(&s.last_error)
            );
        }
    }
    if status.scopes.is_empty() {
        println!("no scope is configured");
    }
    println!(
        "cache: {} hit(s), {} miss(es), {} evaluation(s) since start",
        status.cache_hits, status.cache_misses, status.evaluations
    );
}
