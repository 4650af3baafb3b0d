//! The connection to the daemon over its Unix socket, shared by the CLI and the runtime hook
//! (which links nothing else of pullguard's).

use std::path::{Path, PathBuf};
use std::time::Duration;

use tonic::transport::{Channel, Endpoint, Uri};

use crate::v1::verifier_client::VerifierClient;

/// The socket the daemon serves when the config names none.
pub const DEFAULT_SOCKET: &str = "/run/pullguard/pullguard.sock";

/// Connects to the daemon at `socket`, giving up after `timeout`.
pub async fn connect(
    socket: &Path,
    timeout: Duration,
) -> Result<VerifierClient<Channel>, tonic::transport::Error> {
    let path: PathBuf = socket.to_path_buf();
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
        .await?;
    Ok(VerifierClient::new(channel))
}
