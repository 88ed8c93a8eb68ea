//! What netrt keeps between its runs under `/run/netrt`: each container's
//! record (the journal of what setup made), the host lock, and the index
//! of the addresses records hold ([`record`]).

pub mod record;
