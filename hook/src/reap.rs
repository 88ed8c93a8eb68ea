//! Deletes a container's own host devices (its ifb, its bridge veth) after
//! the hook has exited. Unregistering a network device waits for an RCU
//! grace period; the runtime need not wait for it, since teardown already
//! cut every path into them. A device is deleted by index, and only if it
//! still has its name: one a restart makes under the same name has another
//! index.

use nix::unistd::{fork, setsid, ForkResult};

use crate::netlink::{Link, Netlink};
use crate::netns::NetNs;

/// Forks a detached child that deletes the host devices `links`, and
/// returns at once. Call it with no runtime and no other thread alive:
/// after `fork` only the calling thread exists in the child.
pub fn delete_in_background(links: Vec<Link>) {
    if links.is_empty() {
        return;
    }
    // SAFETY: the hook is single-threaded here (its current-thread runtime
    // is gone), so the child inherits no lock held by another thread.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            detach();
            let deleted = delete(&links);
            std::process::exit(if deleted { 0 } else { 1 });
        }
        // A failed fork only means the devices wait for `gc` or for the
        // next setup of this container, which removes them as strays.
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

fn delete(links: &[Link]) -> bool {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_io().build() else { return false };
    runtime.block_on(async {
        let Ok(host_ns) = NetNs::current() else { return false };
        let Ok(host) = Netlink::open_in(&host_ns) else { return false };
        let mut all_ok = true;
        for device in links {
            let result = match host.link_by_index(device.index).await {
                Ok(Some(link)) if link.name == device.name => host.delete_link(&link).await,
                other => other.map(|_| false),
            };
            match &result {
                Ok(true) => crate::log::info(&format!("deleted {}", device.name)),
                Ok(false) => {}
                Err(e) => crate::log::error(&format!("cannot delete {}: {e}", device.name)),
            }
            all_ok &= result.is_ok();
        }
        all_ok
    })
}
