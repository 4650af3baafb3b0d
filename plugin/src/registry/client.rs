//! A client for the OCI distribution API, on blocking `reqwest` (see README, "Decisions":
//! `oci-client` reads manifests and blobs without a size cap and is async-only). Every
//! response body is read with a cap and a deadline; every manifest and blob is checked
//! against the digest asked for and against `Docker-Content-Digest`.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::header::{
    AsHeaderName, HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, LOCATION,
};
use reqwest::Method;
use serde::Deserialize;

use super::answer;
use super::auth::{parse_challenge, Challenge, Credentials, TokenResponse};
use super::error::{ErrorKind, RegistryError};
use super::oci::{
    declared_media_type, Descriptor, ImageManifest, Referrer, ReferrersListing, EMPTY_CONFIG,
    MEDIA_TYPE_IMAGE_INDEX, MEDIA_TYPE_IMAGE_MANIFEST,
};
use super::reference::Digest;
use crate::io::{error_chain, instant_after, read_capped, read_capped_sized, Deadline, ReadError};

/// How one registry is reached (pullguard config, `registries.<host>`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// Plain HTTP instead of HTTPS. Never implied, not even for loopback.
    #[serde(default)]
    pub plain_http: bool,
    /// A PEM file of CA certificates trusted in addition to the system's.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub username: Option<String>,
    /// A file holding the password (first line); preferred over `password`.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    #[serde(default)]
    pub password: Option<String>,
    /// Per-request time limit in seconds (default 30).
    #[serde(default)]
    pub timeout_secs: Option<u64>,
    /// A Docker-style `config.json` for this registry's credentials (default
    /// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`).
    #[serde(default)]
    pub docker_config: Option<PathBuf>,
}

/// Size caps per document type (endless-data defence).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    pub manifest: u64,
    pub index: u64,
    pub token: u64,
    pub error_body: u64,
    /// Referrers API pages followed at most.
    pub referrer_pages: usize,
    /// Referrer entries kept at most, over all pages: what a listing may hold in memory
    /// is bounded, however many pages a registry serves.
    pub referrers: usize,
}

impl Default for Caps {
    fn default() -> Self {
        Caps {
            // The distribution spec asks registries to accept manifests up to 4 MiB.
            manifest: 4 * 1024 * 1024,
            index: 4 * 1024 * 1024,
            token: 64 * 1024,
            error_body: 4 * 1024,
            referrer_pages: 16,
            referrers: 1024,
        }
    }
}

/// What a `GET` of a manifest returned, checked against its digest.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    pub bytes: Vec<u8>,
    pub media_type: String,
    pub digest: Digest,
}

impl FetchedManifest {
    pub fn descriptor(&self) -> Descriptor {
        let mut d = Descriptor::new(&self.media_type, &self.bytes);
        d.digest = self.digest.clone();
        d
    }
}

/// How the referrers of a manifest were found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReferrersVia {
    Api,
    TagSchema,
}

/// The referrers of a manifest, as far as they are kept: the last `cap` entries listed
/// (oldest dropped first), and how many were listed in all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referrers {
    pub via: ReferrersVia,
    pub entries: Vec<Referrer>,
    /// Entries of the asked-for type listed over all pages read, kept or not.
    pub listed: usize,
    cap: usize,
}

impl Referrers {
    fn new(via: ReferrersVia, cap: usize) -> Self {
        Referrers {
            via,
            entries: Vec::new(),
            listed: 0,
            cap,
        }
    }

    /// Adds one page's entries of `artifact_type` (all with `None`); entries whose media
    /// type is too long to be one were never kept by the parser and are skipped.
    fn add(&mut self, listing: ReferrersListing, artifact_type: Option<&str>) {
        for r in listing
            .manifests
            .into_iter()
            .filter_map(Referrer::from_listed)
        {
            if artifact_type.is_some_and(|t| r.artifact_type.as_deref() != Some(t)) {
                continue;
            }
            self.listed += 1;
            self.entries.push(r);
        }
        if self.entries.len() > self.cap {
            let extra = self.entries.len() - self.cap;
            self.entries.drain(..extra);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Pull,
    Push,
}

impl Access {
    fn actions(self) -> &'static str {
        match self {
            Access::Pull => "pull",
            Access::Push => "pull,push",
        }
    }
}

struct CachedToken {
    header: String,
    until: Instant,
}

/// The longest a bearer token is reused, whatever `expires_in` the token server names.
const TOKEN_LIFETIME_MAX: Duration = Duration::from_secs(3600);

/// Why a client for a registry could not be set up (before any request).
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("{}: {source}", path.display())]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {reason}", path.display())]
    BadCertificates { path: PathBuf, reason: String },
    #[error("cannot build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    #[error("registry {host}: username and password must be configured together")]
    HalfCredentials { host: String },
    #[error(transparent)]
    Credentials(#[from] super::auth::CredentialError),
    #[error("`{host}` is not a registry host name")]
    BadHost { host: String },
}

/// One registry host. Clones share the HTTP client, tokens and what is known about blobs;
/// [`Registry::with_deadline`] gives a clone whose every request ends by one deadline.
#[derive(Clone)]
pub struct Registry {
    host: String,
    base: String,
    /// The registry's own origin: the only one that gets its credentials, and the only one
    /// whose challenge is answered.
    origin: reqwest::Url,
    http: Client,
    credentials: Option<Credentials>,
    /// Bearer tokens by `repository:<name>:<actions>` scope.
    tokens: Arc<Mutex<HashMap<String, CachedToken>>>,
    /// Set once the registry has asked for basic auth: every later request carries it.
    basic: Arc<AtomicBool>,
    /// Blobs this client uploaded or saw (repository, digest): not asked about again.
    known_blobs: Arc<Mutex<HashSet<(String, Digest)>>>,
    timeout: Duration,
    caps: Caps,
    /// The whole operation's deadline (a verification's), when there is one.
    deadline: Option<Deadline>,
}

type Result<T, E = RegistryError> = std::result::Result<T, E>;

impl Registry {
    /// A client for `host` (`name[:port]`). Credentials come from `config`, else from
    /// `docker_config` (a Docker-style `config.json`), else none (anonymous).
    pub fn new(
        host: &str,
        config: &RegistryConfig,
        docker_config: Option<&std::path::Path>,
    ) -> Result<Self, SetupError> {
        let timeout = Duration::from_secs(config.timeout_secs.unwrap_or(30).max(1))
            .min(crate::io::REQUEST_TIMEOUT_MAX);
        let mut builder = Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("pullguard/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::custom(|attempt| {
                // Never from HTTPS down to plain HTTP (reqwest keeps the Authorization
                // header when only the scheme changes).
                let downgrade = attempt.url().scheme() == "http"
                    && attempt.previous().iter().any(|u| u.scheme() == "https");
                if downgrade {
                    attempt.error("refusing a redirect from HTTPS to plain HTTP")
                } else if attempt.previous().len() > 5 {
                    attempt.error("more than 5 redirects")
                } else {
                    attempt.follow()
                }
            }));
        if let Some(ca) = &config.ca_file {
            let pem = crate::io::read_file(ca, CA_FILE_MAX).map_err(|source| SetupError::File {
                path: ca.clone(),
                source,
            })?;
            let bad = |reason: String| SetupError::BadCertificates {
                path: ca.clone(),
                reason,
            };
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| bad(format!("not a PEM certificate bundle: {e}")))?;
            if certs.is_empty() {
                return Err(bad("no certificate in it".into()));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder.build().map_err(SetupError::Client)?;
        let password = match (&config.password_file, &config.password) {
            (Some(file), _) => Some(
                crate::io::read_text_file(file, PASSWORD_FILE_MAX)
                    .map_err(|source| SetupError::File {
                        path: file.clone(),
                        source,
                    })?
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_string(),
            ),
            (None, p) => p.clone(),
        };
        let credentials = match (&config.username, password) {
            (Some(username), Some(password)) => Some(Credentials {
                username: username.clone(),
                password,
            }),
            (Some(_), None) | (None, Some(_)) => {
                return Err(SetupError::HalfCredentials {
                    host: host.to_string(),
                })
            }
            (None, None) => match docker_config {
                Some(path) => super::auth::from_docker_config(path, host)?,
                None => None,
            },
        };
        let scheme = if config.plain_http { "http" } else { "https" };
        let base = format!("{scheme}://{host}");
        let origin = reqwest::Url::parse(&base)
            .ok()
            .filter(|u| u.path() == "/" && u.username().is_empty())
            .ok_or_else(|| SetupError::BadHost {
                host: host.to_string(),
            })?;
        Ok(Registry {
            host: host.to_string(),
            base,
            origin,
            http,
            credentials,
            tokens: Arc::default(),
            basic: Arc::default(),
            known_blobs: Arc::default(),
            timeout,
            caps: Caps::default(),
            deadline: None,
        })
    }

    /// This registry, with every request sent and answered before `deadline`: none is
    /// sent once it has passed, and each one's time limit is what is left of it.
    pub fn with_deadline(&self, deadline: Deadline) -> Registry {
        Registry {
            deadline: Some(deadline),
            ..self.clone()
        }
    }

    pub fn deadline(&self) -> Option<Deadline> {
        self.deadline
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// The time limit of one request.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub fn caps(&self) -> Caps {
        self.caps
    }

    fn error(&self, request: &str, kind: ErrorKind) -> RegistryError {
        RegistryError {
            registry: self.host.clone(),
            request: request.to_string(),
            kind,
        }
    }

    /// `GET /v2/`: the registry speaks the distribution API and our credentials work.
    pub fn ping(&self) -> Result<()> {
        let resp = self.send(
            Method::GET,
            None,
            Access::Pull,
            "/v2/",
            HeaderMap::new(),
            None,
        )?;
        self.expect_success(resp, "GET /v2/").map(|_| ())
    }

    /// `GET` a manifest by tag or digest, accepting `accept` media types. The content must
    /// have the digest asked for (by digest) and the one `Docker-Content-Digest` names.
    pub fn get_manifest(
        &self,
        repo: &str,
        reference: &str,
        accept: &[&str],
        max_len: u64,
    ) -> Result<FetchedManifest> {
        let started = Instant::now();
        let path = format!("/v2/{repo}/manifests/{reference}");
        let label = format!("GET {path}");
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, header_value(&accept.join(", ")));
        let resp = self.send(Method::GET, Some(repo), Access::Pull, &path, headers, None)?;
        let resp = self.expect_success(resp, &label)?;
        let header_digest = content_digest_header(&resp);
        let content_type = header_str(&resp, CONTENT_TYPE)
            .map(|s| s.split(';').next().unwrap_or(s).trim().to_string());
        let bytes = self.read_body(resp, max_len, &label, started)?;
        let asked: Option<Digest> = reference.parse().ok();
        let digest = match &asked {
            Some(d) => d.of_same_kind(&bytes),
            None => Digest::sha256_of(&bytes),
        };
        if let Some(expected) = &asked {
            if *expected != digest {
                return Err(self.mismatch(&label, expected, &digest));
            }
        }
        if let Some(h) = header_digest {
            let computed = h.of_same_kind(&bytes);
            if computed != h {
                return Err(self.mismatch(&label, &h, &computed));
            }
        }
        let media_type = declared_media_type(&bytes)
            .or(content_type)
            .unwrap_or_else(|| MEDIA_TYPE_IMAGE_MANIFEST.to_string());
        Ok(FetchedManifest {
            bytes,
            media_type,
            digest,
        })
    }

    /// `HEAD` a manifest: its digest, or `None` if the registry has no such manifest. A
    /// registry that sends no `Docker-Content-Digest` is asked with a `GET` instead.
    pub fn resolve(&self, repo: &str, reference: &str, accept: &[&str]) -> Result<Option<Digest>> {
        let path = format!("/v2/{repo}/manifests/{reference}");
        let label = format!("HEAD {path}");
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, header_value(&accept.join(", ")));
        let resp = match self.send(Method::HEAD, Some(repo), Access::Pull, &path, headers, None) {
            Err(e) if e.is_not_found() => return Ok(None),
            other => other?,
        };
        let resp = self.expect_success(resp, &label)?;
        match content_digest_header(&resp) {
            Some(d) => Ok(Some(d)),
            None => match self.get_manifest(repo, reference, accept, self.caps.manifest) {
                Ok(m) => Ok(Some(m.digest)),
                Err(e) if e.is_not_found() => Ok(None),
                Err(e) => Err(e),
            },
        }
    }

    /// `PUT` a manifest under `reference` (a tag, or its digest). Returns its digest and
    /// whether the registry processed its `subject` (the `OCI-Subject` header: the registry
    /// keeps the referrers index itself).
    pub fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<(Digest, bool)> {
        let path = format!("/v2/{repo}/manifests/{reference}");
        let label = format!("PUT {path}");
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, header_value(media_type));
        let resp = self.send(
            Method::PUT,
            Some(repo),
            Access::Push,
            &path,
            headers,
            Some(bytes.to_vec()),
        )?;
        let resp = self.expect_success(resp, &label)?;
        let digest = Digest::sha256_of(bytes);
        if let Some(h) = content_digest_header(&resp) {
            if h.of_same_kind(bytes) != h {
                return Err(self.mismatch(&label, &h, &h.of_same_kind(bytes)));
            }
        }
        let subject_processed = resp.headers().contains_key("oci-subject");
        Ok((digest, subject_processed))
    }

    /// `GET` a blob; its content must have `digest` (and the `Docker-Content-Digest`).
    pub fn get_blob(&self, repo: &str, digest: &Digest, max_len: u64) -> Result<Vec<u8>> {
        let started = Instant::now();
        let path = format!("/v2/{repo}/blobs/{digest}");
        let label = format!("GET {path}");
        let resp = self.send(
            Method::GET,
            Some(repo),
            Access::Pull,
            &path,
            HeaderMap::new(),
            None,
        )?;
        let resp = self.expect_success(resp, &label)?;
        let bytes = self.read_body(resp, max_len, &label, started)?;
        let found = digest.of_same_kind(&bytes);
        if found != *digest {
            return Err(self.mismatch(&label, digest, &found));
        }
        Ok(bytes)
    }

    pub fn blob_exists(&self, repo: &str, digest: &Digest) -> Result<bool> {
        let path = format!("/v2/{repo}/blobs/{digest}");
        match self.send(
            Method::HEAD,
            Some(repo),
            Access::Pull,
            &path,
            HeaderMap::new(),
            None,
        ) {
            Ok(resp) => self
                .expect_success(resp, &format!("HEAD {path}"))
                .map(|_| true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Uploads a blob (monolithic: `POST` a session, `PUT` the bytes), unless the registry
    /// already has it.
    pub fn put_blob(&self, repo: &str, bytes: &[u8]) -> Result<Digest> {
        let digest = Digest::sha256_of(bytes);
        let key = (repo.to_string(), digest.clone());
        if self.known_blobs.lock().is_ok_and(|k| k.contains(&key)) {
            return Ok(digest);
        }
        if self.blob_exists(repo, &digest)? {
            if let Ok(mut k) = self.known_blobs.lock() {
                k.insert(key);
            }
            return Ok(digest);
        }
        let path = format!("/v2/{repo}/blobs/uploads/");
        let label = format!("POST {path}");
        let resp = self.send(
            Method::POST,
            Some(repo),
            Access::Push,
            &path,
            HeaderMap::new(),
            Some(Vec::new()),
        )?;
        let resp = self.expect_success(resp, &label)?;
        let location = header_str(&resp, LOCATION)
            .ok_or_else(|| {
                self.error(
                    &label,
                    ErrorKind::Protocol {
                        detail: "no Location header for the upload".into(),
                    },
                )
            })?
            .to_string();
        let separator = if location.contains('?') { '&' } else { '?' };
        let target = format!("{location}{separator}digest={digest}");
        let put_label = format!("PUT {}", strip_query(&location));
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, header_value("application/octet-stream"));
        let resp = self.send(
            Method::PUT,
            Some(repo),
            Access::Push,
            &target,
            headers,
            Some(bytes.to_vec()),
        )?;
        let resp = self.expect_success(resp, &put_label)?;
        if let Some(h) = content_digest_header(&resp) {
            if h != digest {
                return Err(self.mismatch(&put_label, &digest, &h));
            }
        }
        if let Ok(mut k) = self.known_blobs.lock() {
            k.insert(key);
        }
        Ok(digest)
    }

    /// Pushes an artifact (empty config, one layer holding `content`) and tags it with `tag`
    /// (else it is pushed by digest). With a `subject`, a registry without the referrers
    /// API gets the tag-schema index updated too. Returns the manifest's descriptor.
    pub fn push_artifact(
        &self,
        repo: &str,
        tag: Option<&str>,
        artifact_type: &str,
        content: &[u8],
        subject: Option<Descriptor>,
        annotations: Option<super::oci::Annotations>,
    ) -> Result<Descriptor> {
        self.put_blob(repo, EMPTY_CONFIG)?;
        self.put_blob(repo, content)?;
        let mut manifest = ImageManifest::artifact(artifact_type, content, subject.clone());
        manifest.annotations = annotations.clone();
        let bytes = manifest.to_bytes();
        let mut descriptor = Descriptor::new(MEDIA_TYPE_IMAGE_MANIFEST, &bytes);
        let reference = tag
            .map(str::to_string)
            .unwrap_or_else(|| descriptor.digest.to_string());
        let (_, subject_processed) =
            self.put_manifest(repo, &reference, MEDIA_TYPE_IMAGE_MANIFEST, &bytes)?;
        descriptor.artifact_type = Some(artifact_type.to_string());
        descriptor.annotations = annotations;
        if let (Some(subject), false) = (subject, subject_processed) {
            self.add_to_referrers_tag(repo, &subject.digest, descriptor.clone())?;
        }
        Ok(descriptor)
    }

    /// The referrers of `subject` in `repo`, through the referrers API, or else the
    /// referrers tag schema. `artifact_type` filters by what the listing claims; callers
    /// must still check each manifest (a tag-schema index is written by anybody). What is
    /// kept is bounded: at most [`Caps::referrers`] entries, the last ones listed (a
    /// tag-schema index grows at its end, so the newest), each only an identity.
    pub fn referrers(
        &self,
        repo: &str,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Referrers> {
        let mut path = format!("/v2/{repo}/referrers/{subject}");
        if let Some(t) = artifact_type {
            path.push_str("?artifactType=");
            path.push_str(&percent_encoding::utf8_percent_encode(t, QUERY).to_string());
        }
        let mut found = Referrers::new(ReferrersVia::Api, self.caps.referrers);
        let mut next = Some(path);
        let mut pages = 0;
        while let Some(path) = next.take() {
            let started = Instant::now();
            let label = format!("GET {}", strip_query(&path));
            let mut headers = HeaderMap::new();
            headers.insert(ACCEPT, header_value(MEDIA_TYPE_IMAGE_INDEX));
            let resp = match self.send(Method::GET, Some(repo), Access::Pull, &path, headers, None)
            {
                Err(e) if e.is_not_found() && pages == 0 => {
                    return self.referrers_by_tag(repo, subject, artifact_type);
                }
                other => other?,
            };
            let resp = self.expect_success(resp, &label)?;
            let is_index = header_str(&resp, CONTENT_TYPE)
                .is_some_and(|v| v.starts_with(MEDIA_TYPE_IMAGE_INDEX));
            if !is_index && pages == 0 {
                // Some registries answer unknown routes with 200 and an HTML page.
                return self.referrers_by_tag(repo, subject, artifact_type);
            }
            next = header_str(&resp, reqwest::header::LINK)
                .and_then(|link| answer::next_link(link, resp.url()))
                .map(String::from);
            let bytes = self.read_body(resp, self.caps.index, &label, started)?;
            found.add(self.parse_listing(&bytes, &label)?, artifact_type);
            pages += 1;
            if pages >= self.caps.referrer_pages {
                break;
            }
        }
        Ok(found)
    }

    fn parse_listing(&self, bytes: &[u8], label: &str) -> Result<ReferrersListing> {
        serde_json::from_slice(bytes).map_err(|e| {
            self.error(
                label,
                ErrorKind::Protocol {
                    detail: format!("not an image index: {e}"),
                },
            )
        })
    }

    fn referrers_by_tag(
        &self,
        repo: &str,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Referrers> {
        let mut found = Referrers::new(ReferrersVia::TagSchema, self.caps.referrers);
        if let Some((label, m)) = self.referrers_tag(repo, subject)? {
            found.add(self.parse_listing(&m.bytes, &label)?, artifact_type);
        }
        Ok(found)
    }

    /// The tag-schema referrers index of `subject` (`sha256-<hex>`), if there is one, with
    /// the label of its request.
    fn referrers_tag(
        &self,
        repo: &str,
        subject: &Digest,
    ) -> Result<Option<(String, FetchedManifest)>> {
        let tag = subject.referrers_tag();
        match self.get_manifest(repo, &tag, &[MEDIA_TYPE_IMAGE_INDEX], self.caps.index) {
            Ok(m) => Ok(Some((format!("GET /v2/{repo}/manifests/{tag}"), m))),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Adds `descriptor` to the referrers tag-schema index of `subject` (replacing an entry
    /// with the same digest). Every other entry is written back exactly as it was read,
    /// whatever fields other tools gave it. Read-modify-write: two writers at once can lose
    /// an entry, as with every client of the tag schema.
    pub fn add_to_referrers_tag(
        &self,
        repo: &str,
        subject: &Digest,
        descriptor: Descriptor,
    ) -> Result<()> {
        let mut index = match self.referrers_tag(repo, subject)? {
            Some((label, m)) => {
                let protocol = |detail: String| self.error(&label, ErrorKind::Protocol { detail });
                // Read literally (`cjson::literal`), so that every entry is written back
                // as it was.
                let index = crate::tuf::cjson::parse_unique(&m.bytes)
                    .map_err(|e| protocol(format!("referrers tag is not an image index: {e}")))?;
                if !index
                    .get("manifests")
                    .is_some_and(serde_json::Value::is_array)
                {
                    return Err(protocol(
                        "referrers tag is not an image index: no `manifests` list".into(),
                    ));
                }
                index
            }
            None => serde_json::json!({
                "schemaVersion": 2,
                "mediaType": MEDIA_TYPE_IMAGE_INDEX,
                "manifests": [],
            }),
        };
        let ours = descriptor.digest.to_string();
        if let Some(entries) = index["manifests"].as_array_mut() {
            entries.retain(|d| d["digest"].as_str() != Some(ours.as_str()));
            entries.push(serde_json::json!(descriptor));
        }
        // A JSON value always has a text form.
        let bytes = index.to_string().into_bytes();
        self.put_manifest(
            repo,
            &subject.referrers_tag(),
            MEDIA_TYPE_IMAGE_INDEX,
            &bytes,
        )?;
        Ok(())
    }

    /// Sends a request: cached credentials first; on 401 the challenge is answered once
    /// (basic, or a bearer token from the realm, cached per scope); 429 and 503 with
    /// `Retry-After` are retried when the wait is short, else reported as rate-limited.
    /// 401, 403 and 404 become errors; other statuses are left to the caller.
    fn send(
        &self,
        method: Method,
        repo: Option<&str>,
        access: Access,
        path: &str,
        headers: HeaderMap,
        body: Option<Vec<u8>>,
    ) -> Result<Response> {
        let url = if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        };
        let label = format!("{method} {}", strip_query(&strip_base(path, &self.base)));
        let scope = repo.map(|r| format!("repository:{r}:{}", access.actions()));
        // Credentials and tokens go to this registry only, never to an upload location or
        // a pagination link on another origin.
        let same_origin = self.is_own(&url);
        let mut challenged = false;
        let mut retries = 0;
        loop {
            let mut request: RequestBuilder = self
                .http
                .request(method.clone(), &url)
                .headers(headers.clone())
                .timeout(self.time_left(&label)?);
            if let Some(auth) = self.cached_auth(scope.as_deref()).filter(|_| same_origin) {
                request = request.header(AUTHORIZATION, auth);
            }
            if let Some(b) = &body {
                request = request.body(b.clone());
            }
            let resp = request
                .send()
                .map_err(|e| self.transport_error(&label, &e))?;
            let status = resp.status().as_u16();
            // Where the answer came from, after any redirects: a challenge is answered only
            // when the registry itself made it.
            let answered_here = self.is_own(resp.url().as_str());
            match status {
                401 if !(same_origin && answered_here) => {
                    // Another origin asks for credentials: ours are not for it.
                    return Err(self.error(
                        &label,
                        ErrorKind::Unauthorized {
                            detail: format!(
                                "{} asks for credentials; those of {} are not sent elsewhere",
                                strip_query(resp.url().as_str()),
                                self.host
                            ),
                        },
                    ));
                }
                401 if !challenged => {
                    challenged = true;
                    let challenge =
                        header_str(&resp, reqwest::header::WWW_AUTHENTICATE).map(str::to_string);
                    let Some(challenge) = challenge else {
                        return Err(self.error(
                            &label,
                            ErrorKind::Unauthorized {
                                detail: "401 without a WWW-Authenticate challenge".into(),
                            },
                        ));
                    };
                    self.answer_challenge(&label, &challenge, scope.as_deref())?;
                }
                401 => {
                    let why = if self.credentials.is_none() {
                        "no credentials are configured for this registry"
                    } else {
                        "the configured credentials were refused"
                    };
                    let detail = joined(&[self.error_detail(resp), why.into()]);
                    return Err(self.error(&label, ErrorKind::Unauthorized { detail }));
                }
                403 => {
                    let detail = self.error_detail(resp);
                    return Err(self.error(&label, ErrorKind::Denied { detail }));
                }
                404 => return Err(self.error(&label, ErrorKind::NotFound)),
                429 | 503 => {
                    let retry_after = retry_after(&resp);
                    if status == 503 && retry_after.is_none() {
                        return Ok(resp);
                    }
                    let wait = retry_after.unwrap_or(Duration::from_secs(1));
                    let too_late = self.deadline.is_some_and(|d| wait >= d.remaining());
                    if retries >= MAX_RETRIES || wait > MAX_RETRY_WAIT || too_late {
                        return Err(self.error(&label, ErrorKind::RateLimited { retry_after }));
                    }
                    retries += 1;
                    std::thread::sleep(wait);
                }
                _ => return Ok(resp),
            }
        }
    }

    /// Whether `url` is on this registry's own origin (scheme, host and port).
    fn is_own(&self, url: &str) -> bool {
        reqwest::Url::parse(url).is_ok_and(|u| u.origin() == self.origin.origin())
    }

    /// The time limit of a request about to be sent: the per-request limit, or what is left
    /// of the operation's deadline when that is less. Past the deadline nothing is sent.
    fn time_left(&self, label: &str) -> Result<Duration> {
        match self.deadline {
            Some(d) if d.has_passed() => Err(self.out_of_time(label, d)),
            Some(d) => Ok(d.remaining().min(self.timeout)),
            None => Ok(self.timeout),
        }
    }

    /// When the body of a request sent at `started` must have arrived.
    fn until(&self, started: Instant) -> Instant {
        let own = started
            .checked_add(self.timeout)
            .unwrap_or_else(|| instant_after(self.timeout));
        self.deadline.map_or(own, |d| own.min(d.at()))
    }

    fn out_of_time(&self, label: &str, d: Deadline) -> RegistryError {
        self.error(label, ErrorKind::DeadlineExceeded { budget: d.budget() })
    }

    fn cached_auth(&self, scope: Option<&str>) -> Option<String> {
        if let Ok(tokens) = self.tokens.lock() {
            if let Some(t) = tokens.get(scope.unwrap_or("")) {
                if Instant::now() < t.until {
                    return Some(t.header.clone());
                }
            }
        }
        if self.basic.load(Ordering::Relaxed) {
            return self.credentials.as_ref().map(Credentials::basic_header);
        }
        None
    }

    fn answer_challenge(&self, label: &str, header: &str, scope: Option<&str>) -> Result<()> {
        let challenge = parse_challenge(header)
            .map_err(|detail| self.error(label, ErrorKind::Unauthorized { detail }))?;
        match challenge {
            Challenge::Basic => {
                if self.credentials.is_none() {
                    return Err(self.error(label, ErrorKind::Unauthorized {
                        detail: "the registry asks for a user name and password; none are configured".into(),
                    }));
                }
                self.basic.store(true, Ordering::Relaxed);
                Ok(())
            }
            Challenge::Bearer {
                realm,
                service,
                scope: challenge_scope,
            } => {
                let wanted = challenge_scope.as_deref().or(scope);
                let (token, expires_in) =
                    self.fetch_token(label, &realm, service.as_deref(), wanted)?;
                // Refresh a little before the token's own end; 60 s when it names none, and
                // never later than an hour from now, whatever it names.
                let lifetime =
                    Duration::from_secs(expires_in.unwrap_or(60).saturating_sub(5).max(1))
                        .min(TOKEN_LIFETIME_MAX);
                let cached = CachedToken {
                    header: format!("Bearer {token}"),
                    until: instant_after(lifetime),
                };
                if let Ok(mut tokens) = self.tokens.lock() {
                    tokens.insert(scope.unwrap_or("").to_string(), cached);
                }
                Ok(())
            }
        }
    }

    fn fetch_token(
        &self,
        label: &str,
        realm: &str,
        service: Option<&str>,
        scope: Option<&str>,
    ) -> Result<(String, Option<u64>)> {
        let started = Instant::now();
        let mut url = realm.to_string();
        let mut separator = if url.contains('?') { '&' } else { '?' };
        for (k, v) in [("service", service), ("scope", scope)] {
            if let Some(v) = v {
                url.push(separator);
                url.push_str(k);
                url.push('=');
                url.push_str(&percent_encoding::utf8_percent_encode(v, QUERY).to_string());
                separator = '&';
            }
        }
        let token_label = format!("{label} (token from {})", strip_query(realm));
        if !(realm.starts_with("https://") || realm.starts_with("http://")) {
            return Err(self.error(
                &token_label,
                ErrorKind::Unauthorized {
                    detail: format!("the token realm `{realm}` is not an http(s) URL"),
                },
            ));
        }
        // A token from a plain-HTTP realm could be read on the way and then replayed to the
        // HTTPS registry: an HTTPS registry's realm must be HTTPS, with or without
        // credentials.
        if realm.starts_with("http://") && self.origin.scheme() == "https" {
            return Err(self.error(
                &token_label,
                ErrorKind::Unauthorized {
                    detail: "refusing a plain-HTTP token realm for an HTTPS registry".into(),
                },
            ));
        }
        let mut request = self.http.get(&url).timeout(self.time_left(&token_label)?);
        if let Some(c) = &self.credentials {
            request = request.header(AUTHORIZATION, c.basic_header());
        }
        let resp = request
            .send()
            .map_err(|e| self.transport_error(&token_label, &e))?;
        let status = resp.status().as_u16();
        if status == 401 || status == 403 {
            let refused = format!("the token endpoint answered HTTP {status}");
            let detail = joined(&[refused, self.error_detail(resp)]);
            return Err(self.error(&token_label, ErrorKind::Unauthorized { detail }));
        }
        let resp = self.expect_success(resp, &token_label)?;
        let bytes = self.read_body(resp, self.caps.token, &token_label, started)?;
        let protocol = |detail: String| self.error(&token_label, ErrorKind::Protocol { detail });
        serde_json::from_slice::<TokenResponse>(&bytes)
            .map_err(|e| protocol(format!("not a token response: {e}")))?
            .into_token()
            .ok_or_else(|| protocol("the token endpoint answered without a token".into()))
    }

    fn expect_success(&self, resp: Response, label: &str) -> Result<Response> {
        let status = resp.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(resp);
        }
        let detail = self.error_detail(resp);
        Err(self.error(label, ErrorKind::Status { status, detail }))
    }

    /// What a refusal's body says (`answer::error_detail`), read within its cap.
    fn error_detail(&self, resp: Response) -> String {
        match read_capped(resp, self.caps.error_body, Some(self.until(Instant::now()))) {
            Ok(body) => answer::error_detail(&body),
            Err(ReadError::TooLarge { .. }) => "a long error body, not shown".into(),
            Err(e) => format!("its body could not be read: {e}"),
        }
    }

    /// Reads a body of at most `max_len` bytes, finished within the time limit counted from
    /// `started`, when the request was sent (as the plain HTTP metadata source counts it),
    /// and before the operation's deadline: the headers and the body share one limit.
    fn read_body(
        &self,
        resp: Response,
        max_len: u64,
        label: &str,
        started: Instant,
    ) -> Result<Vec<u8>> {
        if resp.content_length().is_some_and(|n| n > max_len) {
            return Err(self.error(label, ErrorKind::TooLarge { limit: max_len }));
        }
        let announced = resp.content_length();
        read_capped_sized(resp, max_len, Some(self.until(started)), announced).map_err(
            |e| match e {
                ReadError::TooLarge { limit } => self.error(label, ErrorKind::TooLarge { limit }),
                ReadError::Timeout => self.timeout_error(label),
                ReadError::Failed { reason } => {
                    self.error(label, ErrorKind::Unreachable { reason })
                }
            },
        )
    }

    /// A timeout: the operation's deadline when that is what ran out, else the request's.
    fn timeout_error(&self, label: &str) -> RegistryError {
        match self.deadline {
            Some(d) if d.has_passed() => self.out_of_time(label, d),
            _ => self.error(label, ErrorKind::Timeout),
        }
    }

    fn transport_error(&self, label: &str, e: &reqwest::Error) -> RegistryError {
        if e.is_timeout() {
            return self.timeout_error(label);
        }
        self.error(
            label,
            ErrorKind::Unreachable {
                reason: error_chain(e),
            },
        )
    }

    fn mismatch(&self, label: &str, expected: &Digest, found: &Digest) -> RegistryError {
        self.error(
            label,
            ErrorKind::DigestMismatch {
                expected: expected.to_string(),
                found: found.to_string(),
            },
        )
    }
}

/// The largest CA bundle and password file read.
const CA_FILE_MAX: u64 = 4 * 1024 * 1024;
const PASSWORD_FILE_MAX: u64 = 64 * 1024;

/// How often a 429 (or a 503 with `Retry-After`) is retried, and the longest `Retry-After`
/// waited for: a longer one fails at once as rate-limited.
const MAX_RETRIES: u32 = 2;
const MAX_RETRY_WAIT: Duration = Duration::from_secs(5);

/// Characters escaped in query values: all but RFC 3986's unreserved ones.
const QUERY: &percent_encoding::AsciiSet = crate::tuf::names::UNRESERVED;

fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("*/*"))
}

fn content_digest_header(resp: &Response) -> Option<Digest> {
    header_str(resp, "docker-content-digest").and_then(|s| s.trim().parse().ok())
}

/// A header's value, when the answer has it and it is visible ASCII (what `to_str` takes).
fn header_str(resp: &Response, name: impl AsHeaderName) -> Option<&str> {
    resp.headers().get(name)?.to_str().ok()
}

fn strip_query(path: &str) -> String {
    path.split('?').next().unwrap_or(path).to_string()
}

fn strip_base(path: &str, base: &str) -> String {
    path.strip_prefix(base).unwrap_or(path).to_string()
}

/// The wait a `Retry-After` header asks for (`answer::retry_after`).
fn retry_after(resp: &Response) -> Option<Duration> {
    let value = header_str(resp, reqwest::header::RETRY_AFTER)?;
    answer::retry_after(value, chrono::Utc::now())
}

/// The non-empty parts, joined with `; `.
fn joined(parts: &[String]) -> String {
    parts
        .iter()
        .filter(|p| !p.is_empty())
        .cloned()
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    //! Fault injection against an in-process fake registry (the real registry is exercised
    //! by the end-to-end tests): the token flow, rate limits, oversized and wrong-digest
    //! answers.
    use super::*;
    use crate::tuf::fetch::FetchError;
    use std::io::{BufRead, BufReader, Write};

    struct Req {
        method: String,
        path: String,
        auth: Option<String>,
        body: Vec<u8>,
    }

    /// Status, headers and body of a fake answer.
    type Answer = (u16, Vec<(String, String)>, Vec<u8>);

    type Handler = dyn Fn(&Req, &str) -> Answer + Send + Sync;

    /// Serves each connection with `handler(request, own address)`, one request per
    /// connection; returns the address and the log of `METHOD path` lines.
    fn fake(handler: Arc<Handler>) -> (String, Arc<Mutex<Vec<String>>>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (log2, addr2) = (Arc::clone(&log), addr.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut first = String::new();
                if reader.read_line(&mut first).is_err() {
                    continue;
                }
                let mut parts = first.split_whitespace();
                let method = parts.next().unwrap_or_default().to_string();
                let path = parts.next().unwrap_or_default().to_string();
                let mut auth = None;
                let mut content_length = 0usize;
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    let lower = line.to_ascii_lowercase();
                    if lower.starts_with("authorization:") {
                        auth = Some(line[14..].trim().to_string());
                    }
                    if let Some(v) = lower.strip_prefix("content-length:") {
                        content_length = v.trim().parse().unwrap_or(0);
                    }
                    line.clear();
                }
                let mut body = vec![0u8; content_length];
                let _ = std::io::Read::read_exact(&mut reader, &mut body);
                log2.lock().expect("log").push(format!("{method} {path}"));
                let req = Req {
                    method,
                    path,
                    auth,
                    body,
                };
                let (status, headers, body) = handler(&req, &addr2);
                let mut head = format!("HTTP/1.1 {status} X\r\nConnection: close\r\n");
                if !headers.iter().any(|(k, _)| k == "Content-Length") {
                    head.push_str(&format!("Content-Length: {}\r\n", body.len()));
                }
                for (k, v) in headers {
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                head.push_str("\r\n");
                let mut stream = stream;
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(&body);
            }
        });
        (addr, log)
    }

    fn client(addr: &str, creds: Option<(&str, &str)>) -> Registry {
        let config = RegistryConfig {
            plain_http: true,
            username: creds.map(|c| c.0.to_string()),
            password: creds.map(|c| c.1.to_string()),
            timeout_secs: Some(5),
            ..Default::default()
        };
        Registry::new(addr, &config, None).expect("client")
    }

    const MANIFEST: &[u8] = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"a","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;

    fn ok_manifest(digest_header: Option<String>) -> Answer {
        let digest = digest_header.unwrap_or_else(|| Digest::sha256_of(MANIFEST).to_string());
        (
            200,
            vec![
                ("Content-Type".into(), MEDIA_TYPE_IMAGE_MANIFEST.into()),
                ("Docker-Content-Digest".into(), digest),
            ],
            MANIFEST.to_vec(),
        )
    }

    #[test]
    fn bearer_token_flow_with_basic_credentials_and_cache() {
        let handler: Arc<Handler> = Arc::new(|req: &Req, addr: &str| {
            if req.path.starts_with("/token?") {
                let expected = Credentials {
                    username: "alice".into(),
                    password: "pw".into(),
                }
                .basic_header();
                if req.auth.as_deref() != Some(expected.as_str()) {
                    return (
                        401,
                        vec![],
                        br#"{"errors":[{"code":"UNAUTHORIZED","message":"bad password"}]}"#
                            .to_vec(),
                    );
                }
                assert!(
                    req.path.contains("scope=repository%3Aacme%2Fapp%3Apull"),
                    "{}",
                    req.path
                );
                return (
                    200,
                    vec![],
                    br#"{"token":"tok123","expires_in":300}"#.to_vec(),
                );
            }
            if req.auth.as_deref() == Some("Bearer tok123") {
                return ok_manifest(None);
            }
            let challenge = format!(
                r#"Bearer realm="http://{addr}/token",service="fake",scope="repository:acme/app:pull""#
            );
            (
                401,
                vec![("WWW-Authenticate".into(), challenge)],
                Vec::new(),
            )
        });
        let (addr, log) = fake(handler);
        let c = client(&addr, Some(("alice", "pw")));
        let m = c
            .get_manifest("acme/app", "1", &[MEDIA_TYPE_IMAGE_MANIFEST], 4096)
            .expect("manifest");
        assert_eq!(m.digest, Digest::sha256_of(MANIFEST));
        c.get_manifest("acme/app", "1", &[MEDIA_TYPE_IMAGE_MANIFEST], 4096)
            .expect("again");
        let tokens = log
            .lock()
            .expect("log")
            .iter()
            .filter(|l| l.contains("/token"))
            .count();
        assert_eq!(
            tokens,
            1,
            "the token is cached: {:?}",
            log.lock().expect("log")
        );

        let wrong = client(&addr, Some(("alice", "nope")));
        let err = wrong
            .get_manifest("acme/app", "1", &[MEDIA_TYPE_IMAGE_MANIFEST], 4096)
            .expect_err("refused");
        assert!(matches!(err.kind, ErrorKind::Unauthorized { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains(&addr)
                && text.contains("GET /v2/acme/app/manifests/1")
                && text.contains("bad password"),
            "{text}"
        );
    }

    #[test]
    fn basic_challenge_without_credentials_is_unauthorised() {
        let handler: Arc<Handler> = Arc::new(|_: &Req, _: &str| {
            (
                401,
                vec![("WWW-Authenticate".into(), r#"Basic realm="r""#.into())],
                Vec::new(),
            )
        });
        let (addr, _) = fake(handler);
        let err = client(&addr, None).ping().expect_err("no credentials");
        assert!(err.to_string().contains("none are configured"), "{err}");
    }

    #[test]
    fn rate_limits_are_honoured() {
        let hits = Arc::new(Mutex::new(0));
        let hits2 = Arc::clone(&hits);
        let handler: Arc<Handler> = Arc::new(move |req: &Req, _: &str| {
            if req.path.contains("/long/") {
                return (429, vec![("Retry-After".into(), "120".into())], Vec::new());
            }
            let mut n = hits2.lock().expect("hits");
            *n += 1;
            if *n == 1 {
                (429, vec![("Retry-After".into(), "1".into())], Vec::new())
            } else {
                ok_manifest(None)
            }
        });
        let (addr, _) = fake(handler);
        let c = client(&addr, None);
        let started = Instant::now();
        c.get_manifest("acme/app", "1", &[MEDIA_TYPE_IMAGE_MANIFEST], 4096)
            .expect("after one retry");
        assert!(
            started.elapsed() >= Duration::from_millis(900),
            "Retry-After was not waited for"
        );
        let err = c
            .get_manifest("acme/long/x", "1", &[MEDIA_TYPE_IMAGE_MANIFEST], 4096)
            .expect_err("limited");
        assert_eq!(
            err.kind,
            ErrorKind::RateLimited {
                retry_after: Some(Duration::from_secs(120))
            }
        );
        assert!(
            err.to_string().contains("rate-limited (retry after 120 s)"),
            "{err}"
        );
    }

    #[test]
    fn oversized_and_wrong_digest_answers_are_refused() {
        let handler: Arc<Handler> = Arc::new(|req: &Req, _: &str| match req.path.as_str() {
            p if p.ends_with("/declared-huge") => (
                200,
                vec![("Content-Length".into(), "5000000".into())],
                Vec::new(),
            ),
            p if p.ends_with("/wrong-header") => {
                ok_manifest(Some(Digest::sha256_of(b"other").to_string()))
            }
            p if p.ends_with("/missing") => (
                404,
                vec![],
                br#"{"errors":[{"code":"MANIFEST_UNKNOWN"}]}"#.to_vec(),
            ),
            p if p.ends_with("/busy") => (503, vec![], b"maintenance".to_vec()),
            _ => ok_manifest(None),
        });
        let (addr, log) = fake(handler);
        let c = client(&addr, None);
        let get = |r: &str, max| c.get_manifest("acme/app", r, &[MEDIA_TYPE_IMAGE_MANIFEST], max);
        assert_eq!(
            get("declared-huge", 4096).expect_err("huge").kind,
            ErrorKind::TooLarge { limit: 4096 }
        );
        assert_eq!(
            get("1", 10).expect_err("over the cap").kind,
            ErrorKind::TooLarge { limit: 10 }
        );
        assert!(matches!(
            get("wrong-header", 4096).expect_err("header").kind,
            ErrorKind::DigestMismatch { .. }
        ));
        let other = Digest::sha256_of(b"something else").to_string();
        assert!(matches!(
            get(&other, 4096).expect_err("content").kind,
            ErrorKind::DigestMismatch { .. }
        ));
        assert!(get("missing", 4096).expect_err("404").is_not_found());
        let busy = get("busy", 4096).expect_err("503");
        assert_eq!(
            busy.kind,
            ErrorKind::Status {
                status: 503,
                detail: "maintenance".into()
            }
        );
        assert!(log
            .lock()
            .expect("log")
            .iter()
            .all(|l| l.starts_with("GET /v2/acme/app/manifests/")));

        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let down = client(&format!("127.0.0.1:{port}"), None)
            .ping()
            .expect_err("nobody there");
        assert!(matches!(down.kind, ErrorKind::Unreachable { .. }), "{down}");
    }

    fn index_of(types: &[&str]) -> Vec<u8> {
        let mut index = crate::registry::oci::ImageIndex::empty();
        for (i, t) in types.iter().enumerate() {
            let mut d = Descriptor::new(MEDIA_TYPE_IMAGE_MANIFEST, format!("m{i}{t}").as_bytes());
            d.artifact_type = Some(t.to_string());
            index.manifests.push(d);
        }
        index.to_bytes()
    }

    #[test]
    fn referrers_api_pages_are_followed_and_filtered() {
        let handler: Arc<Handler> = Arc::new(|req: &Req, _: &str| {
            let index = vec![(
                "Content-Type".to_string(),
                MEDIA_TYPE_IMAGE_INDEX.to_string(),
            )];
            if req.path.contains("last=page1") {
                return (200, index, index_of(&["b/sig", "c/sbom"]));
            }
            assert!(req.path.contains("artifactType=b%2Fsig"), "{}", req.path);
            let mut headers = index;
            headers.push((
                "Link".into(),
                "</v2/acme/app/referrers/x?last=page1>; rel=\"next\"".into(),
            ));
            (200, headers, index_of(&["b/sig", "a/other"]))
        });
        let (addr, log) = fake(handler);
        let subject = Digest::sha256_of(b"image");
        let Referrers {
            entries: found,
            via,
            ..
        } = client(&addr, None)
            .referrers("acme/app", &subject, Some("b/sig"))
            .expect("referrers");
        assert_eq!(via, ReferrersVia::Api);
        assert_eq!(
            found.len(),
            2,
            "two `b/sig` entries over two pages: {found:?}"
        );
        assert_eq!(log.lock().expect("log").len(), 2);
    }

    /// A next link relative to the page (RFC 8288 §3.2), not to the registry's base URL:
    /// glued to the base as text, this one made `http://127.0.0.1:PORTpage2?…`.
    #[test]
    fn a_relative_next_link_is_resolved_against_the_page() {
        let handler: Arc<Handler> = Arc::new(|req: &Req, _: &str| {
            let mut headers = vec![(
                "Content-Type".to_string(),
                MEDIA_TYPE_IMAGE_INDEX.to_string(),
            )];
            if req.path.ends_with("/v2/acme/app/referrers/page2?last=1") {
                return (200, headers, index_of(&["b/two"]));
            }
            headers.push(("Link".into(), "<page2?last=1>; rel=\"next\"".into()));
            (200, headers, index_of(&["a/one"]))
        });
        let (addr, log) = fake(handler);
        let found = client(&addr, None)
            .referrers("acme/app", &Digest::sha256_of(b"image"), None)
            .expect("referrers");
        assert_eq!(found.entries.len(), 2, "{:?}", found.entries);
        let log = log.lock().expect("log");
        assert_eq!(log.len(), 2);
        assert_eq!(log[1], "GET /v2/acme/app/referrers/page2?last=1");
    }

    #[test]
    fn without_the_referrers_api_the_tag_schema_is_read() {
        let subject = Digest::sha256_of(b"image");
        let tag = subject.referrers_tag();
        let handler: Arc<Handler> = Arc::new(move |req: &Req, _: &str| {
            if req.path.contains("/referrers/") {
                return (404, vec![], b"404 page not found".to_vec());
            }
            if req.path.ends_with(&format!("/manifests/{tag}")) {
                let body = index_of(&["b/sig"]);
                let headers = vec![
                    (
                        "Content-Type".to_string(),
                        MEDIA_TYPE_IMAGE_INDEX.to_string(),
                    ),
                    (
                        "Docker-Content-Digest".to_string(),
                        Digest::sha256_of(&body).to_string(),
                    ),
                ];
                return (200, headers, body);
            }
            (404, vec![], Vec::new())
        });
        let (addr, _) = fake(handler);
        let c = client(&addr, None);
        let Referrers {
            entries: found,
            via,
            ..
        } = c.referrers("acme/app", &subject, None).expect("fallback");
        assert_eq!(via, ReferrersVia::TagSchema);
        assert_eq!(found.len(), 1);
        let none = c
            .referrers("acme/app", &Digest::sha256_of(b"unsigned"), None)
            .expect("no index yet");
        assert!(none.entries.is_empty() && none.listed == 0);
    }

    #[test]
    fn a_trickling_registry_times_out() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        std::thread::spawn(move || {
            let Ok((stream, _)) = listener.accept() else {
                return;
            };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let mut stream = stream;
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n");
            for _ in 0..1000 {
                if stream.write_all(b"x").is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let config = RegistryConfig {
            plain_http: true,
            timeout_secs: Some(1),
            ..Default::default()
        };
        let c = Registry::new(&addr, &config, None).expect("client");
        let started = Instant::now();
        let err = c
            .get_blob("acme/app", &Digest::sha256_of(b"x"), 4096)
            .expect_err("too slow");
        assert_eq!(err.kind, ErrorKind::Timeout, "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn the_tag_schema_index_is_written_only_without_referrers_support() {
        for registry_keeps_referrers in [true, false] {
            let handler: Arc<Handler> = Arc::new(move |req: &Req, _: &str| {
                if req.path.contains("/blobs/") {
                    return (200, vec![], Vec::new()); // HEAD: the blob is there already
                }
                if req.path.contains("/manifests/sha256-") && req.method == "GET" {
                    return (404, vec![], Vec::new()); // no referrers index yet
                }
                let mut headers = Vec::new();
                if registry_keeps_referrers {
                    headers.push(("OCI-Subject".to_string(), "sha256:x".to_string()));
                }
                (201, headers, Vec::new())
            });
            let (addr, log) = fake(handler);
            let c = client(&addr, None);
            let subject = Descriptor::new(MEDIA_TYPE_IMAGE_MANIFEST, b"image");
            let result = c.push_artifact(
                "acme/app",
                None,
                "b/sig",
                b"{}",
                Some(subject.clone()),
                None,
            );
            result.expect("pushed");
            let log = log.lock().expect("log").clone();
            let index_put = format!(
                "PUT /v2/acme/app/manifests/{}",
                subject.digest.referrers_tag()
            );
            assert_eq!(
                log.contains(&index_put),
                !registry_keeps_referrers,
                "registry keeps referrers: {registry_keeps_referrers}; requests: {log:?}"
            );
        }
    }

    /// A 401 with a basic challenge unless `req` carries alice's basic credentials.
    fn ask_alice_for_basic(req: &Req) -> Option<Answer> {
        let basic = Credentials {
            username: "alice".into(),
            password: "pw".into(),
        }
        .basic_header();
        (req.auth.as_deref() != Some(basic.as_str())).then(|| {
            (
                401,
                vec![("WWW-Authenticate".into(), r#"Basic realm="home""#.into())],
                Vec::new(),
            )
        })
    }

    #[test]
    fn credentials_never_follow_an_upload_to_another_origin() {
        let elsewhere: Arc<Handler> = Arc::new(|req: &Req, _: &str| {
            assert!(req.auth.is_none(), "credentials leaked to another origin");
            (
                401,
                vec![("WWW-Authenticate".into(), r#"Basic realm="x""#.into())],
                Vec::new(),
            )
        });
        let (other, other_log) = fake(elsewhere);
        let home: Arc<Handler> = Arc::new(move |req: &Req, _: &str| {
            if let Some(challenge) = ask_alice_for_basic(req) {
                return challenge;
            }
            if req.method == "HEAD" {
                return (404, vec![], Vec::new());
            }
            (
                202,
                vec![("Location".into(), format!("http://{other}/upload?id=1"))],
                Vec::new(),
            )
        });
        let (addr, _) = fake(home);
        let err = client(&addr, Some(("alice", "pw")))
            .put_blob("acme/app", b"layer")
            .expect_err("refused");
        assert!(matches!(err.kind, ErrorKind::Unauthorized { .. }), "{err}");
        assert!(err.to_string().contains("not sent elsewhere"), "{err}");
        assert_eq!(
            other_log.lock().expect("log").len(),
            1,
            "one anonymous attempt, no retry with credentials"
        );
    }

    #[test]
    fn credentials_never_follow_a_redirect_to_another_origin() {
        // The other origin answers with a bearer challenge whose realm it controls.
        let leaked = Arc::new(Mutex::new(Vec::<String>::new()));
        let leaked2 = Arc::clone(&leaked);
        let elsewhere: Arc<Handler> = Arc::new(move |req: &Req, addr: &str| {
            if let Some(a) = &req.auth {
                leaked2.lock().expect("log").push(a.clone());
            }
            if req.path.starts_with("/token") {
                return (200, vec![], br#"{"token":"stolen"}"#.to_vec());
            }
            let challenge = format!(r#"Bearer realm="http://{addr}/token",service="evil""#);
            (
                401,
                vec![("WWW-Authenticate".into(), challenge)],
                Vec::new(),
            )
        });
        let (other, _) = fake(elsewhere);
        let home: Arc<Handler> = Arc::new(move |req: &Req, _: &str| {
            if let Some(challenge) = ask_alice_for_basic(req) {
                return challenge;
            }
            (
                307,
                vec![("Location".into(), format!("http://{other}/v2/x"))],
                Vec::new(),
            )
        });
        let (addr, _) = fake(home);
        let err = client(&addr, Some(("alice", "pw")))
            .get_manifest("acme/app", "1", &[MEDIA_TYPE_IMAGE_MANIFEST], 4096)
            .expect_err("refused");
        assert!(matches!(err.kind, ErrorKind::Unauthorized { .. }), "{err}");
        assert!(err.to_string().contains("not sent elsewhere"), "{err}");
        assert!(
            leaked.lock().expect("log").is_empty(),
            "credentials reached another origin: {:?}",
            leaked.lock().expect("log")
        );
    }

    #[test]
    fn huge_token_lifetimes_and_time_limits_do_not_panic() {
        for expires_in in [u64::MAX.to_string(), i64::MAX.to_string()] {
            let handler: Arc<Handler> = Arc::new(move |req: &Req, addr: &str| {
                if req.path.starts_with("/token") {
                    let body = format!(r#"{{"token":"t","expires_in":{expires_in}}}"#);
                    return (200, vec![], body.into_bytes());
                }
                if req.auth.as_deref() == Some("Bearer t") {
                    return ok_manifest(None);
                }
                let challenge = format!(r#"Bearer realm="http://{addr}/token""#);
                (
                    401,
                    vec![("WWW-Authenticate".into(), challenge)],
                    Vec::new(),
                )
            });
            let (addr, _) = fake(handler);
            let config = RegistryConfig {
                plain_http: true,
                timeout_secs: Some(u64::MAX),
                ..Default::default()
            };
            let c = Registry::new(&addr, &config, None).expect("client");
            assert_eq!(c.timeout(), crate::io::REQUEST_TIMEOUT_MAX);
            c.get_manifest("acme/app", "1", &[MEDIA_TYPE_IMAGE_MANIFEST], 4096)
                .expect("manifest");
        }
        // A lifetime that is not a number a token can have is a clear protocol error.
        let handler: Arc<Handler> = Arc::new(|req: &Req, addr: &str| {
            if req.path.starts_with("/token") {
                return (200, vec![], br#"{"token":"t","expires_in":-5}"#.to_vec());
            }
            let challenge = format!(r#"Bearer realm="http://{addr}/token""#);
            (
                401,
                vec![("WWW-Authenticate".into(), challenge)],
                Vec::new(),
            )
        });
        let (addr, _) = fake(handler);
        let err = client(&addr, None).ping().expect_err("bad token answer");
        assert!(
            matches!(&err.kind, ErrorKind::Protocol { detail } if detail.contains("not a token response")),
            "{err}"
        );
    }

    #[test]
    fn an_empty_refusal_still_says_what_happened() {
        let handler: Arc<Handler> = Arc::new(|req: &Req, addr: &str| {
            if req.path.starts_with("/token") {
                return (401, vec![], Vec::new());
            }
            let challenge = format!(r#"Bearer realm="http://{addr}/token""#);
            (
                401,
                vec![("WWW-Authenticate".into(), challenge)],
                Vec::new(),
            )
        });
        let (addr, _) = fake(handler);
        let err = client(&addr, Some(("alice", "pw")))
            .ping()
            .expect_err("refused");
        let text = err.to_string();
        assert!(!text.contains("(;") && !text.contains("()"), "{text}");
        assert!(
            text.ends_with("unauthorised (the token endpoint answered HTTP 401)"),
            "{text}"
        );
    }

    /// 16 referrer pages, each one small descriptor carrying a 4 MiB array of junk: what is
    /// kept is the descriptors' identities, capped in number.
    #[test]
    fn referrer_pages_keep_only_identities_and_a_bounded_number() {
        let junk = format!("[{}0]", "0,".repeat(2 * 1024 * 1024 - 256));
        let page = |n: usize, junk: &str| {
            let mut text = String::from(r#"{"schemaVersion":2,"manifests":["#);
            for i in 0..n {
                let d = Digest::sha256_of(format!("entry {i}").as_bytes());
                if i > 0 {
                    text.push(',');
                }
                text.push_str(&format!(
                    r#"{{"mediaType":"{MEDIA_TYPE_IMAGE_MANIFEST}","digest":"{d}","size":1,"x-junk":{}}}"#,
                    if i == 0 { junk } else { "0" }
                ));
            }
            text.push_str("]}");
            text.into_bytes()
        };
        let first = Arc::new(page(1, &junk));
        let many = Arc::new(page(700, "0"));
        let served = Arc::new(Mutex::new(0usize));
        let served2 = Arc::clone(&served);
        let handler: Arc<Handler> = Arc::new(move |_: &Req, _: &str| {
            let mut n = served2.lock().expect("count");
            *n += 1;
            let body = if *n <= 14 {
                first.to_vec()
            } else {
                many.to_vec()
            };
            let headers = vec![
                ("Content-Type".into(), MEDIA_TYPE_IMAGE_INDEX.into()),
                (
                    "Link".into(),
                    format!("</v2/acme/app/referrers/x?n={n}>; rel=\"next\""),
                ),
            ];
            (200, headers, body)
        });
        let (addr, _) = fake(handler);
        let found = client(&addr, None)
            .referrers("acme/app", &Digest::sha256_of(b"image"), None)
            .expect("referrers");
        assert_eq!(found.via, ReferrersVia::Api);
        assert_eq!(*served.lock().expect("count"), 16, "16 pages at most");
        // 14 one-entry pages, then 700 + 700 entries: all counted, the last 1024 kept.
        assert_eq!(found.listed, 14 + 1400);
        assert_eq!(found.entries.len(), Caps::default().referrers);
        let last = Digest::sha256_of(b"entry 699");
        assert_eq!(found.entries.last().map(|r| &r.digest), Some(&last));
    }

    #[test]
    fn updating_a_tag_schema_index_keeps_other_tools_entries_as_they_were() {
        let theirs = format!(
            r#"{{"mediaType":"{MEDIA_TYPE_IMAGE_MANIFEST}","digest":"{}","size":9,"artifactType":"application/vnd.dev.cosign.artifact.sig.v1+json","platform":{{"architecture":"amd64","os":"linux"}},"data":"e30=","annotations":{{"n":1}},"x-tool":[1,2]}}"#,
            Digest::sha256_of(b"cosign")
        );
        let index = format!(
            r#"{{"schemaVersion":2,"mediaType":"{MEDIA_TYPE_IMAGE_INDEX}","manifests":[{theirs}]}}"#
        );
        let written = Arc::new(Mutex::new(Vec::new()));
        let written2 = Arc::clone(&written);
        let handler: Arc<Handler> = Arc::new(move |req: &Req, _: &str| {
            if req.method == "PUT" {
                *written2.lock().expect("written") = req.body.clone();
                return (201, vec![], Vec::new());
            }
            let headers = vec![("Content-Type".into(), MEDIA_TYPE_IMAGE_INDEX.into())];
            (200, headers, index.clone().into_bytes())
        });
        let (addr, _) = fake(handler);
        let subject = Digest::sha256_of(b"image");
        let mut ours = Descriptor::new(MEDIA_TYPE_IMAGE_MANIFEST, b"our signature");
        ours.artifact_type = Some(crate::registry::oci::ARTIFACT_SIGNATURE.into());
        client(&addr, None)
            .add_to_referrers_tag("acme/app", &subject, ours.clone())
            .expect("updated");
        let written: serde_json::Value =
            serde_json::from_slice(&written.lock().expect("written")).expect("json");
        let theirs: serde_json::Value = serde_json::from_str(&theirs).expect("theirs");
        assert_eq!(written["manifests"][0], theirs, "kept exactly");
        assert_eq!(written["manifests"][1]["digest"], ours.digest.to_string());
        assert_eq!(written["manifests"].as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn an_entry_with_a_huge_artifact_type_is_not_kept() {
        let huge = "x".repeat(3 * 1024 * 1024);
        let d = Digest::sha256_of(b"sig");
        let body = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{MEDIA_TYPE_IMAGE_MANIFEST}","digest":"{d}","size":1,"artifactType":"{huge}"}},{{"mediaType":"{MEDIA_TYPE_IMAGE_MANIFEST}","digest":"{d}","size":1,"artifactType":"a/b"}}]}}"#
        )
        .into_bytes();
        let handler: Arc<Handler> = Arc::new(move |_: &Req, _: &str| {
            let headers = vec![("Content-Type".into(), MEDIA_TYPE_IMAGE_INDEX.into())];
            (200, headers, body.clone())
        });
        let (addr, _) = fake(handler);
        let found = client(&addr, None)
            .referrers("acme/app", &Digest::sha256_of(b"image"), None)
            .expect("referrers");
        assert_eq!(found.listed, 1);
        assert_eq!(found.entries.len(), 1);
        assert_eq!(found.entries[0].artifact_type.as_deref(), Some("a/b"));
    }

    /// A registry that answers every request honestly, but late: one deadline bounds the
    /// whole operation, and the error names the request that was waiting.
    #[test]
    fn one_deadline_bounds_every_request_of_an_operation() {
        let handler: Arc<Handler> = Arc::new(|_: &Req, _: &str| {
            std::thread::sleep(Duration::from_millis(400));
            let headers = vec![
                ("Content-Type".into(), MEDIA_TYPE_IMAGE_INDEX.into()),
                (
                    "Link".into(),
                    "</v2/acme/app/referrers/x?next=1>; rel=\"next\"".into(),
                ),
            ];
            (200, headers, index_of(&["b/sig"]))
        });
        let (addr, log) = fake(handler);
        let c = client(&addr, None); // 5 s per request
        let deadline = Deadline::after(Duration::from_millis(1500));
        let started = Instant::now();
        let err = c
            .with_deadline(deadline)
            .referrers("acme/app", &Digest::sha256_of(b"image"), None)
            .expect_err("out of time");
        let took = started.elapsed();
        assert!(
            matches!(err.kind, ErrorKind::DeadlineExceeded { budget } if budget == Duration::from_millis(1500)),
            "{err}"
        );
        assert!(
            err.to_string().contains("GET /v2/acme/app/referrers/")
                && err.to_string().contains("deadline of 1.5 s"),
            "{err}"
        );
        assert!(took < Duration::from_secs(3), "took {took:?}");
        let sent = log.lock().expect("log").len();
        assert!((2..=5).contains(&sent), "{sent} requests");
        assert_eq!(
            FetchError::from(err).reason(),
            crate::verdict::ReasonCode::Unavailable
        );
    }
}
