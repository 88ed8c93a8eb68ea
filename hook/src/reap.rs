//! Deletes a container's ifb after the hook has exited. Unregistering a
//! network device waits for an RCU grace period; the runtime need not wait
//! for it, since teardown already removed the redirect into the device.
//! The ifb is deleted by index, and only if it still has its name: a new
//! ifb a restart makes under the same name has another index.

use nix::unistd::{fork, setsid, ForkResult};

use crate::netlink::{Link, Netlink};
use crate::netns::NetNs;

/// Forks a detached child that deletes the host ifb `ifb`, and returns at
/// once. Call it with no runtime and no other thread alive: after `fork`
/// only the calling thread exists in the child.
pub fn delete_in_background(ifb: Link) {
    // SAFETY: the hook is single-threaded here (its current-thread runtime
    // is gone), so the child inherits no lock held by another thread.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            detach();
            let deleted = delete(&ifb);
            std::process::exit(if deleted { 0 } else { 1 });
        }
        // A failed fork only means the ifb waits for `gc` or for the next
        // setup of this container, which removes it as a stray.
        Ok(ForkResult::Parent { .. }) | Err(_) => {}
    }
}

/// New session, and stdio on /dev/null: the runtime reads the hook's
/// output until every writer is gone, and must not wait for this child.
fn detach() {
    let _ = setsid();
    if let Ok(null) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null") {
        use std::os::fd::AsRawFd;
        for fd in 0..=2 {
            unsafe { libc::dup2(null.as_raw_fd(), fd) };
        }
    }
}

fn delete(ifb: &Link) -> bool {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_io().build() else { return false };
    runtime.block_on(async {
        let Ok(host_ns) = NetNs::current() else { return false };
        let Ok(host) = Netlink::open_in(&host_ns) else { return false };
        let result = match host.link_by_index(ifb.index).await {
            Ok(Some(link)) if link.name == ifb.name => host.delete_link(&link).await,
            other => other.map(|_| false),
        };
        match &result {
            Ok(true) => crate::log::info(&format!("deleted ifb {}", ifb.name)),
            Ok(false) => {}
            Err(e) => crate::log::error(&format!("cannot delete ifb {}: {e}", ifb.name)),
        }
        result.is_ok()
    })
}
