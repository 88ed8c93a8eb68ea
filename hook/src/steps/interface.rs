//! What the bridge and macvlan steps share: the host interface they hang
//! from, the interface's name in the container, and bringing it up.

use crate::error::Result;
use crate::kernel::netlink::{Link, Netlink};
use crate::request::attachment::Attachment;

use super::step::{Placement, Setup, WayOut};

/// The host interface `name` an attachment hangs from; netrt makes none.
pub async fn host_link(host: &Netlink, name: &str, attachment: &Attachment) -> Result<Link> {
    let lead = attachment.lead_key();
    let link = host.link_by_name(name).await.map_err(|e| attachment.refuse(lead, e.to_string()))?;
    Ok(link.ok_or_else(|| {
        let what = if lead == "net.bridge" { "bridge (netrt never creates one)" } else { "interface" };
        attachment.refuse(lead, format!("the host has no {what} called {name}"))
    })?)
}

/// The interface's name inside the container: `net.ifname`, else the first
/// free `ethN`.
pub async fn choose_name(setup: &Setup<'_>) -> Result<String> {
    let attachment = setup.attachment();
    let lead = attachment.lead_key();
    let links = setup.sockets.container().links().await.map_err(|e| attachment.refuse(lead, e.to_string()))?;
    let names: Vec<String> = links.into_iter().map(|l| l.name).collect();
    Ok(match &attachment.ifname {
        Some(name) if names.contains(name) => {
            return Err(attachment
                .refuse("net.ifname", format!("the container already has an interface called {name}"))
                .into())
        }
        Some(name) => name.clone(),
        None => (0..).map(|n| format!("eth{n}")).find(|name| !names.contains(name)).expect("some ethN is free"),
    })
}

/// What an attachment step found, for the steps after it and the record:
/// the interface's name and MTU, where its traffic leaves the host, and
/// the host end of its veth, if any.
pub fn found(setup: &mut Setup<'_>, (ifname, mtu): (&str, u32), way_out: WayOut, host_veth: Option<String>) {
    setup.found.mtu = Some(mtu);
    setup.found.frame_bytes = Some(mtu + crate::kernel::netlink::ETHERNET_HEADER_BYTES);
    setup.found.way_out = Some(way_out);
    setup.journal.record.interface = ifname.to_string();
    setup.journal.record.host_veth = host_veth;
}

/// Finds the interface just made in the container and brings it (and
/// loopback) up.
pub async fn bring_up(setup: &mut Setup<'_>, ifname: &str) -> Result<Link> {
    let attachment = setup.attachment();
    let lead = attachment.lead_key();
    let fail = attachment.refusing::<crate::kernel::netlink::NetError>(lead);
    let container = setup.sockets.container();
    let interface = container.link_by_name(ifname).await.map_err(fail)?.ok_or_else(|| {
        attachment.refuse(lead, format!("{ifname} vanished from the container right after it was made"))
    })?;
    container.set_up(&interface).await.map_err(fail)?;
    if let Some(lo) = container.link_by_name("lo").await.map_err(fail)? {
        container.set_up(&lo).await.map_err(fail)?;
    }
    setup.lead_step_done()?;
    Ok(interface)
}

/// Waits, at most `OPERATIONAL_WAIT`, until the attached interface (and the
/// host end of its veth) is operational: a frame sent before the kernel's
/// link watch has seen the carrier is lost, and a bridge port forwards
/// only from then on. For a veth or a macvlan the kernel handles that event
/// at once, so the wait is short; past the bound, DHCP's retransmissions
/// make up for a lost first message, and an announcement is only lost.
pub async fn wait_operational(setup: &Setup<'_>, placement: &Placement) {
    let (container, host) = (setup.sockets.container(), &setup.sockets.host);
    let index = placement.interface().index;
    let host_end = placement.host_veth().map(|veth| veth.index);
    let deadline = std::time::Instant::now() + OPERATIONAL_WAIT;
    loop {
        let inside = matches!(container.link_by_index(index).await, Ok(Some(link)) if link.operational);
        let outside = match host_end {
            None => true,
            Some(index) => matches!(host.link_by_index(index).await, Ok(Some(link)) if link.operational),
        };
        if (inside && outside) || std::time::Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_micros(500)).await;
    }
}

const OPERATIONAL_WAIT: std::time::Duration = std::time::Duration::from_millis(200);
