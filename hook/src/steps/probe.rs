//! Probe before use: where a pool asks for it (`probe`), the LAN is asked
//! whether anything holds the attachment's pool addresses, from the
//! attached interface inside the container's namespace, before any address
//! is put on it. An address allocation gave that answers becomes a mark in
//! the registry naming the MAC that answered, and the next free one is
//! claimed and probed in its place; an address the container asked for
//! that answers is refused, naming that MAC. The step waits on the LAN, so
//! it runs without the host lock.

use std::net::IpAddr;
use std::time::Duration;

use async_trait::async_trait;

use super::interface::wait_operational;
use super::step::{Asked, Setup, Step};
use crate::error::Result;
use crate::kernel::netns::NetNs;
use crate::log;
use crate::pools::claims;
use crate::probe::{format_mac, Prober};

/// At most this many rounds of answers before setup gives up: a range
/// that busy is used by machines outside netrt, which the admin should
/// reserve.
const MAX_ROUNDS: usize = 8;

pub struct Probe {
    /// Opened with the hook's capabilities (a packet socket needs CAP_NET_RAW).
    prober: Option<Prober>,
    /// Closing a packet socket waits for an RCU grace period (5 to 15 ms
    /// here): it is closed on a thread of its own while the later steps
    /// run, and joined when the setup drops its steps, before the hook
    /// returns.
    closing: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Probe {
    fn drop(&mut self) {
        if let Some(closing) = self.closing.take() {
            let _ = closing.join();
        }
    }
}

/// Where an address of the attachment comes from, or lies in, a pool that
/// probes.
pub fn wanted(asked: &Asked) -> Option<Box<dyn Step>> {
    let attachment = asked.plan.attachment.as_ref()?;
    let pools = asked.pools;
    let by_pool = attachment.pool.as_deref().and_then(|name| pools.get(name)).is_some_and(|p| p.probe_ms > 0);
    let by_address = attachment.addresses.iter().any(|a| pools.pool_of(a.address).is_some_and(|p| p.probe_ms > 0));
    (by_pool || by_address).then(|| Box::new(Probe { prober: None, closing: None }) as Box<dyn Step>)
}

#[async_trait(?Send)]
impl Step for Probe {
    fn name(&self) -> &'static str {
        "probe before use"
    }

    fn unlocked(&self) -> bool {
        true
    }

    fn open(&mut self, namespace: &NetNs) -> std::result::Result<(), String> {
        let prober = namespace
            .run_in(Prober::open)?
            .map_err(|e| format!("cannot open a packet socket to probe the LAN in the container's namespace: {e}"))?;
        self.prober = Some(prober);
        Ok(())
    }

    async fn check(&mut self, _setup: &mut Setup<'_>) -> Result<()> {
        Ok(())
    }

    async fn apply(&mut self, setup: &mut Setup<'_>) -> Result<()> {
        let prober = self.prober.take().expect("opened before setup");
        let probed = self.probe(setup, &prober).await;
        self.closing = std::thread::Builder::new().name("probe-close".into()).spawn(move || drop(prober)).ok();
        probed
    }
}

impl Probe {
    async fn probe(&self, setup: &mut Setup<'_>, prober: &Prober) -> Result<()> {
        let placement = setup.found.placement.clone().expect("the attachment was made");
        let interface = placement.interface().clone();
        let mut mac = [0u8; 6];
        mac.copy_from_slice(&interface.mac[..6]);
        // A frame sent before the kernel has seen the carrier is lost.
        wait_operational(setup, &placement).await;
        let pools = &setup.config.pools;
        let probing = |address: &IpAddr| pools.pool_of(*address).filter(|p| p.probe_ms > 0);
        let mut targets: Vec<IpAddr> =
            setup.attachment().addresses.iter().map(|c| c.address).filter(|a| probing(a).is_some()).collect();
        let mut answered = vec![];
        for _ in 0..MAX_ROUNDS {
            if targets.is_empty() {
                return Ok(());
            }
            let time = targets.iter().filter_map(&probing).map(|p| p.probe_ms).max().unwrap_or(0);
            let heard = prober
                .probe(interface.index, mac, &targets, Duration::from_millis(u64::from(time)))
                .map_err(|e| setup.refuse_attachment("net.ip", format!("cannot probe the LAN: {e}")))?;
            targets.clear();
            for (address, holder) in heard {
                let holder = format_mac(&holder);
                if !setup.found.allocated.contains(&address) {
                    return Err(setup.refuse_attachment(
                        "net.ip",
                        format!("{address} answers on the LAN from {holder}: something outside netrt holds it"),
                    ));
                }
                answered.push(format!("{address} ({holder})"));
                let next = self.replace(setup, address, &holder).await?;
                log::info(&format!(
                    "{}: {address} of pool {} answers on the LAN from {holder}: marked in use on the wire; {next} instead",
                    setup.id,
                    probing(&address).map_or("?", |p| p.name.as_str())
                ));
                targets.push(next);
            }
        }
        Err(setup.refuse_attachment(
            "net.pool",
            format!(
                "{} addresses in a row answer on the LAN ({}): the pool's range is in use outside netrt; \
                 reserve those addresses in the pool",
                answered.len(),
                answered.join(", ")
            ),
        ))
    }

    /// Marks `address` in use on the wire by `holder` and claims the next
    /// free address in its place, in the plan, the record and this host's
    /// index of addresses; returns it.
    async fn replace(&self, setup: &mut Setup<'_>, address: IpAddr, holder: &str) -> Result<IpAddr> {
        let pools = &setup.config.pools;
        let pool = pools.pool_of(address).expect("a probed address lies in a pool");
        let host: Vec<IpAddr> = setup.found.host_addresses.iter().flatten().map(|(a, _)| *a).collect();
        let on_host = |a: IpAddr| host.contains(&a);
        let registry = setup.found.registry.as_mut().expect("opened by the claims step");
        let next = claims::replace_on_wire(registry, pool, (&pools.node, &setup.id), (address, holder), &on_host).await;
        let next = next.map_err(|e| setup.refuse_attachment("net.pool", e.to_string()))?.ok_or_else(|| {
            setup.refuse_attachment(
                "net.pool",
                format!(
                    "pool {} has no free {} address left: {address} answers on the LAN from {holder}",
                    pool.name,
                    if address.is_ipv6() { "IPv6" } else { "IPv4" }
                ),
            )
        })?;
        // This host's index first: a record that names an address without
        // its index entry is harmless, an entry its record does not name
        // would outlive the container.
        let store = setup.journal.store();
        store.release(&address, &setup.id)?;
        let attachment = setup.plan.attachment.as_mut().expect("an attachment");
        for cidr in attachment.addresses.iter_mut().filter(|c| c.address == address) {
            cidr.address = next;
        }
        setup.found.allocated.push(next);
        setup.journal.record.plan = setup.plan.clone();
        setup.journal.write_ahead()?;
        setup.journal.claim_addresses()?;
        Ok(next)
    }
}
