//! `netrt-hook status --uplinks`: per declared uplink and direction, the
//! capacity, what is guaranteed, and each container's guarantee, ceiling
//! and live rate (the kernel's estimate for its class, over about a
//! second).

use serde::Serialize;

use crate::error::{Error, Result};
use crate::kernel::netlink::{ClassInfo, Link, Netlink};
use crate::kernel::netns::NetNs;
use crate::request::plan::Direction;
use crate::request::units::format_rate;
use crate::state::record::{Record, Store};

use super::status::{family, label};
use crate::uplinks::share::{self, MAJOR};

#[derive(Debug, Serialize)]
pub struct UplinkStatus {
    pub name: String,
    pub overcommit: f64,
    pub egress: DirectionStatus,
    pub ingress: DirectionStatus,
}

#[derive(Debug, Serialize)]
pub struct DirectionStatus {
    pub capacity_bps: u64,
    /// Kept outside every guarantee, for traffic without one.
    pub reserve_bps: u64,
    /// What the guarantees may add up to: (capacity − reserve) × overcommit.
    pub admissible_bps: u64,
    pub guaranteed_bps: u64,
    /// Whether netrt's shaper is on the uplink in this direction.
    pub shaped: bool,
    /// Everything without a guarantee, live.
    pub others_rate_bps: Option<u64>,
    pub containers: Vec<ContainerShare>,
}

#[derive(Debug, Serialize)]
pub struct ContainerShare {
    pub id: String,
    pub min_bps: u64,
    pub ceil_bps: u64,
    pub rate_bps: Option<u64>,
}

pub fn collect() -> Result<Vec<UplinkStatus>> {
    let uplinks = crate::config::load()?.uplinks;
    let records = Store::system().all()?;
    let runtime = crate::runner::runtime()?;
    runtime.block_on(async {
        let host = Netlink::open_in(&NetNs::current().map_err(Error::System)?).map_err(Error::System)?;
        let mut all = vec![];
        for uplink in uplinks.by_name.values() {
            let link = host.link_by_name(&uplink.name).await.map_err(|e| Error::System(e.to_string()))?;
            // The egress tree is on the uplink, the ingress tree on its ifb.
            let ifb = match &link {
                Some(link) => {
                    host.link_by_name(&crate::kernel::names::uplink_ifb_name(link.index)).await.unwrap_or_default()
                }
                None => None,
            };
            let egress_classes = classes_on(&host, link.as_ref()).await;
            let ingress_classes = classes_on(&host, ifb.as_ref()).await;
            let direction = |d: Direction, classes: &[ClassInfo]| direction_status(uplink, &records, d, classes);
            all.push(UplinkStatus {
                name: uplink.name.clone(),
                overcommit: uplink.overcommit_permille as f64 / crate::config::uplinks::PERMILLE as f64,
                egress: direction(Direction::Egress, &egress_classes),
                ingress: direction(Direction::Ingress, &ingress_classes),
            });
        }
        Ok(all)
    })
}

/// netrt's classes on `device`: none where it is missing or unreadable.
async fn classes_on(host: &Netlink, device: Option<&Link>) -> Vec<ClassInfo> {
    match device {
        Some(device) => host.classes(device, MAJOR).await.unwrap_or_default(),
        None => vec![],
    }
}

fn direction_status(
    uplink: &crate::config::uplinks::Uplink,
    records: &[Record],
    direction: Direction,
    classes: &[ClassInfo],
) -> DirectionStatus {
    let rate_of =
        |minor: u16| classes.iter().find(|c| c.minor == minor).and_then(|c| c.rate_bytes_per_s).map(|b| b * 8);
    let containers: Vec<ContainerShare> = records
        .iter()
        .filter_map(|r| Some((r, r.uplink.as_ref().filter(|s| s.uplink == uplink.name)?)))
        .filter_map(|(r, s)| {
            let floor = s.floor(direction)?;
            Some(ContainerShare {
                id: r.id.clone(),
                min_bps: floor.min_bps,
                ceil_bps: floor.ceil_bps,
                rate_bps: rate_of(s.minor),
            })
        })
        .collect();
    DirectionStatus {
        capacity_bps: uplink.capacity_bps,
        reserve_bps: uplink.reserve_bps,
        admissible_bps: uplink.admissible_bps(),
        guaranteed_bps: share::guaranteed_bps(
            records.iter().filter_map(|r| r.uplink.as_ref()),
            &uplink.name,
            direction,
        ),
        shaped: !classes.is_empty(),
        others_rate_bps: rate_of(share::DEFAULT_MINOR),
        containers,
    }
}

/// The uplinks in the Prometheus text format: per uplink and direction its
/// capacity, reserve, what may be guaranteed and what is, and per
/// container its guarantee and its class's live rate (bytes per second,
/// as Prometheus counts).
pub fn render_prometheus(uplinks: &[UplinkStatus]) -> String {
    type Sample = fn(&DirectionStatus) -> u64;
    let families: [(&str, &str, Sample); 5] = [
        ("netrt_uplink_capacity_bytes_per_second", "The uplink's declared capacity.", |d| d.capacity_bps / 8),
        ("netrt_uplink_reserve_bytes_per_second", "Kept outside every guarantee.", |d| d.reserve_bps / 8),
        (
            "netrt_uplink_admissible_bytes_per_second",
            "What the guarantees may add up to: (capacity - reserve) x overcommit.",
            |d| d.admissible_bps / 8,
        ),
        ("netrt_uplink_guaranteed_bytes_per_second", "What the guarantees add up to.", |d| d.guaranteed_bps / 8),
        ("netrt_uplink_guarantees", "Containers with a guarantee on the uplink.", |d| d.containers.len() as u64),
    ];
    // A family without a sample is left out.
    let mut out = String::new();
    if uplinks.is_empty() {
        return out;
    }
    for (name, help, sample) in families {
        family(&mut out, name, "gauge", help);
        for uplink in uplinks {
            for (direction, d) in directions(uplink) {
                out +=
                    &format!("{name}{{uplink=\"{}\",direction=\"{direction}\"}} {}\n", label(&uplink.name), sample(d));
            }
        }
    }
    type ContainerSample = fn(&ContainerShare) -> Option<u64>;
    let per_container: [(&str, &str, ContainerSample); 2] = [
        ("netrt_guarantee_bytes_per_second", "A container's guarantee on its uplink.", |c| Some(c.min_bps / 8)),
        ("netrt_guarantee_rate_bytes_per_second", "The live rate of a container's class.", |c| {
            c.rate_bps.map(|r| r / 8)
        }),
    ];
    for (name, help, sample) in per_container {
        let any = uplinks.iter().flat_map(directions).any(|(_, d)| d.containers.iter().any(|c| sample(c).is_some()));
        if !any {
            continue;
        }
        family(&mut out, name, "gauge", help);
        for uplink in uplinks {
            for (direction, d) in directions(uplink) {
                for container in &d.containers {
                    if let Some(value) = sample(container) {
                        out += &format!(
                            "{name}{{uplink=\"{}\",direction=\"{direction}\",container=\"{}\"}} {value}\n",
                            label(&uplink.name),
                            label(&container.id)
                        );
                    }
                }
            }
        }
    }
    out
}

fn directions(uplink: &UplinkStatus) -> [(&'static str, &DirectionStatus); 2] {
    [("egress", &uplink.egress), ("ingress", &uplink.ingress)]
}

pub fn render_table(uplinks: &[UplinkStatus]) -> String {
    let mut out = format!(
        "{:<16} {:<9} {:>10} {:>12} {:<24} {:>10} {:>10} {:>10}\n",
        "UPLINK", "DIRECTION", "CAPACITY", "GUARANTEED", "CONTAINER", "MIN", "CEIL", "RATE"
    );
    let rate = |bps: Option<u64>| bps.map_or("-".to_string(), format_rate);
    for uplink in uplinks {
        for (name, d) in [("egress", &uplink.egress), ("ingress", &uplink.ingress)] {
            let head = format!(
                "{:<16} {:<9} {:>10} {:>12}",
                uplink.name,
                name,
                format_rate(d.capacity_bps),
                format!("{}/{}", short_rate(d.guaranteed_bps), short_rate(d.admissible_bps))
            );
            out += &format!(
                "{head} {:<24} {:>10} {:>10} {:>10}\n",
                "(others)",
                format_rate(d.reserve_bps),
                format_rate(d.capacity_bps),
                rate(d.others_rate_bps)
            );
            for c in &d.containers {
                let id: String = c.id.chars().take(24).collect();
                out += &format!(
                    "{head} {id:<24} {:>10} {:>10} {:>10}\n",
                    format_rate(c.min_bps),
                    format_rate(c.ceil_bps),
                    rate(c.rate_bps)
                );
            }
        }
    }
    out
}

fn short_rate(bps: u64) -> String {
    if bps == 0 {
        "0".into()
    } else {
        format_rate(bps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uplinks_in_the_prometheus_format() {
        let direction = |containers: Vec<ContainerShare>| DirectionStatus {
            capacity_bps: 100_000_000,
            reserve_bps: 5_000_000,
            admissible_bps: 95_000_000,
            guaranteed_bps: containers.iter().map(|c| c.min_bps).sum(),
            shaped: !containers.is_empty(),
            others_rate_bps: None,
            containers,
        };
        let web =
            ContainerShare { id: "web1".into(), min_bps: 60_000_000, ceil_bps: 100_000_000, rate_bps: Some(8_000) };
        let uplinks = [UplinkStatus {
            name: "eth1".into(),
            overcommit: 1.0,
            egress: direction(vec![web]),
            ingress: direction(vec![]),
        }];
        let text = render_prometheus(&uplinks);
        for line in [
            "# TYPE netrt_uplink_capacity_bytes_per_second gauge",
            "netrt_uplink_capacity_bytes_per_second{uplink=\"eth1\",direction=\"egress\"} 12500000",
            "netrt_uplink_reserve_bytes_per_second{uplink=\"eth1\",direction=\"ingress\"} 625000",
            "netrt_uplink_admissible_bytes_per_second{uplink=\"eth1\",direction=\"egress\"} 11875000",
            "netrt_uplink_guaranteed_bytes_per_second{uplink=\"eth1\",direction=\"egress\"} 7500000",
            "netrt_uplink_guaranteed_bytes_per_second{uplink=\"eth1\",direction=\"ingress\"} 0",
            "netrt_uplink_guarantees{uplink=\"eth1\",direction=\"egress\"} 1",
            "netrt_guarantee_bytes_per_second{uplink=\"eth1\",direction=\"egress\",container=\"web1\"} 7500000",
            "netrt_guarantee_rate_bytes_per_second{uplink=\"eth1\",direction=\"egress\",container=\"web1\"} 1000",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in:\n{text}");
        }
        assert_eq!(text.matches("# HELP ").count(), text.matches("# TYPE ").count());
        assert_eq!(render_prometheus(&[]), "", "no uplink, no family");
    }
}
