//! The gRPC face of the verifier: a thin service over the domain ([`service::Verify`]).
//! Every protobuf ↔ domain conversion is in [`convert`].

pub mod client;
pub mod convert;
pub mod service;
