//! Network namespaces: identify them, compare them, and run a closure
//! inside one (only to open sockets there; the work goes through them).

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::Path;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
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

/// Keeps the namespace `ns` alive at `path`, a bind mount of its nsfs file
/// (as `ip netns add` does), so that teardown can still enter it after the
/// container's last process is gone and delete what netrt put there
/// before the runtime's delete returns: a macvlan left to the kernel's
/// own, later, clean-up of the namespace would hold its parent (its
/// promiscuity, its address list) for a while after that. A pin left by an
/// earlier run under the same path is replaced.
pub fn pin(ns: &NetNs, path: &Path) -> Result<(), String> {
    unpin(path)?;
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    File::create(path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    let source = format!("/proc/self/fd/{}", ns.file.as_raw_fd());
    mount(Some(source.as_str()), path, None::<&str>, MsFlags::MS_BIND, None::<&str>)
        .map_err(|e| format!("cannot keep the container's network namespace at {}: {e}", path.display()))
}

/// Lets go of a pin; one that is not there is fine. Returns whether one was.
pub fn unpin(path: &Path) -> Result<bool, String> {
    let was_mounted = match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) => true,
        // Not a mount point, or no such file.
        Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOENT) => false,
        Err(e) => return Err(format!("cannot unmount {}: {e}", path.display())),
    };
    if crate::fault::leaks("pin_file") {
        return Ok(was_mounted);
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(format!("cannot remove {}: {e}", path.display())),
        _ => Ok(was_mounted),
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
