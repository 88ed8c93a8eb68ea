//! podman for real, with the hooks.d file install/install.sh writes: the
//! settings are annotations, podman (runc underneath) runs netrt-hook from
//! hooks.d, and only for containers with net.* annotations.

use netrt_integration::engines::{self, podman_image, podman_pid, Installed, HOOKS_FILE, IMAGE, PODMAN, PODMAN_RUN};
use netrt_integration::*;
use serde_json::Value;

fn full_id(name: &str) -> String {
    sh(&format!("{PODMAN} inspect -f '{{{{.Id}}}}' {name}")).trim().to_string()
}

/// podman makes its bridge and firewall on the first run; the snapshots
/// start after that.
fn warm_up() {
    podman_image();
    sh(&format!("{PODMAN_RUN} --rm {IMAGE} true"));
}

#[test]
fn podman_limits_hold_on_the_default_network_and_go_with_rm() {
    let installed = Installed::new();
    let hooks: Value = serde_json::from_str(&std::fs::read_to_string(HOOKS_FILE).unwrap()).unwrap();
    assert_eq!(hooks["hook"]["path"], installed.hook().display().to_string());
    warm_up();
    let name = "netrt-it-podman-limits";
    sh_quiet(&format!("{PODMAN} rm -f -t 0 {name}"));
    let before = engines::settled_snapshot();
    sh(&format!(
        "{PODMAN_RUN} -d --name {name} --annotation net.egress=8mbit --annotation net.ingress=12mbit {IMAGE} sleep 600"
    ));
    let id = full_id(name);
    assert!(engines::managed(&id));
    engines::assert_limits_hold(podman_pid(name), 8.0, 12.0);
    sh(&format!("{PODMAN} rm -f -t 0 {name}"));
    assert!(!record_exists(&id), "podman ran the poststop hook");
    engines::assert_back_to(&before);
}

#[test]
fn podman_attachment_refusal_and_containers_without_annotations() {
    let _installed = Installed::new();
    warm_up();
    let lan = Lan::bridge("pm");
    let bridge = lan.bridge.clone().unwrap();
    let name = "netrt-it-podman-attach";
    sh_quiet(&format!("{PODMAN} rm -f -t 0 {name}; {PODMAN} rm -f -t 0 {name}-plain"));
    let before = engines::settled_snapshot();

    // podman 4.3 splits --annotation values at commas (a CSV string
    // slice); a value in double quotes keeps its commas. README says so.
    sh(&format!(
        "{PODMAN_RUN} -d --name {name} --network none --annotation net.bridge={bridge} \
         --annotation '\"net.ip=198.51.100.30/24,2001:db8:ff::30/64\"' --annotation net.egress=8mbit {IMAGE} sleep 600"
    ));
    let id = full_id(name);
    let pid = podman_pid(name);
    let addresses = sh(&format!("nsenter -t {pid} -n ip addr show dev eth0"));
    assert!(addresses.contains("198.51.100.30/24") && addresses.contains("2001:db8:ff::30/64"), "{addresses}");
    sh(&format!("nsenter -t {pid} -n busybox ping -c 1 -W 2 {LAN_PEER4}"));
    let container_ns = name_netns_of(pid, "nrtpmc");
    let rate = median(&iperf(&lan.peer_ns, &container_ns.0, LAN_PEER4, false, false, 3).unwrap()) / 1e6;
    assert!((6.0..=8.16).contains(&rate), "egress {rate:.2} Mbit/s against 8");
    drop(container_ns);
    sh(&format!("{PODMAN} rm -f -t 0 {name}"));
    assert!(!record_exists(&id));
    engines::assert_back_to(&before);

    let output = sh_output(&format!("{PODMAN_RUN} --rm --annotation net.egress=10parsecs {IMAGE} true"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("netrt: net.egress=\"10parsecs\": unknown rate unit"),
        "podman shows netrt's message: {stderr}"
    );
    engines::assert_back_to(&before);

    // Any net.* key reaches the hook, so a misspelt one is refused, not ignored.
    let output = sh_output(&format!("{PODMAN_RUN} --rm --annotation net.Egress=10mbit {IMAGE} true"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "a misspelt key stops the run");
    assert!(stderr.contains("netrt: net.Egress=\"10mbit\": unknown key; did you mean net.egress?"), "{stderr}");
    engines::assert_back_to(&before);

    // hooks.d matches net.* annotations only: no hook for this one.
    sh(&format!("{PODMAN_RUN} -d --name {name}-plain --annotation io.example.other=1 {IMAGE} sleep 600"));
    let plain = full_id(&format!("{name}-plain"));
    let config = sh(&format!("cat $({PODMAN} inspect -f '{{{{.StaticDir}}}}' {plain})/config.json"));
    assert!(!config.contains("netrt-hook"), "no hook without net.* annotations");
    assert!(config.contains("io.example.other"), "the right config.json was read");
    assert!(!record_exists(&plain));
    sh(&format!("{PODMAN} rm -f -t 0 {name}-plain"));
}
