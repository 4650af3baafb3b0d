//! The metadata sources: registry-native ([`oci`]), plain TUF over HTTP ([`http`]) and a
//! directory ([`dir`]), each an implementation of the trust core's
//! [`crate::tuf::fetch::MetadataSource`]; and detached signatures read from a registry's
//! referrers ([`referrers`]).

pub mod dir;
pub mod http;
pub mod oci;
pub mod referrers;
