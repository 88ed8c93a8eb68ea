//! The host is never changed by a container: the settings of the
//! host's own objects (a bridge's MTU and MAC, a parent's) do not move while
//! a container runs, and when the runtime's delete returns nothing of the
//! container is left, not even for a few milliseconds. Through real runc;
//! every snapshot is taken the moment `runc delete` has returned. Needs root.

use netrt_integration::*;

const RUNS: usize = 20;

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}")).trim().to_string()
}

fn sys(link: &str, attribute: &str) -> String {
    read(&format!("/sys/class/net/{link}/{attribute}"))
}

/// The MTU of the container's eth0, asked over netlink (sysfs would show
/// the host's interfaces).
fn container_mtu(container: &Container) -> String {
    let output = container.net_sh("ip -o link show eth0");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.split_whitespace()
        .skip_while(|word| *word != "mtu")
        .nth(1)
        .unwrap_or_else(|| panic!("no MTU in {text}"))
        .to_string()
}

/// Starts and deletes the container `RUNS` times. The moment the runtime
/// has deleted it, a look at sysfs (microseconds, no process spawned) finds
/// none of netrt's host devices, and the flags of the host interfaces in
/// `watched` (a macvlan parent's promiscuous mode) as they were; the host
/// snapshot taken next must equal the one before the first start.
fn clean_at_once(
    id: &str,
    namespaces: &[&str],
    start: impl Fn() -> (Container, Bundle),
    made_by_netrt: &[String],
    watched: &[&str],
) {
    let before = snapshot(namespaces);
    let flags = || -> Vec<String> { watched.iter().map(|link| sys(link, "flags")).collect() };
    let flags_before = flags();
    let present = || -> Vec<String> {
        made_by_netrt
            .iter()
            .filter(|d| std::path::Path::new(&format!("/sys/class/net/{d}")).exists())
            .cloned()
            .collect()
    };
    for run in 1..=RUNS {
        let (container, bundle) = start();
        assert_eq!(present(), made_by_netrt, "run {run}: netrt's host devices while {id} runs");
        let (left, flags_after) = container.stop_then(|| (present(), flags()));
        assert!(left.is_empty(), "run {run}: {left:?} still there when the delete of {id} returned");
        assert_eq!(flags_after, flags_before, "run {run}: the flags of {watched:?} when the delete of {id} returned");
        let after = snapshot(namespaces);
        assert_same_host!(after, before, "run {run}: the host right after the delete of {id}");
        drop(bundle);
    }
}

#[test]
fn a_bridge_attachment_with_limits_is_gone_when_delete_returns() {
    let lan = Lan::bridge("hb");
    let bridge = lan.bridge.clone().unwrap();
    let id = "nrt-clean-bridge";
    let annotations = [
        ("net.bridge", bridge.as_str()),
        ("net.ip", "198.51.100.31/24,2001:db8:ff::31/64"),
        ("net.gateway", "198.51.100.1"),
        ("net.egress", "20mbit"),
        ("net.ingress", "30mbit"),
    ];
    let devices = [host_veth_name(id), ifb_name(id)];
    clean_at_once(id, &[&lan.peer_ns], || start_isolated(id, &annotations), &devices, &[&bridge]);
}

#[test]
fn a_macvlan_attachment_is_gone_when_delete_returns() {
    let lan = Lan::parent("hm");
    let parent = lan.parent.clone().unwrap();
    let id = "nrt-clean-macvlan";
    let annotations = [("net.parent", parent.as_str()), ("net.ip", "198.51.100.32/24"), ("net.egress", "20mbit")];
    clean_at_once(id, &[&lan.peer_ns], || start_isolated(id, &annotations), &[], &[&parent]);

    // A container that ends by itself: runc runs poststop at once, while
    // the kernel may still be tearing the namespace down.
    let flags = sys(&parent, "flags");
    let before = snapshot(&[&lan.peer_ns]);
    let spec = BundleSpec { command: "true", ..BundleSpec::isolated(&annotations) };
    let bundle = Bundle::create(id, &spec);
    for run in 1..=RUNS {
        Container::run_to_end(id, &bundle).unwrap_or_else(|e| panic!("run {run}: {e}"));
        assert_eq!(sys(&parent, "flags"), flags, "run {run}: {parent}'s flags when the delete of {id} returned");
    }
    assert_same_host!(snapshot(&[&lan.peer_ns]), before);
}

#[test]
fn limits_on_an_engines_veth_are_gone_when_delete_returns() {
    let lab = Lab::bridged("hl");
    let id = "nrt-clean-limits";
    let limits = [("net.egress", "20mbit"), ("net.ingress", "30mbit")];
    let host_veth = lab.host_veth.clone().unwrap();
    clean_at_once(id, &[&lab.container_ns, &lab.server_ns], || lab.start(id, &limits), &[ifb_name(id)], &[&host_veth]);
}

#[test]
fn a_bridge_keeps_its_mtu_and_mac_while_containers_run() {
    let lan = Lan::bridge("hu");
    let bridge = lan.bridge.clone().unwrap();
    let (mtu, mac) = (sys(&bridge, "mtu"), sys(&bridge, "address"));
    assert_eq!(mtu, "1500");
    let id = "nrt-keep-mtu";
    let annotations = [
        ("net.bridge", bridge.as_str()),
        ("net.ip", "198.51.100.33/24"),
        ("net.mtu", "1400"),
        ("net.ingress", "10mbit"),
    ];
    let (container, _bundle) = start_isolated(id, &annotations);
    let host_veth = host_veth_name(id);
    assert_eq!(container_mtu(&container), "1400", "the container's end has net.mtu");
    assert_eq!(sys(&host_veth, "mtu"), "1500", "the host end keeps the bridge's MTU");
    assert!(sys(&host_veth, "address").starts_with("fe:ff:"), "a host-end MAC that never becomes the bridge's");
    assert_eq!((sys(&bridge, "mtu"), sys(&bridge, "address")), (mtu.clone(), mac.clone()), "{bridge} while {id} runs");
    container.stop();
    assert_eq!((sys(&bridge, "mtu"), sys(&bridge, "address")), (mtu, mac), "{bridge} after {id}");

    // A jumbo LAN: the bridge follows its uplink to 9000, and a container
    // without net.mtu gets the bridge's MTU, which stays 9000.
    let uplink = format!("nrt{}l", "hu");
    sh(&format!("ip link set {uplink} mtu 9000"));
    assert_eq!(sys(&bridge, "mtu"), "9000", "an auto-MTU bridge follows its ports");
    let id = "nrt-keep-jumbo";
    let annotations = [("net.bridge", bridge.as_str()), ("net.ip", "198.51.100.34/24")];
    let (container, _bundle) = start_isolated(id, &annotations);
    assert_eq!(container_mtu(&container), "9000", "the bridge's MTU by default");
    assert_eq!(sys(&bridge, "mtu"), "9000", "{bridge} while {id} runs");
    container.stop();
    assert_eq!(sys(&bridge, "mtu"), "9000");
}

#[test]
fn an_mtu_above_the_bridges_is_refused_and_leaves_nothing() {
    let lan = Lan::bridge("hr");
    let bridge = lan.bridge.clone().unwrap();
    let before = snapshot(&[&lan.peer_ns]);
    let id = "nrt-mtu-above";
    let annotations =
        [("net.bridge", bridge.as_str()), ("net.ip", "198.51.100.35/24"), ("net.mtu", "1600"), ("net.egress", "5mbit")];
    let bundle = Bundle::create(id, &BundleSpec::isolated(&annotations));
    let error =
        Container::start(id, &bundle).err().expect("an MTU above the bridge's is refused").replace("\\\"", "\"");
    assert!(
        error.contains(&format!("net.mtu=\"1600\": 1600 is larger than the MTU of bridge {bridge} (1500)")),
        "{error}"
    );
    sh_quiet(&format!("runc delete -f {id}"));
    assert_same_host!(snapshot(&[&lan.peer_ns]), before, "the refusal leaves nothing and moves nothing");
}

#[test]
fn an_empty_bridge_with_a_kernel_chosen_mac_is_refused_until_its_mac_is_fixed() {
    let bridge = "nrthe0br";
    sh_quiet(&format!("ip link del {bridge}"));
    sh(&format!("ip link add {bridge} type bridge && ip link set {bridge} up"));
    let _cleanup = Cleanup(format!("ip link del {bridge}"));
    let before = snapshot(&[]);
    let mac = sys(bridge, "address");
    let id = "nrt-empty-bridge";
    let annotations = [("net.bridge", bridge), ("net.ip", "198.51.100.36/24")];
    let bundle = Bundle::create(id, &BundleSpec::isolated(&annotations));
    let error = Container::start(id, &bundle)
        .err()
        .expect("the first port would change the bridge's MAC")
        .replace("\\\"", "\"");
    assert!(error.contains(&format!("net.bridge=\"{bridge}\": bridge {bridge} has no port yet")), "{error}");
    assert!(error.contains(&format!("ip link set {bridge} address {mac}")), "the fix is named: {error}");
    sh_quiet(&format!("runc delete -f {id}"));
    assert_same_host!(snapshot(&[]), before, "the refusal leaves nothing, the MAC included");

    sh(&format!("ip link set {bridge} address {mac}"));
    let (container, _bundle) = start_isolated(id, &annotations);
    assert_eq!(sys(bridge, "address"), mac, "a fixed MAC stays while the container runs");
    container.stop();
    assert_eq!(sys(bridge, "address"), mac, "and after it");
}

struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        sh_quiet(&self.0);
    }
}
