//! What setup, teardown and gc do with claims: claim every address of an
//! attachment that lies in a pool, allocate what `net.pool` leaves to the
//! pool (the next free after the last given, wrapping), and release.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::store::{Claim, ClaimStore, Held, StoreError, StoreResult};
use crate::config::pools::{address, number, Pool, Pools, Span};
use crate::error::KeyError;
use crate::request::attachment::{Attachment, Cidr};

/// Whether an attachment's addresses involve a pool: `net.pool`, or a
/// static address inside a pool's subnet.
pub fn uses_pools(attachment: &Attachment, pools: &Pools) -> bool {
    attachment.pool.is_some() || attachment.addresses.iter().any(|a| pools.pool_of(a.address).is_some())
}

/// What keeps an address from a container besides the registry's claims.
pub struct Taken<'a> {
    /// Whether a claim's holder is a container of this node that is gone
    /// (its claim may be taken over).
    pub is_stale: &'a dyn Fn(&Claim) -> bool,
    /// Whether the host itself has the address (allocation passes over it).
    pub on_host: &'a dyn Fn(IpAddr) -> bool,
}

/// Claims the attachment's addresses that lie in pools and allocates the
/// families `net.pool` must give, adding them to `attachment.addresses`.
/// `is_stale` says whether a claim's holder is a container of this node
/// that is gone (its claim may be taken over). On a refusal, claims made
/// so far stay: the caller releases the container's claims.
pub async fn claim<S: ClaimStore>(
    store: &mut S,
    pools: &Pools,
    attachment: &mut Attachment,
    id: &str,
    taken: &Taken<'_>,
) -> Result<(), KeyError> {
    let (is_stale, on_host) = (taken.is_stale, taken.on_host);
    let lead = if attachment.pool.is_some() { "net.pool" } else { "net.ip" };
    let refusing = attachment.clone();
    let unreachable = |e: StoreError| refusing.refuse(lead, e.to_string());
    for cidr in attachment.addresses.clone() {
        let Some(pool) = pools.pool_of(cidr.address) else { continue };
        pool.check_static(&cidr).map_err(|r| attachment.refuse("net.ip", r))?;
        register(store, pool, pools, attachment).await?;
        let claim = Claim::for_container(cidr.address, &pools.node, id);
        let mut holder = store.create(&pool.name, &claim, false).await.map_err(unreachable)?;
        if let Some(stale) = holder.take_if(|h| is_stale(&h.claim)) {
            store.delete(&stale).await.map_err(unreachable)?;
            holder = store.create(&pool.name, &claim, false).await.map_err(unreachable)?;
        }
        if let Some(holder) = holder {
            let reason = match holder.claim.reserved {
                Some(_) => format!("{} is {} in pool {}", cidr.address, holder.claim.holder(), pool.name),
                None => format!("{} is already held by {} (pool {})", cidr.address, holder.claim.holder(), pool.name),
            };
            return Err(attachment.refuse("net.ip", reason));
        }
    }
    let Some(name) = attachment.pool.clone() else { return Ok(()) };
    let pool = pools.get(&name).ok_or_else(|| attachment.refuse("net.pool", pools.unknown(&name)))?;
    for subnet in &pool.subnets {
        let v6 = subnet.address.is_ipv6();
        if attachment.addresses.iter().any(|a| a.address.is_ipv6() == v6) || (!v6 && attachment.dhcp.is_some()) {
            continue;
        }
        register(store, pool, pools, attachment).await?;
        let given = allocate(store, pool, (v6, on_host), &pools.node, id).await.map_err(unreachable)?;
        let Some(given) = given else {
            let in_use = store.count(&pool.name, v6).await.map_err(unreachable)?;
            return Err(attachment.refuse(
                "net.pool",
                format!(
                    "pool {name} has no free {} address: ranges {} ({} addresses, {in_use} claimed or reserved)",
                    if v6 { "IPv6" } else { "IPv4" },
                    pool.ranges_of(v6).map(Span::to_string).collect::<Vec<_>>().join(", "),
                    pool.size(v6)
                ),
            ));
        };
        attachment.addresses.push(Cidr { address: given, prefix: subnet.prefix });
    }
    Ok(())
}

async fn register<S: ClaimStore>(
    store: &mut S,
    pool: &Pool,
    pools: &Pools,
    attachment: &Attachment,
) -> Result<(), KeyError> {
    let lead = if attachment.pool.is_some() { "net.pool" } else { "net.ip" };
    match store.register(&pool.name, &pool.addressing(), &pools.node).await {
        Ok(None) => Ok(()),
        Ok(Some((theirs, node))) => Err(attachment.refuse(lead, format!(
            "pool {}'s addressing in {} differs from what node {node} registered (subnets {}, ranges {}, gateways {}, exclude {}); \
             every node must define the pool alike",
            pool.name,
            pools.path,
            theirs.subnets.join(" "),
            theirs.ranges.join(" "),
            theirs.gateways.join(" "),
            theirs.exclude.join(" ")
        ))),
        Err(e) => Err(attachment.refuse(lead, e.to_string())),
    }
}

/// The spans allocation walks, in order: from just after the last address
/// given to the end of its range, the ranges after it, then from the
/// first range round to just before where it started.
pub fn walk_order(ranges: &[Span], last: Option<u128>) -> Vec<Span> {
    let Some(first_range) = ranges.first() else { return vec![] };
    let start = last.map_or(first_range.first, |l| l.wrapping_add(1));
    let position = ranges.iter().position(|r| r.last >= start).unwrap_or(0);
    let start = start.max(ranges[position].first);
    let start = if ranges[position].last >= start { start } else { first_range.first };
    let mut order = vec![Span { first: start, ..ranges[position] }];
    order.extend(ranges[position + 1..].iter().copied());
    order.extend(ranges[..position].iter().copied());
    if start > ranges[position].first {
        order.push(Span { last: start - 1, ..ranges[position] });
    }
    order
}

/// The next free address after the last one given, claimed for `id`;
/// None when every address of the family's ranges is held.
async fn allocate<S: ClaimStore>(
    store: &mut S,
    pool: &Pool,
    (v6, on_host): (bool, &dyn Fn(IpAddr) -> bool),
    node: &str,
    id: &str,
) -> StoreResult<Option<IpAddr>> {
    let ranges: Vec<Span> = pool.ranges_of(v6).copied().collect();
    let last = store.last(&pool.name, v6).await?;
    // Never an address the host itself has (the bridge's, say).
    let excluded = |n: u128| pool.is_excluded(address(v6, n)) || on_host(address(v6, n));
    let order = walk_order(&ranges, last);
    // Right after the last address given is usually free: try it before
    // reading any claim. A claim there sends the search the long way.
    if let Some(next) = order.first().map(|span| span.first).filter(|n| !excluded(*n)) {
        let claim = Claim::for_container(address(v6, next), node, id);
        if store.create(&pool.name, &claim, true).await?.is_none() {
            return Ok(Some(claim.address));
        }
    }
    for mut span in order {
        while let Some(n) = store.first_unclaimed(&pool.name, span, &excluded).await? {
            let claim = Claim::for_container(address(v6, n), node, id);
            if store.create(&pool.name, &claim, true).await?.is_none() {
                return Ok(Some(claim.address));
            }
            // Another node took it between the read and the claim.
            if n == span.last {
                break;
            }
            span.first = n + 1;
        }
    }
    Ok(None)
}

/// An address allocation gave to container `id` answered on the LAN: the
/// container's claim becomes a mark naming the MAC that answered (no
/// container gets the address until an admin unreserves it), and the next
/// free address of the family is claimed instead; None when the pool has
/// none left.
pub async fn replace_on_wire<S: ClaimStore>(
    store: &mut S,
    pool: &Pool,
    (node, id): (&str, &str),
    (address, mac): (IpAddr, &str),
    on_host: &dyn Fn(IpAddr) -> bool,
) -> StoreResult<Option<IpAddr>> {
    let v6 = address.is_ipv6();
    let span = Span { v6, first: number(address), last: number(address) };
    for held in store.claims(&pool.name, v6, Some(span)).await? {
        if held.claim.node.as_deref() == Some(node) && held.claim.container.as_deref() == Some(id) {
            store.delete(&held).await?;
        }
    }
    // Taken meanwhile by someone else, it is theirs to probe.
    store.create(&pool.name, &Claim::on_wire(address, mac, None), false).await?;
    allocate(store, pool, (v6, on_host), node, id).await
}

/// Releases every claim of container `id` of this node; returns what was
/// released.
pub async fn release<S: ClaimStore>(store: &mut S, node: &str, id: &str) -> StoreResult<Vec<Held>> {
    let held = store.held_by(node, Some(id)).await?;
    for (step, claim) in held.iter().enumerate() {
        crate::fault::kill_point("release", step as u32);
        store.delete(claim).await?;
    }
    // Each deletion took the container's noted conflicts along; without
    // any claim left, they go on their own.
    if held.is_empty() {
        store.forget_conflicts(node, id).await?;
    }
    Ok(held)
}

/// Releases the claims of this node's containers that `exists` says are
/// gone; returns one line per address released.
pub async fn release_gone<S: ClaimStore>(
    store: &mut S,
    node: &str,
    exists: &dyn Fn(&str) -> bool,
) -> StoreResult<Vec<String>> {
    let mut by_container: BTreeMap<String, Vec<Held>> = BTreeMap::new();
    for held in store.held_by(node, None).await? {
        let container = held.claim.container.clone().unwrap_or_default();
        by_container.entry(container).or_default().push(held);
    }
    let mut lines = vec![];
    for (container, held) in by_container {
        if exists(&container) {
            continue;
        }
        for claim in held {
            store.delete(&claim).await?;
            lines.push(format!(
                "released {} of pool {} (container {container} is gone)",
                claim.claim.address, claim.pool
            ));
        }
    }
    Ok(lines)
}

/// Reserves or unreserves addresses: each must lie in the pool's subnet.
pub fn spans_of(pool: &Pool, items: &[String]) -> Result<Vec<Span>, String> {
    let mut spans = vec![];
    for item in items {
        let span = crate::config::pools::parse_span(item)?;
        let first = address(span.v6, span.first);
        let last = address(span.v6, span.last);
        if pool.subnet_of(first).is_none() || pool.subnet_of(last).is_none() {
            return Err(format!("{item} is not inside pool {}'s subnets", pool.name));
        }
        if span.count() > 1 << 20 {
            return Err(format!("{item} spans more than 1048576 addresses"));
        }
        spans.push(span);
    }
    Ok(spans)
}

pub fn addresses_of(span: Span) -> impl Iterator<Item = IpAddr> {
    (span.first..=span.last).map(move |n| address(span.v6, n))
}

pub fn is_in(span: &Span, a: IpAddr) -> bool {
    span.v6 == a.is_ipv6() && (span.first..=span.last).contains(&number(a))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::pools::parse_span;
    use crate::pools::host::HostStore;

    fn spans(items: &[&str]) -> Vec<Span> {
        items.iter().map(|s| parse_span(s).unwrap()).collect()
    }

    fn n(a: &str) -> u128 {
        number(a.parse().unwrap())
    }

    #[test]
    fn the_walk_starts_after_the_last_and_wraps() {
        let ranges = spans(&["10.0.0.10-10.0.0.19", "10.0.0.30-10.0.0.39"]);
        assert_eq!(walk_order(&ranges, None), ranges, "nothing given yet: from the start");
        assert_eq!(
            walk_order(&ranges, Some(n("10.0.0.14"))),
            spans(&["10.0.0.15-10.0.0.19", "10.0.0.30-10.0.0.39", "10.0.0.10-10.0.0.14"])
        );
        assert_eq!(walk_order(&ranges, Some(n("10.0.0.19"))), spans(&["10.0.0.30-10.0.0.39", "10.0.0.10-10.0.0.19"]));
        assert_eq!(walk_order(&ranges, Some(n("10.0.0.39"))), ranges, "after the very last: round to the first");
        assert_eq!(
            walk_order(&ranges, Some(n("10.0.0.25"))),
            ranges[1..].iter().chain(&ranges[..1]).copied().collect::<Vec<_>>(),
            "a cursor between ranges"
        );
    }

    /// The host store in a scratch folder: the same code as on a host.
    fn scratch(name: &str) -> (HostStore, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("netrt-pools-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        (HostStore::new(&dir), dir)
    }

    fn pools() -> Pools {
        let json = r#"{"node": "a", "pools": {"lan": {"bridge": "br0", "subnets": ["198.51.100.0/24", "2001:db8::/64"],
            "ranges": ["198.51.100.10-198.51.100.13", "2001:db8::10-2001:db8::12"], "gateways": ["198.51.100.1"], "exclude": ["198.51.100.11"]}}}"#;
        let file: crate::config::ConfigFile = serde_json::from_str(json).unwrap();
        Pools::from_file("netrt.json", file.node, file.registry, file.pools).unwrap()
    }

    fn attachment(pools: &Pools, words: &[&str]) -> Attachment {
        let words: Vec<String> = words.iter().map(|s| s.to_string()).collect();
        crate::request::plan::build_with(&crate::request::settings::from_words(&words).unwrap(), pools)
            .unwrap()
            .attachment
            .unwrap()
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
    }

    #[test]
    fn allocation_never_gives_an_address_the_host_has() {
        let (mut store, dir) = scratch("host-address");
        let pools = pools();
        let never = |_: &Claim| false;
        let bridge_address: IpAddr = "198.51.100.10".parse().unwrap();
        let on_host = |a: IpAddr| a == bridge_address;
        block_on(async {
            let mut a = attachment(&pools, &["net.pool=lan"]);
            claim(&mut store, &pools, &mut a, "h1", &Taken { is_stale: &never, on_host: &on_host }).await.unwrap();
            assert_eq!(a.addresses[0].to_string(), "198.51.100.12/24", "the host's .10 and the excluded .11 skipped");
        });
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn allocation_gives_next_free_skips_exclusions_and_refuses_when_full() {
        let (mut store, dir) = scratch("alloc");
        let pools = pools();
        let never = |_: &Claim| false;
        let nowhere = |_: IpAddr| false;
        block_on(async {
            let mut given = vec![];
            for id in ["c1", "c2", "c3"] {
                let mut a = attachment(&pools, &["net.pool=lan"]);
                claim(&mut store, &pools, &mut a, id, &Taken { is_stale: &never, on_host: &nowhere }).await.unwrap();
                given.push(a.addresses.iter().map(Cidr::to_string).collect::<Vec<_>>().join(" "));
            }
            assert_eq!(
                given,
                [
                    "198.51.100.10/24 2001:db8::10/64",
                    "198.51.100.12/24 2001:db8::11/64",
                    "198.51.100.13/24 2001:db8::12/64",
                ]
                .map(String::from),
                "198.51.100.11 is excluded"
            );
            let mut a = attachment(&pools, &["net.pool=lan"]);
            let e = claim(&mut store, &pools, &mut a, "c4", &Taken { is_stale: &never, on_host: &nowhere })
                .await
                .unwrap_err()
                .to_string();
            assert!(e.contains("net.pool=\"lan\": pool lan has no free IPv4 address: ranges 198.51.100.10-198.51.100.13 (4 addresses, 3 claimed or reserved)"), "{e}");
            // Releasing c1 frees its addresses; the next allocation still goes on after the last.
            let released = release(&mut store, "a", "c1").await.unwrap();
            assert_eq!(released.len(), 2);
            let mut a = attachment(&pools, &["net.pool=lan", "net.ip=2001:db8::99/64"]);
            claim(&mut store, &pools, &mut a, "c5", &Taken { is_stale: &never, on_host: &nowhere }).await.unwrap();
            assert_eq!(
                a.addresses.iter().map(Cidr::to_string).collect::<Vec<_>>(),
                ["2001:db8::99/64", "198.51.100.10/24"]
            );
        });
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_static_address_held_elsewhere_is_refused_naming_the_holder() {
        let (mut store, dir) = scratch("static");
        let pools = pools();
        let never = |_: &Claim| false;
        let nowhere = |_: IpAddr| false;
        block_on(async {
            let mut a = attachment(&pools, &["net.bridge=br0", "net.ip=198.51.100.50/24"]);
            claim(&mut store, &pools, &mut a, "web1", &Taken { is_stale: &never, on_host: &nowhere }).await.unwrap();
            let mut b = attachment(&pools, &["net.pool=lan", "net.ip=198.51.100.50/24"]);
            let e = claim(&mut store, &pools, &mut b, "web2", &Taken { is_stale: &never, on_host: &nowhere })
                .await
                .unwrap_err()
                .to_string();
            assert!(e.contains("198.51.100.50 is already held by container web1 on node a (pool lan)"), "{e}");
            // The same container again (a second hook call): its own claim.
            claim(
                &mut store,
                &pools,
                &mut attachment(&pools, &["net.bridge=br0", "net.ip=198.51.100.50/24"]),
                "web1",
                &Taken { is_stale: &never, on_host: &nowhere },
            )
            .await
            .unwrap();
            // A stale holder is taken over.
            let stale = |c: &Claim| c.container.as_deref() == Some("web1");
            claim(
                &mut store,
                &pools,
                &mut attachment(&pools, &["net.bridge=br0", "net.ip=198.51.100.50/24"]),
                "web3",
                &Taken { is_stale: &stale, on_host: &nowhere },
            )
            .await
            .unwrap();
            assert!(
                release(&mut store, "a", "web1").await.unwrap().is_empty(),
                "the takeover removed web1's index entry too"
            );
            let lines = release_gone(&mut store, "a", &|c| c == "web3").await.unwrap();
            assert!(lines.is_empty(), "{lines:?}");
            let lines = release_gone(&mut store, "a", &|_| false).await.unwrap();
            assert_eq!(lines, ["released 198.51.100.50 of pool lan (container web3 is gone)"]);
            assert_eq!(store.count("lan", false).await.unwrap(), 0);
        });
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_reservation_is_never_given() {
        let (mut store, dir) = scratch("reserve");
        let pools = pools();
        block_on(async {
            store.create("lan", &Claim::reservation("198.51.100.10".parse().unwrap(), "router"), false).await.unwrap();
            let mut a = attachment(&pools, &["net.pool=lan"]);
            claim(&mut store, &pools, &mut a, "c1", &Taken { is_stale: &|_| false, on_host: &|_| false })
                .await
                .unwrap();
            assert_eq!(a.addresses[0].to_string(), "198.51.100.12/24");
            let mut b = attachment(&pools, &["net.bridge=br0", "net.ip=198.51.100.10/24"]);
            let e = claim(&mut store, &pools, &mut b, "c2", &Taken { is_stale: &|_| false, on_host: &|_| false })
                .await
                .unwrap_err()
                .to_string();
            assert!(e.contains("198.51.100.10 is reserved (router) in pool lan"), "{e}");
        });
        std::fs::remove_dir_all(dir).unwrap();
    }
}
