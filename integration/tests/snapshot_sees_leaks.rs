//! The host snapshot behind every "nothing left" check sees every kind of
//! object netrt makes. The fault-injection build's `NETRT_FAULT_LEAK=KIND`
//! makes teardown leave one kind behind and forget it; each case checks that
//! the snapshot after the runtime's delete differs from the one before in
//! exactly the lines that show that leftover, then removes it by hand and
//! checks that the snapshot is as before again.

use std::collections::BTreeSet;

use netrt_integration::*;

/// Lines of `after` missing from `before`, and of `before` missing from `after`.
fn difference(before: &str, after: &str) -> (Vec<String>, Vec<String>) {
    let (b, a): (BTreeSet<&str>, BTreeSet<&str>) = (before.lines().collect(), after.lines().collect());
    (a.difference(&b).map(|s| s.to_string()).collect(), b.difference(&a).map(|s| s.to_string()).collect())
}

struct Leak<'a> {
    kind: &'a str,
    id: &'a str,
    annotations: &'a [(&'a str, &'a str)],
    /// The container's namespace path; None: one of its own.
    netns: Option<&'a str>,
    /// Namespaces the snapshot looks into besides the host.
    namespaces: &'a [&'a str],
    config: Option<&'a str>,
}

impl Leak<'_> {
    /// Runs the container with teardown leaking `kind`; returns the
    /// snapshot before, and the lines it gained and lost between before the
    /// start and right after the runtime's delete.
    fn run(&self) -> (String, Vec<String>, Vec<String>) {
        let before = snapshot(self.namespaces);
        let leak = format!("NETRT_FAULT_LEAK={}", self.kind);
        let config = self.config.map(|path| format!("NETRT_CONFIG={path}"));
        let mut hook_env = vec![leak.as_str()];
        hook_env.extend(config.as_deref());
        let mut spec = match self.netns {
            Some(path) => BundleSpec::new(Some(path), self.annotations),
            None => BundleSpec::isolated(self.annotations),
        };
        spec.hook = fault_hook_binary();
        spec.hook_env = &hook_env;
        let bundle = Bundle::create(self.id, &spec);
        let container = Container::start(self.id, &bundle).unwrap_or_else(|e| panic!("{}: {e}", self.kind));
        let after = container.stop_then(|| snapshot(self.namespaces));
        assert!(!record_exists(self.id), "{}: teardown finished (its record is gone)", self.kind);
        let (gained, lost) = difference(&before, &after);
        (before, gained, lost)
    }

    /// Checks that each of `shows` matches a gained line, and that what was
    /// lost is only what the leftover replaced (`replaced`). Then `clean`
    /// removes the leftover and the snapshot is as before.
    fn is_seen(&self, shows: &[&str], replaced: &[&str], clean: &str) {
        let (before, gained, lost) = self.run();
        println!("{}: the snapshot gained {} lines: {gained:#?}", self.kind, gained.len());
        for pattern in shows {
            assert!(
                gained.iter().any(|line| line.contains(pattern)),
                "{}: no line shows {pattern:?}; gained: {gained:#?}",
                self.kind
            );
        }
        for line in &lost {
            assert!(replaced.iter().any(|p| line.contains(p)), "{}: a line lost: {line:?}", self.kind);
        }
        sh(clean);
        assert_same_host!(
            snapshot(self.namespaces),
            before,
            "{}: removing the leftover by hand restores the host",
            self.kind
        );
    }
}

#[test]
fn links_qdiscs_and_filters_on_the_host() {
    let lab = Lab::bridged("lkl");
    let netns = lab.netns_path();
    let host_veth = lab.host_veth.clone().unwrap();
    let id = "nrt-leak-l";
    let ifb = ifb_name(id);
    let namespaces = [lab.container_ns.as_str()];
    let leak =
        |kind, annotations| Leak { kind, id, annotations, netns: Some(&netns), namespaces: &namespaces, config: None };
    let egress = [("net.egress", "3mbit")];
    let ingress = [("net.ingress", "3mbit")];
    leak("ifb", &egress).is_seen(
        &[&format!("link \"{ifb}\" kind \"ifb\""), &format!("qdisc tbf 1: dev {ifb} root")],
        &[],
        &format!("ip link del {ifb}"),
    );
    leak("ingress_qdisc", &egress).is_seen(
        &[&format!("qdisc ingress ffff: dev {host_veth}"), &format!("filter {host_veth} ingress: "), "mirred"],
        &[],
        &format!("tc qdisc del dev {host_veth} ingress"),
    );
    leak("root_qdisc", &ingress).is_seen(
        &[&format!("qdisc tbf 1: dev {host_veth} root")],
        &[&format!("qdisc noqueue 0: dev {host_veth} root")],
        &format!("tc qdisc del dev {host_veth} root"),
    );
}

#[test]
fn an_attachments_link_pin_and_claim() {
    let lan = Lan::bridge("lka");
    let bridge = lan.bridge.clone().unwrap();
    let id = "nrt-leak-a";
    let host_veth = host_veth_name(id);
    let attachment = [("net.bridge", bridge.as_str()), ("net.ip", "198.51.100.90/24")];
    // A veth pair goes with either end: its host end is left only where
    // the container's end is too, in a namespace that outlives the container.
    let named = NetnsName::fresh("nrtlka");
    let ns = named.0.as_str();
    let path = format!("/run/netns/{ns}");
    let namespaces = [lan.peer_ns.as_str(), ns];
    let pair = Leak {
        kind: "host_veth,container_link",
        id,
        annotations: &attachment,
        netns: Some(&path),
        namespaces: &namespaces,
        config: None,
    };
    pair.is_seen(
        &[&format!("link \"{host_veth}\" kind \"veth\" master \"{bridge}\""), "link \"eth0\" kind \"veth\""],
        &[],
        &format!("ip link del {host_veth}"),
    );
    drop(named);
    let namespaces = [lan.peer_ns.as_str()];
    let leak = |kind| Leak { kind, id, annotations: &attachment, netns: None, namespaces: &namespaces, config: None };
    leak("address_claim").is_seen(
        &["file /run/netrt/addresses/198.51.100.90 l nrt-leak-a"],
        &[],
        "rm /run/netrt/addresses/198.51.100.90",
    );
    // A macvlan's namespace is pinned until teardown has deleted it.
    let parent_lan = Lan::parent("lkm");
    let parent = parent_lan.parent.clone().unwrap();
    let macvlan = [("net.parent", parent.as_str()), ("net.ip", "198.51.100.94/24")];
    let namespaces = [parent_lan.peer_ns.as_str()];
    let leak = |kind| Leak { kind, id, annotations: &macvlan, netns: None, namespaces: &namespaces, config: None };
    let pin = format!("/run/netrt/netns/{id}");
    leak("netns_pin").is_seen(
        &[&format!("mount {pin}"), &format!("file {pin} f")],
        &[],
        &format!("umount {pin} && rm {pin}"),
    );
    leak("pin_file").is_seen(&[&format!("file {pin} f")], &[], &format!("rm {pin}"));
}

/// A macvlan left in a namespace that outlives the container: its link,
/// addresses and routes.
#[test]
fn a_link_with_addresses_and_routes_in_a_namespace() {
    let lan = Lan::parent("lkn");
    let parent = lan.parent.clone().unwrap();
    let named = NetnsName::fresh("nrtlkn");
    let ns = named.0.as_str();
    let path = format!("/run/netns/{ns}");
    let attachment = [
        ("net.parent", parent.as_str()),
        ("net.ifname", "lan0"),
        ("net.ip", "198.51.100.91/24,2001:db8:ff::91/64"),
        ("net.gateway", "198.51.100.1"),
        ("net.routes", "203.0.113.0/24 via 198.51.100.1"),
    ];
    let leak = Leak {
        kind: "container_link,default_route",
        id: "nrt-leak-n",
        annotations: &attachment,
        netns: Some(&path),
        namespaces: &[ns],
        config: None,
    };
    leak.is_seen(
        &[
            "link \"lan0\" kind \"macvlan\"",
            "addr \"lan0\" \"198.51.100.91\"/24",
            "addr \"lan0\" \"2001:db8:ff::91\"/64",
            "route \"default\" via \"198.51.100.1\" dev \"lan0\"",
            "route \"203.0.113.0/24\" via \"198.51.100.1\" dev \"lan0\"",
        ],
        // A macvlan that is up keeps its parent promiscuous.
        &[&format!("link \"{parent}\" kind \"veth\"")],
        &format!("ip -n {ns} link del lan0"),
    );
    drop(named);
}

/// A host-wide pool's claim under /var/lib/netrt.
#[test]
fn a_pool_claim_on_the_host() {
    let lan = Lan::bridge("lkp");
    let bridge = lan.bridge.clone().unwrap();
    let pool = "it-leak-pool";
    let dir = std::env::temp_dir().join("netrt-it-leak-pool");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("netrt.json");
    let definition = serde_json::json!({"bridge": bridge, "subnets": ["198.51.100.0/24"], "ranges": ["198.51.100.60-198.51.100.61"]});
    std::fs::write(&config, serde_json::json!({"node": "solo", "pools": {pool: definition}}).to_string()).unwrap();
    let state = format!("/var/lib/netrt/pools/{pool}");
    sh_quiet(&format!("rm -rf {state}"));
    let annotations = [("net.pool", pool)];
    let config_path = config.display().to_string();
    let leak = Leak {
        kind: "pool_claim",
        id: "nrt-leak-p",
        annotations: &annotations,
        netns: None,
        namespaces: &[],
        config: Some(&config_path),
    };
    // The first claim in a pool registers it: registration and cursor are
    // the pool's, not the container's, and outlive it by design.
    leak.is_seen(
        &[&format!("file {state}/claims/"), "file /var/lib/netrt/pools/.holders/solo/nrt-leak-p/"],
        &[],
        &format!("rm -rf {state}/claims /var/lib/netrt/pools/.holders/solo/nrt-leak-p"),
    );
    sh(&format!("rm -rf {state} /var/lib/netrt/pools/.holders/solo"));
    let _ = std::fs::remove_dir_all(dir);
}

/// A guarantee's class and classifier on an uplink that another container
/// keeps shaped: only the class and the filter differ.
#[test]
fn an_uplink_class_and_its_classifier() {
    let lan = Lan::bridge("lku");
    let bridge = lan.bridge.clone().unwrap();
    let uplink = "nrtlkul";
    let config = std::env::temp_dir().join("netrt-it-leak-uplink.json");
    std::fs::write(&config, format!(r#"{{"uplinks": {{"{uplink}": {{"capacity": "100mbit"}}}}}}"#)).unwrap();
    let config_path = config.display().to_string();
    let initial = snapshot(&[]);
    let env = format!("NETRT_CONFIG={config_path}");
    let hook_env = [env.as_str()];
    let keeper = [("net.bridge", bridge.as_str()), ("net.ip", "198.51.100.92/24"), ("net.egress.min", "10mbit")];
    let bundle = Bundle::create("nrt-leak-k", &BundleSpec { hook_env: &hook_env, ..BundleSpec::isolated(&keeper) });
    let kept = Container::start("nrt-leak-k", &bundle).unwrap();

    let attachment = [("net.bridge", bridge.as_str()), ("net.ip", "198.51.100.93/24"), ("net.egress.min", "20mbit")];
    let leak = Leak {
        kind: "uplink",
        id: "nrt-leak-u",
        annotations: &attachment,
        netns: None,
        namespaces: &[],
        config: Some(&config_path),
    };
    let (_, gained, lost) = leak.run();
    println!("uplink: gained {gained:#?}, lost {lost:#?}");
    assert!(
        gained.iter().any(|l| l.starts_with(&format!("{uplink}: class htb 6e72:")) && l.contains("rate 20Mbit")),
        "{gained:#?}"
    );
    assert!(
        gained.iter().any(|l| l.starts_with(&format!("filter {uplink} root: ")) && l.contains("bpf")),
        "{gained:#?}"
    );
    assert!(
        !gained.iter().chain(&lost).any(|l| l.starts_with("qdisc")),
        "the qdiscs are as they were: {gained:#?} {lost:#?}"
    );
    // The keeper's teardown brings the uplink in step with the records:
    // the last guarantee gone, its shaper goes, the leaked class with it.
    kept.stop();
    assert_same_host!(snapshot(&[]), initial, "the uplink is as before the first guarantee");
    let _ = std::fs::remove_file(config);
}
