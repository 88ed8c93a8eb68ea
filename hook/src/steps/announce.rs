//! Once the attachment's addresses are up, the LAN is told: a gratuitous
//! ARP for each IPv4 address and an unsolicited neighbour advertisement
//! with the override flag for each IPv6 address. A LAN host that still
//! holds one of the addresses with another MAC (the address was on another
//! host, or someone else's) updates its entry at once instead of when it
//! expires.
//!
//! The kernel sends them: netrt turns on `arp_notify` and `ndisc_notify`
//! for the attached interface inside the container's namespace and, once
//! the interface is operational (a frame sent before the kernel has seen
//! the carrier is lost), sets the interface's MAC to itself, which the
//! kernel answers with the announcements for every address the interface
//! has. Sending them from a packet socket would cost a wait for an RCU
//! grace period when the socket closes, about as long as the rest of the
//! setup. A passthru macvlan is left alone (its MAC is its parent's, a host
//! object netrt never touches). Nothing is made, so the record lists
//! nothing; an announcement that cannot be made is logged and does not
//! fail the setup. An address DHCP leased is the LAN server's to announce.

use async_trait::async_trait;

use super::interface::wait_operational;
use super::step::{Asked, Setup, Step};
use crate::error::Result;
use crate::log;

pub struct Announce;

/// An attachment with addresses netrt gives (static or a pool's), unless
/// it is a passthru macvlan.
pub fn wanted(asked: &Asked) -> Option<Box<dyn Step>> {
    let attachment = asked.plan.attachment.as_ref()?;
    let netrt_gives = attachment.dhcp.is_none() && (!attachment.addresses.is_empty() || attachment.pool.is_some());
    (netrt_gives && !attachment.is_passthru()).then(|| Box::new(Announce) as Box<dyn Step>)
}

#[async_trait(?Send)]
impl Step for Announce {
    fn name(&self) -> &'static str {
        "announcement"
    }

    async fn check(&mut self, _setup: &mut Setup<'_>) -> Result<()> {
        Ok(())
    }

    async fn apply(&mut self, setup: &mut Setup<'_>) -> Result<()> {
        let placement = setup.found.placement.clone().expect("the attachment was made");
        let interface = placement.interface().clone();
        let ipv6 = setup.attachment().addresses.iter().any(|cidr| cidr.address.is_ipv6());
        let switches = setup.namespace.run_in(|| notify_switches(&interface.name, ipv6));
        if let Err(e) = switches.and_then(|written| written) {
            log::error(&format!("{}: cannot announce the addresses of {}: {e}", setup.id, interface.name));
            return Ok(());
        }
        wait_operational(setup, &placement).await;
        if let Err(e) = setup.sockets.container().renew_mac(&interface).await {
            log::error(&format!("{}: cannot announce the addresses of {}: {e}", setup.id, interface.name));
        }
        Ok(())
    }
}

/// Turns on, for `ifname` in the calling thread's namespace, the kernel's
/// announcements on an address change: `arp_notify`, and `ndisc_notify`
/// where the interface has IPv6 addresses.
fn notify_switches(ifname: &str, ipv6: bool) -> std::result::Result<(), String> {
    let mut paths = vec![format!("/proc/sys/net/ipv4/conf/{ifname}/arp_notify")];
    if ipv6 {
        paths.push(format!("/proc/sys/net/ipv6/conf/{ifname}/ndisc_notify"));
    }
    for path in paths {
        std::fs::write(&path, "1").map_err(|e| format!("cannot write {path}: {e}"))?;
    }
    Ok(())
}
