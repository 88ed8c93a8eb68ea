//! What the LAN itself says about addresses: a pool that probes before use
//! never gives a container an address something on the wire answers for
//! (ARP probes, IPv6 duplicate address detection), through real runc, with
//! a LAN peer in a namespace of the test's that is not netrt's; and the
//! addresses of a node whose liveness is gone come back only where the LAN
//! is silent, while a node that comes back keeps what is still its own
//! (nodes as mount namespaces of this machine on one real etcd).

use std::time::{Duration, Instant};

use netrt_integration::cluster::{EtcdCluster, Node, Wire};
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
    let start = |id: &str, annotations: &[(&str, &str)]| start_with_hook_env(id, annotations, &[env.as_str()]);

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
    // The metrics count them, per pool and family, and pass promtool.
    let metrics = ok(cli("status --format prometheus"));
    for line in [
        format!("netrt_pool_in_use_on_the_wire_addresses{{pool=\"{pool_name}\",family=\"ipv4\"}} 1\n"),
        format!("netrt_pool_claimed_addresses{{pool=\"{pool_name}\",family=\"ipv6\"}} 2\n"),
        format!("netrt_pool_free_addresses{{pool=\"{pool_name}\",family=\"ipv4\"}} 2\n"),
        format!("netrt_pool_size_addresses{{pool=\"{pool_name}\",family=\"ipv4\"}} 4\n"),
    ] {
        assert!(metrics.contains(&line), "{line}{metrics}");
    }
    let checked =
        sh_output(&format!("{env} {} status --format prometheus | promtool check metrics", hook_binary().display()));
    assert!(checked.status.success(), "{}", String::from_utf8_lossy(&checked.stderr));

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

fn start_on(
    node: &Node,
    id: &str,
    annotations: &[(&str, &str)],
    poststop: bool,
) -> Result<(Container, Bundle), String> {
    let env = node.hook_env();
    let hook_env = [env.as_str()];
    let mut spec = BundleSpec { poststop, ..BundleSpec::isolated(annotations) };
    spec.hook_env = &hook_env;
    let bundle = Bundle::create(id, &spec);
    Container::start_on(&node.enter(), id, &bundle).map(|c| (c, bundle)).map_err(|e| e.replace('\\', ""))
}

fn node_config(node: &str, cluster: &EtcdCluster, bridge: &str) -> Value {
    json!({"node": node,
           "registry": {"etcd": {"endpoints": cluster.endpoints(), "prefix": "/it-reclaim/", "timeout": "5s",
                                 "node_ttl": "2s", "reclaim_after": "1s"}},
           "pools": {"lan": {"bridge": bridge, "subnets": ["198.51.100.0/24", "2001:db8:5::/64"],
                             "ranges": ["198.51.100.100-198.51.100.199", "2001:db8:5::100-2001:db8:5::1ff"],
                             "gateways": ["198.51.100.1"]}}})
}

#[test]
fn a_dead_nodes_silent_addresses_are_reclaimed_and_a_node_that_comes_back_keeps_its_own() {
    let mut cluster = EtcdCluster::start("reclaim", 1, 23930, None);
    let prefix = "/it-reclaim/";
    let a = Node::new("node-ra", "nrtrAbr", &node_config("node-ra", &cluster, "nrtrAbr"));
    let b = Node::new("node-rb", "nrtrBbr", &node_config("node-rb", &cluster, "nrtrBbr"));
    let _wire = Wire::join("nrtrw", &a, &b);
    let both = || a.snapshot() + &b.snapshot();
    let before = both();
    let pooled = [("net.pool", "lan")];
    // On node A: one container whose poststop never runs (it dies with its
    // node), two that live on, unseen by the registry.
    let (gone, _b0) = start_on(&a, "nrt-ra-gone", &pooled, false).unwrap();
    let (kept, _b1) = start_on(&a, "nrt-ra-kept", &pooled, true).unwrap();
    let (lost, _b2) = start_on(&a, "nrt-ra-lost", &pooled, true).unwrap();
    let kept_mac = {
        let links: Value = serde_json::from_slice(&kept.net_sh("ip -j link show eth0").stdout).unwrap();
        links[0]["address"].as_str().unwrap().to_string()
    };
    gone.stop();
    // Node A stops running netrt: its liveness key goes with its lease.
    let alive_a = |cluster: &EtcdCluster| cluster.dump(&format!("{prefix}alive/node-ra"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !alive_a(&cluster).is_empty() {
        assert!(Instant::now() < deadline, "node A's liveness outlived its lease");
        std::thread::sleep(Duration::from_millis(200));
    }
    // B's renewal run (the timer's; gc reclaims the same way, but the
    // nodes here share one kernel, and B's gc would take A's containers'
    // host devices for its own strays) notes A dead first; reclaim waits
    // reclaim_after from then.
    let first = ok(b.hook("renew"));
    assert!(!first.contains("reclaimed") && !first.contains("kept"), "{first}");
    assert!(ok(b.hook("pool show lan")).contains("node node-ra: dead"), "noted dead");
    let metrics = ok(b.hook("status --format prometheus"));
    assert!(metrics.contains("netrt_node_alive{node=\"node-ra\"} 0\n"), "{metrics}");
    std::thread::sleep(Duration::from_millis(1100));
    // Killed after its first reclaim, then run again: every address is
    // acted on once, none twice and none lost.
    let killed = sh_output(&format!(
        "{} env NETRT_CONFIG={} NETRT_FAULT_KILL=reclaim:1 {} renew",
        b.enter(),
        b.config.display(),
        fault_hook_binary().display()
    ));
    assert!(!killed.status.success(), "the fault build killed the run mid-reclaim");
    assert_eq!(cluster.dump(&format!("{prefix}nodes/node-ra/")).lines().count(), 10, "one of six acted on");
    // etcd goes down in the middle of the next run (paused after its first
    // address): the run says so, and what it had not done stays undone.
    let pause = std::env::temp_dir().join("netrt-it-reclaim-pause");
    let _ = std::fs::remove_file(&pause);
    let paused = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{} env NETRT_CONFIG={} NETRT_FAULT_PAUSE=reclaim:1:{} {} renew 2>&1",
            b.enter(),
            b.config.display(),
            pause.display(),
            fault_hook_binary().display()
        ))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !pause.exists() {
        assert!(Instant::now() < deadline, "the run did not reach its second address");
        std::thread::sleep(Duration::from_millis(20));
    }
    cluster.stop_member(0);
    std::fs::remove_file(&pause).unwrap();
    let said = String::from_utf8_lossy(&paused.wait_with_output().unwrap().stdout).into_owned();
    assert!(said.contains("dead nodes' addresses were not all reclaimed"), "{said}");
    cluster.restart_member(0);
    cluster.wait_quorum();
    assert_eq!(cluster.dump(&format!("{prefix}nodes/node-ra/")).lines().count(), 8, "two of six acted on");
    let second = ok(b.hook("renew"));
    let shown: Value = serde_json::from_str(&ok(b.hook("pool show lan --json"))).unwrap();
    let claims: Vec<(String, String)> = shown
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["address"].as_str().unwrap().to_string(), c["wire"].as_str().unwrap_or("-").to_string()))
        .collect();
    // The dead container's addresses are free; the living ones answered
    // and are marked in use on the wire with their MACs.
    let marked: Vec<&str> = claims.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(marked, ["198.51.100.101", "198.51.100.102", "2001:db8:5::101", "2001:db8:5::102"], "{shown}\n{second}");
    assert!(claims.iter().all(|(_, mac)| mac != "-"), "{shown}\n{second}");
    assert_eq!(claims[0].1, kept_mac, "{shown}");
    assert!(second.contains("kept 198.51.100.101 of pool lan from dead node node-ra"), "{second}");
    // pool show tells of the dead node: since when, what was taken back, what kept.
    let told = ok(b.hook("pool show lan"));
    for line in [
        "node node-ra: dead".to_string(),
        "  reclaimed 198.51.100.100 (container nrt-ra-gone on node node-ra), by node node-rb at ".to_string(),
        format!("  kept 198.51.100.101 (container nrt-ra-kept on node node-ra): it answered on the LAN from {kept_mac}, by node node-rb"),
    ] {
        assert!(told.contains(&line), "{line}\n{told}");
    }
    assert_eq!(cluster.dump(&format!("{prefix}nodes/node-ra/")), "", "node A holds nothing in the registry");
    // A new container on B gets a reclaimed address.
    let (b1, _bb1) = start_on(&b, "nrt-rb-1", &pooled, true).unwrap();
    let b4 = {
        let out = String::from_utf8_lossy(&b1.net_sh("ip -o -4 addr show eth0").stdout).into_owned();
        out.split_whitespace().nth(3).unwrap().split('/').next().unwrap().to_string()
    };
    assert!(["198.51.100.100", "198.51.100.103"].contains(&b4.as_str()), "{b4}");
    // The admin lifts the mark of .102 and gives it to a container on B by
    // hand while A's container still has it: A, back, finds the conflict.
    ok(b.hook("pool unreserve lan 198.51.100.102"));
    let (b2, _bb2) =
        start_on(&b, "nrt-rb-2", &[("net.bridge", "nrtrBbr"), ("net.ip", "198.51.100.102/24")], true).unwrap();
    ok(a.hook("renew"));
    assert!(!alive_a(&cluster).is_empty(), "A is alive again");
    let status: Value = serde_json::from_str(&ok(a.hook("status --json"))).unwrap();
    let entry = |id: &str| status.as_array().unwrap().iter().find(|e| e["id"] == id).cloned().unwrap();
    assert_eq!(entry("nrt-ra-kept").get("conflicts"), None, "its own address came back to it: {status}");
    let conflicts = entry("nrt-ra-lost")["conflicts"].clone();
    assert!(
        conflicts[0]
            .as_str()
            .unwrap()
            .starts_with("198.51.100.102 of pool lan is held by container nrt-rb-2 on node node-rb"),
        "{conflicts}"
    );
    let metrics = ok(a.hook("status --format prometheus"));
    assert!(metrics.contains("netrt_address_conflicts 1\n"), "{metrics}");
    assert!(metrics.contains("netrt_node_alive{node=\"node-ra\"} 1\n"), "{metrics}");
    let shown = ok(b.hook("pool show lan"));
    assert!(shown.contains("node node-ra: alive"), "{shown}");
    assert!(
        shown.contains(
            "conflict: container nrt-ra-lost on node node-ra has 198.51.100.102 of pool lan is held by container nrt-rb-2 on node node-rb"
        ),
        "{shown}"
    );
    assert!(!shown.contains("in use on the wire by ") || !shown.contains("198.51.100.101 "), "{shown}");
    // Everything goes: the containers, A's record of the dead one (gc).
    for c in [kept, lost, b1, b2] {
        c.stop();
    }
    ok(a.hook("gc"));
    ok(b.hook("pool unreserve lan 198.51.100.100-198.51.100.199 2001:db8:5::100-2001:db8:5::1ff"));
    assert_eq!(
        cluster.dump(&format!("{prefix}pools/lan/claims/"))
            + &cluster.dump(&format!("{prefix}nodes/"))
            + &cluster.dump(&format!("{prefix}conflicts/")),
        "",
        "no claim, and no conflict once its container is gone"
    );
    assert_same_host!(both(), before);
}
