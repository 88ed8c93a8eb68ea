//! What netrt made for a container, kept under `/run/netrt` between setup
//! and teardown, and the host-wide lock that serialises changes to it.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::netns::NsId;
use crate::plan::Plan;

pub const RUN_DIR: &str = "/run/netrt";
const RECORD_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The namespace the hook runs in.
    Host,
    /// The container's network namespace.
    Container,
}

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
    /// False until setup has finished.
    pub complete: bool,
}

impl Record {
    pub fn new(id: &str, pid: i32, netns: NsId, netns_path: String, interface: String, host_veth: Option<String>, plan: Plan) -> Self {
        Record { version: RECORD_VERSION, id: id.to_string(), pid, netns, netns_path, interface, host_veth, plan, created: vec![], complete: false }
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
        Err(Error::Input(format!("container id {id:?} is not one netrt accepts (letters, digits, _ . + -, at most 200)")))
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

    fn path_of(&self, id: &str) -> PathBuf {
        self.containers().join(format!("{id}.json"))
    }

    fn ensure_dirs(&self) -> Result<()> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(self.containers())
            .map_err(|e| Error::System(format!("cannot create {}: {e}", self.containers().display())))
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

    pub fn load(&self, id: &str) -> Result<Option<Record>> {
        let path = self.path_of(id);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::System(format!("cannot read {}: {e}", path.display()))),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| Error::System(format!("record {} is damaged ({e}); remove it by hand", path.display())))
    }

    /// Writes the record atomically: a reader sees the old or the new one.
    pub fn save(&self, record: &Record) -> Result<()> {
        self.ensure_dirs()?;
        let path = self.path_of(&record.id);
        let temporary = path.with_extension("json.tmp");
        let text = serde_json::to_vec_pretty(record).expect("a record always serialises");
        let write = || -> std::io::Result<()> {
            let mut file = OpenOptions::new().create(true).truncate(true).write(true).mode(0o600).open(&temporary)?;
            file.write_all(&text)?;
            fs::rename(&temporary, &path)
        };
        write().map_err(|e| Error::System(format!("cannot write {}: {e}", path.display())))
    }

    pub fn remove(&self, id: &str) -> Result<()> {
        match fs::remove_file(self.path_of(id)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(Error::System(format!("cannot remove the record of {id}: {e}")))
            }
            _ => Ok(()),
        }
    }

    /// Every record, in id order; damaged ones are reported, not skipped.
    pub fn all(&self) -> Result<Vec<Record>> {
        let entries = match fs::read_dir(self.containers()) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(Error::System(format!("cannot list {}: {e}", self.containers().display()))),
        };
        let mut ids: Vec<String> = entries
            .filter_map(|entry| entry.ok())
            .filter_map(|entry| entry.file_name().to_str()?.strip_suffix(".json").map(str::to_string))
            .collect();
        ids.sort();
        ids.iter().filter_map(|id| self.load(id).transpose()).collect()
    }
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

    #[test]
    fn records_round_trip_and_are_removed() {
        let store = scratch("roundtrip");
        let mut record = Record::new("c1", 4242, NsId { dev: 4, ino: 4026532 }, "/proc/1/ns/net".into(), "eth0".into(), Some("veth1".into()), Plan::default());
        record.created.push(Created::Ifb { side: Side::Host, name: "nrti0".into() });
        store.save(&record).unwrap();
        assert_eq!(store.load("c1").unwrap(), Some(record.clone()));
        assert_eq!(store.all().unwrap(), vec![record]);
        store.remove("c1").unwrap();
        store.remove("c1").unwrap();
        assert_eq!(store.load("c1").unwrap(), None);
        let leftovers: Vec<_> = fs::read_dir(store.containers()).unwrap().collect();
        assert!(leftovers.is_empty(), "no temporary file stays behind");
        fs::remove_dir_all(store.dir).unwrap();
    }

    #[test]
    fn a_damaged_record_is_an_error() {
        let store = scratch("damaged");
        store.ensure_dirs().unwrap();
        fs::write(store.path_of("c2"), "{").unwrap();
        assert!(store.load("c2").unwrap_err().to_string().contains("damaged"));
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
