//! Concurrency through real runc: 50 containers started at once, half on
//! one bridge and half as macvlans on one parent, each with its own static
//! address and both limits; then all stopped at once. Every hook waits its
//! turn on the host lock; nothing may be lost, doubled or left behind.
//! (Two parallel starts for one address: attach_refusals.rs. A lock held by
//! a killed hook: crash.rs, whose poststop after a kill at `teardown:0`
//! takes the lock the killed hook held. The VLAN variant: vlan_guest.rs.)

use std::collections::BTreeSet;
use std::thread;

use netrt_integration::*;

const CONTAINERS: usize = 50;

struct Planned {
    id: String,
    address: String,
    bridged: bool,
}

#[test]
fn fifty_containers_start_and_stop_in_parallel_and_leave_nothing() {
    let bridge_lan = Lan::bridge("cbr");
    let parent_lan = Lan::parent("cmv");
    let bridge = bridge_lan.bridge.clone().unwrap();
    let parent = parent_lan.parent.clone().unwrap();
    let before = snapshot(&[&bridge_lan.peer_ns, &parent_lan.peer_ns]);

    let planned: Vec<Planned> = (0..CONTAINERS)
        .map(|i| Planned {
            id: format!("nrt-par-{i:02}"),
            address: format!("198.51.100.{}", 100 + i),
            bridged: i % 2 == 0,
        })
        .collect();
    let started: Vec<(Container, Bundle)> = thread::scope(|scope| {
        let handles: Vec<_> = planned
            .iter()
            .map(|p| {
                let (bridge, parent) = (&bridge, &parent);
                scope.spawn(move || {
                    let cidr = format!("{}/24", p.address);
                    let attach =
                        if p.bridged { ("net.bridge", bridge.as_str()) } else { ("net.parent", parent.as_str()) };
                    let annotations =
                        [attach, ("net.ip", cidr.as_str()), ("net.egress", "4mbit"), ("net.ingress", "6mbit")];
                    let bundle = Bundle::create(&p.id, &BundleSpec::isolated(&annotations));
                    let container =
                        Container::start(&p.id, &bundle).unwrap_or_else(|e| panic!("{} does not start: {e}", p.id));
                    (container, bundle)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("every container starts")).collect()
    });

    let mut addresses = BTreeSet::new();
    for (p, (container, _)) in planned.iter().zip(&started) {
        let pid = container.pid();
        let inside = sh(&format!("nsenter -t {pid} -n ip -4 -o addr show dev eth0"));
        assert!(inside.contains(&format!("inet {}/24", p.address)), "{}: {inside}", p.id);
        for line in inside.lines() {
            let address = line.split_whitespace().nth(3).unwrap().to_string();
            assert!(addresses.insert(address.clone()), "{address} is held twice");
        }
        assert!(record_exists(&p.id), "{} has its record", p.id);
        if p.bridged {
            let veth = host_veth_name(&p.id);
            assert!(
                sh(&format!("ip -o link show dev {veth}")).contains(&format!("master {bridge}")),
                "{veth} is a port of {bridge}"
            );
            assert!(qdiscs(None, &veth).contains("rate 6Mbit"), "{}: ingress limit on {veth}", p.id);
            assert!(qdiscs(None, &ifb_name(&p.id)).contains("rate 4Mbit"), "{}: egress limit on its ifb", p.id);
        } else {
            let link = sh(&format!("nsenter -t {pid} -n ip -d -o link show dev eth0"));
            assert!(link.contains("macvlan mode bridge"), "{}: {link}", p.id);
            let inside_qdiscs = sh(&format!("nsenter -t {pid} -n tc qdisc show"));
            assert!(
                inside_qdiscs.contains("rate 4Mbit") && inside_qdiscs.contains("rate 6Mbit"),
                "{}: {inside_qdiscs}",
                p.id
            );
        }
    }
    assert_eq!(addresses.len(), CONTAINERS, "every container has one address of its own");

    thread::scope(|scope| {
        for (container, bundle) in started {
            scope.spawn(move || {
                container.stop();
                drop(bundle);
            });
        }
    });
    assert_same_host!(
        snapshot(&[&bridge_lan.peer_ns, &parent_lan.peer_ns]),
        before,
        "nothing of 50 containers remains"
    );
}
