//! A macvlan attachment: a macvlan child of a host interface, or of its
//! 802.1Q sub-interface for `net.vlan` (made if missing, shared by every
//! container on that VLAN, deleted with the last of them).

use async_trait::async_trait;

use super::interface::{bring_up, choose_name, found, host_link};
use super::step::{Asked, Placement, Setup, Step, WayOut};
use crate::error::Result;
use crate::kernel::names;
use crate::kernel::netlink::{Link, LinkShape};
use crate::request::attachment::{Attachment, Medium};
use crate::state::record::{Created, Record};

#[derive(Default)]
pub struct Macvlan {
    /// Found by check.
    lower: Option<Lower>,
    ifname: String,
    mtu: u32,
}

/// The host interface the macvlan is made on.
#[derive(Debug)]
enum Lower {
    /// An interface that exists and is not netrt's: the parent itself, or
    /// a VLAN sub-interface the admin made.
    Existing(Link),
    /// A VLAN sub-interface netrt made for another container.
    SharedVlan(Link),
    /// A VLAN sub-interface to make.
    NewVlan { name: String, parent: Link, vlan_id: u16 },
}

/// A macvlan attachment where `net.parent` asks for one.
pub fn wanted(asked: &Asked) -> Option<Box<dyn Step>> {
    let medium = &asked.plan.attachment.as_ref()?.medium;
    matches!(medium, Medium::Macvlan { .. }).then(|| Box::new(Macvlan::default()) as Box<dyn Step>)
}

#[async_trait(?Send)]
impl Step for Macvlan {
    fn name(&self) -> &'static str {
        "macvlan attachment"
    }

    async fn check(&mut self, setup: &mut Setup<'_>) -> Result<()> {
        let attachment = setup.attachment();
        let Medium::Macvlan { parent, .. } = &attachment.medium else { unreachable!("a macvlan plan") };
        let host = &setup.sockets.host;
        let parent = host_link(host, parent, attachment).await?;
        let lower = match (attachment.vlan_interface(), attachment.vlan) {
            (Some(name), Some(vlan_id)) => {
                match host.link_by_name(&name).await.map_err(|e| attachment.refuse("net.vlan", e.to_string()))? {
                    None => Lower::NewVlan { name, parent, vlan_id },
                    Some(link) => {
                        let others = setup.journal.store().all()?;
                        existing_vlan(link, &parent, vlan_id, &others, &setup.id, attachment)?
                    }
                }
            }
            _ => Lower::Existing(parent),
        };
        let lower_mtu = match &lower {
            Lower::Existing(link) | Lower::SharedVlan(link) | Lower::NewVlan { parent: link, .. } => link.mtu,
        };
        if let Some(mtu) = attachment.mtu.filter(|mtu| *mtu > lower_mtu) {
            let reason = format!("{mtu} is larger than the MTU of the macvlan's parent ({lower_mtu})");
            return Err(attachment.refuse("net.mtu", reason).into());
        }
        self.mtu = attachment.mtu.unwrap_or(lower_mtu);
        self.ifname = choose_name(setup).await?;
        let way_out = match &lower {
            Lower::NewVlan { parent, .. } => WayOut::Parent(parent.clone()),
            Lower::Existing(link) | Lower::SharedVlan(link) => WayOut::Lower(link.clone()),
        };
        found(setup, (&self.ifname, self.mtu), way_out, None);
        self.lower = Some(lower);
        Ok(())
    }

    fn planned(&self, _setup: &Setup<'_>) -> Vec<Created> {
        let mut objects = match self.lower.as_ref().expect("checked") {
            Lower::Existing(_) => vec![],
            Lower::SharedVlan(link) => vec![Created::VlanLink { name: link.name.clone(), index: Some(link.index) }],
            Lower::NewVlan { name, .. } => vec![Created::VlanLink { name: name.clone(), index: None }],
        };
        objects.push(Created::ContainerLink { name: self.ifname.clone(), index: None });
        objects
    }

    async fn apply(&mut self, setup: &mut Setup<'_>) -> Result<()> {
        let attachment = setup.attachment().clone();
        let lead = attachment.lead_key();
        let fail = |key| attachment.refusing::<crate::kernel::netlink::NetError>(key);
        let lower = match self.lower.as_ref().expect("checked") {
            Lower::Existing(link) => link.clone(),
            Lower::SharedVlan(link) => {
                setup.journal.made(Created::VlanLink { name: link.name.clone(), index: Some(link.index) });
                link.clone()
            }
            Lower::NewVlan { name, parent, vlan_id } => {
                let vlan = setup.sockets.host.add_vlan(name, parent, *vlan_id).await.map_err(fail("net.vlan"))?;
                setup.journal.made(Created::VlanLink { name: vlan.name.clone(), index: Some(vlan.index) });
                setup.lead_step_done()?;
                vlan
            }
        };
        let Medium::Macvlan { mode, .. } = attachment.medium else { unreachable!("a macvlan plan") };
        let shape = LinkShape { mac: attachment.mac_for(|| names::dhcp_mac(&setup.id)), mtu: attachment.mtu };
        let made = setup.sockets.host.add_macvlan_into(&self.ifname, &lower, mode, setup.namespace, &shape).await;
        // The request may have failed after the kernel made the device.
        setup.journal.made(Created::ContainerLink { name: self.ifname.clone(), index: None });
        made.map_err(fail(lead))?;
        setup.lead_step_done()?;
        let interface = bring_up(setup, &self.ifname).await?;
        if let Some(Created::ContainerLink { index, .. }) = setup.journal.last_made() {
            *index = Some(interface.index);
        }
        setup.found.placement = Some(Placement::InNamespace { interface });
        Ok(())
    }
}

/// A `<parent>.<vlan>` that exists already: it must be that VLAN of that
/// parent. It is shared if netrt made it for another container.
fn existing_vlan(
    link: Link,
    parent: &Link,
    vlan_id: u16,
    records: &[Record],
    id: &str,
    attachment: &Attachment,
) -> Result<Lower> {
    if link.kind.as_deref() != Some("vlan") || link.vlan_id != Some(vlan_id) || link.peer_index != Some(parent.index) {
        let reason =
            format!("{} exists but is not VLAN {vlan_id} of {}; netrt does not touch it", link.name, parent.name);
        return Err(attachment.refuse("net.vlan", reason).into());
    }
    let made_by_netrt =
        records.iter().filter(|r| r.id != id).flat_map(|r| &r.created).any(
            |c| matches!(c, Created::VlanLink { name, index } if *name == link.name && *index == Some(link.index)),
        );
    Ok(if made_by_netrt { Lower::SharedVlan(link) } else { Lower::Existing(link) })
}
