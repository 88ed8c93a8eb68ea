//! Puts a plan's attachment into the container: a veth pair whose host end
//! joins an existing bridge, or a macvlan child of a host interface (of its
//! 802.1Q sub-interface, made if missing), then the interface's addresses,
//! gateway and routes. Each step records its undo, as shaping does.

use std::net::IpAddr;
use std::time::Duration;

use crate::dhcp::client::{self as dhcp, Acquirer, Failure, Held};
use crate::error::KeyError;
use crate::kernel::names;
use crate::kernel::netlink::{Link, LinkShape, NetError, Netlink, RouteSpec};
use crate::kernel::netns::NetNs;
use crate::request::attachment::{format_mac, Attachment, Cidr, Medium};
use crate::shaping::{self, Placement, Sockets};
use crate::state::record::{Created, Record, Store};

/// What the host looked like when setup checked it, under the host lock.
#[derive(Debug)]
pub struct Prepared {
    /// The interface's name inside the container.
    pub ifname: String,
    pub medium: PreparedMedium,
    /// The attached interface's MTU: `net.mtu`, else its bridge's or its
    /// parent's.
    pub mtu: u32,
}

impl Prepared {
    /// The largest frame the attached interface will carry.
    pub fn frame_bytes(&self) -> u32 {
        self.mtu + crate::kernel::netlink::ETHERNET_HEADER_BYTES
    }
}

#[derive(Debug)]
pub enum PreparedMedium {
    /// The host end keeps the bridge's MTU, and has a MAC that never
    /// becomes the bridge's. `pin`: with DHCP, where the container's
    /// namespace is kept until teardown has released the lease from it.
    Bridge { bridge: Link, host_veth: String, host_mac: [u8; 6], pin: Option<String> },
    /// `pin`: where the container's namespace is kept until teardown.
    Macvlan { lower: Lower, pin: String },
}

/// The host interface a macvlan is made on.
#[derive(Debug)]
pub enum Lower {
    /// An interface that exists and is not netrt's: the parent itself, or
    /// a VLAN sub-interface the admin made.
    Existing(Link),
    /// A VLAN sub-interface netrt made for another container.
    SharedVlan(Link),
    /// A VLAN sub-interface to make.
    NewVlan { name: String, parent: Link, vlan_id: u16 },
}

/// Checks the host and the container for everything the attachment needs,
/// before any change. `others` are the records of the other containers.
pub async fn prepare(
    attachment: &Attachment,
    container_id: &str,
    sockets: &Sockets,
    others: &[Record],
) -> Result<Prepared, KeyError> {
    let host = &sockets.host;
    let container = sockets.container.as_ref().expect("setup has the container's socket");
    let text = |key: &str, e: NetError| attachment.refuse(key, e.to_string());
    let lead = attachment.lead_key();
    let (medium, default_mtu) = match &attachment.medium {
        Medium::Bridge { bridge } => {
            let bridge = host_link(host, bridge, attachment).await?;
            if bridge.kind.as_deref() != Some("bridge") {
                return Err(attachment.refuse(lead, format!("{} is not a bridge", bridge.name)));
            }
            if attachment.vlan.is_some() {
                check_vlan_filtering(&bridge, attachment)?;
            }
            if let Some(mtu) = attachment.mtu.filter(|mtu| *mtu > bridge.mtu) {
                return Err(attachment.refuse(
                    "net.mtu",
                    format!(
                        "{mtu} is larger than the MTU of bridge {} ({}); netrt never changes the bridge's MTU",
                        bridge.name, bridge.mtu
                    ),
                ));
            }
            let host_mac = names::host_veth_mac(container_id);
            if bridge_mac_would_change(&bridge, &host_mac) {
                return Err(attachment.refuse(
                    lead,
                    format!(
                    "bridge {0} has no port yet and a MAC the kernel chose, so the first port's MAC would become the \
                     bridge's (and 00:00:00:00:00:00 once that port leaves); netrt never changes the bridge: \
                     fix its MAC with ip link set {0} address {1}, or add its uplink first",
                    bridge.name,
                    format_mac(&bridge.mac)
                ),
                ));
            }
            let bridge_mtu = bridge.mtu;
            let host_veth = names::host_veth_name(container_id);
            let pin = attachment
                .dhcp
                .map(|_| crate::state::record::Store::system().pin_path(container_id).display().to_string());
            (PreparedMedium::Bridge { bridge, host_veth, host_mac, pin }, bridge_mtu)
        }
        Medium::Macvlan { parent, .. } => {
            let parent = host_link(host, parent, attachment).await?;
            let lower = match (attachment.vlan_interface(), attachment.vlan) {
                (Some(name), Some(vlan_id)) => {
                    match host.link_by_name(&name).await.map_err(|e| text("net.vlan", e))? {
                        None => Lower::NewVlan { name, parent, vlan_id },
                        Some(link) => existing_vlan(link, &parent, vlan_id, others, attachment)?,
                    }
                }
                _ => Lower::Existing(parent),
            };
            let lower_mtu = match &lower {
                Lower::Existing(link) | Lower::SharedVlan(link) | Lower::NewVlan { parent: link, .. } => link.mtu,
            };
            if let Some(mtu) = attachment.mtu.filter(|mtu| *mtu > lower_mtu) {
                return Err(attachment
                    .refuse("net.mtu", format!("{mtu} is larger than the MTU of the macvlan's parent ({lower_mtu})")));
            }
            let pin = crate::state::record::Store::system().pin_path(container_id).display().to_string();
            (PreparedMedium::Macvlan { lower, pin }, lower_mtu)
        }
    };
    let names: Vec<String> = container.links().await.map_err(|e| text(lead, e))?.into_iter().map(|l| l.name).collect();
    let ifname = match &attachment.ifname {
        Some(name) if names.contains(name) => {
            return Err(attachment.refuse("net.ifname", format!("the container already has an interface called {name}")))
        }
        Some(name) => name.clone(),
        None => (0..).map(|n| format!("eth{n}")).find(|name| !names.contains(name)).expect("some ethN is free"),
    };
    Ok(Prepared { ifname, medium, mtu: attachment.mtu.unwrap_or(default_mtu) })
}

async fn host_link(host: &Netlink, name: &str, attachment: &Attachment) -> Result<Link, KeyError> {
    let lead = attachment.lead_key();
    host.link_by_name(name).await.map_err(|e| attachment.refuse(lead, e.to_string()))?.ok_or_else(|| {
        let what = if lead == "net.bridge" { "bridge (netrt never creates one)" } else { "interface" };
        attachment.refuse(lead, format!("the host has no {what} called {name}"))
    })
}

/// Whether enslaving a port with `port_mac` would change the bridge's own
/// MAC. The kernel gives a bridge whose MAC nobody set the lowest MAC of
/// its ports; an empty one takes its first port's MAC, and keeps
/// 00:00:00:00:00:00 once that port leaves. Netlink reports neither how a
/// MAC was assigned nor whether a bridge has ports; the sysfs of the hook's
/// own namespace does. Where sysfs shows another device under that name
/// (mounted for another namespace), nothing is known and nothing refused.
fn bridge_mac_would_change(bridge: &Link, port_mac: &[u8; 6]) -> bool {
    let sys = std::path::Path::new("/sys/class/net").join(&bridge.name);
    let read =
        |file: &str| std::fs::read_to_string(sys.join(file)).map(|text| text.trim().to_string()).unwrap_or_default();
    if read("ifindex") != bridge.index.to_string() || read("addr_assign_type") == NET_ADDR_SET {
        return false;
    }
    let has_ports = std::fs::read_dir(sys.join("brif")).map_or(true, |mut ports| ports.next().is_some());
    !has_ports || port_mac.as_slice() < bridge.mac.as_slice()
}

/// `addr_assign_type` of a MAC someone set (not the kernel's choice).
const NET_ADDR_SET: &str = "3";

fn check_vlan_filtering(bridge: &Link, attachment: &Attachment) -> Result<(), KeyError> {
    match bridge.vlan_filtering {
        Some(true) => Ok(()),
        // Kernels built without it report the setting as off too.
        Some(false) => Err(attachment.refuse(
            "net.vlan",
            format!(
                "bridge {0} has VLAN filtering off; netrt never changes the bridge: turn it on with \
             ip link set {0} type bridge vlan_filtering 1 (a kernel without CONFIG_BRIDGE_VLAN_FILTERING refuses that)",
                bridge.name
            ),
        )),
        None => Err(attachment.refuse(
            "net.vlan",
            format!(
            "this kernel has no bridge VLAN filtering (CONFIG_BRIDGE_VLAN_FILTERING), so bridge {} cannot carry VLANs",
            bridge.name
        ),
        )),
    }
}

/// A `<parent>.<vlan>` that exists already: it must be that VLAN of that
/// parent. It is shared if netrt made it for another container.
fn existing_vlan(
    link: Link,
    parent: &Link,
    vlan_id: u16,
    others: &[Record],
    attachment: &Attachment,
) -> Result<Lower, KeyError> {
    if link.kind.as_deref() != Some("vlan") || link.vlan_id != Some(vlan_id) || link.peer_index != Some(parent.index) {
        return Err(attachment.refuse(
            "net.vlan",
            format!("{} exists but is not VLAN {vlan_id} of {}; netrt does not touch it", link.name, parent.name),
        ));
    }
    let made_by_netrt = others
        .iter()
        .flat_map(|r| &r.created)
        .any(|c| matches!(c, Created::VlanLink { name, index } if *name == link.name && *index == Some(link.index)));
    Ok(if made_by_netrt { Lower::SharedVlan(link) } else { Lower::Existing(link) })
}

/// What setup will create, for the write-ahead record (indices unknown yet).
pub fn planned_objects(prepared: &Prepared) -> Vec<Created> {
    match &prepared.medium {
        PreparedMedium::Bridge { host_veth, pin, .. } => {
            let pin = pin.iter().map(|path| Created::NetnsPin { path: path.clone() });
            pin.chain([Created::HostVeth { name: host_veth.clone(), index: None }]).collect()
        }
        PreparedMedium::Macvlan { lower, pin } => {
            let mut objects = vec![Created::NetnsPin { path: pin.clone() }];
            objects.extend(match lower {
                Lower::Existing(_) => vec![],
                Lower::SharedVlan(link) => vec![Created::VlanLink { name: link.name.clone(), index: Some(link.index) }],
                Lower::NewVlan { name, .. } => vec![Created::VlanLink { name: name.clone(), index: None }],
            });
            objects.push(Created::ContainerLink { name: prepared.ifname.clone(), index: None });
            objects
        }
    }
}

/// What setup brings for an attachment whose IPv4 address comes from
/// DHCP; `held` is the lease once the server gave it. The exchange runs
/// without the host lock (`lock`, taken from `store`): a server that
/// answers slowly, or not at all, must not hold up every other container
/// of the host. The write-ahead record lists everything made so far, so
/// gc and other setups see it meanwhile.
pub struct Leasing<'a> {
    pub acquirer: &'a Acquirer,
    pub policy: &'a crate::config::policy::Policy,
    pub held: Option<Held>,
    pub store: &'a crate::state::record::Store,
    pub lock: &'a mut Option<nix::fcntl::Flock<std::fs::File>>,
}

/// Makes the attachment. On failure, the error names the key whose step
/// failed; `done` holds what was created, for the caller to undo, and
/// `leasing.held` the lease, for the caller to release.
#[allow(clippy::too_many_arguments)]
pub async fn apply(
    attachment: &Attachment,
    container_id: &str,
    prepared: &Prepared,
    sockets: &Sockets,
    container_ns: &NetNs,
    leasing: Option<&mut Leasing<'_>>,
    done: &mut Vec<Created>,
    steps: &mut u32,
) -> Result<Placement, KeyError> {
    let lead = attachment.lead_key();
    let fail = |key: &'static str| move |e: NetError| attachment.refuse(key, e.to_string());
    let host = &sockets.host;
    let container = sockets.container.as_ref().expect("setup has the container's socket");
    let shape = LinkShape { mac: attachment.mac_for(container_id), mtu: attachment.mtu };
    let step = |steps: &mut u32| shaping::step_done(steps).map_err(fail(lead));

    let host_veth = match &prepared.medium {
        PreparedMedium::Bridge { bridge, host_veth, host_mac, pin } => {
            if let Some(pin) = pin {
                crate::kernel::netns::pin(container_ns, std::path::Path::new(pin))
                    .map_err(|e| attachment.refuse(lead, e))?;
                done.push(Created::NetnsPin { path: pin.clone() });
                step(steps)?;
            }
            let host_shape = LinkShape { mac: Some(*host_mac), mtu: Some(bridge.mtu) };
            let container_shape = LinkShape { mtu: Some(prepared.mtu), ..shape };
            let veth = host
                .add_veth_into(host_veth, &host_shape, &prepared.ifname, container_ns, &container_shape)
                .await
                .map_err(fail(lead))?;
            done.push(Created::HostVeth { name: veth.name.clone(), index: Some(veth.index) });
            step(steps)?;
            host.attach_to_bridge(&veth, bridge).await.map_err(fail(lead))?;
            step(steps)?;
            if let Some(vlan_id) = attachment.vlan {
                host.make_access_port(&veth, vlan_id).await.map_err(fail("net.vlan"))?;
                step(steps)?;
            }
            Some(veth)
        }
        PreparedMedium::Macvlan { lower, pin } => {
            crate::kernel::netns::pin(container_ns, std::path::Path::new(pin))
                .map_err(|e| attachment.refuse(lead, e))?;
            done.push(Created::NetnsPin { path: pin.clone() });
            step(steps)?;
            let lower = match lower {
                Lower::Existing(link) => link.clone(),
                Lower::SharedVlan(link) => {
                    done.push(Created::VlanLink { name: link.name.clone(), index: Some(link.index) });
                    link.clone()
                }
                Lower::NewVlan { name, parent, vlan_id } => {
                    let vlan = host.add_vlan(name, parent, *vlan_id).await.map_err(fail("net.vlan"))?;
                    done.push(Created::VlanLink { name: vlan.name.clone(), index: Some(vlan.index) });
                    step(steps)?;
                    vlan
                }
            };
            let Medium::Macvlan { mode, .. } = attachment.medium else { unreachable!("a macvlan plan") };
            let made = host.add_macvlan_into(&prepared.ifname, &lower, mode, container_ns, &shape).await;
            // The request may have failed after the kernel made the device.
            done.push(Created::ContainerLink { name: prepared.ifname.clone(), index: None });
            made.map_err(fail(lead))?;
            step(steps)?;
            None
        }
    };

    let interface = container.link_by_name(&prepared.ifname).await.map_err(fail(lead))?.ok_or_else(|| {
        attachment.refuse(lead, format!("{} vanished from the container right after it was made", prepared.ifname))
    })?;
    if let Some(Created::ContainerLink { index, .. }) = done.last_mut() {
        *index = Some(interface.index);
    }
    container.set_up(&interface).await.map_err(fail(lead))?;
    if let Some(lo) = container.link_by_name("lo").await.map_err(fail(lead))? {
        container.set_up(&lo).await.map_err(fail(lead))?;
    }
    step(steps)?;

    let mut gateways = attachment.gateways.clone();
    if let (Some(settings), Some(leasing)) = (&attachment.dhcp, leasing) {
        let timeout = Duration::from_millis(settings.timeout_ms);
        let mut mac = [0u8; 6];
        mac.copy_from_slice(&interface.mac[..6]);
        // A frame sent before the kernel's link watch has seen the carrier
        // is lost (and a bridge port forwards only from then on): the
        // first DISCOVER waits for both ends to be operational, briefly.
        wait_operational(container, interface.index, host, host_veth.as_ref().map(|veth| veth.index)).await;
        drop(leasing.lock.take());
        let acquired = leasing.acquirer.acquire(interface.index, mac, timeout);
        *leasing.lock = Some(leasing.store.lock().map_err(|e| attachment.refuse("net.ip", e.to_string()))?);
        let held = acquired.map_err(|failure| no_lease(attachment, prepared, failure, timeout))?;
        if let Err(refusal) = leasing.policy.check_leased(attachment, &held.lease.address) {
            let _ = leasing.acquirer.release(&held);
            return Err(refusal);
        }
        let lease = held.lease.clone();
        leasing.held = Some(held);
        step(steps)?;
        container
            .put_leased_address(&interface, &lease.address, lease.remaining(dhcp::unix_now()), false)
            .await
            .map_err(fail("net.ip"))?;
        if !gateways.iter().any(IpAddr::is_ipv4) {
            gateways.extend(lease.router.map(IpAddr::V4));
        }
        match lease.mtu.map(u32::from) {
            Some(mtu)
                if attachment.mtu.is_none() && (crate::request::attachment::MIN_MTU..=prepared.mtu).contains(&mtu) =>
            {
                container.set_mtu(&interface, mtu).await.map_err(fail("net.ip"))?;
            }
            Some(mtu) if attachment.mtu.is_none() => crate::log::info(&format!(
                "{container_id}: the DHCP server's MTU {mtu} is not used: {} carries at most {}",
                prepared.ifname, prepared.mtu
            )),
            _ => {}
        }
    }
    for address in &attachment.addresses {
        container.add_address(&interface, address).await.map_err(fail("net.ip"))?;
    }
    if !attachment.addresses.is_empty() {
        step(steps)?;
    }
    for gateway in &gateways {
        let replaced = container.default_routes(gateway.is_ipv6()).await.map_err(fail("net.gateway"))?;
        for route in &replaced {
            container.delete_route(route).await.map_err(fail("net.gateway"))?;
        }
        let ours = RouteSpec {
            destination: Cidr::default_destination(gateway.is_ipv6()),
            via: Some(*gateway),
            oif: interface.index,
            metric: 0,
        };
        let added = container.add_route(&ours).await;
        done.push(Created::DefaultRoute { ours, replaced });
        added.map_err(fail("net.gateway"))?;
        step(steps)?;
    }
    for route in &attachment.routes {
        let spec = RouteSpec { destination: route.destination, via: route.via, oif: interface.index, metric: 0 };
        container.add_route(&spec).await.map_err(fail("net.routes"))?;
    }
    if !attachment.routes.is_empty() {
        step(steps)?;
    }
    Ok(match host_veth {
        Some(host_veth) => Placement::HostSide { interface, host_veth },
        None => Placement::InNamespace { interface },
    })
}

/// Waits, at most `OPERATIONAL_WAIT`, until the interface (and the host
/// end of its veth) is operational; past that, DHCP's retransmissions
/// make up for a lost first message.
async fn wait_operational(
    container: &crate::kernel::netlink::Netlink,
    index: u32,
    host: &crate::kernel::netlink::Netlink,
    host_end: Option<u32>,
) {
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
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
}

const OPERATIONAL_WAIT: Duration = Duration::from_millis(200);

/// The refusal of a setup that got no lease.
fn no_lease(attachment: &Attachment, prepared: &Prepared, failure: Failure, timeout: Duration) -> KeyError {
    let on = format!(
        "{} ({})",
        prepared.ifname,
        match &attachment.medium {
            Medium::Bridge { bridge } => format!("bridge {bridge}"),
            Medium::Macvlan { parent, .. } => match attachment.vlan {
                Some(vlan) =>
                    format!("macvlan on {}, VLAN {vlan} of {parent}", attachment.macvlan_lower().unwrap_or_default()),
                None => format!("macvlan on {parent}"),
            },
        }
    );
    let within = crate::request::units::format_duration_us(timeout.as_micros() as u64);
    attachment.refuse("net.ip", match failure {
        Failure::NoOffer => format!("no DHCP offer on {on} within {within}"),
        Failure::NoAck { server, address } => {
            format!("DHCP server {server} offered {address} on {on} but did not acknowledge the request within {within}")
        }
        Failure::Refused { server, message } => format!(
            "DHCP server {} refused the request on {on} (DHCPNAK: {message})",
            server.map_or("?".to_string(), |s| s.to_string())
        ),
        Failure::Broken(reason) => format!("DHCP on {on}: {reason}"),
    })
}

/// Refuses static addresses that another live container already holds.
/// A record whose namespace is gone holds nothing (gc removes it).
pub fn check_conflicts(attachment: &Attachment, id: &str, store: &Store) -> crate::error::Result<()> {
    for address in &attachment.addresses {
        let Some(holder) = store.holder_of(&address.address)? else { continue };
        if holder == id || crate::state::record::check_id(&holder).is_err() {
            continue;
        }
        // The claim counts only while its holder's record names the address
        // and the holder's namespace lives (a container whose poststop never
        // ran holds nothing).
        let Some(other) = store.load(&holder)? else { continue };
        let held = other.addresses().any(|held| held == address.address);
        if held && !crate::kernel::netns::is_gone(&other.netns_path, other.netns) {
            return Err(attachment
                .refuse("net.ip", format!("{} is already held by container {} on this host", address.address, other.id))
                .into());
        }
    }
    Ok(())
}

/// VLAN sub-interfaces other containers' attachments hang from.
pub fn vlans_in_use(others: &[Record]) -> Vec<String> {
    others.iter().filter_map(|r| r.plan.attachment.as_ref()?.vlan_interface()).collect()
}

/// The host interfaces on the attachment's way to the LAN, where its
/// uplink may be: a bridge's ports, or a macvlan's lower interface and,
/// for a VLAN sub-interface, its parent.
pub async fn way_out(prepared: &Prepared, host: &Netlink) -> crate::kernel::netlink::NetResult<Vec<Link>> {
    Ok(match &prepared.medium {
        PreparedMedium::Bridge { bridge, .. } => {
            host.links().await?.into_iter().filter(|l| l.controller == Some(bridge.index)).collect()
        }
        PreparedMedium::Macvlan { lower, .. } => match lower {
            Lower::NewVlan { parent, .. } => vec![parent.clone()],
            Lower::Existing(link) | Lower::SharedVlan(link) => {
                let mut way = vec![link.clone()];
                if link.kind.as_deref() == Some("vlan") {
                    if let Some(parent) = match link.peer_index {
                        Some(index) => host.link_by_index(index).await?,
                        None => None,
                    } {
                        way.push(parent);
                    }
                }
                way
            }
        },
    })
}
