//! Bad input, faults and restarts through real runc: a refused container
//! does not start, runc's error carries the `netrt:` line, and the host is
//! exactly as before. Needs root.

use netrt_integration::*;

fn refused(lab: &Lab, id: &str, spec: &BundleSpec) -> String {
    let before = snapshot(&[&lab.container_ns]);
    let bundle = Bundle::create(id, spec);
    let error = Container::run_to_end(id, &bundle).expect_err("the container must not start");
    assert_same_host!(snapshot(&[&lab.container_ns]), before, "host state changed after refusing {id}: {error}");
    error
}

/// Annotations, environment entries, and the message expected.
type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str], &'a str);

#[test]
fn bad_values_are_refused_naming_key_value_and_reason() {
    let lab = Lab::bridged("bad");
    let netns = lab.netns_path();
    let cases: &[Case] = &[
        (&[("net.egress", "10mbps")], &[], r#"netrt: net.egress=\"10mbps\": mbps is bytes per second"#),
        (&[("net.ingress", "fast")], &[], r#"netrt: net.ingress=\"fast\": expected a number"#),
        (&[("net.egress", "1kbit")], &[], r#"netrt: net.egress=\"1kbit\": rate must be between 8kbit and 100gbit"#),
        (&[("net.egres", "1mbit")], &[], r#"netrt: net.egres=\"1mbit\": unknown key; did you mean net.egress?"#),
        (
            &[("net.bridge", "nrtnobr0")],
            &[],
            r#"netrt: net.bridge=\"nrtnobr0\": the host has no bridge (netrt never creates one) called nrtnobr0"#,
        ),
        (&[("net.egress.burst", "32k")], &[], r#"netrt: net.egress.burst=\"32k\": needs net.egress"#),
        (
            &[("net.ingress", "1mbit"), ("net.ingress.latency", "25")],
            &[],
            r#"net.ingress.latency=\"25\": a duration needs a unit"#,
        ),
        // Variables are off unless the admin turns them on (trust.env).
        (
            &[],
            &["NETRT_EGRESS=10mbit"],
            r#"netrt: NETRT_EGRESS=\"10mbit\": netrt reads a container's NETRT_* variables only when trust.env is true"#,
        ),
        // Checked against the interface's frame size, still before any change.
        (
            &[("net.ingress", "1mbit"), ("net.ingress.burst", "1000")],
            &[],
            r#"net.ingress.burst=\"1000\": burst of 1000 bytes is smaller than one frame"#,
        ),
    ];
    for (n, (annotations, env, expected)) in cases.iter().enumerate() {
        let mut spec = BundleSpec::new(Some(&netns), annotations);
        spec.env = env;
        let error = refused(&lab, &format!("nrt-bad{n}"), &spec);
        assert!(error.contains(expected), "case {n}: expected {expected} in: {error}");
    }
}

#[test]
fn the_host_network_namespace_is_refused() {
    let lab = Lab::bridged("hostn");
    let annotations = [("net.egress", "1mbit")];
    let error = refused(&lab, "nrt-hostns", &BundleSpec::new(None, &annotations));
    assert!(
        error.contains(r#"netrt: net.egress=\"1mbit\": the container shares the host's network namespace"#),
        "{error}"
    );
}

#[test]
fn a_namespace_without_default_route_is_refused() {
    let lab = Lab::bridged("nort");
    sh(&format!("ip -n {0} route del default && ip -n {0} -6 route del default", lab.container_ns));
    let netns = lab.netns_path();
    let annotations = [("net.ingress", "1mbit")];
    let error = refused(&lab, "nrt-noroute", &BundleSpec::new(Some(&netns), &annotations));
    assert!(error.contains("the container has no default route"), "{error}");
}

#[test]
fn a_qdisc_set_up_by_someone_else_is_not_replaced() {
    let lab = Lab::bridged("taken");
    let host_veth = lab.host_veth.clone().unwrap();
    sh(&format!("tc qdisc add dev {host_veth} root handle 5: tbf rate 1mbit burst 5k latency 10ms"));
    let netns = lab.netns_path();
    let annotations = [("net.ingress", "2mbit")];
    let error = refused(&lab, "nrt-taken", &BundleSpec::new(Some(&netns), &annotations));
    assert!(error.contains("already has such a qdisc, set up by someone else"), "{error}");
    assert!(qdiscs(None, &host_veth).contains("tbf 5: root"), "the other tool's qdisc is kept");
}

/// Every step of setup, made to fail in turn, is undone completely.
#[test]
fn a_fault_after_any_step_is_rolled_back() {
    let annotations = [("net.egress", "4mbit"), ("net.ingress", "6mbit")];
    for (lab, steps) in [(Lab::bridged("fault"), 6), (Lab::direct("faulti"), 6)] {
        let netns = lab.netns_path();
        for step in 1..=steps {
            let fault = format!("NETRT_FAULT_AFTER_STEP={step}");
            let hook_env = [fault.as_str()];
            let mut spec = BundleSpec::new(Some(&netns), &annotations);
            spec.hook = fault_hook_binary();
            spec.hook_env = &hook_env;
            let error = refused(&lab, "nrt-fault", &spec);
            assert!(error.contains(&format!("injected fault after step {step}")), "step {step}: {error}");
            assert!(error.contains(r#"netrt: net."#), "step {step}: {error}");
        }
        // One step further than setup has: no fault, the container runs.
        let fault = format!("NETRT_FAULT_AFTER_STEP={}", steps + 1);
        let hook_env = [fault.as_str()];
        let mut spec = BundleSpec::new(Some(&netns), &annotations);
        spec.hook = fault_hook_binary();
        spec.hook_env = &hook_env;
        spec.command = "true";
        let bundle = Bundle::create("nrt-fault", &spec);
        Container::run_to_end("nrt-fault", &bundle).expect("setup has exactly this many steps");
    }
}

#[test]
fn a_restart_after_a_lost_poststop_is_set_up_cleanly() {
    let lab = Lab::bridged("rst");
    let before = snapshot(&[&lab.container_ns]);
    let netns = lab.netns_path();
    let host_veth = lab.host_veth.clone().unwrap();

    let first = [("net.egress", "3mbit"), ("net.ingress", "5mbit")];
    let mut spec = BundleSpec::new(Some(&netns), &first);
    spec.poststop = false;
    spec.command = "true";
    let bundle = Bundle::create("nrt-rst", &spec);
    Container::run_to_end("nrt-rst", &bundle).expect("first run");
    assert!(
        record_exists("nrt-rst") && qdiscs(None, &host_veth).contains("rate 5Mbit"),
        "poststop never ran: all left"
    );

    let second = [("net.egress", "7mbit"), ("net.ingress", "9mbit")];
    let (container, _bundle) = lab.start("nrt-rst", &second);
    assert!(qdiscs(None, &host_veth).contains("rate 9Mbit"), "the new ingress limit is in force");
    assert!(qdiscs(None, &ifb_name("nrt-rst")).contains("rate 7Mbit"), "the new egress limit is in force");
    container.stop();
    assert_same_host!(snapshot(&[&lab.container_ns]), before);
}

#[test]
fn a_stray_ifb_of_the_same_id_is_replaced() {
    let lab = Lab::bridged("stray");
    let ifb = ifb_name("nrt-stray");
    sh_quiet(&format!("ip link del {ifb}"));
    // One netrt left (it carries the mark): replaced.
    sh(&format!("ip link add {ifb} group {} type ifb", netrt_hook::kernel::names::OWN_GROUP));
    let annotations = [("net.egress", "2mbit")];
    let (container, _bundle) = lab.start("nrt-stray", &annotations);
    assert!(qdiscs(None, &ifb).contains("rate 2Mbit"));
    container.stop();
    assert!(!link_exists(None, &ifb));

    // One without the mark is someone else's: it stays, and the container
    // is refused, naming it.
    sh(&format!("ip link add {ifb} type ifb"));
    let netns = lab.netns_path();
    let mut spec = BundleSpec::new(Some(&netns), &annotations);
    spec.command = "true";
    let error = refused(&lab, "nrt-stray", &spec);
    assert!(
        error.contains(&format!("the host has a device {ifb} (link group 0) under the name netrt gives this container's, without netrt's mark")),
        "{error}"
    );
    assert!(link_exists(None, &ifb), "the device is left as it was");
    sh(&format!("ip link del {ifb}"));
}

#[test]
fn teardown_without_a_record_is_a_no_op() {
    let hook = hook_binary().display().to_string();
    let output = sh_output(&format!(
        r#"echo '{{"ociVersion":"1.0.2","id":"nrt-never","status":"stopped","bundle":"/nonexistent"}}' | {hook} poststop"#
    ));
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

#[test]
fn without_privileges_the_hook_says_what_it_lacks_and_changes_nothing() {
    let lab = Lab::bridged("priv");
    let before = snapshot(&[&lab.container_ns]);
    let mut holder = process_in_netns(&lab.container_ns);
    let bundle = std::env::temp_dir().join("netrt-it-priv");
    std::fs::create_dir_all(&bundle).unwrap();
    std::fs::write(bundle.join("config.json"), r#"{"annotations":{"net.egress":"1mbit"}}"#).unwrap();
    sh(&format!("chmod 755 {0} && chmod 644 {0}/config.json", bundle.display()));
    let state = format!(
        r#"{{"ociVersion":"1.0.2","id":"nrt-priv","status":"creating","pid":{},"bundle":"{}"}}"#,
        holder.id(),
        bundle.display()
    );
    let hook = hook_binary().display().to_string();
    let output = sh_output(&format!(
        "echo '{state}' | setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all {hook} createRuntime"
    ));
    let _ = holder.kill();
    let _ = holder.wait();
    let _ = std::fs::remove_dir_all(&bundle);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "the hook without privileges fails: {stderr}");
    assert!(
        stderr.contains("netrt-hook needs CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_SYS_PTRACE")
            && stderr.contains("lacks CAP_NET_ADMIN"),
        "{stderr}"
    );
    assert_same_host!(snapshot(&[&lab.container_ns]), before);
}

#[test]
fn teardown_removes_only_what_is_still_netrts() {
    let lab = Lab::bridged("frgn");
    let host_veth = lab.host_veth.clone().unwrap();
    let annotations = [("net.ingress", "2mbit")];
    let (container, _bundle) = lab.start("nrt-foreign", &annotations);
    // Another tool replaces netrt's tbf while the container runs.
    sh(&format!("tc qdisc replace dev {host_veth} root handle 7: tbf rate 3mbit burst 5k latency 10ms"));
    container.stop();
    assert!(qdiscs(None, &host_veth).contains("tbf 7: root"), "the other tool's qdisc stays");
    assert!(!record_exists("nrt-foreign"));
}

/// A partial record that is not JSON: a setup died while writing it, before
/// it changed anything.
#[test]
fn a_record_cut_short_before_any_change_is_cleaned_up() {
    let partial = "/run/netrt/containers/nrt-cut.partial";
    let lab = Lab::bridged("cut");
    let before = snapshot(&[&lab.container_ns]);
    std::fs::create_dir_all("/run/netrt/containers").unwrap();
    std::fs::write(partial, r#"{"version":1,"id":"#).unwrap();
    let annotations = [("net.egress", "2mbit")];
    let (container, _bundle) = lab.start("nrt-cut", &annotations);
    assert!(qdiscs(None, &ifb_name("nrt-cut")).contains("rate 2Mbit"));
    container.stop();
    assert_same_host!(snapshot(&[&lab.container_ns]), before);

    std::fs::write(partial, r#"{"version":1,"id":"#).unwrap();
    let hook = hook_binary().display().to_string();
    sh(&format!(
        r#"echo '{{"ociVersion":"1.0.2","id":"nrt-cut","status":"stopped","bundle":"/nonexistent"}}' | {hook} poststop"#
    ));
    assert!(!std::path::Path::new(partial).exists(), "poststop removes it");
}

/// netrt's host devices carry its mark (their link group, set in the
/// request that creates them); a device under one of netrt's names without
/// it is someone else's and survives gc and teardown.
#[test]
fn a_device_under_netrts_name_without_its_mark_is_never_deleted() {
    use netrt_hook::kernel::names::OWN_GROUP;
    let group_of = |name: &str| sh(&format!("cat /sys/class/net/{name}/netdev_group")).trim().parse::<u32>().unwrap();
    let hook = hook_binary().display().to_string();

    // gc removes unrecorded devices under netrt's names only with the mark.
    let (unmarked_veth, unmarked_ifb, marked_ifb) = ("nrtv00000000abc", "nrti00000000abe", "nrti00000000abd");
    for name in [unmarked_veth, unmarked_ifb, marked_ifb] {
        sh_quiet(&format!("ip link del {name}"));
    }
    sh(&format!("ip link add {unmarked_veth} type veth peer name nrtmarkpeer0"));
    sh(&format!("ip link add {unmarked_ifb} type ifb"));
    sh(&format!("ip link add {marked_ifb} group {OWN_GROUP} type ifb"));
    let gc = sh(&format!("{hook} gc"));
    assert!(gc.contains(&format!("removed ifb {marked_ifb}: no record names it")), "{gc}");
    assert!(!link_exists(None, marked_ifb), "the marked one is gone");
    assert!(link_exists(None, unmarked_veth) && link_exists(None, unmarked_ifb), "the unmarked ones stay: {gc}");
    sh(&format!("ip link del {unmarked_veth}; ip link del {unmarked_ifb}"));

    // Teardown: the container's ifb is marked; replaced by an unmarked ifb
    // of the same name while the container runs, it is left alone.
    let lab = Lab::bridged("mark");
    let (container, _bundle) = lab.start("nrt-mark", &[("net.egress", "2mbit")]);
    let ifb = ifb_name("nrt-mark");
    assert_eq!(group_of(&ifb), OWN_GROUP, "netrt marks the ifb it makes");
    sh(&format!("ip link del {ifb} && ip link add {ifb} type ifb"));
    container.stop();
    assert!(!record_exists("nrt-mark"), "teardown finished");
    assert!(link_exists(None, &ifb), "the unmarked ifb under netrt's name stays");
    sh(&format!("ip link del {ifb}"));
}
