//! The plan's limits on the container's interface, as tbf qdiscs.
//!
//! Where the interface is a veth whose peer is in the hook's own
//! namespace, shaping happens on that host-side peer, out of the
//! container's reach: container ingress is a tbf root qdisc on the host
//! veth; container egress is redirected from the host veth's ingress to an
//! ifb carrying the tbf. Otherwise both limits are set inside the
//! container's namespace.

use async_trait::async_trait;

use super::step::{Asked, Placement, Setup, Step};
use crate::error::{Error, KeyError, Result};
use crate::kernel::names;
use crate::kernel::netlink::{Link, NetError, NetResult};
use crate::kernel::netns::NetNs;
use crate::kernel::sockets::{Side, Sockets};
use crate::request::plan::{Direction, Plan, Shaper, Tbf};
use crate::state::record::Created;

#[derive(Default)]
pub struct Shaping {
    buckets: Vec<(Shaper, Tbf)>,
}

/// Shaping where the plan has a limit.
pub fn wanted(asked: &Asked) -> Option<Box<dyn Step>> {
    asked.plan.shapers().next().map(|_| Box::new(Shaping::default()) as Box<dyn Step>)
}

#[async_trait(?Send)]
impl Step for Shaping {
    fn name(&self) -> &'static str {
        "shaping"
    }

    async fn check(&mut self, setup: &mut Setup<'_>) -> Result<()> {
        let frame_bytes = match setup.found.frame_bytes {
            Some(bytes) => bytes,
            None => {
                let placement = locate(&setup.sockets, setup.host_namespace, setup.namespace)
                    .await
                    .map_err(|reason| setup.refuse(reason))?;
                setup.journal.record.interface = placement.interface().name.clone();
                setup.journal.record.host_veth = placement.host_veth().map(|v| v.name.clone());
                let bytes = placement.frame_bytes();
                setup.found.placement = Some(placement);
                bytes
            }
        };
        self.buckets = token_buckets(&setup.plan, frame_bytes)?;
        Ok(())
    }

    fn planned(&self, setup: &Setup<'_>) -> Vec<Created> {
        match &setup.found.placement {
            Some(placement) => planned_objects(&setup.plan, placement, &names::ifb_name(&setup.id)),
            None => vec![],
        }
    }

    async fn apply(&mut self, setup: &mut Setup<'_>) -> Result<()> {
        let placement = setup.found.placement.clone().expect("located or attached");
        let ifb = names::ifb_name(&setup.id);
        for (shaper, tbf) in &self.buckets {
            let (side, link, via_ifb) = layout(shaper.direction, &placement);
            let on = Shaped { side, link, tbf, key: (&shaper.rate_source, &shaper.rate_value) };
            if via_ifb {
                shape_through_ifb(setup, &on, &ifb).await?;
            } else {
                shape_root(setup, &on).await?;
            }
        }
        Ok(())
    }
}

/// One direction's shaper: where it goes, and the setting that asked for it.
struct Shaped<'a> {
    side: Side,
    link: &'a Link,
    tbf: &'a Tbf,
    key: (&'a str, &'a str),
}

impl Shaped<'_> {
    fn refuse(&self, e: NetError) -> Error {
        KeyError::new(self.key.0, self.key.1, e.to_string()).into()
    }
}

async fn shape_root(setup: &mut Setup<'_>, shaped: &Shaped<'_>) -> Result<()> {
    let on = setup.sockets.on(shaped.side).expect("setup has both sockets");
    let link = shaped.link;
    on.add_root_tbf(link, shaped.tbf).await.map_err(|e| shaped.refuse(explain_exists(e, link)))?;
    setup.journal.made(Created::RootQdisc { side: shaped.side, index: link.index, name: link.name.clone() });
    setup.step_done(shaped.key.0, shaped.key.1)
}

async fn shape_through_ifb(setup: &mut Setup<'_>, shaped: &Shaped<'_>, ifb_name: &str) -> Result<()> {
    let (side, link, key) = (shaped.side, shaped.link, shaped.key);
    let ifb = on(setup, side).add_ifb(ifb_name).await.map_err(|e| shaped.refuse(e))?;
    setup.journal.made(Created::Ifb { side, name: ifb.name.clone() });
    setup.step_done(key.0, key.1)?;
    on(setup, side).set_up(&ifb).await.map_err(|e| shaped.refuse(e))?;
    setup.step_done(key.0, key.1)?;
    on(setup, side).add_root_tbf(&ifb, shaped.tbf).await.map_err(|e| shaped.refuse(e))?;
    setup.step_done(key.0, key.1)?;
    on(setup, side).add_ingress_qdisc(link).await.map_err(|e| shaped.refuse(explain_exists(e, link)))?;
    setup.journal.made(Created::IngressQdisc { side, index: link.index, name: link.name.clone() });
    setup.step_done(key.0, key.1)?;
    on(setup, side).redirect_all(link, &ifb).await.map_err(|e| shaped.refuse(e))?;
    setup.step_done(key.0, key.1)
}

fn on<'s>(setup: &'s Setup<'_>, side: Side) -> &'s crate::kernel::netlink::Netlink {
    setup.sockets.on(side).expect("setup has both sockets")
}

fn explain_exists(mut e: NetError, link: &Link) -> NetError {
    if e.errno == Some(libc::EEXIST) {
        e.detail = format!("{} already has such a qdisc, set up by someone else; netrt does not replace it", link.name);
    }
    e
}

/// Finds the interface to shape and where its limits belong.
pub async fn locate(
    sockets: &Sockets,
    host_ns: &NetNs,
    container_ns: &NetNs,
) -> std::result::Result<Placement, String> {
    let container = sockets.container();
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
    let host_seen_from_container = sockets.container().netnsid_of(host_ns).await?;
    let container_seen_from_host = sockets.host.netnsid_of(container_ns).await?;
    Ok(host_seen_from_container.is_some()
        && interface.peer_netnsid == host_seen_from_container
        && container_seen_from_host.is_some()
        && host_veth.peer_netnsid == container_seen_from_host)
}

/// The token buckets for each planned direction, checked against the
/// interface's frame size before anything changes.
pub fn token_buckets(plan: &Plan, frame_bytes: u32) -> std::result::Result<Vec<(Shaper, Tbf)>, KeyError> {
    plan.shapers().map(|s| Ok((s.clone(), s.tbf(frame_bytes)?))).collect()
}

/// Everything shaping will create, in order, for the write-ahead record.
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
