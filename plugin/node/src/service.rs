//! `pullguard.v1.Verifier` over any [`Verify`] domain: each handler takes the request,
//! calls the domain off the async runtime (a verification may wait on the network), and
//! converts the answer. A decision, denials included, is an `Ok` verdict; only what is not
//! a decision is an error status, decided in one place ([`ServiceError`]).

use std::sync::Arc;

use pullguard_proto::v1 as pb;
use tonic::{Request, Response, Status};

use crate::{Answer, Node, NodeStatus, UnknownScope};
use pullguard_plugin::verdict::ReasonCode;

/// What the service asks of the domain.
pub trait Verify: Send + Sync + 'static {
    /// The answer for `reference` (as the runtime names it) with manifest `digest`.
    fn verify(&self, reference: &str, digest: &str, descriptor: Option<&str>) -> Answer;
    /// The answer when it needs no network and no waiting; `None` sends the request to
    /// [`Verify::verify`] off the async runtime.
    fn verify_at_once(&self, _: &str, _: &str, _: Option<&str>) -> Option<Answer> {
        None
    }
    fn status(&self) -> NodeStatus;
    /// Refreshes one scope (every scope when `None`) now.
    fn refresh(&self, scope: Option<&str>) -> Result<NodeStatus, UnknownScope>;
}

/// Asks `domain` from async code: on the async runtime when the answer needs no network and
/// no waiting (a cache hit), otherwise on the blocking pool. The one way the socket, the CRI
/// proxy and the event watcher put a question to the node.
pub async fn ask<V: Verify>(
    domain: &Arc<V>,
    reference: String,
    digest: String,
    descriptor: Option<String>,
) -> Result<Answer, tokio::task::JoinError> {
    if let Some(answer) = domain.verify_at_once(&reference, &digest, descriptor.as_deref()) {
        return Ok(answer);
    }
    let domain = Arc::clone(domain);
    tokio::task::spawn_blocking(move || domain.verify(&reference, &digest, descriptor.as_deref()))
        .await
}

impl Verify for Node {
    fn verify(&self, reference: &str, digest: &str, descriptor: Option<&str>) -> Answer {
        Node::verify(self, reference, digest, descriptor)
    }
    fn verify_at_once(
        &self,
        reference: &str,
        digest: &str,
        descriptor: Option<&str>,
    ) -> Option<Answer> {
        Node::verify_at_once(self, reference, digest, descriptor)
    }
    fn status(&self) -> NodeStatus {
        Node::status(self)
    }
    fn refresh(&self, scope: Option<&str>) -> Result<NodeStatus, UnknownScope> {
        Node::refresh(self, scope)
    }
}

/// Why a call got no answer. A policy denial is never one of these: it is a verdict.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The request is not one the domain can answer (bad reference, digest, descriptor).
    #[error("{message}")]
    InvalidRequest { message: String },
    #[error(transparent)]
    UnknownScope(#[from] UnknownScope),
    /// The work could not be finished (the daemon is stopping, or it failed).
    #[error("the call did not finish: {reason}")]
    NotFinished { reason: String },
}

impl From<ServiceError> for Status {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::InvalidRequest { .. } => Status::invalid_argument(e.to_string()),
            ServiceError::UnknownScope(_) => Status::not_found(e.to_string()),
            ServiceError::NotFinished { .. } => Status::unavailable(e.to_string()),
        }
    }
}

pub struct VerifierService<V> {
    domain: Arc<V>,
}

impl<V> VerifierService<V> {
    pub fn new(domain: Arc<V>) -> Self {
        VerifierService { domain }
    }
}

impl<V: Verify> VerifierService<V> {
    /// Runs `f` on the domain off the async runtime.
    async fn blocking<R: Send + 'static>(
        &self,
        f: impl FnOnce(&V) -> R + Send + 'static,
    ) -> Result<R, ServiceError> {
        let domain = Arc::clone(&self.domain);
        tokio::task::spawn_blocking(move || f(&domain))
            .await
            .map_err(|e| ServiceError::NotFinished {
                reason: e.to_string(),
            })
    }
}

#[tonic::async_trait]
impl<V: Verify> pb::verifier_server::Verifier for VerifierService<V> {
    async fn verify(
        &self,
        request: Request<pb::VerifyRequest>,
    ) -> Result<Response<pb::Verdict>, Status> {
        let pb::VerifyRequest {
            reference,
            digest,
            descriptor_json,
        } = request.into_inner();
        let descriptor = Some(descriptor_json).filter(|j| !j.is_empty());
        let answer = ask(&self.domain, reference, digest, descriptor)
            .await
            .map_err(|e| ServiceError::NotFinished {
                reason: e.to_string(),
            })?;
        if answer.verdict.reason == ReasonCode::InvalidRequest {
            return Err(ServiceError::InvalidRequest {
                message: answer.verdict.message,
            }
            .into());
        }
        Ok(Response::new(pb::Verdict::from(&answer)))
    }

    async fn status(
        &self,
        _: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let status = self.blocking(|d| d.status()).await?;
        Ok(Response::new(pb::StatusResponse::from(&status)))
    }

    async fn refresh(
        &self,
        request: Request<pb::RefreshRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let scope = request.into_inner().scope;
        let status = self
            .blocking(move |d| d.refresh(Some(scope.as_str()).filter(|s| !s.is_empty())))
            .await?
            .map_err(ServiceError::from)?;
        Ok(Response::new(pb::StatusResponse::from(&status)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pb::verifier_server::Verifier as _;
    use pullguard_plugin::verdict::Verdict;

    struct Fixed(Verdict);
    impl Verify for Fixed {
        fn verify(&self, _: &str, _: &str, _: Option<&str>) -> Answer {
            Answer::from(self.0.clone())
        }
        fn status(&self) -> NodeStatus {
            NodeStatus {
                scopes: Vec::new(),
                cache_hits: 3,
                cache_misses: 1,
                evaluations: 1,
            }
        }
        fn refresh(&self, scope: Option<&str>) -> Result<NodeStatus, UnknownScope> {
            Err(UnknownScope {
                name: scope.unwrap_or_default().to_string(),
            })
        }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
    }

    fn ask(v: Verdict) -> Result<pb::Verdict, Box<Status>> {
        let service = VerifierService::new(Arc::new(Fixed(v)));
        runtime()
            .block_on(service.verify(Request::new(pb::VerifyRequest {
                reference: "r".into(),
                digest: "d".into(),
                descriptor_json: String::new(),
            })))
            .map(Response::into_inner)
            .map_err(Box::new)
    }

    #[test]
    fn a_denial_is_a_verdict_and_bad_input_an_invalid_argument() {
        let denied = ask(Verdict::deny(ReasonCode::Expired, "timestamp expired")).expect("ok");
        assert!(!denied.admitted);
        assert_eq!(denied.reason, pb::Reason::Expired as i32);
        assert_eq!(denied.message, "timestamp expired");
        let outage = ask(Verdict::deny(ReasonCode::Unavailable, "registry down")).expect("ok");
        assert_eq!(outage.reason, pb::Reason::Unavailable as i32);
        let bad = ask(Verdict::deny(ReasonCode::InvalidRequest, "digest: `x`")).expect_err("bad");
        assert_eq!(bad.code(), tonic::Code::InvalidArgument);
        assert_eq!(bad.message(), "digest: `x`");
    }

    #[test]
    fn status_converts_and_an_unknown_scope_is_not_found() {
        let service = VerifierService::new(Arc::new(Fixed(Verdict::deny(ReasonCode::Expired, ""))));
        let rt = runtime();
        let status = rt
            .block_on(service.status(Request::new(pb::StatusRequest {})))
            .expect("status")
            .into_inner();
        assert_eq!((status.cache_hits, status.cache_misses), (3, 1));
        let err = rt
            .block_on(service.refresh(Request::new(pb::RefreshRequest {
                scope: "r.io/nope".into(),
            })))
            .expect_err("unknown");
        assert_eq!(err.code(), tonic::Code::NotFound);
        assert_eq!(err.message(), "no scope r.io/nope is configured");
    }
}
