//! The node's refreshes: in the background when a scope is due, on request (`Refresh`),
//! and the status they leave (`Status`).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use chrono::Utc;
use pullguard_plugin::config::Mode;
use pullguard_plugin::io::Deadline;
use pullguard_plugin::verdict::Verdict;

use crate::scope::{jittered, NodeScope, FIRST_BACKOFF};
use crate::{lock, Node, NodeStatus, ScopeStatus, UnknownScope};

impl Node {
    /// Refreshes every scope whose time has come (not those in `off` mode); returns how
    /// long until the next one is due. Blocking: the daemon's background task calls it.
    pub fn refresh_due(&self) -> Duration {
        let mut wait = self.refresh_interval;
        for s in self.scopes.iter().filter(|s| s.config.mode != Mode::Off) {
            if lock(&s.schedule).next <= Instant::now() {
                let _ = self.refresh_scope(s);
            }
            let next = lock(&s.schedule).next;
            wait = wait.min(next.saturating_duration_since(Instant::now()));
        }
        wait.max(Duration::from_millis(100))
    }

    /// Refreshes `name` (every scope when none) now, and says how each stands.
    pub fn refresh(&self, name: Option<&str>) -> Result<NodeStatus, UnknownScope> {
        let chosen: Vec<&NodeScope> = match name {
            None => self.scopes.iter().collect(),
            Some(n) => {
                let wanted = n.trim_end_matches('/');
                let s = self
                    .scopes
                    .iter()
                    .find(|s| s.name == wanted)
                    .ok_or_else(|| UnknownScope {
                        name: n.to_string(),
                    })?;
                vec![s]
            }
        };
        for s in &chosen {
            let _ = self.refresh_scope(s);
        }
        Ok(self.report(chosen.into_iter()))
    }

    /// How every scope stands.
    pub fn status(&self) -> NodeStatus {
        self.report(self.scopes.iter())
    }

    fn report<'a>(&'a self, scopes: impl Iterator<Item = &'a NodeScope>) -> NodeStatus {
        let c = &self.counters;
        NodeStatus {
            scopes: scopes.map(|s| self.status_of(s)).collect(),
            cache_hits: c.cache_hits.load(Ordering::Relaxed),
            cache_misses: c.cache_misses.load(Ordering::Relaxed),
            evaluations: c.evaluations.load(Ordering::Relaxed),
        }
    }

    fn status_of(&self, s: &NodeScope) -> ScopeStatus {
        let view = s.view.read().unwrap_or_else(|p| p.into_inner()).clone();
        ScopeStatus {
            name: s.name.clone(),
            mode: s.config.mode,
            root_version: view.root_version,
            timestamp_version: view.timestamp_version,
            timestamp_expires: view.timestamp_expires,
            snapshot_version: view.snapshot_version,
            snapshot_expires: view.snapshot_expires,
            last_refresh: view.last_refresh,
            last_attempt: view.last_attempt,
            last_error: view.last_error,
            cached_verdicts: self.cache.count(&s.name).unwrap_or(0),
        }
    }

    /// The TUF refresh of one scope (timestamp first, the rest as it points to), and the
    /// next background refresh scheduled: before the timestamp expires (at most
    /// `refresh_interval` away, jittered), or after a backoff when it failed.
    fn refresh_scope(&self, s: &NodeScope) -> Result<(), Verdict> {
        let deadline = Deadline::after(self.deadline);
        let _one_at_a_time = lock(&s.busy);
        let now = Utc::now();
        self.counters.refreshes.fetch_add(1, Ordering::Relaxed);
        let outcome = self
            .with_updater(s, deadline, |updater, _| match updater.refresh(now) {
                Ok(()) => {
                    if let Some(trusted) = updater.trusted() {
                        s.view_mut().refreshed(trusted, now);
                    }
                    Ok(())
                }
                Err(e) => Err(Verdict::from(&e)),
            })
            .and_then(|r| r);
        let mut schedule = lock(&s.schedule);
        match &outcome {
            Ok(()) => {
                let expires = s
                    .view
                    .read()
                    .unwrap_or_else(|p| p.into_inner())
                    .timestamp_expires;
                let until_expiry = expires
                    .and_then(|t| (t - now).to_std().ok())
                    .unwrap_or(Duration::ZERO);
                let wait = self.refresh_interval.min(until_expiry / 2);
                schedule.next = Instant::now() + jittered(wait).max(FIRST_BACKOFF);
                schedule.backoff = FIRST_BACKOFF;
            }
            Err(denial) => {
                self.counters
                    .refresh_failures
                    .fetch_add(1, Ordering::Relaxed);
                s.view_mut()
                    .failed(denial.reason, denial.message.clone(), now);
                schedule.next = Instant::now() + schedule.backoff;
                schedule.backoff = (schedule.backoff * 2).min(self.refresh_interval);
            }
        }
        outcome
    }
}
