//! A client of the daemon over its Unix socket, for the CLI and the runtime hooks.

use std::path::{Path, PathBuf};
use std::time::Duration;

use pullguard_proto::v1::verifier_client::VerifierClient;
use tonic::transport::{Channel, Endpoint, Uri};

/// The socket the daemon serves when the config names none.
pub const DEFAULT_SOCKET: &str = "/run/pullguard/pullguard.sock";

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
    let path = socket.to_path_buf();
    // The URI is never resolved: every connection goes to the socket.
    let channel = Endpoint::from_static("http://pullguard.invalid")
        .connect_timeout(timeout)
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(path).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
            }
        }))
        .await
        .map_err(|e| ClientError::Unreachable {
            socket: socket.to_path_buf(),
            reason: crate::io::error_chain(&e),
        })?;
    Ok(VerifierClient::new(channel))
}
