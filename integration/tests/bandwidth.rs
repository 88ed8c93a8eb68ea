//! netrt-hook driven by real runc: limits from annotations are in the kernel
//! before the process runs, hold under real traffic, and leave nothing.
//! Needs root; integration/run runs these one at a time.

use netrt_integration::*;

const EGRESS_BPS: f64 = 8_000_000.0;
const INGRESS_BPS: f64 = 12_000_000.0;

fn limits() -> [(&'static str, &'static str); 2] {
    [("net.egress", "8mbit"), ("net.ingress", "12mbit")]
}

#[test]
fn limits_are_on_the_host_veth_while_running_and_gone_after() {
    let lab = Lab::bridged("up");
    let before = snapshot(&[&lab.container_ns]);
    let annotations = limits();
    let (container, _bundle) = lab.start("nrt-up", &annotations);

    let host_veth = lab.host_veth.as_deref().unwrap();
    let ifb = ifb_name("nrt-up");
    let on_veth = qdiscs(None, host_veth);
    assert!(
        on_veth.contains("qdisc tbf 1: root") && on_veth.contains("rate 12Mbit"),
        "ingress limit on the host veth: {on_veth}"
    );
    assert!(on_veth.contains("qdisc ingress ffff:"), "{on_veth}");
    let filter = sh(&format!("tc filter show dev {host_veth} ingress"));
    assert!(filter.contains("protocol all") && filter.contains(&format!("Redirect to device {ifb}")), "{filter}");
    let on_ifb = qdiscs(None, &ifb);
    assert!(on_ifb.contains("qdisc tbf 1: root") && on_ifb.contains("rate 8Mbit"), "egress limit on the ifb: {on_ifb}");
    assert!(sh(&format!("ip -o link show dev {ifb}")).contains(",UP"), "the ifb is up");
    assert_eq!(
        qdiscs(Some(&lab.container_ns), "eth0").trim(),
        "qdisc noqueue 0: root refcnt 2",
        "nothing inside the container"
    );
    assert!(record_exists("nrt-up"));

    container.stop();
    assert!(!link_exists(None, &ifb), "the ifb is gone");
    assert_same_host!(snapshot(&[&lab.container_ns]), before, "nothing of netrt remains");
}

#[test]
fn egress_and_ingress_hold_over_ipv4_and_ipv6() {
    let lab = Lab::bridged("bw");
    let annotations = limits();
    let (container, _bundle) = lab.start("nrt-bw", &annotations);
    for ipv6 in [false, true] {
        for (receives, limit) in [(false, EGRESS_BPS), (true, INGRESS_BPS)] {
            let seconds = lab.iperf(ipv6, receives, 4);
            let steady = median(&seconds[1..]);
            let what = format!(
                "{} {}: {seconds:?}",
                if ipv6 { "IPv6" } else { "IPv4" },
                if receives { "ingress" } else { "egress" }
            );
            assert!(steady <= limit * 1.02, "steady rate above the limit, {what}");
            assert!(steady >= limit * 0.75, "steady rate far below the limit, {what}");
            assert!(seconds.iter().all(|&s| s <= limit * 1.10), "a second above the limit, {what}");
        }
    }
    container.stop();
}

#[test]
fn without_a_host_peer_the_limits_go_inside_the_namespace() {
    let lab = Lab::direct("in");
    let before = snapshot(&[&lab.container_ns, &lab.server_ns]);
    let annotations = limits();
    let (container, _bundle) = lab.start("nrt-in", &annotations);

    let ns = Some(lab.container_ns.as_str());
    let ifb = ifb_name("nrt-in");
    let on_eth0 = qdiscs(ns, "eth0");
    assert!(on_eth0.contains("qdisc tbf 1: root") && on_eth0.contains("rate 8Mbit"), "egress on eth0: {on_eth0}");
    assert!(on_eth0.contains("qdisc ingress ffff:"), "{on_eth0}");
    assert!(qdiscs(ns, &ifb).contains("rate 12Mbit"), "ingress on the ifb inside");
    assert!(!link_exists(None, &ifb), "no ifb on the host");

    let egress = lab.iperf(false, false, 3);
    assert!(median(&egress[1..]) <= EGRESS_BPS * 1.02 && median(&egress[1..]) >= EGRESS_BPS * 0.75, "{egress:?}");
    let ingress = lab.iperf(true, true, 3);
    assert!(median(&ingress[1..]) <= INGRESS_BPS * 1.02 && median(&ingress[1..]) >= INGRESS_BPS * 0.75, "{ingress:?}");

    container.stop();
    assert_same_host!(
        snapshot(&[&lab.container_ns, &lab.server_ns]),
        before,
        "teardown cleans inside the namespace it can still reach"
    );
}

#[test]
fn environment_fallback_applies_and_annotations_win() {
    let lab = Lab::bridged("env");
    let netns = lab.netns_path();
    let annotations = [("net.ingress", "3mbit")];
    let mut spec = BundleSpec::new(Some(&netns), &annotations);
    spec.env = &["NETRT_INGRESS=1mbit", "NETRT_EGRESS=2mbit", "NETRT_EGRESS_BURST=32k"];
    // Variables are read only where the admin turned them on.
    let config = std::env::temp_dir().join("netrt-it-env-on.json");
    std::fs::write(&config, r#"{"trust": {"env": true}}"#).unwrap();
    let hook_env = [format!("NETRT_CONFIG={}", config.display())];
    let hook_env: Vec<&str> = hook_env.iter().map(String::as_str).collect();
    spec.hook_env = &hook_env;
    let bundle = Bundle::create("nrt-env", &spec);
    let container = Container::start("nrt-env", &bundle).expect("container starts");
    let host_veth = lab.host_veth.as_deref().unwrap();
    assert!(qdiscs(None, host_veth).contains("rate 3Mbit"), "the annotation wins over NETRT_INGRESS");
    let on_ifb = qdiscs(None, &ifb_name("nrt-env"));
    assert!(
        on_ifb.contains("rate 2Mbit") && on_ifb.contains("burst 32Kb"),
        "NETRT_EGRESS and its burst apply: {on_ifb}"
    );
    container.stop();
    let _ = std::fs::remove_file(&config);
}

#[test]
fn a_container_without_settings_is_not_touched() {
    let lab = Lab::bridged("none");
    let before = snapshot(&[&lab.container_ns]);
    let netns = lab.netns_path();
    let mut spec = BundleSpec::new(Some(&netns), &[]);
    spec.env = &["NOT_NETRT=1"];
    let bundle = Bundle::create("nrt-none", &spec);
    let container = Container::start("nrt-none", &bundle).expect("container starts");
    assert_same_host!(
        snapshot(&[&lab.container_ns]),
        before,
        "no qdisc, link or record for a container without net.* settings"
    );
    container.stop();
}

#[test]
fn status_shows_the_limits_and_live_counters() {
    let lab = Lab::bridged("st");
    let annotations = limits();
    let (container, _bundle) = lab.start("nrt-st", &annotations);
    lab.iperf(false, false, 2);
    let hook = hook_binary().display().to_string();
    let status: serde_json::Value = serde_json::from_str(&sh(&format!("{hook} status nrt-st --json"))).unwrap();
    let entry = &status[0];
    assert_eq!(entry["id"], "nrt-st");
    assert_eq!(entry["host_veth"], lab.host_veth.as_deref().unwrap());
    let egress = &entry["limits"][0];
    assert_eq!((egress["direction"].as_str(), egress["rate_bps"].as_u64()), (Some("egress"), Some(8_000_000)));
    assert!(egress["sent_bytes"].as_u64().unwrap() > 500_000, "the egress shaper counted the iperf3 bytes: {egress}");
    assert_eq!(entry["limits"][1]["rate_bps"].as_u64(), Some(12_000_000));
    let table = sh(&format!("{hook} status"));
    assert!(table.contains("nrt-st") && table.contains("8mbit") && table.contains("12mbit"), "{table}");
    container.stop();
    let after = sh_output(&format!("{hook} status nrt-st"));
    assert!(!after.status.success() && String::from_utf8_lossy(&after.stderr).contains("no container \"nrt-st\""));
}

#[test]
fn a_hook_listed_for_prestart_and_create_runtime_applies_once() {
    let lab = Lab::bridged("twice");
    let before = snapshot(&[&lab.container_ns]);
    let netns = lab.netns_path();
    let annotations = limits();
    let mut spec = BundleSpec::new(Some(&netns), &annotations);
    spec.prestart = true;
    let bundle = Bundle::create("nrt-twice", &spec);
    let container = Container::start("nrt-twice", &bundle).expect("the second call finds its own record and succeeds");
    assert_eq!(qdiscs(None, lab.host_veth.as_deref().unwrap()).matches("tbf").count(), 1);
    container.stop();
    assert_same_host!(snapshot(&[&lab.container_ns]), before);
}

/// A Kubernetes pod as CRI-O makes it: the sandbox and an application
/// container in one network namespace, both carrying the pod's
/// annotations. The sandbox's hook shapes the pod; the application
/// container's hook leaves it alone instead of refusing a veth that is
/// already shaped, and its stop does not undo the pod's limits.
#[test]
fn a_pods_containers_share_the_limits_of_its_sandbox() {
    let lab = Lab::bridged("pod");
    let before = snapshot(&[&lab.container_ns]);
    let sandbox = [("net.egress", "8mbit"), ("io.kubernetes.cri-o.ContainerType", "sandbox")];
    let member = [("net.egress", "8mbit"), ("io.kubernetes.cri-o.ContainerType", "container")];
    let (pod, _pod_bundle) = lab.start("nrt-pod-sandbox", &sandbox);
    let ifb = ifb_name("nrt-pod-sandbox");
    assert!(qdiscs(None, &ifb).contains("rate 8Mbit"), "the sandbox shapes the pod");

    let (app, _app_bundle) = lab.start("nrt-pod-app", &member);
    assert!(!record_exists("nrt-pod-app"), "the application container has no record of its own");
    assert!(!link_exists(None, &ifb_name("nrt-pod-app")), "and no ifb of its own");
    app.stop();
    assert!(qdiscs(None, &ifb).contains("rate 8Mbit"), "the pod keeps its limit when one of its containers stops");

    pod.stop();
    assert_same_host!(snapshot(&[&lab.container_ns]), before, "nothing of netrt remains");
}
