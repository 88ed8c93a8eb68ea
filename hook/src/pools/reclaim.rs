//! Reclaim: where `registry.etcd.reclaim_after` is set, `gc` and `renew`
//! on any node take back the claims of a node whose liveness has been gone
//! that long, one address at a time, and only once the address was probed
//! silent on the LAN from this node (which must have the pool's bridge or
//! parent). An address that answers is not released: its claim becomes a
//! mark of an address in use on the wire, naming the MAC that answered and
//! whose claim it was. Each change is one transaction that also checks the
//! claim is unchanged and the node still without liveness, so two nodes
//! reclaiming at once, or a node coming back meanwhile, never make an
//! address free twice.
//!
//! The time counts from when a node first saw the liveness gone (noted in
//! the registry), so a node is reclaimed at least `node_ttl` +
//! `reclaim_after` after its last run.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use super::any_store::AnyStore;
use super::store::{now, Claim, ClaimStore, Held, StoreError};
use crate::config::pools::{Pool, Pools, Registry};
use crate::kernel::netlink::Netlink;
use crate::probe::{format_mac, Prober};

/// The probe time for a pool that does not probe before use.
pub const DEFAULT_PROBE: Duration = Duration::from_millis(200);

/// A packet socket for reclaim's probes, opened while the hook still has
/// CAP_NET_RAW, where the configuration reclaims at all.
pub fn prober_for(pools: &Pools) -> Option<Prober> {
    let Registry::Etcd(etcd) = &pools.registry else { return None };
    etcd.reclaim_after_s?;
    match Prober::open() {
        Ok(prober) => Some(prober),
        Err(e) => {
            crate::log::error(&format!("dead nodes' addresses are not reclaimed: cannot open a packet socket: {e}"));
            None
        }
    }
}

/// The host interface this node probes a pool's LAN from.
fn lan_interface(pool: &Pool) -> Option<String> {
    let a = &pool.attachment;
    match (&a.bridge, &a.parent, a.vlan) {
        (Some(bridge), _, _) => Some(bridge.clone()),
        (None, Some(parent), Some(vlan)) => Some(format!("{parent}.{vlan}")),
        (None, Some(parent), None) => Some(parent.clone()),
        _ => None,
    }
}

/// Reclaims what dead nodes hold; one line per address released or kept.
pub async fn reclaim(
    registry: &mut AnyStore,
    pools: &Pools,
    prober: &Prober,
    host: &Netlink,
) -> Result<Vec<String>, StoreError> {
    let (Registry::Etcd(etcd), AnyStore::Etcd(store)) = (&pools.registry, &mut *registry) else { return Ok(vec![]) };
    let Some(after) = etcd.reclaim_after_s else { return Ok(vec![]) };
    let mut lines = vec![];
    for node in store.nodes().await? {
        if node.alive_since.is_some() || node.node == pools.node {
            continue;
        }
        let Some(since) = store.note_dead(&node.node).await? else { continue };
        if now() < since + after {
            continue;
        }
        let held = store.held_by(&node.node, None).await?;
        if held.is_empty() {
            continue;
        }
        let (total, mut acted) = (held.len(), 0);
        let mut by_pool: BTreeMap<String, Vec<Held>> = BTreeMap::new();
        for claim in held {
            by_pool.entry(claim.pool.clone()).or_default().push(claim);
        }
        for (name, claims) in by_pool {
            let Some(pool) = pools.get(&name) else {
                lines.push(format!("node {}: pool {name} is not defined here; its claims stay", node.node));
                continue;
            };
            let Some(ifname) = lan_interface(pool) else { continue };
            let link = host.link_by_name(&ifname).await.map_err(|e| StoreError::Failed(e.to_string()))?;
            let Some(link) = link else {
                lines.push(format!(
                    "node {}: pool {name}'s claims stay: this node has no {ifname} to probe the LAN from",
                    node.node
                ));
                continue;
            };
            let mut mac = [0u8; 6];
            mac.copy_from_slice(&link.mac[..6]);
            let time = match pool.probe_ms {
                0 => DEFAULT_PROBE,
                ms => Duration::from_millis(u64::from(ms)),
            };
            let targets: Vec<IpAddr> = claims.iter().map(|c| c.claim.address).collect();
            let heard = prober
                .probe(link.index, mac, &targets, time)
                .map_err(|e| StoreError::Failed(format!("cannot probe pool {name}'s LAN on {ifname}: {e}")))?;
            for (step, claim) in claims.iter().enumerate() {
                crate::fault::kill_point("reclaim", step as u32);
                let address = claim.claim.address;
                let was = claim.claim.holder();
                let answered = heard.get(&address).map(format_mac);
                let mark = answered.as_ref().map(|mac| Claim::on_wire(address, mac, Some(was.clone())));
                if !store.reclaim(claim, (&node.node, &pools.node), mark.as_ref()).await? {
                    continue;
                }
                acted += 1;
                lines.push(match answered {
                    None => format!("reclaimed {address} of pool {name} from dead node {} ({was}): silent on the LAN", node.node),
                    Some(mac) => format!(
                        "kept {address} of pool {name} from dead node {} ({was}): it answers on the LAN from {mac}, marked in use on the wire",
                        node.node
                    ),
                });
            }
        }
        // Nothing of it left: what fencing noted for its containers goes.
        if acted == total {
            store.forget_node_conflicts(&node.node).await?;
        }
    }
    Ok(lines)
}
