//! The gRPC face of the verifier for its clients: a client of the daemon's socket, and the
//! conversions of the library's types to and from protobuf (the daemon's service and its
//! own conversions are in `pullguard-node`).

pub mod client;
pub mod convert;
