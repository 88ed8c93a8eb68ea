//! Who may ask for what, through real runc: a pod's sandbox is a bundle
//! carrying the marks containerd's CRI plugin gives it
//! (`io.kubernetes.cri.container-type=sandbox` and the pod's namespace), as
//! the hook sees it in the bundle's config.json. With no configuration file a
//! pod gets limits only; an admin-defined network (a pool with
//! `namespaces`) is the way in; a local container keeps every key. Every
//! refusal names key, value and rule, and leaves the host as it was.

use netrt_integration::*;
use serde_json::{json, Value};

const NAMESPACE_KEY: &str = "io.kubernetes.cri.sandbox-namespace";
const TYPE_KEY: &str = "io.kubernetes.cri.container-type";

/// Starts a container whose hook reads the configuration file `config`.
fn start(id: &str, config: &str, annotations: &[(&str, &str)], env: &[&str]) -> Result<(Container, Bundle), String> {
    let hook_env = [format!("NETRT_CONFIG={config}")];
    let hook_env: Vec<&str> = hook_env.iter().map(String::as_str).collect();
    let mut spec = BundleSpec::isolated(annotations);
    spec.hook_env = &hook_env;
    spec.env = env;
    let bundle = Bundle::create(id, &spec);
    Container::start(id, &bundle).map(|c| (c, bundle)).map_err(|e| e.replace('\\', ""))
}

/// A pod sandbox's annotations: the runtime's marks and the pod's own.
fn pod<'a>(namespace: &'a str, own: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut all = vec![(TYPE_KEY, "sandbox"), (NAMESPACE_KEY, namespace)];
    all.extend_from_slice(own);
    all
}

fn ipv4_of(container: &Container, ifname: &str) -> Option<String> {
    let out = container.net_sh(&format!("ip -o -4 addr show {ifname} scope global"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let word = text.split_whitespace().skip_while(|w| *w != "inet").nth(1)?;
    Some(word.split('/').next()?.to_string())
}

fn ok(output: std::process::Output) -> String {
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn host_veth_qdiscs(id: &str) -> String {
    sh(&format!("tc qdisc show dev {}", netrt_hook::kernel::names::host_veth_name(id)))
}

#[test]
fn with_no_configuration_a_pod_gets_limits_only_and_a_local_container_every_key() {
    let lan = Lan::bridge("tru");
    let bridge = lan.bridge.clone().unwrap();
    let none = "/nonexistent/netrt.json";
    let before = snapshot(&[&lan.peer_ns]);

    // The LAN peer's address (as a gateway's would be) with a chosen MAC.
    let takeover = [("net.bridge", bridge.as_str()), ("net.ip", "198.51.100.1/24"), ("net.mac", "00:11:22:33:44:55")];
    let refused = start("nrt-tr-pod", none, &pod("tenant", &takeover), &[]).err().expect("a pod is refused");
    assert!(
        refused.contains(&format!(
            "net.bridge=\"{bridge}\": a pod of namespace tenant may only use networks the admin defined \
             (trust.pods \"networks\" in {none}); ask for one with net.pool"
        )),
        "{refused}"
    );
    // Settings are checked in key order: the first raw key is the one named.
    let takeovers = [
        (&[("net.parent", "eth0"), ("net.macvlan.mode", "passthru")][..], "net.macvlan.mode=\"passthru\""),
        (&[("net.parent", "eth0"), ("net.vlan", "1")], "net.parent=\"eth0\""),
    ];
    for (raw, named) in takeovers {
        let refused = start("nrt-tr-raw", none, &pod("tenant", raw), &[]).err().expect("raw keys are refused");
        assert!(refused.contains(&format!("{named}: a pod of namespace tenant may only use networks")), "{refused}");
    }
    assert_same_host!(snapshot(&[&lan.peer_ns]), before, "the refused pods left nothing");

    // The same keys from a local container: root on the host already.
    let local = [("net.bridge", bridge.as_str()), ("net.ip", "198.51.100.77/24")];
    let (container, _bundle) = start("nrt-tr-local", none, &local, &[]).expect("a local container keeps every key");
    assert_eq!(ipv4_of(&container, "eth0").as_deref(), Some("198.51.100.77"));
    container.stop();
    assert_same_host!(snapshot(&[&lan.peer_ns]), before);
}

#[test]
fn a_pod_uses_the_network_open_to_its_namespace_and_nothing_else() {
    let lan = Lan::bridge("trn");
    let bridge = lan.bridge.clone().unwrap();
    let pool_name = "it-trust-lan";
    let dir = std::env::temp_dir().join("netrt-it-trust");
    std::fs::create_dir_all(&dir).unwrap();
    let state = std::path::Path::new("/var/lib/netrt/pools").join(pool_name);
    let _ = std::fs::remove_dir_all(&state);
    let pool = json!({"bridge": bridge, "subnets": ["198.51.100.0/24"], "ranges": ["198.51.100.60-198.51.100.69"],
                      "gateways": ["198.51.100.1"], "namespaces": ["team-a"], "static": true,
                      "max_rate": "50mbit"});
    let config = dir.join("netrt.json");
    std::fs::write(&config, json!({"node": "solo", "pools": {pool_name: pool}}).to_string()).unwrap();
    let config = config.display().to_string();
    let before = snapshot(&[&lan.peer_ns]);

    // Open to team-a: an address from the pool, the LAN reachable, and
    // the pod's variable NETRT_INGRESS does not count (no tbf at the root
    // of the host veth, which is where ingress would be shaped).
    let asked = [("net.pool", pool_name), ("net.egress", "10mbit")];
    let (a, _bundle_a) = start("nrt-tr-a", &config, &pod("team-a", &asked), &["NETRT_INGRESS=5mbit"])
        .expect("team-a may use the network");
    let address = ipv4_of(&a, "eth0").expect("an address from the pool");
    assert!(address.starts_with("198.51.100.6"), "{address}");
    assert!(a.net_sh(&format!("busybox ping -c 1 -W 2 {LAN_PEER4}")).status.success(), "the pod reaches the LAN");
    let qdiscs = host_veth_qdiscs("nrt-tr-a");
    assert!(qdiscs.contains("ingress") && !qdiscs.contains("tbf"), "egress shaped, the variable ignored: {qdiscs}");
    // A static address inside the ranges: the pool says static.
    let chosen = [("net.pool", pool_name), ("net.ip", "198.51.100.66/24")];
    let (a2, _bundle_a2) = start("nrt-tr-a2", &config, &pod("team-a", &chosen), &[]).expect("static: true");
    assert_eq!(ipv4_of(&a2, "eth0").as_deref(), Some("198.51.100.66"));
    let running = snapshot(&[&lan.peer_ns]);

    let refusals = [
        ("team-c", vec![("net.pool", pool_name)], format!("net.pool=\"{pool_name}\": network {pool_name} is not open to a pod of namespace team-c (its namespaces in {config}: team-a)")),
        ("team-a", vec![("net.pool", pool_name), ("net.mac", "00:11:22:33:44:55")], "net.mac=\"00:11:22:33:44:55\": a pod of namespace team-a may only use networks".to_string()),
        ("team-a", vec![("net.pool", pool_name), ("net.ip", "198.51.100.5/24")], format!("198.51.100.5 is outside network {pool_name}'s ranges")),
        ("team-a", vec![("net.bridge", bridge.as_str()), ("net.ip", "198.51.100.61/24")], format!("net.bridge=\"{bridge}\": a pod of namespace team-a may only use networks")),
    ];
    let refusals = refusals.into_iter().chain([(
        "team-a",
        vec![("net.pool", pool_name), ("net.egress", "100mbit")],
        format!("net.egress=\"100mbit\": above network {pool_name}'s max_rate of 50mbit"),
    )]);
    for (namespace, own, expected) in refusals {
        let refused = start("nrt-tr-x", &config, &pod(namespace, &own), &[]).err().expect("refused");
        assert!(refused.contains(&expected), "{own:?}: {refused}");
        assert_same_host!(snapshot(&[&lan.peer_ns]), running, "a refusal leaves nothing: {own:?}");
    }
    a.stop();
    a2.stop();
    assert_same_host!(snapshot(&[&lan.peer_ns]), before);
    let env = format!("NETRT_CONFIG={config}");
    let shown: Value = serde_json::from_str(&ok(sh_output(&format!(
        "{env} {} pool show {pool_name} --json",
        hook_binary().display()
    ))))
    .unwrap();
    assert_eq!(shown, json!([]), "no claim is left in the pool");

    // trust.local "networks": the pod rules for local containers too,
    // namespaces aside.
    let closed = dir.join("closed.json");
    let pool = json!({"bridge": bridge, "subnets": ["198.51.100.0/24"], "ranges": ["198.51.100.60-198.51.100.69"],
                      "gateways": ["198.51.100.1"]});
    std::fs::write(
        &closed,
        json!({"node": "solo", "trust": {"local": "networks"}, "pools": {pool_name: pool}}).to_string(),
    )
    .unwrap();
    let closed = closed.display().to_string();
    let refused = start("nrt-tr-l1", &closed, &[("net.bridge", &bridge), ("net.ip", "198.51.100.61/24")], &[])
        .err()
        .expect("raw keys are closed to local containers too");
    assert!(
        refused.contains("a local container may only use networks the admin defined (trust.local \"networks\""),
        "{refused}"
    );
    let (local, _bundle) = start("nrt-tr-l2", &closed, &[("net.pool", pool_name)], &[]).expect("a network works");
    assert!(ipv4_of(&local, "eth0").is_some());
    local.stop();
    assert_same_host!(snapshot(&[&lan.peer_ns]), before);
    let _ = std::fs::remove_dir_all(&state);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_address_the_host_has_is_never_given_to_a_container() {
    let lan = Lan::bridge("trh");
    let bridge = lan.bridge.clone().unwrap();
    // The bridge's own address, as a host on its LAN would have it.
    sh(&format!("ip addr add 198.51.100.80/24 dev {bridge}"));
    let none = "/nonexistent/netrt.json";
    let before = snapshot(&[&lan.peer_ns]);
    let asked = [("net.bridge", bridge.as_str()), ("net.ip", "198.51.100.80/24")];
    let refused = start("nrt-tr-h1", none, &asked, &[]).err().expect("the host's own address is refused");
    assert!(
        refused.contains(&format!(
            "net.ip=\"198.51.100.80/24\": 198.51.100.80 is an address of the host itself (on {bridge}); \
             netrt never gives it to a container"
        )),
        "{refused}"
    );
    assert_same_host!(snapshot(&[&lan.peer_ns]), before, "the refusal left nothing");

    // A pool whose range holds the bridge's address passes over it, and
    // refuses it when asked for.
    let pool_name = "it-trust-host";
    let dir = std::env::temp_dir().join("netrt-it-trust-host");
    std::fs::create_dir_all(&dir).unwrap();
    let state = std::path::Path::new("/var/lib/netrt/pools").join(pool_name);
    let _ = std::fs::remove_dir_all(&state);
    let pool = json!({"bridge": bridge, "subnets": ["198.51.100.0/24"], "ranges": ["198.51.100.80-198.51.100.81"]});
    let config = dir.join("netrt.json");
    std::fs::write(&config, json!({"node": "solo", "pools": {pool_name: pool}}).to_string()).unwrap();
    let config = config.display().to_string();
    let (given, _bundle) = start("nrt-tr-h2", &config, &[("net.pool", pool_name)], &[]).expect("a free address");
    assert_eq!(ipv4_of(&given, "eth0").as_deref(), Some("198.51.100.81"), "the host's .80 passed over");
    let refused = start("nrt-tr-h3", &config, &[("net.pool", pool_name), ("net.ip", "198.51.100.80/24")], &[])
        .err()
        .expect("refused inside the pool too");
    assert!(refused.contains("198.51.100.80 is an address of the host itself"), "{refused}");
    given.stop();
    assert_same_host!(snapshot(&[&lan.peer_ns]), before);
    let _ = std::fs::remove_dir_all(&state);
    let _ = std::fs::remove_dir_all(&dir);
}
