//! `netrt-hook renew [--all]`, run by a timer (every 30 s where systemd
//! runs): renews the leases past T1 (all of them with `--all`) from inside
//! each container's namespace, moves the address's lifetime on, removes
//! the address of a lease the server refuses or the policy no longer
//! allows, and collects containers
//! that are gone (releasing their leases), as gc does. The exchanges run
//! without the host lock, in parallel; each result is applied under it,
//! to a record that must still be the same container's.

use std::time::{Duration, Instant};

use crate::config::policy::Policy;
use crate::dhcp::client::{self, Failure};
use crate::dhcp::lease::{Lease, Phase};
use crate::error::{Error, Result};
use crate::kernel::netlink::Netlink;
use crate::kernel::netns::{self, NetNs};
use crate::log;
use crate::runner;
use crate::state::record::{Record, Store};

/// How long one renewal waits for its server's answer.
pub const RENEW_TIMEOUT: Duration = Duration::from_secs(3);
/// Renewals in flight at once.
const PARALLEL: usize = 64;

/// What one renewal came to.
enum Outcome {
    Renewed(Lease),
    NoAnswer,
    Failed(Failure),
}

/// `netrt-hook renew`: one line per lease it touched.
pub fn renew(all: bool) -> Result<Vec<String>> {
    let store = Store::system();
    crate::kernel::privilege::check()?;
    // Renewed leases are held to the policy: one that cannot be read is an
    // error, as at setup.
    let config = crate::config::load()?;
    // Reclaim probes the LAN: its packet socket is opened before the drop.
    let prober = crate::pools::reclaim::prober_for(&config.pools);
    crate::kernel::privilege::drop_keeping(&crate::kernel::privilege::FOR_RELEASES)?;
    let policy = config.policy;
    let runtime = runner::runtime()?;
    // The renewal timer's run is also this node's liveness in a cluster's
    // registry; a registry that does not answer costs no renewal.
    let host_ns = NetNs::current().map_err(Error::System)?;
    let mut lines = vec![];
    match runtime.block_on(keep_node_alive(&store, &config.pools, prober.as_ref(), &host_ns)) {
        Ok(reclaimed) => lines.extend(reclaimed),
        Err(line) => log::error(&line),
    }
    let records: Vec<Record> = {
        let _lock = store.lock()?;
        store.all()?
    };
    let now = client::unix_now();
    let mut due = vec![];
    for record in records.into_iter().filter(|r| r.complete) {
        let Some(lease) = record.dhcp.clone() else { continue };
        if netns::is_gone(&record.netns_path, record.netns) {
            let _lock = store.lock()?;
            // gc may have come first.
            if let Some(current) = store.load(&record.id)? {
                if current.netns == record.netns && netns::is_gone(&current.netns_path, current.netns) {
                    lines.push(runtime.block_on(runner::undo::collect_gone(&store, &current, &host_ns))?);
                }
            }
            continue;
        }
        match lease.phase(now) {
            _ if lease.refused.is_some() => {}
            Phase::Expired => lines.push(format!(
                "{}: the lease of {} ran out; the kernel has dropped the address (restart the container for a new one)",
                record.id, lease.address
            )),
            Phase::Bound if !all => {}
            phase => due.push((record, lease, phase)),
        }
    }
    for batch in due.chunks(PARALLEL) {
        let outcomes: Vec<Outcome> = std::thread::scope(|scope| {
            let running: Vec<_> =
                batch.iter().map(|(record, lease, phase)| scope.spawn(move || ask(record, lease, *phase))).collect();
            running
                .into_iter()
                .map(|r| r.join().unwrap_or(Outcome::Failed(Failure::Broken("the renewal panicked".into()))))
                .collect()
        });
        for ((record, lease, _), outcome) in batch.iter().zip(outcomes) {
            let _lock = store.lock()?;
            let Some(mut current) = store.load(&record.id)? else { continue };
            let same = current.complete
                && current.pid == record.pid
                && current.netns == record.netns
                && current.dhcp.as_ref().is_some_and(|l| l.address == lease.address);
            if !same {
                continue;
            }
            let line = runtime.block_on(settle((&store, &policy), &mut current, lease, outcome))?;
            log::info(&line);
            lines.push(line);
        }
    }
    Ok(lines)
}

/// Refreshes this node's liveness where the registry is etcd; the line to
/// log when it could not.
async fn keep_node_alive(
    store: &Store,
    pools: &crate::config::pools::Pools,
    prober: Option<&crate::probe::Prober>,
    host_ns: &NetNs,
) -> std::result::Result<Vec<String>, String> {
    if !matches!(pools.registry, crate::config::pools::Registry::Etcd(_)) {
        return Ok(vec![]);
    }
    let mut registry = {
        // Under the host lock, as setup, teardown and gc refresh it: two runs
        // that found the lease lapsed would each put the key on a lease of
        // their own, and the node would keep renewing the one without the key.
        let _lock = store.lock().map_err(|e| format!("this node's liveness was not refreshed: {e}"))?;
        let refreshed = async {
            let mut registry = crate::pools::any_store::open(pools, false).await?;
            crate::steps::claims::keep_alive(store, &mut registry, pools).await.map(|_| registry)
        };
        refreshed.await.map_err(|e| format!("this node's liveness in the address registry was not refreshed: {e}"))?
    };
    let Some(prober) = prober else { return Ok(vec![]) };
    let host = Netlink::open_in(host_ns)?;
    Ok(crate::steps::claims::reclaim_logged(&mut registry, pools, prober, &host).await)
}

/// The renewal exchange, from inside the container's namespace.
fn ask(record: &Record, lease: &Lease, phase: Phase) -> Outcome {
    let Some(ns) = record.namespace() else {
        return Outcome::Failed(Failure::Broken("the container's namespace is gone".into()));
    };
    let to = if phase == Phase::Rebinding { std::net::Ipv4Addr::BROADCAST } else { lease.server };
    let channel = match crate::steps::lease::channel_in(&ns, record, to) {
        Ok(channel) => channel,
        Err(e) => return Outcome::Failed(Failure::Broken(e)),
    };
    match client::extend(&channel, &lease.client(&record.id), lease, Instant::now() + RENEW_TIMEOUT) {
        Ok(Some(new)) => Outcome::Renewed(new),
        Ok(None) => Outcome::NoAnswer,
        Err(failure) => Outcome::Failed(failure),
    }
}

/// Applies a renewal's outcome to the container and its record, under the
/// host lock.
async fn settle(
    (store, policy): (&Store, &Policy),
    record: &mut Record,
    lease: &Lease,
    outcome: Outcome,
) -> Result<String> {
    let id = record.id.clone();
    let interface = || async {
        let ns = record.namespace().ok_or_else(|| Error::System(format!("the namespace of {id} is gone")))?;
        let socket = Netlink::open_in(&ns).map_err(Error::System)?;
        let link = socket
            .link_by_name(&record.interface)
            .await
            .map_err(|e| Error::System(e.to_string()))?
            .ok_or_else(|| Error::System(format!("{id} has no interface {} any more", record.interface)))?;
        Ok::<_, Error>((socket, link))
    };
    match outcome {
        Outcome::Renewed(new) => {
            let (socket, link) = interface().await?;
            // Held to the policy like the first lease: the admin may have
            // narrowed it since.
            let attachment = record.plan.attachment.as_ref();
            if let Some(refusal) = attachment.and_then(|a| policy.check_leased(a, &new.address).err()) {
                crate::steps::lease::release(record, &new);
                socket.delete_address(&link, &new.address).await.map_err(|e| Error::System(e.to_string()))?;
                let reason = refusal.to_string();
                let line = format!(
                    "{id}: the renewed lease is refused ({reason}); its address is removed and the lease released"
                );
                log::error(&line);
                record.dhcp = Some(Lease { refused: Some(reason), ..new });
                store.update_complete(record)?;
                return Ok(line);
            }
            let lifetime = new.remaining(client::unix_now());
            socket
                .put_leased_address(&link, &new.address, lifetime, true)
                .await
                .map_err(|e| Error::System(e.to_string()))?;
            let line = format!("{id}: renewed {} from {} for {}s", new.address, new.server, new.seconds);
            record.dhcp = Some(new);
            store.update_complete(record)?;
            Ok(line)
        }
        Outcome::NoAnswer => Ok(format!(
            "{id}: no answer from a DHCP server about {} within {}s; the next run tries again, the address goes in {}s",
            lease.address,
            RENEW_TIMEOUT.as_secs(),
            lease.remaining(client::unix_now())
        )),
        Outcome::Failed(Failure::Refused { server, message }) => {
            let (socket, link) = interface().await?;
            socket.delete_address(&link, &lease.address).await.map_err(|e| Error::System(e.to_string()))?;
            let from = server.map_or("the DHCP server".to_string(), |s| format!("DHCP server {s}"));
            let line =
                format!("{id}: {from} refused to renew {} (DHCPNAK: {message}); its address is removed", lease.address);
            log::error(&line);
            record.dhcp = Some(Lease { refused: Some(message), ..lease.clone() });
            store.update_complete(record)?;
            Ok(line)
        }
        Outcome::Failed(failure) => Ok(format!("{id}: the renewal of {} failed: {failure:?}", lease.address)),
    }
}
