//! pullguard's gRPC API, generated from `pullguard/v1/verifier.proto`, and the client side of
//! its socket. Generated code lives only here, in named modules, with lint allowances scoped
//! to them.

pub mod client;

pub mod v1 {
    #![allow(clippy::all, clippy::pedantic, missing_docs)]
    tonic::include_proto!("pullguard.v1");
}
