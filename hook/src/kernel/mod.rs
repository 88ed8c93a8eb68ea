//! The kernel layer: rtnetlink requests ([`netlink`]), network namespaces
//! ([`netns`]), netrt's device names ([`names`]) and the hook's
//! capabilities ([`privilege`]).

pub mod names;
pub mod netlink;
pub mod netns;
pub mod privilege;
