//! The node's verifier (DESIGN §5): what `pullguard serve` answers for one image. It finds
//! the image's scope (the longest configured prefix) and answers from the verdict cache
//! when a verdict computed from the scope's current trusted state is still valid; else it
//! refreshes the scope's metadata and checks the image with [`pullguard_plugin::image::verify_image`]
//! within one deadline, one evaluation per image at a time, and caches an admission. A
//! background refresh ([`Node::refresh_due`]) keeps each scope's timestamp fresh so the
//! cache answers. Then the scope's mode applies. Blocking: the gRPC layer calls it off the
//! async runtime.

#![forbid(unsafe_code)]

mod answer;
pub mod audit;
mod cache;
mod convert;
mod flight;
mod metrics;
mod refresh;
pub mod rocks;
mod scope;
pub mod service;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use pullguard_cache::{Store, VerdictRecord};

pub use answer::{Answer, NodeStatus, ScopeStatus, UnknownScope};
use cache::VerdictCache;
pub use cache::{CacheError, Pruned};
use flight::{Flights, Joined};
pub use metrics::Counters;
use scope::{
    clock_behind, ensure_root, load_view, micros_to_time, policy_hash, tag_of, NodeScope, Schedule,
    ScopeSource, View, FIRST_BACKOFF,
};

use crate::audit::AuditLog;
use crate::rocks::RocksTrustStore;
use pullguard_plugin::bundle::Bundle;
use pullguard_plugin::config::{parse_setting_duration, Config, Mode, SourceKind, Unmatched};
use pullguard_plugin::image::{pin, verify_image, SignatureSource};
use pullguard_plugin::io::Deadline;
use pullguard_plugin::registry::{Digest, ImageRef, Registry, Scope};
use pullguard_plugin::source::dir::DirSource;
use pullguard_plugin::source::http::HttpSource;
use pullguard_plugin::source::oci::OciSource;
use pullguard_plugin::store::scoped::read_root;
use pullguard_plugin::tuf::fetch::MetadataSource;
use pullguard_plugin::tuf::{Limits, Updater};
use pullguard_plugin::verdict::{Evidence, ReasonCode, Verdict};

/// Why a node could not be set up from its config (before anything is served).
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("scope[{index}].{key}: {reason}")]
    Scope {
        index: usize,
        key: &'static str,
        reason: String,
    },
    #[error("registry {host}: {source}")]
    Registry {
        host: String,
        source: pullguard_plugin::registry::client::SetupError,
    },
    #[error("{source}")]
    Cache {
        #[from]
        source: CacheError,
    },
}

/// How many verdicts are kept in memory before RocksDB is asked.
const FRONT_CAPACITY: usize = 8_192;

/// The verifier of one node.
pub struct Node {
    db: Arc<Store>,
    cache: VerdictCache,
    flights: Flights<(usize, String), Answer>,
    scopes: Vec<NodeScope>,
    unmatched: Unmatched,
    allow: Vec<ImageRef>,
    deadline: Duration,
    refresh_interval: Duration,
    pub counters: Counters,
    audit: Option<AuditLog>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Node {
    /// A node for `config` (already validated), keeping trusted state and verdicts in `db`.
    /// Verdicts of a policy, root or scope no longer configured are removed.
    pub fn new(config: &Config, db: Arc<Store>) -> Result<Self, NodeError> {
        let mut scopes = Vec::new();
        let mut registries: BTreeMap<String, Arc<Registry>> = BTreeMap::new();
        for (index, s) in config.scopes.iter().enumerate() {
            let bad = |key: &'static str, reason: String| NodeError::Scope { index, key, reason };
            let scope: Scope = s.name.parse().map_err(|e| bad("name", format!("{e}")))?;
            // The root must be usable now: a daemon that starts but can never verify a
            // scope would look healthy while denying it. Read once, kept for installing.
            let root = read_root(&s.root).map_err(|e| bad("root", e.to_string()))?;
            let offline_grace = parse_setting_duration(&s.offline_grace, true)
                .map_err(|e| bad("offline_grace", e))?;
            let host = scope.registry().to_string();
            let registry = match registries.get(&host) {
                Some(r) => Arc::clone(r),
                None => {
                    let r = config
                        .registry(&host)
                        .map_err(|source| NodeError::Registry {
                            host: host.clone(),
                            source,
                        })?;
                    registries.insert(host, Arc::clone(&r));
                    r
                }
            };
            let source = match SourceKind::parse(&s.source).map_err(|e| bad("source", e))? {
                SourceKind::Bundle(path) => {
                    let b = Bundle::read(&path).map_err(|e| bad("source", e))?;
                    if b.scope.parse::<Scope>().ok().as_ref() != Some(&scope) {
                        return Err(bad(
                            "source",
                            format!(
                                "{} is a bundle for scope {}, not {scope}",
                                path.display(),
                                b.scope
                            ),
                        ));
                    }
                    ScopeSource::Bundle(Arc::new(b))
                }
                SourceKind::Oci => ScopeSource::Oci,
                SourceKind::Http(url) => ScopeSource::Http(url),
                SourceKind::Dir(dir) => ScopeSource::Dir(dir),
            };
            let name = scope.to_string();
            let view = load_view(&db, &name);
            scopes.push(NodeScope {
                policy: policy_hash(&name, &root.0, s),
                name,
                scope,
                root,
                config: s.clone(),
                offline_grace,
                registry,
                source,
                view: RwLock::new(view),
                schedule: Mutex::new(Schedule {
                    next: Instant::now(),
                    backoff: FIRST_BACKOFF,
                }),
                busy: Mutex::new(()),
            });
        }
        let allow = config
            .daemon
            .allow
            .iter()
            .filter_map(|a| a.parse().ok())
            .collect();
        let deadline = parse_setting_duration(&config.daemon.verify_deadline, false)
            .unwrap_or(Duration::from_secs(5));
        let refresh_interval = parse_setting_duration(&config.daemon.refresh_interval, false)
            .unwrap_or(Duration::from_secs(60));
        let cache = VerdictCache::new(Arc::clone(&db), FRONT_CAPACITY);
        let node = Node {
            db,
            cache,
            flights: Flights::default(),
            scopes,
            unmatched: config.daemon.unmatched,
            allow,
            deadline,
            refresh_interval,
            counters: Counters::default(),
            audit: None,
        };
        node.prune()?;
        Ok(node)
    }

    /// Records every decision in `log` from now on.
    pub fn with_audit(mut self, log: AuditLog) -> Self {
        self.audit = Some(log);
        self
    }

    /// The Prometheus text exposition of the node's metrics now.
    pub fn metrics_text(&self) -> String {
        let views: Vec<(String, View)> = self
            .scopes
            .iter()
            .map(|s| {
                (
                    s.name.clone(),
                    s.view.read().unwrap_or_else(|p| p.into_inner()).clone(),
                )
            })
            .collect();
        let gauges: Vec<metrics::ScopeGauges<'_>> = views
            .iter()
            .map(|(name, v)| metrics::ScopeGauges {
                name,
                timestamp_expires: v.timestamp_expires,
                refresh_ok: v.last_refresh.is_some() && v.last_error.is_none(),
            })
            .collect();
        metrics::render(&self.counters, &gauges, Utc::now())
    }

    /// Removes verdicts no configured scope can use: of another policy or scope, or
    /// expired longer ago than any grace.
    fn prune(&self) -> Result<Pruned, CacheError> {
        let now = Utc::now();
        self.cache.prune(|key, record| {
            self.scopes.iter().any(|s| {
                s.name == key.scope
                    && s.policy == key.policy_hash
                    && micros_to_time(record.valid_until).is_some_and(|t| {
                        now < t + chrono::Duration::from_std(s.offline_grace)
                            .unwrap_or(chrono::Duration::zero())
                    })
            })
        })
    }

    /// The answer for `reference` (as the runtime names it) with manifest `digest`; an
    /// empty `digest` asks the node to resolve the reference's tag in its registry first.
    /// `descriptor` is the OCI descriptor the runtime pulled, when it gives one: its
    /// digest must be the digest, and its size the length trusted metadata lists.
    pub fn verify(&self, reference: &str, digest: &str, descriptor: Option<&str>) -> Answer {
        let started = Instant::now();
        let answer = self
            .decide(reference, digest, descriptor, true)
            .unwrap_or_else(|| {
                Answer::of(Verdict::deny(
                    ReasonCode::Internal,
                    "the verification gave no answer",
                ))
            });
        self.observe(reference, digest, &answer, started.elapsed());
        answer
    }

    /// [`Node::verify`] when the answer needs no network and no waiting (a cache hit, a
    /// bad request, the allow list, an image in no scope, a scope that is off); `None`
    /// otherwise. For callers on an async runtime, which may not block.
    pub fn verify_at_once(
        &self,
        reference: &str,
        digest: &str,
        descriptor: Option<&str>,
    ) -> Option<Answer> {
        let started = Instant::now();
        let answer = self.decide(reference, digest, descriptor, false)?;
        self.observe(reference, digest, &answer, started.elapsed());
        Some(answer)
    }

    /// Counts the decision and writes it to the audit log.
    fn observe(&self, reference: &str, digest: &str, answer: &Answer, took: Duration) {
        let mode = answer
            .scope
            .as_ref()
            .and_then(|name| self.scopes.iter().find(|s| &s.name == name))
            .map_or("none", |s| s.config.mode.as_str());
        let v = &answer.verdict;
        self.counters.verdict(v.reason, mode, v.admitted);
        self.counters.latency.observe(took);
        let Some(log) = &self.audit else {
            return;
        };
        let digest = answer
            .image
            .as_ref()
            .and_then(|i| i.digest())
            .map_or_else(|| digest.to_string(), |d| d.to_string());
        let entry = crate::audit::Entry {
            time: Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            reference: reference.to_string(),
            digest,
            admitted: v.admitted,
            reason: v.reason.as_str(),
            mode,
            scope: answer.scope.clone(),
            cached: answer.cached,
            offline_grace: answer.offline_grace,
            would_deny: answer.would_deny.map(ReasonCode::as_str),
            evidence: answer.evidence.as_ref().map(ToString::to_string),
            message: v.message.clone(),
        };
        if !log.record(entry) {
            self.counters.audit_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The answer; `None` when it would need the network or waiting and `wait` is false.
    fn decide(
        &self,
        reference: &str,
        digest: &str,
        descriptor: Option<&str>,
        wait: bool,
    ) -> Option<Answer> {
        let invalid = |m: String| Some(Answer::of(Verdict::deny(ReasonCode::InvalidRequest, m)));
        let image: ImageRef = match reference.parse() {
            Ok(i) => i,
            Err(e) => return invalid(format!("reference: {e}")),
        };
        let descriptor = match descriptor.map(parse_descriptor).transpose() {
            Ok(d) => d,
            Err(e) => return invalid(format!("descriptor: {e}")),
        };
        let digest = match (&descriptor, digest) {
            (Some(d), "") => d.digest.to_string(),
            (Some(d), given) if d.digest.to_string() != given => {
                return invalid(format!(
                    "descriptor: its digest {} is not the digest asked about, {given}",
                    d.digest
                ))
            }
            (_, given) => given.to_string(),
        };
        let digest = digest.as_str();
        let image = if digest.is_empty() {
            image
        } else {
            let digest: Digest = match digest.parse() {
                Ok(d) => d,
                Err(e) => return invalid(format!("digest: {e}")),
            };
            if image.digest().is_some_and(|d| *d != digest) {
                return invalid(format!("{image} names another digest than {digest}"));
            }
            image.with_digest(digest)
        };
        let pinned = image.digest().is_some();
        if pinned && self.allow.iter().any(|a| is_same_image(a, &image)) {
            return Some(Answer::of(Verdict::admit_unchecked(format!(
                "{image} is allowed by digest (daemon.allow)"
            ))));
        }
        let Some((index, s)) = self.scope_of(&image) else {
            if !pinned {
                return invalid(format!(
                    "{image}: a digest is needed (the image is in no configured scope)"
                ));
            }
            return Some(Answer::of(match self.unmatched {
                Unmatched::Deny => Verdict::deny(
                    ReasonCode::NoTrustRoot,
                    format!("{image} is in no configured scope (daemon.unmatched = \"deny\")"),
                ),
                Unmatched::Admit => Verdict::admit_unchecked(format!(
                    "{image} is in no configured scope (daemon.unmatched = \"admit\")"
                )),
            }));
        };
        if s.config.mode == Mode::Off {
            return Some(Answer::about(
                Verdict::admit_unchecked(format!(
                    "scope {} is off: {image} is not checked",
                    s.name
                )),
                s,
                &image,
            ));
        }
        let mut answer = self.check(index, s, image, wait)?;
        if let (Some(d), Some(e)) = (&descriptor, &answer.evidence) {
            if answer.verdict.admitted && d.size != e.length {
                answer.verdict = Verdict::deny(
                    ReasonCode::LengthMismatch,
                    format!(
                        "the runtime's descriptor gives size {}, trusted metadata lists {} \
                         ({})",
                        d.size, e.length, answer.verdict.message
                    ),
                );
            }
        }
        Some(match s.config.mode {
            Mode::Warn if !answer.verdict.admitted => Answer {
                would_deny: Some(answer.verdict.reason),
                verdict: Verdict {
                    admitted: true,
                    message: format!("warn mode, would deny: {}", answer.verdict.message),
                    ..answer.verdict
                },
                ..answer
            },
            _ => answer,
        })
    }

    /// The scope with the longest namespace that holds `image`, and its index.
    fn scope_of(&self, image: &ImageRef) -> Option<(usize, &NodeScope)> {
        self.scopes
            .iter()
            .enumerate()
            .filter(|(_, s)| s.scope.contains(image))
            .max_by_key(|(_, s)| s.scope.namespace().len())
    }

    fn check(&self, index: usize, s: &NodeScope, image: ImageRef, wait: bool) -> Option<Answer> {
        if s.scope.relative_repository(&image).is_none() {
            return Some(Answer::about(
                Verdict::deny(
                    ReasonCode::UnknownTarget,
                    format!(
                        "{image} is in the trust repository of scope {}, not an image of it",
                        s.name
                    ),
                ),
                s,
                &image,
            ));
        }
        if !wait && image.digest().is_none() {
            return None;
        }
        // The deadline counts from the request: resolving a tag, waiting for the scope
        // or for another request's evaluation of the same image, all included.
        let deadline = Deadline::after(self.deadline);
        let image = if image.digest().is_some() {
            image
        } else {
            match pin(&s.registry.with_deadline(deadline), &image) {
                Ok(pinned) => pinned,
                Err(denial) => return Some(Answer::about(denial, s, &image)),
            }
        };
        if let Some(answer) = self.cached_answer_for(s, &image, Utc::now()) {
            self.counters.cache_hits.fetch_add(1, Ordering::Relaxed);
            return Some(answer);
        }
        if !wait {
            return None;
        }
        self.counters.cache_misses.fetch_add(1, Ordering::Relaxed);
        Some(match self.flights.join(&(index, image.to_string())) {
            Joined::Leader(leader) => {
                let answer = self.evaluate(s, &image, deadline);
                leader.finish(answer.clone());
                answer
            }
            Joined::Follower(follower) => follower.wait(deadline.at()).unwrap_or_else(|| {
                Answer::about(
                    Verdict::deny(
                        ReasonCode::Unavailable,
                        format!(
                            "the check of {image} that this request waited for did not finish \
                             within the deadline of {} s",
                            deadline.budget().as_secs_f64()
                        ),
                    ),
                    s,
                    &image,
                )
            }),
        })
    }

    /// The cached admission of `image` under the scope's current trusted state, if it is
    /// still valid at `now`; a clock behind the highest time seen is a denial.
    fn cached_answer_for(
        &self,
        s: &NodeScope,
        image: &ImageRef,
        now: DateTime<Utc>,
    ) -> Option<Answer> {
        let view = s.view.read().unwrap_or_else(|p| p.into_inner());
        if let Some(denial) = clock_behind(&view, now) {
            return Some(Answer::about(denial, s, image));
        }
        // The source served something refused (a rollback, a bad signature): the trusted
        // state still stands, but checks go to the source and say so until it is fixed.
        if view
            .last_error
            .as_ref()
            .is_some_and(|(r, _)| !r.is_transient())
        {
            return None;
        }
        let (record, until) = self.cached_record(s, &view, image)?;
        (now < until).then(|| s.cached_answer(&view, image, &record, until, false))
    }

    /// The admission under the view's state id for `image`'s tag, and until when it holds
    /// (its own expiry, bounded by the current timestamp's).
    fn cached_record(
        &self,
        s: &NodeScope,
        view: &View,
        image: &ImageRef,
    ) -> Option<(Arc<VerdictRecord>, DateTime<Utc>)> {
        if view.snapshot_version == 0 {
            return None;
        }
        let key = s.key(image, view.root_version, view.snapshot_version)?;
        let record = self.cache.get(&key).ok()??;
        if !record.admitted || !record.tags.iter().any(|t| t == tag_of(image)) {
            return None;
        }
        let until = micros_to_time(record.valid_until)?.min(view.timestamp_expires?);
        Some((record, until))
    }

    /// Refreshes and checks `image` with the scope to itself; caches an admission.
    fn evaluate(&self, s: &NodeScope, image: &ImageRef, deadline: Deadline) -> Answer {
        let _one_at_a_time = lock(&s.busy);
        if deadline.has_passed() {
            return Answer::about(
                Verdict::deny(
                    ReasonCode::Unavailable,
                    format!(
                        "the deadline of {} s ran out while other checks of scope {} ran",
                        deadline.budget().as_secs_f64(),
                        s.name
                    ),
                ),
                s,
                image,
            );
        }
        let now = Utc::now();
        // The check that held the scope before may have cached this very image.
        if let Some(answer) = self.cached_answer_for(s, image, now) {
            return answer;
        }
        self.counters.evaluations.fetch_add(1, Ordering::Relaxed);
        let outcome = self.with_updater(s, deadline, |updater, signatures| {
            let checked = verify_image(updater, signatures, &s.scope, image, s.config.require, now);
            let refreshed = updater.trusted().is_some();
            if let Some(trusted) = updater.trusted() {
                s.view_mut().refreshed(trusted, now);
            }
            (checked, refreshed)
        });
        let (checked, refreshed) = match outcome {
            Ok(o) => o,
            Err(denial) => return Answer::about(denial, s, image),
        };
        let verdict = checked.verdict;
        if !refreshed {
            s.view_mut()
                .failed(verdict.reason, verdict.message.clone(), now);
            if matches!(
                verdict.reason,
                ReasonCode::Unavailable | ReasonCode::RateLimited
            ) {
                if let Some(answer) = self.within_grace(s, image, &verdict, now) {
                    return answer;
                }
            }
        }
        let Some((evidence, lasting)) = checked.evidence.filter(|_| verdict.admitted) else {
            return Answer::about(verdict, s, image);
        };
        self.remember(s, image, &verdict, &evidence, lasting);
        Answer {
            evidence: Some(evidence),
            ..Answer::about(verdict, s, image)
        }
    }

    /// Caches an admission under the state it was computed from, with the tags already
    /// checked under that key. A failure to cache costs only a later re-check.
    fn remember(
        &self,
        s: &NodeScope,
        image: &ImageRef,
        verdict: &Verdict,
        evidence: &Evidence,
        lasting: DateTime<Utc>,
    ) {
        let Some(key) = s.key(image, evidence.root_version, evidence.snapshot_version) else {
            return;
        };
        let mut tags = self
            .cache
            .get(&key)
            .ok()
            .flatten()
            .filter(|r| r.admitted)
            .map(|r| r.tags.clone())
            .unwrap_or_default();
        let tag = tag_of(image).to_string();
        if !tags.contains(&tag) {
            tags.push(tag);
        }
        let record = VerdictRecord {
            admitted: true,
            reason: verdict.reason.as_str().to_string(),
            message: verdict.message.clone(),
            valid_until: lasting.timestamp_micros(),
            tags,
            timestamp_version: evidence.timestamp_version,
            role: evidence.role.clone(),
            role_version: evidence.role_version,
            length: evidence.length,
            signature_version: evidence.signature_version,
            key_ids: evidence.key_ids.clone(),
        };
        if let Err(e) = self.cache.put(&key, record) {
            eprintln!("pullguard: warning: {e}");
        }
    }

    /// When the source cannot be reached: the cached admission of `image`, past its expiry
    /// by no more than the scope's `offline_grace`.
    fn within_grace(
        &self,
        s: &NodeScope,
        image: &ImageRef,
        failure: &Verdict,
        now: DateTime<Utc>,
    ) -> Option<Answer> {
        let view = s.view.read().unwrap_or_else(|p| p.into_inner());
        let (record, until) = self.cached_record(s, &view, image)?;
        let grace = chrono::Duration::from_std(s.offline_grace).ok()?;
        if now >= until + grace {
            return None;
        }
        let mut answer = s.cached_answer(&view, image, &record, until, true);
        answer.verdict.message = format!(
            "{} — admitted within offline_grace ({} s): the evidence expired at {until}, and \
             {}",
            answer.verdict.message,
            s.offline_grace.as_secs(),
            failure.message
        );
        Some(answer)
    }

    /// Runs `f` with an updater over the scope's trusted state and sources, bounded by
    /// `deadline`.
    fn with_updater<R>(
        &self,
        s: &NodeScope,
        deadline: Deadline,
        f: impl for<'x> FnOnce(
            &mut Updater<&'x dyn MetadataSource, RocksTrustStore>,
            &'x dyn SignatureSource,
        ) -> R,
    ) -> Result<R, Verdict> {
        let registry = s.registry.with_deadline(deadline);
        let mut store = RocksTrustStore::new(Arc::clone(&self.db), s.name.clone());
        ensure_root(&mut store, &s.root)
            .map_err(|e| Verdict::deny(ReasonCode::Internal, e.to_string()))?;
        let signatures: &dyn SignatureSource = match &s.source {
            ScopeSource::Bundle(b) => b.as_ref(),
            _ => &registry,
        };
        // One of these is the scope's source; each kind lives for this call only.
        let (oci, http, dir);
        let source: &dyn MetadataSource = match &s.source {
            ScopeSource::Oci => {
                let mut o = OciSource::new(Arc::new(registry.clone()), s.scope.clone());
                if let Some(repo) = &s.config.trust_repository {
                    o = o.with_trust_repository(repo);
                }
                oci = o;
                &oci
            }
            ScopeSource::Http(url) => match HttpSource::new(url, None, registry.timeout()) {
                Ok(h) => {
                    http = h.with_deadline(deadline);
                    &http
                }
                Err(e) => return Err(Verdict::deny(ReasonCode::Internal, e)),
            },
            ScopeSource::Dir(d) => {
                dir = DirSource::new(d.clone(), d.join("targets"));
                &dir
            }
            ScopeSource::Bundle(b) => b.as_ref(),
        };
        let mut updater = Updater::new(source, store, Limits::default());
        Ok(f(&mut updater, signatures))
    }
}

/// The longest descriptor a request may carry.
pub const DESCRIPTOR_MAX: usize = 64 * 1024;

fn parse_descriptor(json: &str) -> Result<pullguard_plugin::registry::oci::Descriptor, String> {
    if json.len() > DESCRIPTOR_MAX {
        return Err(format!(
            "{} bytes, more than the {DESCRIPTOR_MAX} allowed",
            json.len()
        ));
    }
    serde_json::from_str(json).map_err(|e| e.to_string())
}

/// `allowed` and `image` are the same repository and digest.
fn is_same_image(allowed: &ImageRef, image: &ImageRef) -> bool {
    allowed.registry() == image.registry()
        && allowed.repository() == image.repository()
        && allowed.digest() == image.digest()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(config: &str) -> (Node, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let config: Config = toml::from_str(config).expect("config");
        config.validate().expect("valid");
        let db = Arc::new(Store::open(&dir.path().join("db")).expect("db"));
        (Node::new(&config, db).expect("node"), dir)
    }

    /// A usable root (of a repository that nothing serves).
    fn root_file(dir: &std::path::Path) -> std::path::PathBuf {
        let mut repo = pullguard_plugin::tuf::testing::RepoBuilder::new(&dir.join("repo"));
        repo.publish_all();
        let root = dir.join("root.json");
        std::fs::write(&root, repo.initial_root()).expect("root");
        root
    }

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn images_in_no_scope_get_the_unmatched_policy_and_the_allow_list_by_digest() {
        let digest = format!("sha256:{HEX}");
        let (deny, _d1) = node(&format!("[daemon]\nallow = [\"r.io/pause@{digest}\"]\n"));
        let v = deny.verify("r.io/app:1", &digest, None).verdict;
        assert!(!v.admitted);
        assert_eq!(v.reason, ReasonCode::NoTrustRoot);
        assert!(
            v.message.contains("daemon.unmatched = \"deny\""),
            "{}",
            v.message
        );
        // Allowed by digest: under any tag, but not another repository with that digest.
        assert!(
            deny.verify("r.io/pause:3.9", &digest, None)
                .verdict
                .admitted
        );
        assert!(
            !deny
                .verify("r.io/other:3.9", &digest, None)
                .verdict
                .admitted
        );
        let (admit, _d2) = node("[daemon]\nunmatched = \"admit\"\n");
        let v = admit.verify("r.io/app:1", &digest, None).verdict;
        assert!(v.admitted, "{}", v.message);
        // Admitted, but said to be unchecked and never reusable.
        assert_eq!(v.reason, ReasonCode::Unchecked);
        assert!(!v.reusable_at(Utc::now()));
        let allowed = deny.verify("r.io/pause:3.9", &digest, None).verdict;
        assert_eq!(allowed.reason, ReasonCode::Unchecked);
    }

    #[test]
    fn the_longest_scope_wins_and_its_trust_repository_is_no_image() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = root_file(dir.path());
        let text = format!(
            "[[scope]]\nname = \"127.0.0.1:1/acme\"\nroot = \"{r}\"\nmode = \"off\"\n\
             [[scope]]\nname = \"127.0.0.1:1/acme/team\"\nroot = \"{r}\"\n",
            r = root.display()
        );
        let (n, _d) = node(&text);
        let digest = format!("sha256:{HEX}");
        // acme is off, acme/team enforces: an image of acme/team is checked (and denied
        // here, as nothing is published), one of acme is not.
        assert!(
            n.verify("127.0.0.1:1/acme/app:1", &digest, None)
                .verdict
                .admitted
        );
        let team = n
            .verify("127.0.0.1:1/acme/team/app:1", &digest, None)
            .verdict;
        assert!(!team.admitted, "{}", team.message);
        // A look-alike namespace is no scope of these.
        let evil = n
            .verify("127.0.0.1:1/acme-evil/app:1", &digest, None)
            .verdict;
        assert!(!evil.admitted && evil.message.contains("in no configured scope"));
        let trust = n
            .verify("127.0.0.1:1/acme/team/trust:timestamp", &digest, None)
            .verdict;
        assert_eq!(trust.reason, ReasonCode::UnknownTarget, "{}", trust.message);
    }

    #[test]
    fn bad_requests_are_invalid_and_say_why() {
        let (n, _d) = node("");
        let digest = format!("sha256:{HEX}");
        for (reference, digest, says) in [
            ("app:1", digest.as_str(), "reference"),
            ("r.io/app:1", "sha256:xyz", "digest"),
            (
                &format!("r.io/app@sha256:{}", "f".repeat(64)) as &str,
                digest.as_str(),
                "another digest",
            ),
        ] {
            let v = n.verify(reference, digest, None).verdict;
            assert_eq!(v.reason, ReasonCode::InvalidRequest, "{reference}");
            assert!(v.message.contains(says), "{reference}: {}", v.message);
        }
    }

    #[test]
    fn a_scope_in_off_mode_admits_unchecked_and_the_policy_hash_follows_what_decides() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = root_file(dir.path());
        let scope = |extra: &str| {
            format!(
                "[[scope]]\nname = \"127.0.0.1:1/acme\"\nroot = \"{}\"\n{extra}",
                root.display()
            )
        };
        let (off, _d) = node(&scope("mode = \"off\""));
        let v = off
            .verify("127.0.0.1:1/acme/app:1", &format!("sha256:{HEX}"), None)
            .verdict;
        assert!(v.admitted && v.message.contains("is off"), "{}", v.message);
        // What the evidence required, the source and the trust repository change the
        // policy hash; the mode does not.
        let hash = |extra: &str| {
            let config: Config = toml::from_str(&scope(extra)).expect("config");
            let s = &config.scopes[0];
            policy_hash(&s.name, b"root", s)
        };
        let both = hash("");
        assert_eq!(both, hash("mode = \"warn\""));
        for other in [
            "require = \"targets\"",
            "require = \"signature\"",
            "trust_repository = \"acme/other\"",
            "source = \"file:///srv/tuf\"",
        ] {
            assert_ne!(both, hash(other), "{other}");
        }
    }
}
