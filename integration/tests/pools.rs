//! Address pools through real runc: cluster-wide on a real 3-member etcd
//! cluster with nodes that are mount namespaces of one machine (each its
//! own /run/netrt, runc state, configuration and bridge, the bridges wired
//! together as the LAN), and host-wide without a registry. Needs root,
//! Debian's etcd-server and etcd-client.

use std::time::{Duration, Instant};

use netrt_integration::cluster::{Certs, EtcdCluster, Node, Wire};
use netrt_integration::*;
use serde_json::{json, Value};

fn config(node: &str, registry: Option<Value>, pool_name: &str, pool: Value) -> Value {
    let mut config = json!({"node": node, "pools": {pool_name: pool}});
    if let Some(registry) = registry {
        config["registry"] = registry;
    }
    config
}

fn etcd(cluster: &EtcdCluster, prefix: &str, timeout: &str) -> Value {
    json!({"etcd": {"endpoints": cluster.endpoints(), "prefix": prefix, "timeout": timeout}})
}

fn lan_pool(bridge: &str) -> Value {
    json!({"bridge": bridge, "subnets": ["198.51.100.0/24", "2001:db8:5::/64"],
           "ranges": ["198.51.100.100-198.51.100.199", "2001:db8:5::100-2001:db8:5::1ff"],
           "gateways": ["198.51.100.1", "2001:db8:5::1"], "exclude": ["198.51.100.150"]})
}

/// Starts a container on a node; Err carries runc's output.
fn start_on(
    node: &Node,
    id: &str,
    annotations: &[(&str, &str)],
    hook: Option<(&std::path::Path, &str)>,
) -> Result<(Container, Bundle), String> {
    start_with_poststop(node, id, annotations, hook, true)
}

/// As `start_on`; without `poststop`, runc runs no poststop, not even
/// after a failed start, so what a killed hook left is there to see.
fn start_with_poststop(
    node: &Node,
    id: &str,
    annotations: &[(&str, &str)],
    hook: Option<(&std::path::Path, &str)>,
    poststop: bool,
) -> Result<(Container, Bundle), String> {
    let env = node.hook_env();
    let fault;
    let mut hook_env = vec![env.as_str()];
    let mut spec = BundleSpec { poststop, ..BundleSpec::isolated(annotations) };
    if let Some((binary, point)) = hook {
        fault = format!("NETRT_FAULT_KILL={point}");
        hook_env.push(fault.as_str());
        spec.hook = binary.to_path_buf();
    }
    spec.hook_env = &hook_env;
    let bundle = Bundle::create(id, &spec);
    // runc quotes the hook's message: its backslashes go, so it reads as netrt wrote it.
    Container::start_on(&node.enter(), id, &bundle).map(|c| (c, bundle)).map_err(|e| e.replace('\\', ""))
}

fn address_of(container: &Container, family: &str) -> String {
    let out =
        String::from_utf8_lossy(&container.net_sh(&format!("ip -o -{family} addr show eth0 scope global")).stdout)
            .into_owned();
    let word = out
        .split_whitespace()
        .skip_while(|w| *w != "inet" && *w != "inet6")
        .nth(1)
        .unwrap_or_else(|| panic!("no address: {out}"));
    word.split('/').next().unwrap().to_string()
}

fn text(output: std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

fn ok(output: std::process::Output) -> String {
    let success = output.status.success();
    let text = text(output);
    assert!(success, "{text}");
    text
}

/// The claims under a prefix in etcd, one `key value` pair per two lines.
fn claims_in(cluster: &EtcdCluster, prefix: &str) -> String {
    cluster.dump(&format!("{prefix}pools/lan/claims/")) + &cluster.dump(&format!("{prefix}nodes/"))
}

#[test]
fn two_nodes_share_one_pool_and_reach_each_other() {
    let cluster = EtcdCluster::start("flat", 3, 23790, None);
    let prefix = "/it-flat/";
    let a = Node::new(
        "node-a",
        "nrtpAbr",
        &config("node-a", Some(etcd(&cluster, prefix, "2s")), "lan", lan_pool("nrtpAbr")),
    );
    // Host B's bridge has another name: the attachment is each node's own.
    let b = Node::new(
        "node-b",
        "nrtpBbr",
        &config("node-b", Some(etcd(&cluster, prefix, "2s")), "lan", lan_pool("nrtpBbr")),
    );
    let _wire = Wire::join("nrtpw", &a, &b);
    let rules: Vec<_> = [&a.bridge, &b.bridge].iter().filter_map(|br| allow_forwarding(br)).collect();
    let both = || a.snapshot() + &b.snapshot();
    let before = both();

    let (a1, _ba1) = start_on(&a, "nrt-pool-a1", &[("net.pool", "lan")], None).unwrap();
    let (b1, _bb1) = start_on(&b, "nrt-pool-b1", &[("net.pool", "lan")], None).unwrap();
    let (a4, a6) = (address_of(&a1, "4"), address_of(&a1, "6"));
    let (b4, b6) = (address_of(&b1, "4"), address_of(&b1, "6"));
    assert_eq!((a4.as_str(), a6.as_str()), ("198.51.100.100", "2001:db8:5::100"), "the first of each range");
    assert_eq!((b4.as_str(), b6.as_str()), ("198.51.100.101", "2001:db8:5::101"), "node B continues after node A's");
    let routes = text(a1.net_sh("ip route; ip -6 route"));
    assert!(
        routes.contains("default via 198.51.100.1 dev eth0") && routes.contains("default via 2001:db8:5::1 dev eth0"),
        "{routes}"
    );
    // The flat network: across the two hosts' bridges, both families.
    ok(a1.net_sh(&format!("busybox ping -c 1 -W 2 {b4}")));
    ok(b1.net_sh(&format!("busybox ping -6 -c 1 -W 2 {a6}")));

    // Node A's address, asked for statically on node B: refused, naming both.
    let refused = start_on(&b, "nrt-pool-b2", &[("net.bridge", "nrtpBbr"), ("net.ip", &format!("{a4}/24"))], None)
        .err()
        .expect("refused");
    assert!(
        refused.contains(&format!(
            "net.ip=\"{a4}/24\": {a4} is already held by container nrt-pool-a1 on node node-a (pool lan)"
        )),
        "{refused}"
    );
    let status = ok(a.hook("status"));
    assert!(status.contains(&format!("{a4}/24 (pool lan, node node-a)")), "{status}");
    let shown = ok(a.hook("pool show lan --json"));
    let shown: Value = serde_json::from_str(&shown).unwrap();
    let holders: Vec<(&str, &str)> = shown
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["container"].as_str().unwrap(), c["node"].as_str().unwrap()))
        .collect();
    assert_eq!(
        holders,
        [("nrt-pool-a1", "node-a"), ("nrt-pool-b1", "node-b"), ("nrt-pool-a1", "node-a"), ("nrt-pool-b1", "node-b")]
    );
    let listed = ok(b.hook("pool list"));
    assert!(
        listed.lines().any(|l| l.starts_with("lan") && l.contains("ipv4") && l.contains(" 2 ") && l.contains(" 97 ")),
        "99 addresses less 2 claimed: {listed}"
    );

    // A node whose pool differs from what node A registered is refused.
    let mut other = lan_pool("nrtpCbr");
    other["ranges"] = json!(["198.51.100.10-198.51.100.19", "2001:db8:5::100-2001:db8:5::1ff"]);
    let c = Node::new("node-c", "nrtpCbr", &config("node-c", Some(etcd(&cluster, prefix, "2s")), "lan", other));
    let refused = start_on(&c, "nrt-pool-c1", &[("net.pool", "lan")], None).err().expect("refused");
    assert!(refused.contains("differs from what node node-a registered"), "{refused}");
    drop(c);

    a1.stop();
    b1.stop();
    assert_eq!(claims_in(&cluster, prefix), "", "stopped containers hold nothing in etcd");
    assert_same_host!(both(), before, "nothing of the containers is left on the host or in either node's /run/netrt");
    for rule in rules {
        sh_quiet(&format!("iptables -D {rule}"));
    }
}

#[test]
fn sixty_containers_in_parallel_on_three_nodes_get_sixty_distinct_addresses() {
    // The members' data on a tmpfs: twenty setups queue on each node's
    // lock, each waiting for etcd's commits. What is tested here is
    // uniqueness under parallel starts; what the disk costs is benchmarked.
    let cluster = EtcdCluster::start_in(std::path::Path::new("/dev/shm"), "sixty", 3, 23810, None);
    let prefix = "/it-sixty/";
    // 62 addresses in the range, two excluded: exactly 60 free.
    let pool = |bridge: &str| {
        json!({"bridge": bridge, "subnets": ["198.51.100.0/24"], "ranges": ["198.51.100.10-198.51.100.71"],
               "gateways": ["198.51.100.1"], "exclude": ["198.51.100.20", "198.51.100.30"]})
    };
    let nodes: Vec<Node> = (0..3)
        .map(|i| {
            let name = format!("node-{i}");
            let bridge = format!("nrts{i}br");
            Node::new(&name, &bridge, &config(&name, Some(etcd(&cluster, prefix, "5s")), "lan", pool(&bridge)))
        })
        .collect();
    let started: Vec<(Container, Bundle, String)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..60)
            .map(|i| {
                let node = &nodes[i % 3];
                scope.spawn(move || {
                    let id = format!("nrt-sixty-{i}");
                    let (container, bundle) =
                        start_on(node, &id, &[("net.pool", "lan")], None).unwrap_or_else(|e| panic!("{id}: {e}"));
                    let address = address_of(&container, "4");
                    (container, bundle, address)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut addresses: Vec<u32> =
        started.iter().map(|(_, _, a)| u32::from(a.parse::<std::net::Ipv4Addr>().unwrap())).collect();
    addresses.sort();
    addresses.dedup();
    assert_eq!(addresses.len(), 60, "all distinct");
    let (first, last) =
        (u32::from(std::net::Ipv4Addr::new(198, 51, 100, 10)), u32::from(std::net::Ipv4Addr::new(198, 51, 100, 71)));
    assert!(addresses.iter().all(|a| (first..=last).contains(a)), "inside the range");
    for excluded in [20u8, 30] {
        assert!(
            !addresses.contains(&u32::from(std::net::Ipv4Addr::new(198, 51, 100, excluded))),
            "198.51.100.{excluded} is excluded"
        );
    }
    let refused = start_on(&nodes[0], "nrt-sixty-61", &[("net.pool", "lan")], None).err().expect("the 61st is refused");
    assert!(refused.contains("net.pool=\"lan\": pool lan has no free IPv4 address: ranges 198.51.100.10-198.51.100.71 (62 addresses, 60 claimed or reserved)"), "{refused}");
    std::thread::scope(|scope| {
        for (container, bundle, _) in started {
            scope.spawn(move || {
                container.stop();
                drop(bundle);
            });
        }
    });
    assert_eq!(claims_in(&cluster, prefix), "");
}

#[test]
fn members_down_refusals_and_releases_that_wait_for_the_registry() {
    let mut cluster = EtcdCluster::start("faults", 3, 23830, None);
    let prefix = "/it-faults/";
    let node = Node::new(
        "node-f",
        "nrtpFbr",
        &config("node-f", Some(etcd(&cluster, prefix, "1s")), "lan", lan_pool("nrtpFbr")),
    );
    let before = node.snapshot();

    // One member down: the other two still make a quorum (once they have
    // a leader: losing the leader costs etcd an election of about a second).
    cluster.stop_member(2);
    cluster.wait_quorum();
    let (f1, _bf1) = start_on(&node, "nrt-fault-1", &[("net.pool", "lan")], None).expect("starts with one member down");
    let running = node.snapshot();

    // Two down: no quorum. Refused, naming the timeout, nothing left. (A
    // hang limit only: how soon is the benchmark's to say.)
    cluster.stop_member(1);
    let started = Instant::now();
    let refused = start_on(&node, "nrt-fault-2", &[("net.pool", "lan")], None).err().expect("refused without quorum");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(15), "refused after {took:?}: the registry's timeout is 1 s");
    assert!(
        refused.contains(
            "net.pool=\"lan\": the address registry did not answer within 1s (etcd at http://127.0.0.1:23830"
        ),
        "{refused}"
    );
    assert_same_host!(node.snapshot(), running, "the refused container left nothing on the host");

    // Teardown without a registry: the host is clean when it returns, the
    // release waits in the node's /run/netrt, and that is all that is left.
    let seen = f1.stop_then(|| node.snapshot());
    let pending = "file /run/netrt/pending-releases/nrt-fault-1 f \n";
    assert!(seen.contains(pending), "the release waits: {seen}");
    assert_same_host!(seen.replace(pending, ""), before, "the host is clean the moment delete returns");

    cluster.restart_member(1);
    cluster.restart_member(2);
    cluster.wait_quorum();
    assert!(
        cluster.dump(&format!("{prefix}nodes/node-f/nrt-fault-1/")).contains("nrt-fault-1"),
        "the claim waits for the release"
    );
    let gc = ok(node.hook("gc"));
    assert!(gc.contains("released 198.51.100.100 of pool lan (container nrt-fault-1, left pending)"), "{gc}");
    assert_eq!(claims_in(&cluster, prefix), "", "no claim of either container is left in etcd");
    assert_same_host!(node.snapshot(), before, "the pending release is gone with it");
}

#[test]
fn a_hook_killed_while_claiming_or_releasing_leaves_no_claim_after_gc() {
    let fault_hook = fault_hook_binary();
    let cluster = EtcdCluster::start("kill", 3, 23850, None);
    let prefix = "/it-kill/";
    let node = Node::new(
        "node-k",
        "nrtpKbr",
        &config("node-k", Some(etcd(&cluster, prefix, "2s")), "lan", lan_pool("nrtpKbr")),
    );
    let before = node.snapshot();
    let record_left = |id: &str| node.sh(&format!("test -e /run/netrt/containers/{id}.partial")).status.success();
    let claims_of =
        |id: &str| cluster.dump(&format!("{prefix}pools/lan/claims/")).lines().filter(|l| l.contains(id)).count();
    // gc leaves no claim and nothing on the host, and the same address can
    // be had again.
    let gc_cleans_up = |point: &str, id: &str, address: &str| {
        ok(node.hook("gc"));
        assert_eq!(
            claims_in(&cluster, prefix),
            "",
            "after a kill at {point} and gc, etcd holds no claim of the container"
        );
        assert_same_host!(node.snapshot(), before, "after a kill at {point} and gc");
        let (again, _b) = start_on(&node, id, &[("net.pool", "lan"), ("net.ip", address)], None).expect("starts again");
        again.stop();
    };
    // claim:0 is after the write-ahead record and before any claim;
    // claim:1 after both families are claimed.
    for (point, claims_left) in [("claim:0", 0), ("claim:1", 2)] {
        let id = "nrt-kill-c";
        let failed = start_with_poststop(&node, id, &[("net.pool", "lan")], Some((&fault_hook, point)), false)
            .err()
            .expect("the hook killed fails the start");
        assert!(failed.contains("signal: killed"), "the hook was killed at {point}: {failed}");
        assert!(record_left(id), "the hook killed at {point} left its partial record");
        assert_eq!(
            claims_of(id),
            claims_left,
            "claims in etcd after a kill at {point}:\n{}",
            claims_in(&cluster, prefix)
        );
        gc_cleans_up(point, id, "198.51.100.100/24");
    }
    // release:N is teardown's, before the Nth of the two claims goes: the
    // host is clean by then, and the record still says what to release.
    for (point, claims_left) in [("release:0", 2), ("release:1", 1)] {
        let id = "nrt-kill-r";
        let (container, _bundle) =
            start_on(&node, id, &[("net.pool", "lan")], Some((&fault_hook, point))).expect("starts");
        container.stop();
        assert_eq!(
            claims_of(id),
            claims_left,
            "claims in etcd after a kill at {point}:\n{}",
            claims_in(&cluster, prefix)
        );
        let records = node.sh(&format!("test -e /run/netrt/containers/{id}.json"));
        assert!(records.status.success(), "the teardown killed at {point} kept the record");
        gc_cleans_up(point, id, "198.51.100.101/24");
    }
}

#[test]
fn release_node_frees_every_claim_of_a_vanished_node_and_tls_with_client_certificates() {
    let dir = std::env::temp_dir().join("netrt-it-etcd-tls-certs");
    let certs = Certs::make(&dir);
    let cluster = EtcdCluster::start("tls", 3, 23870, Some(&certs));
    let prefix = "/it-tls/";
    // This test is about TLS, not about time: a loaded runner once needed
    // more than 2 s for the first handshake and claims, so it waits longer.
    let registry = json!({"etcd": {"endpoints": cluster.endpoints(), "prefix": prefix, "timeout": "10s",
        "ca": certs.ca, "cert": certs.client_cert, "key": certs.client_key}});
    let gone =
        Node::new("node-gone", "nrtpGbr", &config("node-gone", Some(registry.clone()), "lan", lan_pool("nrtpGbr")));
    let (g1, _bg1) =
        start_on(&gone, "nrt-tls-g1", &[("net.pool", "lan")], None).expect("starts over TLS with a client certificate");
    let (g2, _bg2) = start_on(&gone, "nrt-tls-g2", &[("net.pool", "lan")], None).unwrap();
    assert!(cluster.dump(&format!("{prefix}nodes/node-gone/")).contains("nrt-tls-g2"));

    // Without a client certificate, etcd refuses the node: the start too.
    let mut anonymous = registry.clone();
    anonymous["etcd"].as_object_mut().unwrap().retain(|k, _| k != "cert" && k != "key");
    let stranger = Node::new("node-x", "nrtpXbr", &config("node-x", Some(anonymous), "lan", lan_pool("nrtpXbr")));
    let before = stranger.snapshot();
    let refused = start_on(&stranger, "nrt-tls-x1", &[("net.pool", "lan")], None)
        .err()
        .expect("refused without a client certificate");
    assert!(refused.contains("net.pool=\"lan\": etcd refused the TLS session"), "{refused}");
    assert_same_host!(stranger.snapshot(), before, "the refused node left nothing, no pending release either");
    assert_eq!(cluster.dump(&format!("{prefix}nodes/node-x/")), "", "and nothing in etcd");

    let other = Node::new("node-o", "nrtpObr", &config("node-o", Some(registry), "lan", lan_pool("nrtpObr")));
    let released = ok(other.hook("pool release --node node-gone"));
    assert_eq!(released.lines().count(), 4, "two containers, two families: {released}");
    assert_eq!(cluster.dump(&format!("{prefix}nodes/node-gone/")), "");
    let (o1, _bo1) = start_on(&other, "nrt-tls-o1", &[("net.pool", "lan"), ("net.ip", "198.51.100.100/24")], None)
        .expect("the vanished node's address can be had again");
    o1.stop();
    g1.stop();
    g2.stop();
    assert_eq!(claims_in(&cluster, prefix), "");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn host_wide_pools_without_a_registry() {
    let lan = Lan::bridge("hp");
    let bridge = lan.bridge.clone().unwrap();
    let pool_name = "it-host-pool";
    let dir = std::env::temp_dir().join("netrt-it-host-pool");
    std::fs::create_dir_all(&dir).unwrap();
    let config_path = dir.join("netrt.json");
    let pool = json!({"bridge": bridge, "subnets": ["198.51.100.0/24"], "ranges": ["198.51.100.40-198.51.100.45"],
                      "gateways": ["198.51.100.1"], "exclude": ["198.51.100.42"]});
    std::fs::write(&config_path, json!({"node": "solo", "pools": {pool_name: pool}}).to_string()).unwrap();
    let state = std::path::Path::new("/var/lib/netrt/pools").join(pool_name);
    let _ = std::fs::remove_dir_all(&state);
    let env = format!("NETRT_CONFIG={}", config_path.display());
    let cli = |arguments: &str| sh_output(&format!("{env} {} {arguments}", hook_binary().display()));
    ok(cli(&format!("pool reserve {pool_name} 198.51.100.45 --note router")));
    let before = snapshot(&[&lan.peer_ns]);
    let annotations = [("net.pool", pool_name)];
    let start = |id: &str, annotations: &[(&str, &str)]| start_with_hook_env(id, annotations, &[env.as_str()]);
    // Six in the range, one excluded, one reserved: four, started at once.
    let started: Vec<(Container, Bundle)> = std::thread::scope(|scope| {
        let handles: Vec<_> =
            (0..4).map(|i| scope.spawn(move || start(&format!("nrt-hpool-{i}"), &annotations).unwrap())).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut addresses: Vec<String> = started.iter().map(|(c, _)| address_of(c, "4")).collect();
    addresses.sort();
    assert_eq!(addresses, ["198.51.100.40", "198.51.100.41", "198.51.100.43", "198.51.100.44"]);
    let refused = start("nrt-hpool-5", &annotations).err().expect("full");
    assert!(refused.contains(&format!("pool {pool_name} has no free IPv4 address")), "{refused}");
    let refused =
        start("nrt-hpool-6", &[("net.bridge", &bridge), ("net.ip", "198.51.100.45/24")]).err().expect("reserved");
    assert!(refused.contains(&format!("198.51.100.45 is reserved (router) in pool {pool_name}")), "{refused}");
    // A pool's gateway is never given either, even asked for without the pool.
    let refused =
        start("nrt-hpool-7", &[("net.bridge", &bridge), ("net.ip", "198.51.100.1/24")]).err().expect("the gateway");
    assert!(refused.contains(&format!("198.51.100.1 is pool {pool_name}'s gateway")), "{refused}");
    let listed = ok(cli("pool list --json"));
    let listed: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed[0]["families"][0]["free"], "0");
    assert_eq!(listed[0]["families"][0]["used"], 5);
    for (container, _) in started {
        container.stop();
    }
    assert_same_host!(snapshot(&[&lan.peer_ns]), before);
    ok(cli(&format!("pool unreserve {pool_name} 198.51.100.40-198.51.100.45")));
    let shown: Value = serde_json::from_str(&ok(cli(&format!("pool show {pool_name} --json")))).unwrap();
    assert_eq!(shown, json!([]), "no claim and no reservation is left");
    let _ = std::fs::remove_dir_all(&state);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn etcd_user_authentication_with_a_password_file_over_tls_and_credential_checks() {
    // A password goes only over https to members whose certificate netrt
    // checks. The members also ask for a client certificate; etcd takes
    // the password's user over the certificate's name.
    let certs_dir = std::env::temp_dir().join("netrt-it-etcd-auth-certs");
    let certs = Certs::make(&certs_dir);
    let cluster = EtcdCluster::start("auth", 3, 23890, Some(&certs));
    let prefix = "/it-auth/";
    for command in [
        "user add root:rootpw",
        "user add netrt:s3cret",
        "role add netrt",
        "role grant-permission netrt --prefix=true readwrite /it-auth/",
        "user grant-role netrt netrt",
        "auth enable",
    ] {
        cluster.etcdctl(command);
    }
    let dir = std::env::temp_dir().join("netrt-it-etcd-auth-secret");
    std::fs::create_dir_all(&dir).unwrap();
    let (good, bad, open) = (dir.join("password"), dir.join("wrong"), dir.join("open"));
    std::fs::write(&good, "s3cret\n").unwrap();
    std::fs::write(&bad, "guess\n").unwrap();
    std::fs::write(&open, "s3cret\n").unwrap();
    sh(&format!("chmod 600 {} {}; chmod 644 {}", good.display(), bad.display(), open.display()));
    let registry = |file: &std::path::Path| {
        json!({"etcd": {"endpoints": cluster.endpoints(), "prefix": prefix, "timeout": "10s", "user": "netrt",
                        "password_file": file, "ca": certs.ca, "cert": certs.client_cert, "key": certs.client_key}})
    };
    let node = Node::new("node-u", "nrtpUbr", &config("node-u", Some(registry(&good)), "lan", lan_pool("nrtpUbr")));
    let (u1, _bu1) = start_on(&node, "nrt-auth-u1", &[("net.pool", "lan")], None).expect("starts as etcd user netrt");
    let held = cluster.etcdctl(&format!("--user root:rootpw get --prefix {prefix}nodes/"));
    assert!(held.contains("nrt-auth-u1"), "{held}");
    let wrong = Node::new("node-w", "nrtpWbr", &config("node-w", Some(registry(&bad)), "lan", lan_pool("nrtpWbr")));
    let refused =
        start_on(&wrong, "nrt-auth-w1", &[("net.pool", "lan")], None).err().expect("a wrong password is refused");
    assert!(
        refused.contains("net.pool=\"lan\": etcd refused") && refused.contains("authentication failed"),
        "{refused}"
    );

    // Refused when the configuration is read, before anything is sent:
    // a password over http, a password file others can read, a client key
    // others can read. Each leaves the node as it was and etcd untouched.
    let mut over_http = registry(&good);
    over_http["etcd"]["endpoints"] = json!(["http://127.0.0.1:23890"]);
    let open_password = registry(&open);
    let open_key = dir.join("client.key");
    std::fs::copy(&certs.client_key, &open_key).unwrap();
    sh(&format!("chmod 644 {}", open_key.display()));
    let mut with_open_key = registry(&good);
    with_open_key["etcd"]["key"] = json!(open_key);
    let cases = [
        (over_http, "registry.etcd: user \"netrt\": a password goes only over https, and endpoint http://127.0.0.1:23890 is http".to_string()),
        (open_password, format!("registry.etcd: password_file {}: mode 0644 lets group or others at it: a secret must be root's alone (chmod 600)", open.display())),
        (with_open_key, format!("registry.etcd: key {}: mode 0644 lets group or others at it", open_key.display())),
    ];
    for (registry, expected) in cases {
        let node = Node::new("node-c", "nrtpCbr", &config("node-c", Some(registry), "lan", lan_pool("nrtpCbr")));
        let before = node.snapshot();
        let refused = start_on(&node, "nrt-auth-c1", &[("net.pool", "lan")], None).err().expect("refused at load");
        assert!(refused.contains(&expected), "expected {expected} in: {refused}");
        assert_same_host!(node.snapshot(), before, "a refused configuration leaves nothing");
    }
    assert_eq!(cluster.etcdctl(&format!("--user root:rootpw get --prefix {prefix}nodes/node-c/")), "");

    u1.stop();
    assert_eq!(cluster.etcdctl(&format!("--user root:rootpw get --prefix {prefix}pools/lan/claims/")), "");
    assert_eq!(cluster.etcdctl(&format!("--user root:rootpw get --prefix {prefix}nodes/")), "");
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&certs_dir);
}

/// A node's liveness in the registry: a key on an etcd lease of
/// `node_ttl`, kept by the node's runs that reach the registry (setup,
/// teardown, gc) and by `renew` (its 30 s timer); without them it lapses,
/// and `pool nodes` and `pool show` say so. The next run puts it back.
#[test]
fn a_nodes_liveness_lives_on_its_runs_and_lapses_without_them() {
    let cluster = EtcdCluster::start("live", 1, 23910, None);
    let prefix = "/it-live/";
    let registry =
        json!({"etcd": {"endpoints": cluster.endpoints(), "prefix": prefix, "timeout": "5s", "node_ttl": "2s"}});
    let node = Node::new("node-l", "nrtpLbr", &config("node-l", Some(registry), "lan", lan_pool("nrtpLbr")));
    let before = node.snapshot();
    let nodes = || -> Value { serde_json::from_str(&ok(node.hook("pool nodes --json"))).unwrap() };
    let alive_key = || cluster.dump(&format!("{prefix}alive/"));

    let (c1, _b1) = start_on(&node, "nrt-live-1", &[("net.pool", "lan")], None).expect("starts");
    assert!(alive_key().contains(&format!("{prefix}alive/node-l")), "{}", alive_key());
    let listed = nodes();
    assert_eq!(listed[0]["node"], "node-l", "{listed}");
    assert!(listed[0]["alive_since"].as_u64().is_some(), "alive: {listed}");
    assert!(ok(node.hook("pool show lan")).contains("node node-l: alive"));

    // No run for longer than node_ttl: the key goes with its lease. (Waited
    // for as it happens; etcd expires leases within about a second.)
    let deadline = Instant::now() + Duration::from_secs(20);
    while !alive_key().is_empty() {
        assert!(Instant::now() < deadline, "the liveness key outlived its lease: {}", alive_key());
        std::thread::sleep(Duration::from_millis(200));
    }
    let listed = nodes();
    assert_eq!(listed, json!([{"node": "node-l", "alive_since": null}]), "gone, its claims still there");
    assert!(ok(node.hook("pool show lan")).contains("node node-l: no liveness key"));

    // The renewal timer's run puts it back, on a new lease.
    let lease_before = node.sh("cat /run/netrt/liveness");
    ok(node.hook("renew"));
    assert!(alive_key().contains("node-l"), "renew refreshed the liveness");
    assert_ne!(node.sh("cat /run/netrt/liveness").stdout, lease_before.stdout, "on a new lease");
    // A run asks again only once a third of node_ttl has passed since the
    // last refresh; then a setup renews the lease rather than replacing it.
    let refreshed_at = || -> f64 {
        String::from_utf8_lossy(&node.sh("stat -c %.9Y /run/netrt/liveness").stdout).trim().parse().unwrap()
    };
    let lease = node.sh("cat /run/netrt/liveness").stdout;
    let last = refreshed_at();
    let now = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    while now() < last + 0.8 {
        std::thread::sleep(Duration::from_millis(50));
    }
    let (c2, _b2) = start_on(&node, "nrt-live-2", &[("net.pool", "lan")], None).expect("starts");
    assert!(refreshed_at() > last, "the setup refreshed the liveness");
    assert_eq!(node.sh("cat /run/netrt/liveness").stdout, lease, "by renewing its lease");
    assert!(alive_key().contains("node-l"));
    c1.stop();
    c2.stop();
    assert_same_host!(node.snapshot(), before, "the liveness lease is the node's, not a container's");
    assert_eq!(claims_in(&cluster, prefix), "");
}
