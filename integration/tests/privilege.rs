//! Least privilege, checked in the kernel: a netrt-hook that runc started
//! and that waits on the host lock holds CAP_NET_ADMIN and CAP_SYS_ADMIN
//! and nothing else, in every set; and a hook started without what it
//! needs refuses with a clear message and changes nothing.

use std::fs;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use netrt_integration::*;
use serde_json::json;

/// CAP_NET_ADMIN (12) and CAP_SYS_ADMIN (21).
const KEPT: u64 = (1 << 12) | (1 << 21);

/// A setup hook blocked on the host lock: /proc/locks lists a blocked
/// waiter as `-> FLOCK ... PID ...`. By then it has dropped what it does
/// not keep.
fn hook_waiting_on_the_lock() -> Option<u32> {
    let locks = fs::read_to_string("/proc/locks").ok()?;
    let waiters: Vec<u32> = locks
        .lines()
        .filter(|line| line.contains("-> FLOCK"))
        .filter_map(|line| line.split_whitespace().nth(5)?.parse().ok())
        .collect();
    waiters.into_iter().find(|pid| {
        fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default().starts_with(b"netrt-hook\0createRuntime")
    })
}

fn capability_sets(pid: u32) -> Vec<(String, u64)> {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .filter_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.starts_with("Cap").then(|| (name.to_string(), u64::from_str_radix(value.trim(), 16).unwrap()))
        })
        .collect()
}

#[test]
fn a_working_hook_holds_net_admin_and_sys_admin_only() {
    let lab = Lab::bridged("priv");
    fs::create_dir_all("/run/netrt").unwrap();
    // flock -o holds the lock itself, not in its child; killing its
    // process group releases the lock and ends the sleep with it.
    let mut holder = Command::new("flock")
        .args(["-o", "/run/netrt/lock", "sleep", "30"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    while sh_output("flock -n /run/netrt/lock true").status.success() {
        thread::sleep(Duration::from_millis(10));
    }
    let netns = lab.netns_path();
    let started = thread::spawn(move || {
        let annotations = [("net.egress", "4mbit")];
        let bundle = Bundle::create("nrt-priv", &BundleSpec::new(Some(&netns), &annotations));
        let container = Container::start("nrt-priv", &bundle);
        (container, bundle)
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let pid = loop {
        if let Some(pid) = hook_waiting_on_the_lock() {
            break pid;
        }
        assert!(Instant::now() < deadline, "no netrt-hook came to wait on the lock");
        thread::sleep(Duration::from_millis(5));
    };
    let sets = capability_sets(pid);
    sh_quiet(&format!("kill -KILL -{}", holder.id()));
    let _ = holder.wait();
    let (container, _bundle) = started.join().unwrap();
    let container = container.expect("the container starts once the lock is free");
    for (name, value) in &sets {
        let expected = match name.as_str() {
            "CapInh" | "CapAmb" => 0,
            _ => KEPT,
        };
        assert_eq!(
            *value, expected,
            "{name} of the waiting hook is {value:#x}, expected {expected:#x} (all sets: {sets:?})"
        );
    }
    assert_eq!(sets.len(), 5, "CapInh, CapPrm, CapEff, CapBnd, CapAmb: {sets:?}");
    container.stop();
}

/// Runs the release hook's setup under `setpriv` with these options.
fn hook_under(setpriv: &[&str], bundle: &Bundle, pid: u32) -> (bool, String) {
    let state =
        json!({"ociVersion": "1.0.2", "id": "nrt-nocap", "status": "creating", "pid": pid, "bundle": bundle.dir})
            .to_string();
    let mut child = Command::new("setpriv")
        .args(setpriv)
        .arg(hook_binary())
        .arg("createRuntime")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(state.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    (output.status.success(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn without_its_capabilities_the_hook_refuses_and_changes_nothing() {
    let lab = Lab::bridged("nocap");
    let before = snapshot(&[&lab.container_ns]);
    let annotations = [("net.egress", "4mbit")];
    let bundle = Bundle::create("nrt-nocap", &BundleSpec::new(Some(&lab.netns_path()), &annotations));
    let mut holder = process_in_netns(&lab.container_ns);
    let pid = holder.id();

    let (ok, stderr) = hook_under(&["--reuid=65534", "--regid=65534", "--clear-groups"], &bundle, pid);
    assert!(!ok, "an unprivileged hook fails");
    assert!(
        stderr.contains("netrt-hook needs CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_SYS_PTRACE")
            && stderr.contains("lacks CAP_NET_ADMIN"),
        "{stderr}"
    );
    let (ok, stderr) = hook_under(&["--bounding-set=-net_admin", "--inh-caps=-net_admin"], &bundle, pid);
    assert!(!ok, "root without CAP_NET_ADMIN fails");
    assert!(stderr.contains("lacks CAP_NET_ADMIN;"), "only CAP_NET_ADMIN is named as missing: {stderr}");
    let (ok, stderr) = hook_under(&["--bounding-set=-sys_ptrace", "--inh-caps=-sys_ptrace"], &bundle, pid);
    assert!(!ok && stderr.contains("lacks CAP_SYS_PTRACE"), "root without CAP_SYS_PTRACE fails: {stderr}");

    let _ = holder.kill();
    let _ = holder.wait();
    assert!(!record_exists("nrt-nocap"));
    assert_same_host!(snapshot(&[&lab.container_ns]), before, "a refused hook changes nothing");
}
