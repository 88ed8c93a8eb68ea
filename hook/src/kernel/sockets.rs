//! The two sides a container's objects live on (the hook's own namespace
//! and the container's), and the netlink socket a run holds on each.

use serde::{Deserialize, Serialize};

use super::netlink::Netlink;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The namespace the hook runs in.
    Host,
    /// The container's network namespace.
    Container,
}

/// The sockets a setup or an undo works through.
pub struct Sockets {
    pub host: Netlink,
    /// None at teardown when the container's namespace is gone.
    pub container: Option<Netlink>,
}

impl Sockets {
    pub fn on(&self, side: Side) -> Option<&Netlink> {
        match side {
            Side::Host => Some(&self.host),
            Side::Container => self.container.as_ref(),
        }
    }

    /// The container's socket, which a setup always has.
    pub fn container(&self) -> &Netlink {
        self.container.as_ref().expect("setup has the container's socket")
    }
}
