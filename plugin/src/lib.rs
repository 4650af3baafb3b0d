//! pullguard's verifier library: the TUF trust core, metadata sources, trust stores and
//! verdicts, and a client of the daemon. It does not link RocksDB: the daemon's parts that
//! do (its store, verdict cache and service) are `pullguard-node`, so that a command that
//! only asks the daemon starts fast.

#![forbid(unsafe_code)]

pub mod bundle;
pub mod config;
pub mod grpc;
pub mod image;
pub mod io;
pub mod publish;
pub mod registry;
pub mod source;
pub mod store;
pub mod tuf;
pub mod verdict;
pub mod verify;
