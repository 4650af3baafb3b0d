//! The publisher side: key files ([`keyfile`]) and the working copy of a scope's TUF
//! repository ([`repo::Workspace`]) that `pullguard key`, `repo`, `sign` and `publish` edit.

pub mod keyfile;
pub mod repo;
