//! Address pools and the registry that keeps their claims unique:
//! the configuration ([`config`]), the claim stores behind one trait
//! ([`store`]: host-wide files in [`host`], cluster-wide in [`etcd`], the
//! one the configuration chose in [`any_store`]), what
//! setup, teardown and gc do with claims ([`claims`]), and the admin's
//! `netrt-hook pool` commands ([`commands`]).

pub mod any_store;
pub mod claims;
pub mod commands;
pub mod config;
pub mod etcd;
pub mod host;
pub mod store;
