//! The kernel layer: rtnetlink requests ([`netlink`]), network namespaces
//! ([`netns`]), netrt's device names ([`names`]), the hook's
//! capabilities ([`privilege`]), and the two sides a container's objects
//! live on ([`sockets`]); what packet sockets share ([`packet`]); a process told from a later one with its pid
//! ([`process`]).

pub mod names;
pub mod netlink;
pub mod netns;
pub mod packet;
pub mod privilege;
pub mod process;
pub mod sockets;
