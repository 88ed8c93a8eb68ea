//! The registry that keeps pool addresses unique: claim stores behind one
//! trait ([`store`]: host-wide files in [`host`], cluster-wide in
//! [`etcd`], the configured one in [`any_store`]), and what setup,
//! teardown and gc do with claims ([`claims`]).

pub mod any_store;
pub mod claims;
pub mod etcd;
pub mod host;
pub mod reclaim;
pub mod store;
