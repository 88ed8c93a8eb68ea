//! The hook's two stages: setup (createRuntime or prestart) applies the
//! plan and records it; teardown (poststop) undoes what the record lists.

use std::io::Read;

use crate::attach;
use crate::config::policy;
use crate::config::pools::Pools;
use crate::config::uplinks::Uplinks;
use crate::error::{Error, KeyError, Result};
use crate::fault;
use crate::kernel::netlink::Netlink;
use crate::kernel::netlink::{Link, NetError};
use crate::kernel::netns::{self, NetNs};
use crate::kernel::{names, privilege};
use crate::log;
use crate::pools::any_store::{self, AnyStore};
use crate::pools::claims;
use crate::pools::store::{Claim, ClaimStore, StoreError};
use crate::request::attachment::Attachment;
use crate::request::oci::{self, Container, Stage};
use crate::request::plan::{self, Plan};
use crate::request::settings;
use crate::shaping::{self, Placement, Sockets};
use crate::state::record::{self, Created, Record, Side, Store};
use crate::uplinks::shaper;
use crate::uplinks::share::Share;

/// When setup may happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timing {
    /// Now, as the runtime runs the hook.
    Now,
    /// Now if the container's namespace has an interface besides loopback;
    /// else at `start`, by `netrt-hook apply-deferred`. The `netrt` wrapper
    /// asks for this: Docker 26.0.0 and 28+ make the network only after
    /// `create` returns, and the wrapper runs apply-deferred before `start`.
    DeferWithoutNetwork,
}

/// Runs the hook on the OCI state read from `input`.
pub fn run(stage_argument: Option<&str>, input: impl Read, timing: Timing) -> Result<()> {
    let text = oci::read_state_text(input)?;
    let container = oci::parse_state(&text)?;
    record::check_id(&container.id)?;
    match oci::stage(stage_argument, &container)? {
        Stage::Setup => setup(&container, (timing == Timing::DeferWithoutNetwork).then_some(text.as_str())),
        Stage::Teardown => teardown(&container.id),
    }
}

/// `netrt-hook apply-deferred ID`: the setup that createRuntime put off
/// because the container had no network yet. Nothing deferred, nothing
/// to do. The deferred state is removed whatever the outcome: on failure
/// the container does not start, and a later start has nothing to apply.
pub fn apply_deferred(id: &str) -> Result<()> {
    record::check_id(id)?;
    let store = Store::system();
    if !store.deferred_path(id).exists() {
        return Ok(());
    }
    let Some(state) = store.deferred(id)? else { return Ok(()) };
    let result = oci::parse_state(&state).and_then(|container| {
        if container.id != id {
            return Err(Error::System(format!("the deferred state of {id} names container {}", container.id)));
        }
        setup(&container, None)
    });
    store.remove_deferred(id)?;
    result
}

pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::System(format!("cannot start the netlink runtime: {e}")))
}

/// Applies the container's settings. With `defer_state`, a namespace
/// without network keeps that state for `apply_deferred` instead.
fn setup(container: &Container, defer_state: Option<&str>) -> Result<()> {
    let config = oci::read_config(&container.bundle)?;
    let mut annotations = container.annotations.clone();
    annotations.extend(config.annotations.clone());
    if settings::joins_pod_network(&annotations) {
        log::info(&format!(
            "{} joins its pod's network namespace; the pod's sandbox carries its settings",
            container.id
        ));
        return Ok(());
    }
    let settings = settings::collect(&annotations, config.env());
    if settings.is_empty() {
        return Ok(());
    }
    let (policy, pools) = policy::load_with_pools()?;
    let mut plan = plan::build_with(&settings, &pools)?;
    if plan.is_empty() {
        return Ok(());
    }
    policy.check_with(&plan, &pools)?;
    privilege::check()?;
    let (lead_key, lead_value) =
        plan.lead_setting().map(|(k, v)| (k.to_string(), v.to_string())).expect("a plan has a lead setting");
    let refuse = |reason: String| -> Error { KeyError::new(&lead_key, &lead_value, reason).into() };
    let pid = container
        .pid
        .ok_or_else(|| refuse("the OCI state has no pid, so the container's namespace cannot be found".into()))?;
    let container_ns = NetNs::of_pid(pid).map_err(refuse)?;
    let host_ns = NetNs::current().map_err(refuse)?;
    // A DHCP client's packet socket needs CAP_NET_RAW: opened now, in the
    // container's namespace, and bound once the interface exists.
    let acquirer = match plan.attachment.as_ref().and_then(|a| a.dhcp) {
        None => None,
        Some(_) => {
            let socket =
                container_ns.run_in(crate::dhcp::client::PacketSocket::open).map_err(refuse)?.map_err(|e| {
                    refuse(format!("cannot open a packet socket for DHCP in the container's namespace: {e}"))
                })?;
            Some(crate::dhcp::client::Acquirer {
                socket,
                container_id: container.id.clone(),
                hostname: config.hostname.clone(),
            })
        }
    };
    privilege::drop_to_kept()?;
    if container_ns.id() == host_ns.id() {
        return Err(refuse(
            "the container shares the host's network namespace (--network host); netrt never changes the host's own interfaces".into(),
        ));
    }
    let netns_path = match config.netns_path() {
        Some(path) if netns::identity_of(path) == Some(container_ns.id()) => path.to_string(),
        _ => format!("/proc/{pid}/ns/net"),
    };
    runtime()?.block_on(async {
        let store = Store::system();
        let mut lock = Some(store.lock()?);
        if let Some(state) = defer_state {
            let container_socket = Netlink::open_in(&container_ns).map_err(refuse)?;
            let links = container_socket.links().await.map_err(|e| refuse(e.to_string()))?;
            if links.iter().all(|link| link.name == "lo") {
                store.defer(&container.id, state)?;
                log::info(&format!(
                    "setup of {} waits for start: its network namespace has no interface besides loopback yet",
                    container.id
                ));
                return Ok(());
            }
        }
        if let Some(old) = store.load(&container.id)? {
            if old.complete && old.pid == pid && old.netns == container_ns.id() {
                return Ok(());
            }
            remove_stale(&store, &old, &host_ns).await?;
        }
        let sockets = Sockets {
            host: Netlink::open_in(&host_ns).map_err(refuse)?,
            container: Some(Netlink::open_in(&container_ns).map_err(refuse)?),
        };
        let pooled = plan.attachment.as_ref().is_some_and(|a| claims::uses_pools(a, &pools));
        let mut registry = None;
        if pooled {
            registry =
                Some(claim_addresses(&store, &pools, &mut plan, container, pid, &container_ns, &netns_path).await?);
        }
        let mut leasing = acquirer.as_ref().map(|acquirer| attach::Leasing {
            acquirer,
            policy: &policy,
            held: None,
            store: &store,
            lock: &mut lock,
        });
        let result = setup_claimed(
            container,
            &plan,
            &policy.uplinks,
            &store,
            &sockets,
            &container_ns,
            &host_ns,
            pid,
            netns_path,
            pooled,
            leasing.as_mut(),
        )
        .await;
        if let (Err(_), Some(registry)) = (&result, registry.as_mut()) {
            // Claims go with a setup that left nothing; a record that still
            // lists objects keeps them until teardown or gc finishes.
            match store.load(&container.id)? {
                Some(record) if !record.created.is_empty() => {}
                leftover => {
                    release_or_remember(&store, registry, &pools.node, &container.id).await;
                    match leftover {
                        Some(record) => store.remove(&record)?,
                        None => store.remove_unreadable(&container.id)?,
                    }
                }
            }
        }
        result
    })
}

/// Claims the attachment's pool addresses (allocating what `net.pool`
/// leaves open) after writing a record that says so, so that a kill at
/// any point leaves claims that teardown or gc find. Returns the open
/// registry for the rest of setup.
async fn claim_addresses(
    store: &Store,
    pools: &Pools,
    plan: &mut Plan,
    container: &Container,
    pid: i32,
    container_ns: &NetNs,
    netns_path: &str,
) -> Result<AnyStore> {
    let attachment = plan.attachment.as_mut().expect("pooled plans have an attachment");
    let lead = if attachment.pool.is_some() { "net.pool" } else { "net.ip" };
    let mut registry = any_store::open(pools, true).await.map_err(|e| attachment.refuse(lead, e.to_string()))?;
    settle_pending(store, &mut registry, &pools.node).await.map_err(|e| attachment.refuse(lead, e.to_string()))?;
    let mut record = Record::new(
        &container.id,
        pid,
        container_ns.id(),
        netns_path.to_string(),
        String::new(),
        None,
        Plan::default(),
    );
    record.pool_claims = true;
    store.begin(&record)?;
    fault::kill_point("claim", 0);
    let is_stale = |claim: &Claim| {
        claim.node.as_deref() == Some(pools.node.as_str())
            && claim.container.as_deref().is_some_and(|holder| holder != container.id && !store.exists(holder))
    };
    let claimed = claims::claim(&mut registry, pools, attachment, &container.id, &is_stale).await;
    fault::kill_point("claim", 1);
    if let Err(refusal) = claimed {
        // A refusal before any claim was sent has nothing to release, and
        // leaves nothing to release later either.
        if registry.may_have_claimed() {
            release_or_remember(store, &mut registry, &pools.node, &container.id).await;
        }
        store.remove_unreadable(&container.id)?;
        return Err(refusal.into());
    }
    Ok(registry)
}

/// Releases container `id`'s claims; if the registry cannot, remembers
/// them for the next run that reaches it (teardown never fails for it).
async fn release_or_remember(store: &Store, registry: &mut AnyStore, node: &str, id: &str) {
    if let Err(e) = claims::release(registry, node, id).await {
        log::error(&format!("the claims of {id} are released later, by the next run that reaches the registry: {e}"));
        if let Err(e) = store.add_pending_release(id) {
            log::error(&e.to_string());
        }
    }
}

/// Carries out the releases earlier runs could not; returns what it did.
async fn settle_pending(
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

/// Setup once the pool addresses are claimed: checks, then every change,
/// recorded before it is made and undone on failure.
#[allow(clippy::too_many_arguments)]
async fn setup_claimed(
    container: &Container,
    plan: &Plan,
    uplinks: &Uplinks,
    store: &Store,
    sockets: &Sockets,
    container_ns: &NetNs,
    host_ns: &NetNs,
    pid: i32,
    netns_path: String,
    pooled: bool,
    mut leasing: Option<&mut attach::Leasing<'_>>,
) -> Result<()> {
    let refuse = |reason: String| -> Error {
        let (key, value) = plan.lead_setting().expect("a plan with limits has a lead setting");
        KeyError::new(key, value, reason).into()
    };
    // Other containers' records matter only to an attachment on a VLAN
    // sub-interface it may share; addresses are checked by their claims,
    // so that setup does not read every record on a busy host.
    let others = match &plan.attachment {
        Some(attachment) if attachment.vlan_interface().is_some() => other_records(store, &container.id)?,
        _ => vec![],
    };
    let ifb = names::ifb_name(&container.id);
    let mut record = Record::new(&container.id, pid, container_ns.id(), netns_path, String::new(), None, plan.clone());
    record.pool_claims = pooled;

    // Everything is checked before the first change.
    let (target, frame_bytes) = match &plan.attachment {
        Some(attachment) => {
            attach::check_conflicts(attachment, &container.id, store)?;
            let prepared = attach::prepare(attachment, &container.id, sockets, &others).await?;
            record.interface = prepared.ifname.clone();
            record.host_veth = match &prepared.medium {
                attach::PreparedMedium::Bridge { host_veth, .. } => Some(host_veth.clone()),
                attach::PreparedMedium::Macvlan { .. } => None,
            };
            record.created = attach::planned_objects(&prepared);
            record.uplink = admit_guarantees(plan, uplinks, &prepared, &sockets.host, store, &container.id).await?;
            let frame_bytes = prepared.frame_bytes();
            (Target::Attach(attachment, prepared), frame_bytes)
        }
        None => {
            let placement = shaping::locate(sockets, host_ns, container_ns).await.map_err(refuse)?;
            record.interface = placement.interface().name.clone();
            record.host_veth = placement.host_veth().map(|v| v.name.clone());
            record.created = shaping::planned_objects(plan, &placement, &ifb);
            let frame_bytes = placement.frame_bytes();
            (Target::Existing(placement), frame_bytes)
        }
    };
    let buckets = shaping::token_buckets(plan, frame_bytes)?;
    remove_strays(sockets, &container.id).await.map_err(|e| refuse(e.to_string()))?;
    if pooled {
        store.update_partial(&record)?;
    } else {
        store.begin(&record)?;
    }
    store.claim(&record)?;
    fault::kill_point("setup", 0);

    let mut done = vec![];
    let mut steps = 0;
    let applied: Result<Placement> = async {
        let placement = match target {
            Target::Attach(attachment, prepared) => {
                let placement = attach::apply(
                    attachment,
                    &container.id,
                    &prepared,
                    sockets,
                    container_ns,
                    leasing.as_deref_mut(),
                    &mut done,
                    &mut steps,
                )
                .await?;
                record.dhcp = leasing.as_ref().and_then(|l| l.held.as_ref()).map(|held| held.lease.clone());
                if !buckets.is_empty() {
                    record.created = done.clone();
                    record.created.extend(shaping::planned_objects(plan, &placement, &ifb));
                    store.update_partial(&record)?;
                }
                placement
            }
            Target::Existing(placement) => placement,
        };
        shaping::apply(&buckets, &placement, &ifb, sockets, &mut done, &mut steps).await.map_err(
            |(direction, e)| {
                let shaper =
                    plan.shapers().find(|s| s.direction == direction).expect("the failed direction is planned");
                Error::from(KeyError::new(&shaper.rate_source, &shaper.rate_value, e.to_string()))
            },
        )?;
        if let Some(mut share) = record.uplink.clone() {
            let guarantee = plan.guarantees().next().expect("a share comes from a guarantee");
            let refuse_guarantee =
                |e: NetError| Error::from(KeyError::new(&guarantee.source, &guarantee.value, e.to_string()));
            let container_socket = sockets.container.as_ref().expect("setup has the container's socket");
            let interface = container_socket.link_by_name(&record.interface).await.map_err(refuse_guarantee)?;
            share.mac = interface.and_then(|link| link.mac.try_into().ok());
            // The record gets the MAC when setup commits: until then no
            // other setup runs (the lock is held), and a rollback, teardown
            // or gc leaves this container out of the tree anyway.
            record.uplink = Some(share.clone());
            let mut step = || shaping::step_done(&mut steps);
            reconcile_uplink(store, &sockets.host, uplinks, &share, &container.id, Some(&share), &mut step)
                .await
                .map_err(refuse_guarantee)?;
        }
        if record.created != done || record.dhcp.is_some() || record.uplink.is_some() {
            record.created = done.clone();
            store.update_partial(&record)?;
        }
        store.commit(&container.id)?;
        Ok(placement)
    }
    .await;
    let error = match applied {
        Ok(placement) => {
            log::info(&describe_setup(&container.id, plan, &placement));
            return Ok(());
        }
        Err(error) => error,
    };
    if let Some((acquirer, held)) = leasing.as_ref().and_then(|l| Some((l.acquirer, l.held.as_ref()?))) {
        if let Err(e) = acquirer.release(held) {
            log::error(&format!("the DHCP lease of {} on {} was not released: {e}", container.id, held.lease.address));
        }
    }
    let mut failures = shaping::undo_all(&done, sockets, &attach::vlans_in_use(&others)).await;
    if let Some(share) = &record.uplink {
        if let Err(e) =
            reconcile_uplink(store, &sockets.host, uplinks, share, &container.id, None, &mut || Ok(())).await
        {
            failures.push(e);
        }
    }
    if failures.is_empty() {
        store.remove(&record)?;
    } else {
        // Keep the write-ahead record so teardown or gc can finish.
        record.created = done;
        store.update_partial(&record)?;
    }
    log::error(&format!("setup of {} failed and was undone: {error}", container.id));
    Err(error)
}

/// Admission for the plan's guarantees, before any change: the declared
/// uplink on the attachment's way out, the room the other records' shares
/// leave on it, and a root qdisc netrt may replace.
async fn admit_guarantees(
    plan: &Plan,
    uplinks: &Uplinks,
    prepared: &attach::Prepared,
    host: &Netlink,
    store: &Store,
    id: &str,
) -> Result<Option<Share>> {
    let Some(lead) = plan.guarantees().next() else { return Ok(None) };
    let refuse = |reason: String| -> Error { KeyError::new(&lead.source, &lead.value, reason).into() };
    let way = attach::way_out(prepared, host).await.map_err(|e| refuse(e.to_string()))?;
    let declared: Vec<&Link> = way.iter().filter(|l| uplinks.get(&l.name).is_some()).collect();
    let path = crate::config::policy::config_path().display().to_string();
    let uplink_link = match declared[..] {
        [one] => one,
        [] => {
            let names: Vec<&str> = way.iter().map(|l| l.name.as_str()).collect();
            let known: Vec<&str> = uplinks.by_name.keys().map(String::as_str).collect();
            return Err(refuse(format!(
                "no declared uplink on the attachment's way out ({}; uplinks in {path}: {})",
                if names.is_empty() { "no interface".to_string() } else { names.join(", ") },
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
    let records = other_records(store, id)?;
    let held: Vec<&Share> = records.iter().filter_map(|r| r.uplink.as_ref()).collect();
    let share = crate::uplinks::share::admit(uplink, plan, &held)?;
    shaper::check(host, uplink_link, share.ingress.is_some()).await.map_err(|e| refuse(e.detail))?;
    Ok(Some(share))
}

/// Brings the shaper of the uplink `share` is on in step with the records:
/// every other container's share, and `own` for container `id` (setup's,
/// not yet complete in the store; None for a teardown or a rollback).
/// Must run under the host lock.
async fn reconcile_uplink(
    store: &Store,
    host: &Netlink,
    uplinks: &Uplinks,
    share: &Share,
    id: &str,
    own: Option<&Share>,
    changed: &mut dyn FnMut() -> crate::kernel::netlink::NetResult<()>,
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
    let capacity_bps = uplinks.get(&share.uplink).map_or(share.capacity_bps, |u| u.capacity_bps);
    shaper::reconcile(host, &share.uplink, capacity_bps, &shares, changed).await
}

/// What setup works on: an attachment it makes, or the container's
/// existing interface it found.
enum Target<'a> {
    Attach(&'a Attachment, attach::Prepared),
    Existing(Placement),
}

fn other_records(store: &Store, id: &str) -> Result<Vec<Record>> {
    Ok(store.all()?.into_iter().filter(|r| r.id != id).collect())
}

fn describe_setup(id: &str, plan: &Plan, placement: &Placement) -> String {
    let limits: Vec<String> = plan.shapers().map(|s| s.describe()).collect();
    let place = match placement {
        Placement::HostSide { interface, host_veth } => format!("{} via host veth {}", interface.name, host_veth.name),
        Placement::InNamespace { interface } => format!("{} inside the container's namespace", interface.name),
    };
    format!("set up {id}: {place}: {}", limits.join("; "))
}

/// Host devices with this container's names are leftovers of a run whose
/// record is gone. They would make the new setup fail. An ifb inside the
/// container's namespace is one a failed earlier setup left in a namespace
/// that lives on.
async fn remove_strays(sockets: &Sockets, id: &str) -> crate::kernel::netlink::NetResult<()> {
    for stray in [
        Created::Ifb { side: Side::Host, name: names::ifb_name(id) },
        Created::Ifb { side: Side::Container, name: names::ifb_name(id) },
        Created::HostVeth { name: names::host_veth_name(id), index: None },
    ] {
        shaping::undo(&stray, sockets).await?;
    }
    Ok(())
}

async fn remove_stale(store: &Store, old: &Record, host_ns: &NetNs) -> Result<()> {
    undo_record(store, old, host_ns)
        .await
        .map_err(|e| Error::System(format!("cannot remove what an earlier run of {} left: {e}", old.id)))
}

/// Undoes everything a record lists and removes the record; when it
/// returns Ok, every host object of the container is gone. On failure the
/// record stays for a retry. Must run under the host lock.
pub async fn undo_record(store: &Store, record: &Record, host_ns: &NetNs) -> Result<()> {
    // Only a VLAN sub-interface is shared, and only it needs the others.
    let shares_a_vlan = record.created.iter().any(|c| matches!(c, Created::VlanLink { .. }));
    let others = if shares_a_vlan { other_records(store, &record.id)? } else { vec![] };
    let sockets = sockets_for_record(record, host_ns)?;
    if let Some(lease) = &record.dhcp {
        crate::commands::renew::release_for(record, lease);
    }
    let failures = shaping::undo_all(&fault::undone(&record.created), &sockets, &attach::vlans_in_use(&others)).await;
    if let Some(e) = failures.first() {
        return Err(Error::System(e.to_string()));
    }
    if let Some(share) = record.uplink.as_ref().filter(|_| !fault::leaks("uplink")) {
        // A configuration that cannot be read leaves the recorded capacity.
        let uplinks = policy::load().map(|p| p.uplinks).unwrap_or_default();
        let mut changes = 0;
        let mut changed = || {
            changes += 1;
            fault::kill_point("teardown-uplink", changes);
            Ok(())
        };
        reconcile_uplink(store, &sockets.host, &uplinks, share, &record.id, None, &mut changed)
            .await
            .map_err(|e| Error::System(e.to_string()))?;
    }
    if record.pool_claims && !fault::leaks("pool_claim") {
        release_record_claims(store, &record.id).await;
    }
    store.remove(record)
}

/// Releases a torn-down container's pool claims. The host is clean
/// already; a registry that does not answer gets the release later.
async fn release_record_claims(store: &Store, id: &str) {
    let pools = match policy::load_with_pools() {
        Ok((_, pools)) => pools,
        Err(e) => {
            log::error(&format!("the claims of {id} are released later: {e}"));
            let _ = store.add_pending_release(id);
            return;
        }
    };
    match any_store::open(&pools, true).await {
        Ok(mut registry) => {
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

/// gc's part for pools: releases left pending, and the claims of this
/// node's containers that have no record (their setup was killed, or
/// their record was removed by hand). Only where pools are defined.
async fn collect_pool_claims(store: &Store) -> Result<Vec<String>> {
    let (_, pools) = policy::load_with_pools()?;
    if pools.pools.is_empty() && store.pending_releases()?.is_empty() {
        return Ok(vec![]);
    }
    let registry_error = |e: StoreError| Error::System(format!("pool claims not collected: {e}"));
    let mut registry = any_store::open(&pools, false).await.map_err(registry_error)?;
    let mut lines = settle_pending(store, &mut registry, &pools.node).await.map_err(registry_error)?;
    let exists = |id: &str| store.exists(id);
    lines.extend(claims::release_gone(&mut registry, &pools.node, &exists).await.map_err(registry_error)?);
    lines.iter().for_each(|line| log::info(line));
    Ok(lines)
}

/// Sockets for undoing a record: the container's namespace only if the
/// record's path, or the pin setup made, still leads to that very namespace.
fn sockets_for_record(record: &Record, host_ns: &NetNs) -> Result<Sockets> {
    let host = Netlink::open_in(host_ns).map_err(Error::System)?;
    let container = namespace_of(record).map(|ns| Netlink::open_in(&ns).map_err(Error::System)).transpose()?;
    Ok(Sockets { host, container })
}

/// The container's namespace, if the record's path, or the pin setup
/// made, still leads to that very namespace.
pub fn namespace_of(record: &Record) -> Option<NetNs> {
    let pins = record.created.iter().filter_map(|c| match c {
        Created::NetnsPin { path } => Some(path.as_str()),
        _ => None,
    });
    std::iter::once(record.netns_path.as_str())
        .chain(pins)
        .filter_map(|path| NetNs::open(path).ok())
        .find(|ns| ns.id() == record.netns)
}

/// gc's work for one record whose container is gone: undoes it, and says
/// what went.
pub async fn collect_gone(store: &Store, record: &Record, host_ns: &NetNs) -> Result<String> {
    undo_record(store, record, host_ns)
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

fn teardown(id: &str) -> Result<()> {
    let store = Store::system();
    // A setup that waited for start, and the container never started.
    if store.deferred_path(id).exists() {
        store.remove_deferred(id)?;
    }
    // Nothing recorded: a container netrt never touched. Do not even ask for
    // privileges, so that poststop of untouched containers always succeeds.
    if !store.exists(id) {
        return Ok(());
    }
    privilege::check()?;
    privilege::drop_keeping(&privilege::FOR_RELEASES)?;
    runtime()?.block_on(async {
        let _lock = store.lock()?;
        fault::kill_point("teardown", 0);
        let Some(record) = store.load(id)? else {
            // A partial record cut short before setup changed anything.
            store.remove_unreadable(id)?;
            return Ok(());
        };
        let host_ns = NetNs::current().map_err(Error::System)?;
        undo_record(&store, &record, &host_ns).await.map_err(|e| {
            let message = format!("teardown of {id} incomplete, record kept for a retry: {e}");
            log::error(&message);
            Error::System(message)
        })?;
        log::info(&format!("tore down {id}"));
        Ok(())
    })
}

/// `netrt-hook gc`: undoes the records of containers whose namespace is
/// gone (their poststop never ran) and returns one line per container.
pub fn gc() -> Result<Vec<String>> {
    let store = Store::system();
    privilege::check()?;
    privilege::drop_keeping(&privilege::FOR_RELEASES)?;
    runtime()?.block_on(async {
        let _lock = store.lock()?;
        let host_ns = NetNs::current().map_err(Error::System)?;
        let mut removed = vec![];
        for id in store.all_deferred()? {
            let pid = store.deferred(&id)?.and_then(|state| oci::parse_state(&state).ok()).and_then(|c| c.pid);
            if pid.is_none_or(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists()) {
                store.remove_deferred(&id)?;
                let line = format!("removed {id}: its deferred setup (the container never started)");
                log::info(&line);
                removed.push(line);
            }
        }
        for record in store.all()? {
            if !netns::is_gone(&record.netns_path, record.netns) {
                continue;
            }
            removed.push(collect_gone(&store, &record, &host_ns).await?);
        }
        removed.extend(reconcile_uplinks(&store, &host_ns).await?);
        removed.extend(remove_unrecorded_devices(&store, &host_ns).await?);
        removed.extend(collect_pool_claims(&store).await?);
        for address in store.remove_orphan_claims()? {
            let line = format!("removed the claim of {address}: no record holds it");
            log::info(&line);
            removed.push(line);
        }
        Ok(removed)
    })
}

/// Brings every uplink shaper in step with the records: one a run killed
/// after its record went still has that container's class, or is there
/// with no guarantee left. Looks at the declared uplinks, those records
/// name, and any interface with netrt's root htb or ingress ifb.
async fn reconcile_uplinks(store: &Store, host_ns: &NetNs) -> Result<Vec<String>> {
    let host = Netlink::open_in(host_ns).map_err(Error::System)?;
    let system = |e: NetError| Error::System(e.to_string());
    let uplinks = policy::load().map(|p| p.uplinks).unwrap_or_default();
    let records = store.all()?;
    let links = host.links().await.map_err(system)?;
    let mut names: Vec<String> = uplinks.by_name.keys().cloned().collect();
    names.extend(records.iter().filter_map(|r| r.uplink.as_ref()).map(|s| s.uplink.clone()));
    for (index, qdisc) in host.all_qdiscs().await.map_err(system)? {
        if qdisc.kind == "htb" && qdisc.handle >> 16 == crate::uplinks::share::MAJOR as u32 {
            names.extend(links.iter().filter(|l| l.index == index).map(|l| l.name.clone()));
        }
    }
    names.extend(
        links
            .iter()
            .filter(|l| links.iter().any(|ifb| ifb.name == names::uplink_ifb_name(l.index)))
            .map(|l| l.name.clone()),
    );
    names.sort();
    names.dedup();
    let mut lines = vec![];
    for ifb in shaper::orphan_ifbs(&links) {
        host.delete_link(ifb).await.map_err(system)?;
        let line = format!("removed ifb {}: the uplink it shaped is gone", ifb.name);
        log::info(&line);
        lines.push(line);
    }
    for name in names {
        let shares: Vec<&Share> =
            records.iter().filter_map(|r| r.uplink.as_ref()).filter(|s| s.uplink == name).collect();
        let recorded = shares.iter().map(|s| s.capacity_bps).max().unwrap_or(0);
        let capacity_bps = uplinks.get(&name).map_or(recorded, |u| u.capacity_bps);
        let mut changes = 0;
        let reconciled = shaper::reconcile(&host, &name, capacity_bps, &shares, &mut || {
            changes += 1;
            Ok(())
        })
        .await;
        if let Err(e) = reconciled {
            // One uplink that cannot be corrected does not stop gc.
            let line = format!("could not correct netrt's shaper on uplink {name}: {e}");
            log::error(&line);
            lines.push(line);
            continue;
        }
        // A tree that is in step still has its classifier rewritten.
        let rewrites = [crate::request::plan::Direction::Egress, crate::request::plan::Direction::Ingress]
            .iter()
            .filter(|d| crate::uplinks::share::tree(capacity_bps, &shares, **d).is_some())
            .count();
        if changes > rewrites {
            let line = format!(
                "corrected netrt's shaper on uplink {name}: it now holds the guarantees of {} containers",
                shares.len()
            );
            log::info(&line);
            lines.push(line);
        }
    }
    Ok(lines)
}

/// Host devices under netrt's own names that no record accounts for: left
/// by a version of netrt that deleted them after its hook had answered, or
/// made by hand. Under the host lock no setup is half-way (a setup writes
/// its record before it makes a device), so none of them belongs to a
/// container. They go in one batch.
async fn remove_unrecorded_devices(store: &Store, host_ns: &NetNs) -> Result<Vec<String>> {
    let recorded: Vec<String> =
        store.all()?.iter().flat_map(|r| [names::ifb_name(&r.id), names::host_veth_name(&r.id)]).collect();
    let host = Netlink::open_in(host_ns).map_err(Error::System)?;
    let strays: Vec<_> = host
        .links()
        .await
        .map_err(|e| Error::System(e.to_string()))?
        .into_iter()
        .filter(|link| {
            let kind = names::own_device_kind(&link.name);
            kind.is_some() && link.kind.as_deref() == kind && !recorded.contains(&link.name)
        })
        .collect();
    if strays.is_empty() {
        return Ok(vec![]);
    }
    shaping::delete_together(&host, &strays).await.map_err(|e| Error::System(e.to_string()))?;
    let removed: Vec<String> = strays
        .iter()
        .map(|link| format!("removed {} {}: no record names it", link.kind.as_deref().unwrap_or("device"), link.name))
        .collect();
    removed.iter().for_each(|line| log::info(line));
    Ok(removed)
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
