//! The runner: one way for every run of the hook. Setup reads the request,
//! lists the plan's steps, and under the host lock checks each stage's
//! steps, writes the journal ahead, and applies them in order; on failure
//! it replays the journal in reverse ([`undo`]). Teardown replays a
//! finished record; [`gc`] replays those whose poststop never came.

pub mod gc;
pub mod undo;

use std::io::Read;

use nix::fcntl::Flock;

use crate::config::{self, Config};
use crate::error::{Error, KeyError, Result};
use crate::fault;
use crate::kernel::names;
use crate::kernel::netlink::{NetError, NetResult, Netlink};
use crate::kernel::netns::{self, NetNs};
use crate::kernel::privilege;
use crate::kernel::process;
use crate::kernel::sockets::{Side, Sockets};
use crate::log;
use crate::request::oci::{self, Container, Stage};
use crate::request::origin::{self, Origin};
use crate::request::plan::{self, Plan};
use crate::request::settings;
use crate::state::journal::Journal;
use crate::state::record::{self, Created, Deferred, Record, Store};
use crate::steps::{self, Asked, Setup, Step, Who};

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
    let Some(deferred) = store.deferred(id)? else { return Ok(()) };
    let result = oci::parse_state(&deferred.state).and_then(|container| {
        if container.id != id {
            return Err(Error::System(format!("the deferred state of {id} names container {}", container.id)));
        }
        // The process createRuntime saw, not a later one with its pid.
        if let (Some(pid), Some(expected)) = (container.pid, deferred.start_time) {
            if process::start_time(pid) != Some(expected) {
                return Err(Error::System(format!(
                    "the deferred setup of {id} is for process {pid} as it was at create; that process is gone \
                     (its pid is free or another's), so nothing is set up"
                )));
            }
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

/// What a container asks for, with the configuration it was checked
/// against; None when it asks for nothing.
struct Request {
    plan: Plan,
    config: Config,
    hostname: Option<String>,
    /// The bundle's path to the container's namespace, if it names one.
    netns_path: Option<String>,
}

fn read_request(container: &Container) -> Result<Option<Request>> {
    let bundle = oci::read_config(&container.bundle)?;
    let mut annotations = container.annotations.clone();
    annotations.extend(bundle.annotations.clone());
    if settings::joins_pod_network(&annotations) {
        log::info(&format!(
            "{} joins its pod's network namespace; the pod's sandbox carries its settings",
            container.id
        ));
        return Ok(None);
    }
    // A pod's variables never count: its image and its author set them.
    let origin = origin::origin(&annotations);
    let env = if origin == Origin::Local { bundle.env() } else { &[] };
    let settings = settings::collect(&annotations, env);
    if settings.is_empty() {
        return Ok(None);
    }
    let config = config::load()?;
    config.trust.check_env(env)?;
    config.trust.check(&origin, &settings, &config.pools)?;
    let plan = plan::build_with(&settings, &config.pools)?;
    if plan.is_empty() {
        return Ok(None);
    }
    config.policy.check_with(&plan, &config.pools)?;
    let netns_path = bundle.netns_path().map(str::to_string);
    Ok(Some(Request { plan, config, hostname: bundle.hostname.clone(), netns_path }))
}

/// The container as setup finds it: its init process and namespace.
struct Found<'a> {
    container: &'a Container,
    pid: i32,
    namespace: NetNs,
    host_namespace: NetNs,
    netns_path: String,
}

/// Applies the container's settings. With `defer_state`, a namespace
/// without network keeps that state for `apply_deferred` instead.
fn setup(container: &Container, defer_state: Option<&str>) -> Result<()> {
    let Some(request) = read_request(container)? else { return Ok(()) };
    privilege::check()?;
    let (lead_key, lead_value) =
        request.plan.lead_setting().map(|(k, v)| (k.to_string(), v.to_string())).expect("a plan has a lead setting");
    let refuse = |reason: String| -> Error { KeyError::new(&lead_key, &lead_value, reason).into() };
    let pid = container
        .pid
        .ok_or_else(|| refuse("the OCI state has no pid, so the container's namespace cannot be found".into()))?;
    let namespace = NetNs::of_pid(pid).map_err(refuse)?;
    let host_namespace = NetNs::current().map_err(refuse)?;
    let who = Who { id: container.id.clone(), hostname: request.hostname.clone() };
    let mut steps = steps::for_plan(&Asked { plan: &request.plan, pools: &request.config.pools, who: &who });
    for step in &mut steps {
        step.open(&namespace).map_err(refuse)?;
    }
    privilege::drop_to_kept()?;
    if namespace.id() == host_namespace.id() {
        return Err(refuse(
            "the container shares the host's network namespace (--network host); netrt never changes the host's own interfaces".into(),
        ));
    }
    let netns_path = match &request.netns_path {
        Some(path) if netns::identity_of(path) == Some(namespace.id()) => path.clone(),
        _ => format!("/proc/{pid}/ns/net"),
    };
    let found = Found { container, pid, namespace, host_namespace, netns_path };
    runtime()?.block_on(set_up(&found, request, steps, defer_state))
}

/// Setup under the host lock: a deferred or repeated call, then the steps.
async fn set_up(found: &Found<'_>, request: Request, mut steps: Vec<Box<dyn Step>>, defer: Option<&str>) -> Result<()> {
    let store = Store::system();
    let id = &found.container.id;
    let refuse = |reason: String| -> Error {
        let (key, value) = request.plan.lead_setting().expect("a plan has a lead setting");
        KeyError::new(key, value, reason).into()
    };
    let mut lock = Some(store.lock()?);
    if let Some(state) = defer {
        let links = Netlink::open_in(&found.namespace).map_err(refuse)?.links().await;
        if links.map_err(|e| refuse(e.to_string()))?.iter().all(|link| link.name == "lo") {
            let start_time = process::start_time(found.pid);
            store.defer(id, &Deferred { state: state.to_string(), start_time })?;
            log::info(&format!(
                "setup of {id} waits for start: its network namespace has no interface besides loopback yet"
            ));
            return Ok(());
        }
    }
    if let Some(old) = store.load(id)? {
        if old.complete && old.pid == found.pid && old.netns == found.namespace.id() {
            return Ok(());
        }
        undo::replay(&store, &old, &found.host_namespace, None)
            .await
            .map_err(|e| Error::System(format!("cannot remove what an earlier run of {} left: {e}", old.id)))?;
    }
    let sockets = Sockets {
        host: Netlink::open_in(&found.host_namespace).map_err(refuse)?,
        container: Some(Netlink::open_in(&found.namespace).map_err(refuse)?),
    };
    let record = Record::new(id, found.pid, found.namespace.id(), found.netns_path.clone(), request.plan.clone());
    let journal = Journal::new(&store, record);
    let namespaces = (&found.namespace, &found.host_namespace);
    let mut setup = Setup::new(&request.config, request.plan.clone(), sockets, namespaces, journal);
    match run_steps(&mut setup, &mut steps, &mut lock).await {
        Ok(()) => {
            let placement = setup.found.placement.as_ref().map(|p| p.describe());
            let line = describe_setup(id, &setup.plan, placement);
            setup.journal.commit()?;
            log::info(&line);
            Ok(())
        }
        Err(error) => Err(rollback(setup, &found.host_namespace, error).await),
    }
}

/// Each stage in turn: its steps checked, the journal written ahead, then
/// its steps applied in order. The lock is dropped only around a step that
/// waits on the network, and taken again before the next.
async fn run_steps(
    setup: &mut Setup<'_>,
    steps: &mut [Box<dyn Step>],
    lock: &mut Option<Flock<std::fs::File>>,
) -> Result<()> {
    for stage in [steps::Stage::Addresses, steps::Stage::Host] {
        let mut of_stage: Vec<&mut Box<dyn Step>> = steps.iter_mut().filter(|step| step.stage() == stage).collect();
        if of_stage.is_empty() {
            continue;
        }
        for step in of_stage.iter_mut() {
            step.check(setup).await?;
        }
        if stage == steps::Stage::Host {
            remove_strays(&setup.sockets, &setup.id).await.map_err(|e| setup.refuse(e.to_string()))?;
        }
        let planned: Vec<Created> = of_stage.iter().flat_map(|step| step.planned(setup)).collect();
        setup.journal.announce(planned)?;
        setup.journal.write_ahead()?;
        if stage == steps::Stage::Host {
            setup.journal.claim_addresses()?;
            fault::kill_point("setup", 0);
        }
        for step in of_stage.iter_mut() {
            setup.journal.announce(step.planned(setup))?;
            if step.unlocked() {
                drop(lock.take());
                let applied = step.apply(setup).await;
                *lock = Some(setup.journal.store().lock().map_err(|e| setup.refuse(e.to_string()))?);
                applied?;
            } else {
                step.apply(setup).await?;
            }
        }
    }
    Ok(())
}

/// Undoes a failed setup: the journal's replay, as teardown would.
async fn rollback(mut setup: Setup<'_>, host_namespace: &NetNs, error: Error) -> Error {
    let id = setup.id.clone();
    let store = setup.journal.store();
    let mut registry = setup.found.registry.take();
    let node = setup.config.pools.node.clone();
    let replayed = match setup.journal.for_rollback() {
        // Refused before the journal was written: nothing changed.
        Ok(None) => return error,
        Ok(Some(record)) => {
            let registry = registry.as_mut().map(|registry| (registry, node.as_str()));
            undo::replay(store, &record, host_namespace, registry).await
        }
        Err(e) => Err(e),
    };
    match replayed {
        Ok(()) => log::error(&format!("setup of {id} failed and was undone: {error}")),
        Err(e) => log::error(&format!(
            "setup of {id} failed ({error}) and was not fully undone, its record is kept for teardown or gc: {e}"
        )),
    }
    error
}

fn describe_setup(id: &str, plan: &Plan, placement: Option<String>) -> String {
    let limits: Vec<String> = plan.shapers().map(|s| s.describe()).collect();
    let place = placement.unwrap_or_default();
    format!("set up {id}: {place}: {}", limits.join("; "))
}

/// Host devices with this container's names are leftovers of a run whose
/// record is gone. They would make the new setup fail. An ifb inside the
/// container's namespace is one a failed earlier setup left in a namespace
/// that lives on. A host device under one of this container's names that
/// is not netrt's (no mark, another kind) stays, and the setup is refused.
async fn remove_strays(sockets: &Sockets, id: &str) -> NetResult<()> {
    let inside = Created::Ifb { side: Side::Container, name: names::ifb_name(id) };
    undo::remove_stray(&inside, sockets).await?;
    for stray in [
        Created::Ifb { side: Side::Host, name: names::ifb_name(id) },
        Created::HostVeth { name: names::host_veth_name(id), index: None },
    ] {
        if let Some(link) = undo::remove_stray(&stray, sockets).await? {
            return Err(NetError {
                action: "checking the host".into(),
                errno: None,
                detail: format!(
                    "the host has a device {} (link group {}) under the name netrt gives this container's, \
                     without netrt's mark: it is not netrt's, so netrt leaves it; remove it to start the container",
                    link.name, link.group
                ),
            });
        }
    }
    Ok(())
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
        undo::replay(&store, &record, &host_ns, None).await.map_err(|e| {
            let message = format!("teardown of {id} incomplete, record kept for a retry: {e}");
            log::error(&message);
            Error::System(message)
        })?;
        log::info(&format!("tore down {id}"));
        Ok(())
    })
}
