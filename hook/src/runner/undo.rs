//! The journal's replay: undoes everything a record lists, in reverse,
//! and removes the record. Teardown, gc and a setup's rollback all come
//! here. The kernel objects' undo is here, because netrt's own devices
//! go together in one request per namespace whichever step made them; the
//! lease, the uplink share and the pool claims have their undo in their
//! step's file.

use crate::error::{Error, Result};
use crate::fault;
use crate::kernel::netlink::{Link, NetError, NetResult, Netlink};
use crate::kernel::netns::NetNs;
use crate::kernel::sockets::{Side, Sockets};
use crate::log;
use crate::pools::any_store::AnyStore;
use crate::state::record::{Created, Record, Store};
use crate::steps;

/// Undoes everything a record lists and removes the record; when it
/// returns Ok, every host object of the container is gone. On failure the
/// record stays for a retry. Must run under the host lock. `registry`:
/// one a rollback has open already, with this node's name, for the claims.
pub async fn replay(
    store: &Store,
    record: &Record,
    host_ns: &NetNs,
    registry: Option<(&mut AnyStore, &str)>,
) -> Result<()> {
    // Only a VLAN sub-interface is shared, and only it needs the others.
    let shares_a_vlan = record.created.iter().any(|c| matches!(c, Created::VlanLink { .. }));
    let others = if shares_a_vlan { other_records(store, &record.id)? } else { vec![] };
    let sockets = sockets_for_record(record, host_ns)?;
    if let Some(lease) = &record.dhcp {
        steps::lease::release(record, lease);
    }
    let failures = undo_all(&fault::undone(&record.created), &sockets, &vlans_in_use(&others)).await;
    if let Some(e) = failures.first() {
        return Err(Error::System(e.to_string()));
    }
    if let Some(share) = record.uplink.as_ref().filter(|_| !fault::leaks("uplink")) {
        // A configuration that cannot be read leaves the recorded capacity.
        let uplinks = crate::config::load().map(|c| c.uplinks).unwrap_or_default();
        let mut changes = 0;
        let mut changed = || {
            changes += 1;
            fault::kill_point("teardown-uplink", changes);
            Ok(())
        };
        steps::uplink::reconcile(store, &sockets.host, &uplinks, (share, &record.id), None, &mut changed)
            .await
            .map_err(|e| Error::System(e.to_string()))?;
    }
    if record.pool_claims && !fault::leaks("pool_claim") {
        match registry {
            Some((registry, node)) => steps::claims::release_or_remember(store, registry, node, &record.id).await,
            None => steps::claims::release(store, &record.id).await,
        }
    }
    store.remove(record)
}

/// gc's work for one record whose container is gone: undoes it, and says
/// what went.
pub async fn collect_gone(store: &Store, record: &Record, host_ns: &NetNs) -> Result<String> {
    replay(store, record, host_ns, None)
        .await
        .map_err(|e| Error::System(format!("cannot clean up after {}: {e}", record.id)))?;
    let mut what: Vec<String> = record.created.iter().filter_map(describe_host_object).collect();
    what.dedup();
    if let Some(share) = &record.uplink {
        what.push(format!("its guarantee on uplink {}", share.uplink));
    }
    if let Some(lease) = &record.dhcp {
        what.push(format!("its DHCP lease of {}", lease.address));
    }
    what.push("its record".into());
    let line = format!("removed {}: {}", record.id, what.join(", "));
    log::info(&line);
    Ok(line)
}

fn other_records(store: &Store, id: &str) -> Result<Vec<Record>> {
    Ok(store.all()?.into_iter().filter(|r| r.id != id).collect())
}

/// VLAN sub-interfaces other containers' attachments hang from.
fn vlans_in_use(others: &[Record]) -> Vec<String> {
    others.iter().filter_map(|r| r.plan.attachment.as_ref()?.vlan_interface()).collect()
}

/// Sockets for undoing a record: the container's namespace only if the
/// record's path, or the pin setup made, still leads to that very namespace.
fn sockets_for_record(record: &Record, host_ns: &NetNs) -> Result<Sockets> {
    let host = Netlink::open_in(host_ns).map_err(Error::System)?;
    let container = record.namespace().map(|ns| Netlink::open_in(&ns).map_err(Error::System)).transpose()?;
    Ok(Sockets { host, container })
}

fn describe_host_object(object: &Created) -> Option<String> {
    match object {
        Created::Ifb { side: Side::Host, name } => Some(format!("ifb {name}")),
        Created::HostVeth { name, .. } => Some(format!("host veth {name}")),
        Created::VlanLink { name, .. } => Some(format!("VLAN sub-interface {name} (if no other container uses it)")),
        Created::RootQdisc { side: Side::Host, name, .. } | Created::IngressQdisc { side: Side::Host, name, .. } => {
            Some(format!("qdiscs on {name}"))
        }
        _ => None,
    }
}

/// Removes one object netrt made, after checking it is still that object.
/// Returns whether anything was removed; a missing object is not an error.
pub async fn undo(object: &Created, sockets: &Sockets) -> NetResult<bool> {
    let (side, index, name, root) = match object {
        Created::Ifb { side, name } => {
            let Some(on) = sockets.on(*side) else { return Ok(false) };
            return delete_named(on, name, None, &["ifb"]).await;
        }
        Created::HostVeth { name, index } => return delete_named(&sockets.host, name, *index, &["veth"]).await,
        Created::VlanLink { name, index } => return delete_named(&sockets.host, name, *index, &["vlan"]).await,
        Created::ContainerLink { name, index } => {
            let Some(on) = sockets.on(Side::Container) else { return Ok(false) };
            return delete_named(on, name, *index, &["macvlan", "veth"]).await;
        }
        Created::DefaultRoute { ours, replaced } => {
            let Some(on) = sockets.on(Side::Container) else { return Ok(false) };
            let removed = on.delete_route(ours).await?;
            for route in replaced {
                match on.add_route(route).await {
                    // Its interface is gone, or it is back already.
                    Err(e) if matches!(e.errno, Some(libc::ENODEV) | Some(libc::EEXIST)) => {}
                    other => other?,
                }
            }
            return Ok(removed);
        }
        Created::NetnsPin { path } => {
            return crate::kernel::netns::unpin(std::path::Path::new(path)).map_err(|detail| NetError {
                action: "teardown".into(),
                errno: None,
                detail,
            })
        }
        Created::RootQdisc { side, index, name } => (side, index, name, true),
        Created::IngressQdisc { side, index, name } => (side, index, name, false),
    };
    let Some(on) = sockets.on(*side) else { return Ok(false) };
    // An index can be reused by a new interface; the name must match too.
    let Some(link) = on.link_by_index(*index).await?.filter(|link| &link.name == name) else {
        return Ok(false);
    };
    if root {
        on.delete_own_root_tbf(&link).await
    } else {
        on.delete_ingress_qdisc(&link).await
    }
}

/// The link group netrt's devices join for the moment of their deletion
/// ("nrtd"), so that one request deletes them all (see `delete_together`).
/// Teardowns run under the host lock, so the group holds one container's
/// devices, or also those of a teardown that was killed half-way, which
/// are going anyway.
pub const TEARDOWN_GROUP: u32 = 0x6e72_7464;

/// Undoes objects in reverse order, trying all, and returns the failures.
/// Devices netrt made (its host veth and ifb, a VLAN sub-interface no other
/// container uses, a macvlan or ifb in the container's namespace) are not
/// deleted one by one: unregistering a device waits for an RCU grace
/// period, so they go together at the end, one request per namespace, and
/// the qdiscs and filters on them go with them. A VLAN sub-interface named
/// in `vlans_in_use` (by another container) is kept.
pub async fn undo_all(objects: &[Created], sockets: &Sockets, vlans_in_use: &[String]) -> Vec<NetError> {
    let mut failures = vec![];
    let mut going: Vec<(Side, Link)> = vec![];
    let own_device = |object: &Created| -> Option<(Side, String, Option<u32>, &'static [&'static str])> {
        match object {
            Created::Ifb { side, name } => Some((*side, name.clone(), None, &["ifb"])),
            Created::HostVeth { name, index } => Some((Side::Host, name.clone(), *index, &["veth"])),
            Created::VlanLink { name, index } if !vlans_in_use.contains(name) => {
                Some((Side::Host, name.clone(), *index, &["vlan"]))
            }
            Created::ContainerLink { name, index } => {
                Some((Side::Container, name.clone(), *index, &["macvlan", "veth"]))
            }
            _ => None,
        }
    };
    let devices: Vec<(Side, String)> =
        objects.iter().filter_map(own_device).map(|(side, name, ..)| (side, name)).collect();
    for (undone, object) in objects.iter().rev().enumerate() {
        if undone > 0 {
            fault::kill_point("teardown", undone as u32);
        }
        let result = match (own_device(object), object) {
            (Some((side, name, index, kinds)), _) => match sockets.on(side) {
                Some(on) => {
                    find_named(on, &name, index, kinds).await.map(|found| going.extend(found.map(|link| (side, link))))
                }
                None => Ok(()),
            },
            (None, Created::VlanLink { .. } | Created::NetnsPin { .. }) => Ok(()),
            (None, Created::RootQdisc { side, name, .. } | Created::IngressQdisc { side, name, .. })
                if devices.contains(&(*side, name.clone())) =>
            {
                Ok(())
            }
            (None, _) => undo(object, sockets).await.map(|_| ()),
        };
        if let Err(e) = result {
            failures.push(e);
        }
    }
    for side in [Side::Container, Side::Host] {
        let links: Vec<Link> = going.iter().filter(|(s, _)| *s == side).map(|(_, link)| link.clone()).collect();
        if let (Some(on), false) = (sockets.on(side), links.is_empty()) {
            if let Err(e) = delete_together(on, &links).await {
                failures.push(e);
            }
        }
    }
    // The namespace may go only once what netrt put inside it is gone.
    if failures.is_empty() {
        for pin in objects.iter().filter(|object| matches!(object, Created::NetnsPin { .. })) {
            if let Err(e) = undo(pin, sockets).await {
                failures.push(e);
            }
        }
    }
    fault::kill_point("teardown", objects.len() as u32);
    failures
}

/// Deletes netrt's own `links` of one namespace, already checked to be
/// netrt's, and returns when they are gone: one device by its index; several
/// as one batch through `TEARDOWN_GROUP`, so the kernel waits for one RCU
/// grace period instead of one per device. A device that vanished meanwhile
/// (its namespace died) is left out.
pub async fn delete_together(on: &Netlink, links: &[Link]) -> NetResult<()> {
    if let [link] = links {
        return on.delete_link(link).await.map(|_| ());
    }
    for link in links {
        match on.set_group(link, TEARDOWN_GROUP).await {
            Err(e) if e.errno == Some(libc::ENODEV) => {}
            other => other?,
        }
    }
    on.delete_group(TEARDOWN_GROUP).await.map(|_| ())
}

/// The link called `name`, if it is of one of `kinds` and, when `index` is
/// given, still has that index.
async fn find_named(on: &Netlink, name: &str, index: Option<u32>, kinds: &[&str]) -> NetResult<Option<Link>> {
    Ok(on.link_by_name(name).await?.filter(|link| {
        link.kind.as_deref().is_some_and(|kind| kinds.contains(&kind)) && index.is_none_or(|index| index == link.index)
    }))
}

/// Deletes the link `find_named` finds, if any.
pub async fn delete_named(on: &Netlink, name: &str, index: Option<u32>, kinds: &[&str]) -> NetResult<bool> {
    match find_named(on, name, index, kinds).await? {
        Some(link) => on.delete_link(&link).await,
        None => Ok(false),
    }
}
