//! Attachments through real runc: containers in namespaces of their own
//! (`--network none` style) put on a LAN the test made, checked in the
//! kernel and with traffic. Needs root.

use netrt_integration::*;

fn ok(output: std::process::Output) -> String {
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{text}");
    text
}

#[test]
fn bridge_attachment_with_addresses_routes_mac_and_mtu() {
    let lan = Lan::bridge("ab");
    let bridge = lan.bridge.clone().unwrap();
    let before = snapshot(&[&lan.peer_ns]);
    let id = "nrt-attach-bridge";
    let annotations = [
        ("net.bridge", bridge.as_str()),
        ("net.ip", "198.51.100.10/24,2001:db8:ff::10/64"),
        ("net.gateway", "198.51.100.1,2001:db8:ff::1"),
        ("net.routes", "203.0.113.0/24 via 198.51.100.1, 2001:db8:1::/48 via 2001:db8:ff::1"),
        ("net.mac", "02:00:5e:10:00:0a"),
        ("net.mtu", "1400"),
    ];
    let (container, _bundle) = start_isolated(id, &annotations);
    let links = ok(container.net_sh("ip -d link show eth0"));
    assert!(links.contains("link/ether 02:00:5e:10:00:0a"), "{links}");
    assert!(links.contains("mtu 1400") && links.contains("state UP"), "{links}");
    let addresses = ok(container.net_sh("ip addr show eth0"));
    assert!(addresses.contains("inet 198.51.100.10/24"), "{addresses}");
    assert!(addresses.contains("inet6 2001:db8:ff::10/64"), "{addresses}");
    let global6 = addresses.lines().find(|l| l.contains("2001:db8:ff::10")).unwrap();
    assert!(!global6.contains("tentative"), "IPv6 without a DAD wait: {addresses}");
    let routes = ok(container.net_sh("ip route; ip -6 route"));
    for expected in [
        "default via 198.51.100.1 dev eth0",
        "203.0.113.0/24 via 198.51.100.1 dev eth0",
        "default via 2001:db8:ff::1 dev eth0",
        "2001:db8:1::/48 via 2001:db8:ff::1 dev eth0",
    ] {
        assert!(routes.contains(expected), "{expected} missing in {routes}");
    }
    assert!(ok(container.net_sh("ip link show lo")).contains("UP"), "loopback up");
    let host_veth = host_veth_name(id);
    assert!(sh(&format!("ip -d link show {host_veth}")).contains(&format!("master {bridge}")), "host veth enslaved");
    ok(container.net_sh("busybox ping -c 1 -W 2 198.51.100.1"));
    ok(container.net_sh("busybox ping -6 -c 1 -W 2 2001:db8:ff::1"));
    assert!(record_exists(id));
    let hook = hook_binary().display().to_string();
    let status: serde_json::Value = serde_json::from_str(&sh(&format!("{hook} status {id} --json"))).unwrap();
    assert_eq!(status[0]["attachment"], format!("bridge {bridge}"), "{status}");
    assert_eq!(status[0]["addresses"], serde_json::json!(["198.51.100.10/24", "2001:db8:ff::10/64"]), "{status}");
    assert!(sh(&format!("{hook} status")).contains(&format!("eth0@{host_veth}")), "the table names both ends");
    container.stop();
    assert!(!link_exists(None, &host_veth), "host veth left behind");
    assert!(!record_exists(id), "record left behind");
    assert_same_host!(snapshot(&[&lan.peer_ns]), before, "host state changed");
}

const EGRESS_BPS: f64 = 8_000_000.0;
const INGRESS_BPS: f64 = 12_000_000.0;

fn assert_limited(seconds: &[f64], limit: f64, what: &str) {
    let steady = median(&seconds[1..]);
    assert!(steady <= limit * 1.02, "steady rate above the limit, {what}: {seconds:?}");
    assert!(steady >= limit * 0.75, "steady rate far below the limit, {what}: {seconds:?}");
}

#[test]
fn bridge_attachment_shaped_on_the_host_side() {
    let lan = Lan::bridge("abw");
    let bridge = lan.bridge.clone().unwrap();
    let id = "nrt-attach-bw";
    let annotations = [
        ("net.bridge", bridge.as_str()),
        ("net.ip", "198.51.100.10/24,2001:db8:ff::10/64"),
        ("net.egress", "8mbit"),
        ("net.ingress", "12mbit"),
    ];
    let (container, _bundle) = start_isolated(id, &annotations);
    let host_veth = host_veth_name(id);
    assert!(qdiscs(None, &host_veth).contains("rate 12Mbit"), "ingress limit on the host veth");
    assert!(qdiscs(None, &ifb_name(id)).contains("rate 8Mbit"), "egress limit on the host ifb");
    let name = container.name_netns("nrtabwc");
    for (ipv6, server) in [(false, LAN_PEER4), (true, LAN_PEER6)] {
        assert_limited(&iperf(&lan.peer_ns, &name.0, server, ipv6, false, 3).unwrap(), EGRESS_BPS, "egress");
        assert_limited(&iperf(&lan.peer_ns, &name.0, server, ipv6, true, 3).unwrap(), INGRESS_BPS, "ingress");
    }
    drop(name);
    container.stop();
    assert!(!link_exists(None, &host_veth) && !link_exists(None, &ifb_name(id)));
}

#[test]
fn macvlan_attachment_reaches_the_lan_and_is_shaped_inside() {
    let lan = Lan::parent("amv");
    let parent = lan.parent.clone().unwrap();
    let before = snapshot(&[&lan.peer_ns]);
    let id = "nrt-attach-mv";
    let annotations = [
        ("net.parent", parent.as_str()),
        ("net.ifname", "lan0"),
        ("net.ip", "198.51.100.20/24,2001:db8:ff::20/64"),
        ("net.egress", "8mbit"),
        ("net.ingress", "12mbit"),
    ];
    let (container, _bundle) = start_isolated(id, &annotations);
    let link = ok(container.net_sh("ip -d link show lan0"));
    assert!(link.contains("macvlan mode bridge"), "{link}");
    assert!(link.contains("link/ether 02:42:c6:33:64:14"), "MAC derived from 198.51.100.20: {link}");
    ok(container.net_sh("busybox ping -c 1 -W 2 198.51.100.1"));
    ok(container.net_sh("busybox ping -6 -c 1 -W 2 2001:db8:ff::1"));
    let name = container.name_netns("nrtamvc");
    assert!(qdiscs(Some(&name.0), "lan0").contains("rate 8Mbit"), "egress limit inside");
    assert!(qdiscs(Some(&name.0), &ifb_name(id)).contains("rate 12Mbit"), "ingress limit on the ifb inside");
    assert!(!link_exists(None, &ifb_name(id)), "nothing on the host");
    assert_limited(&iperf(&lan.peer_ns, &name.0, LAN_PEER4, false, false, 3).unwrap(), EGRESS_BPS, "egress");
    assert_limited(&iperf(&lan.peer_ns, &name.0, LAN_PEER6, true, true, 3).unwrap(), INGRESS_BPS, "ingress");
    drop(name);
    container.stop();
    assert_same_host!(snapshot(&[&lan.peer_ns]), before, "host state changed");
}

#[test]
fn an_existing_interface_name_gets_the_next_free_eth() {
    let lab = Lab::bridged("aeth");
    let lan = Lan::bridge("aeth2");
    let bridge = lan.bridge.clone().unwrap();
    let annotations = [("net.bridge", bridge.as_str()), ("net.ip", "198.51.100.30/24")];
    let (container, _bundle) = lab.start("nrt-attach-eth", &annotations);
    let inside = sh(&format!("ip -n {} -o addr show", lab.container_ns));
    assert!(inside.contains("eth1    inet 198.51.100.30/24"), "eth0 was taken, so eth1: {inside}");
    container.stop();
    assert!(
        !link_exists(Some(&lab.container_ns), "eth1"),
        "the attached interface is removed from a namespace that lives on"
    );
}

/// Every macvlan mode reaches the kernel as asked; passthru takes the
/// parent over while it runs and gives it back as it was.
#[test]
fn each_macvlan_mode_is_the_kernels() {
    let lan = Lan::parent("amm");
    let parent = lan.parent.clone().unwrap();
    let before = snapshot(&[&lan.peer_ns]);
    for (n, mode) in ["bridge", "private", "vepa", "passthru"].into_iter().enumerate() {
        let id = format!("nrt-attach-mm{n}");
        let address = format!("198.51.100.{}/24", 40 + n);
        let annotations = [("net.parent", parent.as_str()), ("net.macvlan.mode", mode), ("net.ip", address.as_str())];
        let (container, _bundle) = start_isolated(&id, &annotations);
        let link = ok(container.net_sh("ip -d link show eth0"));
        assert!(link.contains(&format!("macvlan mode {mode} ")), "{mode}: {link}");
        ok(container.net_sh("busybox ping -c 1 -W 2 198.51.100.1"));
        container.stop();
        assert_same_host!(snapshot(&[&lan.peer_ns]), before, "after the {mode} macvlan");
    }
}

/// A LAN host that still holds the container's addresses with another MAC
/// (the address was on another host before) learns the container's MAC as
/// soon as it starts, without asking: netrt announces each address (a
/// gratuitous ARP, an unsolicited neighbour advertisement with override).
#[test]
fn a_lan_peer_learns_the_new_mac_of_an_address_without_asking() {
    let lan = Lan::bridge("ann");
    let bridge = lan.bridge.clone().unwrap();
    let peer = &lan.peer_ns;
    let old_mac = "02:00:00:00:be:ef";
    for address in ["198.51.100.10", "2001:db8:ff::10"] {
        sh(&format!("ip -n {peer} neigh replace {address} lladdr {old_mac} dev eth0 nud stale"));
    }
    let neighbour = |address: &str| sh(&format!("ip -n {peer} neigh show {address} dev eth0"));
    assert!(neighbour("198.51.100.10").contains(old_mac), "{}", neighbour("198.51.100.10"));
    let annotations = [("net.bridge", bridge.as_str()), ("net.ip", "198.51.100.10/24,2001:db8:ff::10/64")];
    let (container, _bundle) = start_isolated("nrt-announce", &annotations);
    // (Not from sysfs: after setns it still shows the host's interfaces.)
    let link: serde_json::Value = serde_json::from_str(&ok(container.net_sh("ip -j link show eth0"))).unwrap();
    let mac = link[0]["address"].as_str().unwrap().to_string();
    // The peer sent nothing: the entries changed on the announcements alone.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while ["198.51.100.10", "2001:db8:ff::10"].iter().any(|a| !neighbour(a).contains(&mac))
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    for address in ["198.51.100.10", "2001:db8:ff::10"] {
        let entry = neighbour(address);
        assert!(entry.contains(&mac) && !entry.contains(old_mac), "{address}: {entry} (container MAC {mac})");
    }
    container.stop();
}
