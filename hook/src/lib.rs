//! netrt: a container's network settings from its `net.*` annotations,
//! applied by an OCI hook before the container's process starts.
//!
//! The way a container goes, one folder a stage: the OCI state and the
//! bundle's annotations become a validated plan ([`request`], pure), read
//! with the admin's configuration file ([`config`]); the runner
//! ([`runner`]) checks and applies the plan's [`steps`] in order under the
//! host lock, writing ahead what each makes into the container's record
//! ([`state`]), and undoes a record by replaying it in reverse. Steps reach
//! the kernel through [`kernel`]; address pools ([`pools`]), DHCP
//! ([`dhcp`]) and uplink guarantees ([`uplinks`]) are the protocols and the
//! pure rules behind three of them. [`commands`] are the admin's commands.

pub mod commands;
pub mod config;
pub mod dhcp;
pub mod error;
pub mod fault;
pub mod fuzzing;
pub mod kernel;
pub mod log;
pub mod pools;
pub mod probe;
pub mod request;
pub mod runner;
pub mod state;
pub mod steps;
pub mod uplinks;
