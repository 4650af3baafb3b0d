//! The CRI image proxy: `runtime.v1.ImageService` on pullguard's own socket, for kubelet's
//! `imageServiceEndpoint`, in front of the runtime's CRI socket (containerd's or CRI-O's).
//!
//! `PullImage` finds the digest the tag points at (with the request's credentials when it
//! carries a user name and password; otherwise the node resolves it with its own), asks
//! the node, and on admission pulls `repository@digest` upstream, so that what the runtime
//! pulls is what was checked; a denial is `PERMISSION_DENIED` with pullguard's reason.
//! `ImageStatus` reports an image present upstream as absent unless one of its digests is
//! admitted, so kubelet pulls it through the proxy. `ListImages`, `RemoveImage` and
//! `ImageFsInfo` pass through.

use std::sync::Arc;

use base64::Engine as _;
use containerd_client::services::v1::images_client::ImagesClient;
use containerd_client::services::v1::{
    CreateImageRequest, GetImageRequest, Image, UpdateImageRequest,
};
use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use pullguard_node::service::{ask, Verify};
use pullguard_node::Answer;
use pullguard_plugin::config::Config;
use pullguard_plugin::registry::auth::Credentials;
use pullguard_plugin::registry::oci::{
    MEDIA_TYPE_DOCKER_LIST, MEDIA_TYPE_DOCKER_MANIFEST, MEDIA_TYPE_IMAGE_INDEX,
    MEDIA_TYPE_IMAGE_MANIFEST,
};
use pullguard_plugin::registry::{Digest, ImageRef, Registry};
use pullguard_plugin::verdict::{one_line, ReasonCode};
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use crate::reference::normalize;
use crate::ticket::Tickets;
use crate::watch::namespaced;

/// Why the proxy refuses a request before (or instead of) asking the runtime.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    #[error("`{spec}` is not an image reference")]
    NotAReference { spec: String },
    #[error("auth.auth is not base64 of user:password")]
    BadAuth,
    #[error("cannot resolve {image} with the request's credentials: {reason}")]
    Resolve { image: String, reason: String },
    #[error("the check did not finish: {reason}")]
    NotFinished { reason: String },
    #[error("{message}")]
    Invalid { message: String },
    #[error("DENY {reason} {message}")]
    Denied {
        reason: &'static str,
        message: String,
    },
}

impl From<ProxyError> for Status {
    fn from(e: ProxyError) -> Self {
        let text = format!("pullguard: {e}");
        match e {
            ProxyError::NotAReference { .. } | ProxyError::BadAuth | ProxyError::Invalid { .. } => {
                Status::invalid_argument(text)
            }
            ProxyError::Resolve { .. } | ProxyError::NotFinished { .. } => {
                Status::unavailable(text)
            }
            ProxyError::Denied { .. } => Status::permission_denied(text),
        }
    }
}

/// Finds the digest a tag points at, with the credentials a pull request carries.
pub trait Resolve: Send + Sync + 'static {
    fn resolve(&self, image: &ImageRef, credentials: &Credentials) -> Result<Digest, String>;
}

/// [`Resolve`] against the registry, reached as the node's config says (plain HTTP, CA,
/// time limit) but with the request's credentials.
pub struct RegistryResolver {
    config: Config,
}

impl RegistryResolver {
    pub fn new(config: Config) -> Self {
        RegistryResolver { config }
    }
}

impl Resolve for RegistryResolver {
    fn resolve(&self, image: &ImageRef, credentials: &Credentials) -> Result<Digest, String> {
        let host = image.registry();
        let mut rc = self
            .config
            .registries
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(host))
            .map(|(_, r)| r.clone())
            .unwrap_or_default();
        rc.username = Some(credentials.username.clone());
        rc.password = Some(credentials.password.clone());
        rc.password_file = None;
        let registry = Registry::new(host, &rc, None).map_err(|e| e.to_string())?;
        let tag = image.tag().unwrap_or("latest");
        let accept = [
            MEDIA_TYPE_IMAGE_MANIFEST,
            MEDIA_TYPE_IMAGE_INDEX,
            MEDIA_TYPE_DOCKER_MANIFEST,
            MEDIA_TYPE_DOCKER_LIST,
        ];
        match registry.resolve(image.repository(), tag, &accept) {
            Ok(Some(d)) => Ok(d),
            Ok(None) => Err(format!("{image}: no such tag")),
            Err(e) => Err(pullguard_plugin::io::error_chain(&e)),
        }
    }
}

/// The user name and password a pull request carries (`username`/`password`, or `auth`,
/// base64 of `user:password`); `None` when it carries none, or only tokens, which the
/// runtime still gets.
pub fn credentials(auth: Option<&cri::AuthConfig>) -> Result<Option<Credentials>, ProxyError> {
    let Some(a) = auth else { return Ok(None) };
    if !a.username.is_empty() || !a.password.is_empty() {
        return Ok(Some(Credentials {
            username: a.username.clone(),
            password: a.password.clone(),
        }));
    }
    if a.auth.is_empty() {
        return Ok(None);
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(a.auth.trim())
        .map_err(|_| ProxyError::BadAuth)?;
    let text = String::from_utf8(raw).map_err(|_| ProxyError::BadAuth)?;
    let (username, password) = text.split_once(':').ok_or(ProxyError::BadAuth)?;
    Ok(Some(Credentials {
        username: username.to_string(),
        password: password.to_string(),
    }))
}

/// Gives a pulled `repository@digest` its tag in containerd's CRI namespace, as a CRI pull
/// by tag would have, so that kubelet finds the image by its tag next time (and the event
/// watcher sees a tagged name beside the digest-only one).
pub struct ContainerdTags {
    images: ImagesClient<Channel>,
}

/// The containerd namespace of the CRI's images.
const CRI_NAMESPACE: &str = "k8s.io";

impl ContainerdTags {
    pub fn new(containerd: Channel) -> Self {
        ContainerdTags {
            images: ImagesClient::new(containerd),
        }
    }

    /// Points `tagged` at what the record `pinned` points at.
    async fn tag(&self, pinned: &str, tagged: &str) -> Result<(), tonic::Status> {
        let mut images = self.images.clone();
        let get = namespaced(
            GetImageRequest {
                name: pinned.to_string(),
            },
            CRI_NAMESPACE,
        );
        let Some(record) = images.get(get).await?.into_inner().image else {
            return Err(Status::not_found(format!("no image record {pinned}")));
        };
        let image = Image {
            name: tagged.to_string(),
            labels: record.labels,
            target: record.target,
            created_at: None,
            updated_at: None,
        };
        let create = CreateImageRequest {
            image: Some(image.clone()),
            source_date_epoch: None,
        };
        match images.create(namespaced(create, CRI_NAMESPACE)).await {
            Ok(_) => Ok(()),
            Err(s) if s.code() == tonic::Code::AlreadyExists => {
                let update = UpdateImageRequest {
                    image: Some(image),
                    update_mask: None,
                    source_date_epoch: None,
                };
                images
                    .update(namespaced(update, CRI_NAMESPACE))
                    .await
                    .map(|_| ())
            }
            Err(s) => Err(s),
        }
    }
}

pub struct ImageProxy<V> {
    node: Arc<V>,
    upstream: ImageServiceClient<Channel>,
    resolver: Arc<dyn Resolve>,
    tickets: Arc<Tickets>,
    tags: Option<ContainerdTags>,
}

impl<V: Verify> ImageProxy<V> {
    /// A proxy asking `node`, in front of the CRI server on `upstream` (connected when first
    /// used, so that the daemon starts whether or not the runtime is up). `tickets` are
    /// those `node` honours ([`crate::ticket::Ticketed`]); `tags`, when the upstream is
    /// containerd.
    pub fn new(
        node: Arc<V>,
        upstream: Channel,
        resolver: Arc<dyn Resolve>,
        tickets: Arc<Tickets>,
        tags: Option<ContainerdTags>,
    ) -> Self {
        ImageProxy {
            node,
            // As much as containerd sends (its default limit): a node's image list is large.
            upstream: ImageServiceClient::new(upstream).max_decoding_message_size(16 << 20),
            resolver,
            tickets,
            tags,
        }
    }

    async fn verify(&self, reference: String, digest: String) -> Result<Answer, ProxyError> {
        ask(&self.node, reference, digest, None)
            .await
            .map_err(|e| ProxyError::NotFinished {
                reason: e.to_string(),
            })
    }

    /// Whether `image`, present upstream and asked for as `spec`, has an admitted digest.
    async fn admits(&self, spec: &str, image: &cri::Image) -> Result<bool, ProxyError> {
        for (reference, digest) in questions(spec, image) {
            if self.verify(reference, digest).await?.verdict.admitted {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// The questions (reference, digest) any one of whose admission makes `image`, present
/// upstream and asked for as `spec`, present for kubelet:
/// - by tag: that tag at the digest asked for, or at each digest the runtime has for the
///   repository;
/// - by digest alone: that name (a signed pin), then the runtime's tags of the repository
///   at that digest;
/// - by image ID: each of the runtime's tags at each of its digests, then each digest-only
///   name.
fn questions(spec: &str, image: &cri::Image) -> Vec<(String, String)> {
    let parse = |names: &[String]| -> Vec<ImageRef> {
        names.iter().filter_map(|n| n.parse().ok()).collect()
    };
    let repo_digests: Vec<ImageRef> = parse(&image.repo_digests)
        .into_iter()
        .filter(|r| r.digest().is_some())
        .collect();
    let repo_tags = parse(&image.repo_tags);
    let same_repo = |a: &ImageRef, b: &ImageRef| {
        a.registry() == b.registry() && a.repository() == b.repository()
    };
    let digest_of = |r: &ImageRef| r.digest().map(ToString::to_string).unwrap_or_default();
    let asked = normalize(spec)
        .filter(|_| !spec.starts_with("sha256:"))
        .and_then(|n| n.parse::<ImageRef>().ok());
    let mut asks = Vec::new();
    if let Some(a) = asked.as_ref().filter(|a| a.digest().is_some()) {
        asks.push((a.to_string(), digest_of(a)));
    }
    // The runtime's digests in question: of the repository asked for (and of the digest,
    // if one was), or all of them for an image ID.
    let in_question = repo_digests.iter().filter(|rd| {
        asked
            .as_ref()
            .is_none_or(|a| same_repo(a, rd) && a.digest().is_none_or(|d| Some(d) == rd.digest()))
    });
    for rd in in_question {
        match &asked {
            Some(a) if a.tag().is_some() => {
                if a.digest().is_none() {
                    asks.push((a.to_string(), digest_of(rd)));
                }
            }
            _ => {
                for tag in repo_tags.iter().filter(|t| same_repo(t, rd)) {
                    asks.push((tag.to_string(), digest_of(rd)));
                }
                if asked.is_none() {
                    asks.push((rd.to_string(), digest_of(rd)));
                }
            }
        }
    }
    asks
}

fn spec_of(image: Option<&cri::ImageSpec>) -> &str {
    image.map_or("", |i| i.image.as_str())
}

#[tonic::async_trait]
impl<V: Verify> cri::image_service_server::ImageService for ImageProxy<V> {
    async fn pull_image(
        &self,
        request: Request<cri::PullImageRequest>,
    ) -> Result<Response<cri::PullImageResponse>, Status> {
        let mut pull = request.into_inner();
        let spec = spec_of(pull.image.as_ref()).to_string();
        let not_a_reference = || ProxyError::NotAReference { spec: spec.clone() };
        let reference = normalize(&spec).ok_or_else(not_a_reference)?;
        let image: ImageRef = reference.parse().map_err(|_| not_a_reference())?;
        let digest = match (image.digest(), credentials(pull.auth.as_ref())?) {
            (Some(d), _) => d.to_string(),
            (None, Some(credentials)) => {
                let (resolver, asked) = (Arc::clone(&self.resolver), image.clone());
                tokio::task::spawn_blocking(move || resolver.resolve(&asked, &credentials))
                    .await
                    .map_err(|e| ProxyError::NotFinished {
                        reason: e.to_string(),
                    })?
                    .map_err(|reason| ProxyError::Resolve {
                        image: image.to_string(),
                        reason,
                    })?
                    .to_string()
            }
            // The node resolves the tag with its own credentials.
            (None, None) => String::new(),
        };
        let answer = self.verify(reference.clone(), digest).await?;
        let v = &answer.verdict;
        if v.reason == ReasonCode::InvalidRequest {
            return Err(ProxyError::Invalid {
                message: v.message.clone(),
            }
            .into());
        }
        if !v.admitted {
            let denied = ProxyError::Denied {
                reason: v.reason.as_str(),
                message: one_line(&v.message).into_owned(),
            };
            eprintln!("pullguard: cri: PullImage {reference}: {denied}");
            return Err(denied.into());
        }
        // What was checked is what is pulled: the repository at the verified digest. An
        // image admitted without a check (no scope, `unmatched = "admit"`) goes as asked.
        let Some(d) = answer.image.as_ref().and_then(|i| i.digest()).cloned() else {
            return self.upstream.clone().pull_image(pull).await;
        };
        let pinned = ImageRef::new(image.registry(), image.repository(), None, Some(d.clone()))
            .map_err(|_| not_a_reference())?
            .to_string();
        if let Some(spec) = pull.image.as_mut() {
            spec.image = pinned.clone();
        }
        let tagged = image.tag().map(|_| image.clone());
        let _ticket = tagged
            .as_ref()
            .map(|t| self.tickets.issue(t, &d.to_string()));
        let pulled = self.upstream.clone().pull_image(pull).await?;
        if let (Some(tags), Some(tagged)) = (&self.tags, &tagged) {
            let name = ImageRef::new(tagged.registry(), tagged.repository(), tagged.tag(), None)
                .map(|r| r.to_string())
                .unwrap_or_default();
            if let Err(e) = tags.tag(&pinned, &name).await {
                eprintln!(
                    "pullguard: cri: warning: pulled {pinned} but could not tag it {name} in containerd: {}",
                    e.message()
                );
            }
        }
        Ok(pulled)
    }

    async fn image_status(
        &self,
        request: Request<cri::ImageStatusRequest>,
    ) -> Result<Response<cri::ImageStatusResponse>, Status> {
        let asked = request.into_inner();
        let spec = spec_of(asked.image.as_ref()).to_string();
        let status = self
            .upstream
            .clone()
            .image_status(asked)
            .await?
            .into_inner();
        let Some(image) = &status.image else {
            return Ok(Response::new(status));
        };
        if self.admits(&spec, image).await.map_err(Status::from)? {
            Ok(Response::new(status))
        } else {
            // Present but not admitted: kubelet is told it is absent, so it pulls it here.
            Ok(Response::new(cri::ImageStatusResponse::default()))
        }
    }

    async fn list_images(
        &self,
        request: Request<cri::ListImagesRequest>,
    ) -> Result<Response<cri::ListImagesResponse>, Status> {
        self.upstream
            .clone()
            .list_images(request.into_inner())
            .await
    }

    async fn remove_image(
        &self,
        request: Request<cri::RemoveImageRequest>,
    ) -> Result<Response<cri::RemoveImageResponse>, Status> {
        self.upstream
            .clone()
            .remove_image(request.into_inner())
            .await
    }

    async fn image_fs_info(
        &self,
        request: Request<cri::ImageFsInfoRequest>,
    ) -> Result<Response<cri::ImageFsInfoResponse>, Status> {
        self.upstream
            .clone()
            .image_fs_info(request.into_inner())
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_questions_follow_the_name_asked_for() {
        const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        const E: &str = "sha256:1123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let repo = "127.0.0.1:5000/acme/app";
        let image = cri::Image {
            id: "sha256:00".into(),
            repo_tags: vec![format!("{repo}:1"), "127.0.0.1:5000/acme/other:1".into()],
            repo_digests: vec![
                format!("{repo}@{D}"),
                format!("{repo}@{E}"),
                format!("127.0.0.1:5000/acme/other@{D}"),
                "not a reference".into(),
            ],
            ..Default::default()
        };
        let q = |spec: &str| questions(spec, &image);
        let pair = |r: String, d: &str| (r, d.to_string());
        assert_eq!(
            q(&format!("{repo}:1")),
            vec![pair(format!("{repo}:1"), D), pair(format!("{repo}:1"), E)]
        );
        assert_eq!(
            q(&format!("{repo}:1@{E}")),
            vec![pair(format!("{repo}:1@{E}"), E)]
        );
        assert_eq!(
            q(&format!("{repo}@{D}")),
            vec![pair(format!("{repo}@{D}"), D), pair(format!("{repo}:1"), D)]
        );
        assert_eq!(
            q("sha256:00"),
            vec![
                pair(format!("{repo}:1"), D),
                pair(format!("{repo}@{D}"), D),
                pair(format!("{repo}:1"), E),
                pair(format!("{repo}@{E}"), E),
                pair("127.0.0.1:5000/acme/other:1".into(), D),
                pair(format!("127.0.0.1:5000/acme/other@{D}"), D),
            ]
        );
        assert_eq!(q("127.0.0.1:5000/acme/third:1"), vec![]);
    }

    #[test]
    fn credentials_come_from_the_user_and_password_or_from_auth() {
        assert_eq!(credentials(None).expect("none"), None);
        let a = |u: &str, p: &str, auth: &str| cri::AuthConfig {
            username: u.into(),
            password: p.into(),
            auth: auth.into(),
            ..Default::default()
        };
        let alice = Some(Credentials {
            username: "alice".into(),
            password: "pw:with:colons".into(),
        });
        assert_eq!(
            credentials(Some(&a("alice", "pw:with:colons", ""))).expect("ok"),
            alice
        );
        let encoded = base64::engine::general_purpose::STANDARD.encode("alice:pw:with:colons");
        assert_eq!(credentials(Some(&a("", "", &encoded))).expect("ok"), alice);
        let tokens_only = cri::AuthConfig {
            registry_token: "t".into(),
            ..Default::default()
        };
        assert_eq!(credentials(Some(&tokens_only)).expect("ok"), None);
        for bad in [
            "***",
            &base64::engine::general_purpose::STANDARD.encode("nocolon"),
        ] {
            let e = credentials(Some(&a("", "", bad))).expect_err(bad);
            assert_eq!(e, ProxyError::BadAuth);
            assert_eq!(Status::from(e).code(), tonic::Code::InvalidArgument);
        }
    }
}
