//! DHCP (IPv4) for an attachment, without a daemon: the lease as the
//! record keeps it and the messages ([`lease`], pure), IPv4/UDP framing
//! for the packet socket ([`wire`], pure), and the exchanges on the
//! sockets ([`client`]): acquire, renew, release. Messages are encoded and
//! decoded by `dhcproto`; the exchange and its timers are here.

pub mod client;
pub mod lease;
pub mod wire;
