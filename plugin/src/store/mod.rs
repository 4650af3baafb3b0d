//! The file trust store: [`dir::DirStore`] keeps files (the `tuf-client` and `verify`
//! commands) and implements the trust core's [`crate::tuf::state::TrustStore`], as the
//! daemon's RocksDB store in `pullguard-node` does; [`scoped`] binds a state directory to
//! one scope.

pub mod dir;
pub mod scoped;
