//! What a container asks for, pure: the OCI state and annotations
//! ([`oci`]) → settings ([`settings`]) → a validated [`plan`] with its
//! [`attachment`], in the units of [`units`]; where the container comes
//! from ([`origin`]). Nothing here touches the host.

pub mod attachment;
pub mod oci;
pub mod origin;
pub mod plan;
pub mod settings;
pub mod units;
