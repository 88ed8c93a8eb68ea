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
    container.stop();
    assert!(!link_exists(None, &host_veth), "host veth left behind");
    assert!(!record_exists(id), "record left behind");
    assert_eq!(snapshot(&[&lan.peer_ns]), before, "host state changed");
}
