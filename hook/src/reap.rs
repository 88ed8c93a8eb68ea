//! Deletes a retired ifb after the hook has exited. Unregistering a network
//! device waits for an RCU grace period; the runtime need not wait for it,
//! since teardown already took the device down, out of every path and name.

use nix::unistd::{fork, setsid, ForkResult};

use crate::netlink::Netlink;
use crate::netns::NetNs;
use crate::shaping::delete_ifb_named;

/// Forks a detached child that deletes the host ifb `name`, and returns at
/// once. Call it with no runtime and no other thread alive: after `fork`
/// only the calling thread exists in the child.
pub fn delete_in_background(name: String) {
    // SAFETY: the hook is single-threaded here (its current-thread runtime
    // is gone), so the child inherits no lock held by another thread.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            detach();
            let deleted = delete(&name);
            std::process::exit(if deleted { 0 } else { 1 });
        }
        // A failed fork only means the retired ifb waits for `gc` or for
        // the next setup of this container, which remove it too.
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

fn delete(name: &str) -> bool {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_io().build() else { return false };
    runtime.block_on(async {
        let Ok(host_ns) = NetNs::current() else { return false };
        let Ok(host) = Netlink::open_in(&host_ns) else { return false };
        let result = delete_ifb_named(&host, name).await;
        match &result {
            Ok(_) => crate::log::info(&format!("deleted retired ifb {name}")),
            Err(e) => crate::log::error(&format!("cannot delete retired ifb {name}: {e}")),
        }
        result.is_ok()
    })
}
