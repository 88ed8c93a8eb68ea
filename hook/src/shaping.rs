//! Applies a plan's limits to a container's interface, each step recorded so
//! that a failure undoes exactly what was done, and removes them again.
//!
//! Where a container's interface is a veth whose peer is in the hook's own
//! namespace, shaping happens on that host-side peer, out of the container's
//! reach: container ingress is a tbf root qdisc on the host veth; container
//! egress is redirected from the host veth's ingress to an ifb carrying the
//! tbf. Otherwise both limits are set inside the container's namespace.

use crate::fault;
use crate::kernel::netlink::{Link, NetError, NetResult, Netlink};
use crate::kernel::netns::NetNs;
use crate::request::plan::{Direction, Plan, Shaper, Tbf};
use crate::state::record::{Created, Side};

/// The two sockets setup works through.
pub struct Sockets {
    pub host: Netlink,
    /// None at teardown when the container's namespace is gone.
    pub container: Option<Netlink>,
}

impl Sockets {
    fn on(&self, side: Side) -> Option<&Netlink> {
        match side {
            Side::Host => Some(&self.host),
            Side::Container => self.container.as_ref(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// The interface's veth peer is on the host: shape there.
    HostSide { interface: Link, host_veth: Link },
    /// No host-side peer: shape inside the container's namespace.
    InNamespace { interface: Link },
}

impl Placement {
    pub fn interface(&self) -> &Link {
        match self {
            Placement::HostSide { interface, .. } | Placement::InNamespace { interface } => interface,
        }
    }

    pub fn host_veth(&self) -> Option<&Link> {
        match self {
            Placement::HostSide { host_veth, .. } => Some(host_veth),
            Placement::InNamespace { .. } => None,
        }
    }

    /// The largest frame the shaper will see.
    pub fn frame_bytes(&self) -> u32 {
        let interface = self.interface().frame_bytes();
        self.host_veth().map_or(interface, |veth| veth.frame_bytes().max(interface))
    }
}

/// Finds the interface to shape and where its limits belong.
pub async fn locate(sockets: &Sockets, host_ns: &NetNs, container_ns: &NetNs) -> Result<Placement, String> {
    let container = sockets.container.as_ref().expect("setup has the container's socket");
    let text = |e: NetError| e.to_string();
    let index = container
        .default_route_interface()
        .await
        .map_err(text)?
        .ok_or("the container has no default route (IPv4 or IPv6), so there is no interface to shape")?;
    let interface = container
        .link_by_index(index)
        .await
        .map_err(text)?
        .ok_or("the interface of the container's default route vanished")?;
    let host_veth = match (interface.is_veth(), interface.peer_index, interface.peer_netnsid) {
        (true, Some(peer), Some(_)) => sockets.host.link_by_index(peer).await.map_err(text)?,
        _ => None,
    };
    if let Some(host_veth) = host_veth {
        if is_peer_pair(sockets, &interface, &host_veth, host_ns, container_ns).await.map_err(text)? {
            return Ok(Placement::HostSide { interface, host_veth });
        }
    }
    Ok(Placement::InNamespace { interface })
}

/// True only if `host_veth` is, beyond doubt, the veth peer of `interface`:
/// each names the other's index, and each names the other's namespace. An
/// index alone could be a host interface that merely shares the number.
async fn is_peer_pair(
    sockets: &Sockets,
    interface: &Link,
    host_veth: &Link,
    host_ns: &NetNs,
    container_ns: &NetNs,
) -> NetResult<bool> {
    if !host_veth.is_veth() || host_veth.peer_index != Some(interface.index) {
        return Ok(false);
    }
    let container = sockets.container.as_ref().expect("setup has the container's socket");
    let host_seen_from_container = container.netnsid_of(host_ns).await?;
    let container_seen_from_host = sockets.host.netnsid_of(container_ns).await?;
    Ok(host_seen_from_container.is_some()
        && interface.peer_netnsid == host_seen_from_container
        && container_seen_from_host.is_some()
        && host_veth.peer_netnsid == container_seen_from_host)
}

/// The token buckets for each planned direction, checked against the
/// interface's frame size before anything changes.
pub fn token_buckets(plan: &Plan, frame_bytes: u32) -> Result<Vec<(Shaper, Tbf)>, crate::error::KeyError> {
    plan.shapers().map(|s| Ok((s.clone(), s.tbf(frame_bytes)?))).collect()
}

/// Everything setup will create, in order, for the write-ahead record.
pub fn planned_objects(plan: &Plan, placement: &Placement, ifb: &str) -> Vec<Created> {
    let mut objects = vec![];
    for shaper in plan.shapers() {
        let (side, link, via_ifb) = layout(shaper.direction, placement);
        if via_ifb {
            objects.push(Created::Ifb { side, name: ifb.to_string() });
            objects.push(Created::IngressQdisc { side, index: link.index, name: link.name.clone() });
        } else {
            objects.push(Created::RootQdisc { side, index: link.index, name: link.name.clone() });
        }
    }
    objects
}

/// Which namespace and interface a direction is shaped on, and whether it
/// takes the detour through an ifb (shaping what the interface receives).
fn layout(direction: Direction, placement: &Placement) -> (Side, &Link, bool) {
    match (placement, direction) {
        (Placement::HostSide { host_veth, .. }, Direction::Ingress) => (Side::Host, host_veth, false),
        (Placement::HostSide { host_veth, .. }, Direction::Egress) => (Side::Host, host_veth, true),
        (Placement::InNamespace { interface }, Direction::Egress) => (Side::Container, interface, false),
        (Placement::InNamespace { interface }, Direction::Ingress) => (Side::Container, interface, true),
    }
}

/// Applies the limits. On failure, the error names the direction whose step
/// failed; `done` holds what was created, for the caller to undo.
pub async fn apply(
    buckets: &[(Shaper, Tbf)],
    placement: &Placement,
    ifb: &str,
    sockets: &Sockets,
    done: &mut Vec<Created>,
    steps: &mut u32,
) -> Result<(), (Direction, NetError)> {
    for (shaper, tbf) in buckets {
        let (side, link, via_ifb) = layout(shaper.direction, placement);
        let on = sockets.on(side).expect("setup has both sockets");
        let result = if via_ifb {
            shape_through_ifb(on, side, link, ifb, tbf, done, steps).await
        } else {
            shape_root(on, side, link, tbf, done, steps).await
        };
        result.map_err(|e| (shaper.direction, e))?;
    }
    Ok(())
}

async fn shape_root(
    on: &Netlink,
    side: Side,
    link: &Link,
    tbf: &Tbf,
    done: &mut Vec<Created>,
    steps: &mut u32,
) -> NetResult<()> {
    on.add_root_tbf(link, tbf).await.map_err(|e| explain_exists(e, link))?;
    done.push(Created::RootQdisc { side, index: link.index, name: link.name.clone() });
    step_done(steps)
}

async fn shape_through_ifb(
    on: &Netlink,
    side: Side,
    link: &Link,
    ifb_name: &str,
    tbf: &Tbf,
    done: &mut Vec<Created>,
    steps: &mut u32,
) -> NetResult<()> {
    let ifb = on.add_ifb(ifb_name).await?;
    done.push(Created::Ifb { side, name: ifb.name.clone() });
    step_done(steps)?;
    on.set_up(&ifb).await?;
    step_done(steps)?;
    on.add_root_tbf(&ifb, tbf).await?;
    step_done(steps)?;
    on.add_ingress_qdisc(link).await.map_err(|e| explain_exists(e, link))?;
    done.push(Created::IngressQdisc { side, index: link.index, name: link.name.clone() });
    step_done(steps)?;
    on.redirect_all(link, &ifb).await?;
    step_done(steps)
}

/// Counts a finished step; with the test-only fault switch, fails after
/// the step it names.
pub fn step_done(steps: &mut u32) -> NetResult<()> {
    *steps += 1;
    fault::after_step(*steps).map_err(|detail| NetError { action: "setup".into(), errno: None, detail })
}

fn explain_exists(mut e: NetError, link: &Link) -> NetError {
    if e.errno == Some(libc::EEXIST) {
        e.detail = format!("{} already has such a qdisc, set up by someone else; netrt does not replace it", link.name);
    }
    e
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::settings::from_words;

    fn link(index: u32, name: &str, mtu: u32) -> Link {
        Link { index, name: name.into(), kind: Some("veth".into()), mtu, ..Link::default() }
    }

    fn plan(words: &[&str]) -> Plan {
        let words: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        crate::request::plan::build(&from_words(&words).unwrap()).unwrap()
    }

    #[test]
    fn host_side_layout() {
        let placement = Placement::HostSide { interface: link(2, "eth0", 1500), host_veth: link(9, "veth9", 1500) };
        let objects = planned_objects(&plan(&["net.egress=1mbit", "net.ingress=2mbit"]), &placement, "nrtiX");
        assert_eq!(
            objects,
            vec![
                Created::Ifb { side: Side::Host, name: "nrtiX".into() },
                Created::IngressQdisc { side: Side::Host, index: 9, name: "veth9".into() },
                Created::RootQdisc { side: Side::Host, index: 9, name: "veth9".into() },
            ]
        );
    }

    #[test]
    fn in_namespace_layout() {
        let placement = Placement::InNamespace { interface: link(2, "eth0", 1500) };
        let objects = planned_objects(&plan(&["net.egress=1mbit", "net.ingress=2mbit"]), &placement, "nrtiX");
        assert_eq!(
            objects,
            vec![
                Created::RootQdisc { side: Side::Container, index: 2, name: "eth0".into() },
                Created::Ifb { side: Side::Container, name: "nrtiX".into() },
                Created::IngressQdisc { side: Side::Container, index: 2, name: "eth0".into() },
            ]
        );
    }

    #[test]
    fn frame_size_is_the_larger_mtu() {
        let placement = Placement::HostSide { interface: link(2, "eth0", 1500), host_veth: link(9, "veth9", 9000) };
        assert_eq!(placement.frame_bytes(), 9014);
        let buckets = token_buckets(&plan(&["net.ingress=1mbit", "net.ingress.burst=2k"]), placement.frame_bytes());
        assert!(buckets
            .unwrap_err()
            .to_string()
            .contains("smaller than one frame on the shaped interface (9014 bytes)"));
    }
}
