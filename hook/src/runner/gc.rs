//! `netrt-hook gc`: what runs whose poststop never came left behind:
//! records of containers whose namespace is gone (replayed), deferred
//! setups of containers that never started, uplink shapers out of step
//! with the records, devices under netrt's names no record accounts for,
//! pool claims of containers without a record, and claims of addresses
//! without a record.

use super::undo::{collect_gone, delete_together};
use crate::error::{Error, Result};
use crate::kernel::names;
use crate::kernel::netlink::{NetError, Netlink};
use crate::kernel::netns::{self, NetNs};
use crate::kernel::privilege;
use crate::log;
use crate::request::oci;
use crate::state::record::Store;
use crate::uplinks::shaper;
use crate::uplinks::share::{Capacity, Share};

/// `netrt-hook gc`: undoes the records of containers whose namespace is
/// gone (their poststop never ran) and returns one line per container.
pub fn gc() -> Result<Vec<String>> {
    let store = Store::system();
    privilege::check()?;
    // Reclaim probes the LAN: its packet socket is opened before the drop.
    let prober = crate::config::load().ok().and_then(|c| crate::pools::reclaim::prober_for(&c.pools));
    privilege::drop_keeping(&privilege::FOR_RELEASES)?;
    super::runtime()?.block_on(async {
        let _lock = store.lock()?;
        let host_ns = NetNs::current().map_err(Error::System)?;
        let mut removed = vec![];
        for id in store.all_deferred()? {
            let Some(deferred) = store.deferred(&id)? else { continue };
            let pid = oci::parse_state(&deferred.state).ok().and_then(|c| c.pid);
            // Gone: no such process, or another one under its pid.
            let alive = pid.and_then(crate::kernel::process::start_time);
            if alive.is_none() || deferred.start_time.is_some_and(|expected| alive != Some(expected)) {
                store.remove_deferred(&id)?;
                let line = format!("removed {id}: its deferred setup (the container never started)");
                log::info(&line);
                removed.push(line);
            }
        }
        for record in store.all()? {
            if !netns::is_gone(&record.netns_path, record.netns) {
                continue;
            }
            removed.push(collect_gone(&store, &record, &host_ns).await?);
        }
        removed.extend(reconcile_uplinks(&store, &host_ns).await?);
        removed.extend(remove_unrecorded_devices(&store, &host_ns).await?);
        let pools = crate::config::load()?.pools;
        let host = Netlink::open_in(&host_ns).map_err(Error::System)?;
        let reclaiming = prober.as_ref().map(|prober| (prober, &host));
        removed.extend(crate::steps::claims::collect(&store, &pools, reclaiming).await?);
        for address in store.remove_orphan_claims()? {
            let line = format!("removed the claim of {address}: no record holds it");
            log::info(&line);
            removed.push(line);
        }
        Ok(removed)
    })
}

/// Brings every uplink shaper in step with the records: one a run killed
/// after its record went still has that container's class, or is there
/// with no guarantee left. Looks at the declared uplinks, those records
/// name, and any interface with netrt's root htb or ingress ifb.
async fn reconcile_uplinks(store: &Store, host_ns: &NetNs) -> Result<Vec<String>> {
    let host = Netlink::open_in(host_ns).map_err(Error::System)?;
    let system = |e: NetError| Error::System(e.to_string());
    let uplinks = crate::config::load().map(|c| c.uplinks).unwrap_or_default();
    let records = store.all()?;
    let links = host.links().await.map_err(system)?;
    let mut names: Vec<String> = uplinks.by_name.keys().cloned().collect();
    names.extend(records.iter().filter_map(|r| r.uplink.as_ref()).map(|s| s.uplink.clone()));
    for (index, qdisc) in host.all_qdiscs().await.map_err(system)? {
        if qdisc.kind == "htb" && qdisc.handle >> 16 == crate::uplinks::share::MAJOR as u32 {
            names.extend(links.iter().filter(|l| l.index == index).map(|l| l.name.clone()));
        }
    }
    names.extend(
        links
            .iter()
            .filter(|l| links.iter().any(|ifb| ifb.name == names::uplink_ifb_name(l.index)))
            .map(|l| l.name.clone()),
    );
    names.sort();
    names.dedup();
    let mut lines = vec![];
    for ifb in shaper::orphan_ifbs(&links) {
        host.delete_link(ifb).await.map_err(system)?;
        let line = format!("removed ifb {}: the uplink it shaped is gone", ifb.name);
        log::info(&line);
        lines.push(line);
    }
    for name in names {
        let shares: Vec<&Share> =
            records.iter().filter_map(|r| r.uplink.as_ref()).filter(|s| s.uplink == name).collect();
        let capacity = uplinks.get(&name).map_or_else(|| Capacity::recorded(&shares), Capacity::of);
        let mut changes = 0;
        let reconciled = shaper::reconcile(&host, &name, capacity, &shares, &mut || {
            changes += 1;
            Ok(())
        })
        .await;
        if let Err(e) = reconciled {
            // One uplink that cannot be corrected does not stop gc.
            let line = format!("could not correct netrt's shaper on uplink {name}: {e}");
            log::error(&line);
            lines.push(line);
            continue;
        }
        // A tree that is in step still has its classifier rewritten.
        let rewrites = [crate::request::plan::Direction::Egress, crate::request::plan::Direction::Ingress]
            .iter()
            .filter(|d| crate::uplinks::share::tree(capacity, &shares, **d).is_some())
            .count();
        if changes > rewrites {
            let line = format!(
                "corrected netrt's shaper on uplink {name}: it now holds the guarantees of {} containers",
                shares.len()
            );
            log::info(&line);
            lines.push(line);
        }
    }
    Ok(lines)
}

/// Host devices under netrt's own names that no record accounts for: left
/// by a version of netrt that deleted them after its hook had answered, or
/// made by hand. Under the host lock no setup is half-way (a setup writes
/// its record before it makes a device), so none of them belongs to a
/// container. They go in one batch.
async fn remove_unrecorded_devices(store: &Store, host_ns: &NetNs) -> Result<Vec<String>> {
    let recorded: Vec<String> =
        store.all()?.iter().flat_map(|r| [names::ifb_name(&r.id), names::host_veth_name(&r.id)]).collect();
    let host = Netlink::open_in(host_ns).map_err(Error::System)?;
    let strays: Vec<_> = host
        .links()
        .await
        .map_err(|e| Error::System(e.to_string()))?
        .into_iter()
        .filter(|link| {
            let kind = names::own_device_kind(&link.name);
            kind.is_some()
                && link.kind.as_deref() == kind
                && names::is_marked(link.group)
                && !recorded.contains(&link.name)
        })
        .collect();
    if strays.is_empty() {
        return Ok(vec![]);
    }
    delete_together(&host, &strays).await.map_err(|e| Error::System(e.to_string()))?;
    let removed: Vec<String> = strays
        .iter()
        .map(|link| format!("removed {} {}: no record names it", link.kind.as_deref().unwrap_or("device"), link.name))
        .collect();
    removed.iter().for_each(|line| log::info(line));
    Ok(removed)
}
