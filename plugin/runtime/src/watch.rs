//! The containerd event watcher. Images can reach containerd without passing the verifier
//! hook: `ctr images pull --local`, `ctr images import`, and CRI's local-pull fallback. The
//! watcher subscribes to containerd's image events, checks each image created or updated in
//! the watched namespaces, and removes the image record of one the node denies (in `warn`
//! mode the node admits, noting the would-be denial, so nothing is removed). On connecting
//! it checks the images already there; when containerd goes away it reconnects.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use containerd_client::services::v1::events_client::EventsClient;
use containerd_client::services::v1::images_client::ImagesClient;
use containerd_client::services::v1::{
    DeleteImageRequest, GetImageRequest, Image, ImageCreate, ImageUpdate, ListImagesRequest,
    SubscribeRequest,
};
use containerd_client::types::Descriptor;
use prost::Message;
use pullguard_node::service::{ask, Verify};
use pullguard_node::Answer;
use pullguard_plugin::verdict::one_line;
use tonic::transport::Channel;

use crate::reference::{classify, ImageName};
use crate::ticket::Tickets;

/// The longest wait between two attempts to reach containerd.
const RETRY_MAX: Duration = Duration::from_secs(30);
/// The first wait after a connection is lost.
const RETRY_MIN: Duration = Duration::from_millis(250);
/// How long one connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a connection to containerd ended.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("cannot reach containerd at {}: {reason}", socket.display())]
    Unreachable { socket: PathBuf, reason: String },
    #[error("containerd refused {call} in namespace {namespace}: {reason}")]
    Call {
        call: &'static str,
        namespace: String,
        reason: String,
    },
    #[error("containerd's event stream ended: {reason}")]
    Events { reason: String },
    #[error("a verification did not finish: {reason}")]
    NotFinished { reason: String },
}

/// What the watcher did with one image record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Admitted (possibly in warn mode, which the message says).
    Kept { name: String },
    /// Denied, and its record removed (or already gone).
    Removed {
        name: String,
        reason: String,
        message: String,
    },
}

/// `message` for containerd namespace `namespace`.
pub(crate) fn namespaced<T>(message: T, namespace: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Ok(value) = namespace.parse() {
        request.metadata_mut().insert("containerd-namespace", value);
    }
    request
}

/// The descriptor as the hook gets it on stdin.
fn descriptor_json(d: &Descriptor) -> String {
    serde_json::json!({"mediaType": d.media_type, "digest": d.digest, "size": d.size}).to_string()
}

pub struct Watcher<V> {
    socket: PathBuf,
    namespaces: BTreeSet<String>,
    node: Arc<V>,
    tickets: Arc<Tickets>,
}

impl<V: Verify> Watcher<V> {
    /// A watcher asking `node`; `tickets` are the CRI proxy's, whose pulls make image ID
    /// records before any tagged one.
    pub fn new(
        socket: PathBuf,
        namespaces: &[String],
        node: Arc<V>,
        tickets: Arc<Tickets>,
    ) -> Self {
        Watcher {
            socket,
            namespaces: namespaces.iter().cloned().collect(),
            node,
            tickets,
        }
    }

    /// Watches until `stopped` turns true, reconnecting (with a growing pause, at most
    /// 30 s) whenever containerd cannot be reached or its event stream ends.
    pub async fn run(self, mut stopped: tokio::sync::watch::Receiver<bool>) {
        let mut pause = RETRY_MIN;
        loop {
            let mut reached = false;
            let error = tokio::select! {
                ended = self.follow(&mut reached) => match ended {
                    Ok(never) => match never {},
                    Err(e) => e,
                },
                _ = stopped.wait_for(|s| *s) => return,
            };
            // A connection that got as far as the events was working: start the pauses over.
            if reached {
                pause = RETRY_MIN;
            }
            eprintln!(
                "pullguard: watcher: {error}; trying again in {} ms",
                pause.as_millis()
            );
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stopped.wait_for(|s| *s) => return,
            }
            pause = (pause * 2).min(RETRY_MAX);
        }
    }

    /// One connection: subscribe, check what is there, then follow the events until the
    /// connection ends; `reached` says whether it got as far as the events.
    async fn follow(&self, reached: &mut bool) -> Result<std::convert::Infallible, WatchError> {
        let channel = pullguard_proto::client::channel(&self.socket, CONNECT_TIMEOUT)
            .await
            .map_err(|e| WatchError::Unreachable {
                socket: self.socket.clone(),
                reason: pullguard_plugin::io::error_chain(&e),
            })?;
        // Subscribed before the sweep, so that an image created during it is not missed.
        // containerd answers a subscription only with its first event, so the call runs
        // beside the sweep.
        let mut events_client = EventsClient::new(channel.clone());
        let mut subscription = Aborting(tokio::spawn(async move {
            events_client
                .subscribe(SubscribeRequest {
                    filters: vec![r#"topic~="/images/""#.to_string()],
                })
                .await
        }));
        let mut images = ImagesClient::new(channel);
        for ns in &self.namespaces {
            for outcome in self.sweep(&mut images, ns).await? {
                report(ns, &outcome);
            }
        }
        *reached = true;
        eprintln!(
            "pullguard: watcher: watching containerd at {} (namespaces {})",
            self.socket.display(),
            self.namespaces
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut events = (&mut subscription.0)
            .await
            .map_err(|e| WatchError::NotFinished {
                reason: e.to_string(),
            })?
            .map_err(|s| WatchError::Events {
                reason: format!("{:?}: {}", s.code(), s.message()),
            })?
            .into_inner();
        loop {
            let envelope = match events.message().await {
                Ok(Some(e)) => e,
                Ok(None) => {
                    return Err(WatchError::Events {
                        reason: "containerd closed it".into(),
                    })
                }
                Err(s) => {
                    return Err(WatchError::Events {
                        reason: format!("{:?}: {}", s.code(), s.message()),
                    })
                }
            };
            if !self.namespaces.contains(&envelope.namespace) {
                continue;
            }
            let Some(event) = envelope.event else {
                continue;
            };
            let name = match envelope.topic.as_str() {
                "/images/create" => ImageCreate::decode(event.value.as_slice()).map(|e| e.name),
                "/images/update" => ImageUpdate::decode(event.value.as_slice()).map(|e| e.name),
                _ => continue,
            };
            let Ok(name) = name else {
                eprintln!(
                    "pullguard: watcher: warning: an undecodable {} event in {}",
                    envelope.topic, envelope.namespace
                );
                continue;
            };
            let ns = envelope.namespace;
            let image = match images
                .get(namespaced(GetImageRequest { name: name.clone() }, &ns))
                .await
            {
                Ok(r) => r.into_inner().image,
                Err(s) if s.code() == tonic::Code::NotFound => None,
                Err(s) => return Err(call_error("Images.Get", &ns, &s)),
            };
            // Gone already (removed, or replaced by a later event that is on its way).
            let Some(image) = image else { continue };
            let outcome = self.check(&mut images, &ns, &image, None).await?;
            report(&ns, &outcome);
        }
    }

    async fn list(
        &self,
        images: &mut ImagesClient<Channel>,
        ns: &str,
    ) -> Result<Vec<Image>, WatchError> {
        images
            .list(namespaced(ListImagesRequest { filters: vec![] }, ns))
            .await
            .map(|r| r.into_inner().images)
            .map_err(|s| call_error("Images.List", ns, &s))
    }

    /// Checks every image in `ns`, from one listing (a record's siblings are asked about
    /// afresh, so the order does not matter).
    pub async fn sweep(
        &self,
        images: &mut ImagesClient<Channel>,
        ns: &str,
    ) -> Result<Vec<Outcome>, WatchError> {
        let all = self.list(images, ns).await?;
        let mut outcomes = Vec::with_capacity(all.len());
        for image in &all {
            outcomes.push(self.check(images, ns, image, Some(&all)).await?);
        }
        Ok(outcomes)
    }

    /// The node's answer for `reference` at `target`, as the hook would ask it.
    async fn ask(&self, reference: String, target: &Descriptor) -> Result<Answer, WatchError> {
        ask(
            &self.node,
            reference,
            target.digest.clone(),
            Some(descriptor_json(target)),
        )
        .await
        .map_err(|e| WatchError::NotFinished {
            reason: e.to_string(),
        })
    }

    /// Checks one image record. `all` is every record in the namespace, needed only for a
    /// digest-only or ID record (listed here when not given).
    async fn check(
        &self,
        images: &mut ImagesClient<Channel>,
        ns: &str,
        image: &Image,
        all: Option<&[Image]>,
    ) -> Result<Outcome, WatchError> {
        let name = image.name.clone();
        let Some(target) = &image.target else {
            return self
                .remove(
                    images,
                    ns,
                    image,
                    "malformed",
                    "the record has no target".into(),
                )
                .await;
        };
        // A tagged name stands or falls by itself. A digest-only name, which trusted
        // metadata lists only as a signed pin, and an ID record, which names nothing, are
        // kept while a tagged record of the same digest is admitted (a CRI pull makes all
        // three).
        let denial = match classify(&name) {
            None => {
                return self
                    .remove(
                        images,
                        ns,
                        image,
                        "invalid_request",
                        format!("`{name}` is neither an image reference nor an image ID"),
                    )
                    .await
            }
            Some(ImageName::Reference(reference)) => {
                let tagged = is_tagged(&reference);
                let answer = self.ask(reference, target).await?;
                if answer.verdict.admitted {
                    return Ok(Outcome::Kept { name });
                }
                let denial = (answer.verdict.reason.as_str(), answer.verdict.message);
                if tagged {
                    return self.remove(images, ns, image, denial.0, denial.1).await;
                }
                denial
            }
            Some(ImageName::Id(_)) => (
                "not_signed",
                format!(
                    "no tagged image record of {} is admitted, so its ID record is not either",
                    target.digest
                ),
            ),
        };
        let listed;
        let all = match all {
            Some(all) => all,
            None => {
                listed = self.list(images, ns).await?;
                &listed
            }
        };
        let siblings = all.iter().filter_map(|i| {
            let same =
                i.name != name && i.target.as_ref().is_some_and(|t| t.digest == target.digest);
            match classify(&i.name) {
                Some(ImageName::Reference(r)) if same && is_tagged(&r) => Some(r),
                _ => None,
            }
        });
        // A CRI proxy pull under way makes the records before its tag.
        let siblings = siblings.chain(self.tickets.tagged_for_digest(&target.digest));
        for reference in siblings {
            if self.ask(reference, target).await?.verdict.admitted {
                return Ok(Outcome::Kept { name });
            }
        }
        self.remove(images, ns, image, denial.0, denial.1).await
    }

    /// Removes `image`'s record, unless it has meanwhile been pointed at another digest.
    async fn remove(
        &self,
        images: &mut ImagesClient<Channel>,
        ns: &str,
        image: &Image,
        reason: &str,
        message: String,
    ) -> Result<Outcome, WatchError> {
        let request = DeleteImageRequest {
            name: image.name.clone(),
            sync: false,
            target: image.target.clone(),
        };
        match images.delete(namespaced(request, ns)).await {
            Ok(_) => {}
            Err(s) if s.code() == tonic::Code::NotFound => {}
            Err(s) => return Err(call_error("Images.Delete", ns, &s)),
        }
        Ok(Outcome::Removed {
            name: image.name.clone(),
            reason: reason.to_string(),
            message,
        })
    }
}

/// A task stopped when the session that started it ends.
struct Aborting<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for Aborting<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Whether a (normalised) reference names a tag.
fn is_tagged(reference: &str) -> bool {
    reference
        .parse::<pullguard_plugin::registry::ImageRef>()
        .is_ok_and(|r| r.tag().is_some())
}

fn call_error(call: &'static str, namespace: &str, s: &tonic::Status) -> WatchError {
    WatchError::Call {
        call,
        namespace: namespace.to_string(),
        reason: format!("{:?}: {}", s.code(), s.message()),
    }
}

fn report(ns: &str, outcome: &Outcome) {
    if let Outcome::Removed {
        name,
        reason,
        message,
    } = outcome
    {
        eprintln!(
            "pullguard: watcher: {ns}: removed {name}: DENY {reason} {}",
            one_line(message)
        );
    }
}
