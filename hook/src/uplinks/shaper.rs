//! The shaper on an uplink, kept in step with the shares the records list:
//! every change of a guarantee (setup, teardown, gc, a rollback) recomputes
//! the tree from the records and makes the kernel hold it. A run killed
//! anywhere leaves a state the next one corrects, under the host lock.
//!
//! netrt's own objects: the root htb `6e72:` on the uplink (the kernel's
//! default root qdisc comes back when it goes), and for ingress an ifb
//! `nrtu<uplink index>` with the uplink's ingress qdisc redirecting to it.
//! The ifb is made first and removed last, so an ingress qdisc on an
//! uplink without it is someone else's.

use crate::kernel::names::{self, uplink_ifb_name};
use crate::kernel::netlink::{Link, NetError, NetResult, Netlink, QdiscInfo};
use crate::request::plan::Direction;

use super::share::{self, Capacity, Share, Tree, DEFAULT_MINOR, MAJOR, ROOT_MINOR};

const TC_H_ROOT: u32 = 0xffff_ffff;
const TC_H_INGRESS: u32 = 0xffff_fff1;
/// An ifb starts with a queue of 32 packets; an htb leaf's pfifo takes its
/// length from the device.
const IFB_QUEUE_PACKETS: u32 = 1000;

/// netrt's ingress ifbs whose uplink is gone (deleted while it carried a
/// guarantee).
pub fn orphan_ifbs(links: &[Link]) -> Vec<&Link> {
    links
        .iter()
        .filter(|l| l.kind.as_deref() == Some("ifb") && names::is_marked(l.group))
        .filter(|l| {
            l.name
                .strip_prefix("nrtu")
                .and_then(|index| index.parse::<u32>().ok())
                .is_some_and(|index| !links.iter().any(|uplink| uplink.index == index))
        })
        .collect()
}

/// Why netrt may not shape `uplink`, checked before any change.
pub async fn check(host: &Netlink, uplink: &Link, needs_ingress: bool) -> NetResult<()> {
    let qdiscs = host.qdiscs(uplink).await?;
    if let Some(foreign) = foreign_root(&qdiscs) {
        return Err(refusal(uplink, foreign));
    }
    if needs_ingress
        && qdiscs.iter().any(|q| q.parent == TC_H_INGRESS)
        && host.link_by_name(&uplink_ifb_name(uplink.index)).await?.is_none()
    {
        return Err(NetError {
            action: format!("checking uplink {}", uplink.name),
            errno: None,
            detail: format!("{} has an ingress qdisc set by someone else; netrt does not replace it", uplink.name),
        });
    }
    Ok(())
}

/// A root qdisc that is neither the kernel's default (handle 0) nor netrt's.
fn foreign_root(qdiscs: &[QdiscInfo]) -> Option<&QdiscInfo> {
    qdiscs
        .iter()
        .find(|q| q.parent == TC_H_ROOT && q.handle != 0 && !(q.kind == "htb" && q.handle >> 16 == MAJOR as u32))
}

fn refusal(uplink: &Link, foreign: &QdiscInfo) -> NetError {
    NetError {
        action: format!("checking uplink {}", uplink.name),
        errno: None,
        detail: format!(
            "the root qdisc of {} is {} {:x}:, set by someone else; netrt does not replace it",
            uplink.name,
            foreign.kind,
            foreign.handle >> 16
        ),
    }
}

/// Makes uplink `name` hold the tree `shares` make; with none, removes
/// netrt's shaper. `changed` runs after each change (setup counts steps).
pub async fn reconcile(
    host: &Netlink,
    name: &str,
    capacity: Capacity,
    shares: &[&Share],
    changed: &mut dyn FnMut() -> NetResult<()>,
) -> NetResult<()> {
    let egress = share::tree(capacity, shares, Direction::Egress);
    let ingress = share::tree(capacity, shares, Direction::Ingress);
    // An uplink that is gone took its qdiscs with it; its ifb, if any, is
    // gc's to remove (see `orphan_ifbs`).
    let Some(uplink) = host.link_by_name(name).await? else { return Ok(()) };
    // One dump: the kernel lists every qdisc of the namespace either way.
    let qdiscs = host.all_qdiscs().await?;
    let on =
        |index: u32| -> Vec<QdiscInfo> { qdiscs.iter().filter(|(i, _)| *i == index).map(|(_, q)| q.clone()).collect() };
    match egress {
        Some(tree) => put_tree(host, &uplink, &on(uplink.index), &tree, Direction::Egress, changed).await?,
        None => {
            if host.delete_own_root_htb(&uplink, MAJOR).await? {
                changed()?;
            }
        }
    }
    let ifb = host.link_by_name(&uplink_ifb_name(uplink.index)).await?;
    match (ingress, ifb) {
        (Some(tree), ifb) => {
            let ifb = match ifb {
                Some(ifb) => ifb,
                None => {
                    let ifb = host.add_ifb(&uplink_ifb_name(uplink.index)).await?;
                    changed()?;
                    host.set_txqueuelen(&ifb, IFB_QUEUE_PACKETS).await?;
                    host.set_up(&ifb).await?;
                    ifb
                }
            };
            put_tree(host, &ifb, &on(ifb.index), &tree, Direction::Ingress, changed).await?;
            if !on(uplink.index).iter().any(|q| q.parent == TC_H_INGRESS) {
                host.add_ingress_qdisc(&uplink).await?;
                changed()?;
                host.redirect_all(&uplink, &ifb).await?;
                changed()?;
            }
        }
        (None, Some(ifb)) => {
            if host.delete_ingress_qdisc(&uplink).await? {
                changed()?;
            }
            // Under netrt's name but without its mark: someone else's.
            if names::is_marked(ifb.group) {
                host.delete_link(&ifb).await?;
                changed()?;
            }
        }
        (None, None) => {}
    }
    Ok(())
}

/// The htb, its classes and its classifier on `device`, changing only
/// what differs: a setup on a busy uplink changes one leaf, the default
/// class's rate and the classifier.
async fn put_tree(
    host: &Netlink,
    device: &Link,
    qdiscs: &[QdiscInfo],
    tree: &Tree,
    direction: Direction,
    changed: &mut dyn FnMut() -> NetResult<()>,
) -> NetResult<()> {
    if let Some(foreign) = foreign_root(qdiscs) {
        return Err(refusal(device, foreign));
    }
    let ours = qdiscs.iter().any(|q| q.parent == TC_H_ROOT && q.kind == "htb");
    if !ours {
        host.add_root_htb(device, MAJOR, DEFAULT_MINOR).await?;
        changed()?;
    }
    let existing = if ours { host.classes(device, MAJOR).await? } else { vec![] };
    let wanted = tree.classes();
    for class in &wanted {
        let rates = (class.rate_bytes_per_s, class.ceil_bytes_per_s);
        if !existing.iter().any(|e| e.minor == class.minor && e.htb_rates == Some(rates)) {
            host.put_htb_class(device, MAJOR, class).await?;
            changed()?;
        }
    }
    host.put_bpf_classifier(device, MAJOR, &tree.program(direction)).await?;
    changed()?;
    for stale in existing.iter().filter(|e| e.minor != 0 && !wanted.iter().any(|w| w.minor == e.minor)) {
        if stale.minor != ROOT_MINOR && host.delete_class(device, MAJOR, stale.minor).await? {
            changed()?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(index: u32, name: &str, kind: &str) -> Link {
        Link { index, name: name.into(), kind: Some(kind.into()), group: names::OWN_GROUP, ..Link::default() }
    }

    #[test]
    fn an_ifb_whose_uplink_is_gone_is_an_orphan() {
        let links = [
            link(7, "eth1", "veth"),
            link(8, "nrtu7", "ifb"),
            link(9, "nrtu5", "ifb"),
            link(10, "nrtu5x", "ifb"),
            link(11, "nrtu3", "veth"),
            Link { group: 0, ..link(12, "nrtu4", "ifb") },
        ];
        let orphans: Vec<&str> = orphan_ifbs(&links).iter().map(|l| l.name.as_str()).collect();
        assert_eq!(orphans, vec!["nrtu5"], "only netrt's name and mark, an ifb, and no link with that index");
    }
}
