//! The trust core: TUF metadata, canonical JSON, keys and thresholds, the client update
//! workflow. No I/O happens here; it reaches the network and disk only through
//! [`fetch::MetadataSource`] and [`state::TrustStore`], which it defines and adapters
//! implement; it imports no adapter.

pub mod cjson;
pub mod client;
pub mod error;
pub mod fetch;
pub mod keys;
pub mod names;
pub mod pattern;
pub mod schema;
pub mod signing;
pub mod state;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;
pub mod trusted;
pub mod verify;

pub use client::{Limits, TargetInfo, Updater};
pub use error::{Error, Result};
pub use names::RoleName;
pub use trusted::TrustedSet;
