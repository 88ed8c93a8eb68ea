//! Attachment refusals, conflicts, faults and gc through real runc: a
//! refused container does not start, runc's error carries the `netrt:`
//! line naming the key, and the host is exactly as before. Needs root.

use std::path::Path;
use std::sync::{Arc, Barrier};

use netrt_integration::*;

/// Runs a container that must be refused; returns runc's output after
/// checking that the host did not change.
fn refused(lan: &Lan, id: &str, spec: &BundleSpec) -> String {
    let before = snapshot(&[&lan.peer_ns]);
    let bundle = Bundle::create(id, spec);
    let error = Container::run_to_end(id, &bundle).expect_err("the container must not start");
    assert_same_host!(snapshot(&[&lan.peer_ns]), before, "host state changed after refusing {id}: {error}");
    error
}

fn quoted(key: &str, value: &str) -> String {
    format!(r#"netrt: {key}=\"{value}\": "#)
}

/// Annotations, then the key, value and reason the refusal names.
type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str, &'a str);

#[test]
fn bad_attachment_values_are_refused_naming_the_key() {
    let lan = Lan::bridge("rbad");
    let bridge = lan.bridge.clone().unwrap();
    let br = bridge.as_str();
    let cases: &[Case] = &[
        (&[("net.bridge", br), ("net.parent", "eth9")], "net.parent", "eth9", "only one attachment"),
        (&[("net.ip", "198.51.100.10/24")], "net.ip", "198.51.100.10/24", "needs net.bridge or net.parent"),
        (&[("net.bridge", "a/b")], "net.bridge", "a/b", "may not contain"),
        (&[("net.bridge", "abcdefghijklmnop")], "net.bridge", "abcdefghijklmnop", "at most 15 bytes"),
        (&[("net.parent", "..")], "net.parent", "..", "not a valid interface name"),
        (&[("net.bridge", br), ("net.ifname", "eth 0")], "net.ifname", "eth 0", "may not contain"),
        (&[("net.bridge", br), ("net.ifname", "lo")], "net.ifname", "lo", "loopback"),
        (&[("net.bridge", br), ("net.vlan", "4095")], "net.vlan", "4095", "1 to 4094"),
        (&[("net.bridge", br), ("net.vlan", "0")], "net.vlan", "0", "1 to 4094"),
        (
            &[("net.parent", "eth9"), ("net.macvlan.mode", "source")],
            "net.macvlan.mode",
            "source",
            "unknown macvlan mode",
        ),
        (&[("net.bridge", br), ("net.macvlan.mode", "vepa")], "net.macvlan.mode", "vepa", "not to net.bridge"),
        (&[("net.bridge", br), ("net.ip", "198.51.100.10")], "net.ip", "198.51.100.10", "no prefix length"),
        (&[("net.bridge", br), ("net.ip", "198.51.100.0/24")], "net.ip", "198.51.100.0/24", "network's own address"),
        (&[("net.bridge", br), ("net.ip", "224.0.0.5/24")], "net.ip", "224.0.0.5/24", "multicast"),
        (&[("net.bridge", br), ("net.ip", "2001:db8::1/129")], "net.ip", "2001:db8::1/129", "0 to 128"),
        (
            &[("net.bridge", br), ("net.ip", "198.51.100.10/24"), ("net.gateway", "203.0.113.1")],
            "net.gateway",
            "203.0.113.1",
            "not reachable",
        ),
        (
            &[("net.bridge", br), ("net.ip", "198.51.100.10/24"), ("net.gateway", "198.51.100.1,198.51.100.2")],
            "net.gateway",
            "198.51.100.1,198.51.100.2",
            "at most one gateway per family",
        ),
        (
            &[("net.bridge", br), ("net.ip", "198.51.100.10/24"), ("net.routes", "203.0.113.0/24 via 192.0.2.1")],
            "net.routes",
            "203.0.113.0/24 via 192.0.2.1",
            "not reachable",
        ),
        (&[("net.bridge", br), ("net.routes", "203.0.113.1/24")], "net.routes", "203.0.113.1/24", "host bits set"),
        (&[("net.bridge", br), ("net.mac", "01:00:5e:00:00:01")], "net.mac", "01:00:5e:00:00:01", "multicast"),
        (&[("net.bridge", br), ("net.mac", "02:00:5e")], "net.mac", "02:00:5e", "not a MAC address"),
        (&[("net.bridge", br), ("net.mtu", "67")], "net.mtu", "67", "68 to 65535"),
        (
            &[("net.bridge", br), ("net.ip", "2001:db8::5/64"), ("net.mtu", "1200")],
            "net.mtu",
            "1200",
            "IPv6 needs an MTU",
        ),
        // Checked against the host, still before any change.
        (
            &[("net.bridge", "nrtnosuch")],
            "net.bridge",
            "nrtnosuch",
            "the host has no bridge (netrt never creates one) called nrtnosuch",
        ),
        (&[("net.bridge", "nrtrbadl")], "net.bridge", "nrtrbadl", "nrtrbadl is not a bridge"),
        (&[("net.parent", "nrtnosuch")], "net.parent", "nrtnosuch", "the host has no interface called nrtnosuch"),
        (
            &[("net.parent", "nrtrbadl"), ("net.mtu", "9000")],
            "net.mtu",
            "9000",
            "larger than the MTU of the macvlan's parent (1500)",
        ),
        (
            &[("net.bridge", br), ("net.ingress", "1mbit"), ("net.ingress.burst", "1000")],
            "net.ingress.burst",
            "1000",
            "smaller than one frame",
        ),
    ];
    for (n, (annotations, key, value, reason)) in cases.iter().enumerate() {
        let error = refused(&lan, &format!("nrt-rbad{n}"), &BundleSpec::isolated(annotations));
        assert!(error.contains(&quoted(key, value)), "case {n}: {key}={value} not named in: {error}");
        assert!(error.contains(reason), "case {n}: expected {reason:?} in: {error}");
    }
}

/// A VLAN on a bridge without VLAN filtering is refused: netrt never turns
/// it on. (The guest tests cover a bridge that has it.)
#[test]
fn a_vlan_on_a_bridge_without_vlan_filtering_is_refused() {
    let lan = Lan::bridge("rvl");
    let bridge = lan.bridge.clone().unwrap();
    let annotations = [("net.bridge", bridge.as_str()), ("net.vlan", "50")];
    let error = refused(&lan, "nrt-rvlan", &BundleSpec::isolated(&annotations));
    let expected = "has VLAN filtering off; netrt never changes the bridge";
    assert!(error.contains(&quoted("net.vlan", "50")) && error.contains(expected), "{error}");
}

/// This host's kernel lacks 802.1Q (the guest tests cover a kernel that
/// has it): a VLAN on a parent is refused naming the missing feature.
#[test]
fn a_vlan_on_a_kernel_without_8021q_is_refused() {
    require(
        !Path::new("/proc/net/vlan/config").exists(),
        "this kernel has 802.1Q, so the refusal for a kernel without it cannot be seen (the guest tests run the VLAN itself)",
    );
    let parent_lan = Lan::parent("rvp");
    let parent = parent_lan.parent.clone().unwrap();
    let annotations = [("net.parent", parent.as_str()), ("net.vlan", "50")];
    let error = refused(&parent_lan, "nrt-rvlan8021q", &BundleSpec::isolated(&annotations));
    assert!(error.contains(&quoted("net.vlan", "50")) && error.contains("no 802.1Q VLAN support (8021q)"), "{error}");
}

#[test]
fn policy_violations_and_a_malformed_policy_are_refused() {
    let lan = Lan::bridge("rpol");
    let bridge = lan.bridge.clone().unwrap();
    let policy = std::env::temp_dir().join("netrt-it-policy.json");
    let variable = format!("NETRT_CONFIG={}", policy.display());
    let hook_env = [variable.as_str()];
    std::fs::write(
        &policy,
        format!(
            r#"{{"policy": {{"bridges": ["{bridge}"], "parents": ["nrtnone"], "vlans": ["100-199"],
                "subnets": ["198.51.100.0/25"], "max_rate": "10mbit"}}}}"#
        ),
    )
    .unwrap();
    let cases: &[Case] = &[
        (&[("net.bridge", "br9")], "net.bridge", "br9", "policy.bridges"),
        (&[("net.parent", "nrtrpoll")], "net.parent", "nrtrpoll", "policy.parents"),
        (&[("net.bridge", &bridge), ("net.ip", "198.51.100.200/24")], "net.ip", "198.51.100.200/24", "policy.subnets"),
        (&[("net.bridge", &bridge), ("net.egress", "20mbit")], "net.egress", "20mbit", "policy.max_rate"),
    ];
    for (n, (annotations, key, value, rule)) in cases.iter().enumerate() {
        let mut spec = BundleSpec::isolated(annotations);
        spec.hook_env = &hook_env;
        let error = refused(&lan, &format!("nrt-rpol{n}"), &spec);
        assert!(error.contains(&quoted(key, value)), "case {n}: {error}");
        assert!(
            error.contains(&format!("not allowed by the host's policy ({rule} in {}", policy.display())),
            "case {n}: {error}"
        );
    }
    // Inside the policy: the container starts.
    let inside = [("net.bridge", bridge.as_str()), ("net.ip", "198.51.100.100/25"), ("net.egress", "10mbit")];
    let mut spec = BundleSpec::isolated(&inside);
    spec.hook_env = &hook_env;
    spec.command = "true";
    let bundle = Bundle::create("nrt-rpolok", &spec);
    Container::run_to_end("nrt-rpolok", &bundle).expect("allowed by the policy");

    std::fs::write(&policy, r#"{"policy": {"bridge": ["br0"]}}"#).unwrap();
    let annotations = [("net.bridge", bridge.as_str())];
    let mut spec = BundleSpec::isolated(&annotations);
    spec.hook_env = &hook_env;
    let error = refused(&lan, "nrt-rpolbad", &spec);
    assert!(error.contains("is not a valid netrt configuration: unknown field `bridge`"), "fails closed: {error}");
    let _ = std::fs::remove_file(&policy);
}

#[test]
fn an_address_held_by_a_running_container_is_refused_naming_it() {
    let lan = Lan::bridge("rdup");
    let bridge = lan.bridge.clone().unwrap();
    let annotations = [("net.bridge", bridge.as_str()), ("net.ip", "198.51.100.40/24")];
    let (holder, _bundle) = start_isolated("nrt-holder", &annotations);
    let other = [("net.bridge", bridge.as_str()), ("net.ip", "2001:db8:ff::40/64,198.51.100.40/25")];
    let error = refused(&lan, "nrt-dup", &BundleSpec::isolated(&other));
    assert!(error.contains(&quoted("net.ip", "2001:db8:ff::40/64,198.51.100.40/25")), "{error}");
    assert!(error.contains("198.51.100.40 is already held by container nrt-holder on this host"), "{error}");
    holder.stop();
}

#[test]
fn two_parallel_starts_for_one_address_give_exactly_one_container() {
    let lan = Lan::bridge("rpar");
    let bridge = lan.bridge.clone().unwrap();
    let before = snapshot(&[&lan.peer_ns]);
    let ids = ["nrt-par-a", "nrt-par-b"];
    let barrier = Arc::new(Barrier::new(2));
    let results: Vec<(String, Result<Container, String>, Bundle)> = std::thread::scope(|scope| {
        let handles: Vec<_> = ids
            .iter()
            .map(|id| {
                let (barrier, bridge) = (barrier.clone(), bridge.clone());
                scope.spawn(move || {
                    let annotations = [("net.bridge", bridge.as_str()), ("net.ip", "198.51.100.50/24")];
                    let bundle = Bundle::create(id, &BundleSpec::isolated(&annotations));
                    barrier.wait();
                    (id.to_string(), Container::start(id, &bundle), bundle)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let started: Vec<&String> = results.iter().filter(|(_, r, _)| r.is_ok()).map(|(id, _, _)| id).collect();
    assert_eq!(
        started.len(),
        1,
        "exactly one start succeeds: {:?}",
        results.iter().map(|(id, r, _)| (id, r.as_ref().err())).collect::<Vec<_>>()
    );
    let (_, error, _) = results.iter().find(|(_, r, _)| r.is_err()).unwrap();
    let error = error.as_ref().err().unwrap();
    assert!(error.contains(&format!("198.51.100.50 is already held by container {}", started[0])), "{error}");
    drop(results);
    assert_same_host!(snapshot(&[&lan.peer_ns]), before);
}

/// Every step of an attachment's setup, made to fail in turn, is undone
/// completely; one step further, the container runs.
#[test]
fn a_fault_after_any_attachment_step_is_rolled_back() {
    let lan = Lan::bridge("rflt");
    let parent_lan = Lan::parent("rfltp");
    let bridge = lan.bridge.clone().unwrap();
    let parent = parent_lan.parent.clone().unwrap();
    let limits = [("net.egress", "4mbit"), ("net.ingress", "6mbit")];
    let bridged: Vec<(&str, &str)> = [
        ("net.bridge", bridge.as_str()),
        ("net.ip", "198.51.100.60/24,2001:db8:ff::60/64"),
        ("net.gateway", "198.51.100.1,2001:db8:ff::1"),
        ("net.routes", "203.0.113.0/24 via 198.51.100.1"),
    ]
    .into_iter()
    .chain(limits)
    .collect();
    let macvlan: Vec<(&str, &str)> =
        [("net.parent", parent.as_str()), ("net.ip", "198.51.100.61/24")].into_iter().chain(limits).collect();
    // bridge: veth, bridge port, link up, addresses, 2 gateways, routes, 6 shaping steps
    // macvlan: namespace pin, macvlan, link up, addresses, 6 shaping steps
    for (lan, annotations, steps) in [(&lan, &bridged, 13), (&parent_lan, &macvlan, 10)] {
        for step in 1..=steps {
            let fault = format!("NETRT_FAULT_AFTER_STEP={step}");
            let hook_env = [fault.as_str()];
            let mut spec = BundleSpec::isolated(annotations);
            spec.hook = fault_hook_binary();
            spec.hook_env = &hook_env;
            let error = refused(lan, "nrt-rfault", &spec);
            assert!(error.contains(&format!("injected fault after step {step}")), "step {step}: {error}");
            assert!(error.contains("netrt: net."), "step {step}: {error}");
        }
        let fault = format!("NETRT_FAULT_AFTER_STEP={}", steps + 1);
        let hook_env = [fault.as_str()];
        let mut spec = BundleSpec::isolated(annotations);
        spec.hook = fault_hook_binary();
        spec.hook_env = &hook_env;
        spec.command = "true";
        let bundle = Bundle::create("nrt-rfault", &spec);
        Container::run_to_end("nrt-rfault", &bundle).expect("setup has exactly this many steps");
    }
}

/// The runtime is killed while the container runs, and the container with
/// it: poststop never runs. gc removes everything netrt made for it.
#[test]
fn gc_cleans_up_after_a_container_whose_poststop_never_ran() {
    let lan = Lan::bridge("rgc");
    let bridge = lan.bridge.clone().unwrap();
    let before = snapshot(&[&lan.peer_ns]);
    let id = "nrt-gc";
    let annotations = [("net.bridge", bridge.as_str()), ("net.ip", "198.51.100.70/24"), ("net.egress", "3mbit")];
    let (container, _bundle) = start_isolated(id, &annotations);
    let pid = container.pid();
    container.forget_after_killing_runtime();
    sh(&format!("kill -KILL {pid}"));
    // The runtime's own state is gone too, so nothing runs poststop.
    sh_quiet(&format!("rm -rf /run/runc/{id}"));
    assert!(record_exists(id) && link_exists(None, &ifb_name(id)), "poststop never ran: netrt's objects remain");

    // A container whose namespace is gone holds no address: another one
    // takes it before gc has run, and gives it back when it stops.
    let taker_annotations = [("net.bridge", bridge.as_str()), ("net.ip", "198.51.100.70/24")];
    let (taker, _taker_bundle) = start_isolated("nrt-gc-taker", &taker_annotations);
    assert_eq!(sh("readlink /run/netrt/addresses/198.51.100.70").trim(), "nrt-gc-taker");
    taker.stop();
    assert!(std::fs::symlink_metadata("/run/netrt/addresses/198.51.100.70").is_err(), "the taker's claim goes with it");

    let hook = hook_binary().display().to_string();
    let output = sh(&format!("{hook} gc"));
    assert!(output.contains(&format!("removed {id}:")) && output.contains(&ifb_name(id)), "{output}");
    assert!(!record_exists(id) && !link_exists(None, &ifb_name(id)) && !link_exists(None, &host_veth_name(id)));
    assert_same_host!(snapshot(&[&lan.peer_ns]), before, "gc leaves nothing of netrt");
    assert!(sh(&format!("{hook} gc")).contains("nothing to remove"));

    // The same id and address start cleanly again.
    let (again, _bundle) = start_isolated(id, &annotations);
    again.stop();
}
