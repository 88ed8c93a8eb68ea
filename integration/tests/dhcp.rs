//! DHCP through real runc against a real server: dnsmasq in the
//! LAN's peer namespace, with 2-minute leases and a lease file the tests
//! read. Needs root and dnsmasq-base.

use std::time::{Duration, Instant};

use netrt_integration::dhcp::*;
use netrt_integration::*;

fn ok(output: std::process::Output) -> String {
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{text}");
    text
}

/// The container's IPv4 address on `ifname` and its valid lifetime in seconds.
fn leased(container: &Container, ifname: &str) -> (String, u64) {
    let text = ok(container.net_sh(&format!("ip -4 addr show {ifname}")));
    let address = text
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .unwrap_or_else(|| panic!("no IPv4 address on {ifname}: {text}"))
        .to_string();
    let valid = text
        .split_whitespace()
        .skip_while(|w| *w != "valid_lft")
        .nth(1)
        .and_then(|v| v.trim_end_matches("sec").parse().ok())
        .unwrap_or_else(|| panic!("no finite valid_lft on {ifname}: {text}"));
    (address, valid)
}

/// dnsmasq pings an address before it offers it, and waits 3 s for an
/// answer; tests that do not measure that wait turn it off.
const NO_PING: &[&str] = &["--no-ping"];

fn start_with(id: &str, annotations: &[(&str, &str)], hook_env: &[&str]) -> Result<(Container, Bundle), String> {
    let bundle = Bundle::create(id, &BundleSpec { hook_env, ..BundleSpec::isolated(annotations) });
    Container::start(id, &bundle).map(|container| (container, bundle))
}

fn in_range(address: &str) -> bool {
    let host: u32 = address.trim_end_matches("/24").rsplit('.').next().unwrap().parse().unwrap();
    address.starts_with("198.51.100.") && (50..=99).contains(&host)
}

#[test]
fn bridge_attachment_takes_its_address_from_dnsmasq() {
    let lan = Lan::bridge("dh");
    let bridge = lan.bridge.clone().unwrap();
    let server = Dnsmasq::start(&lan.peer_ns, "eth0", "2m", NO_PING);
    let before = snapshot(&[&lan.peer_ns]);
    let id = "nrt-dhcp-bridge";
    let started = Instant::now();
    let (container, _bundle) = start_isolated(id, &[("net.bridge", bridge.as_str()), ("net.ip", "dhcp")]);
    eprintln!("started in {:?}", started.elapsed());
    let (address, valid) = leased(&container, "eth0");
    assert!(in_range(&address), "{address} is not in dnsmasq's range");
    assert!((100..=120).contains(&valid), "the address lives as long as the 2-minute lease: {valid}s");
    let routes = ok(container.net_sh("ip route"));
    assert!(routes.contains(&format!("default via {LAN_PEER4} dev eth0")), "{routes}");
    ok(container.net_sh(&format!("busybox ping -c1 -W2 {LAN_PEER4}")));
    let ip = address.trim_end_matches("/24");
    let lease = server.lease_of(ip).unwrap_or_else(|| panic!("dnsmasq holds no lease of {ip}: {:?}", server.leases()));
    assert!(lease.split_whitespace().nth(3) == Some(id), "dnsmasq names the container by its hostname: {lease}");
    let status = ok(sh_output(&format!("{} status {id}", hook_binary().display())));
    assert!(status.contains(&format!("{address} (DHCP from {LAN_PEER4}")), "{status}");
    assert!(status.contains(&format!("dns {DHCP_DNS}; domain {DHCP_DOMAIN}")), "{status}");

    // renew --all moves the lifetime on, once it has aged.
    let deadline = Instant::now() + Duration::from_secs(20);
    let aged = loop {
        let (_, aged) = leased(&container, "eth0");
        if aged < valid {
            break aged;
        }
        assert!(Instant::now() < deadline, "the address's lifetime did not count down from {valid}s");
        std::thread::sleep(Duration::from_millis(250));
    };
    let renewed = ok(sh_output(&format!("{} renew --all", hook_binary().display())));
    assert!(renewed.contains(&format!("{id}: renewed {address}")), "{renewed}");
    let (again, fresh) = leased(&container, "eth0");
    assert_eq!(again, address);
    assert!(fresh > aged && fresh >= 118, "renewal moved the lifetime from {aged}s to {fresh}s");

    // Stop: the lease goes from the server within 2 s, the host is as before.
    let left = container.stop_then(Instant::now);
    assert!(
        server.wait_for(Duration::from_secs(2), |leases| !leases.iter().any(|l| l.contains(ip))),
        "dnsmasq still holds {ip} 2 s after stop: {:?}",
        server.leases()
    );
    eprintln!("released {:?} after stop", left.elapsed());
    assert_same_host!(snapshot(&[&lan.peer_ns]), before);
    assert!(!record_exists(id));
}

#[test]
fn macvlan_attachment_keeps_its_address_across_a_restart() {
    let lan = Lan::parent("dm");
    let parent = lan.parent.clone().unwrap();
    let server = Dnsmasq::start(&lan.peer_ns, "eth0", "2m", NO_PING);
    let before = snapshot(&[&lan.peer_ns]);
    let id = "nrt-dhcp-macvlan";
    let annotations = [("net.parent", parent.as_str()), ("net.ip", "dhcp,2001:db8:ff::30/64"), ("net.ifname", "lan0")];
    let (container, bundle) = start_with(id, &annotations, &[]).unwrap();
    let (address, valid) = leased(&container, "lan0");
    assert!(in_range(&address) && (100..=120).contains(&valid), "{address} {valid}s");
    let links = ok(container.net_sh("ip -d link show lan0"));
    assert!(links.contains("macvlan"), "{links}");
    let addresses = ok(container.net_sh("ip addr show lan0"));
    assert!(addresses.contains("inet6 2001:db8:ff::30/64"), "a static IPv6 address beside DHCP: {addresses}");
    let routes = ok(container.net_sh("ip route"));
    assert!(routes.contains(&format!("default via {LAN_PEER4} dev lan0")), "{routes}");
    ok(container.net_sh(&format!("busybox ping -c1 -W2 {LAN_PEER4}")));
    let ip = address.trim_end_matches("/24").to_string();
    let lease = server.lease_of(&ip).unwrap_or_else(|| panic!("no lease of {ip}: {:?}", server.leases()));
    assert_eq!(lease.split_whitespace().nth(3), Some(id), "{lease}");
    container.stop();
    assert!(server.wait_for(Duration::from_secs(2), |leases| leases.is_empty()), "{:?}", server.leases());
    assert_same_host!(snapshot(&[&lan.peer_ns]), before);

    // The same id again: the same client, so the same address.
    let again = Container::start(id, &bundle).unwrap();
    let (second, _) = leased(&again, "lan0");
    assert_eq!(second, address, "a restarted container gets its address back");
    again.stop();
    assert!(server.wait_for(Duration::from_secs(2), |leases| leases.is_empty()), "{:?}", server.leases());
    assert_same_host!(snapshot(&[&lan.peer_ns]), before);
}

#[test]
fn no_server_is_refused_within_the_timeout_and_leaves_nothing() {
    let lan = Lan::bridge("dn");
    let bridge = lan.bridge.clone().unwrap();
    let before = snapshot(&[&lan.peer_ns]);
    let id = "nrt-dhcp-none";
    let started = Instant::now();
    let error = start_with(id, &[("net.bridge", bridge.as_str()), ("net.ip", "dhcp"), ("net.dhcp.timeout", "1s")], &[])
        .map(|_| ())
        .unwrap_err()
        .replace('\\', "");
    let took = started.elapsed();
    assert!(
        error.contains(&format!("netrt: net.ip=\"dhcp\": no DHCP offer on eth0 (bridge {bridge}) within 1s")),
        "{error}"
    );
    // A hang limit, not a speed check: the refusal's time is benchmarked.
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(20),
        "refused after {took:?}: the timeout is 1 s"
    );
    assert_same_host!(snapshot(&[&lan.peer_ns]), before);
    assert!(!record_exists(id));
    assert!(!std::path::Path::new(&format!("/run/netrt/netns/{id}")).exists(), "the namespace pin is gone");
}

#[test]
fn an_offer_outside_the_policy_is_refused_and_released() {
    let lan = Lan::bridge("dp");
    let bridge = lan.bridge.clone().unwrap();
    let server = Dnsmasq::start(&lan.peer_ns, "eth0", "2m", NO_PING);
    let policy = std::env::temp_dir().join("netrt-it-dhcp-policy.json");
    std::fs::write(&policy, r#"{"policy": {"subnets": ["198.51.100.0/26"]}}"#).unwrap();
    let variable = format!("NETRT_CONFIG={}", policy.display());
    let before = snapshot(&[&lan.peer_ns]);
    let error =
        start_with("nrt-dhcp-policy", &[("net.bridge", bridge.as_str()), ("net.ip", "dhcp")], &[variable.as_str()])
            .map(|_| ())
            .unwrap_err()
            .replace('\\', "");
    std::fs::remove_file(&policy).unwrap();
    // dnsmasq's range, 198.51.100.50-99, starts inside /26 (up to .63):
    // the hash of the client's MAC picks where, so either answer is right
    // only if it is consistent with the address offered.
    let offered = server.log().lines().rfind(|l| l.contains("DHCPACK")).map(String::from).unwrap_or_default();
    assert!(error.contains("net.ip=\"dhcp\": the DHCP server offered 198.51.100."), "{error} (server: {offered})");
    assert!(error.contains("not allowed by the host's policy (policy.subnets"), "{error}");
    assert!(
        server.wait_for(Duration::from_secs(2), |leases| leases.is_empty()),
        "the refused lease is released: {:?}",
        server.leases()
    );
    assert_same_host!(snapshot(&[&lan.peer_ns]), before);
}

#[test]
fn a_nak_at_renewal_removes_the_address() {
    let lan = Lan::bridge("dk");
    let bridge = lan.bridge.clone().unwrap();
    let mut server = Dnsmasq::start(&lan.peer_ns, "eth0", "2m", NO_PING);
    let id = "nrt-dhcp-nak";
    let (container, _bundle) = start_with(id, &[("net.bridge", bridge.as_str()), ("net.ip", "dhcp")], &[]).unwrap();
    let (address, _) = leased(&container, "eth0");
    // The LAN is renumbered: an authoritative server that never gave this
    // address refuses to extend it.
    server.stop();
    let renumbered = Dnsmasq::serving(&lan.peer_ns, "eth0", ("198.51.100.150", "198.51.100.199"), "2m", NO_PING);
    let renewed = ok(sh_output(&format!("{} renew --all", hook_binary().display())));
    assert!(
        renewed.contains(&format!("{id}: DHCP server {LAN_PEER4} refused to renew {address}")),
        "{renewed}\n{}",
        renumbered.log()
    );
    let addresses = ok(container.net_sh("ip -4 addr show eth0"));
    assert!(!addresses.contains("inet "), "the refused address is gone: {addresses}");
    let status = ok(sh_output(&format!("{} status {id}", hook_binary().display())));
    assert!(status.contains("refused at renewal"), "{status}");
    container.stop();
    assert!(!record_exists(id));
}

#[test]
fn a_renewed_lease_is_held_to_the_policy() {
    let lan = Lan::bridge("dr");
    let bridge = lan.bridge.clone().unwrap();
    let server = Dnsmasq::start(&lan.peer_ns, "eth0", "2m", NO_PING);
    let id = "nrt-dhcp-renpol";
    let (container, _bundle) = start_with(id, &[("net.bridge", bridge.as_str()), ("net.ip", "dhcp")], &[]).unwrap();
    let (address, _) = leased(&container, "eth0");
    // The admin narrows the policy after the start: the next renewal
    // finds the lease outside it.
    let policy = std::env::temp_dir().join("netrt-it-dhcp-renew-policy.json");
    std::fs::write(&policy, r#"{"policy": {"subnets": ["203.0.113.0/24"]}}"#).unwrap();
    let renewed = ok(sh_output(&format!("NETRT_CONFIG={} {} renew --all", policy.display(), hook_binary().display())));
    std::fs::remove_file(&policy).unwrap();
    assert!(
        renewed.contains(&format!(
            "{id}: the renewed lease is refused (netrt: net.ip=\"dhcp\": the DHCP server offered {address}"
        )) && renewed.contains("not allowed by the host's policy (policy.subnets"),
        "{renewed}"
    );
    let addresses = ok(container.net_sh("ip -4 addr show eth0"));
    assert!(!addresses.contains("inet "), "the address is gone: {addresses}");
    assert!(
        server.wait_for(Duration::from_secs(2), |leases| leases.is_empty()),
        "the lease is released: {:?}",
        server.leases()
    );
    container.stop();
    assert!(!record_exists(id));
}

#[test]
fn twenty_containers_in_parallel_get_distinct_addresses() {
    let lan = Lan::bridge("d20");
    let bridge = lan.bridge.clone().unwrap();
    // Without dnsmasq's ping check: with its 3 s ping before each offer,
    // nine or more of the twenty waited longer than their 5 s timeout.
    let server = Dnsmasq::start(&lan.peer_ns, "eth0", "2m", NO_PING);
    let before = snapshot(&[&lan.peer_ns]);
    let started = Instant::now();
    let containers: Vec<(Container, Bundle)> = std::thread::scope(|scope| {
        let running: Vec<_> = (0..20)
            .map(|n| {
                let bridge = bridge.clone();
                scope.spawn(move || {
                    let id = format!("nrt-dhcp-par{n}");
                    start_with(&id, &[("net.bridge", bridge.as_str()), ("net.ip", "dhcp")], &[])
                        .unwrap_or_else(|e| panic!("{id}: {e}"))
                })
            })
            .collect();
        running.into_iter().map(|r| r.join().unwrap()).collect()
    });
    eprintln!("20 containers with DHCP started in {:?}", started.elapsed());
    let mut addresses: Vec<String> = containers.iter().map(|(c, _)| leased(c, "eth0").0).collect();
    assert!(addresses.iter().all(|a| in_range(a)), "{addresses:?}");
    addresses.sort();
    addresses.dedup();
    assert_eq!(addresses.len(), 20, "distinct: {addresses:?}");
    assert_eq!(server.leases().len(), 20, "{:?}", server.leases());
    for (container, _) in containers {
        container.stop();
    }
    assert!(server.wait_for(Duration::from_secs(2), |leases| leases.is_empty()), "{:?}", server.leases());
    assert_same_host!(snapshot(&[&lan.peer_ns]), before);
}

#[test]
fn a_setup_waiting_for_its_server_holds_up_no_other_container() {
    let lan = Lan::bridge("dw");
    let bridge = lan.bridge.clone().unwrap();
    let waiting = std::thread::spawn({
        let bridge = bridge.clone();
        move || {
            let started = Instant::now();
            let result = start_with(
                "nrt-dhcp-wait",
                &[("net.bridge", bridge.as_str()), ("net.ip", "dhcp"), ("net.dhcp.timeout", "4s")],
                &[],
            );
            (result.map(|_| ()), started.elapsed())
        }
    });
    // The first hook waits for its server once its attachment is up on the
    // bridge (it sends its DISCOVER when the link is operational).
    let first_port = host_veth_name("nrt-dhcp-wait");
    let deadline = Instant::now() + Duration::from_secs(10);
    let up_on_the_bridge = || {
        let port = link_details(None, &first_port);
        port["master"] == bridge.as_str() && port["operstate"] == "UP"
    };
    while !up_on_the_bridge() {
        assert!(
            Instant::now() < deadline && !waiting.is_finished(),
            "the first container's attachment never came up on {bridge}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // While it waits, another container starts: the host lock is not held
    // through a DHCP exchange.
    let (other, _bundle) =
        start_with("nrt-dhcp-other", &[("net.bridge", bridge.as_str()), ("net.ip", "198.51.100.20/24")], &[]).unwrap();
    assert!(!waiting.is_finished(), "the second started while the first still waited for its server");
    let (refused, waited) = waiting.join().unwrap();
    let refused = refused.unwrap_err().replace('\\', "");
    assert!(
        refused.contains("no DHCP offer on eth0") && refused.contains("within 4s"),
        "the first waited its 4 s ({waited:?}): {refused}"
    );
    other.stop();
    assert!(!record_exists("nrt-dhcp-wait"));
}

#[test]
fn renew_releases_the_lease_of_a_container_whose_poststop_never_ran() {
    let lan = Lan::bridge("dg");
    let bridge = lan.bridge.clone().unwrap();
    let server = Dnsmasq::start(&lan.peer_ns, "eth0", "2m", NO_PING);
    let before = snapshot(&[&lan.peer_ns]);
    let id = "nrt-dhcp-gone";
    let annotations = [("net.bridge", bridge.as_str()), ("net.ip", "dhcp")];
    let bundle = Bundle::create(id, &BundleSpec { poststop: false, ..BundleSpec::isolated(&annotations) });
    let container = Container::start(id, &bundle).unwrap();
    let (address, _) = leased(&container, "eth0");
    container.stop();
    assert!(record_exists(id), "no poststop ran, so the record stays");
    assert_eq!(server.leases().len(), 1, "{:?}", server.leases());
    let renewed = ok(sh_output(&format!("{} renew", hook_binary().display())));
    assert!(
        renewed.contains(&format!("removed {id}:")) && renewed.contains(&format!("its DHCP lease of {address}")),
        "{renewed}"
    );
    assert!(server.wait_for(Duration::from_secs(2), |leases| leases.is_empty()), "{:?}", server.leases());
    assert!(!record_exists(id));
    assert_same_host!(snapshot(&[&lan.peer_ns]), before);
}

/// The server's MTU option sets the container's interface; `net.mtu`
/// wins over it.
#[test]
fn the_servers_mtu_applies_unless_net_mtu_is_given() {
    let lan = Lan::bridge("du");
    let bridge = lan.bridge.clone().unwrap();
    let server = Dnsmasq::start(&lan.peer_ns, "eth0", "2m", &["--no-ping", "--dhcp-option=option:mtu,1400"]);
    let before = snapshot(&[&lan.peer_ns]);
    let (container, _bundle) =
        start_with("nrt-dhcp-mtu", &[("net.bridge", bridge.as_str()), ("net.ip", "dhcp")], &[]).unwrap();
    let link = ok(container.net_sh("ip link show eth0"));
    assert!(link.contains(" mtu 1400 "), "the server's MTU: {link}");
    container.stop();
    let annotations = [("net.bridge", bridge.as_str()), ("net.ip", "dhcp"), ("net.mtu", "1300")];
    let (container, _bundle) = start_with("nrt-dhcp-mtu2", &annotations, &[]).unwrap();
    let link = ok(container.net_sh("ip link show eth0"));
    assert!(link.contains(" mtu 1300 "), "net.mtu wins: {link}");
    container.stop();
    assert!(server.wait_for(Duration::from_secs(5), |leases| leases.is_empty()), "{:?}", server.leases());
    assert_same_host!(snapshot(&[&lan.peer_ns]), before);
}

/// A network open to pods with `"dhcp": true`: the LAN's server gives the
/// address, but only one inside the network's subnets.
#[test]
fn a_pod_on_a_dhcp_network_takes_only_an_offer_inside_its_subnets() {
    let lan = Lan::bridge("dn");
    let bridge = lan.bridge.clone().unwrap();
    let server = Dnsmasq::start(&lan.peer_ns, "eth0", "2m", NO_PING);
    let dir = std::env::temp_dir().join("netrt-it-dhcp-network");
    std::fs::create_dir_all(&dir).unwrap();
    let network = |subnet: &str| {
        let pool = serde_json::json!({"bridge": bridge, "subnets": [subnet], "namespaces": ["team-a"], "dhcp": true});
        let path = dir.join(format!("{}.json", subnet.replace('/', "_")));
        std::fs::write(&path, serde_json::json!({"node": "solo", "pools": {"lan": pool}}).to_string()).unwrap();
        format!("NETRT_CONFIG={}", path.display())
    };
    let pod = [
        ("io.kubernetes.cri.container-type", "sandbox"),
        ("io.kubernetes.cri.sandbox-namespace", "team-a"),
        ("net.pool", "lan"),
        ("net.ip", "dhcp"),
    ];
    let before = snapshot(&[&lan.peer_ns]);
    let inside = network("198.51.100.0/24");
    let (container, _bundle) =
        start_with("nrt-dhcp-net", &pod, &[inside.as_str()]).expect("an offer inside the network");
    let (address, _) = leased(&container, "eth0");
    assert!(in_range(&address), "{address}");
    container.stop();
    assert!(server.wait_for(Duration::from_secs(2), |leases| leases.is_empty()), "{:?}", server.leases());

    let elsewhere = network("203.0.113.0/24");
    let error = start_with("nrt-dhcp-net", &pod, &[elsewhere.as_str()]).map(|_| ()).unwrap_err().replace('\\', "");
    assert!(
        error.contains("net.ip=\"dhcp\": the DHCP server offered 198.51.100.")
            && error.contains("outside network lan's subnets (203.0.113.0/24)"),
        "{error}"
    );
    assert!(
        server.wait_for(Duration::from_secs(2), |leases| leases.is_empty()),
        "the refused lease is released: {:?}",
        server.leases()
    );
    assert_same_host!(snapshot(&[&lan.peer_ns]), before);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all("/var/lib/netrt/pools/lan");
}
