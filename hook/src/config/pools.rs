//! Address pools and the registry as the admin writes them in
//! `/etc/netrt/netrt.json`, parsed and checked, and what a
//! container's `net.pool` expands to. Pure: nothing here touches the host.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, KeyError, Result};
use crate::request::attachment::Cidr;
use crate::request::settings::{Setting, Settings};
use crate::request::units;

pub const DEFAULT_PREFIX: &str = "/netrt/";
pub const DEFAULT_TIMEOUT_MS: u64 = 2_000;

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryFile {
    pub etcd: Option<EtcdFile>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdFile {
    pub endpoints: Vec<String>,
    pub prefix: Option<String>,
    pub timeout: Option<String>,
    pub ca: Option<String>,
    pub cert: Option<String>,
    pub key: Option<String>,
    pub user: Option<String>,
    pub password_file: Option<String>,
    pub node_ttl: Option<String>,
    pub reclaim_after: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolFile {
    pub bridge: Option<String>,
    pub parent: Option<String>,
    pub vlan: Option<u16>,
    pub macvlan_mode: Option<String>,
    #[serde(default)]
    pub subnets: Vec<String>,
    pub ranges: Option<Vec<String>>,
    #[serde(default)]
    pub gateways: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
    /// The Kubernetes namespaces whose pods may use the pool as a network;
    /// `["*"]`: all. None: no pod.
    pub namespaces: Option<Vec<String>>,
    /// Whether a pod may ask for an address of the pool's ranges itself.
    #[serde(rename = "static")]
    pub static_addresses: Option<bool>,
    /// Whether a pod may ask for `net.ip=dhcp` on the pool's attachment.
    pub dhcp: Option<bool>,
    /// The highest limit and guarantee a container on the pool may ask for.
    pub max_rate: Option<String>,
    pub max_guarantee: Option<String>,
    /// How long the LAN is asked whether anything holds an address before
    /// a container gets it; "0": not asked.
    pub probe: Option<String>,
}

/// The registry a node keeps its claims in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registry {
    /// Claims host-wide, under `/var/lib/netrt/pools`.
    Host,
    Etcd(Etcd),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Etcd {
    pub endpoints: Vec<String>,
    pub prefix: String,
    pub timeout_ms: u64,
    pub ca: Option<String>,
    pub cert: Option<String>,
    pub key: Option<String>,
    pub user: Option<String>,
    pub password_file: Option<String>,
    /// How long a node's liveness key outlives its last refresh, in seconds.
    pub node_ttl_s: i64,
    /// How long a node's liveness must have been gone before other nodes
    /// take its addresses back; None: never.
    pub reclaim_after_s: Option<u64>,
}

/// The longest a pool's probe may take: a setup waits for it.
pub const MAX_PROBE_MS: u64 = 2_000;

/// A node's liveness lasts this long after its last refresh by default:
/// three of the renewal timer's 30 s periods.
pub const DEFAULT_NODE_TTL_S: i64 = 90;

/// An inclusive span of addresses of one family, as numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span {
    pub v6: bool,
    pub first: u128,
    pub last: u128,
}

impl Span {
    pub fn contains(&self, address: IpAddr) -> bool {
        address.is_ipv6() == self.v6 && (self.first..=self.last).contains(&number(address))
    }

    pub fn count(&self) -> u128 {
        self.last - self.first + 1
    }
}

impl std::fmt::Display for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.first == self.last {
            write!(f, "{}", address(self.v6, self.first))
        } else {
            write!(f, "{}-{}", address(self.v6, self.first), address(self.v6, self.last))
        }
    }
}

pub fn number(address: IpAddr) -> u128 {
    match address {
        IpAddr::V4(a) => u32::from(a) as u128,
        IpAddr::V6(a) => u128::from(a),
    }
}

pub fn address(v6: bool, n: u128) -> IpAddr {
    if v6 {
        IpAddr::V6(n.into())
    } else {
        IpAddr::V4((n as u32).into())
    }
}

/// How a pool's containers are attached on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolAttachment {
    pub bridge: Option<String>,
    pub parent: Option<String>,
    pub vlan: Option<u16>,
    pub macvlan_mode: Option<String>,
}

/// What every node using a pool must agree on: registered in the registry
/// by the first node, compared by every other.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Addressing {
    pub subnets: Vec<String>,
    pub ranges: Vec<String>,
    pub gateways: Vec<String>,
    pub exclude: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    pub name: String,
    pub attachment: PoolAttachment,
    pub subnets: Vec<Cidr>,
    /// Where allocation looks, in order, per family.
    pub ranges: Vec<Span>,
    pub gateways: Vec<IpAddr>,
    pub exclude: Vec<Span>,
    /// Who may use the pool as a network, and what a pod may add in it.
    pub open: Openness,
    /// The rates a container on the pool may ask for.
    pub bounds: Bounds,
    /// How long the LAN is asked about an address before it is given; 0: not.
    pub probe_ms: u32,
}

/// The highest limit and guarantee on a network (bit/s); None: no bound.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bounds {
    pub max_rate_bps: Option<u64>,
    pub max_guarantee_bps: Option<u64>,
}

impl Bounds {
    /// Refuses a limit or guarantee above the pool's bounds.
    pub fn check(&self, plan: &crate::request::plan::Plan, pool: &str, path: &str) -> Result<(), KeyError> {
        let rates = plan.shapers().map(|s| (s.rate_bps, &s.rate_source, &s.rate_value, "max_rate", self.max_rate_bps));
        let floors =
            plan.guarantees().map(|g| (g.rate_bps, &g.source, &g.value, "max_guarantee", self.max_guarantee_bps));
        for (rate, source, value, field, max) in rates.chain(floors) {
            if let Some(max) = max.filter(|max| rate > *max) {
                let reason = format!(
                    "above network {pool}'s {field} of {} ({field} of pool {pool} in {path})",
                    units::format_rate(max)
                );
                return Err(KeyError::new(source, value, reason));
            }
        }
        Ok(())
    }
}

/// The pods a pool is open to as a network, and what they may ask for in it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Openness {
    /// None: no pod; a list holding "*": every namespace.
    pub namespaces: Option<Vec<String>>,
    pub static_addresses: bool,
    pub dhcp: bool,
}

impl Openness {
    pub fn admits(&self, namespace: Option<&str>) -> bool {
        let Some(open) = &self.namespaces else { return false };
        open.iter().any(|n| n == "*" || Some(n.as_str()) == namespace)
    }
}

/// Pools and the registry of this node, from the configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pools {
    /// The configuration file, for messages.
    pub path: String,
    pub node: String,
    pub registry: Registry,
    pub pools: BTreeMap<String, Pool>,
}

impl Default for Pools {
    fn default() -> Self {
        Pools {
            path: crate::config::file::CONFIG_PATH.into(),
            node: String::new(),
            registry: Registry::Host,
            pools: BTreeMap::new(),
        }
    }
}

impl crate::request::plan::PoolResolver for Pools {
    fn expand(&self, settings: &Settings) -> std::result::Result<(Settings, Vec<Cidr>), KeyError> {
        Pools::expand(self, settings)
    }
}

/// A pool or node name: safe in a file name and an etcd key.
pub fn check_name(name: &str) -> std::result::Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name != "."
        && name != ".."
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!("{name:?} is not a name netrt accepts (letters, digits, _ . -, at most 64)"))
    }
}

/// This machine's host name, the default node name, made a name netrt
/// accepts: a host name nobody set reads `(none)`, and a host without pools
/// must never be refused for its name.
pub fn host_name() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    node_name_of(name.trim())
}

fn node_name_of(host_name: &str) -> String {
    let name: String = host_name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || "_.-".contains(c) { c } else { '-' })
        .take(64)
        .collect();
    if check_name(&name).is_ok() {
        name
    } else {
        "localhost".into()
    }
}

impl Pools {
    pub fn from_file(
        path: &str,
        node: Option<String>,
        registry: Option<RegistryFile>,
        pools: BTreeMap<String, PoolFile>,
    ) -> Result<Pools> {
        let bad = |what: String, reason: String| Error::Input(format!("{path}: {what}: {reason}"));
        let node = node.unwrap_or_else(host_name);
        check_name(&node).map_err(|e| bad("node".into(), e))?;
        let registry = match registry.and_then(|r| r.etcd) {
            None => Registry::Host,
            Some(etcd) => Registry::Etcd(parse_etcd(etcd).map_err(|e| bad("registry.etcd".into(), e))?),
        };
        let mut parsed: BTreeMap<String, Pool> = BTreeMap::new();
        for (name, file) in pools {
            let pool = parse_pool(&name, file).map_err(|e| bad(format!("pools.{name}"), e))?;
            for other in parsed.values() {
                for subnet in &pool.subnets {
                    if let Some(theirs) = other.subnets.iter().find(|s| s.covers(subnet) || subnet.covers(s)) {
                        return Err(bad(
                            format!("pools.{name}"),
                            format!(
                                "subnet {subnet} overlaps pool {}'s {theirs}; an address must belong to one pool",
                                other.name
                            ),
                        ));
                    }
                }
            }
            parsed.insert(name, pool);
        }
        Ok(Pools { path: path.to_string(), node, registry, pools: parsed })
    }

    /// The pool whose subnet holds `address`.
    pub fn pool_of(&self, address: IpAddr) -> Option<&Pool> {
        self.pools.values().find(|p| p.subnet_of(address).is_some())
    }

    pub fn get(&self, name: &str) -> Option<&Pool> {
        self.pools.get(name)
    }

    /// A refusal for an unknown pool name.
    pub fn unknown(&self, name: &str) -> String {
        if self.pools.is_empty() {
            format!("no pool {name} is defined: {} has no pools", self.path)
        } else {
            let names: Vec<&str> = self.pools.keys().map(String::as_str).collect();
            format!("no pool {name} is defined in {} (pools: {})", self.path, names.join(", "))
        }
    }

    /// The settings with `net.pool` resolved: the pool's attachment and
    /// gateways added as settings of their own (named after the pool in
    /// messages), and the pool's subnets as the networks its addresses will
    /// come from. A given attachment key that differs from the pool's, or a
    /// `net.ip` outside the pool, is refused.
    pub fn expand(&self, settings: &Settings) -> std::result::Result<(Settings, Vec<Cidr>), KeyError> {
        let Some(given) = settings.get("net.pool") else {
            return Ok((settings.clone(), vec![]));
        };
        let refuse = |setting: &Setting, reason: String| KeyError::new(&setting.source, &setting.value, reason);
        let pool = self.get(&given.value).ok_or_else(|| refuse(given, self.unknown(&given.value)))?;
        let name = &pool.name;
        let mut expanded = settings.clone();
        let a = &pool.attachment;
        let gateways: Vec<String> = pool.gateways.iter().map(IpAddr::to_string).collect();
        let derived = [
            ("net.bridge", "bridge", a.bridge.clone()),
            ("net.parent", "parent", a.parent.clone()),
            ("net.vlan", "vlan", a.vlan.map(|v| v.to_string())),
            ("net.macvlan.mode", "macvlan_mode", a.macvlan_mode.clone()),
            ("net.gateway", "gateways", (!gateways.is_empty()).then(|| gateways.join(","))),
        ];
        for (key, field, value) in derived {
            match (settings.get(key), value) {
                (Some(user), Some(value)) => {
                    if !same_list(&user.value, &value) {
                        return Err(refuse(
                            user,
                            format!("differs from pool {name}'s {field} ({value}); leave it out or use the pool's"),
                        ));
                    }
                    // The user's own setting stays, and names itself in messages.
                }
                (Some(user), None) => {
                    let what =
                        if key == "net.gateway" { "has no gateways".to_string() } else { format!("has no {field}") };
                    return Err(refuse(
                        user,
                        format!("pool {name} {what}; its attachment and routes come from {}", self.path),
                    ));
                }
                (None, Some(value)) => {
                    expanded.insert(key.to_string(), Setting { source: format!("net.pool={name}'s {field}"), value });
                }
                (None, None) => {}
            }
        }
        if let Some(ips) = settings.get("net.ip") {
            for item in ips.value.split(',').map(str::trim) {
                let Ok(cidr) = Cidr::parse(item) else { continue };
                pool.check_static(&cidr).map_err(|reason| refuse(ips, reason))?;
            }
        }
        Ok((expanded, pool.subnets.clone()))
    }
}

fn same_list(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        let mut items: Vec<String> = s.split(',').map(|i| i.trim().to_string()).collect();
        items.sort();
        items
    };
    norm(a) == norm(b)
}

impl Pool {
    pub fn subnet_of(&self, address: IpAddr) -> Option<&Cidr> {
        self.subnets.iter().find(|s| s.contains(address))
    }

    pub fn ranges_of(&self, v6: bool) -> impl Iterator<Item = &Span> {
        self.ranges.iter().filter(move |r| r.v6 == v6)
    }

    /// Whether `address` lies in one of the pool's ranges.
    pub fn in_ranges(&self, address: IpAddr) -> bool {
        let n = number(address);
        self.ranges_of(address.is_ipv6()).any(|r| r.first <= n && n <= r.last)
    }

    pub fn is_excluded(&self, address: IpAddr) -> bool {
        self.gateways.contains(&address) || self.exclude.iter().any(|e| e.contains(address))
    }

    /// Whether a container may have this address of the pool's subnet: not
    /// a gateway, not excluded, with the subnet's prefix.
    pub fn check_static(&self, cidr: &Cidr) -> std::result::Result<(), String> {
        let name = &self.name;
        let family_subnet = self.subnets.iter().find(|s| s.same_family(cidr.address));
        let Some(subnet) = family_subnet else { return Ok(()) };
        if !subnet.contains(cidr.address) {
            return Err(format!("{} is outside pool {name}'s subnet {subnet}", cidr.address));
        }
        if cidr.prefix != subnet.prefix {
            return Err(format!("{cidr} has another prefix length than pool {name}'s subnet {subnet}"));
        }
        if self.gateways.contains(&cidr.address) {
            return Err(format!("{} is pool {name}'s gateway", cidr.address));
        }
        if self.exclude.iter().any(|e| e.contains(cidr.address)) {
            return Err(format!("{} is excluded from pool {name}", cidr.address));
        }
        Ok(())
    }

    /// How many addresses allocation may give in this family.
    pub fn size(&self, v6: bool) -> u128 {
        self.ranges_of(v6).map(Span::count).sum()
    }

    pub fn addressing(&self) -> Addressing {
        let strings = |spans: &[Span]| spans.iter().map(Span::to_string).collect();
        Addressing {
            subnets: self.subnets.iter().map(Cidr::to_string).collect(),
            ranges: strings(&self.ranges),
            gateways: self.gateways.iter().map(IpAddr::to_string).collect(),
            exclude: strings(&self.exclude),
        }
    }

    pub fn describe_ranges(&self) -> String {
        self.ranges.iter().map(Span::to_string).collect::<Vec<_>>().join(", ")
    }
}

fn parse_etcd(file: EtcdFile) -> std::result::Result<Etcd, String> {
    if file.endpoints.is_empty() {
        return Err("endpoints is empty; name at least one etcd member, e.g. https://10.0.0.5:2379".into());
    }
    for endpoint in &file.endpoints {
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(format!("endpoint {endpoint:?} needs http:// or https://"));
        }
    }
    let prefix = file.prefix.unwrap_or_else(|| DEFAULT_PREFIX.into());
    if !prefix.ends_with('/') {
        return Err(format!("prefix {prefix:?} must end with /"));
    }
    let timeout_ms = match file.timeout {
        None => DEFAULT_TIMEOUT_MS,
        Some(t) => match units::parse_duration_us(&t) {
            Ok(us) if (10_000..=60_000_000).contains(&us) => us / 1000,
            Ok(_) => return Err(format!("timeout {t:?} must be between 10ms and 60s")),
            Err(e) => return Err(format!("timeout {t:?}: {e}")),
        },
    };
    if file.cert.is_some() != file.key.is_some() {
        return Err("cert and key go together (a client certificate and its key)".into());
    }
    if file.user.is_some() != file.password_file.is_some() {
        return Err("user and password_file go together".into());
    }
    if let Some(user) = &file.user {
        if let Some(plain) = file.endpoints.iter().find(|e| e.starts_with("http://")) {
            return Err(format!("user {user:?}: a password goes only over https, and endpoint {plain} is http"));
        }
        if file.ca.is_none() {
            return Err(format!(
                "user {user:?}: a password goes only to members whose certificate netrt checks: name their ca"
            ));
        }
    }
    if file.key.is_some() {
        if let Some(plain) = file.endpoints.iter().find(|e| e.starts_with("http://")) {
            return Err(format!("key: a client certificate is used only over https, and endpoint {plain} is http"));
        }
    }
    for (field, path) in [("key", &file.key), ("password_file", &file.password_file)] {
        if let Some(path) = path {
            check_secret(field, path)?;
        }
    }
    let node_ttl_s = match file.node_ttl {
        None => DEFAULT_NODE_TTL_S,
        Some(t) => match units::parse_duration_us(&t) {
            Ok(us) if (2_000_000..=3_600_000_000).contains(&us) => (us / 1_000_000) as i64,
            Ok(_) => return Err(format!("node_ttl {t:?} must be between 2s and 1h")),
            Err(e) => return Err(format!("node_ttl {t:?}: {e}")),
        },
    };
    let reclaim_after_s = match file.reclaim_after.as_deref() {
        None | Some("0") | Some("off") => None,
        Some(t) => match units::parse_duration_us(t) {
            Ok(us) if (1_000_000..=30 * 86_400_000_000).contains(&us) => Some(us / 1_000_000),
            Ok(_) => return Err(format!("reclaim_after {t:?} must be between 1s and 30 days (or \"off\")")),
            Err(e) => return Err(format!("reclaim_after {t:?}: {e}")),
        },
    };
    Ok(Etcd {
        endpoints: file.endpoints,
        node_ttl_s,
        reclaim_after_s,
        prefix,
        timeout_ms,
        ca: file.ca,
        cert: file.cert,
        key: file.key,
        user: file.user,
        password_file: file.password_file,
    })
}

/// A file that holds a secret (a client key, a password) must be root's
/// alone: anyone else who can read it can act as this node in etcd, and
/// anyone who can write it can choose who the node talks to.
fn check_secret(field: &str, path: &str) -> std::result::Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        // Said when the registry is used, as any file it cannot read.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("{field} {path}: cannot be read ({e})")),
    };
    match secret_problem(meta.uid(), meta.mode()) {
        Some(problem) => Err(format!("{field} {path}: {problem}")),
        None => Ok(()),
    }
}

fn secret_problem(uid: u32, mode: u32) -> Option<String> {
    if uid != 0 {
        return Some(format!("owned by uid {uid}, not root: a secret netrt uses must be root's (chown root)"));
    }
    (mode & 0o077 != 0).then(|| {
        format!("mode {:04o} lets group or others at it: a secret must be root's alone (chmod 600)", mode & 0o7777)
    })
}

fn parse_address(text: &str) -> std::result::Result<IpAddr, String> {
    text.trim().parse().map_err(|_| format!("{text:?} is not an IPv4 or IPv6 address"))
}

/// `A-B` or `A`, both ends of one family, not backwards.
pub fn parse_span(text: &str) -> std::result::Result<Span, String> {
    let (first, last) = match text.split_once('-') {
        Some((a, b)) => (parse_address(a)?, parse_address(b)?),
        None => (parse_address(text)?, parse_address(text)?),
    };
    if first.is_ipv6() != last.is_ipv6() {
        return Err(format!("{text:?} mixes IPv4 and IPv6"));
    }
    let span = Span { v6: first.is_ipv6(), first: number(first), last: number(last) };
    if span.first > span.last {
        return Err(format!("{text:?} runs backwards"));
    }
    Ok(span)
}

fn parse_pool(name: &str, file: PoolFile) -> std::result::Result<Pool, String> {
    check_name(name)?;
    let attachment = pool_attachment(&file)?;
    let subnets = subnets_of(&file.subnets)?;
    let in_subnet = |what: &str, span: &Span, text: &str| -> std::result::Result<(), String> {
        let inside =
            subnets.iter().any(|s| s.contains(address(span.v6, span.first)) && s.contains(address(span.v6, span.last)));
        if inside {
            Ok(())
        } else {
            Err(format!("{what} {text:?} is not inside the pool's subnets"))
        }
    };
    let mut gateways: Vec<IpAddr> = vec![];
    for text in &file.gateways {
        let gateway = parse_address(text).map_err(|e| format!("gateway: {e}"))?;
        in_subnet("gateway", &Span { v6: gateway.is_ipv6(), first: number(gateway), last: number(gateway) }, text)?;
        if gateways.iter().any(|g| g.is_ipv4() == gateway.is_ipv4()) {
            return Err("at most one gateway per family".into());
        }
        gateways.push(gateway);
    }
    let mut exclude = vec![];
    for text in &file.exclude {
        let span = parse_span(text).map_err(|e| format!("exclude: {e}"))?;
        in_subnet("exclude", &span, text)?;
        exclude.push(span);
    }
    let ranges = match &file.ranges {
        Some(texts) => ranges_of(texts, &subnets, &in_subnet)?,
        None => subnets
            .iter()
            .map(|s| {
                let (network, broadcast) = ends_of(s);
                let v6 = s.address.is_ipv6();
                // IPv6 has no broadcast, but the subnet-router anycast address is the network's.
                Span { v6, first: network + 1, last: if v6 { broadcast } else { broadcast - 1 } }
            })
            .collect(),
    };
    let open = openness(&file)?;
    let rate = |field: &str, text: &Option<String>| {
        text.as_ref().map(|t| units::parse_rate(t).map_err(|e| format!("{field} {t:?}: {e}"))).transpose()
    };
    let bounds = Bounds {
        max_rate_bps: rate("max_rate", &file.max_rate)?,
        max_guarantee_bps: rate("max_guarantee", &file.max_guarantee)?,
    };
    let probe_ms = match file.probe.as_deref() {
        None | Some("0") => 0,
        Some(t) => match units::parse_duration_us(t) {
            Ok(us) if us <= MAX_PROBE_MS * 1000 => (us / 1000) as u32,
            Ok(_) => return Err(format!("probe {t:?} is longer than 2s (how long a setup waits for the LAN)")),
            Err(e) => return Err(format!("probe {t:?}: {e}")),
        },
    };
    Ok(Pool { name: name.to_string(), attachment, subnets, ranges, gateways, exclude, open, bounds, probe_ms })
}

/// Which pods may use the pool, and what they may add.
fn openness(file: &PoolFile) -> std::result::Result<Openness, String> {
    for namespace in file.namespaces.iter().flatten() {
        let valid = namespace == "*"
            || (!namespace.is_empty()
                && namespace.len() <= 63
                && namespace.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
        if !valid {
            return Err(format!("namespaces: {namespace:?} is not a Kubernetes namespace name (or \"*\")"));
        }
    }
    Ok(Openness {
        namespaces: file.namespaces.clone(),
        static_addresses: file.static_addresses.unwrap_or(false),
        dhcp: file.dhcp.unwrap_or(false),
    })
}

/// How a pool's containers are attached: a bridge, or a macvlan parent.
fn pool_attachment(file: &PoolFile) -> std::result::Result<PoolAttachment, String> {
    let attachment = match (&file.bridge, &file.parent) {
        (Some(_), Some(_)) => return Err("bridge and parent both given; a pool has one attachment".into()),
        (None, None) => return Err("needs bridge or parent (how its containers are attached)".into()),
        (Some(bridge), None) => {
            crate::request::attachment::check_ifname(bridge).map_err(|e| format!("bridge {bridge:?}: {e}"))?;
            if file.macvlan_mode.is_some() {
                return Err("macvlan_mode applies to parent, not to bridge".into());
            }
            PoolAttachment { bridge: Some(bridge.clone()), parent: None, vlan: file.vlan, macvlan_mode: None }
        }
        (None, Some(parent)) => {
            crate::request::attachment::check_ifname(parent).map_err(|e| format!("parent {parent:?}: {e}"))?;
            let macvlan_mode = file.macvlan_mode.clone();
            PoolAttachment { bridge: None, parent: Some(parent.clone()), vlan: file.vlan, macvlan_mode }
        }
    };
    if let Some(vlan) = file.vlan {
        if !(1..=4094).contains(&vlan) {
            return Err(format!("vlan {vlan} is not from 1 to 4094"));
        }
    }
    Ok(attachment)
}

/// A pool's subnets: networks, at most one per family, room for containers.
fn subnets_of(texts: &[String]) -> std::result::Result<Vec<Cidr>, String> {
    if texts.is_empty() {
        return Err("subnets is empty; a pool needs one subnet per family it gives (at most one IPv4, one IPv6)".into());
    }
    let mut subnets: Vec<Cidr> = vec![];
    for text in texts {
        let subnet = Cidr::parse(text).map_err(|e| format!("subnet {text:?}: {e}"))?;
        if !subnet.is_network() {
            return Err(format!("subnet {text:?} has host bits set; a subnet is a network"));
        }
        if subnets.iter().any(|s| s.same_family(subnet.address)) {
            return Err("at most one subnet per family (one IPv4, one IPv6)".into());
        }
        let max = if subnet.address.is_ipv4() { 30 } else { 126 };
        if subnet.prefix > max {
            return Err(format!("subnet {text:?} is too small for containers (at most /{max})"));
        }
        subnets.push(subnet);
    }
    Ok(subnets)
}

/// The ranges a pool gives from: inside its subnets, without their network
/// or broadcast address, not overlapping, one at least per subnet.
fn ranges_of(
    texts: &[String],
    subnets: &[Cidr],
    in_subnet: &dyn Fn(&str, &Span, &str) -> std::result::Result<(), String>,
) -> std::result::Result<Vec<Span>, String> {
    let mut ranges: Vec<Span> = vec![];
    for text in texts {
        let span = parse_span(text).map_err(|e| format!("range: {e}"))?;
        in_subnet("range", &span, text)?;
        let subnet = subnets.iter().find(|s| s.contains(address(span.v6, span.first))).expect("checked above");
        let (network, broadcast) = ends_of(subnet);
        if !span.v6 && (span.first == network || span.last == broadcast) {
            return Err(format!("range {text:?} holds the network or broadcast address of {subnet}"));
        }
        if ranges.iter().any(|r| r.v6 == span.v6 && r.first <= span.last && span.first <= r.last) {
            return Err(format!("range {text:?} overlaps another range"));
        }
        ranges.push(span);
    }
    for subnet in subnets {
        if !ranges.iter().any(|r| r.v6 == subnet.address.is_ipv6()) {
            return Err(format!("subnet {subnet} has no range; give one or leave ranges out"));
        }
    }
    ranges.sort();
    Ok(ranges)
}

/// A subnet's first and last address, as numbers.
fn ends_of(subnet: &Cidr) -> (u128, u128) {
    let width = if subnet.address.is_ipv4() { 32 } else { 128 };
    let host_bits = width - subnet.prefix as u32;
    let network = number(subnet.address);
    let span = if host_bits == 128 { u128::MAX } else { (1u128 << host_bits) - 1 };
    (network, network + span)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn pools(json: &str) -> Result<Pools> {
        #[derive(Deserialize)]
        struct File {
            node: Option<String>,
            registry: Option<RegistryFile>,
            #[serde(default)]
            pools: BTreeMap<String, PoolFile>,
        }
        let file: File = serde_json::from_str(json).map_err(|e| Error::Input(e.to_string()))?;
        Pools::from_file("/etc/netrt/netrt.json", file.node, file.registry, file.pools)
    }

    const SPEC_EXAMPLE: &str = r#"{
      "node": "host-a",
      "registry": { "etcd": { "endpoints": ["https://10.0.0.5:2379", "https://10.0.0.6:2379"],
                              "prefix": "/netrt/", "timeout": "2s",
                              "ca": "/etc/netrt/etcd-ca.pem", "cert": "c.pem", "key": "k.pem" } },
      "pools": {
        "lan": { "bridge": "br0",
                 "subnets": ["198.51.100.0/24", "2001:db8:1::/64"],
                 "ranges": ["198.51.100.100-198.51.100.199", "2001:db8:1::100-2001:db8:1::1ff"],
                 "gateways": ["198.51.100.1", "2001:db8:1::1"],
                 "exclude": ["198.51.100.150"] },
        "vlan50": { "parent": "eth1", "vlan": 50, "subnets": ["203.0.113.0/24"], "gateways": ["203.0.113.1"] }
      }
    }"#;

    #[test]
    fn the_spec_example_parses() {
        let p = pools(SPEC_EXAMPLE).unwrap();
        assert_eq!(p.node, "host-a");
        let Registry::Etcd(etcd) = &p.registry else { panic!("etcd") };
        assert_eq!((etcd.timeout_ms, etcd.prefix.as_str()), (2000, "/netrt/"));
        let lan = p.get("lan").unwrap();
        assert_eq!(lan.size(false), 100);
        assert_eq!(lan.size(true), 256);
        assert_eq!(lan.describe_ranges(), "198.51.100.100-198.51.100.199, 2001:db8:1::100-2001:db8:1::1ff");
        let vlan50 = p.get("vlan50").unwrap();
        assert_eq!(
            vlan50.ranges,
            vec![parse_span("203.0.113.1-203.0.113.254").unwrap()],
            "default: the subnet less network and broadcast"
        );
        assert!(vlan50.is_excluded("203.0.113.1".parse().unwrap()), "gateways are never given");
        assert_eq!(p.pool_of("198.51.100.7".parse().unwrap()).map(|p| p.name.as_str()), Some("lan"));
        assert_eq!(p.pool_of("192.0.2.7".parse().unwrap()), None);
    }

    #[test]
    fn any_host_name_makes_a_node_name() {
        assert_eq!(node_name_of("host-a.example.org"), "host-a.example.org");
        assert_eq!(node_name_of("(none)"), "-none-");
        assert_eq!(node_name_of(""), "localhost");
        assert_eq!(node_name_of(".."), "localhost");
        assert_eq!(node_name_of(&"h".repeat(100)).len(), 64);
        assert!(pools("{}").is_ok(), "whatever this machine's host name");
    }

    #[test]
    fn a_secret_file_must_be_roots_alone() {
        assert_eq!(secret_problem(0, 0o100600), None);
        assert_eq!(secret_problem(0, 0o100400), None);
        let open = secret_problem(0, 0o100644).unwrap();
        assert!(open.starts_with("mode 0644 lets group or others at it"), "{open}");
        assert!(secret_problem(0, 0o100660).is_some() && secret_problem(0, 0o100601).is_some());
        assert!(secret_problem(1000, 0o100600).unwrap().starts_with("owned by uid 1000, not root"));
    }

    #[test]
    fn bad_pools_are_refused_naming_the_field() {
        for (json, needle) in [
            (r#"{"pools": {"a": {"subnets": ["198.51.100.0/24"]}}}"#, "needs bridge or parent"),
            (r#"{"pools": {"a": {"bridge": "b", "parent": "p", "subnets": ["198.51.100.0/24"]}}}"#, "one attachment"),
            (r#"{"pools": {"a": {"bridge": "b", "subnets": []}}}"#, "subnets is empty"),
            (r#"{"pools": {"a": {"bridge": "b", "subnets": ["198.51.100.1/24"]}}}"#, "host bits"),
            (
                r#"{"pools": {"a": {"bridge": "b", "subnets": ["198.51.100.0/24", "203.0.113.0/24"]}}}"#,
                "one subnet per family",
            ),
            (
                r#"{"pools": {"a": {"bridge": "b", "subnets": ["198.51.100.0/24"], "ranges": ["198.51.100.9-198.51.100.2"]}}}"#,
                "backwards",
            ),
            (
                r#"{"pools": {"a": {"bridge": "b", "subnets": ["198.51.100.0/24"], "ranges": ["203.0.113.2"]}}}"#,
                "not inside",
            ),
            (
                r#"{"pools": {"a": {"bridge": "b", "subnets": ["198.51.100.0/24"], "ranges": ["198.51.100.0-198.51.100.9"]}}}"#,
                "network or broadcast",
            ),
            (
                r#"{"pools": {"a": {"bridge": "b", "subnets": ["198.51.100.0/24"], "gateways": ["203.0.113.1"]}}}"#,
                "gateway",
            ),
            (
                r#"{"pools": {"a": {"bridge": "b", "subnets": ["198.51.100.0/24"]}, "b": {"bridge": "c", "subnets": ["198.51.100.128/25"]}}}"#,
                "overlaps pool a",
            ),
            (r#"{"pools": {"a/b": {"bridge": "b", "subnets": ["198.51.100.0/24"]}}}"#, "not a name"),
            (r#"{"registry": {"etcd": {"endpoints": []}}}"#, "endpoints is empty"),
            (r#"{"registry": {"etcd": {"endpoints": ["10.0.0.5:2379"]}}}"#, "needs http"),
            (r#"{"registry": {"etcd": {"endpoints": ["http://a:1"], "timeout": "5"}}}"#, "timeout"),
            (
                r#"{"registry": {"etcd": {"endpoints": ["http://a:1"], "node_ttl": "1s"}}}"#,
                "node_ttl \"1s\" must be between 2s and 1h",
            ),
            (r#"{"registry": {"etcd": {"endpoints": ["http://a:1"], "cert": "c"}}}"#, "go together"),
            (
                r#"{"registry": {"etcd": {"endpoints": ["https://a:1", "http://b:1"], "ca": "ca.pem", "user": "n", "password_file": "p"}}}"#,
                "user \"n\": a password goes only over https, and endpoint http://b:1 is http",
            ),
            (
                r#"{"registry": {"etcd": {"endpoints": ["http://a:1"], "cert": "c", "key": "k"}}}"#,
                "key: a client certificate is used only over https, and endpoint http://a:1 is http",
            ),
            (
                r#"{"registry": {"etcd": {"endpoints": ["https://a:1"], "user": "n", "password_file": "p"}}}"#,
                "a password goes only to members whose certificate netrt checks: name their ca",
            ),
        ] {
            let message = pools(json).unwrap_err().to_string();
            assert!(message.contains(needle), "{json}: {message}");
        }
    }

    fn words(items: &[&str]) -> Settings {
        crate::request::settings::from_words(&items.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn a_pool_expands_to_its_attachment_and_gateways() {
        let p = pools(SPEC_EXAMPLE).unwrap();
        let (settings, subnets) = p.expand(&words(&["net.pool=lan"])).unwrap();
        assert_eq!(settings["net.bridge"].value, "br0");
        assert_eq!(settings["net.bridge"].source, "net.pool=lan's bridge");
        assert_eq!(settings["net.gateway"].value, "198.51.100.1,2001:db8:1::1");
        assert_eq!(subnets.len(), 2);
        let (settings, _) = p.expand(&words(&["net.pool=vlan50", "net.parent=eth1"])).unwrap();
        assert_eq!((settings["net.vlan"].value.as_str(), settings["net.parent"].source.as_str()), ("50", "net.parent"));
    }

    #[test]
    fn expansion_refuses_what_differs_from_the_pool() {
        let p = pools(SPEC_EXAMPLE).unwrap();
        let refusal = |items: &[&str]| p.expand(&words(items)).unwrap_err().to_string();
        assert_eq!(
            refusal(&["net.pool=wan"]),
            "netrt: net.pool=\"wan\": no pool wan is defined in /etc/netrt/netrt.json (pools: lan, vlan50)"
        );
        assert!(refusal(&["net.pool=lan", "net.bridge=br1"])
            .contains("net.bridge=\"br1\": differs from pool lan's bridge (br0)"));
        assert!(refusal(&["net.pool=lan", "net.parent=eth1"]).contains("net.parent=\"eth1\": pool lan has no parent"));
        assert!(refusal(&["net.pool=lan", "net.gateway=198.51.100.2"]).contains("differs from pool lan's gateways"));
        assert!(p.expand(&words(&["net.pool=lan", "net.gateway=2001:db8:1::1, 198.51.100.1"])).is_ok());
        assert!(refusal(&["net.pool=lan", "net.ip=203.0.113.5/24"])
            .contains("net.ip=\"203.0.113.5/24\": 203.0.113.5 is outside pool lan's subnet 198.51.100.0/24"));
        assert!(refusal(&["net.pool=lan", "net.ip=198.51.100.150/24"]).contains("excluded from pool lan"));
        assert!(refusal(&["net.pool=lan", "net.ip=198.51.100.1/24"]).contains("pool lan's gateway"));
        assert!(refusal(&["net.pool=lan", "net.ip=198.51.100.7/25"]).contains("another prefix length"));
        assert!(
            p.expand(&words(&["net.pool=lan", "net.ip=198.51.100.7/24"])).is_ok(),
            "outside the ranges is fine: a static address"
        );
        let none = pools("{}").unwrap();
        assert!(none.expand(&words(&["net.pool=lan"])).unwrap_err().to_string().contains("has no pools"));
    }
}
