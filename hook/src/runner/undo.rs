//! The journal's replay: undoes everything a record lists, in reverse,
//! and removes the record. Teardown, gc and a setup's rollback all come
//! here. The kernel objects' undo is here, because netrt's own devices
//! go together in one request per namespace whichever step made them; the
//! lease, the uplink share and the pool claims have their undo in their
//! step's file.

use crate::error::{Error, Result};
use crate::fault;
use crate::kernel::names::{self, TEARDOWN_GROUP};
use crate::kernel::netlink::{Link, NetError, NetResult, Netlink};
use crate::kernel::netns::NetNs;
use crate::kernel::sockets::{Side, Sockets};
use crate::log;
use crate::pools::any_store::AnyStore;
use crate::state::record::{Created, Record, Store, MARKED_SINCE_VERSION};
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
    let marks = Marks::for_record(record);
    let failures = undo_all(&fault::undone(&record.created), &sockets, &vlans_in_use(&others), marks).await;
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

/// Whether a host device must carry netrt's mark (`names::OWN_GROUP`) to
/// be deleted: a record written before netrt marked its devices names
/// unmarked ones, which its teardown must still remove.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marks {
    Checked,
    Unchecked,
}

impl Marks {
    pub fn for_record(record: &Record) -> Marks {
        if record.version >= MARKED_SINCE_VERSION {
            Marks::Checked
        } else {
            Marks::Unchecked
        }
    }
}

/// A device netrt made, as a record lists it: where it is, its name, its
/// index if known, the kinds it may be, and whether the mark is checked.
struct Device {
    side: Side,
    name: String,
    index: Option<u32>,
    kinds: &'static [&'static str],
    marked: bool,
}

fn device_of(object: &Created, marks: Marks) -> Option<Device> {
    let (side, name, index, kinds): (Side, &String, Option<u32>, &'static [&'static str]) = match object {
        Created::Ifb { side, name } => (*side, name, None, &["ifb"]),
        Created::HostVeth { name, index } => (Side::Host, name, *index, &["veth"]),
        Created::VlanLink { name, index } => (Side::Host, name, *index, &["vlan"]),
        Created::ContainerLink { name, index } => (Side::Container, name, *index, &["macvlan", "veth"]),
        _ => return None,
    };
    let marked = marks == Marks::Checked && side == Side::Host;
    Some(Device { side, name: name.clone(), index, kinds, marked })
}

/// Removes one object netrt made, after checking it is still that object.
/// Returns whether anything was removed; a missing object is not an error.
pub async fn undo(object: &Created, sockets: &Sockets, marks: Marks) -> NetResult<bool> {
    if let Some(device) = device_of(object, marks) {
        let Some(on) = sockets.on(device.side) else { return Ok(false) };
        return match find_named(on, &device).await? {
            Some(link) => on.delete_link(&link).await,
            None => Ok(false),
        };
    }
    let (side, index, name, root) = match object {
        Created::Ifb { .. } | Created::HostVeth { .. } | Created::VlanLink { .. } | Created::ContainerLink { .. } => {
            unreachable!("a device")
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

/// Undoes objects in reverse order, trying all, and returns the failures.
/// Devices netrt made (its host veth and ifb, a VLAN sub-interface no other
/// container uses, a macvlan or ifb in the container's namespace) are not
/// deleted one by one: unregistering a device waits for an RCU grace
/// period, so they go together at the end, one request per namespace, and
/// the qdiscs and filters on them go with them. A VLAN sub-interface named
/// in `vlans_in_use` (by another container) is kept.
pub async fn undo_all(objects: &[Created], sockets: &Sockets, vlans_in_use: &[String], marks: Marks) -> Vec<NetError> {
    let mut failures = vec![];
    let mut going: Vec<(Side, Link)> = vec![];
    let own_device = |object: &Created| -> Option<Device> {
        device_of(object, marks)
            .filter(|device| !matches!(object, Created::VlanLink { .. }) || !vlans_in_use.contains(&device.name))
    };
    let devices: Vec<(Side, String)> = objects.iter().filter_map(own_device).map(|d| (d.side, d.name)).collect();
    for (undone, object) in objects.iter().rev().enumerate() {
        if undone > 0 {
            fault::kill_point("teardown", undone as u32);
        }
        let result = match (own_device(object), object) {
            (Some(device), _) => match sockets.on(device.side) {
                Some(on) => {
                    find_named(on, &device).await.map(|found| going.extend(found.map(|link| (device.side, link))))
                }
                None => Ok(()),
            },
            (None, Created::VlanLink { .. } | Created::NetnsPin { .. }) => Ok(()),
            (None, Created::RootQdisc { side, name, .. } | Created::IngressQdisc { side, name, .. })
                if devices.contains(&(*side, name.clone())) =>
            {
                Ok(())
            }
            (None, _) => undo(object, sockets, marks).await.map(|_| ()),
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
            if let Err(e) = undo(pin, sockets, marks).await {
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

/// What is under a device's name.
enum Named {
    Absent,
    /// The device: of one of its kinds, with its index when that is
    /// known, and with netrt's mark when that is checked.
    Own(Link),
    /// Something that fails a check: not netrt's, so it stays.
    Foreign(Link),
}

async fn look_up(on: &Netlink, device: &Device) -> NetResult<Named> {
    let Some(link) = on.link_by_name(&device.name).await? else { return Ok(Named::Absent) };
    let same = link.kind.as_deref().is_some_and(|kind| device.kinds.contains(&kind))
        && device.index.is_none_or(|index| index == link.index);
    Ok(if same && (!device.marked || names::is_marked(link.group)) { Named::Own(link) } else { Named::Foreign(link) })
}

/// The device still there under its name, if it is netrt's (see `Named`).
async fn find_named(on: &Netlink, device: &Device) -> NetResult<Option<Link>> {
    Ok(match look_up(on, device).await? {
        Named::Own(link) => Some(link),
        Named::Absent => None,
        Named::Foreign(link) => {
            if device.marked && !names::is_marked(link.group) {
                log::info(&format!(
                    "{} {} is not netrt's (it lacks netrt's mark, link group {:#x}): left as it is",
                    link.kind.as_deref().unwrap_or("device"),
                    link.name,
                    names::OWN_GROUP
                ));
            }
            None
        }
    })
}

/// Deletes `object`, a device a run of netrt may have left under the name
/// a new setup needs, if it is netrt's (its mark checked); returns what is
/// under the name and is not netrt's, which stays. One lookup a name.
pub async fn remove_stray(object: &Created, sockets: &Sockets) -> NetResult<Option<Link>> {
    let device = device_of(object, Marks::Checked).expect("a stray is a device");
    let Some(on) = sockets.on(device.side) else { return Ok(None) };
    match look_up(on, &device).await? {
        Named::Own(link) => on.delete_link(&link).await.map(|_| None),
        Named::Absent => Ok(None),
        Named::Foreign(link) => Ok(Some(link)),
    }
}
