//! Network namespaces: identify them, compare them, and run a closure
//! inside one (only to open sockets there; the work goes through them).

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::sched::{setns, CloneFlags};
use serde::{Deserialize, Serialize};

/// A namespace's identity: device and inode of its nsfs file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NsId {
    pub dev: u64,
    pub ino: u64,
}

pub struct NetNs {
    file: File,
    id: NsId,
}

impl NetNs {
    pub fn open(path: impl AsRef<Path>) -> Result<NetNs, String> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| format!("cannot open network namespace {}: {e}", path.display()))?;
        let meta = file.metadata().map_err(|e| format!("cannot stat {}: {e}", path.display()))?;
        Ok(NetNs { file, id: NsId { dev: meta.dev(), ino: meta.ino() } })
    }

    /// The namespace of the calling thread.
    pub fn current() -> Result<NetNs, String> {
        NetNs::open("/proc/thread-self/ns/net")
    }

    pub fn of_pid(pid: i32) -> Result<NetNs, String> {
        NetNs::open(format!("/proc/{pid}/ns/net"))
    }

    pub fn id(&self) -> NsId {
        self.id
    }

    pub fn file(&self) -> &File {
        &self.file
    }

    /// Runs `f` with the calling thread inside this namespace, then returns.
    pub fn run_in<T>(&self, f: impl FnOnce() -> T) -> Result<T, String> {
        let home = NetNs::current()?;
        if home.id == self.id {
            return Ok(f());
        }
        setns(&self.file, CloneFlags::CLONE_NEWNET).map_err(|e| format!("cannot enter network namespace: {e}"))?;
        let result = f();
        if let Err(e) = setns(&home.file, CloneFlags::CLONE_NEWNET) {
            // Going on in the wrong namespace could change the wrong host.
            eprintln!("netrt: cannot return to the hook's network namespace: {e}");
            std::process::abort();
        }
        Ok(result)
    }
}

/// The identity of the namespace at `path`, if it still exists.
pub fn identity_of(path: &str) -> Option<NsId> {
    NetNs::open(path).ok().map(|ns| ns.id)
}

/// Whether the namespace a record names (path and identity) still exists,
/// as far as the hook can tell. A container's `/proc/<pid>/ns/net` cannot be
/// opened without CAP_SYS_PTRACE while runc's init makes itself
/// non-dumpable: the process exists, so the namespace counts as alive.
pub fn is_gone(path: &str, id: NsId) -> bool {
    match File::open(path) {
        Ok(file) => file.metadata().is_ok_and(|meta| NsId { dev: meta.dev(), ino: meta.ino() } != id),
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_namespace_is_gone_only_when_its_path_is_or_leads_elsewhere() {
        let own = NetNs::current().unwrap().id();
        assert!(!is_gone("/proc/thread-self/ns/net", own));
        assert!(is_gone("/proc/thread-self/ns/net", NsId { dev: own.dev, ino: own.ino + 1 }));
        assert!(is_gone("/proc/999999999/ns/net", own));
    }
}
