//! pullguard's verifier library: the TUF trust core, metadata sources, trust stores and
//! verdicts. Runtime adapters and the gRPC service build on these.

#![forbid(unsafe_code)]

pub mod audit;
pub mod bundle;
pub mod config;
pub mod grpc;
pub mod image;
pub mod io;
pub mod node;
pub mod publish;
pub mod registry;
pub mod source;
pub mod store;
pub mod tuf;
pub mod verdict;
pub mod verify;
