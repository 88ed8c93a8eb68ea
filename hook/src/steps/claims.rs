//! Pool claims: the attachment's addresses claimed in the address
//! registry (host-wide files, or etcd for a cluster), allocating what
//! `net.pool` leaves open. The record says the container may hold claims
//! before the first is sent, so that teardown or gc release them
//! (`release`); a registry that does not answer gets them later.

use async_trait::async_trait;

use super::step::{Asked, Setup, Stage, Step};
use std::net::IpAddr;

use crate::config::pools::Pools;
use crate::error::Result;
use crate::fault;
use crate::log;
use crate::pools::any_store::{self, AnyStore};
use crate::pools::claims::{self, Taken};
use crate::pools::store::{Claim, ClaimStore, StoreError};
use crate::state::record::Store;

pub struct Claims;

/// Claims where the attachment's addresses come from a pool.
pub fn wanted(asked: &Asked) -> Option<Box<dyn Step>> {
    let attachment = asked.plan.attachment.as_ref()?;
    crate::pools::claims::uses_pools(attachment, asked.pools).then(|| Box::new(Claims) as Box<dyn Step>)
}

#[async_trait(?Send)]
impl Step for Claims {
    fn name(&self) -> &'static str {
        "pool claims"
    }

    fn stage(&self) -> Stage {
        Stage::Addresses
    }

    async fn check(&mut self, setup: &mut Setup<'_>) -> Result<()> {
        let attachment = setup.attachment();
        let lead = if attachment.pool.is_some() { "net.pool" } else { "net.ip" };
        let store = setup.journal.store();
        let mut registry =
            any_store::open(&setup.config.pools, true).await.map_err(|e| attachment.refuse(lead, e.to_string()))?;
        let node = &setup.config.pools.node;
        keep_alive(store, &mut registry, &setup.config.pools)
            .await
            .map_err(|e| attachment.refuse(lead, e.to_string()))?;
        settle_pending(store, &mut registry, node).await.map_err(|e| attachment.refuse(lead, e.to_string()))?;
        setup.found.registry = Some(registry);
        // A static address the host itself has is refused; allocation
        // passes over them.
        setup.refuse_host_addresses().await?;
        setup.journal.record.pool_claims = true;
        Ok(())
    }

    async fn apply(&mut self, setup: &mut Setup<'_>) -> Result<()> {
        fault::kill_point("claim", 0);
        let registry = setup.found.registry.as_mut().expect("opened by check");
        let store = setup.journal.store();
        let node = setup.config.pools.node.as_str();
        let id = setup.id.as_str();
        let is_stale = |claim: &Claim| {
            claim.node.as_deref() == Some(node)
                && claim.container.as_deref().is_some_and(|holder| holder != id && !store.exists(holder))
        };
        let host: Vec<IpAddr> = setup.found.host_addresses.iter().flatten().map(|(a, _)| *a).collect();
        let on_host = |address: IpAddr| host.contains(&address);
        let attachment = setup.plan.attachment.as_mut().expect("pooled plans have an attachment");
        let asked: Vec<IpAddr> = attachment.addresses.iter().map(|cidr| cidr.address).collect();
        let claimed = claims::claim(
            registry,
            &setup.config.pools,
            attachment,
            id,
            &Taken { is_stale: &is_stale, on_host: &on_host },
        )
        .await;
        fault::kill_point("claim", 1);
        setup.found.allocated =
            attachment.addresses.iter().map(|cidr| cidr.address).filter(|a| !asked.contains(a)).collect();
        if claimed.is_err() && !registry.may_have_claimed() {
            // Refused before any claim was sent: nothing to release, now
            // or later.
            setup.journal.record.pool_claims = false;
        }
        // The record's plan has the addresses claimed.
        setup.journal.record.plan = setup.plan.clone();
        Ok(claimed?)
    }
}

/// The undo of a record's claims: releases the container's claims; if
/// the registry cannot, remembers them for the next run that reaches it
/// (teardown never fails for it).
pub async fn release_or_remember(store: &Store, registry: &mut AnyStore, node: &str, id: &str) {
    if let Err(e) = claims::release(registry, node, id).await {
        log::error(&format!("the claims of {id} are released later, by the next run that reaches the registry: {e}"));
        if let Err(e) = store.add_pending_release(id) {
            log::error(&e.to_string());
        }
    }
}

/// Releases a torn-down container's pool claims. The host is clean
/// already; a registry that does not answer gets the release later.
pub async fn release(store: &Store, id: &str) {
    let pools = match crate::config::load() {
        Ok(config) => config.pools,
        Err(e) => {
            log::error(&format!("the claims of {id} are released later: {e}"));
            let _ = store.add_pending_release(id);
            return;
        }
    };
    match any_store::open(&pools, true).await {
        Ok(mut registry) => {
            if let Err(e) = keep_alive(store, &mut registry, &pools).await {
                log::error(&format!("this node's liveness was not refreshed: {e}"));
            }
            if let Err(e) = settle_pending(store, &mut registry, &pools.node).await {
                log::error(&format!("releases left pending wait longer: {e}"));
            }
            release_or_remember(store, &mut registry, &pools.node, id).await;
        }
        Err(e) => {
            log::error(&format!(
                "the claims of {id} are released later, by the next run that reaches the registry: {e}"
            ));
            let _ = store.add_pending_release(id);
        }
    }
}

/// Keeps this node's liveness in the registry (etcd: a key on a lease of
/// `node_ttl`), as every run that reaches the registry does. A lapsed
/// lease means the node was cut off or asleep for longer than that: said,
/// and its running containers' claims are checked (`fence`) before this
/// run makes any claim, since other nodes may have taken them meanwhile.
pub async fn keep_alive(store: &Store, registry: &mut AnyStore, pools: &Pools) -> std::result::Result<(), StoreError> {
    let node = pools.node.as_str();
    // Refreshed a third of node_ttl ago or less: nothing to ask. A lease
    // renewed then has two thirds of its time left.
    let Some(interval) = registry.liveness_interval() else { return Ok(()) };
    if store.liveness_age().is_some_and(|age| age < interval) {
        return Ok(());
    }
    let Some(liveness) = registry.refresh_liveness(node, store.liveness_lease()).await? else { return Ok(()) };
    if liveness.lapsed {
        log::error(&format!(
            "node {node}'s liveness in the address registry had lapsed (its key was gone): it was cut off or \
             asleep for longer than node_ttl; it is alive again"
        ));
        fence(store, registry, pools).await?;
    }
    // Written on every refresh: its age is the time since the last one.
    store.set_liveness_lease(liveness.lease).map_err(|e| StoreError::Failed(e.to_string()))
}

/// Fencing, once this node finds its liveness had lapsed: every claim of
/// its running containers is read again. One still its own is kept; one
/// gone is made again; one a reclaim kept as in use on the wire because
/// this very container answered is taken back; one that another holds now
/// is a conflict: logged, and kept in the container's record (for
/// `status` and the metrics). A running container's address never changes.
pub async fn fence(store: &Store, registry: &mut AnyStore, pools: &Pools) -> std::result::Result<(), StoreError> {
    let failed = |e: crate::error::Error| StoreError::Failed(e.to_string());
    let node = pools.node.as_str();
    for mut record in store.all().map_err(failed)? {
        if !record.complete || !record.pool_claims || crate::kernel::netns::is_gone(&record.netns_path, record.netns) {
            continue;
        }
        let mut conflicts = vec![];
        for address in record.addresses().collect::<Vec<_>>() {
            let Some(pool) = pools.pool_of(address) else { continue };
            let ours = Claim::for_container(address, node, &record.id);
            let n = crate::config::pools::number(address);
            let span = crate::config::pools::Span { v6: address.is_ipv6(), first: n, last: n };
            let mut holder = registry.claims(&pool.name, address.is_ipv6(), Some(span)).await?.into_iter().next();
            if let Some(kept) = holder.take_if(|h| h.claim.wire.is_some() && h.claim.was == Some(ours.holder())) {
                registry.delete(&kept).await?;
            }
            let holder = match holder {
                Some(held) => Some(held),
                None => registry.create(&pool.name, &ours, false).await?,
            };
            match holder {
                Some(held) if !held.claim.same_holder(&ours) => {
                    let conflict = format!(
                        "{address} of pool {} is held by {} since {}",
                        pool.name,
                        held.claim.holder(),
                        crate::pools::store::format_time(held.claim.since)
                    );
                    registry.note_conflict((node, &record.id), &pool.name, address, &conflict).await?;
                    conflicts.push(conflict);
                }
                _ => {}
            }
        }
        for conflict in &conflicts {
            log::error(&format!(
                "address conflict: container {} on node {node} has {conflict}; the container keeps running \
                 (netrt never changes a running container's address): stop one of them",
                record.id
            ));
        }
        if conflicts != record.conflicts {
            record.conflicts = conflicts;
            store.update_complete(&record).map_err(failed)?;
        }
    }
    Ok(())
}

/// Carries out the releases earlier runs could not; returns what it did.
pub async fn settle_pending(
    store: &Store,
    registry: &mut AnyStore,
    node: &str,
) -> std::result::Result<Vec<String>, StoreError> {
    let mut lines = vec![];
    for id in store.pending_releases().map_err(|e| StoreError::Failed(e.to_string()))? {
        for held in claims::release(registry, node, &id).await? {
            lines.push(format!("released {} of pool {} (container {id}, left pending)", held.claim.address, held.pool));
        }
        store.remove_pending_release(&id).map_err(|e| StoreError::Failed(e.to_string()))?;
    }
    Ok(lines)
}

/// gc's part for pools: releases left pending, the claims of this node's
/// containers that have no record (their setup was killed, or their
/// record was removed by hand), and, with a `prober`, what dead nodes hold
/// (see `pools::reclaim`). Only where pools are defined.
pub async fn collect(store: &Store, pools: &Pools, reclaiming: Option<Reclaiming<'_>>) -> Result<Vec<String>> {
    if pools.pools.is_empty() && store.pending_releases()?.is_empty() {
        return Ok(vec![]);
    }
    let registry_error = |e: StoreError| crate::error::Error::System(format!("pool claims not collected: {e}"));
    let mut registry = any_store::open(pools, false).await.map_err(registry_error)?;
    keep_alive(store, &mut registry, pools).await.map_err(registry_error)?;
    let mut lines = settle_pending(store, &mut registry, &pools.node).await.map_err(registry_error)?;
    let exists = |id: &str| store.exists(id);
    lines.extend(claims::release_gone(&mut registry, &pools.node, &exists).await.map_err(registry_error)?);
    lines.iter().for_each(|line| log::info(line));
    if let Some((prober, host)) = reclaiming {
        lines.extend(reclaim_logged(&mut registry, pools, prober, host).await);
    }
    Ok(lines)
}

/// What reclaim probes with: the packet socket, and the host's netlink.
pub type Reclaiming<'a> = (&'a crate::probe::Prober, &'a crate::kernel::netlink::Netlink);

/// Reclaims what dead nodes hold; a failure is logged (the next gc or
/// renew goes on where it stopped), never the caller's.
pub async fn reclaim_logged(
    registry: &mut AnyStore,
    pools: &Pools,
    prober: &crate::probe::Prober,
    host: &crate::kernel::netlink::Netlink,
) -> Vec<String> {
    match crate::pools::reclaim::reclaim(registry, pools, prober, host).await {
        Ok(lines) => {
            lines.iter().for_each(|line| log::info(line));
            lines
        }
        Err(e) => {
            let line = format!("dead nodes' addresses were not all reclaimed: {e}");
            log::error(&line);
            vec![line]
        }
    }
}
