//! What the daemon counts, and its Prometheus text form (`/metrics`): verdicts by reason
//! and mode, cache hits and misses, evaluations, the verify latency histogram, refresh
//! failures, and the seconds until each scope's timestamp expires.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};

use pullguard_plugin::verdict::ReasonCode;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 16] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0,
];

/// A latency histogram with Prometheus' cumulative buckets.
#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    fn render(&self, name: &str, out: &mut String) {
        let mut cumulative = 0;
        for (bound, count) in BUCKETS.iter().zip(&self.counts) {
            cumulative += count.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// Counters since start.
#[derive(Debug)]
pub struct Counters {
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
    /// Verifications that ran (shared ones counted once).
    pub evaluations: AtomicU64,
    pub refreshes: AtomicU64,
    pub refresh_failures: AtomicU64,
    /// Verdicts by reason, mode and admitted (see [`slot`]).
    verdicts: [AtomicU64; ReasonCode::ALL.len() * MODES.len() * 2],
    pub latency: Histogram,
    /// Audit entries that could not be written (the log fell behind or failed).
    pub audit_dropped: AtomicU64,
}

/// The mode labels: a scope's mode, or `none` for an image in no scope.
pub const MODES: [&str; 4] = ["enforce", "warn", "off", "none"];

fn slot(reason: ReasonCode, mode: &str, admitted: bool) -> usize {
    let r = ReasonCode::ALL
        .iter()
        .position(|c| *c == reason)
        .unwrap_or(0);
    let m = MODES
        .iter()
        .position(|x| *x == mode)
        .unwrap_or(MODES.len() - 1);
    (r * MODES.len() + m) * 2 + usize::from(admitted)
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            cache_hits: AtomicU64::new(0),
            cache_misses: AtomicU64::new(0),
            evaluations: AtomicU64::new(0),
            refreshes: AtomicU64::new(0),
            refresh_failures: AtomicU64::new(0),
            verdicts: std::array::from_fn(|_| AtomicU64::new(0)),
            latency: Histogram::default(),
            audit_dropped: AtomicU64::new(0),
        }
    }
}

impl Counters {
    pub fn verdict(&self, reason: ReasonCode, mode: &str, admitted: bool) {
        if let Some(n) = self.verdicts.get(slot(reason, mode, admitted)) {
            n.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// One scope's gauges at scrape time.
pub struct ScopeGauges<'a> {
    pub name: &'a str,
    pub timestamp_expires: Option<DateTime<Utc>>,
    pub refresh_ok: bool,
}

/// The Prometheus text exposition of `c` and the scopes' gauges at `now`.
pub fn render(c: &Counters, scopes: &[ScopeGauges<'_>], now: DateTime<Utc>) -> String {
    let mut out = String::with_capacity(4096);
    let counter = |out: &mut String, name: &str, help: &str, value: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
        );
    };
    let _ = writeln!(
        out,
        "# HELP pullguard_verdicts_total Verdicts given, by reason code and scope mode.\n\
         # TYPE pullguard_verdicts_total counter"
    );
    for (reason, mode, admitted) in ReasonCode::ALL.iter().flat_map(|r| {
        MODES
            .iter()
            .flat_map(move |m| [false, true].map(move |a| (*r, *m, a)))
    }) {
        let n = c.verdicts[slot(reason, mode, admitted)].load(Ordering::Relaxed);
        if n == 0 {
            continue;
        }
        let _ = writeln!(
            out,
            "pullguard_verdicts_total{{reason=\"{reason}\",mode=\"{mode}\",admitted=\"{admitted}\"}} {n}"
        );
    }
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    counter(
        &mut out,
        "pullguard_cache_hits_total",
        "Verifications answered from the verdict cache.",
        load(&c.cache_hits),
    );
    counter(
        &mut out,
        "pullguard_cache_misses_total",
        "Verifications not in the verdict cache.",
        load(&c.cache_misses),
    );
    counter(
        &mut out,
        "pullguard_evaluations_total",
        "Verifications evaluated against the source.",
        load(&c.evaluations),
    );
    counter(
        &mut out,
        "pullguard_refreshes_total",
        "Metadata refreshes attempted.",
        load(&c.refreshes),
    );
    counter(
        &mut out,
        "pullguard_refresh_failures_total",
        "Metadata refreshes that failed.",
        load(&c.refresh_failures),
    );
    counter(
        &mut out,
        "pullguard_audit_dropped_total",
        "Audit entries that could not be written.",
        load(&c.audit_dropped),
    );
    let _ = writeln!(
        out,
        "# HELP pullguard_verify_duration_seconds Time to answer a verification.\n\
         # TYPE pullguard_verify_duration_seconds histogram"
    );
    c.latency
        .render("pullguard_verify_duration_seconds", &mut out);
    let _ = writeln!(
        out,
        "# HELP pullguard_timestamp_expiry_seconds Seconds until the scope's trusted timestamp expires (negative: expired).\n\
         # TYPE pullguard_timestamp_expiry_seconds gauge"
    );
    for s in scopes {
        if let Some(t) = s.timestamp_expires {
            let secs = (t - now).num_milliseconds() as f64 / 1000.0;
            let _ = writeln!(
                out,
                "pullguard_timestamp_expiry_seconds{{scope=\"{}\"}} {secs}",
                label(s.name)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP pullguard_scope_refresh_ok Whether the scope's last refresh succeeded.\n\
         # TYPE pullguard_scope_refresh_ok gauge"
    );
    for s in scopes {
        let _ = writeln!(
            out,
            "pullguard_scope_refresh_ok{{scope=\"{}\"}} {}",
            label(s.name),
            u8::from(s.refresh_ok)
        );
    }
    out
}

/// A label value escaped as the exposition format wants.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_holds_every_family_with_cumulative_buckets() {
        let c = Counters::default();
        c.verdict(ReasonCode::Verified, "enforce", true);
        c.verdict(ReasonCode::Verified, "enforce", true);
        c.verdict(ReasonCode::Rollback, "warn", true);
        c.latency.observe(Duration::from_micros(30));
        c.latency.observe(Duration::from_millis(3));
        c.latency.observe(Duration::from_secs(60));
        let now = Utc::now();
        let text = render(
            &c,
            &[ScopeGauges {
                name: "r.io/a\"b",
                timestamp_expires: Some(now + chrono::Duration::seconds(90)),
                refresh_ok: false,
            }],
            now,
        );
        assert!(text.contains(
            "pullguard_verdicts_total{reason=\"verified\",mode=\"enforce\",admitted=\"true\"} 2"
        ));
        assert!(text.contains("pullguard_verify_duration_seconds_bucket{le=\"0.00005\"} 1"));
        assert!(text.contains("pullguard_verify_duration_seconds_bucket{le=\"0.005\"} 2"));
        assert!(text.contains("pullguard_verify_duration_seconds_bucket{le=\"+Inf\"} 3"));
        assert!(text.contains("pullguard_verify_duration_seconds_count 3"));
        assert!(text.contains("pullguard_timestamp_expiry_seconds{scope=\"r.io/a\\\"b\"} 90"));
        assert!(text.contains("pullguard_scope_refresh_ok{scope=\"r.io/a\\\"b\"} 0"));
    }
}
