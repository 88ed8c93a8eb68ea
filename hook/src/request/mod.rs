//! What a container asks for, pure: the OCI state and annotations
//! ([`oci`]) → settings ([`settings`]) → a validated [`plan`] with its
//! [`attachment`], in the units of [`units`]. Nothing here touches the host.

pub mod attachment;
pub mod oci;
pub mod plan;
pub mod settings;
pub mod units;
