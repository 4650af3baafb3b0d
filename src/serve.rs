//! `pullguard serve`: the node daemon. It opens the RocksDB state, refreshes every scope
//! once, answers `pullguard.v1.Verifier` on its Unix socket (a directory it creates is
//! 0750; the socket is 0660 from the moment it can be reached) while a background task
//! keeps each scope's timestamp fresh, and on SIGTERM or SIGINT stops taking requests,
//! lets those in flight finish, removes its socket and exits 0. A task that dies takes
//! the daemon down with it.

use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use k8s_cri::v1::image_service_server::ImageServiceServer;
use pullguard_cache::Store;
use pullguard_node::audit::AuditLog;
use pullguard_node::service::VerifierService;
use pullguard_node::Node;
use pullguard_plugin::config::Config;
use pullguard_plugin::verdict::one_line;
use pullguard_proto::v1::verifier_server::VerifierServer;
use pullguard_runtime::cri::{ContainerdTags, ImageProxy, RegistryResolver};
use pullguard_runtime::ticket::{Ticketed, Tickets};
use pullguard_runtime::watch::Watcher;

pub fn serve(config: &Config) -> Result<()> {
    let d = &config.daemon;
    if config.scopes.is_empty() {
        eprintln!(
            "pullguard: warning: no [[scope]] is configured: every image gets daemon.unmatched"
        );
    }
    std::fs::create_dir_all(&d.state_dir)
        .with_context(|| format!("state directory {}", d.state_dir.display()))?;
    let db = Arc::new(
        Store::open(&d.state_dir).with_context(|| format!("opening {}", d.state_dir.display()))?,
    );
    let audit = AuditLog::open(&d.audit_log, AUDIT_MAX_BYTES)?;
    let node = Arc::new(Node::new(config, db)?.with_audit(audit));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run(config, Arc::clone(&node)))?;
    // The node (its HTTP clients and the database) is let go here, off the async runtime.
    drop(runtime);
    drop(node);
    eprintln!("pullguard: stopped");
    Ok(())
}

async fn run(config: &Config, node: Arc<Node>) -> Result<()> {
    let (socket, metrics) = (
        config.daemon.socket.as_path(),
        config.daemon.metrics.as_deref(),
    );
    use tokio::signal::unix::{signal, SignalKind};
    // Signals first: a daemon that cannot be stopped cleanly does not start.
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    // Every scope is refreshed once before serving, so the first answers come from fresh
    // trusted state (a scope that cannot be refreshed is served from what is stored).
    let first = {
        let node = Arc::clone(&node);
        tokio::task::spawn_blocking(move || node.refresh(None))
            .await
            .context("the first refresh did not finish")?
    };
    if let Ok(status) = first {
        for s in status.scopes {
            match s.last_error {
                None => eprintln!(
                    "pullguard: scope {}: root v{}, timestamp v{}, snapshot v{}",
                    s.name, s.root_version, s.timestamp_version, s.snapshot_version
                ),
                Some((reason, message)) => eprintln!(
                    "pullguard: warning: scope {}: refresh failed ({reason}): {}",
                    s.name,
                    one_line(&message)
                ),
            }
        }
    }
    let metrics = match metrics {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("daemon.metrics: binding {addr}"))?,
        ),
        None => None,
    };
    // What the socket, the watcher and the CRI proxy ask: the node, with the proxy's pull
    // tickets (see pullguard_runtime::ticket).
    let tickets = Arc::new(Tickets::default());
    let asked = Arc::new(Ticketed::new(Arc::clone(&node), Arc::clone(&tickets)));
    let (listener, ours) = bind(socket).await?;
    let (cri_listener, cri_ours) = match &config.cri.socket {
        Some(path) => {
            let (listener, ours) = bind(path).await.context("cri.socket")?;
            eprintln!(
                "pullguard: CRI image proxy on {} for {}",
                path.display(),
                config.cri.upstream.display()
            );
            (Some(listener), Some((path.as_path(), ours)))
        }
        None => (None, None),
    };
    eprintln!("pullguard: serving on {}", socket.display());
    let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
    // One shutdown signal for every task.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    // The gRPC health service: SERVING for the verifier (and the server as a whole) while
    // it serves, NOT_SERVING once it is stopping.
    let (mut health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<VerifierServer<VerifierService<Ticketed<Node>>>>()
        .await;
    let server = tokio::spawn({
        let stopped = stopped.clone();
        let service = VerifierServer::new(VerifierService::new(Arc::clone(&asked)));
        async move {
            tonic::transport::Server::builder()
                .add_service(health_service)
                .add_service(service)
                .serve_with_incoming_shutdown(incoming, until_stopped(stopped))
                .await
                .context("serving gRPC")
        }
    });
    let refresher = tokio::spawn({
        let (node, stopped) = (Arc::clone(&node), stopped.clone());
        async move {
            refresh_in_background(node, stopped).await;
            Ok(())
        }
    });
    let watcher = tokio::spawn({
        let stopped = stopped.clone();
        let watcher = config.containerd.socket.clone().map(|containerd| {
            Watcher::new(
                containerd,
                &config.containerd.namespaces,
                Arc::clone(&asked),
                Arc::clone(&tickets),
            )
        });
        async move {
            match watcher {
                Some(w) => w.run(stopped).await,
                None => until_stopped(stopped).await,
            }
            Ok(())
        }
    });
    let proxy = tokio::spawn({
        let stopped = stopped.clone();
        let served = cri_listener.map(|l| (l, image_proxy(config, Arc::clone(&asked), tickets)));
        async move {
            match served {
                Some((listener, proxy)) => tonic::transport::Server::builder()
                    .add_service(ImageServiceServer::new(proxy))
                    .serve_with_incoming_shutdown(
                        tokio_stream::wrappers::UnixListenerStream::new(listener),
                        until_stopped(stopped),
                    )
                    .await
                    .context("serving the CRI image proxy"),
                None => {
                    until_stopped(stopped).await;
                    Ok(())
                }
            }
        }
    });
    let exporter = tokio::spawn(serve_metrics(metrics, Arc::clone(&node), stopped));
    let mut tasks = [
        ("the gRPC server", server),
        ("the background refresh", refresher),
        ("the containerd event watcher", watcher),
        ("the CRI image proxy", proxy),
        ("the metrics endpoint", exporter),
    ];
    let signalled = async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    };
    let ended = first_to_end(signalled, &mut tasks).await;
    health
        .set_not_serving::<VerifierServer<VerifierService<Ticketed<Node>>>>()
        .await;
    let _ = stop.send(true);
    if ended.is_none() {
        // Requests in flight finish; the refresh in progress (bounded by the deadline) too.
        for (_, task) in tasks {
            let _ = task.await;
        }
    }
    // Only our own sockets are removed (another daemon may have replaced them).
    for (path, ours) in std::iter::once((socket, ours)).chain(cri_ours) {
        if std::fs::symlink_metadata(path).is_ok_and(|m| (m.dev(), m.ino()) == ours) {
            let _ = std::fs::remove_file(path);
        }
    }
    match ended {
        None => Ok(()),
        Some(e) => Err(e),
    }
}

/// The CRI image proxy before `config.cri.upstream`, asking `node`, which honours `tickets`.
/// When the upstream is the containerd the watcher watches, pulled images are tagged there.
fn image_proxy(
    config: &Config,
    node: Arc<Ticketed<Node>>,
    tickets: Arc<Tickets>,
) -> ImageProxy<Ticketed<Node>> {
    let timeout = std::time::Duration::from_secs(5);
    let upstream = pullguard_proto::client::lazy_channel(&config.cri.upstream, timeout);
    let tags = (config.containerd.socket.as_ref() == Some(&config.cri.upstream))
        .then(|| ContainerdTags::new(upstream.clone()));
    let resolver = Arc::new(RegistryResolver::new(config.clone()));
    ImageProxy::new(node, upstream, resolver, tickets, tags)
}

/// Waits for `signalled` (`None`: a clean stop) or for the first of `tasks` to end, which
/// is an error whatever it returned: a daemon task never ends on its own, and one that did
/// would leave the daemon half alive.
async fn first_to_end(
    signalled: impl std::future::Future<Output = ()>,
    tasks: &mut [(&'static str, tokio::task::JoinHandle<Result<()>>)],
) -> Option<anyhow::Error> {
    let any_ends = std::future::poll_fn(|cx| {
        for (name, task) in tasks.iter_mut() {
            if let std::task::Poll::Ready(r) =
                std::future::Future::poll(std::pin::Pin::new(task), cx)
            {
                return std::task::Poll::Ready(match r {
                    Ok(Ok(())) => anyhow::anyhow!("{name} stopped"),
                    Ok(Err(e)) => e.context(*name),
                    Err(e) => anyhow::Error::new(e).context(*name),
                });
            }
        }
        std::task::Poll::Pending
    });
    tokio::select! {
        _ = signalled => None,
        e = any_ends => Some(e),
    }
}

/// How large the audit log grows before it is rotated (one older file is kept).
const AUDIT_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// Returns once the daemon is told to stop (or the sender is gone).
async fn until_stopped(mut stopped: tokio::sync::watch::Receiver<bool>) {
    let _ = stopped.wait_for(|s| *s).await;
}

/// Serves Prometheus `GET /metrics` on `listener` (none: waits for the stop) until told to
/// stop. One short request per connection, read with a size and a time limit.
async fn serve_metrics(
    listener: Option<tokio::net::TcpListener>,
    node: Arc<Node>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) -> Result<()> {
    let Some(listener) = listener else {
        until_stopped(stopped).await;
        return Ok(());
    };
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => accepted.context("accepting")?,
            _ = stopped.wait_for(|s| *s) => return Ok(()),
        };
        let node = Arc::clone(&node);
        tokio::spawn(async move {
            let _ = tokio::time::timeout(
                std::time::Duration::from_secs(5),
                answer_metrics(stream, &node),
            )
            .await;
        });
    }
}

async fn answer_metrics(mut stream: tokio::net::TcpStream, node: &Node) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut request = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 8192 {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        request.extend_from_slice(&buf[..n]);
    }
    let (status, body) = if request.starts_with(b"GET /metrics ") {
        ("200 OK", node.metrics_text())
    } else {
        (
            "404 Not Found",
            "only GET /metrics is served here\n".to_string(),
        )
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

/// Refreshes each scope when it is due ([`Node::refresh_due`]) until told to stop.
async fn refresh_in_background(node: Arc<Node>, mut stopped: tokio::sync::watch::Receiver<bool>) {
    loop {
        let n = Arc::clone(&node);
        let wait = match tokio::task::spawn_blocking(move || n.refresh_due()).await {
            Ok(wait) => wait,
            Err(e) => {
                // The task ends, and `run` takes the daemon down with it.
                eprintln!("pullguard: error: a background refresh failed: {e}");
                return;
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stopped.wait_for(|s| *s) => return,
        }
    }
}

/// Binds the socket. A directory that does not exist is created 0750 (an existing one is
/// left as it is). The socket is bound in a private directory beside it, made 0660 and
/// only then moved into place, so it is never reachable with wider permissions. A socket
/// left by an earlier run is replaced, but not one that answers (another daemon), and no
/// other kind of file. Returns the listener and the socket's (device, inode).
async fn bind(socket: &Path) -> Result<(tokio::net::UnixListener, (u64, u64))> {
    let dir = socket
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
    }
    match std::fs::symlink_metadata(socket) {
        Ok(m) if m.file_type().is_socket() => {
            if tokio::net::UnixStream::connect(socket).await.is_ok() {
                bail!("{} is served by another process", socket.display());
            }
        }
        Ok(_) => bail!("{} exists and is not a socket", socket.display()),
        Err(_) => {}
    }
    let private = dir.join(format!(".pullguard-bind-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&private);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&private)
        .with_context(|| format!("creating {}", private.display()))?;
    let staged = private.join("s");
    let bound = (|| {
        let listener = tokio::net::UnixListener::bind(&staged)?;
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o660))?;
        std::fs::rename(&staged, socket)?;
        let m = std::fs::symlink_metadata(socket)?;
        Ok::<_, std::io::Error>((listener, (m.dev(), m.ino())))
    })();
    let _ = std::fs::remove_dir_all(&private);
    bound.with_context(|| format!("binding {}", socket.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    }

    #[test]
    fn a_task_that_ends_brings_the_daemon_down_and_a_signal_stops_it_cleanly() {
        let rt = runtime();
        let forever = || tokio::spawn(std::future::pending::<Result<()>>());
        let ended = rt.block_on(async {
            let mut tasks = [
                ("the gRPC server", forever()),
                ("the background refresh", tokio::spawn(async { Ok(()) })),
                ("the metrics endpoint", forever()),
            ];
            first_to_end(std::future::pending(), &mut tasks).await
        });
        assert_eq!(
            ended.map(|e| e.to_string()).as_deref(),
            Some("the background refresh stopped")
        );
        let failed = rt.block_on(async {
            let mut tasks = [(
                "the metrics endpoint",
                tokio::spawn(async { Err(anyhow::anyhow!("accepting: too many open files")) }),
            )];
            first_to_end(std::future::pending(), &mut tasks).await
        });
        let failed = failed.expect("an error");
        assert_eq!(
            pullguard_plugin::io::error_chain(failed.as_ref()),
            "the metrics endpoint: accepting: too many open files"
        );
        let panicked = rt.block_on(async {
            let mut tasks = [("the gRPC server", tokio::spawn(async { panic!("boom") }))];
            first_to_end(std::future::pending(), &mut tasks).await
        });
        assert!(panicked.is_some_and(|e| e.to_string() == "the gRPC server"));
        let signalled = rt.block_on(async {
            let mut tasks = [("the gRPC server", forever())];
            first_to_end(async {}, &mut tasks).await
        });
        assert!(signalled.is_none());
    }
}
