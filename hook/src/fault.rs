//! Test-only fault switches, compiled in with the `fault-injection`
//! feature and to nothing in release builds:
//!
//! - `NETRT_FAULT_AFTER_STEP=N`: setup fails after step N, so tests can
//!   prove the rollback;
//! - `NETRT_FAULT_KILL=STAGE:N`: the hook kills itself with SIGKILL at that
//!   point (`setup:0` once the write-ahead record is written, `setup:N`
//!   after setup step N, `teardown:0` with the lock held before anything is
//!   undone, `teardown:N` after N recorded objects are undone or marked
//!   for deletion, `teardown:ALL` (N = their count) after the devices are
//!   deleted and before the record goes, `teardown-uplink:N` after the
//!   Nth change to an uplink's shaper), so tests can prove that poststop
//!   and gc clean up after a hook that died anywhere;
//! - `NETRT_FAULT_PAUSE=STAGE:N:FILE`: at that point (as for a kill) the
//!   hook writes FILE and waits until it is gone, so tests can take a
//!   server down while the hook is in the middle of its work;
//! - `NETRT_FAULT_LEAK=KIND[,KIND…]`: teardown leaves that kind of object
//!   behind and forgets it (a recorded object's kind as the record names
//!   it, e.g. `host_veth`, `netns_pin`; or `pin_file`, `address_claim`,
//!   `pool_claim`, `uplink`), so tests can prove that their snapshot of
//!   the host sees every kind of leftover.

#[cfg(feature = "fault-injection")]
pub fn after_step(step: u32) -> Result<(), String> {
    kill_point("setup", step);
    match std::env::var("NETRT_FAULT_AFTER_STEP").ok().and_then(|v| v.parse::<u32>().ok()) {
        Some(n) if n == step => Err(format!("injected fault after step {step}")),
        _ => Ok(()),
    }
}

#[cfg(feature = "fault-injection")]
pub fn kill_point(stage: &str, step: u32) {
    if let Ok(pause) = std::env::var("NETRT_FAULT_PAUSE") {
        let point = format!("{stage}:{step}:");
        if let Some(file) = pause.strip_prefix(&point) {
            let _ = std::fs::write(file, std::process::id().to_string());
            while std::path::Path::new(file).exists() {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
    }
    if std::env::var("NETRT_FAULT_KILL").is_ok_and(|point| point == format!("{stage}:{step}")) {
        // SAFETY: kill(2) on our own pid has no memory-safety preconditions.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    }
}

#[cfg(feature = "fault-injection")]
pub fn leaks(kind: &str) -> bool {
    std::env::var("NETRT_FAULT_LEAK").is_ok_and(|kinds| kinds.split(',').any(|k| k == kind))
}

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn leaks(_kind: &str) -> bool {
    false
}

/// The recorded objects teardown undoes: all of them, less those whose
/// kind (the `object` tag a record gives each) the fault switch leaks.
#[cfg(feature = "fault-injection")]
pub fn undone<T: serde::Serialize + Clone>(created: &[T]) -> std::borrow::Cow<'_, [T]> {
    let kind = |object: &T| serde_json::to_value(object).ok().and_then(|v| v["object"].as_str().map(String::from));
    created.iter().filter(|object| !kind(object).is_some_and(|k| leaks(&k))).cloned().collect::<Vec<_>>().into()
}

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn undone<T: Clone>(created: &[T]) -> std::borrow::Cow<'_, [T]> {
    created.into()
}

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn after_step(_step: u32) -> Result<(), String> {
    Ok(())
}

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn kill_point(_stage: &str, _step: u32) {}
