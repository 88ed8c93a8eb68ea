//! `netrt-hook status`: the containers netrt manages, from their records,
//! with the live counters of their shapers.

use std::collections::HashMap;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::kernel::names::ifb_name;
use crate::kernel::netlink::{Netlink, QdiscInfo};
use crate::kernel::netns::NetNs;
use crate::request::attachment::{Attachment, Medium};
use crate::request::plan::Direction;
use crate::request::units::format_rate;
use crate::state::record::{Record, Store};

#[derive(Debug, Serialize)]
pub struct Entry {
    pub id: String,
    pub interface: String,
    pub host_veth: Option<String>,
    /// `host` or `container`: where the shapers sit.
    pub shaped_in: &'static str,
    pub complete: bool,
    /// `bridge br0, VLAN 50` or `macvlan on eth1.50`; None without one.
    pub attachment: Option<String>,
    /// The addresses netrt gave the attached interface.
    pub addresses: Vec<String>,
    /// Of those, the ones in a pool: which pool, and the node that claims them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pooled: Vec<PooledAddress>,
    /// The DHCP lease of the IPv4 address (`net.ip=dhcp`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dhcp: Option<LeaseStatus>,
    /// Its guarantees on its uplink (`status --uplinks` shows their rates).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uplink: Option<crate::uplinks::share::Share>,
    pub vlan: Option<u16>,
    pub limits: Vec<Limit>,
    /// Its addresses another node holds now: found when this node came
    /// back after its liveness in the registry lapsed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct LeaseStatus {
    pub address: String,
    pub server: String,
    /// Seconds to the lease's end; None for a lease for good.
    pub expires_in_s: Option<u64>,
    /// Seconds to T1, when `netrt-hook renew` renews it.
    pub renewal_in_s: Option<u64>,
    pub router: Option<String>,
    pub dns: Vec<String>,
    pub domain: Option<String>,
    /// The server's message when it refused a renewal.
    pub refused: Option<String>,
}

fn lease_status(lease: &crate::dhcp::lease::Lease) -> LeaseStatus {
    let now = crate::dhcp::client::unix_now();
    LeaseStatus {
        address: lease.address.to_string(),
        server: lease.server.to_string(),
        expires_in_s: lease.expires_at().map(|end| end.saturating_sub(now)),
        renewal_in_s: (!lease.is_infinite()).then(|| (lease.bound_at + lease.renew_after as u64).saturating_sub(now)),
        router: lease.router.map(|r| r.to_string()),
        dns: lease.dns.iter().map(|d| d.to_string()).collect(),
        domain: lease.domain.clone(),
        refused: lease.refused.clone(),
    }
}

#[derive(Debug, Serialize)]
pub struct PooledAddress {
    pub address: String,
    pub pool: String,
    pub node: String,
}

#[derive(Debug, Serialize)]
pub struct Limit {
    pub direction: Direction,
    /// The device that carries the tbf.
    pub device: String,
    pub configured_rate_bps: u64,
    /// What the kernel has in force; None when the shaper is missing.
    pub rate_bps: Option<u64>,
    pub burst_bytes: Option<u32>,
    pub limit_bytes: Option<u32>,
    pub sent_bytes: u64,
    pub sent_packets: u32,
    pub dropped_packets: u32,
    pub overlimits: u32,
    pub backlog_bytes: u32,
}

pub fn collect(id: Option<&str>) -> Result<Vec<Entry>> {
    if let Some(id) = id {
        // The id becomes a file name: no path of the caller's choosing.
        crate::state::record::check_id(id)?;
    }
    let store = Store::system();
    let records: Vec<Record> = store.all()?.into_iter().filter(|r| id.is_none_or(|id| r.id == id)).collect();
    if let Some(id) = id {
        if records.is_empty() {
            return Err(Error::Input(format!("no container {id:?} is managed by netrt")));
        }
    }
    if records.is_empty() {
        return Ok(vec![]);
    }
    // Without a readable configuration, status still shows what is there.
    let pools = crate::config::load().map(|config| config.pools).unwrap_or_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|e| Error::System(format!("cannot start the netlink runtime: {e}")))?;
    runtime.block_on(async {
        let host_ns = NetNs::current().map_err(Error::System)?;
        let host = Netlink::open_in(&host_ns).map_err(Error::System)?;
        // One dump of the host's links and qdiscs for all records: asking
        // per limit made status quadratic (the kernel dumps every qdisc of
        // the namespace for each request), 0.5 s with 250 containers.
        let host_view =
            if records.iter().any(|r| r.host_veth.is_some()) { View::of(&host).await } else { View::default() };
        let mut entries = vec![];
        for record in &records {
            let mut entry = entry(record, &host_view).await;
            entry.pooled = pooled_addresses(record, &pools);
            entries.push(entry);
        }
        Ok(entries)
    })
}

/// The links and qdiscs of one namespace, as one dump each returned them.
#[derive(Default)]
struct View {
    links: HashMap<String, u32>,
    qdiscs: HashMap<u32, Vec<QdiscInfo>>,
}

impl View {
    /// An empty view when the namespace cannot be read: its limits show as
    /// missing, which is what they are to the reader.
    async fn of(socket: &Netlink) -> View {
        let mut view = View::default();
        if let Ok(links) = socket.links().await {
            view.links = links.into_iter().map(|link| (link.name, link.index)).collect();
        }
        for (index, qdisc) in socket.all_qdiscs().await.unwrap_or_default() {
            view.qdiscs.entry(index).or_default().push(qdisc);
        }
        view
    }

    fn tbf_of(&self, device: &str) -> Option<&QdiscInfo> {
        let index = self.links.get(device)?;
        self.qdiscs.get(index)?.iter().find(|q| q.kind == "tbf")
    }
}

async fn entry(record: &Record, host_view: &View) -> Entry {
    let on_host = record.host_veth.is_some();
    let container_view = if on_host {
        None
    } else {
        match NetNs::open(&record.netns_path) {
            Ok(ns) if ns.id() == record.netns => match Netlink::open_in(&ns) {
                Ok(socket) => Some(View::of(&socket).await),
                Err(_) => None,
            },
            _ => None,
        }
    };
    let mut limits = vec![];
    for shaper in record.plan.shapers() {
        let device = match (&record.host_veth, shaper.direction) {
            (Some(veth), Direction::Ingress) => veth.clone(),
            (None, Direction::Egress) => record.interface.clone(),
            _ => ifb_name(&record.id),
        };
        let view = if on_host { Some(host_view) } else { container_view.as_ref() };
        let mut limit = Limit {
            direction: shaper.direction,
            device,
            configured_rate_bps: shaper.rate_bps,
            rate_bps: None,
            burst_bytes: None,
            limit_bytes: None,
            sent_bytes: 0,
            sent_packets: 0,
            dropped_packets: 0,
            overlimits: 0,
            backlog_bytes: 0,
        };
        if let Some(q) = view.and_then(|view| view.tbf_of(&limit.device)) {
            limit.rate_bps = q.tbf.map(|t| t.rate_bytes_per_s * 8);
            limit.burst_bytes = q.tbf.map(|t| t.burst_bytes);
            limit.limit_bytes = q.tbf.map(|t| t.limit_bytes);
            limit.sent_bytes = q.bytes;
            limit.sent_packets = q.packets;
            limit.dropped_packets = q.drops;
            limit.overlimits = q.overlimits;
            limit.backlog_bytes = q.backlog_bytes;
        }
        limits.push(limit);
    }
    Entry {
        id: record.id.clone(),
        interface: record.interface.clone(),
        host_veth: record.host_veth.clone(),
        shaped_in: if on_host { "host" } else { "container" },
        complete: record.complete,
        attachment: record.plan.attachment.as_ref().map(describe_attachment),
        addresses: record.plan.attachment.iter().flat_map(|a| &a.addresses).map(|a| a.to_string()).collect(),
        pooled: vec![],
        dhcp: record.dhcp.as_ref().map(lease_status),
        uplink: record.uplink.clone(),
        vlan: record.plan.attachment.as_ref().and_then(|a| a.vlan),
        limits,
        conflicts: record.conflicts.clone(),
    }
}

fn pooled_addresses(record: &Record, pools: &crate::config::pools::Pools) -> Vec<PooledAddress> {
    record
        .addresses()
        .filter_map(|a| {
            let pool = pools.pool_of(a)?;
            Some(PooledAddress { address: a.to_string(), pool: pool.name.clone(), node: pools.node.clone() })
        })
        .collect()
}

fn describe_attachment(attachment: &Attachment) -> String {
    match &attachment.medium {
        Medium::Bridge { bridge } => match attachment.vlan {
            Some(vlan) => format!("bridge {bridge}, VLAN {vlan}"),
            None => format!("bridge {bridge}"),
        },
        Medium::Macvlan { .. } => format!("macvlan on {}", attachment.macvlan_lower().unwrap_or_default()),
    }
}

pub fn render_table(entries: &[Entry]) -> String {
    let mut out = format!(
        "{:<20} {:<9} {:<16} {:<16} {:>10} {:>10} {:>14} {:>10} {:>8}\n",
        "CONTAINER", "DIRECTION", "INTERFACE", "SHAPER DEVICE", "RATE", "BURST", "SENT BYTES", "PACKETS", "DROPS"
    );
    for entry in entries {
        let interface = interface_of(entry);
        for limit in &entry.limits {
            let rate = match limit.rate_bps {
                Some(bps) => format_rate(bps),
                None => format!("MISSING ({})", format_rate(limit.configured_rate_bps)),
            };
            let burst = limit.burst_bytes.map_or("-".to_string(), |b| format!("{b}b"));
            out += &format!(
                "{:<20} {:<9} {:<16} {:<16} {:>10} {:>10} {:>14} {:>10} {:>8}\n",
                short(&entry.id),
                limit.direction.name(),
                interface,
                limit.device,
                rate,
                burst,
                limit.sent_bytes,
                limit.sent_packets,
                limit.dropped_packets
            );
        }
    }
    if entries.iter().any(|e| e.attachment.is_some()) {
        out += &format!("\n{:<20} {:<32} {:<26} {}\n", "CONTAINER", "INTERFACE", "ATTACHMENT", "ADDRESSES");
        for entry in entries {
            if let Some(attachment) = &entry.attachment {
                let shown: Vec<String> = entry
                    .addresses
                    .iter()
                    .map(|a| match entry.pooled.iter().find(|p| a.starts_with(&format!("{}/", p.address))) {
                        Some(p) => format!("{a} (pool {}, node {})", p.pool, p.node),
                        None => a.clone(),
                    })
                    .collect();
                let mut shown = shown;
                if let Some(lease) = &entry.dhcp {
                    let state = match (&lease.refused, lease.expires_in_s) {
                        (Some(message), _) => format!("refused at renewal: {message}; removed"),
                        (None, Some(0)) => "expired".to_string(),
                        (None, Some(left)) => format!("expires in {left}s"),
                        (None, None) => "for good".to_string(),
                    };
                    shown.insert(0, format!("{} (DHCP from {}, {state})", lease.address, lease.server));
                }
                let addresses = if shown.is_empty() { "-".to_string() } else { shown.join(", ") };
                out +=
                    &format!("{:<20} {:<32} {:<26} {}\n", short(&entry.id), interface_of(entry), attachment, addresses);
                for conflict in &entry.conflicts {
                    out += &format!("{:<20} CONFLICT: {conflict}\n", "");
                }
                if let Some(lease) = entry.dhcp.as_ref().filter(|l| !l.dns.is_empty() || l.domain.is_some()) {
                    let dns = if lease.dns.is_empty() { "-".to_string() } else { lease.dns.join(", ") };
                    out += &format!("{:<20} dns {dns}; domain {}\n", "", lease.domain.as_deref().unwrap_or("-"));
                }
            }
        }
    }
    out
}

/// The Prometheus text exposition format (version 0.0.4), for
/// node_exporter's textfile collector: per container and direction its
/// limit, whether the kernel has the shaper, and the shaper's counters.
pub fn render_prometheus(entries: &[Entry]) -> String {
    let mut out = String::new();
    family(&mut out, "netrt_containers", "gauge", "Containers netrt manages on this host.");
    out += &format!("netrt_containers {}\n", entries.len());
    family(
        &mut out,
        "netrt_address_conflicts",
        "gauge",
        "Addresses of this node's containers that another node holds in the registry now.",
    );
    out += &format!("netrt_address_conflicts {}\n", entries.iter().map(|e| e.conflicts.len()).sum::<usize>());
    type Sample = fn(&Limit) -> Option<u64>;
    let families: [(&str, &str, &str, Sample); 8] = [
        (
            "netrt_limit_bytes_per_second",
            "gauge",
            "The limit asked for (Prometheus counts bytes: bit/s divided by 8).",
            |l| Some(l.configured_rate_bps / 8),
        ),
        ("netrt_shaper_present", "gauge", "1 when the kernel has the limit's shaper, 0 when it is missing.", |l| {
            Some(u64::from(l.rate_bps.is_some()))
        }),
        ("netrt_shaper_rate_bytes_per_second", "gauge", "The rate the kernel's shaper enforces.", |l| {
            l.rate_bps.map(|bps| bps / 8)
        }),
        ("netrt_sent_bytes_total", "counter", "Bytes the shaper let through.", |l| Some(l.sent_bytes)),
        ("netrt_sent_packets_total", "counter", "Packets the shaper let through.", |l| Some(l.sent_packets.into())),
        ("netrt_dropped_packets_total", "counter", "Packets the shaper dropped.", |l| Some(l.dropped_packets.into())),
        ("netrt_overlimits_total", "counter", "Times a packet had to wait for tokens.", |l| Some(l.overlimits.into())),
        ("netrt_backlog_bytes", "gauge", "Bytes waiting in the shaper's queue.", |l| Some(l.backlog_bytes.into())),
    ];
    for (name, kind, help, sample) in families {
        family(&mut out, name, kind, help);
        for entry in entries {
            for limit in &entry.limits {
                if let Some(value) = sample(limit) {
                    out += &format!(
                        "{name}{{container=\"{}\",direction=\"{}\",device=\"{}\"}} {value}\n",
                        label(&entry.id),
                        limit.direction.name(),
                        label(&limit.device)
                    );
                }
            }
        }
    }
    out
}

pub(crate) fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    *out += &format!("# HELP {name} {help}\n# TYPE {name} {kind}\n");
}

/// A label value as the exposition format quotes it.
pub(crate) fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn interface_of(entry: &Entry) -> String {
    match &entry.host_veth {
        Some(veth) => format!("{}@{}", entry.interface, veth),
        None => entry.interface.clone(),
    }
}

fn short(id: &str) -> String {
    if id.len() > 20 {
        format!("{}…", &id[..19])
    } else {
        id.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(direction: Direction, present: bool) -> Limit {
        Limit {
            direction,
            device: "nrti0123456789a".into(),
            configured_rate_bps: 10_000_000,
            rate_bps: present.then_some(10_000_000),
            burst_bytes: None,
            limit_bytes: None,
            sent_bytes: 1234,
            sent_packets: 5,
            dropped_packets: 1,
            overlimits: 2,
            backlog_bytes: 0,
        }
    }

    #[test]
    fn prometheus_families_have_help_type_and_labelled_samples() {
        let entry = Entry {
            id: "web\"1".into(),
            interface: "eth0".into(),
            host_veth: None,
            shaped_in: "host",
            complete: true,
            attachment: None,
            addresses: vec![],
            pooled: vec![],
            dhcp: None,
            uplink: None,
            conflicts: vec![],
            vlan: None,
            limits: vec![limit(Direction::Egress, true), limit(Direction::Ingress, false)],
        };
        let text = render_prometheus(&[entry]);
        assert!(text.contains("netrt_containers 1\n"), "{text}");
        assert!(text.contains("netrt_limit_bytes_per_second{container=\"web\\\"1\",direction=\"egress\",device=\"nrti0123456789a\"} 1250000\n"), "{text}");
        assert!(
            text.contains(
                "netrt_shaper_present{container=\"web\\\"1\",direction=\"ingress\",device=\"nrti0123456789a\"} 0\n"
            ),
            "{text}"
        );
        assert_eq!(
            text.matches("netrt_shaper_rate_bytes_per_second{").count(),
            1,
            "a missing shaper has no rate: {text}"
        );
        assert!(text.contains("# TYPE netrt_sent_bytes_total counter\n"), "{text}");
        let families = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
        assert_eq!(families, text.lines().filter(|l| l.starts_with("# HELP ")).count());
        assert_eq!(families, 10);
        assert!(text.contains("netrt_address_conflicts 0\n"), "{text}");
    }
}
