//! The hook needs CAP_NET_ADMIN (links, qdiscs) and CAP_SYS_ADMIN (entering
//! a network namespace) for its work, and CAP_SYS_PTRACE once, to open the
//! namespace of a runtime's init process, which makes itself non-dumpable.
//! It checks for all three at start, opens that namespace, then drops every
//! capability but the first two before it changes anything.

use caps::{CapSet, Capability, CapsHashSet};

use crate::error::{Error, Result};

/// What the hook must have when it starts.
pub const AT_START: [Capability; 3] =
    [Capability::CAP_NET_ADMIN, Capability::CAP_SYS_ADMIN, Capability::CAP_SYS_PTRACE];
/// What it keeps while it works.
pub const KEPT: [Capability; 2] = [Capability::CAP_NET_ADMIN, Capability::CAP_SYS_ADMIN];

pub fn check() -> Result<()> {
    let effective =
        caps::read(None, CapSet::Effective).map_err(|e| Error::System(format!("cannot read capabilities: {e}")))?;
    let missing: Vec<String> = AT_START.iter().filter(|c| !effective.contains(c)).map(|c| c.to_string()).collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::System(format!(
        "netrt-hook needs {} to change container networks, and lacks {}; it runs as root from the container runtime",
        AT_START.map(|c| c.to_string()).join(", "),
        missing.join(", ")
    )))
}

/// What teardown, gc and renew keep besides `KEPT`: a DHCP lease is
/// renewed and released from the client's port, 68.
pub const FOR_RELEASES: [Capability; 1] = [Capability::CAP_NET_BIND_SERVICE];

/// Drops every capability but `KEPT`, from every set, for good.
pub fn drop_to_kept() -> Result<()> {
    drop_keeping(&[])
}

/// Drops every capability but `KEPT` and `extra`, from every set, for good.
pub fn drop_keeping(extra: &[Capability]) -> Result<()> {
    let keep = KEPT.iter().chain(extra).copied().collect();
    drop_all_but(keep).map_err(|e| Error::System(format!("cannot drop capabilities: {e}")))
}

fn drop_all_but(keep: CapsHashSet) -> std::result::Result<(), caps::errors::CapsError> {
    if caps::has_cap(None, CapSet::Effective, Capability::CAP_SETPCAP)? {
        for cap in caps::all().difference(&keep) {
            caps::drop(None, CapSet::Bounding, *cap)?;
        }
    }
    caps::clear(None, CapSet::Ambient)?;
    caps::clear(None, CapSet::Inheritable)?;
    caps::set(None, CapSet::Effective, &keep)?;
    caps::set(None, CapSet::Permitted, &keep)
}
