//! Docker for real: dockerd from Debian's docker.io, started by the test,
//! with netrt registered by install/install.sh into a daemon.json that
//! already has other keys. dockerd 20.10 speaks API 1.41, too old for
//! `docker run --annotation` (1.43), so settings travel as NETRT_*
//! variables; its own prestart hook makes eth0 during create.

use std::fs;

use netrt_integration::engines::{self, Docker, Installed, DOCKER_CONFIG, IMAGE, SEED_DAEMON_JSON};
use netrt_integration::*;
use serde_json::Value;

#[test]
fn docker_limits_hold_come_back_after_restart_and_go_with_rm() {
    let mut installed = Installed::new();
    let daemon_json: Value = serde_json::from_str(&fs::read_to_string(DOCKER_CONFIG).unwrap()).unwrap();
    assert_eq!(daemon_json["log-level"], "warn", "the installer kept the admin's keys: {daemon_json}");
    assert_eq!(daemon_json["max-concurrent-downloads"], 2, "{daemon_json}");
    assert_eq!(daemon_json["runtimes"]["netrt"]["path"], installed.wrapper().display().to_string());
    let docker = Docker::start();
    let name = "netrt-it-docker-limits";
    sh_quiet(&format!("docker rm -f {name}"));
    let before = engines::settled_snapshot();

    sh(&format!(
        "docker run -d --name {name} --runtime=netrt -e NETRT_EGRESS=8mbit -e NETRT_INGRESS=12mbit {IMAGE} sleep 600"
    ));
    let id = Docker::full_id(name);
    assert!(engines::managed(&id), "netrt-hook status lists the container");
    let host_veth = sh(&format!("{} status {id} --json", hook_binary().display()));
    assert!(host_veth.contains("\"host_veth\": \"veth"), "shaped on Docker's host veth: {host_veth}");
    engines::assert_limits_hold(Docker::pid(name), 8.0, 12.0);

    // A restart makes a new namespace and veth under the same id.
    let old_pid = Docker::pid(name);
    sh(&format!("docker restart -t 0 {name}"));
    assert_ne!(Docker::pid(name), old_pid);
    assert!(engines::managed(&id), "set up again after the restart");
    engines::assert_limits_hold(Docker::pid(name), 8.0, 12.0);

    sh(&format!("docker rm -f {name}"));
    assert!(!record_exists(&id), "docker rm -f removed netrt's record");
    engines::assert_back_to(&before);

    drop(docker);
    let output = installed.uninstall();
    assert_eq!(
        fs::read_to_string(DOCKER_CONFIG).unwrap(),
        SEED_DAEMON_JSON,
        "uninstall put daemon.json back:\n{output}"
    );
}

#[test]
fn docker_attachment_refusal_and_untouched_containers() {
    let _installed = Installed::new();
    let _docker = Docker::start();
    let lan = Lan::bridge("dk");
    let bridge = lan.bridge.clone().unwrap();
    let name = "netrt-it-docker-attach";
    sh_quiet(&format!("docker rm -f {name} {name}-plain"));
    let before = engines::settled_snapshot();

    // Docker's eth0 is there first, so the attachment becomes eth1.
    sh(&format!(
        "docker run -d --name {name} --runtime=netrt -e NETRT_BRIDGE={bridge} -e NETRT_IP=198.51.100.20/24 \
         -e NETRT_EGRESS=20mbit {IMAGE} sleep 600"
    ));
    let id = Docker::full_id(name);
    let addresses = sh(&format!("docker exec {name} ip -4 addr show dev eth1"));
    assert!(addresses.contains("198.51.100.20/24"), "{addresses}");
    sh(&format!("docker exec {name} ping -c 1 -W 2 {LAN_PEER4}"));
    assert!(link_exists(None, &host_veth_name(&id)), "host veth on {bridge}");
    sh(&format!("docker rm -f {name}"));
    assert!(!record_exists(&id));
    engines::assert_back_to(&before);

    // A bad value: docker run fails with netrt's message, nothing stays.
    let output = sh_output(&format!("docker run --rm --runtime=netrt -e NETRT_EGRESS=10parsecs {IMAGE} true"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("netrt: NETRT_EGRESS=\"10parsecs\": unknown rate unit"),
        "docker shows netrt's message: {stderr}"
    );
    engines::assert_back_to(&before);

    // No settings: runs through netrt, config.json without netrt's hooks.
    sh(&format!("docker run -d --name {name}-plain --runtime=netrt {IMAGE} sleep 600"));
    let plain = Docker::full_id(&format!("{name}-plain"));
    // The bundle of dockerd's own containerd (a system containerd keeps it
    // under /run/containerd instead).
    let config = ["/run/docker/containerd/daemon", "/run/containerd"]
        .iter()
        .find_map(|root| {
            fs::read_to_string(format!("{root}/io.containerd.runtime.v2.task/moby/{plain}/config.json")).ok()
        })
        .expect("the container's bundle");
    assert!(!config.contains("netrt-hook"), "a container without settings gets no hook");
    assert!(config.contains("libnetwork-setkey"), "Docker's own hook is there: the right file was read");
    assert!(!record_exists(&plain));
    assert_eq!(Docker::inspect(&plain)["State"]["Running"], true);
    sh(&format!("docker rm -f {name}-plain"));
    engines::assert_back_to(&before);
}
