//! The daemon's runtime adapters: the containerd event watcher ([`watch`]), which checks
//! images that reached containerd without passing the hook, and the CRI image proxy
//! ([`cri`]), which checks every kubelet pull before the runtime makes it. Both ask the
//! node through [`pullguard_node::service::Verify`], so neither knows how a verdict is made.

pub mod cri;
pub mod reference;
pub mod ticket;
pub mod watch;
