//! A client of the daemon over its Unix socket, for the CLI.

use std::path::{Path, PathBuf};
use std::time::Duration;

use pullguard_proto::v1::verifier_client::VerifierClient;
use tonic::transport::Channel;

pub use pullguard_proto::client::DEFAULT_SOCKET;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the pullguard daemon at {}: {reason} (is `pullguard serve` running?)", socket.display())]
    Unreachable { socket: PathBuf, reason: String },
}

/// Connects to the daemon at `socket`, giving up after `timeout`.
pub async fn connect(
    socket: &Path,
    timeout: Duration,
) -> Result<VerifierClient<Channel>, ClientError> {
    pullguard_proto::client::connect(socket, timeout)
        .await
        .map_err(|e| ClientError::Unreachable {
            socket: socket.to_path_buf(),
            reason: crate::io::error_chain(&e),
        })
}
