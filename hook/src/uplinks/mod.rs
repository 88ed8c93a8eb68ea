//! Uplink capacity and guarantees: which uplinks the admin
//! declared ([`config`]), a container's share and admission, and the
//! shaper tree the shares make (pure, [`share`]), and the shaper on the
//! uplink, kept in step with the records ([`shaper`]).

pub mod config;
pub mod shaper;
pub mod share;
pub mod status;
