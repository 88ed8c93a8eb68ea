//! What the LAN itself says about addresses: a pool that probes before use
//! never gives a container an address something on the wire answers for
//! (ARP probes, IPv6 duplicate address detection), through real runc, with
//! a LAN peer in a namespace of the test's that is not netrt's.

use netrt_integration::*;
use serde_json::{json, Value};

fn ok(output: std::process::Output) -> String {
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{text}");
    text
}

fn address_of(container: &Container, family: &str) -> String {
    let out =
        String::from_utf8_lossy(&container.net_sh(&format!("ip -o -{family} addr show eth0 scope global")).stdout)
            .into_owned();
    let word = out.split_whitespace().skip_while(|w| *w != "inet" && *w != "inet6").nth(1).expect(&out).to_string();
    word.split('/').next().unwrap().to_string()
}

fn mac_in(ns: &str, ifname: &str) -> String {
    let out = sh(&format!("ip -n {ns} -j link show {ifname}"));
    let links: Value = serde_json::from_str(&out).unwrap();
    links[0]["address"].as_str().unwrap().to_string()
}

#[test]
fn probe_before_use_passes_over_and_refuses_addresses_in_use_on_the_wire() {
    let lan = Lan::bridge("pw");
    let bridge = lan.bridge.clone().unwrap();
    let peer = lan.peer_ns.clone();
    let peer_mac = mac_in(&peer, "eth0");
    let pool_name = "it-probe";
    let dir = std::env::temp_dir().join("netrt-it-probe");
    std::fs::create_dir_all(&dir).unwrap();
    let config_path = dir.join("netrt.json");
    let pool = json!({"bridge": bridge, "subnets": ["198.51.100.0/24", "2001:db8:ff::/64"],
                      "ranges": ["198.51.100.60-198.51.100.63", "2001:db8:ff::60-2001:db8:ff::63"],
                      "gateways": ["198.51.100.1"], "probe": "200ms"});
    std::fs::write(&config_path, json!({"node": "solo", "pools": {pool_name: pool}}).to_string()).unwrap();
    let state = std::path::Path::new("/var/lib/netrt/pools").join(pool_name);
    let _ = std::fs::remove_dir_all(&state);
    let env = format!("NETRT_CONFIG={}", config_path.display());
    let cli = |arguments: &str| sh_output(&format!("{env} {} {arguments}", hook_binary().display()));
    // A machine on the LAN uses the first address of each range without
    // any reservation in the pool.
    sh(&format!("ip -n {peer} addr add 198.51.100.60/24 dev eth0"));
    sh(&format!("ip -n {peer} addr add 2001:db8:ff::60/64 dev eth0 nodad"));
    let before = snapshot(&[&peer]);
    let start = |id: &str, annotations: &[(&str, &str)]| {
        let mut spec = BundleSpec::isolated(annotations);
        let hook_env = [env.as_str()];
        spec.hook_env = &hook_env;
        let bundle = Bundle::create(id, &spec);
        Container::start(id, &bundle).map(|c| (c, bundle)).map_err(|e| e.replace('\\', ""))
    };

    // Allocation would give .60 and ::60 first: the probe hears the peer,
    // marks them in use on the wire with its MAC, and gives the next.
    let (first, _bundle) = start("nrt-probe-1", &[("net.pool", pool_name)]).unwrap();
    assert_eq!(address_of(&first, "4"), "198.51.100.61");
    assert_eq!(address_of(&first, "6"), "2001:db8:ff::61");
    let shown: Value = serde_json::from_str(&ok(cli(&format!("pool show {pool_name} --json")))).unwrap();
    let marks: Vec<(&str, &str)> =
        shown.as_array().unwrap().iter().filter_map(|c| Some((c["address"].as_str()?, c["wire"].as_str()?))).collect();
    assert_eq!(marks, [("198.51.100.60", peer_mac.as_str()), ("2001:db8:ff::60", peer_mac.as_str())], "{shown}");
    let table = ok(cli(&format!("pool show {pool_name}")));
    assert!(table.contains(&format!("in use on the wire by {peer_mac}")), "{table}");

    // An address the container asks for, in use on the wire: refused,
    // naming the MAC that answered, in both families; nothing is left.
    sh(&format!("ip -n {peer} addr add 198.51.100.62/24 dev eth0"));
    sh(&format!("ip -n {peer} addr add 2001:db8:ff::62/64 dev eth0 nodad"));
    let during = snapshot(&[&peer]);
    for address in ["198.51.100.62/24", "2001:db8:ff::62/64"] {
        let refused = start("nrt-probe-2", &[("net.bridge", &bridge), ("net.ip", address)]).err().expect(address);
        let bare = address.split('/').next().unwrap();
        assert!(
            refused.contains(&format!("net.ip=\"{address}\": {bare} answers on the LAN from {peer_mac}")),
            "{refused}"
        );
        assert_same_host!(snapshot(&[&peer]), during);
    }
    // The peer lets go of .62: asked for, it is silent and given.
    sh(&format!("ip -n {peer} addr del 198.51.100.62/24 dev eth0"));
    let (second, _bundle2) = start("nrt-probe-3", &[("net.bridge", &bridge), ("net.ip", "198.51.100.62/24")]).unwrap();
    assert_eq!(address_of(&second, "4"), "198.51.100.62");
    second.stop();
    first.stop();
    sh(&format!("ip -n {peer} addr del 2001:db8:ff::62/64 dev eth0"));
    // The marks outlive the containers, until the admin lifts them.
    let shown: Value = serde_json::from_str(&ok(cli(&format!("pool show {pool_name} --json")))).unwrap();
    assert_eq!(shown.as_array().unwrap().len(), 2, "only the marks: {shown}");
    let unreserved = ok(cli(&format!("pool unreserve {pool_name} 198.51.100.60 2001:db8:ff::60")));
    assert!(unreserved.contains("unreserved 2 addresses"), "{unreserved}");
    assert_same_host!(snapshot(&[&peer]), before);
    let _ = std::fs::remove_dir_all(&state);
    let _ = std::fs::remove_dir_all(&dir);
}
