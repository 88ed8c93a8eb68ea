//! A DHCP lease for the attachment's IPv4 address (`net.ip=dhcp`): the
//! exchange runs on the attached interface inside the container's
//! namespace, without the host lock; the leased address goes on the
//! interface with the lease's lifetime, and the record keeps the lease so
//! that `renew` renews it and teardown or gc releases it (`release`).

use std::net::IpAddr;
use std::time::Duration;

use async_trait::async_trait;

use super::interface::wait_operational;
use super::step::{Asked, Setup, Step, Who};
use crate::dhcp::client::{self as dhcp, Acquirer, Failure, PacketSocket, UdpChannel};
use crate::dhcp::lease::Phase;
use crate::error::Result;
use crate::kernel::netns::NetNs;
use crate::log;
use crate::request::attachment::{Attachment, Medium, MIN_MTU};
use crate::state::record::Record;

pub struct Lease {
    who: Who,
    /// Opened with the hook's capabilities (a packet socket needs CAP_NET_RAW).
    acquirer: Option<Acquirer>,
}

/// A lease where `net.ip` asks for DHCP.
pub fn wanted(asked: &Asked) -> Option<Box<dyn Step>> {
    asked.plan.attachment.as_ref()?.dhcp?;
    let who = Who { id: asked.who.id.clone(), hostname: asked.who.hostname.clone() };
    Some(Box::new(Lease { who, acquirer: None }))
}

#[async_trait(?Send)]
impl Step for Lease {
    fn name(&self) -> &'static str {
        "DHCP lease"
    }

    fn unlocked(&self) -> bool {
        true
    }

    fn open(&mut self, namespace: &NetNs) -> std::result::Result<(), String> {
        let socket = namespace
            .run_in(PacketSocket::open)?
            .map_err(|e| format!("cannot open a packet socket for DHCP in the container's namespace: {e}"))?;
        let (container_id, hostname) = (self.who.id.clone(), self.who.hostname.clone());
        self.acquirer = Some(Acquirer { socket, container_id, hostname });
        Ok(())
    }

    async fn check(&mut self, _setup: &mut Setup<'_>) -> Result<()> {
        Ok(())
    }

    async fn apply(&mut self, setup: &mut Setup<'_>) -> Result<()> {
        let acquirer = self.acquirer.as_ref().expect("opened before setup");
        let attachment = setup.attachment().clone();
        let settings = attachment.dhcp.expect("a lease step has DHCP settings");
        let placement = setup.found.placement.clone().expect("the attachment was made");
        let interface = placement.interface();
        let timeout = Duration::from_millis(settings.timeout_ms);
        let mut mac = [0u8; 6];
        mac.copy_from_slice(&interface.mac[..6]);
        // A frame sent before the kernel's link watch has seen the carrier
        // is lost (and a bridge port forwards only from then on): the
        // first DISCOVER waits for both ends to be operational, briefly.
        wait_operational(setup, &placement).await;
        let mtu = setup.found.mtu.expect("the attachment step found the MTU");
        let held = acquirer
            .acquire(interface.index, mac, timeout)
            .map_err(|failure| no_lease(&attachment, &interface.name, failure, timeout))?;
        let lease = held.lease.clone();
        let bound: Result<()> = async {
            setup.config.policy.check_leased(&attachment, &lease.address)?;
            // On a network (a pool), the LAN's server gives the address, but
            // only one inside the network's subnets.
            if let Some(pool) = attachment.pool.as_deref().and_then(|name| setup.config.pools.get(name)) {
                if !pool.subnets.iter().any(|subnet| subnet.covers(&lease.address)) {
                    let subnets: Vec<String> = pool.subnets.iter().map(ToString::to_string).collect();
                    return Err(attachment
                        .refuse(
                            "net.ip",
                            format!(
                                "the DHCP server offered {}, outside network {}'s subnets ({})",
                                lease.address,
                                pool.name,
                                subnets.join(", ")
                            ),
                        )
                        .into());
                }
            }
            setup.lead_step_done()?;
            let fail = |e: crate::kernel::netlink::NetError| attachment.refuse("net.ip", e.to_string());
            let container = setup.sockets.container();
            container
                .put_leased_address(interface, &lease.address, lease.remaining(dhcp::unix_now()), false)
                .await
                .map_err(fail)?;
            match lease.mtu.map(u32::from) {
                Some(leased) if attachment.mtu.is_none() && (MIN_MTU..=mtu).contains(&leased) => {
                    container.set_mtu(interface, leased).await.map_err(fail)?;
                }
                Some(leased) if attachment.mtu.is_none() => log::info(&format!(
                    "{}: the DHCP server's MTU {leased} is not used: {} carries at most {mtu}",
                    setup.id, interface.name
                )),
                _ => {}
            }
            Ok(())
        }
        .await;
        if let Err(e) = bound {
            // Not in the record yet: released here, over the packet socket.
            if let Err(e) = acquirer.release(&held) {
                log::error(&format!("the DHCP lease of {} on {} was not released: {e}", setup.id, lease.address));
            }
            return Err(e);
        }
        setup.found.leased_router = lease.router;
        setup.journal.record.dhcp = Some(lease);
        // Written at once: the lease is released by whoever replays it.
        setup.journal.write_ahead()
    }
}

/// The refusal of a setup that got no lease.
fn no_lease(attachment: &Attachment, ifname: &str, failure: Failure, timeout: Duration) -> crate::error::Error {
    let on = format!(
        "{ifname} ({})",
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
    let reason = match failure {
        Failure::NoOffer => format!("no DHCP offer on {on} within {within}"),
        Failure::NoAck { server, address } => {
            format!(
                "DHCP server {server} offered {address} on {on} but did not acknowledge the request within {within}"
            )
        }
        Failure::Refused { server, message } => format!(
            "DHCP server {} refused the request on {on} (DHCPNAK: {message})",
            server.map_or("?".to_string(), |s| s.to_string())
        ),
        Failure::Broken(reason) => format!("DHCP on {on}: {reason}"),
    };
    attachment.refuse("net.ip", reason).into()
}

/// The undo of a recorded lease: releases it from inside the container's
/// namespace, best effort (teardown, gc, a rollback); a server that does
/// not hear it frees the address at the lease's end.
pub fn release(record: &Record, lease: &crate::dhcp::lease::Lease) {
    if lease.refused.is_some() || lease.phase(dhcp::unix_now()) == Phase::Expired {
        return;
    }
    let Some(ns) = record.namespace() else {
        log::info(&format!(
            "the DHCP lease of {} on {} is not released: the container's namespace is gone; the server frees it at the lease's end",
            record.id, lease.address
        ));
        return;
    };
    let sent = channel_in(&ns, record, lease.server)
        .and_then(|channel| dhcp::release(&channel, &lease.client(&record.id), lease).map_err(|e| e.to_string()));
    match sent {
        Ok(()) => {
            log::info(&format!("released the DHCP lease of {} on {} to {}", record.id, lease.address, lease.server))
        }
        Err(e) => log::error(&format!("the DHCP lease of {} on {} was not released: {e}", record.id, lease.address)),
    }
}

/// A UDP channel on the container's attached interface, to `to`.
pub fn channel_in(ns: &NetNs, record: &Record, to: std::net::Ipv4Addr) -> std::result::Result<UdpChannel, String> {
    ns.run_in(|| UdpChannel::open(&record.interface, to))?
        .map_err(|e| format!("cannot open the DHCP socket on {}: {e}", record.interface))
}

/// The gateways an attachment's routes go through: those it names, and
/// the leased router where it names no IPv4 one.
pub fn gateways(attachment: &Attachment, leased_router: Option<std::net::Ipv4Addr>) -> Vec<IpAddr> {
    let mut gateways = attachment.gateways.clone();
    if !gateways.iter().any(IpAddr::is_ipv4) {
        gateways.extend(leased_router.map(IpAddr::V4));
    }
    gateways
}
