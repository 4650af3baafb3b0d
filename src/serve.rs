//! `pullguard serve`: the node daemon. It opens the RocksDB state, answers
//! `pullguard.v1.Verifier` on its Unix socket (directory 0750, socket 0660), and on SIGTERM
//! or SIGINT stops taking requests, lets those in flight finish, removes its socket and
//! exits 0.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use pullguard_cache::Store;
use pullguard_plugin::config::Config;
use pullguard_plugin::grpc::service::VerifierService;
use pullguard_plugin::node::Node;
use pullguard_proto::v1::verifier_server::VerifierServer;

pub fn serve(config: &Config) -> Result<()> {
    let d = &config.daemon;
    std::fs::create_dir_all(&d.state_dir)
        .with_context(|| format!("state directory {}", d.state_dir.display()))?;
    let db = Arc::new(
        Store::open(&d.state_dir).with_context(|| format!("opening {}", d.state_dir.display()))?,
    );
    let node = Arc::new(Node::new(config, db)?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run(&d.socket, node))
}

async fn run(socket: &Path, node: Arc<Node>) -> Result<()> {
    let listener = bind(socket)?;
    eprintln!("pullguard: serving on {}", socket.display());
    let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
    let served = tonic::transport::Server::builder()
        .add_service(VerifierServer::new(VerifierService::new(node)))
        .serve_with_incoming_shutdown(incoming, shutdown_signal())
        .await;
    let _ = std::fs::remove_file(socket);
    served.context("serving gRPC")?;
    eprintln!("pullguard: stopped");
    Ok(())
}

/// The socket, in a directory of mode 0750, with mode 0660. A stale socket of an earlier
/// run is replaced; any other file there is left alone and refused.
fn bind(socket: &Path) -> Result<tokio::net::UnixListener> {
    if let Some(dir) = socket.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o750))
                .with_context(|| dir.display().to_string())?;
        }
    }
    match std::fs::symlink_metadata(socket) {
        Ok(m) if m.file_type().is_socket() => std::fs::remove_file(socket)
            .with_context(|| format!("removing the stale socket {}", socket.display()))?,
        Ok(_) => bail!("{} exists and is not a socket", socket.display()),
        Err(_) => {}
    }
    let listener = tokio::net::UnixListener::bind(socket)
        .with_context(|| format!("binding {}", socket.display()))?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o660))
        .with_context(|| socket.display().to_string())?;
    Ok(listener)
}

/// Resolves at the first SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the daemon would not stop cleanly: stop now instead.
        eprintln!("pullguard: cannot install signal handlers");
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
