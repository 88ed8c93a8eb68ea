//! The one netlink layer: every link, route and tc message netrt sends is
//! built here. A `Netlink` is a rtnetlink socket bound to one network
//! namespace; the namespace is entered only long enough to open it.

use std::fmt;
use std::os::fd::AsRawFd;

use futures_util::{StreamExt, TryStreamExt};
use rtnetlink::packet_core::{
    DefaultNla, NetlinkMessage, NetlinkPayload, Nla, NlasIterator, NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST,
};
use std::net::IpAddr;

use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags, AddressMessage, CacheInfo};
use rtnetlink::packet_route::link::{
    BridgeVlanInfoFlags, InfoBridge, InfoData, InfoVeth, InfoVlan, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
    MacVlanMode, State,
};
use rtnetlink::packet_route::nsid::{NsidAttribute, NsidMessage};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use rtnetlink::packet_route::tc::{TcAttribute, TcHandle, TcMessage, TcOption};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::{
    Handle, LinkBridgeVlan, LinkIfb, LinkMacVlan, LinkMessageBuilder, LinkUnspec, LinkVeth, LinkVlan,
    RouteMessageBuilder,
};
use serde::{Deserialize, Serialize};

use crate::kernel::names;
use crate::kernel::netns::NetNs;
use crate::request::attachment::{Cidr, MacvlanMode};
use crate::request::plan::Tbf;

mod htb;
pub use htb::{ClassInfo, HtbClass, SockFilter};

const TCA_OPTIONS: u16 = 2;
const TCA_TBF_PARMS: u16 = 1;
const TCA_TBF_RATE64: u16 = 4;
const TCA_TBF_BURST: u16 = 6;
const TC_LINKLAYER_ETHERNET: u8 = 1;
/// The kernel's packet-scheduler clock ticks 64 ns (PSCHED_SHIFT = 6).
const PSCHED_TICK_NS: u128 = 64;
const ETH_P_ALL: u16 = 0x0003;
pub const ETHERNET_HEADER_BYTES: u32 = 14;
const MAIN_TABLE: u8 = 254;
/// The VLAN every bridge port is in until told otherwise.
const DEFAULT_BRIDGE_VLAN: u16 = 1;

/// A failed netlink call: what was being done and the kernel's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetError {
    pub action: String,
    /// The errno the kernel returned, when it returned one.
    pub errno: Option<i32>,
    pub detail: String,
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.action, self.detail)
    }
}

pub type NetResult<T> = Result<T, NetError>;

fn net_error(action: impl Into<String>, error: rtnetlink::Error) -> NetError {
    let errno = match &error {
        rtnetlink::Error::NetlinkError(message) => message.code.map(|code| -code.get()),
        _ => None,
    };
    let detail = match errno {
        Some(errno) => std::io::Error::from_raw_os_error(errno).to_string(),
        None => error.to_string(),
    };
    NetError { action: action.into(), errno, detail }
}

/// What netrt needs to know about a network interface.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// `veth`, `ifb`, ...; None for devices without link info (loopback).
    pub kind: Option<String>,
    /// IFLA_LINK: for a veth, the peer's index in the peer's namespace.
    pub peer_index: Option<u32>,
    /// IFLA_LINK_NETNSID: the peer's namespace, as this namespace numbers it.
    pub peer_netnsid: Option<i32>,
    pub mtu: u32,
    /// IFLA_MASTER: the bridge a port is enslaved to.
    pub controller: Option<u32>,
    /// IFLA_GROUP: the link group, where netrt's mark is (`names::OWN_GROUP`).
    pub group: u32,
    /// For a VLAN sub-interface: its 802.1Q id.
    pub vlan_id: Option<u16>,
    /// For a bridge: whether VLAN filtering is on; None if the kernel does
    /// not report it (built without bridge VLAN filtering).
    pub vlan_filtering: Option<bool>,
    pub mac: Vec<u8>,
    pub up: bool,
    /// Operational state UP (RFC 2863): the kernel's link watch has seen
    /// the carrier, and frames pass (a bridge port forwards).
    pub operational: bool,
}

impl Link {
    fn from_message(message: &LinkMessage) -> Link {
        let mut link =
            Link { index: message.header.index, up: message.header.flags.contains(LinkFlags::Up), ..Link::default() };
        for attribute in &message.attributes {
            match attribute {
                LinkAttribute::IfName(name) => link.name = name.clone(),
                LinkAttribute::Link(peer) => link.peer_index = Some(*peer),
                LinkAttribute::LinkNetNsId(id) => link.peer_netnsid = Some(*id),
                LinkAttribute::Mtu(mtu) => link.mtu = *mtu,
                LinkAttribute::Controller(index) => link.controller = Some(*index),
                LinkAttribute::Group(group) => link.group = *group,
                LinkAttribute::Address(mac) => link.mac = mac.clone(),
                LinkAttribute::OperState(state) => link.operational = *state == State::Up,
                LinkAttribute::LinkInfo(infos) => {
                    for info in infos {
                        match info {
                            LinkInfo::Kind(kind) => link.kind = Some(kind.to_string()),
                            LinkInfo::Data(InfoData::Vlan(data)) => {
                                link.vlan_id = data.iter().find_map(|d| match d {
                                    InfoVlan::Id(id) => Some(*id),
                                    _ => None,
                                })
                            }
                            LinkInfo::Data(InfoData::Bridge(data)) => {
                                link.vlan_filtering = data.iter().find_map(|d| match d {
                                    InfoBridge::VlanFiltering(on) => Some(*on),
                                    _ => None,
                                })
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        link
    }

    pub fn is_veth(&self) -> bool {
        self.kind.as_deref() == Some("veth")
    }

    /// The largest frame the interface carries: MTU plus the Ethernet header.
    pub fn frame_bytes(&self) -> u32 {
        self.mtu + ETHERNET_HEADER_BYTES
    }
}

/// One qdisc as the kernel reports it, with its counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct QdiscInfo {
    pub kind: String,
    pub parent: u32,
    pub handle: u32,
    pub bytes: u64,
    pub packets: u32,
    pub drops: u32,
    pub overlimits: u32,
    pub backlog_bytes: u32,
    /// For tbf: the rate and burst in force.
    pub tbf: Option<Tbf>,
}

pub struct Netlink {
    handle: Handle,
}

impl Netlink {
    /// Opens a socket in `netns`. Must run inside the tokio runtime, on the
    /// thread that then returns to its own namespace.
    pub fn open_in(netns: &NetNs) -> Result<Netlink, String> {
        netns.run_in(|| {
            let (connection, handle, _) =
                rtnetlink::new_connection().map_err(|e| format!("cannot open a netlink socket: {e}"))?;
            tokio::spawn(connection);
            Ok(Netlink { handle })
        })?
    }

    pub async fn link_by_index(&self, index: u32) -> NetResult<Option<Link>> {
        let request = self.handle.link().get().match_index(index).execute();
        self.one_link(request, format!("looking up interface {index}")).await
    }

    pub async fn link_by_name(&self, name: &str) -> NetResult<Option<Link>> {
        let request = self.handle.link().get().match_name(name).execute();
        self.one_link(request, format!("looking up interface {name}")).await
    }

    async fn one_link(
        &self,
        mut links: impl futures_util::Stream<Item = Result<LinkMessage, rtnetlink::Error>> + Unpin,
        action: String,
    ) -> NetResult<Option<Link>> {
        match links.try_next().await {
            Ok(message) => Ok(message.as_ref().map(Link::from_message)),
            Err(e) => {
                let e = net_error(action, e);
                if e.errno == Some(libc::ENODEV) {
                    Ok(None)
                } else {
                    Err(e)
                }
            }
        }
    }

    /// The interface of the default route: IPv4 first, then IPv6; among
    /// several routes of a family the one with the lowest metric.
    pub async fn default_route_interface(&self) -> NetResult<Option<u32>> {
        for ipv6 in [false, true] {
            let best = self.default_routes(ipv6).await?.into_iter().map(|r| (r.metric, r.oif)).min();
            if let Some((_, oif)) = best {
                return Ok(Some(oif));
            }
        }
        Ok(None)
    }

    /// The id this namespace gives `other`, if it has given one.
    pub async fn netnsid_of(&self, other: &NetNs) -> NetResult<Option<i32>> {
        let mut message = NsidMessage::default();
        message.attributes.push(NsidAttribute::Fd(other.file().as_raw_fd() as u32));
        let mut request = NetlinkMessage::from(RouteNetlinkMessage::GetNsId(message));
        request.header.flags = NLM_F_REQUEST;
        let mut responses =
            self.handle.clone().request(request).map_err(|e| net_error("asking for a namespace id", e))?;
        while let Some(response) = responses.next().await {
            match response.payload {
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewNsId(answer)) => {
                    let id = answer.attributes.iter().find_map(|a| match a {
                        NsidAttribute::Id(id) => Some(*id),
                        _ => None,
                    });
                    return Ok(id.filter(|&id| id >= 0));
                }
                NetlinkPayload::Error(e) if e.code.is_some() => {
                    return Err(net_error("asking for a namespace id", rtnetlink::Error::NetlinkError(e)))
                }
                _ => {}
            }
        }
        Ok(None)
    }

    pub async fn add_ifb(&self, name: &str) -> NetResult<Link> {
        let action = format!("creating ifb device {name}");
        let message = LinkIfb::new(name).link_group(names::OWN_GROUP).build();
        self.handle.link().add(message).execute().await.map_err(|e| net_error(&action, e))?;
        self.must_find(name, action).await
    }

    pub async fn set_up(&self, link: &Link) -> NetResult<()> {
        let mut message = LinkUnspec::new_with_index(link.index).build();
        message.header.flags |= LinkFlags::Up;
        message.header.change_mask |= LinkFlags::Up;
        self.handle.link().set(message).execute().await.map_err(|e| net_error(format!("bringing {} up", link.name), e))
    }

    /// Deletes a link; one already gone is not an error. Returns whether
    /// this call deleted it.
    pub async fn delete_link(&self, link: &Link) -> NetResult<bool> {
        let result = self.handle.link().del(link.index).execute().await;
        deleted(result, format!("deleting {}", link.name), &[libc::ENODEV])
    }

    /// Sets `link`'s MAC to the one it has: the kernel then announces the
    /// link's addresses where `arp_notify` and `ndisc_notify` are on.
    pub async fn renew_mac(&self, link: &Link) -> NetResult<()> {
        let message = LinkUnspec::new_with_index(link.index).address(link.mac.clone()).build();
        self.handle.link().set(message).execute().await.map_err(|e| net_error(format!("announcing {}", link.name), e))
    }

    /// Puts `link` into the link group `group`, to be deleted with the
    /// other members by `delete_group`.
    pub async fn set_group(&self, link: &Link, group: u32) -> NetResult<()> {
        let message = LinkUnspec::new_with_index(link.index).link_group(group).build();
        self.handle
            .link()
            .set(message)
            .execute()
            .await
            .map_err(|e| net_error(format!("putting {} into link group {group:#x}", link.name), e))
    }

    /// Deletes every device of link group `group` in one request, so the
    /// kernel unregisters them as one batch and waits for one RCU grace
    /// period instead of one per device. Devices without a `dellink` (real
    /// NICs) make the kernel refuse the whole request. Returns whether any
    /// device was deleted.
    pub async fn delete_group(&self, group: u32) -> NetResult<bool> {
        let mut message = LinkMessage::default();
        message.attributes.push(LinkAttribute::Group(group));
        let result = rtnetlink::LinkDelRequest::new_with_message(self.handle.clone(), message).execute().await;
        deleted(result, format!("deleting link group {group:#x}"), &[libc::ENODEV])
    }

    pub async fn add_root_tbf(&self, link: &Link, tbf: &Tbf) -> NetResult<()> {
        let what = format!("adding a tbf root qdisc to {}", link.name);
        self.add_root_qdisc(link, TcHandle { major: 1, minor: 0 }, ("tbf", tbf_options(tbf)), what).await
    }

    /// Puts a qdisc of `kind` with `options` and `handle` at the root of
    /// `link`; the kernel refuses (EEXIST) if a qdisc someone set is there.
    async fn add_root_qdisc(
        &self,
        link: &Link,
        handle: TcHandle,
        (kind, options): (&str, Vec<TcOption>),
        what: String,
    ) -> NetResult<()> {
        let message = tc_message(link, (TcHandle::ROOT, handle), kind, Some(options));
        self.ack(RouteNetlinkMessage::NewQueueDiscipline(message), NLM_F_CREATE | NLM_F_EXCL)
            .await
            .map_err(|e| net_error(what, e))
    }

    pub async fn add_ingress_qdisc(&self, link: &Link) -> NetResult<()> {
        self.handle
            .qdisc()
            .add(link.index as i32)
            .ingress()
            .execute()
            .await
            .map_err(|e| net_error(format!("adding an ingress qdisc to {}", link.name), e))
    }

    /// Redirects every frame arriving on `from`, whatever its EtherType, to
    /// the egress of `to`: `u32 match u32 0 0` with `mirred egress redirect`.
    pub async fn redirect_all(&self, from: &Link, to: &Link) -> NetResult<()> {
        let action = format!("redirecting {} to {}", from.name, to.name);
        self.handle
            .traffic_filter(from.index as i32)
            .add()
            .ingress()
            .priority(1)
            // rtnetlink puts this value into tcm_info as it is; the kernel
            // reads the protocol there in network byte order.
            .protocol(ETH_P_ALL.to_be())
            .redirect(to.index)
            .map_err(|e| net_error(&action, e))?
            .execute()
            .await
            .map_err(|e| net_error(&action, e))
    }

    /// Deletes the root qdisc of `link` only if it is netrt's: a tbf with
    /// handle 1:. The kernel checks kind and handle in the same request, so
    /// no other tool's qdisc can be removed. Returns whether one was deleted.
    pub async fn delete_own_root_tbf(&self, link: &Link) -> NetResult<bool> {
        self.delete_qdisc_if(link, TcHandle::ROOT, TcHandle { major: 1, minor: 0 }, "tbf").await
    }

    /// Deletes the ingress qdisc of `link` (and the filters on it).
    pub async fn delete_ingress_qdisc(&self, link: &Link) -> NetResult<bool> {
        self.delete_qdisc_if(link, TcHandle::INGRESS, TcHandle { major: 0xffff, minor: 0 }, "ingress").await
    }

    async fn delete_qdisc_if(&self, link: &Link, parent: TcHandle, handle: TcHandle, kind: &str) -> NetResult<bool> {
        let message = tc_message(link, (parent, handle), kind, None);
        let result = self.ack(RouteNetlinkMessage::DelQueueDiscipline(message), 0).await;
        // ENOENT: no such qdisc; EINVAL: one of another kind or handle.
        deleted(result, format!("deleting the {kind} qdisc of {}", link.name), &[libc::ENOENT, libc::EINVAL])
    }

    pub async fn qdiscs(&self, link: &Link) -> NetResult<Vec<QdiscInfo>> {
        let messages = self.dump_qdiscs(Some(link.index), format!("listing the qdiscs of {}", link.name)).await?;
        Ok(messages.iter().filter(|m| m.header.index == link.index as i32).map(qdisc_info).collect())
    }

    /// Every qdisc of the namespace with its interface's index, in one
    /// dump (for `status`, which would otherwise ask once per limit).
    pub async fn all_qdiscs(&self) -> NetResult<Vec<(u32, QdiscInfo)>> {
        let messages = self.dump_qdiscs(None, "listing the qdiscs".to_string()).await?;
        Ok(messages.iter().map(|m| (m.header.index as u32, qdisc_info(m))).collect())
    }

    /// One qdisc dump, asked for one interface or for all; the kernel may
    /// answer with every qdisc of the namespace either way.
    async fn dump_qdiscs(&self, index: Option<u32>, what: String) -> NetResult<Vec<TcMessage>> {
        let mut request = self.handle.qdisc().get();
        if let Some(index) = index {
            request = request.index(index as i32);
        }
        request.execute().try_collect().await.map_err(|e| net_error(what, e))
    }

    pub async fn links(&self) -> NetResult<Vec<Link>> {
        let messages: Vec<LinkMessage> =
            self.handle.link().get().execute().try_collect().await.map_err(|e| net_error("listing interfaces", e))?;
        Ok(messages.iter().map(Link::from_message).collect())
    }

    /// Creates a veth pair in one request: `host_name` here with
    /// `host_shape`, `peer_name` born directly in `peer_ns` with
    /// `peer_shape` (so it cannot clash with a host name).
    pub async fn add_veth_into(
        &self,
        host_name: &str,
        host_shape: &LinkShape,
        peer_name: &str,
        peer_ns: &NetNs,
        peer_shape: &LinkShape,
    ) -> NetResult<Link> {
        let peer = peer_shape.applied(LinkUnspec::new_with_name(peer_name).setns_by_fd(peer_ns.file().as_raw_fd()));
        let host = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(rtnetlink::packet_route::link::InfoKind::Veth)
            .name(host_name.to_string())
            .link_group(names::OWN_GROUP)
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer.build())));
        let action = format!("creating veth pair {host_name} (host) and {peer_name} (container)");
        self.handle.link().add(host_shape.applied(host).build()).execute().await.map_err(|e| net_error(&action, e))?;
        self.must_find(host_name, action).await
    }

    /// Creates a macvlan child of `lower`, born directly in `ns` as `name`.
    pub async fn add_macvlan_into(
        &self,
        name: &str,
        lower: &Link,
        mode: MacvlanMode,
        ns: &NetNs,
        shape: &LinkShape,
    ) -> NetResult<()> {
        let mode = match mode {
            MacvlanMode::Bridge => MacVlanMode::Bridge,
            MacvlanMode::Private => MacVlanMode::Private,
            MacvlanMode::Vepa => MacVlanMode::Vepa,
            MacvlanMode::Passthru => MacVlanMode::Passthrough,
        };
        let builder = shape.applied(LinkMacVlan::new(name, lower.index, mode).setns_by_fd(ns.file().as_raw_fd()));
        self.handle
            .link()
            .add(builder.build())
            .execute()
            .await
            .map_err(|e| net_error(format!("creating macvlan {name} on {}", lower.name), e))
    }

    /// Creates the 802.1Q sub-interface `name` of `parent`, and brings it up.
    pub async fn add_vlan(&self, name: &str, parent: &Link, vlan_id: u16) -> NetResult<Link> {
        let action = format!("creating VLAN sub-interface {name}");
        let message = LinkVlan::new(name, parent.index, vlan_id).up().link_group(names::OWN_GROUP).build();
        self.handle.link().add(message).execute().await.map_err(|e| {
            let mut e = net_error(&action, e);
            if e.errno == Some(libc::EOPNOTSUPP) {
                e.detail =
                    "this kernel has no 802.1Q VLAN support (8021q); load the module or use a kernel with it".into();
            }
            e
        })?;
        self.must_find(name, action).await
    }

    async fn must_find(&self, name: &str, action: String) -> NetResult<Link> {
        self.link_by_name(name).await?.ok_or_else(|| NetError {
            action,
            errno: None,
            detail: "the device vanished right after it was created".into(),
        })
    }

    /// Enslaves `port` to `bridge` and brings it up.
    pub async fn attach_to_bridge(&self, port: &Link, bridge: &Link) -> NetResult<()> {
        let message = LinkUnspec::new_with_index(port.index).controller(bridge.index).up().build();
        self.handle
            .link()
            .set(message)
            .execute()
            .await
            .map_err(|e| net_error(format!("adding {} to bridge {}", port.name, bridge.name), e))
    }

    /// Makes `port` an untagged access port of `vlan_id` (its PVID) and
    /// takes it out of the default VLAN, as `bridge vlan add/del` would.
    pub async fn make_access_port(&self, port: &Link, vlan_id: u16) -> NetResult<()> {
        let action = format!("making {} an access port of VLAN {vlan_id}", port.name);
        let add =
            LinkBridgeVlan::new(port.index).vlan(vlan_id, BridgeVlanInfoFlags::Pvid | BridgeVlanInfoFlags::Untagged);
        self.ack(RouteNetlinkMessage::SetLink(add.build()), 0).await.map_err(|e| net_error(&action, e))?;
        if vlan_id != DEFAULT_BRIDGE_VLAN {
            let leave = LinkBridgeVlan::new(port.index).vlan(DEFAULT_BRIDGE_VLAN, BridgeVlanInfoFlags::empty());
            self.ack(RouteNetlinkMessage::DelLink(leave.build()), 0).await.map_err(|e| net_error(&action, e))?;
        }
        Ok(())
    }

    /// Adds an address; an IPv6 one without duplicate address detection,
    /// so the container can use it from its first instruction.
    pub async fn add_address(&self, link: &Link, cidr: &Cidr) -> NetResult<()> {
        let mut request = self.handle.address().add(link.index, cidr.address, cidr.prefix);
        if cidr.address.is_ipv6() {
            request.message_mut().attributes.push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        request.execute().await.map_err(|e| net_error(format!("adding address {cidr} to {}", link.name), e))
    }

    /// Adds, or with `replace` updates, an IPv4 address that the kernel
    /// drops after `valid_seconds` (a DHCP lease's lifetime; all ones is
    /// forever): `ip address add|change ... valid_lft N preferred_lft N`.
    pub async fn put_leased_address(
        &self,
        link: &Link,
        cidr: &Cidr,
        valid_seconds: u32,
        replace: bool,
    ) -> NetResult<()> {
        let mut request = self.handle.address().add(link.index, cidr.address, cidr.prefix);
        if replace {
            request = request.replace();
        }
        let mut lifetime = CacheInfo::default();
        lifetime.ifa_preferred = valid_seconds;
        lifetime.ifa_valid = valid_seconds;
        request.message_mut().attributes.push(AddressAttribute::CacheInfo(lifetime));
        let verb = if replace { "renewing" } else { "adding" };
        request.execute().await.map_err(|e| net_error(format!("{verb} leased address {cidr} on {}", link.name), e))
    }

    /// Deletes an address; one already gone is not an error.
    pub async fn delete_address(&self, link: &Link, cidr: &Cidr) -> NetResult<bool> {
        let mut message = AddressMessage::default();
        message.header.family = if cidr.address.is_ipv6() { AddressFamily::Inet6 } else { AddressFamily::Inet };
        message.header.prefix_len = cidr.prefix;
        message.header.index = link.index;
        message.attributes.push(AddressAttribute::Local(cidr.address));
        message.attributes.push(AddressAttribute::Address(cidr.address));
        let result = self.handle.address().del(message).execute().await;
        deleted(result, format!("deleting address {cidr} from {}", link.name), &[libc::EADDRNOTAVAIL, libc::ENODEV])
    }

    pub async fn set_mtu(&self, link: &Link, mtu: u32) -> NetResult<()> {
        let message = LinkUnspec::new_with_index(link.index).mtu(mtu).build();
        self.handle
            .link()
            .set(message)
            .execute()
            .await
            .map_err(|e| net_error(format!("setting the MTU of {} to {mtu}", link.name), e))
    }

    /// The default routes of one family in the main table.
    pub async fn default_routes(&self, ipv6: bool) -> NetResult<Vec<RouteSpec>> {
        let mut query = RouteMessage::default();
        query.header.address_family = if ipv6 { AddressFamily::Inet6 } else { AddressFamily::Inet };
        let routes: Vec<RouteMessage> =
            self.handle.route().get(query).execute().try_collect().await.map_err(|e| net_error("listing routes", e))?;
        Ok(routes
            .iter()
            .filter(|r| {
                r.header.destination_prefix_length == 0
                    && r.header.kind == RouteType::Unicast
                    && route_table(r) == MAIN_TABLE as u32
            })
            .filter_map(|r| {
                Some(RouteSpec {
                    destination: Cidr::default_destination(ipv6),
                    via: route_gateway(r),
                    oif: route_oif(r)?,
                    metric: route_metric(r),
                })
            })
            .collect())
    }

    pub async fn add_route(&self, route: &RouteSpec) -> NetResult<()> {
        let message = route_message(route, false).map_err(|detail| NetError {
            action: format!("adding route {route}"),
            errno: None,
            detail,
        })?;
        self.handle.route().add(message).execute().await.map_err(|e| net_error(format!("adding route {route}"), e))
    }

    /// Deletes a route; one already gone is not an error.
    pub async fn delete_route(&self, route: &RouteSpec) -> NetResult<bool> {
        let action = format!("deleting route {route}");
        let message =
            route_message(route, true).map_err(|detail| NetError { action: action.clone(), errno: None, detail })?;
        let result = self.handle.route().del(message).execute().await;
        deleted(result, action, &[libc::ESRCH, libc::ENODEV])
    }

    /// The addresses on `link`, for status.
    pub async fn addresses(&self, link: &Link) -> NetResult<Vec<Cidr>> {
        let messages: Vec<AddressMessage> = self
            .handle
            .address()
            .get()
            .set_link_index_filter(link.index)
            .execute()
            .try_collect()
            .await
            .map_err(|e| net_error(format!("listing the addresses of {}", link.name), e))?;
        Ok(messages
            .iter()
            .filter_map(|m| Some(Cidr { address: address_of(m)?, prefix: m.header.prefix_len }))
            .collect())
    }

    /// Every address of the namespace, with the index of its interface.
    pub async fn all_addresses(&self) -> NetResult<Vec<(IpAddr, u32)>> {
        let action = || "listing the addresses".to_string();
        let messages: Vec<AddressMessage> =
            self.handle.address().get().execute().try_collect().await.map_err(|e| net_error(action(), e))?;
        Ok(messages.iter().filter_map(|m| Some((address_of(m)?, m.header.index))).collect())
    }

    async fn ack(&self, payload: RouteNetlinkMessage, flags: u16) -> Result<(), rtnetlink::Error> {
        let mut request = NetlinkMessage::from(payload);
        request.header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        let mut responses = self.handle.clone().request(request)?;
        while let Some(response) = responses.next().await {
            if let NetlinkPayload::Error(e) = response.payload {
                if e.code.is_some() {
                    return Err(rtnetlink::Error::NetlinkError(e));
                }
            }
        }
        Ok(())
    }
}

/// MAC and MTU to give an interface as it is made or configured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkShape {
    pub mac: Option<[u8; 6]>,
    pub mtu: Option<u32>,
}

impl LinkShape {
    fn applied<T>(&self, mut builder: LinkMessageBuilder<T>) -> LinkMessageBuilder<T> {
        if let Some(mtu) = self.mtu {
            builder = builder.mtu(mtu);
        }
        if let Some(mac) = self.mac {
            builder = builder.address(mac.to_vec());
        }
        builder
    }
}

/// One route through one interface, as netrt adds, removes and restores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteSpec {
    pub destination: Cidr,
    pub via: Option<IpAddr>,
    pub oif: u32,
    pub metric: u32,
}

impl fmt::Display for RouteSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.destination.prefix {
            0 => write!(f, "default")?,
            _ => write!(f, "{}", self.destination)?,
        }
        if let Some(via) = self.via {
            write!(f, " via {via}")?;
        }
        write!(f, " dev #{}", self.oif)?;
        if self.metric != 0 {
            write!(f, " metric {}", self.metric)?;
        }
        Ok(())
    }
}

/// The message for a route in the main table. A deletion leaves protocol,
/// scope and type open, as `ip route del` does, so that routes made by the
/// kernel or another tool match too.
fn route_message(route: &RouteSpec, delete: bool) -> Result<RouteMessage, String> {
    fn invalid(e: impl fmt::Display) -> String {
        e.to_string()
    }
    let mut builder = RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(route.destination.address, route.destination.prefix)
        .map_err(invalid)?
        .output_interface(route.oif)
        .priority(route.metric);
    if let Some(via) = route.via {
        builder = builder.gateway(via).map_err(invalid)?;
    }
    let mut message = builder.build();
    if delete {
        message.header.protocol = RouteProtocol::Unspec;
        message.header.scope = RouteScope::NoWhere;
        message.header.kind = RouteType::Unspec;
    } else if route.via.is_none() && route.destination.address.is_ipv4() {
        message.header.scope = RouteScope::Link;
    }
    Ok(message)
}

fn route_gateway(route: &RouteMessage) -> Option<IpAddr> {
    route.attributes.iter().find_map(|a| match a {
        RouteAttribute::Gateway(RouteAddress::Inet(v4)) => Some(IpAddr::V4(*v4)),
        RouteAttribute::Gateway(RouteAddress::Inet6(v6)) => Some(IpAddr::V6(*v6)),
        _ => None,
    })
}

/// The answer to a deletion: whether this request deleted the object. An
/// errno in `absent` means the object was not there, which is not an error.
fn deleted(result: Result<(), rtnetlink::Error>, action: impl Into<String>, absent: &[i32]) -> NetResult<bool> {
    match result {
        Ok(()) => Ok(true),
        Err(e) => {
            let e = net_error(action, e);
            if e.errno.is_some_and(|errno| absent.contains(&errno)) {
                Ok(false)
            } else {
                Err(e)
            }
        }
    }
}

fn route_table(route: &RouteMessage) -> u32 {
    route
        .attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(route.header.table as u32)
}

fn route_metric(route: &RouteMessage) -> u32 {
    route
        .attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Priority(p) => Some(*p),
            _ => None,
        })
        .unwrap_or(0)
}

fn route_oif(route: &RouteMessage) -> Option<u32> {
    route.attributes.iter().find_map(|a| match a {
        RouteAttribute::Oif(oif) => Some(*oif),
        RouteAttribute::MultiPath(hops) => hops.first().map(|hop| hop.interface_index),
        _ => None,
    })
}

/// TCA_OPTIONS of a tbf qdisc: TCA_TBF_PARMS, TCA_TBF_BURST and, for rates
/// that do not fit the 32-bit field, TCA_TBF_RATE64.
pub fn tbf_options(tbf: &Tbf) -> Vec<TcOption> {
    let mut options = vec![
        TcOption::Other(DefaultNla::new(TCA_TBF_PARMS, tbf_parms(tbf).to_vec())),
        TcOption::Other(DefaultNla::new(TCA_TBF_BURST, tbf.burst_bytes.to_ne_bytes().to_vec())),
    ];
    if tbf.rate_bytes_per_s > u32::MAX as u64 {
        options.push(TcOption::Other(DefaultNla::new(TCA_TBF_RATE64, tbf.rate_bytes_per_s.to_ne_bytes().to_vec())));
    }
    options
}

/// `struct tc_tbf_qopt`: rate and peak-rate `tc_ratespec`s, then limit,
/// buffer (the burst as transmit time, in scheduler ticks) and mtu.
fn tbf_parms(tbf: &Tbf) -> [u8; 36] {
    let mut bytes = [0u8; 36];
    let rate32 = tbf.rate_bytes_per_s.min(u32::MAX as u64) as u32;
    let buffer_ns = tbf.burst_bytes as u128 * 1_000_000_000 / tbf.rate_bytes_per_s.max(1) as u128;
    let buffer_ticks = (buffer_ns / PSCHED_TICK_NS).min(u32::MAX as u128) as u32;
    // rate tc_ratespec: cell_log, linklayer, overhead, cell_align, mpu, rate
    bytes[1] = TC_LINKLAYER_ETHERNET;
    bytes[8..12].copy_from_slice(&rate32.to_ne_bytes());
    // peakrate tc_ratespec (bytes 12..24) stays zero: no peak rate.
    bytes[24..28].copy_from_slice(&tbf.limit_bytes.to_ne_bytes());
    bytes[28..32].copy_from_slice(&buffer_ticks.to_ne_bytes());
    // mtu (bytes 32..36) is only used with a peak rate.
    bytes
}

/// Reads back what `tbf_options` wrote, from a qdisc dump.
fn parse_tbf(nested: &[u8]) -> Option<Tbf> {
    let mut rate = None;
    let mut rate64 = None;
    let mut burst = None;
    let mut limit = None;
    for nla in NlasIterator::new(nested).flatten() {
        let value = nla.value();
        match nla.kind() {
            TCA_TBF_PARMS if value.len() >= 36 => {
                rate = Some(u32::from_ne_bytes(value[8..12].try_into().ok()?) as u64);
                limit = Some(u32::from_ne_bytes(value[24..28].try_into().ok()?));
                let ticks = u32::from_ne_bytes(value[28..32].try_into().ok()?) as u128;
                burst = burst.or(Some(ticks));
            }
            TCA_TBF_RATE64 if value.len() >= 8 => rate64 = Some(u64::from_ne_bytes(value[..8].try_into().ok()?)),
            _ => {}
        }
    }
    let rate_bytes_per_s = rate64.or(rate)?;
    let buffer_ticks = burst?;
    let burst_bytes = (buffer_ticks * PSCHED_TICK_NS * rate_bytes_per_s as u128 / 1_000_000_000) as u32;
    Some(Tbf { rate_bytes_per_s, burst_bytes, limit_bytes: limit? })
}

fn qdisc_info(message: &TcMessage) -> QdiscInfo {
    let mut info = QdiscInfo {
        parent: u32::from(message.header.parent),
        handle: u32::from(message.header.handle),
        ..QdiscInfo::default()
    };
    for attribute in &message.attributes {
        match attribute {
            TcAttribute::Kind(kind) => info.kind = kind.clone(),
            TcAttribute::Stats(stats) => {
                info.bytes = stats.bytes;
                info.packets = stats.packets;
                info.drops = stats.drops;
                info.overlimits = stats.overlimits;
                info.backlog_bytes = stats.backlog;
            }
            _ => {}
        }
    }
    if info.kind == "tbf" {
        info.tbf = message.attributes.iter().find_map(|a| match a {
            TcAttribute::Options(options) => options.iter().find_map(|o| match o {
                TcOption::Other(nla) if nla.kind() == TCA_OPTIONS => parse_tbf(&nla_value(nla)),
                _ => None,
            }),
            _ => None,
        });
    }
    info
}

fn nla_value(nla: &DefaultNla) -> Vec<u8> {
    let mut value = vec![0u8; nla.value_len()];
    nla.emit_value(&mut value);
    value
}

/// The address an address message carries.
fn address_of(message: &AddressMessage) -> Option<IpAddr> {
    message.attributes.iter().find_map(|a| match a {
        AddressAttribute::Address(ip) => Some(*ip),
        _ => None,
    })
}

/// A tc request's message for `link`: its parent and handle, its kind,
/// and its options, if any.
fn tc_message(
    link: &Link,
    (parent, handle): (TcHandle, TcHandle),
    kind: &str,
    options: Option<Vec<TcOption>>,
) -> TcMessage {
    let mut message = TcMessage::with_index(link.index as i32);
    message.header.parent = parent;
    message.header.handle = handle;
    message.attributes.push(TcAttribute::Kind(kind.into()));
    message.attributes.extend(options.map(TcAttribute::Options));
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtnetlink::packet_core::Emitable;
    use rtnetlink::packet_route::tc::TcMessage;

    fn emitted(options: Vec<TcOption>) -> Vec<u8> {
        let attribute = TcAttribute::Options(options);
        let mut bytes = vec![0u8; attribute.buffer_len()];
        attribute.emit(&mut bytes);
        bytes
    }

    #[test]
    fn tbf_bytes_for_10mbit() {
        let tbf = Tbf { rate_bytes_per_s: 1_250_000, burst_bytes: 25_000, limit_bytes: 56_250 };
        let bytes = emitted(tbf_options(&tbf));
        #[rustfmt::skip]
        let expected: Vec<u8> = [
            &[52, 0, 2, 0][..],                 // TCA_OPTIONS, 4 + 40 + 8 bytes
            &[40, 0, 1, 0],                     // TCA_TBF_PARMS, 36 bytes of tc_tbf_qopt
            &[0, 1, 0, 0, 0, 0, 0, 0],          // rate: cell_log 0, linklayer ethernet, no overhead
            &0x0013_12d0u32.to_le_bytes(),      // rate 1,250,000 B/s
            &[0; 12],                           // no peak rate
            &56_250u32.to_le_bytes(),           // limit
            &312_500u32.to_le_bytes(),          // buffer: 20 ms = 312,500 ticks of 64 ns
            &[0; 4],                            // mtu
            &[8, 0, 6, 0],                      // TCA_TBF_BURST
            &25_000u32.to_le_bytes(),
        ].concat();
        assert_eq!(bytes, expected);
    }

    #[test]
    fn tbf_uses_rate64_above_32_bits() {
        let tbf = Tbf { rate_bytes_per_s: 12_500_000_000, burst_bytes: 250_000_000, limit_bytes: 562_500_000 };
        let bytes = emitted(tbf_options(&tbf));
        assert_eq!(&bytes[16..20], &u32::MAX.to_le_bytes(), "32-bit rate saturates");
        let tail = &bytes[bytes.len() - 12..];
        assert_eq!(&tail[..4], &[12, 0, 4, 0], "TCA_TBF_RATE64 follows");
        assert_eq!(&tail[4..], &12_500_000_000u64.to_le_bytes());
    }

    #[test]
    fn tbf_round_trips_through_a_dump() {
        let tbf = Tbf { rate_bytes_per_s: 125_000, burst_bytes: 2_500, limit_bytes: 5_625 };
        let bytes = emitted(tbf_options(&tbf));
        let parsed = parse_tbf(&bytes[4..]).unwrap();
        assert_eq!(parsed.rate_bytes_per_s, 125_000);
        assert_eq!(parsed.limit_bytes, 5_625);
        assert!((2_499..=2_500).contains(&parsed.burst_bytes), "{parsed:?}");
    }

    #[test]
    fn qdisc_info_reads_kind_and_tbf() {
        let tbf = Tbf { rate_bytes_per_s: 1_000_000, burst_bytes: 20_000, limit_bytes: 45_000 };
        let mut message = TcMessage::with_index(3);
        message.attributes.push(TcAttribute::Kind("tbf".into()));
        let nested = emitted(tbf_options(&tbf));
        message
            .attributes
            .push(TcAttribute::Options(vec![TcOption::Other(DefaultNla::new(TCA_OPTIONS, nested[4..].to_vec()))]));
        let info = qdisc_info(&message);
        assert_eq!(info.kind, "tbf");
        assert_eq!(info.tbf.unwrap().rate_bytes_per_s, 1_000_000);
    }

    #[test]
    fn filter_protocol_is_sent_in_network_order() {
        assert_eq!(ETH_P_ALL.to_be().to_ne_bytes(), [0x00, 0x03]);
    }
}
