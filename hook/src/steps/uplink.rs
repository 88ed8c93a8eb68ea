//! A guarantee on the uplink (`net.egress.min`, `net.ingress.min`):
//! admission against the uplink's declared capacity and the other
//! containers' shares, then the uplink's shaper brought in step with every
//! share (`reconcile`, which teardown, gc and a rollback run too).

use async_trait::async_trait;

use super::step::{Asked, Setup, Step, WayOut};
use crate::error::{Error, KeyError, Result};
use crate::kernel::netlink::{Link, NetError, NetResult, Netlink};
use crate::state::record::Store;
use crate::uplinks::shaper;
use crate::uplinks::share::{Capacity, Share};

pub struct Uplink;

/// A share of the uplink where the plan has a guarantee.
pub fn wanted(asked: &Asked) -> Option<Box<dyn Step>> {
    asked.plan.guarantees().next().map(|_| Box::new(Uplink) as Box<dyn Step>)
}

#[async_trait(?Send)]
impl Step for Uplink {
    fn name(&self) -> &'static str {
        "uplink guarantee"
    }

    async fn check(&mut self, setup: &mut Setup<'_>) -> Result<()> {
        let lead = setup.plan.guarantees().next().expect("a guarantee step has a guarantee");
        let refuse = |reason: String| -> Error { KeyError::new(&lead.source, &lead.value, reason).into() };
        let host = &setup.sockets.host;
        let way_out = setup.found.way_out.as_ref().expect("a guarantee comes with an attachment");
        let way = links_of(way_out, host).await.map_err(|e| refuse(e.to_string()))?;
        let uplinks = &setup.config.uplinks;
        let declared: Vec<&Link> = way.iter().filter(|l| uplinks.get(&l.name).is_some()).collect();
        let uplink_link = match declared[..] {
            [one] => one,
            [] => {
                let names: Vec<&str> = way.iter().map(|l| l.name.as_str()).collect();
                let known: Vec<&str> = uplinks.by_name.keys().map(String::as_str).collect();
                return Err(refuse(format!(
                    "no declared uplink on the attachment's way out ({}; uplinks in {}: {})",
                    if names.is_empty() { "no interface".to_string() } else { names.join(", ") },
                    setup.config.policy.path,
                    if known.is_empty() { "none".to_string() } else { known.join(", ") }
                )));
            }
            _ => {
                let names: Vec<&str> = declared.iter().map(|l| l.name.as_str()).collect();
                return Err(refuse(format!(
                    "more than one declared uplink on the attachment's way out ({}); a guarantee needs one",
                    names.join(", ")
                )));
            }
        };
        let uplink = uplinks.get(&uplink_link.name).expect("declared");
        let records = setup.journal.store().all()?;
        let held: Vec<&Share> = records.iter().filter(|r| r.id != setup.id).filter_map(|r| r.uplink.as_ref()).collect();
        let share = crate::uplinks::share::admit(uplink, &setup.plan, &held)?;
        shaper::check(host, uplink_link, share.ingress.is_some()).await.map_err(|e| refuse(e.detail))?;
        // Written ahead with the record: the shaper changes only after.
        setup.journal.record.uplink = Some(share);
        Ok(())
    }

    async fn apply(&mut self, setup: &mut Setup<'_>) -> Result<()> {
        let guarantee = setup.plan.guarantees().next().expect("a guarantee step has a guarantee").clone();
        let refuse = |e: NetError| Error::from(KeyError::new(&guarantee.source, &guarantee.value, e.to_string()));
        let mut share = setup.journal.record.uplink.clone().expect("admitted");
        let ifname = setup.journal.record.interface.clone();
        let interface = setup.sockets.container().link_by_name(&ifname).await.map_err(refuse)?;
        share.mac = interface.and_then(|link| link.mac.try_into().ok());
        // The record gets the MAC when setup commits: until then no other
        // setup runs (the lock is held), and a rollback, teardown or gc
        // leaves this container out of the tree anyway.
        setup.journal.record.uplink = Some(share.clone());
        let steps = &mut setup.steps;
        let mut changed = || {
            *steps += 1;
            crate::fault::after_step(*steps).map_err(|detail| NetError { action: "setup".into(), errno: None, detail })
        };
        let store = setup.journal.store();
        let uplinks = &setup.config.uplinks;
        reconcile(store, &setup.sockets.host, uplinks, (&share, &setup.id), Some(&share), &mut changed)
            .await
            .map_err(refuse)
    }
}

/// The host interfaces on the attachment's way to the LAN, where its
/// uplink may be: a bridge's ports, or a macvlan's lower interface and,
/// for a VLAN sub-interface, its parent.
async fn links_of(way_out: &WayOut, host: &Netlink) -> NetResult<Vec<Link>> {
    Ok(match way_out {
        WayOut::Bridge(bridge) => {
            host.links().await?.into_iter().filter(|l| l.controller == Some(bridge.index)).collect()
        }
        WayOut::Parent(parent) => vec![parent.clone()],
        WayOut::Lower(link) => {
            let mut way = vec![link.clone()];
            if link.kind.as_deref() == Some("vlan") {
                if let Some(parent) = match link.peer_index {
                    Some(index) => host.link_by_index(index).await?,
                    None => None,
                } {
                    way.push(parent);
                }
            }
            way
        }
    })
}

/// Brings the shaper of the uplink `share` is on in step with the records:
/// every other container's share, and `own` for the container `share`
/// names (setup's, not yet complete in the store; None for a teardown or
/// a rollback). Must run under the host lock.
pub async fn reconcile(
    store: &Store,
    host: &Netlink,
    uplinks: &crate::config::uplinks::Uplinks,
    (share, id): (&Share, &str),
    own: Option<&Share>,
    changed: &mut dyn FnMut() -> NetResult<()>,
) -> std::result::Result<(), NetError> {
    let records = store.all().map_err(|e| NetError {
        action: "reading the records".into(),
        errno: None,
        detail: e.to_string(),
    })?;
    let mut shares: Vec<&Share> = records
        .iter()
        .filter(|r| r.id != id)
        .filter_map(|r| r.uplink.as_ref())
        .filter(|s| s.uplink == share.uplink)
        .collect();
    shares.extend(own);
    let recorded = Capacity { bps: share.capacity_bps, reserve_bps: share.reserve_bps };
    let capacity = uplinks.get(&share.uplink).map_or(recorded, Capacity::of);
    shaper::reconcile(host, &share.uplink, capacity, &shares, changed).await
}
