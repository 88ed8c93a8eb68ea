//! What netrt keeps between its runs under `/run/netrt`: each container's
//! record, the host lock, and the index of the addresses records hold
//! ([`record`]); the write-ahead discipline of a setup ([`journal`]).

pub mod journal;
pub mod record;
