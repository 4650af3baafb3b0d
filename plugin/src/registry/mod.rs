//! The OCI registry side of pullguard: names ([`reference`]), the documents it reads and
//! writes ([`oci`]), authentication ([`auth`]) and the distribution API client
//! ([`client::Registry`]). Trust data in a registry is read through the registry-native
//! metadata source (`source::oci`), which builds on this module; this one knows nothing of it.

pub mod answer;
pub mod auth;
pub mod client;
pub mod error;
pub mod oci;
pub mod reference;

pub use client::{Registry, RegistryConfig};
pub use error::{ErrorKind, RegistryError};
pub use reference::{Digest, ImageRef, NameError, Scope};
