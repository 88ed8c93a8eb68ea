//! netrt: a container's network settings from its `net.*` annotations,
//! applied by an OCI hook before the container's process starts.
//!
//! The pipeline, one module per arrow: state on stdin and the bundle's
//! config.json ([`oci`]) → settings ([`settings`]) → a validated [`plan`]
//! (pure) → effects through one netlink layer ([`netlink`], [`shaping`]),
//! each recorded for undo → a record under `/run/netrt` ([`record`]).
//! Teardown reads the record and undoes. [`hook`] ties the stages together.

pub mod attach;
pub mod attachment;
pub mod dhcp;
pub mod error;
pub mod fault;
pub mod fuzzing;
pub mod hook;
pub mod log;
pub mod names;
pub mod netlink;
pub mod netns;
pub mod oci;
pub mod plan;
pub mod policy;
pub mod pools;
pub mod privilege;
pub mod record;
pub mod settings;
pub mod shaping;
pub mod status;
pub mod units;
pub mod uplinks;
