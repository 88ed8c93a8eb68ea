//! The admin's configuration file, `/etc/netrt/netrt.json`: the bounds
//! on what annotations may ask for ([`policy`]), the address pools and
//! their registry ([`pools`]), and the declared uplinks ([`uplinks`]).

pub mod policy;
pub mod pools;
pub mod uplinks;
