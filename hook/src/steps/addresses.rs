//! The attachment's static addresses, its gateways (netrt's default route
//! of each family replaces the container's) and its routes. An address the
//! host itself has, or another live container of this host holds, is
//! refused; the record's addresses are indexed when setup writes ahead.

use async_trait::async_trait;

use super::step::{Asked, Setup, Step};
use crate::error::Result;
use crate::kernel::netlink::{NetError, RouteSpec};
use crate::request::attachment::{Attachment, Cidr};
use crate::state::record::{Created, Store};

pub struct Addresses;

/// Addresses and routes come with every attachment.
pub fn wanted(asked: &Asked) -> Option<Box<dyn Step>> {
    asked.plan.attachment.as_ref().map(|_| Box::new(Addresses) as Box<dyn Step>)
}

#[async_trait(?Send)]
impl Step for Addresses {
    fn name(&self) -> &'static str {
        "addresses and routes"
    }

    async fn check(&mut self, setup: &mut Setup<'_>) -> Result<()> {
        if !setup.attachment().addresses.is_empty() {
            setup.refuse_host_addresses().await?;
        }
        check_conflicts(setup.attachment(), &setup.id, setup.journal.store())
    }

    async fn apply(&mut self, setup: &mut Setup<'_>) -> Result<()> {
        let attachment = setup.attachment().clone();
        let fail = |key| attachment.refusing::<NetError>(key);
        let interface = setup.found.placement.as_ref().expect("the attachment was made").interface().clone();
        for address in &attachment.addresses {
            setup.sockets.container().add_address(&interface, address).await.map_err(fail("net.ip"))?;
        }
        if !attachment.addresses.is_empty() {
            setup.lead_step_done()?;
        }
        for gateway in super::lease::gateways(&attachment, setup.found.leased_router) {
            let container = setup.sockets.container();
            let replaced = container.default_routes(gateway.is_ipv6()).await.map_err(fail("net.gateway"))?;
            for route in &replaced {
                container.delete_route(route).await.map_err(fail("net.gateway"))?;
            }
            let ours = RouteSpec {
                destination: Cidr::default_destination(gateway.is_ipv6()),
                via: Some(gateway),
                oif: interface.index,
                metric: 0,
            };
            let added = container.add_route(&ours).await;
            setup.journal.made(Created::DefaultRoute { ours, replaced });
            added.map_err(fail("net.gateway"))?;
            setup.lead_step_done()?;
        }
        for route in &attachment.routes {
            let spec = RouteSpec { destination: route.destination, via: route.via, oif: interface.index, metric: 0 };
            setup.sockets.container().add_route(&spec).await.map_err(fail("net.routes"))?;
        }
        if !attachment.routes.is_empty() {
            setup.lead_step_done()?;
        }
        Ok(())
    }
}

/// Refuses static addresses that another live container already holds.
/// A record whose namespace is gone holds nothing (gc removes it).
fn check_conflicts(attachment: &Attachment, id: &str, store: &Store) -> Result<()> {
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
            let reason = format!("{} is already held by container {} on this host", address.address, other.id);
            return Err(attachment.refuse("net.ip", reason).into());
        }
    }
    Ok(())
}
