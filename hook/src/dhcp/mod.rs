//! DHCP (IPv4) for an attachment, without a daemon: setup runs
//! the exchange itself on the attached interface inside the container's
//! namespace; `netrt-hook renew`, run by a timer, renews; teardown and gc
//! release. Messages are encoded and decoded by `dhcproto`; the exchange,
//! its timers and its retransmissions are here.
//!
//! - `lease`: the lease as the record keeps it, and the messages (pure).
//! - `wire`: IPv4/UDP framing for the packet socket (pure).
//! - `client`: the exchanges on the sockets: acquire, renew, release.
//! - `renew`: `netrt-hook renew`.

pub mod client;
pub mod lease;
pub mod renew;
pub mod wire;
