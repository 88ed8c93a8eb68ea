//! Uplink guarantees: a container's share and admission, and the shaper
//! tree the shares make (pure, [`share`]); the shaper on the uplink, kept
//! in step with the records ([`shaper`]).

pub mod shaper;
pub mod share;
