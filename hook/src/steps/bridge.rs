//! A bridge attachment: a veth pair whose host end joins an existing
//! bridge (an access port of `net.vlan` on a VLAN-filtering bridge).

use async_trait::async_trait;

use super::interface::{bring_up, choose_name, found, host_link};
use super::step::{Asked, Placement, Setup, Step, WayOut};
use crate::error::Result;
use crate::kernel::names;
use crate::kernel::netlink::{Link, LinkShape};
use crate::request::attachment::{format_mac, Attachment, Medium};
use crate::state::record::Created;

#[derive(Default)]
pub struct Bridge {
    /// Found by check.
    bridge: Option<Link>,
    host_veth: String,
    ifname: String,
    mtu: u32,
}

/// A bridge attachment where `net.bridge` asks for one.
pub fn wanted(asked: &Asked) -> Option<Box<dyn Step>> {
    let medium = &asked.plan.attachment.as_ref()?.medium;
    matches!(medium, Medium::Bridge { .. }).then(|| Box::new(Bridge::default()) as Box<dyn Step>)
}

#[async_trait(?Send)]
impl Step for Bridge {
    fn name(&self) -> &'static str {
        "bridge attachment"
    }

    async fn check(&mut self, setup: &mut Setup<'_>) -> Result<()> {
        let attachment = setup.attachment();
        let Medium::Bridge { bridge } = &attachment.medium else { unreachable!("a bridge plan") };
        let bridge = host_link(&setup.sockets.host, bridge, attachment).await?;
        if bridge.kind.as_deref() != Some("bridge") {
            return Err(attachment.refuse(attachment.lead_key(), format!("{} is not a bridge", bridge.name)).into());
        }
        if attachment.vlan.is_some() {
            check_vlan_filtering(&bridge, attachment)?;
        }
        if let Some(mtu) = attachment.mtu.filter(|mtu| *mtu > bridge.mtu) {
            let reason = format!(
                "{mtu} is larger than the MTU of bridge {} ({}); netrt never changes the bridge's MTU",
                bridge.name, bridge.mtu
            );
            return Err(attachment.refuse("net.mtu", reason).into());
        }
        if bridge_mac_would_change(&bridge, &names::host_veth_mac(&setup.id)) {
            return Err(attachment.refuse(attachment.lead_key(), kernel_chosen_mac(&bridge)).into());
        }
        self.mtu = attachment.mtu.unwrap_or(bridge.mtu);
        self.host_veth = names::host_veth_name(&setup.id);
        self.ifname = choose_name(setup).await?;
        let host_veth = Some(self.host_veth.clone());
        found(setup, (&self.ifname, self.mtu), WayOut::Bridge(bridge.clone()), host_veth);
        self.bridge = Some(bridge);
        Ok(())
    }

    fn planned(&self, _setup: &Setup<'_>) -> Vec<Created> {
        vec![Created::HostVeth { name: self.host_veth.clone(), index: None }]
    }

    async fn apply(&mut self, setup: &mut Setup<'_>) -> Result<()> {
        let attachment = setup.attachment().clone();
        let lead = attachment.lead_key();
        let fail = |key| attachment.refusing::<crate::kernel::netlink::NetError>(key);
        let bridge = self.bridge.as_ref().expect("checked");
        let host = &setup.sockets.host;
        let host_shape = LinkShape { mac: Some(names::host_veth_mac(&setup.id)), mtu: Some(bridge.mtu) };
        let container_shape = LinkShape { mac: attachment.mac_for(|| names::dhcp_mac(&setup.id)), mtu: Some(self.mtu) };
        let veth = host
            .add_veth_into(&self.host_veth, &host_shape, &self.ifname, setup.namespace, &container_shape)
            .await
            .map_err(fail(lead))?;
        setup.journal.made(Created::HostVeth { name: veth.name.clone(), index: Some(veth.index) });
        setup.lead_step_done()?;
        setup.sockets.host.attach_to_bridge(&veth, bridge).await.map_err(fail(lead))?;
        setup.lead_step_done()?;
        if let Some(vlan_id) = attachment.vlan {
            setup.sockets.host.make_access_port(&veth, vlan_id).await.map_err(fail("net.vlan"))?;
            setup.lead_step_done()?;
        }
        let interface = bring_up(setup, &self.ifname).await?;
        setup.found.placement = Some(Placement::HostSide { interface, host_veth: veth });
        Ok(())
    }
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

fn kernel_chosen_mac(bridge: &Link) -> String {
    format!(
        "bridge {0} has no port yet and a MAC the kernel chose, so the first port's MAC would become the \
         bridge's (and 00:00:00:00:00:00 once that port leaves); netrt never changes the bridge: \
         fix its MAC with ip link set {0} address {1}, or add its uplink first",
        bridge.name,
        format_mac(&bridge.mac)
    )
}

fn check_vlan_filtering(bridge: &Link, attachment: &Attachment) -> Result<()> {
    let reason = match bridge.vlan_filtering {
        Some(true) => return Ok(()),
        // Kernels built without it report the setting as off too.
        Some(false) => format!(
            "bridge {0} has VLAN filtering off; netrt never changes the bridge: turn it on with \
             ip link set {0} type bridge vlan_filtering 1 (a kernel without CONFIG_BRIDGE_VLAN_FILTERING refuses that)",
            bridge.name
        ),
        None => format!(
            "this kernel has no bridge VLAN filtering (CONFIG_BRIDGE_VLAN_FILTERING), so bridge {} cannot carry VLANs",
            bridge.name
        ),
    };
    Err(attachment.refuse("net.vlan", reason).into())
}
