//! The trust stores: [`dir::DirStore`] keeps files (the `tuf-client` and `verify` commands),
//! and [`rocks::RocksTrustStore`] keeps a scope's state in RocksDB (the daemon). Both
//! implement the trust core's [`crate::tuf::state::TrustStore`]; [`scoped`] binds a state
//! directory to one scope.

pub mod dir;
pub mod rocks;
pub mod scoped;
