//! What netrt made for a container, kept under `/run/netrt` between setup
//! and teardown, and the host-wide lock that serialises changes to it.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::kernel::netlink::RouteSpec;
use crate::kernel::netns::{NetNs, NsId};
pub use crate::kernel::sockets::Side;
use crate::request::plan::Plan;

pub const RUN_DIR: &str = "/run/netrt";
const RECORD_VERSION: u32 = 2;
/// Records from this version on name host devices that carry netrt's mark.
pub const MARKED_SINCE_VERSION: u32 = 2;

/// One object netrt creates; enough to find it again and to check that it
/// is still the one netrt made before removing it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "object", rename_all = "snake_case")]
pub enum Created {
    /// An ifb device, found by its name.
    Ifb { side: Side, name: String },
    /// The tbf root qdisc of an interface.
    RootQdisc { side: Side, index: u32, name: String },
    /// The ingress qdisc of an interface, with the redirect filter on it.
    IngressQdisc { side: Side, index: u32, name: String },
    /// The host end of a bridge attachment's veth pair; deleting it deletes
    /// both ends. The index is None until the pair exists.
    HostVeth { name: String, index: Option<u32> },
    /// An interface netrt made inside the container's namespace (macvlan).
    ContainerLink { name: String, index: Option<u32> },
    /// An 802.1Q sub-interface netrt made on the host. Every container on
    /// it lists it; the last one to go deletes it.
    VlanLink { name: String, index: Option<u32> },
    /// A bind mount that keeps the container's namespace alive until
    /// teardown has deleted what netrt put inside it (see `netns::pin`).
    NetnsPin { path: String },
    /// The container's default route of one family, replaced by netrt's;
    /// undoing deletes netrt's and puts the replaced ones back.
    DefaultRoute { ours: RouteSpec, replaced: Vec<RouteSpec> },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub version: u32,
    pub id: String,
    /// The container's init process when it was set up: a second hook call
    /// for the same start (prestart and createRuntime) sees the same pid.
    pub pid: i32,
    pub netns: NsId,
    /// A path that reaches the container's namespace while it exists.
    pub netns_path: String,
    /// The container's interface that is shaped.
    pub interface: String,
    /// Its host-side veth peer, when shaping happens on the host.
    pub host_veth: Option<String>,
    pub plan: Plan,
    /// Everything setup makes, written before the first change.
    pub created: Vec<Created>,
    /// Whether the container may hold claims in a pool: teardown then
    /// releases every claim the registry lists for it.
    #[serde(default)]
    pub pool_claims: bool,
    /// The DHCP lease of the attachment's IPv4 address (`net.ip=dhcp`).
    #[serde(default)]
    pub dhcp: Option<crate::dhcp::lease::Lease>,
    /// The container's guarantees on its uplink, written before
    /// the uplink's shaper changes.
    #[serde(default)]
    pub uplink: Option<crate::uplinks::share::Share>,
    /// Its addresses another node holds now (found when this node came
    /// back after its liveness lapsed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<String>,
    /// False until setup has finished: kept in the file's name, not in it.
    #[serde(skip)]
    pub complete: bool,
}

impl Record {
    /// The container's namespace, if the record's path, or a pin setup
    /// made, still leads to that very namespace.
    pub fn namespace(&self) -> Option<NetNs> {
        let pins = self.created.iter().filter_map(|c| match c {
            Created::NetnsPin { path } => Some(path.as_str()),
            _ => None,
        });
        std::iter::once(self.netns_path.as_str())
            .chain(pins)
            .filter_map(|path| NetNs::open(path).ok())
            .find(|ns| ns.id() == self.netns)
    }

    /// The static addresses its attachment holds (and claims).
    pub fn addresses(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.plan.attachment.iter().flat_map(|a| &a.addresses).map(|cidr| cidr.address)
    }

    /// A record of a setup about to start: the interface is named by the
    /// step that finds or makes it.
    pub fn new(id: &str, pid: i32, netns: NsId, netns_path: String, plan: Plan) -> Self {
        Record {
            version: RECORD_VERSION,
            id: id.to_string(),
            pid,
            netns,
            netns_path,
            interface: String::new(),
            host_veth: None,
            plan,
            created: vec![],
            pool_claims: false,
            dhcp: None,
            uplink: None,
            conflicts: vec![],
            complete: false,
        }
    }
}

/// A setup put off until `start`: the OCI state createRuntime saw, and
/// the start time of its process, so that a later process with the same
/// pid is never set up in its place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deferred {
    pub state: String,
    pub start_time: Option<u64>,
}

impl Deferred {
    /// A deferred file; one an earlier netrt wrote holds the state alone.
    fn parse(text: String) -> Deferred {
        serde_json::from_str(&text).unwrap_or(Deferred { state: text, start_time: None })
    }
}

/// Refuses container ids that could not be a file name under `/run/netrt`.
pub fn check_id(id: &str) -> Result<()> {
    let safe = !id.is_empty()
        && id.len() <= 200
        && id != "."
        && id != ".."
        && id.chars().all(|c| c.is_ascii_alphanumeric() || "_.+-".contains(c));
    if safe {
        Ok(())
    } else {
        Err(Error::Input(format!(
            "container id {id:?} is not one netrt accepts (letters, digits, _ . + -, at most 200)"
        )))
    }
}

pub struct Store {
    dir: PathBuf,
}

impl Store {
    pub fn new(dir: impl Into<PathBuf>) -> Store {
        Store { dir: dir.into() }
    }

    pub fn system() -> Store {
        Store::new(RUN_DIR)
    }

    fn containers(&self) -> PathBuf {
        self.dir.join("containers")
    }

    /// A finished setup's record.
    fn path_of(&self, id: &str) -> PathBuf {
        self.containers().join(format!("{id}.json"))
    }

    /// The record of a setup under way, or of one that died under way.
    fn partial_path_of(&self, id: &str) -> PathBuf {
        self.containers().join(format!("{id}.partial"))
    }

    /// Where the namespace of container `id` is pinned (see `netns::pin`).
    pub fn pin_path(&self, id: &str) -> PathBuf {
        self.dir.join("netns").join(id)
    }

    /// Address claims: one symbolic link per address an attachment holds,
    /// named by the address and pointing at the holder's id, so a setup
    /// checks its addresses against the others with one lookup each
    /// instead of reading every record.
    fn addresses(&self) -> PathBuf {
        self.dir.join("addresses")
    }

    fn claim_path(&self, address: &IpAddr) -> PathBuf {
        self.addresses().join(address.to_string())
    }

    fn ensure_dirs(&self) -> Result<()> {
        for dir in [self.containers(), self.addresses()] {
            ensure_private_dir(&dir)?;
        }
        Ok(())
    }

    /// Takes the host-wide lock; it is released when the guard drops, or by
    /// the kernel when the process dies.
    pub fn lock(&self) -> Result<Flock<File>> {
        self.ensure_dirs()?;
        let path = self.dir.join("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::System(format!("cannot open {}: {e}", path.display())))?;
        Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, e)| Error::System(format!("cannot lock {}: {e}", path.display())))
    }

    /// Whether any record of `id` exists, finished, partial or cut short.
    pub fn exists(&self, id: &str) -> bool {
        self.path_of(id).exists() || self.partial_path_of(id).exists()
    }

    /// The record of `id`: a finished one, else one under way. A partial
    /// record that is not valid JSON is being written right now (readers do
    /// not hold the lock) or was cut short before setup changed anything:
    /// either way it lists nothing made, and counts as absent.
    pub fn load(&self, id: &str) -> Result<Option<Record>> {
        if let Some(mut record) = read(&self.path_of(id))? {
            record.complete = true;
            return Ok(Some(record));
        }
        let partial = self.partial_path_of(id);
        match fs::read_to_string(&partial) {
            Ok(text) => Ok(serde_json::from_str::<Record>(&text).ok()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::System(format!("cannot read {}: {e}", partial.display()))),
        }
    }

    /// Writes the record of a setup before its first change. One plain
    /// write: should the hook die during it, nothing has changed yet.
    pub fn begin(&self, record: &Record) -> Result<()> {
        self.ensure_dirs()?;
        let path = self.partial_path_of(&record.id);
        write_file(&path, record).map_err(|e| Error::System(format!("cannot write {}: {e}", path.display())))
    }

    /// Rewrites a partial record atomically, once changes exist.
    pub fn update_partial(&self, record: &Record) -> Result<()> {
        replace_file(&self.partial_path_of(&record.id), "partial.tmp", record)
    }

    /// Rewrites a finished record atomically (a renewed lease).
    pub fn update_complete(&self, record: &Record) -> Result<()> {
        replace_file(&self.path_of(&record.id), "json.tmp", record)
    }

    /// Marks a setup finished: one rename, atomic.
    pub fn commit(&self, id: &str) -> Result<()> {
        fs::rename(self.partial_path_of(id), self.path_of(id))
            .map_err(|e| Error::System(format!("cannot complete the record of {id}: {e}")))
    }

    /// Removes a record and the claims of its addresses.
    pub fn remove(&self, record: &Record) -> Result<()> {
        // The claims first: a claim whose record is gone is stale anyway
        // (setup and gc treat it so), a record whose claims are gone is not.
        for address in record.addresses().filter(|_| !crate::fault::leaks("address_claim")) {
            self.release(&address, &record.id)?;
        }
        self.remove_files(&record.id)
    }

    /// Removes a partial record cut short before it could be read: it
    /// lists nothing made, and any claim it made is an orphan for gc.
    pub fn remove_unreadable(&self, id: &str) -> Result<()> {
        self.remove_files(id)
    }

    fn remove_files(&self, id: &str) -> Result<()> {
        let partial = self.partial_path_of(id);
        for path in [self.path_of(id), partial.with_extension("partial.tmp"), partial] {
            remove_if_present(&path)?;
        }
        Ok(())
    }

    /// The id of the container whose record claims `address`, if any. A
    /// claim is only a pointer: whether its holder still holds the address
    /// is for the caller to check in the holder's record.
    pub fn holder_of(&self, address: &IpAddr) -> Result<Option<String>> {
        let path = self.claim_path(address);
        match fs::read_link(&path) {
            Ok(target) => Ok(Some(target.to_string_lossy().into_owned())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::System(format!("cannot read {}: {e}", path.display()))),
        }
    }

    /// Claims the addresses of a record's attachment for it, replacing any
    /// stale claim (the caller has checked that no live container holds
    /// them). Called under the lock, after `begin`: a claim never exists
    /// without the record that undoes it.
    pub fn claim(&self, record: &Record) -> Result<()> {
        for address in record.addresses() {
            let path = self.claim_path(&address);
            if self.holder_of(&address)?.as_deref() == Some(record.id.as_str()) {
                continue;
            }
            let made = match std::os::unix::fs::symlink(&record.id, &path) {
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    fs::remove_file(&path).and_then(|_| std::os::unix::fs::symlink(&record.id, &path))
                }
                other => other,
            };
            made.map_err(|e| Error::System(format!("cannot write {}: {e}", path.display())))?;
        }
        Ok(())
    }

    /// Removes the claim of `address` if `id` holds it.
    pub fn release(&self, address: &IpAddr, id: &str) -> Result<()> {
        if self.holder_of(address)?.as_deref() != Some(id) {
            return Ok(());
        }
        remove_if_present(&self.claim_path(address))
    }

    /// Removes the claims whose holder has no record (one cut short before
    /// it could name its addresses, or removed by hand); returns the
    /// addresses freed.
    pub fn remove_orphan_claims(&self) -> Result<Vec<String>> {
        let mut freed = vec![];
        for entry in entries_of(&self.addresses())? {
            let holder = fs::read_link(entry.path()).map(|t| t.to_string_lossy().into_owned()).unwrap_or_default();
            if check_id(&holder).is_ok() && self.exists(&holder) {
                continue;
            }
            remove_if_present(&entry.path())?;
            freed.push(entry.file_name().to_string_lossy().into_owned());
        }
        freed.sort();
        Ok(freed)
    }

    fn pending_dir(&self) -> PathBuf {
        self.dir.join("pending-releases")
    }

    /// Remembers that container `id`'s claims could not be released (the
    /// registry did not answer): the next run that reaches it releases them.
    pub fn add_pending_release(&self, id: &str) -> Result<()> {
        let dir = self.pending_dir();
        ensure_private_dir(&dir)?;
        let path = dir.join(id);
        fs::write(&path, "").map_err(|e| Error::System(format!("cannot write {}: {e}", path.display())))
    }

    pub fn pending_releases(&self) -> Result<Vec<String>> {
        let mut ids: Vec<String> = entries_of(&self.pending_dir())?
            .into_iter()
            .filter_map(|entry| entry.file_name().into_string().ok())
            .filter(|id| check_id(id).is_ok())
            .collect();
        ids.sort();
        Ok(ids)
    }

    pub fn remove_pending_release(&self, id: &str) -> Result<()> {
        remove_if_present(&self.pending_dir().join(id))
    }

    fn liveness_path(&self) -> PathBuf {
        self.dir.join("liveness")
    }

    /// The etcd lease this node's liveness key lives on, as the last run
    /// that refreshed it left it; outlives containers, as the lock does.
    pub fn liveness_lease(&self) -> Option<i64> {
        fs::read_to_string(self.liveness_path()).ok()?.trim().parse().ok()
    }

    /// How long ago a run last refreshed this node's liveness.
    pub fn liveness_age(&self) -> Option<std::time::Duration> {
        fs::metadata(self.liveness_path()).ok()?.modified().ok()?.elapsed().ok()
    }

    pub fn set_liveness_lease(&self, lease: i64) -> Result<()> {
        ensure_private_dir(&self.dir)?;
        let path = self.liveness_path();
        let temporary = self.dir.join("liveness.tmp");
        fs::write(&temporary, lease.to_string())
            .and_then(|_| fs::rename(&temporary, &path))
            .map_err(|e| Error::System(format!("cannot write {}: {e}", path.display())))
    }

    fn deferred_dir(&self) -> PathBuf {
        self.dir.join("deferred")
    }

    /// Where the state of a setup put off until `start` waits.
    pub fn deferred_path(&self, id: &str) -> PathBuf {
        self.deferred_dir().join(format!("{id}.json"))
    }

    /// Keeps the OCI state of a setup that waits for the container's
    /// network (see `netrt-hook apply-deferred`), with the start time of
    /// its process. Atomic, like the records.
    pub fn defer(&self, id: &str, deferred: &Deferred) -> Result<()> {
        ensure_private_dir(&self.deferred_dir())?;
        let path = self.deferred_path(id);
        let temporary = path.with_extension("json.tmp");
        let text = serde_json::to_vec_pretty(deferred).expect("a deferred setup always serialises");
        fs::write(&temporary, text)
            .and_then(|_| fs::rename(&temporary, &path))
            .map_err(|e| Error::System(format!("cannot write {}: {e}", path.display())))
    }

    /// The deferred setup of `id`, if any.
    pub fn deferred(&self, id: &str) -> Result<Option<Deferred>> {
        let path = self.deferred_path(id);
        match fs::read_to_string(&path) {
            Ok(text) => Ok(Some(Deferred::parse(text))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::System(format!("cannot read {}: {e}", path.display()))),
        }
    }

    pub fn remove_deferred(&self, id: &str) -> Result<()> {
        remove_if_present(&self.deferred_path(id))
    }

    /// The ids of every deferred setup.
    pub fn all_deferred(&self) -> Result<Vec<String>> {
        let mut ids: Vec<String> = entries_of(&self.deferred_dir())?
            .into_iter()
            .filter_map(|entry| entry.file_name().into_string().ok()?.strip_suffix(".json").map(str::to_string))
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Every record, in id order; damaged ones are reported, not skipped.
    pub fn all(&self) -> Result<Vec<Record>> {
        let mut ids: Vec<String> = entries_of(&self.containers())?
            .into_iter()
            .filter_map(|entry| {
                let name = entry.file_name().into_string().ok()?;
                name.strip_suffix(".json").or_else(|| name.strip_suffix(".partial")).map(str::to_string)
            })
            .collect();
        ids.sort();
        ids.dedup();
        ids.iter().filter_map(|id| self.load(id).transpose()).collect()
    }
}

fn read(path: &Path) -> Result<Option<Record>> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::System(format!("cannot read {}: {e}", path.display()))),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| Error::System(format!("record {} is damaged ({e}); remove it by hand", path.display())))
}

/// The entries of a folder; none if it does not exist (yet).
fn entries_of(dir: &Path) -> Result<Vec<fs::DirEntry>> {
    match fs::read_dir(dir) {
        Ok(entries) => Ok(entries.flatten().collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(vec![]),
        Err(e) => Err(Error::System(format!("cannot list {}: {e}", dir.display()))),
    }
}

/// Removes a file; one already gone is fine.
fn remove_if_present(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(Error::System(format!("cannot remove {}: {e}", path.display())))
        }
        _ => Ok(()),
    }
}

fn write_file(path: &Path, record: &Record) -> std::io::Result<()> {
    let text = serde_json::to_vec_pretty(record).expect("a record always serialises");
    OpenOptions::new().create(true).truncate(true).write(true).mode(0o600).open(path)?.write_all(&text)
}

/// Makes `dir` and its parents, readable by root only, if missing.
fn ensure_private_dir(dir: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::System(format!("cannot create {}: {e}", dir.display())))
}

/// Replaces the record at `path` atomically: written beside it (with the
/// extension `temporary`), then renamed over it.
fn replace_file(path: &Path, temporary: &str, record: &Record) -> Result<()> {
    let beside = path.with_extension(temporary);
    write_file(&beside, record)
        .and_then(|_| fs::rename(&beside, path))
        .map_err(|e| Error::System(format!("cannot write {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> Store {
        let dir = std::env::temp_dir().join(format!("netrt-record-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        Store::new(dir)
    }

    #[test]
    fn ids_that_could_escape_are_refused() {
        for bad in ["", ".", "..", "../etc", "a/b", "x\ny", "é", &"a".repeat(201)] {
            assert!(check_id(bad).is_err(), "{bad:?}");
        }
        for good in ["web1", "0123abcdef", "pod_a.b+c-d"] {
            assert!(check_id(good).is_ok(), "{good:?}");
        }
    }

    fn record(id: &str) -> Record {
        let mut record = Record::new(id, 4242, NsId { dev: 4, ino: 4026532 }, "/proc/1/ns/net".into(), Plan::default());
        record.interface = "eth0".into();
        record.host_veth = Some("veth1".into());
        record.created.push(Created::Ifb { side: Side::Host, name: "nrti0".into() });
        record
    }

    #[test]
    fn a_record_is_partial_until_committed_and_then_removed() {
        let store = scratch("lifecycle");
        let record = record("c1");
        store.begin(&record).unwrap();
        let partial = store.load("c1").unwrap().unwrap();
        assert!(!partial.complete);
        assert_eq!(partial.created, record.created);
        store.commit("c1").unwrap();
        let complete = store.load("c1").unwrap().unwrap();
        assert!(complete.complete);
        assert_eq!(store.all().unwrap(), vec![complete.clone()]);
        assert!(!store.partial_path_of("c1").exists());
        store.remove(&complete).unwrap();
        store.remove(&complete).unwrap();
        assert_eq!(store.load("c1").unwrap(), None);
        assert_eq!(fs::read_dir(store.containers()).unwrap().count(), 0, "nothing stays behind");
        fs::remove_dir_all(&store.dir).unwrap();
    }

    fn attached(id: &str, addresses: &str) -> Record {
        let words = ["net.bridge=br0".to_string(), format!("net.ip={addresses}")];
        let plan = crate::request::plan::build(&crate::request::settings::from_words(&words).unwrap()).unwrap();
        let mut record = Record::new(id, 4242, NsId { dev: 4, ino: 4026532 }, "/proc/1/ns/net".into(), plan);
        record.interface = "eth0".into();
        record
    }

    #[test]
    fn claims_name_their_holder_and_go_with_its_record() {
        let store = scratch("claims");
        store.ensure_dirs().unwrap();
        let v4: IpAddr = "198.51.100.10".parse().unwrap();
        let v6: IpAddr = "2001:db8::10".parse().unwrap();
        let first = attached("c1", "198.51.100.10/24,2001:db8::10/64");
        store.begin(&first).unwrap();
        store.claim(&first).unwrap();
        store.claim(&first).unwrap();
        assert_eq!(store.holder_of(&v4).unwrap().as_deref(), Some("c1"));
        assert_eq!(store.holder_of(&v6).unwrap().as_deref(), Some("c1"));
        assert_eq!(store.remove_orphan_claims().unwrap(), Vec::<String>::new(), "c1 has its record");

        // A second holder takes over a stale claim; c1's removal then
        // leaves the claim that is no longer its own.
        let second = attached("c2", "198.51.100.10/24");
        store.begin(&second).unwrap();
        store.claim(&second).unwrap();
        assert_eq!(store.holder_of(&v4).unwrap().as_deref(), Some("c2"));
        store.remove(&first).unwrap();
        assert_eq!(store.holder_of(&v4).unwrap().as_deref(), Some("c2"));
        assert_eq!(store.holder_of(&v6).unwrap(), None);

        // A claim without a record is an orphan; gc's sweep removes it.
        fs::remove_file(store.partial_path_of("c2")).unwrap();
        assert_eq!(store.remove_orphan_claims().unwrap(), vec!["198.51.100.10".to_string()]);
        assert_eq!(fs::read_dir(store.addresses()).unwrap().count(), 0, "nothing stays behind");
        fs::remove_dir_all(&store.dir).unwrap();
    }

    #[test]
    fn a_partial_record_can_be_rewritten_atomically() {
        let store = scratch("partial");
        let mut record = record("c3");
        store.begin(&record).unwrap();
        record.created.clear();
        store.update_partial(&record).unwrap();
        assert!(store.load("c3").unwrap().unwrap().created.is_empty());
        assert_eq!(fs::read_dir(store.containers()).unwrap().count(), 1, "no temporary file stays behind");
        fs::remove_dir_all(&store.dir).unwrap();
    }

    #[test]
    fn a_cut_short_partial_record_counts_as_absent_but_exists() {
        let store = scratch("cut");
        store.ensure_dirs().unwrap();
        fs::write(store.partial_path_of("c4"), "{\"version\":1,\"id\":").unwrap();
        assert_eq!(store.load("c4").unwrap(), None);
        assert!(store.exists("c4"), "a reader never removes it; teardown does, under the lock");
        store.remove_unreadable("c4").unwrap();
        assert!(!store.exists("c4"));
        fs::remove_dir_all(&store.dir).unwrap();
    }

    #[test]
    fn a_damaged_record_is_an_error() {
        let store = scratch("damaged");
        store.ensure_dirs().unwrap();
        fs::write(store.path_of("c2"), "{").unwrap();
        assert!(
            store.load("c2").unwrap_err().to_string().contains("damaged"),
            "a finished record is never dropped silently"
        );
        fs::remove_dir_all(store.dir).unwrap();
    }

    #[test]
    fn the_lock_is_exclusive() {
        let store = scratch("lock");
        let held = store.lock().unwrap();
        let other = File::open(store.dir.join("lock")).unwrap();
        assert!(Flock::lock(other, FlockArg::LockExclusiveNonblock).is_err());
        drop(held);
        let other = File::open(store.dir.join("lock")).unwrap();
        assert!(Flock::lock(other, FlockArg::LockExclusiveNonblock).is_ok());
        fs::remove_dir_all(store.dir).unwrap();
    }
}
