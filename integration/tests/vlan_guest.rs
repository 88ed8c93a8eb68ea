//! 802.1Q and bridge VLAN filtering, which this host's kernel lacks, tested
//! for real in a QEMU guest booted from Debian's packaged kernel (see
//! integration/guest). Each scenario runs netrt-hook there as a runtime
//! would and reports one line per check; every expected check must be
//! there and pass, so a check that silently did not run fails the test.

use std::process::Command;

fn run_guest(scenario: &str, expected: &[&str]) {
    let boot = concat!(env!("CARGO_MANIFEST_DIR"), "/guest/boot");
    let output = Command::new(boot).arg(scenario).output().expect("integration/guest/boot runs");
    let console = String::from_utf8_lossy(&output.stdout);
    let failures = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the guest did not run: {failures}\n{console}");
    assert!(console.contains("GUEST-END 0"), "the scenario did not finish: {console}");
    for line in console.lines().filter(|l| l.starts_with("CHECK ")) {
        assert!(line.ends_with(" ok"), "{scenario}: {line}\n{console}");
    }
    for name in expected {
        assert!(console.contains(&format!("CHECK {name} ok")), "{scenario}: check {name} did not pass\n{console}");
    }
}

#[test]
fn macvlan_on_a_vlan_sub_interface_in_a_guest() {
    run_guest(
        "macvlan-vlan",
        &[
            "sub-interface-made",
            "sub-interface-is-vlan-50",
            "macvlan-inside",
            "reaches-same-vlan",
            "no-reach-other-vlan",
            "one-sub-interface",
            "second-reaches",
            "second-shaped-inside",
            "kept-while-used",
            "removed-after-last",
            "no-records",
            "reaches-vlan-60",
            "no-reach-vlan-50",
            "admin-sub-interface-kept",
            "nothing-left",
        ],
    );
}

/// The VLAN variant of the 50-way concurrency test (the host's kernel has
/// no 802.1Q): 25 macvlans on one VLAN sub-interface set up at once, 24
/// torn down at once, then the last.
#[test]
fn parallel_macvlans_share_one_vlan_sub_interface_in_a_guest() {
    run_guest(
        "parallel-vlan",
        &[
            "all-set-up",
            "one-sub-interface",
            "every-address-and-limit-in-place",
            "every-address-claimed",
            "kept-for-the-last-user",
            "one-record-left",
            "removed-after-the-last",
            "nothing-of-netrt-left",
            "nothing-left",
        ],
    );
}

#[test]
fn bridge_access_port_in_a_guest() {
    run_guest(
        "bridge-vlan",
        &[
            "port-found",
            "port-pvid-50-untagged",
            "port-left-vlan-1",
            "reaches-vlan-50",
            "no-reach-vlan-60",
            "port-gone",
            "no-records",
            "refused-without-filtering",
            "refusal-leaves-nothing",
            "nothing-left",
        ],
    );
}

/// DHCP on a macvlan over an 802.1Q sub-interface: one dnsmasq per VLAN on
/// the same wire, each with its own range; the lease must come from the
/// container's VLAN, and teardown must release it.
#[test]
fn dhcp_on_a_vlan_sub_interface_in_a_guest() {
    run_guest(
        "dhcp-vlan",
        &[
            "sub-interface-made",
            "address-from-vlan-50",
            "lifetime-is-the-lease",
            "default-route-from-router",
            "reaches-its-server",
            "lease-on-vlan-50",
            "no-lease-on-vlan-60",
            "released",
            "sub-interface-removed",
            "no-records",
            "nothing-left",
        ],
    );
}

/// A macvlan on a VLAN sub-interface, with limits, set up by the
/// fault-injection build killed at every setup point and then at every
/// teardown point: each kill is checked to have happened and to have left
/// the record, and poststop and gc of the release build leave the guest
/// as before.
#[test]
fn a_vlan_setup_or_teardown_killed_at_any_point_is_cleaned_in_a_guest() {
    run_guest(
        "crash-vlan",
        &[
            "killed-at-setup-0",
            "record-left-at-setup-0",
            "clean-after-setup-0",
            "killed-at-setup-7",
            "clean-after-setup-7",
            "clean-after-clean-run",
            "setup-kill-points",
            "killed-at-teardown-0",
            "record-left-at-teardown-0",
            "clean-after-teardown-0",
            "clean-after-teardown-3",
            "teardown-kill-points",
        ],
    );
}
