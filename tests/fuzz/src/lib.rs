//! What the fuzz targets share: fixed keys of every type the trust core accepts, an
//! in-memory metadata source and trust store, a small fixed repository (valid, signed, with
//! delegations and hash bins) to start from, and a reader that cuts an input into pieces.
//!
//! Everything is deterministic: keys come from fixed seeds or from the test-only key files
//! beside this file, times are fixed ([`now`]), so a reproducer behaves the same in every
//! process.

pub mod input;
pub mod keys;
pub mod mem;
pub mod repo;

use chrono::{DateTime, TimeZone, Utc};

/// The clock of every target: 2030-01-01T00:00:00Z (fixtures expire in 2100).
pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_default()
}

/// The expiry written into the fixtures.
pub const FAR_EXPIRY: &str = "2100-01-01T00:00:00Z";
