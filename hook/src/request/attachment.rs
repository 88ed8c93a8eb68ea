//! The attachment part of the plan: one extra interface netrt puts into the
//! container (a veth on a host bridge, or a macvlan child of a host
//! interface), with its addresses, routes, MAC and MTU. Pure parsing and
//! validation; nothing here touches the host.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use crate::error::KeyError;
use crate::request::settings::{Setting, Settings};

/// Keys that configure the attached interface; each needs an attachment.
pub const COMPANION_KEYS: [&str; 9] = [
    "net.vlan",
    "net.macvlan.mode",
    "net.ifname",
    "net.ip",
    "net.gateway",
    "net.routes",
    "net.mac",
    "net.mtu",
    "net.dhcp.timeout",
];
pub const MIN_MTU: u32 = 68;
pub const MAX_MTU: u32 = 65_535;
/// The kernel turns IPv6 off on an interface with a smaller MTU.
pub const MIN_IPV6_MTU: u32 = 1_280;
/// IFNAMSIZ less the terminating zero.
pub const MAX_IFNAME_BYTES: usize = 15;

/// An address with its prefix length (`198.51.100.10/24`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Cidr {
    pub address: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    /// `0.0.0.0/0` or `::/0`: what a default route leads to.
    pub fn default_destination(ipv6: bool) -> Cidr {
        let address = if ipv6 { Ipv6Addr::UNSPECIFIED.into() } else { Ipv4Addr::UNSPECIFIED.into() };
        Cidr { address, prefix: 0 }
    }

    pub fn parse(text: &str) -> Result<Cidr, String> {
        let (address, prefix) = text.split_once('/').ok_or_else(|| {
            format!("{text:?} has no prefix length; write it as ADDRESS/LENGTH, e.g. 198.51.100.10/24")
        })?;
        let address: IpAddr = address.parse().map_err(|_| format!("{address:?} is not an IPv4 or IPv6 address"))?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix.parse::<u8>() {
            Ok(p) if p <= max && prefix.bytes().all(|b| b.is_ascii_digit()) => p,
            _ => return Err(format!("prefix length {prefix:?} of {address} is not a number from 0 to {max}")),
        };
        Ok(Cidr { address, prefix })
    }

    fn bits(address: IpAddr) -> (u128, u8) {
        match address {
            IpAddr::V4(a) => (u32::from(a) as u128, 32),
            IpAddr::V6(a) => (u128::from(a), 128),
        }
    }

    /// All ones across an address of this family.
    fn all_ones(&self) -> u128 {
        if self.address.is_ipv4() {
            u32::MAX as u128
        } else {
            u128::MAX
        }
    }

    fn mask(&self) -> u128 {
        let (_, width) = Cidr::bits(self.address);
        let host_bits = (width - self.prefix) as u32;
        self.all_ones().checked_shr(host_bits).map_or(0, |m| m << host_bits)
    }

    pub fn same_family(&self, other: IpAddr) -> bool {
        self.address.is_ipv4() == other.is_ipv4()
    }

    pub fn contains(&self, other: IpAddr) -> bool {
        self.same_family(other) && Cidr::bits(self.address).0 & self.mask() == Cidr::bits(other).0 & self.mask()
    }

    /// Whether `other` lies wholly inside this network.
    pub fn covers(&self, other: &Cidr) -> bool {
        self.contains(other.address) && other.prefix >= self.prefix
    }

    fn host_part(&self) -> u128 {
        Cidr::bits(self.address).0 & !self.mask() & self.all_ones()
    }

    /// Whether the host part is all zeros: the network's own address.
    pub fn is_network(&self) -> bool {
        self.host_part() == 0
    }

    /// Whether the host part is all ones: IPv4's broadcast address.
    pub fn is_broadcast(&self) -> bool {
        self.host_part() == !self.mask() & self.all_ones()
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

impl From<Cidr> for String {
    fn from(cidr: Cidr) -> String {
        cidr.to_string()
    }
}

impl TryFrom<String> for Cidr {
    type Error = String;
    fn try_from(text: String) -> Result<Cidr, String> {
        Cidr::parse(&text)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MacvlanMode {
    Bridge,
    Private,
    Vepa,
    Passthru,
}

impl MacvlanMode {
    const NAMES: [(&'static str, MacvlanMode); 4] = [
        ("bridge", MacvlanMode::Bridge),
        ("private", MacvlanMode::Private),
        ("vepa", MacvlanMode::Vepa),
        ("passthru", MacvlanMode::Passthru),
    ];
}

/// Where the attached interface is plugged in on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Medium {
    /// A veth pair, the host end enslaved to this existing bridge.
    Bridge { bridge: String },
    /// A macvlan child of this host interface (or of its VLAN sub-interface).
    Macvlan { parent: String, mode: MacvlanMode },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub destination: Cidr,
    /// None: the destination is on the attached link itself.
    pub via: Option<IpAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub medium: Medium,
    pub vlan: Option<u16>,
    /// None: `eth0` if free in the container, else the first free `ethN`.
    pub ifname: Option<String>,
    pub addresses: Vec<Cidr>,
    pub gateways: Vec<IpAddr>,
    pub routes: Vec<Route>,
    pub mac: Option<[u8; 6]>,
    pub mtu: Option<u32>,
    /// The attachment's settings as the user gave them, for messages.
    pub given: Settings,
    /// `net.pool`: the pool that gives the addresses `net.ip` does not.
    #[serde(default)]
    pub pool: Option<String>,
    /// `net.ip=dhcp`: the IPv4 address comes from the LAN's DHCP server.
    #[serde(default)]
    pub dhcp: Option<Dhcp>,
}

/// How to ask the LAN's DHCP server for the IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dhcp {
    /// `net.dhcp.timeout`: no lease by then, and the container is refused.
    pub timeout_ms: u64,
}

pub const DEFAULT_DHCP_TIMEOUT_MS: u64 = 5_000;
pub const MAX_DHCP_TIMEOUT_MS: u64 = 60_000;

impl Attachment {
    /// The key that asked for the attachment: `net.bridge` or `net.parent`.
    pub fn lead_key(&self) -> &'static str {
        match self.medium {
            Medium::Bridge { .. } => "net.bridge",
            Medium::Macvlan { .. } => "net.parent",
        }
    }

    /// A refusal against `key` as the user wrote it, or against the
    /// attachment itself when that key was not given.
    pub fn refuse(&self, key: &str, reason: impl Into<String>) -> KeyError {
        let setting = self.given.get(key).unwrap_or_else(|| &self.given[self.lead_key()]);
        KeyError::new(&setting.source, &setting.value, reason)
    }

    /// `refuse` for `key`, with an error's words as the reason.
    pub fn refusing<E: std::fmt::Display>(&self, key: &'static str) -> impl Fn(E) -> KeyError + Copy + '_ {
        move |e| self.refuse(key, e.to_string())
    }

    /// The 802.1Q sub-interface a macvlan hangs from: `<parent>.<vlan>`.
    pub fn vlan_interface(&self) -> Option<String> {
        match (&self.medium, self.vlan) {
            (Medium::Macvlan { parent, .. }, Some(vlan)) => Some(format!("{parent}.{vlan}")),
            _ => None,
        }
    }

    /// The host interface the macvlan is made on.
    pub fn macvlan_lower(&self) -> Option<String> {
        match &self.medium {
            Medium::Macvlan { parent, .. } => Some(self.vlan_interface().unwrap_or_else(|| parent.clone())),
            Medium::Bridge { .. } => None,
        }
    }

    /// The MAC to give the interface: `net.mac`, else, as Docker does, one
    /// derived from the first IPv4 address (02:42 and its four bytes), so a
    /// restarted container keeps its identity in its neighbours' ARP caches.
    /// A passthru macvlan keeps its parent's MAC: setting one would change
    /// the parent's.
    pub fn mac_to_set(&self) -> Option<[u8; 6]> {
        if self.is_passthru() {
            return None;
        }
        self.mac.or_else(|| {
            self.addresses.iter().find_map(|a| match a.address {
                IpAddr::V4(v4) => {
                    let [a, b, c, d] = v4.octets();
                    Some([0x02, 0x42, a, b, c, d])
                }
                IpAddr::V6(_) => None,
            })
        })
    }

    /// As `mac_to_set`, for a container whose id gives the MAC `from_id`:
    /// an attachment whose IPv4 address comes from DHCP and that has no
    /// `net.mac` gets a MAC derived from the container id, so that a
    /// restarted container shows the server the same hardware address
    /// (dnsmasq, for one, picks the address it offers from it).
    pub fn mac_for(&self, from_id: impl FnOnce() -> [u8; 6]) -> Option<[u8; 6]> {
        if self.derives_mac_from_id() {
            return Some(from_id());
        }
        self.mac_to_set()
    }

    /// Whether the MAC comes from the container id (see `mac_for`).
    fn derives_mac_from_id(&self) -> bool {
        self.mac.is_none() && self.dhcp.is_some() && !self.is_passthru()
    }

    pub fn is_passthru(&self) -> bool {
        matches!(self.medium, Medium::Macvlan { mode: MacvlanMode::Passthru, .. })
    }
}

impl Attachment {
    /// The attachment as `netrt-hook check` prints it.
    pub fn describe(&self) -> Vec<String> {
        let mut lines = vec![match &self.medium {
            Medium::Bridge { bridge } => match self.vlan {
                Some(vlan) => format!("attach: veth on bridge {bridge}, untagged access port of VLAN {vlan}"),
                None => format!("attach: veth on bridge {bridge}"),
            },
            Medium::Macvlan { parent, mode } => format!(
                "attach: macvlan ({}) on {}",
                MacvlanMode::NAMES.iter().find(|(_, m)| m == mode).map_or("?", |(name, _)| name),
                self.macvlan_lower().unwrap_or_else(|| parent.clone())
            ),
        }];
        lines.push(format!("interface: {}", self.ifname.as_deref().unwrap_or("eth0, or the first free ethN")));
        let join = |items: Vec<String>| if items.is_empty() { "none".to_string() } else { items.join(", ") };
        let mut addresses: Vec<String> = self.addresses.iter().map(Cidr::to_string).collect();
        if let Some(dhcp) = &self.dhcp {
            addresses.insert(
                0,
                format!(
                    "IPv4 by DHCP at setup (timeout {})",
                    crate::request::units::format_duration_us(dhcp.timeout_ms * 1000)
                ),
            );
        }
        if let Some(pool) = &self.pool {
            let given = if addresses.is_empty() { "" } else { "the rest " };
            addresses.push(format!("{given}from pool {pool} at setup"));
        }
        lines.push(format!("addresses: {}", join(addresses)));
        lines.push(format!("gateways: {}", join(self.gateways.iter().map(IpAddr::to_string).collect())));
        lines.push(format!(
            "routes: {}",
            join(
                self.routes
                    .iter()
                    .map(|r| match r.via {
                        Some(via) => format!("{} via {via}", r.destination),
                        None => r.destination.to_string(),
                    })
                    .collect()
            )
        ));
        if let Some(mac) = self.mac_to_set() {
            let origin = if self.mac.is_some() { "" } else { " (derived from the IPv4 address)" };
            lines.push(format!("mac: {}{origin}", format_mac(&mac)));
        } else if self.derives_mac_from_id() {
            lines.push("mac: derived from the container id (the DHCP server sees the same one after a restart)".into());
        }
        if let Some(mtu) = self.mtu {
            lines.push(format!("mtu: {mtu}"));
        }
        lines
    }
}

/// Validates the attachment keys; None if no attachment was asked for.
pub fn build(settings: &Settings) -> Result<Option<Attachment>, KeyError> {
    build_with(settings, &[])
}

/// As `build`, for settings that `net.pool` expanded: `pool_networks`, the
/// pool's subnets, are where its addresses will come from, so gateways and
/// routes through them are reachable before the addresses are allocated.
pub fn build_with(settings: &Settings, pool_networks: &[Cidr]) -> Result<Option<Attachment>, KeyError> {
    let Some(medium) = medium(settings)? else { return Ok(None) };
    let given: Settings = settings
        .iter()
        .filter(|(key, _)| {
            COMPANION_KEYS.contains(&key.as_str()) || ["net.bridge", "net.parent", "net.pool"].contains(&key.as_str())
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let field = |key: &str| settings.get(key);

    let vlan = field("net.vlan").map(|s| vlan_id(&s.value).map_err(|r| refuse(s, r))).transpose()?;
    let ifname = field("net.ifname")
        .map(|s| {
            check_ifname(&s.value).map_err(|r| refuse(s, r))?;
            if s.value == "lo" {
                return Err(refuse(s, "lo is the container's loopback interface"));
            }
            Ok(s.value.clone())
        })
        .transpose()?;
    let (addresses, by_dhcp) = field("net.ip").map(addresses).transpose()?.unwrap_or_default();
    let dhcp = dhcp_of(by_dhcp, field("net.dhcp.timeout"))?;
    let mut networks: Vec<Cidr> = addresses.iter().chain(pool_networks).copied().collect();
    if by_dhcp {
        // The lease's subnet is known only at setup: any IPv4 next hop may
        // be on it, and the kernel refuses one that is not.
        networks.push(Cidr::default_destination(false));
    }
    let gateways = field("net.gateway").map(|s| gateways(s, &networks)).transpose()?.unwrap_or_default();
    let routes = field("net.routes").map(|s| routes(s, &networks)).transpose()?.unwrap_or_default();
    let mac = field("net.mac").map(|s| parse_mac(&s.value).map_err(|r| refuse(s, r))).transpose()?;
    let mtu = field("net.mtu").map(|s| mtu(s, &networks)).transpose()?;
    if let (Medium::Macvlan { mode: MacvlanMode::Passthru, .. }, Some(given_mac)) = (&medium, field("net.mac")) {
        return Err(refuse(
            given_mac,
            format!(
                "a passthru macvlan carries its parent's own MAC, so setting another would change the MAC of {} \
             (netrt never changes a host interface's settings); leave net.mac out or use another macvlan mode",
                settings.get("net.parent").map_or("the parent", |p| p.value.as_str())
            ),
        ));
    }

    let pool = field("net.pool").map(|s| s.value.clone());
    let attachment = Attachment { medium, vlan, ifname, addresses, gateways, routes, mac, mtu, given, pool, dhcp };
    if let Some(sub) = attachment.vlan_interface() {
        if sub.len() > MAX_IFNAME_BYTES {
            return Err(attachment.refuse(
                "net.vlan",
                format!(
                "the VLAN sub-interface would be called {sub}, longer than the {MAX_IFNAME_BYTES} bytes Linux allows"
            ),
            ));
        }
    }
    Ok(Some(attachment))
}

/// The attachment's medium: a bridge or a macvlan parent; None if
/// neither is asked for (and no key that needs one is given).
fn medium(settings: &Settings) -> Result<Option<Medium>, KeyError> {
    Ok(Some(match (settings.get("net.bridge"), settings.get("net.parent")) {
        (Some(_), Some(parent)) => {
            return Err(refuse(parent, "only one attachment per container, and net.bridge is given too"))
        }
        (None, None) => {
            if let Some((_, companion)) = settings.iter().find(|(key, _)| COMPANION_KEYS.contains(&key.as_str())) {
                return Err(refuse(companion, "needs net.bridge or net.parent (the attachment it configures)"));
            }
            return Ok(None);
        }
        (Some(bridge), None) => {
            check_ifname(&bridge.value).map_err(|r| refuse(bridge, r))?;
            if let Some(mode) = settings.get("net.macvlan.mode") {
                return Err(refuse(mode, "applies to net.parent (macvlan), not to net.bridge"));
            }
            Medium::Bridge { bridge: bridge.value.clone() }
        }
        (None, Some(parent)) => {
            check_ifname(&parent.value).map_err(|r| refuse(parent, r))?;
            let mode = match settings.get("net.macvlan.mode") {
                None => MacvlanMode::Bridge,
                Some(mode) => macvlan_mode(&mode.value).map_err(|r| refuse(mode, r))?,
            };
            Medium::Macvlan { parent: parent.value.clone(), mode }
        }
    }))
}

/// The DHCP settings, where `net.ip` asks for DHCP.
fn dhcp_of(by_dhcp: bool, timeout: Option<&Setting>) -> Result<Option<Dhcp>, KeyError> {
    Ok(match (by_dhcp, timeout) {
        (false, Some(timeout)) => {
            return Err(refuse(timeout, "applies to net.ip=dhcp, and net.ip does not ask for DHCP"))
        }
        (false, None) => None,
        (true, timeout) => {
            Some(Dhcp { timeout_ms: timeout.map(dhcp_timeout).transpose()?.unwrap_or(DEFAULT_DHCP_TIMEOUT_MS) })
        }
    })
}

fn refuse(setting: &Setting, reason: impl Into<String>) -> KeyError {
    KeyError::new(&setting.source, &setting.value, reason)
}

/// An interface name as Linux accepts it (`dev_valid_name`), limited to
/// printable ASCII so that names stay readable in every message and file.
pub fn check_ifname(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty interface name".into());
    }
    if name.len() > MAX_IFNAME_BYTES {
        return Err(format!("interface names hold at most {MAX_IFNAME_BYTES} bytes, this one has {}", name.len()));
    }
    if name == "." || name == ".." {
        return Err("not a valid interface name".into());
    }
    if let Some(c) = name.chars().find(|c| !c.is_ascii_graphic() || *c == '/' || *c == ':') {
        return Err(format!("interface names may not contain {c:?} (no '/', ':', white space or non-ASCII)"));
    }
    Ok(())
}

fn macvlan_mode(text: &str) -> Result<MacvlanMode, String> {
    MacvlanMode::NAMES
        .iter()
        .find(|(name, _)| *name == text)
        .map(|(_, mode)| *mode)
        .ok_or_else(|| "unknown macvlan mode; use bridge, private, vepa or passthru".to_string())
}

fn vlan_id(text: &str) -> Result<u16, String> {
    match text.parse::<u16>() {
        Ok(id) if (1..=4094).contains(&id) && text.bytes().all(|b| b.is_ascii_digit()) => Ok(id),
        _ => Err("a VLAN id is a whole number from 1 to 4094".into()),
    }
}

fn list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim)
}

/// The static addresses of `net.ip`, and whether it asks for DHCP.
fn addresses(setting: &Setting) -> Result<(Vec<Cidr>, bool), KeyError> {
    let mut addresses: Vec<Cidr> = vec![];
    let mut dhcp = false;
    for item in list(&setting.value) {
        if item.eq_ignore_ascii_case("dhcp") {
            if dhcp {
                return Err(refuse(setting, "dhcp is listed twice"));
            }
            dhcp = true;
            continue;
        }
        let cidr = Cidr::parse(item).map_err(|r| refuse(setting, r))?;
        check_host_address(&cidr).map_err(|r| refuse(setting, r))?;
        if addresses.iter().any(|a| a.address == cidr.address) {
            return Err(refuse(setting, format!("{} is listed twice", cidr.address)));
        }
        addresses.push(cidr);
    }
    if let (true, Some(v4)) = (dhcp, addresses.iter().find(|a| a.address.is_ipv4())) {
        return Err(refuse(
            setting,
            format!("dhcp gives the IPv4 address, so {v4} cannot stand beside it; give static IPv6 addresses only"),
        ));
    }
    Ok((addresses, dhcp))
}

fn dhcp_timeout(setting: &Setting) -> Result<u64, KeyError> {
    let us = crate::request::units::parse_duration_us(&setting.value).map_err(|r| refuse(setting, r))?;
    let ms = us / 1000;
    if us % 1000 != 0 || !(1..=MAX_DHCP_TIMEOUT_MS).contains(&ms) {
        return Err(refuse(
            setting,
            format!("a DHCP timeout is from 1ms to {}s, in whole milliseconds", MAX_DHCP_TIMEOUT_MS / 1000),
        ));
    }
    Ok(ms)
}

fn check_host_address(cidr: &Cidr) -> Result<(), String> {
    let a = cidr.address;
    if a.is_unspecified() || a.is_loopback() || a.is_multicast() {
        return Err(format!("{a} cannot be an interface's own address (unspecified, loopback or multicast)"));
    }
    if let IpAddr::V4(v4) = a {
        if v4 == Ipv4Addr::BROADCAST {
            return Err(format!("{a} is the broadcast address"));
        }
        if cidr.prefix <= 30 && cidr.is_network() {
            return Err(format!("{cidr} is the network's own address, not a host in it"));
        }
        if cidr.prefix <= 30 && cidr.is_broadcast() {
            return Err(format!("{cidr} is the network's broadcast address, not a host in it"));
        }
    }
    Ok(())
}

fn parse_ip(setting: &Setting, text: &str) -> Result<IpAddr, KeyError> {
    text.parse().map_err(|_| refuse(setting, format!("{text:?} is not an IPv4 or IPv6 address")))
}

/// A next hop must be on the attached link: inside one of its networks (of
/// the same family), or an IPv6 link-local address.
fn check_reachable(setting: &Setting, hop: IpAddr, addresses: &[Cidr]) -> Result<(), KeyError> {
    if addresses.iter().any(|a| a.address == hop) {
        return Err(refuse(setting, format!("{hop} is one of the container's own addresses (net.ip)")));
    }
    let link_local = matches!(hop, IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80);
    if link_local || addresses.iter().any(|a| a.contains(hop)) {
        return Ok(());
    }
    Err(refuse(
        setting,
        format!("{hop} is not reachable: no net.ip address of its family has a network that contains it"),
    ))
}

fn gateways(setting: &Setting, addresses: &[Cidr]) -> Result<Vec<IpAddr>, KeyError> {
    let mut gateways: Vec<IpAddr> = vec![];
    for item in list(&setting.value) {
        let gateway = parse_ip(setting, item)?;
        if gateways.iter().any(|g| g.is_ipv4() == gateway.is_ipv4()) {
            return Err(refuse(setting, "at most one gateway per family (one IPv4, one IPv6)"));
        }
        check_reachable(setting, gateway, addresses)?;
        gateways.push(gateway);
    }
    Ok(gateways)
}

fn routes(setting: &Setting, addresses: &[Cidr]) -> Result<Vec<Route>, KeyError> {
    let mut routes: Vec<Route> = vec![];
    for item in list(&setting.value) {
        let words: Vec<&str> = item.split_whitespace().collect();
        let (destination, via) = match words.as_slice() {
            [destination] => (*destination, None),
            [destination, "via", via] => (*destination, Some(parse_ip(setting, via)?)),
            _ => return Err(refuse(setting, format!("{item:?} is not DESTINATION or DESTINATION via GATEWAY"))),
        };
        let destination = Cidr::parse(destination).map_err(|r| refuse(setting, r))?;
        if !destination.is_network() {
            return Err(refuse(
                setting,
                format!("{destination} has host bits set; a route's destination is a network"),
            ));
        }
        if destination.prefix == 0 {
            return Err(refuse(setting, "a default route is set with net.gateway"));
        }
        if let Some(via) = via {
            if !destination.same_family(via) {
                return Err(refuse(setting, format!("{destination} and its gateway {via} are of different families")));
            }
            check_reachable(setting, via, addresses)?;
        }
        if routes.iter().any(|r| r.destination == destination) {
            return Err(refuse(setting, format!("{destination} is listed twice")));
        }
        routes.push(Route { destination, via });
    }
    Ok(routes)
}

pub fn parse_mac(text: &str) -> Result<[u8; 6], String> {
    let bad = || format!("{text:?} is not a MAC address like 02:00:5e:10:00:01");
    let parts: Vec<&str> = text.split([':', '-']).collect();
    if parts.len() != 6 {
        return Err(bad());
    }
    let mut mac = [0u8; 6];
    for (byte, part) in mac.iter_mut().zip(&parts) {
        if part.len() != 2 {
            return Err(bad());
        }
        *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
    }
    if mac[0] & 1 == 1 {
        return Err("a multicast MAC (lowest bit of the first byte set) cannot be an interface's address".into());
    }
    if mac == [0; 6] {
        return Err("00:00:00:00:00:00 cannot be an interface's address".into());
    }
    Ok(mac)
}

pub fn format_mac(mac: &[u8]) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

fn mtu(setting: &Setting, addresses: &[Cidr]) -> Result<u32, KeyError> {
    let mtu = match setting.value.parse::<u32>() {
        Ok(m) if (MIN_MTU..=MAX_MTU).contains(&m) && setting.value.bytes().all(|b| b.is_ascii_digit()) => m,
        _ => return Err(refuse(setting, format!("an MTU is a whole number from {MIN_MTU} to {MAX_MTU}"))),
    };
    if mtu < MIN_IPV6_MTU && addresses.iter().any(|a| a.address.is_ipv6()) {
        return Err(refuse(
            setting,
            format!("IPv6 needs an MTU of at least {MIN_IPV6_MTU}, and net.ip has an IPv6 address"),
        ));
    }
    Ok(mtu)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::settings::from_words;

    fn attachment(words: &[&str]) -> Result<Option<Attachment>, KeyError> {
        let words: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        build(&from_words(&words).unwrap())
    }

    fn refusal(words: &[&str]) -> String {
        attachment(words).unwrap_err().to_string()
    }

    fn assert_refused(words: &[&str], key_value: &str, reason: &str) {
        let message = refusal(words);
        assert!(message.starts_with(&format!("netrt: {key_value}: ")), "{message}");
        assert!(message.contains(reason), "{message} lacks {reason:?}");
    }

    #[test]
    fn a_full_bridge_attachment() {
        let a = attachment(&[
            "net.bridge=br0",
            "net.vlan=50",
            "net.ifname=lan0",
            "net.ip=198.51.100.10/24, 2001:db8::10/64",
            "net.gateway=198.51.100.1,2001:db8::1",
            "net.routes=203.0.113.0/24 via 198.51.100.2, 2001:db8:1::/48 via 2001:db8::2, 192.0.2.0/24",
            "net.mac=02:00:5e:10:00:01",
            "net.mtu=1400",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(a.medium, Medium::Bridge { bridge: "br0".into() });
        assert_eq!((a.vlan, a.ifname.as_deref(), a.mtu), (Some(50), Some("lan0"), Some(1400)));
        assert_eq!(
            a.addresses,
            vec![Cidr::parse("198.51.100.10/24").unwrap(), Cidr::parse("2001:db8::10/64").unwrap()]
        );
        assert_eq!(a.gateways, vec!["198.51.100.1".parse::<IpAddr>().unwrap(), "2001:db8::1".parse().unwrap()]);
        assert_eq!(a.routes.len(), 3);
        assert_eq!(a.routes[2], Route { destination: Cidr::parse("192.0.2.0/24").unwrap(), via: None });
        assert_eq!(a.mac_to_set(), Some([2, 0, 0x5e, 0x10, 0, 1]));
        assert_eq!(a.vlan_interface(), None, "a bridge VLAN is a port setting, not a sub-interface");
        assert_eq!(a.lead_key(), "net.bridge");
    }

    #[test]
    fn a_macvlan_on_a_vlan() {
        let a = attachment(&["net.parent=eth1", "net.vlan=100", "net.macvlan.mode=private", "net.ip=10.0.0.5/8"])
            .unwrap()
            .unwrap();
        assert_eq!(a.medium, Medium::Macvlan { parent: "eth1".into(), mode: MacvlanMode::Private });
        assert_eq!(a.vlan_interface().as_deref(), Some("eth1.100"));
        assert_eq!(a.macvlan_lower().as_deref(), Some("eth1.100"));
        assert_eq!(a.mac_to_set(), Some([0x02, 0x42, 10, 0, 0, 5]), "derived from the IPv4 address, as Docker does");
        let plain = attachment(&["net.parent=eth1"]).unwrap().unwrap();
        assert_eq!(plain.medium, Medium::Macvlan { parent: "eth1".into(), mode: MacvlanMode::Bridge });
        assert_eq!(plain.macvlan_lower().as_deref(), Some("eth1"));
        assert_eq!(plain.mac_to_set(), None);
    }

    #[test]
    fn no_attachment_keys_no_attachment() {
        assert_eq!(attachment(&["net.egress=1mbit"]).unwrap(), None);
    }

    #[test]
    fn one_attachment_and_companions_need_one() {
        assert_refused(&["net.bridge=br0", "net.parent=eth1"], "net.parent=\"eth1\"", "only one attachment");
        for key in COMPANION_KEYS {
            assert_refused(&[&format!("{key}=1")], &format!("{key}=\"1\""), "needs net.bridge or net.parent");
        }
        assert_refused(&["NETRT_IP=10.0.0.1/8"], "NETRT_IP=\"10.0.0.1/8\"", "needs net.bridge or net.parent");
        assert_refused(&["net.bridge=br0", "net.macvlan.mode=vepa"], "net.macvlan.mode=\"vepa\"", "not to net.bridge");
    }

    #[test]
    fn a_passthru_macvlan_never_gets_a_mac_of_its_own() {
        // It would become its parent's MAC: a host interface's setting.
        assert_refused(
            &["net.parent=eth1", "net.macvlan.mode=passthru", "net.mac=02:00:5e:10:00:01"],
            "net.mac=\"02:00:5e:10:00:01\"",
            "would change the MAC of eth1",
        );
        let derived =
            attachment(&["net.parent=eth1", "net.macvlan.mode=passthru", "net.ip=10.0.0.5/8"]).unwrap().unwrap();
        assert_eq!(derived.mac_to_set(), None, "no MAC derived from the address either");
        let bridged =
            attachment(&["net.parent=eth1", "net.macvlan.mode=bridge", "net.ip=10.0.0.5/8"]).unwrap().unwrap();
        assert_eq!(bridged.mac_to_set(), Some([0x02, 0x42, 10, 0, 0, 5]));
    }

    #[test]
    fn interface_names_as_linux_takes_them() {
        for (name, reason) in [
            ("", "empty"),
            ("abcdefghijklmnop", "at most 15 bytes"),
            (".", "not a valid"),
            ("..", "not a valid"),
            ("a/b", "'/'"),
            ("a:b", "':'"),
            ("a b", "' '"),
            ("eth\u{e9}", "non-ASCII"),
        ] {
            for words in [
                vec![format!("net.bridge={name}")],
                vec![format!("net.parent={name}")],
                vec!["net.bridge=br0".to_string(), format!("net.ifname={name}")],
            ] {
                let words: Vec<&str> = words.iter().map(String::as_str).collect();
                let message = refusal(&words);
                assert!(message.contains(reason), "{words:?}: {message}");
            }
        }
        assert!(check_ifname("abcdefghijklmno").is_ok());
        assert_refused(&["net.bridge=br0", "net.ifname=lo"], "net.ifname=\"lo\"", "loopback");
    }

    #[test]
    fn vlan_ids_and_modes() {
        for bad in ["0", "4095", "-1", "+5", "1.5", "x", "65536"] {
            assert_refused(
                &["net.parent=eth1", &format!("net.vlan={bad}")],
                &format!("net.vlan=\"{bad}\""),
                "1 to 4094",
            );
        }
        assert_eq!(attachment(&["net.parent=eth1", "net.vlan=4094"]).unwrap().unwrap().vlan, Some(4094));
        assert_refused(
            &["net.parent=eth1", "net.macvlan.mode=source"],
            "net.macvlan.mode=\"source\"",
            "bridge, private, vepa or passthru",
        );
        assert_refused(&["net.parent=abcdefghijklm", "net.vlan=100"], "net.vlan=\"100\"", "abcdefghijklm.100");
    }

    #[test]
    fn addresses() {
        let bad = [
            ("198.51.100.10", "no prefix length"),
            ("198.51.100.10/33", "0 to 32"),
            ("2001:db8::1/129", "0 to 128"),
            ("198.51.100.10/x", "not a number"),
            ("198.51.100.300/24", "not an IPv4 or IPv6 address"),
            ("198.51.100.0/24", "network's own address"),
            ("198.51.100.255/24", "broadcast"),
            ("0.0.0.0/8", "unspecified"),
            ("127.0.0.2/8", "loopback"),
            ("224.0.0.1/4", "multicast"),
            ("ff02::1/64", "multicast"),
            ("::/64", "unspecified"),
            ("198.51.100.10/24,198.51.100.10/25", "listed twice"),
            ("198.51.100.10/24,", "no prefix length"),
        ];
        for (value, reason) in bad {
            assert_refused(&["net.bridge=br0", &format!("net.ip={value}")], &format!("net.ip=\"{value}\""), reason);
        }
        let a =
            attachment(&["net.bridge=br0", "net.ip=198.51.100.0/31,198.51.100.7/32,2001:db8::/64"]).unwrap().unwrap();
        assert_eq!(a.addresses.len(), 3, "/31, /32 and IPv6 subnet-router addresses are hosts");
    }

    #[test]
    fn dhcp_for_the_ipv4_address() {
        let a = attachment(&["net.bridge=br0", "net.ip=dhcp"]).unwrap().unwrap();
        assert_eq!((a.dhcp, a.addresses.len()), (Some(Dhcp { timeout_ms: DEFAULT_DHCP_TIMEOUT_MS }), 0));
        assert_eq!(a.mac_for(|| [2, 0, 0, 0, 0, 1]), Some([2, 0, 0, 0, 0, 1]), "a MAC from the container id");
        let a = attachment(&[
            "net.parent=eth1",
            "net.ip=DHCP, 2001:db8::10/64",
            "net.dhcp.timeout=1500ms",
            "net.gateway=203.0.113.1",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            (a.dhcp.unwrap().timeout_ms, a.addresses.len(), a.gateways.len()),
            (1500, 1, 1),
            "any IPv4 gateway: the subnet comes at setup"
        );
        let passthru = attachment(&["net.parent=eth1", "net.macvlan.mode=passthru", "net.ip=dhcp"]).unwrap().unwrap();
        assert_eq!(passthru.mac_for(|| [2, 0, 0, 0, 0, 1]), None, "a passthru macvlan keeps its parent's MAC");
        for (words, key_value, reason) in [
            (&["net.ip=dhcp"][..], "net.ip=\"dhcp\"", "needs net.bridge or net.parent"),
            (&["net.bridge=br0", "net.ip=dhcp,dhcp"], "net.ip=\"dhcp,dhcp\"", "dhcp is listed twice"),
            (
                &["net.bridge=br0", "net.ip=dhcp,198.51.100.10/24"],
                "net.ip=\"dhcp,198.51.100.10/24\"",
                "dhcp gives the IPv4 address",
            ),
            (&["net.bridge=br0", "net.dhcp.timeout=5s"], "net.dhcp.timeout=\"5s\"", "applies to net.ip=dhcp"),
            (&["net.bridge=br0", "net.ip=dhcp", "net.dhcp.timeout=61s"], "net.dhcp.timeout=\"61s\"", "from 1ms to 60s"),
            (&["net.bridge=br0", "net.ip=dhcp", "net.dhcp.timeout=0s"], "net.dhcp.timeout=\"0s\"", "from 1ms to 60s"),
            (&["net.bridge=br0", "net.ip=dhcp", "net.dhcp.timeout=5"], "net.dhcp.timeout=\"5\"", "needs a unit"),
        ] {
            assert_refused(words, key_value, reason);
        }
    }

    #[test]
    fn gateways_must_be_reachable_and_one_per_family() {
        let ip = "net.ip=198.51.100.10/24,2001:db8::10/64";
        for (value, reason) in [
            ("198.51.100.1,198.51.100.2", "at most one gateway per family"),
            ("203.0.113.1", "not reachable"),
            ("2001:db9::1", "not reachable"),
            ("198.51.100.10", "container's own addresses"),
            ("gw", "not an IPv4 or IPv6 address"),
        ] {
            assert_refused(
                &["net.bridge=br0", ip, &format!("net.gateway={value}")],
                &format!("net.gateway=\"{value}\""),
                reason,
            );
        }
        assert_refused(
            &["net.bridge=br0", "net.gateway=198.51.100.1"],
            "net.gateway=\"198.51.100.1\"",
            "not reachable",
        );
        let a = attachment(&["net.bridge=br0", ip, "net.gateway=fe80::1"]).unwrap().unwrap();
        assert_eq!(a.gateways.len(), 1, "an IPv6 link-local gateway is always on the link");
    }

    #[test]
    fn routes() {
        let ip = "net.ip=198.51.100.10/24,2001:db8::10/64";
        for (value, reason) in [
            ("203.0.113.5/24 via 198.51.100.1", "host bits set"),
            ("0.0.0.0/0 via 198.51.100.1", "net.gateway"),
            ("203.0.113.0/24 via 2001:db8::1", "different families"),
            ("203.0.113.0/24 via 192.0.2.1", "not reachable"),
            ("203.0.113.0/24 through 198.51.100.1", "DESTINATION via GATEWAY"),
            ("203.0.113.0/24 via", "DESTINATION via GATEWAY"),
            ("203.0.113.0/24,203.0.113.0/24", "listed twice"),
            ("203.0.113.0", "no prefix length"),
        ] {
            assert_refused(
                &["net.bridge=br0", ip, &format!("net.routes={value}")],
                &format!("net.routes=\"{value}\""),
                reason,
            );
        }
    }

    #[test]
    fn macs() {
        for (value, reason) in [
            ("01:00:5e:00:00:01", "multicast"),
            ("ff:ff:ff:ff:ff:ff", "multicast"),
            ("00:00:00:00:00:00", "00:00:00:00:00:00"),
            ("02:00:5e:10:00", "not a MAC address"),
            ("02:00:5e:10:00:0g", "not a MAC address"),
            ("2:0:5e:10:0:1", "not a MAC address"),
        ] {
            assert_refused(&["net.bridge=br0", &format!("net.mac={value}")], &format!("net.mac=\"{value}\""), reason);
        }
        assert_eq!(parse_mac("02-00-5E-10-00-01"), Ok([2, 0, 0x5e, 0x10, 0, 1]));
        assert_eq!(format_mac(&[2, 0, 0x5e, 0x10, 0, 1]), "02:00:5e:10:00:01");
    }

    #[test]
    fn mtus() {
        for value in ["67", "65536", "0", "-1", "1500.5", "+1500", "big"] {
            assert_refused(
                &["net.bridge=br0", &format!("net.mtu={value}")],
                &format!("net.mtu=\"{value}\""),
                "68 to 65535",
            );
        }
        assert_refused(
            &["net.bridge=br0", "net.ip=2001:db8::1/64", "net.mtu=1000"],
            "net.mtu=\"1000\"",
            "IPv6 needs an MTU",
        );
        assert_eq!(attachment(&["net.bridge=br0", "net.mtu=68"]).unwrap().unwrap().mtu, Some(68));
    }

    #[test]
    fn cidr_arithmetic() {
        let net = Cidr::parse("198.51.100.0/24").unwrap();
        assert!(net.contains("198.51.100.77".parse().unwrap()));
        assert!(!net.contains("198.51.101.1".parse().unwrap()));
        assert!(!net.contains("2001:db8::1".parse().unwrap()));
        assert!(net.covers(&Cidr::parse("198.51.100.10/25").unwrap()));
        assert!(!net.covers(&Cidr::parse("198.51.100.10/16").unwrap()));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains("203.0.113.1".parse().unwrap()));
        assert!(Cidr::parse("2001:db8::/32").unwrap().contains("2001:db8:ffff::1".parse().unwrap()));
        let json = serde_json::to_string(&net).unwrap();
        assert_eq!(json, "\"198.51.100.0/24\"");
        assert_eq!(serde_json::from_str::<Cidr>(&json).unwrap(), net);
    }
}
