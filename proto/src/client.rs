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
    Ok(VerifierClient::new(channel(socket, timeout).await?))
}

/// A gRPC channel to the server on the Unix socket `socket` (the daemon's, or a runtime's),
/// connected within `timeout`.
pub async fn channel(socket: &Path, timeout: Duration) -> Result<Channel, tonic::transport::Error> {
    endpoint(timeout)
        .connect_with_connector(UnixConnector(socket.to_path_buf()))
        .await
}

/// [`channel`], connected when first used (and again whenever the connection is lost).
pub fn lazy_channel(socket: &Path, timeout: Duration) -> Channel {
    endpoint(timeout).connect_with_connector_lazy(UnixConnector(socket.to_path_buf()))
}

fn endpoint(timeout: Duration) -> Endpoint {
    // The URI is never resolved: every connection goes to the socket.
    Endpoint::from_static("http://pullguard.invalid").connect_timeout(timeout)
}

/// Connects every "URI" to one Unix socket.
#[derive(Clone)]
struct UnixConnector(PathBuf);

impl tower::Service<Uri> for UnixConnector {
    type Response = hyper_util::rt::TokioIo<tokio::net::UnixStream>;
    type Error = std::io::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Uri) -> Self::Future {
        let path = self.0.clone();
        Box::pin(async move {
            let stream = tokio::net::UnixStream::connect(path).await?;
            Ok(hyper_util::rt::TokioIo::new(stream))
        })
    }
}

/// `e` and each of its causes, joined with `: `. A cause whose text the message before it
/// already ends with is not repeated (many errors both show their cause and return it).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut last = out.clone();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !last.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        last = text;
        cause = c.source();
    }
    out
}
