//! The hook needs CAP_NET_ADMIN (links, qdiscs) and CAP_SYS_ADMIN (entering
//! a network namespace), and CAP_SYS_PTRACE to open the namespace of a
//! runtime's init process, which makes itself non-dumpable. It checks for
//! them first and drops every other capability before it changes anything.

use caps::{CapSet, Capability, CapsHashSet};

use crate::error::{Error, Result};

pub const NEEDED: [Capability; 3] = [Capability::CAP_NET_ADMIN, Capability::CAP_SYS_ADMIN, Capability::CAP_SYS_PTRACE];

pub fn check_and_drop() -> Result<()> {
    let effective = caps::read(None, CapSet::Effective).map_err(|e| Error::System(format!("cannot read capabilities: {e}")))?;
    let missing: Vec<String> = NEEDED.iter().filter(|c| !effective.contains(c)).map(|c| c.to_string()).collect();
    if !missing.is_empty() {
        return Err(Error::System(format!(
            "netrt-hook needs {} to change container networks, and lacks {}; it runs as root from the container runtime",
            NEEDED.map(|c| c.to_string()).join(", "),
            missing.join(", ")
        )));
    }
    drop_all_but_needed().map_err(|e| Error::System(format!("cannot drop capabilities: {e}")))
}

fn drop_all_but_needed() -> std::result::Result<(), caps::errors::CapsError> {
    let keep: CapsHashSet = NEEDED.into_iter().collect();
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
