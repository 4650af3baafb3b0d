//! `pullguard.v1.Verifier` over any [`Verify`] domain: each handler takes the request,
//! calls the domain off the async runtime (a verification may wait on the network), and
//! converts the answer. A denial is an `Ok` verdict with `admitted = false`; only a request
//! that is not one (bad reference or digest) is an error status, `InvalidArgument`.

use std::sync::Arc;

use pullguard_proto::v1 as pb;
use tonic::{Request, Response, Status};

use crate::node::Node;
use crate::verdict::{ReasonCode, Verdict};

/// What the service asks of the domain.
pub trait Verify: Send + Sync + 'static {
    /// The verdict for `reference` (as the runtime names it) with manifest `digest`.
    fn verify(&self, reference: &str, digest: &str) -> Verdict;
}

impl Verify for Node {
    fn verify(&self, reference: &str, digest: &str) -> Verdict {
        Node::verify(self, reference, digest)
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

#[tonic::async_trait]
impl<V: Verify> pb::verifier_server::Verifier for VerifierService<V> {
    async fn verify(
        &self,
        request: Request<pb::VerifyRequest>,
    ) -> Result<Response<pb::Verdict>, Status> {
        let pb::VerifyRequest { reference, digest } = request.into_inner();
        let domain = Arc::clone(&self.domain);
        let verdict = tokio::task::spawn_blocking(move || domain.verify(&reference, &digest))
            .await
            .map_err(|e| Status::internal(format!("the verification did not finish: {e}")))?;
        if verdict.reason == ReasonCode::InvalidRequest {
            return Err(Status::invalid_argument(verdict.message));
        }
        Ok(Response::new(pb::Verdict::from(&verdict)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pb::verifier_server::Verifier as _;

    struct Fixed(Verdict);
    impl Verify for Fixed {
        fn verify(&self, _: &str, _: &str) -> Verdict {
            self.0.clone()
        }
    }

    fn ask(v: Verdict) -> Result<pb::Verdict, Box<Status>> {
        let service = VerifierService::new(Arc::new(Fixed(v)));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        runtime
            .block_on(service.verify(Request::new(pb::VerifyRequest {
                reference: "r".into(),
                digest: "d".into(),
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
        let bad = ask(Verdict::deny(ReasonCode::InvalidRequest, "digest: `x`")).expect_err("bad");
        assert_eq!(bad.code(), tonic::Code::InvalidArgument);
        assert_eq!(bad.message(), "digest: `x`");
    }
}
