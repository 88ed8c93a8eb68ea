//! The flat network across real hosts: two QEMU guests, each its own kernel
//! and netrt-hook, their NICs on one virtual LAN with etcd (all inside a
//! network namespace of the test's: nothing leaves it). A host cut off from
//! etcd keeps what its containers hold on the wire; a dead host's addresses
//! come back by themselves once the LAN is silent; a host that comes back
//! keeps what is still its own and reports what another took meanwhile.

use std::time::{Duration, Instant};

use netrt_integration::lan::{Guest, Lan};
use serde_json::{json, Value};

const PREFIX: &str = "/lan/";

fn configure(guest: &mut Guest, lan: &Lan, probe: &str) {
    let config = json!({"node": guest.name,
        "registry": {"etcd": {"endpoints": [lan.etcd], "prefix": PREFIX, "timeout": "3s",
                              "node_ttl": "3s", "reclaim_after": "2s"}},
        "pools": {"lan": {"bridge": "br0", "subnets": ["192.0.2.0/24"], "ranges": ["192.0.2.100-192.0.2.120"],
                          "gateways": ["192.0.2.1"], "probe": probe}}});
    guest.run(&format!("echo '{config}' > /etc/netrt/netrt.json")).ok();
}

/// Starts a container (lib.sh's `start`) and returns its IPv4 address.
fn start(guest: &mut Guest, id: &str, annotations: Value) -> String {
    guest.run(&format!("start {id} '{annotations}'")).ok();
    let setup = guest.run(&format!("cat /tmp/{id}.setup")).ok();
    assert!(setup.trim().is_empty(), "{}: setup of {id}: {setup}", guest.name);
    let out = guest.run(&format!("inside {id} $IP -o -4 addr show dev eth0")).ok();
    out.split_whitespace().skip_while(|w| *w != "inet").nth(1).expect(&out).split('/').next().unwrap().to_string()
}

fn mac_of(guest: &mut Guest, id: &str) -> String {
    let out = guest.run(&format!("inside {id} $IP -o link show dev eth0")).ok();
    out.split_whitespace().skip_while(|w| *w != "link/ether").nth(1).expect(&out).to_string()
}

fn wait_gone(lan: &Lan, key: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !lan.dump(key).trim().is_empty() {
        assert!(Instant::now() < deadline, "{key} outlived its lease");
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn two_hosts_share_a_pool_and_a_dead_or_cut_off_host_loses_nothing_on_the_wire() {
    let lan = Lan::start("nrtlanh", "192.0.2.1", 23950);
    let (mut a, mut b) = std::thread::scope(|scope| {
        let a = scope.spawn(|| lan.boot("host-a", "52:54:00:00:0a:01", "192.0.2.11"));
        let b = scope.spawn(|| lan.boot("host-b", "52:54:00:00:0b:01", "192.0.2.12"));
        (a.join().unwrap(), b.join().unwrap())
    });
    configure(&mut a, &lan, "200ms");
    // B does not probe before use: the admin's by-hand claim below must go through.
    configure(&mut b, &lan, "0");
    let before_b = b.run("settled_snapshot").ok();

    // Distinct addresses from one registry, and the flat network between hosts.
    let pooled = json!({"net.pool": "lan"});
    let a1 = start(&mut a, "a1", pooled.clone());
    let a2 = start(&mut a, "a2", pooled.clone());
    let b1 = start(&mut b, "b1", pooled.clone());
    assert_eq!([a1.as_str(), a2.as_str(), b1.as_str()], ["192.0.2.100", "192.0.2.101", "192.0.2.102"]);
    a.run(&format!("inside a1 ping -c 1 -W 3 {b1}")).ok();
    b.run(&format!("inside b1 ping -c 1 -W 3 {a2}")).ok();
    let a1_mac = mac_of(&mut a, "a1");

    // A is cut off from etcd only: its liveness lapses, its containers stay
    // on the LAN. B's runs probe A's addresses, hear them, and keep them.
    a.run("$IP route add blackhole 192.0.2.1/32").ok();
    wait_gone(&lan, &format!("{PREFIX}alive/host-a"));
    let noted = b.run("$HOOK gc").ok();
    assert!(!noted.contains("reclaimed"), "{noted}");
    std::thread::sleep(Duration::from_millis(2500));
    let probed = b.run("$HOOK gc").ok();
    assert!(!probed.contains("reclaimed"), "nothing is taken from a host that answers: {probed}");
    assert!(
        probed.contains(&format!("kept {a1} of pool lan from dead node host-a")) && probed.contains(&a1_mac),
        "{probed}"
    );
    let shown = b.run("$HOOK pool show lan").ok();
    assert!(shown.contains(&format!("in use on the wire by {a1_mac} (was container a1 on node host-a)")), "{shown}");
    // Meanwhile the admin lifts the mark of a2's address and gives it to a
    // container on B by hand.
    b.run(&format!("$HOOK pool unreserve lan {a2}")).ok();
    let b2 = start(&mut b, "b2", json!({"net.bridge": "br0", "net.ip": format!("{a2}/24")}));
    assert_eq!(b2, a2);

    // A's path to etcd returns: fencing keeps a1's claim and reports a2's
    // as a conflict; both containers keep running.
    a.run("$IP route del blackhole 192.0.2.1/32").ok();
    a.run("$HOOK renew").ok();
    assert!(!lan.dump(&format!("{PREFIX}alive/host-a")).is_empty(), "A is alive again");
    let status: Value = serde_json::from_str(&a.run("$HOOK status --json").ok()).unwrap();
    let conflicts = |id: &str| status.as_array().unwrap().iter().find(|e| e["id"] == id).unwrap()["conflicts"].clone();
    assert_eq!(conflicts("a1"), Value::Null, "a1's address is its own again: {status}");
    assert!(
        conflicts("a2")[0]
            .as_str()
            .unwrap()
            .starts_with(&format!("{a2} of pool lan is held by container b2 on node host-b")),
        "{status}"
    );
    assert!(a.run("$HOOK status --format prometheus").ok().contains("netrt_address_conflicts 1\n"));
    let shown = b.run("$HOOK pool show lan").ok();
    assert!(
        shown.contains(&format!("conflict: container a2 on node host-a has {a2} of pool lan is held by container b2")),
        "{shown}"
    );
    let claim = lan.dump(&format!("{PREFIX}pools/lan/claims/4/c0000264"));
    assert!(claim.contains("\"container\":\"a1\"") && claim.contains("\"node\":\"host-a\""), "{claim}");

    // A dies for good (QEMU quits: no poststop). Once its liveness is gone
    // longer than reclaim_after, B probes a1's address, hears nothing, and
    // takes it back; a new container on B gets it.
    a.kill();
    wait_gone(&lan, &format!("{PREFIX}alive/host-a"));
    b.run("$HOOK gc").ok();
    std::thread::sleep(Duration::from_millis(2500));
    let reclaimed = b.run("$HOOK gc").ok();
    assert!(reclaimed.contains(&format!("reclaimed {a1} of pool lan from dead node host-a")), "{reclaimed}");
    let told = b.run("$HOOK pool show lan").ok();
    assert!(
        told.contains("node host-a: dead")
            && told.contains(&format!("  reclaimed {a1} (container a1 on node host-a), by node host-b at ")),
        "{told}"
    );
    let b3 = start(&mut b, "b3", json!({"net.bridge": "br0", "net.ip": format!("{a1}/24")}));
    assert_eq!(b3, a1);
    b.run(&format!("inside b3 ping -c 1 -W 3 {b1}")).ok();

    for id in ["b1", "b2", "b3"] {
        b.run(&format!("stop {id}")).ok();
    }
    let left = lan.dump(&format!("{PREFIX}pools/lan/claims/"))
        + &lan.dump(&format!("{PREFIX}nodes/"))
        + &lan.dump(&format!("{PREFIX}conflicts/"));
    assert_eq!(left.trim(), "", "B's containers hold nothing, A's are reclaimed, its conflict forgotten");
    let after_b = b.run("settled_snapshot").ok();
    assert_eq!(after_b, before_b, "host B is as before");
}
