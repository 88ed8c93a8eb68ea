//! `netrt-hook pool list|show|reserve|unreserve|release --node`.

use serde::Serialize;

use crate::config::pools::{Pool, Pools, Registry, Span};
use crate::error::{Error, Result};
use crate::pools::any_store::{self, AnyStore};
use crate::pools::claims::{self, addresses_of};
use crate::pools::store::{format_time, Claim, ClaimStore};
use crate::state::record;

fn load() -> Result<Pools> {
    let (path, config) = crate::config::read_file()?;
    Pools::from_file(&path, config.node, config.registry, config.pools)
}

fn pool<'a>(pools: &'a Pools, name: &str) -> Result<&'a Pool> {
    pools.get(name).ok_or_else(|| Error::Input(pools.unknown(name)))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::System(format!("cannot start the runtime: {e}")))
}

/// Runs `work` against this node's store; host-wide claims change only
/// under the host lock, as setup's do.
fn with_store<T>(pools: &Pools, changes: bool, work: impl AsyncFnOnce(&mut AnyStore) -> Result<T>) -> Result<T> {
    let _lock = match (&pools.registry, changes) {
        (Registry::Host, true) => Some(record::Store::system().lock()?),
        _ => None,
    };
    runtime()?.block_on(async {
        let mut store = any_store::open(pools, false).await.map_err(|e| Error::System(e.to_string()))?;
        work(&mut store).await
    })
}

fn system(e: impl std::fmt::Display) -> Error {
    Error::System(e.to_string())
}

#[derive(Serialize)]
pub struct FamilyUse {
    pub family: &'static str,
    pub size: String,
    /// Claims in the family: containers', reservations and marks.
    pub used: u128,
    pub free: String,
    pub reserved: u128,
    /// Addresses found in use on the wire by something outside netrt.
    pub in_use_on_the_wire: u128,
}

#[derive(Serialize)]
pub struct PoolUse {
    pub name: String,
    attachment: String,
    subnets: Vec<String>,
    ranges: Vec<String>,
    gateways: Vec<String>,
    pub families: Vec<FamilyUse>,
}

/// Addresses of `span` that allocation skips (gateways, exclusions).
fn skipped_in(pool: &Pool, span: &Span) -> u128 {
    let gateways = pool.gateways.iter().filter(|g| span.contains(**g)).count() as u128;
    let excluded: u128 = pool
        .exclude
        .iter()
        .filter(|e| e.v6 == span.v6)
        .map(|e| {
            let (first, last) = (e.first.max(span.first), e.last.min(span.last));
            if first <= last {
                last - first + 1
            } else {
                0
            }
        })
        .sum();
    gateways + excluded
}

/// Each pool's use, per family, as the registry has it.
pub async fn usage(pools: &Pools, store: &mut AnyStore) -> Result<Vec<PoolUse>> {
    let mut uses = vec![];
    for pool in pools.pools.values() {
        let mut families = vec![];
        for subnet in &pool.subnets {
            let v6 = subnet.address.is_ipv6();
            let claims = store.claims(&pool.name, v6, None).await.map_err(system)?;
            let ranges: Vec<&Span> = pool.ranges_of(v6).collect();
            let in_ranges =
                claims.iter().filter(|h| ranges.iter().any(|r| claims::is_in(r, h.claim.address))).count() as u128;
            let skipped: u128 = ranges.iter().map(|span| skipped_in(pool, span)).sum();
            let size = pool.size(v6);
            families.push(FamilyUse {
                family: if v6 { "ipv6" } else { "ipv4" },
                size: size.to_string(),
                used: claims.len() as u128,
                free: size.saturating_sub(in_ranges + skipped).to_string(),
                reserved: claims.iter().filter(|h| h.claim.reserved.is_some()).count() as u128,
                in_use_on_the_wire: claims.iter().filter(|h| h.claim.wire.is_some()).count() as u128,
            });
        }
        let a = &pool.attachment;
        let mut attachment = match (&a.bridge, &a.parent) {
            (Some(bridge), _) => format!("bridge {bridge}"),
            (_, Some(parent)) => format!("macvlan on {parent}"),
            _ => String::new(),
        };
        if let Some(vlan) = a.vlan {
            attachment.push_str(&format!(", VLAN {vlan}"));
        }
        uses.push(PoolUse {
            name: pool.name.clone(),
            attachment,
            subnets: pool.subnets.iter().map(|s| s.to_string()).collect(),
            ranges: pool.ranges.iter().map(Span::to_string).collect(),
            gateways: pool.gateways.iter().map(|g| g.to_string()).collect(),
            families,
        });
    }
    Ok(uses)
}

pub fn list(json: bool) -> Result<String> {
    let pools = load()?;
    let uses = with_store(&pools, false, async |store| usage(&pools, store).await)?;
    if json {
        return Ok(serde_json::to_string_pretty(&uses).expect("serialises") + "\n");
    }
    if uses.is_empty() {
        return Ok(format!("no pools are defined in {}\n", pools.path));
    }
    let mut out =
        format!("{:<12} {:<22} {:<6} {:>8} {:>10}  {}\n", "POOL", "ATTACHMENT", "FAMILY", "USED", "FREE", "RANGES");
    for pool in &uses {
        for family in &pool.families {
            let ranges: Vec<&String> =
                pool.ranges.iter().filter(|r| r.contains(':') == (family.family == "ipv6")).collect();
            out.push_str(&format!(
                "{:<12} {:<22} {:<6} {:>8} {:>10}  {}\n",
                pool.name,
                pool.attachment,
                family.family,
                family.used,
                family.free,
                ranges.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", ")
            ));
        }
    }
    Ok(out)
}

#[derive(Serialize)]
struct ShownClaim {
    address: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    node: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    container: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reserved: Option<String>,
    /// The MAC that answered for it on the LAN.
    #[serde(skip_serializing_if = "Option::is_none")]
    wire: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    was: Option<String>,
    since: String,
}

pub fn show(name: &str, json: bool) -> Result<String> {
    let pools = load()?;
    let pool = pool(&pools, name)?;
    let (claims, nodes) = with_store(&pools, false, async |store| {
        let mut all = vec![];
        for subnet in &pool.subnets {
            all.extend(store.claims(&pool.name, subnet.address.is_ipv6(), None).await.map_err(system)?);
        }
        let conflicts = store.conflicts(&pool.name).await.map_err(system)?;
        let reclaimed = match store {
            AnyStore::Etcd(etcd) => etcd.reclaimed(&pool.name).await.map_err(system)?,
            AnyStore::Host(_) => vec![],
        };
        Ok((all, (store.nodes().await.map_err(system)?, conflicts, reclaimed)))
    })?;
    let (nodes, conflicts, reclaimed) = nodes;
    let shown: Vec<ShownClaim> = claims
        .into_iter()
        .map(|h| ShownClaim {
            address: h.claim.address.to_string(),
            node: h.claim.node,
            container: h.claim.container,
            reserved: h.claim.reserved,
            wire: h.claim.wire,
            was: h.claim.was,
            since: format_time(h.claim.since),
        })
        .collect();
    if json {
        return Ok(serde_json::to_string_pretty(&shown).expect("serialises") + "\n");
    }
    let mut out = format!("{:<26} {:<16} {:<28} {}\n", "ADDRESS", "NODE", "CONTAINER", "SINCE");
    for c in &shown {
        let holder = match (&c.reserved, &c.wire) {
            (_, Some(mac)) => match &c.was {
                Some(was) => format!("in use on the wire by {mac} (was {was})"),
                None => format!("in use on the wire by {mac}"),
            },
            (Some(note), _) if note.is_empty() => "reserved".to_string(),
            (Some(note), _) => format!("reserved: {note}"),
            (None, _) => c.container.clone().unwrap_or_default(),
        };
        out.push_str(&format!(
            "{:<26} {:<16} {:<28} {}\n",
            c.address,
            c.node.as_deref().unwrap_or("-"),
            holder,
            c.since
        ));
    }
    for (node, container, conflict) in &conflicts {
        out.push_str(&format!("conflict: container {container} on node {node} has {conflict}\n"));
    }
    // The liveness of the nodes that hold claims here (a cluster's registry).
    // and of the dead nodes addresses were reclaimed from, with what was.
    let mut holders: std::collections::BTreeSet<&str> = shown.iter().filter_map(|c| c.node.as_deref()).collect();
    holders.extend(reclaimed.iter().map(|(node, _)| node.as_str()));
    for node in nodes.iter().filter(|n| holders.contains(n.node.as_str())) {
        out.push_str(&format!("node {}: {}\n", node.node, describe_liveness(node)));
        for (_, what) in reclaimed.iter().filter(|(n, _)| *n == node.node) {
            out.push_str(&format!("  {what}\n"));
        }
    }
    Ok(out)
}

fn describe_liveness(node: &crate::pools::etcd::NodeLiveness) -> String {
    match (node.alive_since, node.dead_since) {
        (Some(since), _) => format!("alive (liveness key since {})", format_time(since)),
        (None, Some(since)) => format!(
            "dead: no liveness key, seen gone by another node since {} (reclaim counts from then)",
            format_time(since)
        ),
        (None, None) => "no liveness key: gone, cut off, or not refreshed within node_ttl".to_string(),
    }
}

/// `pool nodes`: every node the registry knows, with its liveness.
/// The pools' and the registry nodes' part of `status --format
/// prometheus`: per pool and family its size, claims, free, reserved and
/// in-use-on-the-wire counts; per node of a cluster's registry whether it
/// is alive. Empty where no pool is defined.
pub fn render_prometheus() -> Result<String> {
    let pools = load()?;
    if pools.pools.is_empty() {
        return Ok(String::new());
    }
    let (uses, nodes) = runtime()?.block_on(async {
        let mut store = any_store::open(&pools, true).await.map_err(system)?;
        let uses = usage(&pools, &mut store).await?;
        Ok::<_, Error>((uses, store.nodes().await.map_err(system)?))
    })?;
    use super::status::{family, label};
    let mut out = String::new();
    type Count = fn(&FamilyUse) -> String;
    let counts: [(&str, &str, Count); 5] = [
        ("netrt_pool_size_addresses", "Addresses in the pool's ranges.", |f| f.size.clone()),
        ("netrt_pool_claimed_addresses", "Claims in the registry: containers', reservations and marks.", |f| {
            f.used.to_string()
        }),
        ("netrt_pool_free_addresses", "Addresses allocation can still give.", |f| f.free.clone()),
        ("netrt_pool_reserved_addresses", "Addresses reserved by the admin.", |f| f.reserved.to_string()),
        (
            "netrt_pool_in_use_on_the_wire_addresses",
            "Addresses something outside netrt answered for on the LAN.",
            |f| f.in_use_on_the_wire.to_string(),
        ),
    ];
    for (name, help, count) in counts {
        family(&mut out, name, "gauge", help);
        for pool in &uses {
            for f in &pool.families {
                out += &format!("{name}{{pool=\"{}\",family=\"{}\"}} {}\n", label(&pool.name), f.family, count(f));
            }
        }
    }
    if !nodes.is_empty() {
        family(&mut out, "netrt_node_alive", "gauge", "1 while the node's liveness key is in the registry.");
        for node in &nodes {
            out += &format!(
                "netrt_node_alive{{node=\"{}\"}} {}\n",
                label(&node.node),
                u8::from(node.alive_since.is_some())
            );
        }
    }
    Ok(out)
}

pub fn nodes(json: bool) -> Result<String> {
    let pools = load()?;
    if !matches!(pools.registry, crate::config::pools::Registry::Etcd(_)) {
        return Err(Error::Input(format!(
            "{}: no cluster registry (registry.etcd): host-wide pools have no nodes to list",
            pools.path
        )));
    }
    let nodes = with_store(&pools, false, async |store| store.nodes().await.map_err(system))?;
    if json {
        return Ok(serde_json::to_string_pretty(&nodes).expect("serialises") + "\n");
    }
    let mut out = format!("{:<24} {}\n", "NODE", "LIVENESS");
    for node in &nodes {
        out.push_str(&format!("{:<24} {}\n", node.node, describe_liveness(node)));
    }
    Ok(out)
}

pub fn reserve(name: &str, items: &[String], note: &str) -> Result<String> {
    let pools = load()?;
    let pool = pool(&pools, name)?;
    let spans = claims::spans_of(pool, items).map_err(Error::Input)?;
    let (made, held) = with_store(&pools, true, async |store| {
        store
            .register(&pool.name, &pool.addressing(), &pools.node)
            .await
            .map_err(system)?
            .map_or(Ok(()), |(_, node)| {
                Err(Error::Input(format!("pool {name}'s addressing differs from what node {node} registered")))
            })?;
        let (mut made, mut held) = (0usize, vec![]);
        for span in &spans {
            for a in addresses_of(*span) {
                match store.create(&pool.name, &Claim::reservation(a, note), false).await.map_err(system)? {
                    None => made += 1,
                    Some(h) if h.claim.reserved.as_deref() == Some(note) => {}
                    Some(h) => held.push(format!("{a} ({})", h.claim.holder())),
                }
            }
        }
        Ok((made, held))
    })?;
    if !held.is_empty() {
        return Err(Error::Input(format!(
            "reserved {made} addresses in pool {name}; {} could not be, they are held: {}",
            held.len(),
            held.join(", ")
        )));
    }
    Ok(format!("reserved {made} addresses in pool {name}\n"))
}

pub fn unreserve(name: &str, items: &[String]) -> Result<String> {
    let pools = load()?;
    let pool = pool(&pools, name)?;
    let spans = claims::spans_of(pool, items).map_err(Error::Input)?;
    let freed = with_store(&pools, true, async |store| {
        let mut freed = 0usize;
        for span in &spans {
            for held in store.claims(&pool.name, span.v6, Some(*span)).await.map_err(system)? {
                // A reservation, or a mark of an address found in use on the wire.
                if held.claim.reserved.is_some() || held.claim.wire.is_some() {
                    store.delete(&held).await.map_err(system)?;
                    freed += 1;
                }
            }
        }
        Ok(freed)
    })?;
    Ok(format!("unreserved {freed} addresses in pool {name}\n"))
}

pub fn release_node(node: &str) -> Result<String> {
    crate::config::pools::check_name(node).map_err(Error::Input)?;
    let pools = load()?;
    let lines = with_store(&pools, true, async |store| {
        let mut lines = vec![];
        for held in store.held_by(node, None).await.map_err(system)? {
            store.delete(&held).await.map_err(system)?;
            lines.push(format!(
                "released {} of pool {} (container {} on node {node})",
                held.claim.address,
                held.pool,
                held.claim.container.as_deref().unwrap_or("?")
            ));
        }
        // The node is gone for good: what fencing noted for it goes too.
        if let AnyStore::Etcd(etcd) = store {
            etcd.forget_node(node).await.map_err(system)?;
        }
        Ok(lines)
    })?;
    if lines.is_empty() {
        return Ok(format!("node {node} holds no address\n"));
    }
    Ok(lines.join("\n") + "\n")
}
