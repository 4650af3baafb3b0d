//! The gRPC face of the verifier. Every protobuf ↔ domain conversion is in [`convert`].

pub mod convert;
