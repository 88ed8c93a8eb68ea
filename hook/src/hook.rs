//! The hook's two stages: setup (createRuntime or prestart) applies the
//! plan and records it; teardown (poststop) undoes what the record lists.

use std::io::Read;

use crate::error::{Error, KeyError, Result};
use crate::netlink::Netlink;
use crate::netns::{self, NetNs};
use crate::oci::{self, Container, Stage};
use crate::plan::{self, Plan};
use crate::record::{self, Created, Record, Side, Store};
use crate::settings;
use crate::shaping::{self, HostIfb, Placement, Sockets};
use crate::{log, privilege, reap};

/// Runs the hook on the OCI state read from `input`.
pub fn run(stage_argument: Option<&str>, input: impl Read) -> Result<()> {
    let container = oci::read_state(input)?;
    record::check_id(&container.id)?;
    match oci::stage(stage_argument, &container)? {
        Stage::Setup => setup(&container),
        Stage::Teardown => teardown(&container.id),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|e| Error::System(format!("cannot start the netlink runtime: {e}")))
}

fn setup(container: &Container) -> Result<()> {
    let config = oci::read_config(&container.bundle)?;
    let mut annotations = container.annotations.clone();
    annotations.extend(config.annotations.clone());
    let settings = settings::collect(&annotations, config.env());
    let plan = plan::build(&settings)?;
    if plan.is_empty() {
        return Ok(());
    }
    privilege::check()?;
    let refuse = |reason: String| -> Error {
        let (key, value) = plan.lead_setting().expect("a plan with limits has a lead setting");
        KeyError::new(key, value, reason).into()
    };
    let pid = container.pid.ok_or_else(|| refuse("the OCI state has no pid, so the container's namespace cannot be found".into()))?;
    let container_ns = NetNs::of_pid(pid).map_err(refuse)?;
    let host_ns = NetNs::current().map_err(refuse)?;
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
        let _lock = store.lock()?;
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
        let placement = shaping::locate(&sockets, &host_ns, &container_ns).await.map_err(refuse)?;
        let buckets = shaping::token_buckets(&plan, &placement)?;
        let ifb = shaping::ifb_name(&container.id);
        remove_stray_ifb(&sockets, &placement, &ifb).await.map_err(|e| refuse(e.to_string()))?;

        let mut record = Record::new(
            &container.id,
            pid,
            container_ns.id(),
            netns_path,
            placement.interface().name.clone(),
            placement.host_veth().map(|v| v.name.clone()),
            plan.clone(),
        );
        record.created = shaping::planned_objects(&plan, &placement, &ifb);
        store.begin(&record)?;
        let mut done = vec![];
        let applied = shaping::apply(&buckets, &placement, &ifb, &sockets, &mut done).await;
        let failure = match applied {
            Ok(()) => store.commit(&container.id).err(),
            Err((direction, e)) => {
                let shaper = plan.shapers().find(|s| s.direction == direction).expect("the failed direction is planned");
                Some(KeyError::new(&shaper.rate_source, &shaper.rate_value, e.to_string()).into())
            }
        };
        let Some(error) = failure else {
            log::info(&describe_setup(&container.id, &plan, &placement));
            return Ok(());
        };
        let (failures, _) = shaping::undo_all(&done, &sockets, HostIfb::Delete).await;
        if failures.is_empty() {
            store.remove(&container.id)?;
        } else {
            // Keep the write-ahead record so teardown or gc can finish.
            record.created = done;
            store.update_partial(&record)?;
        }
        log::error(&format!("setup of {} failed and was undone: {error}", container.id));
        Err(error)
    })
}

fn describe_setup(id: &str, plan: &Plan, placement: &Placement) -> String {
    let limits: Vec<String> = plan.shapers().map(|s| s.describe()).collect();
    let place = match placement {
        Placement::HostSide { interface, host_veth } => format!("{} via host veth {}", interface.name, host_veth.name),
        Placement::InNamespace { interface } => format!("{} inside the container's namespace", interface.name),
    };
    format!("set up {id}: {place}: {}", limits.join("; "))
}

/// An ifb with this container's name is a leftover: of a run whose record
/// is gone, or of a teardown whose background deletion has not finished. It
/// would make the new setup fail.
async fn remove_stray_ifb(sockets: &Sockets, placement: &Placement, ifb: &str) -> crate::netlink::NetResult<()> {
    let side = match placement {
        Placement::HostSide { .. } => Side::Host,
        Placement::InNamespace { .. } => Side::Container,
    };
    shaping::undo(&Created::Ifb { side, name: ifb.to_string() }, sockets).await.map(|_| ())
}

async fn remove_stale(store: &Store, old: &Record, host_ns: &NetNs) -> Result<()> {
    let sockets = sockets_for_record(old, host_ns)?;
    let (failures, _) = shaping::undo_all(&old.created, &sockets, HostIfb::Delete).await;
    if let Some(e) = failures.first() {
        return Err(Error::System(format!("cannot remove what an earlier run of {} left: {e}", old.id)));
    }
    store.remove(&old.id)
}

/// Sockets for undoing a record: the container's namespace only if the
/// record's path still leads to that very namespace.
fn sockets_for_record(record: &Record, host_ns: &NetNs) -> Result<Sockets> {
    let host = Netlink::open_in(host_ns).map_err(Error::System)?;
    let container = match NetNs::open(&record.netns_path) {
        Ok(ns) if ns.id() == record.netns => Some(Netlink::open_in(&ns).map_err(Error::System)?),
        _ => None,
    };
    Ok(Sockets { host, container })
}

fn teardown(id: &str) -> Result<()> {
    let store = Store::system();
    // Nothing recorded: a container netrt never touched. Do not even ask for
    // privileges, so that poststop of untouched containers always succeeds.
    if !store.exists(id) {
        return Ok(());
    }
    privilege::check()?;
    privilege::drop_to_kept()?;
    let host_ifb = runtime()?.block_on(async {
        let _lock = store.lock()?;
        let Some(record) = store.load(id)? else {
            // A partial record cut short before setup changed anything.
            store.remove(id)?;
            return Ok(None);
        };
        let host_ns = NetNs::current().map_err(Error::System)?;
        let sockets = sockets_for_record(&record, &host_ns)?;
        let (failures, host_ifb) = shaping::undo_all(&record.created, &sockets, HostIfb::HandBack).await;
        if let Some(e) = failures.first() {
            let message = format!("teardown of {id} incomplete, record kept for a retry: {e}");
            log::error(&message);
            return Err(Error::System(message));
        }
        store.remove(id)?;
        log::info(&format!("tore down {id}"));
        Ok(host_ifb)
    })?;
    if let Some(ifb) = host_ifb {
        reap::delete_in_background(ifb);
    }
    Ok(())
}
