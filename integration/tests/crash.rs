//! Crash safety through real runc: netrt-hook is killed with SIGKILL at
//! every point of setup and of teardown (the fault-injection build's
//! `NETRT_FAULT_KILL`, so each point is hit on purpose, not by chance).
//! Then the container's poststop runs again and `netrt-hook gc` runs: the
//! host must be exactly as before, and the same id with the same static
//! address must start cleanly. A hook killed while it holds the host lock
//! must not block the next one (flock dies with its holder): the poststop
//! and gc after a kill take that lock.

use std::io::Write;
use std::process::{Command, Stdio};

use netrt_integration::dhcp::Dnsmasq;
use netrt_integration::*;
use serde_json::json;

/// Runs the release hook as a runtime runs poststop.
fn poststop(id: &str, bundle: &Bundle) {
    let state = json!({"ociVersion": "1.0.2", "id": id, "status": "stopped", "bundle": bundle.dir}).to_string();
    let mut child = Command::new(hook_binary())
        .arg("poststop")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(state.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "poststop after the kill: {}", String::from_utf8_lossy(&output.stderr));
}

fn gc() -> String {
    let output = Command::new(hook_binary()).arg("gc").output().unwrap();
    assert!(output.status.success(), "gc: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Poststop, gc, and the host is back to `before`; then the same container
/// starts and stops cleanly with the release hook.
fn recovers(
    id: &str,
    bundle: &Bundle,
    annotations: &[(&str, &str)],
    netns: Option<&str>,
    before: &str,
    namespaces: &[&str],
    point: &str,
) {
    poststop(id, bundle);
    gc();
    assert_same_host!(snapshot(namespaces), before, "after a kill at {point}, poststop and gc leave nothing");
    let spec = match netns {
        Some(path) => BundleSpec::new(Some(path), annotations),
        None => BundleSpec::isolated(annotations),
    };
    let again = Bundle::create(id, &spec);
    let container = Container::start(id, &again)
        .unwrap_or_else(|e| panic!("after a kill at {point}, the same container does not start: {e}"));
    container.stop();
    assert_same_host!(snapshot(namespaces), before, "after a kill at {point}, the clean run leaves nothing");
}

fn fault_spec<'a>(
    netns: Option<&'a str>,
    annotations: &'a [(&'a str, &'a str)],
    hook_env: &'a [&'a str],
) -> BundleSpec<'a> {
    let mut spec = match netns {
        Some(path) => BundleSpec::new(Some(path), annotations),
        None => BundleSpec::isolated(annotations),
    };
    spec.hook = fault_hook_binary();
    spec.hook_env = hook_env;
    spec
}

/// Kills setup at point 0, 1, 2, … until a run passes the last point;
/// returns how many points were hit.
fn kill_setup_everywhere(id: &str, annotations: &[(&str, &str)], netns: Option<&str>, namespaces: &[&str]) -> u32 {
    let before = snapshot(namespaces);
    for step in 0.. {
        let point = format!("setup:{step}");
        let kill = format!("NETRT_FAULT_KILL={point}");
        let hook_env = [kill.as_str()];
        let mut spec = fault_spec(netns, annotations, &hook_env);
        spec.command = "true";
        // runc runs poststop after a failed start too; this test runs it
        // itself, once it has seen what the killed hook left.
        spec.poststop = false;
        let bundle = Bundle::create(id, &spec);
        match Container::run_to_end(id, &bundle) {
            Err(error) => {
                assert!(error.contains("signal: killed"), "the hook was killed at {point}: {error}");
                // Every setup point comes after the write-ahead record.
                assert!(record_exists(id), "the hook killed at {point} left its record for the clean-up");
                recovers(id, &bundle, annotations, netns, &before, namespaces, &point);
            }
            Ok(_) => {
                recovers(id, &bundle, annotations, netns, &before, namespaces, "no point (a clean run)");
                return step;
            }
        }
    }
    unreachable!()
}

/// Kills teardown at every point: with the lock held before anything is
/// undone, after each recorded object is undone or marked for deletion,
/// and after the devices are deleted, before the record goes.
fn kill_teardown_everywhere(id: &str, annotations: &[(&str, &str)], netns: Option<&str>, namespaces: &[&str]) -> usize {
    let before = snapshot(namespaces);
    let probe = Bundle::create(
        id,
        &match netns {
            Some(path) => BundleSpec::new(Some(path), annotations),
            None => BundleSpec::isolated(annotations),
        },
    );
    let container = Container::start(id, &probe).unwrap();
    let record: serde_json::Value = serde_json::from_str(&sh(&format!("cat /run/netrt/containers/{id}.json"))).unwrap();
    let objects = record["created"].as_array().expect("the record lists what setup made").len();
    container.stop();
    drop(probe);

    let points: Vec<String> = (0..=objects).map(|n| format!("teardown:{n}")).collect();
    for point in &points {
        let kill = format!("NETRT_FAULT_KILL={point}");
        let hook_env = [kill.as_str()];
        let bundle = Bundle::create(id, &fault_spec(netns, annotations, &hook_env));
        let container = Container::start(id, &bundle).unwrap_or_else(|e| panic!("setup before a kill at {point}: {e}"));
        container.stop();
        // The kill really happened: a record or a device is left for the
        // clean-up to find (a teardown that finishes leaves neither).
        let left = record_exists(id) || link_exists(None, &ifb_name(id)) || link_exists(None, &host_veth_name(id));
        assert!(left, "the teardown killed at {point} left something behind to clean up");
        recovers(id, &bundle, annotations, netns, &before, namespaces, point);
    }
    points.len()
}

#[test]
fn a_setup_killed_at_any_step_is_cleaned_by_poststop_and_gc() {
    let lan = Lan::bridge("ksu");
    let bridge = lan.bridge.clone().unwrap();
    let attachment = [
        ("net.bridge", bridge.as_str()),
        ("net.ip", "198.51.100.80/24,2001:db8:ff::80/64"),
        ("net.gateway", "198.51.100.1,2001:db8:ff::1"),
        ("net.routes", "203.0.113.0/24 via 198.51.100.1"),
        ("net.egress", "4mbit"),
        ("net.ingress", "6mbit"),
    ];
    let points = kill_setup_everywhere("nrt-kill-su", &attachment, None, &[&lan.peer_ns]);
    println!("bridge attachment with both limits: setup killed at {points} points, all cleaned up");
    assert!(points >= 13, "every attachment and shaping step was a kill point ({points})");

    let lab = Lab::bridged("ksl");
    let netns = lab.netns_path();
    let limits = [("net.egress", "4mbit"), ("net.ingress", "6mbit")];
    let points = kill_setup_everywhere("nrt-kill-sl", &limits, Some(&netns), &[&lab.container_ns]);
    println!("limits on an existing veth: setup killed at {points} points, all cleaned up");
    assert!(points >= 6, "every shaping step was a kill point ({points})");
}

#[test]
fn a_teardown_killed_at_any_step_is_finished_by_poststop_and_gc() {
    let lan = Lan::bridge("ktd");
    let bridge = lan.bridge.clone().unwrap();
    let attachment = [
        ("net.bridge", bridge.as_str()),
        ("net.ip", "198.51.100.81/24"),
        ("net.gateway", "198.51.100.1"),
        ("net.egress", "4mbit"),
        ("net.ingress", "6mbit"),
    ];
    let points = kill_teardown_everywhere("nrt-kill-td", &attachment, None, &[&lan.peer_ns]);
    println!("bridge attachment with both limits: teardown killed at {points} points, all finished");
    assert!(points >= 6, "{points} kill points");

    let lab = Lab::bridged("ktl");
    let netns = lab.netns_path();
    let limits = [("net.egress", "4mbit"), ("net.ingress", "6mbit")];
    let points = kill_teardown_everywhere("nrt-kill-tl", &limits, Some(&netns), &[&lab.container_ns]);
    println!("limits on an existing veth: teardown killed at {points} points, all finished");
    assert!(points >= 4, "{points} kill points");
}

#[test]
fn a_macvlan_setup_or_teardown_killed_at_any_step_is_cleaned_by_poststop_and_gc() {
    let lan = Lan::parent("kmv");
    let parent = lan.parent.clone().unwrap();
    let attachment = [
        ("net.parent", parent.as_str()),
        ("net.ifname", "lan0"),
        ("net.ip", "198.51.100.82/24,2001:db8:ff::82/64"),
        ("net.gateway", "198.51.100.1"),
        ("net.egress", "4mbit"),
        ("net.ingress", "6mbit"),
    ];
    let points = kill_setup_everywhere("nrt-kill-mv", &attachment, None, &[&lan.peer_ns]);
    println!("macvlan attachment with both limits: setup killed at {points} points, all cleaned up");
    assert!(points >= 10, "every attachment and shaping step was a kill point ({points})");
    let points = kill_teardown_everywhere("nrt-kill-mvt", &attachment, None, &[&lan.peer_ns]);
    println!("macvlan attachment with both limits: teardown killed at {points} points, all finished");
    assert!(points >= 4, "{points} kill points");
}

#[test]
fn a_dhcp_setup_killed_at_any_step_is_cleaned_by_poststop_and_gc() {
    let lan = Lan::bridge("kdh");
    let bridge = lan.bridge.clone().unwrap();
    let server = Dnsmasq::start(&lan.peer_ns, "eth0", "2m", &["--no-ping"]);
    let attachment = [("net.bridge", bridge.as_str()), ("net.ip", "dhcp"), ("net.egress", "4mbit")];
    let points = kill_setup_everywhere("nrt-kill-dh", &attachment, None, &[&lan.peer_ns]);
    println!("DHCP attachment with a limit: setup killed at {points} points, all cleaned up");
    assert!(points >= 8, "every attachment, lease and shaping step was a kill point ({points})");
    // Every lease a killed setup got is released by the clean-up that
    // follows (its record names it), and the clean runs release their own.
    let released = server.wait_for(std::time::Duration::from_secs(5), |leases| leases.is_empty());
    assert!(released, "dnsmasq still holds leases after the kills and clean-ups: {:?}", server.leases());
}
