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
