//! The trust core: TUF metadata, canonical JSON, keys and thresholds, the client update
//! workflow. No I/O happens here; it reaches the network and disk only through
//! [`crate::source::MetadataSource`] and [`crate::store::TrustStore`].

pub mod cjson;
pub mod client;
pub mod error;
pub mod keys;
pub mod names;
pub mod pattern;
pub mod schema;
pub mod signing;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;
pub mod trusted;
pub mod verify;

pub use client::{Limits, TargetInfo, Updater};
pub use error::{Error, Result};
pub use names::RoleName;
pub use trusted::TrustedSet;
