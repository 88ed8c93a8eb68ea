//! containerd (Debian's 1.6, started by the test on its own socket) with the
//! netrt wrapper as the runc shim's binary, and Debian's CNI plugins through
//! `ctr run --cni`: containerd creates the task, CNI adds the network to its
//! namespace, then the task starts (the late timing the wrapper's deferred
//! setup is for). Limits measured at the receiver; a bad value fails
//! `ctr run` with netrt's message; a plain container passes through; nothing
//! of netrt's is left once the task is deleted. Needs root.

use std::fs;
use std::path::Path;

use netrt_integration::engines::{self, Containerd, Docker, Installed, IMAGE};
use netrt_integration::*;

const NETWORK: &str = "netrt-it-ctr";
const BRIDGE: &str = "nrtctrbr";
/// `ctr run --cni` reads the first file by name here, and plugins from
/// /opt/cni/bin.
const CONFLIST: &str = "/etc/cni/net.d/00-netrt-it.conflist";
const PLUGINS: &str = "/opt/cni/bin";

/// The test's CNI network: a bridge with host-local addresses from
/// 203.0.113.0/24, its gateway on the bridge. Removed again on drop, with
/// what host-local and the bridge plugin left.
struct CniNetwork {
    linked_plugins: bool,
}

impl CniNetwork {
    fn new() -> CniNetwork {
        let conflist = serde_json::json!({
            "cniVersion": "0.4.0", "name": NETWORK,
            "plugins": [{"type": "bridge", "bridge": BRIDGE, "isGateway": true, "ipMasq": false,
                         "ipam": {"type": "host-local", "subnet": "203.0.113.0/24", "routes": [{"dst": "0.0.0.0/0"}]}}]
        });
        fs::create_dir_all("/etc/cni/net.d").unwrap();
        fs::write(CONFLIST, serde_json::to_vec_pretty(&conflist).unwrap()).unwrap();
        let linked_plugins = !Path::new(PLUGINS).exists();
        if linked_plugins {
            fs::create_dir_all("/opt/cni").unwrap();
            std::os::unix::fs::symlink("/usr/lib/cni", PLUGINS).unwrap();
        }
        let _ = sh_output(&format!(
            "iptables -I FORWARD -i {BRIDGE} -j ACCEPT && iptables -I FORWARD -o {BRIDGE} -j ACCEPT"
        ));
        CniNetwork { linked_plugins }
    }
}

impl Drop for CniNetwork {
    fn drop(&mut self) {
        let _ = fs::remove_file(CONFLIST);
        if self.linked_plugins {
            let _ = fs::remove_file(PLUGINS);
            let _ = fs::remove_dir("/opt/cni");
        }
        // `ctr task kill` runs no CNI DEL: host-local's leases stay.
        let _ = fs::remove_dir_all(format!("/var/lib/cni/networks/{NETWORK}"));
        sh_quiet(&format!("iptables -D FORWARD -i {BRIDGE} -j ACCEPT; iptables -D FORWARD -o {BRIDGE} -j ACCEPT"));
        sh_quiet(&format!("ip link del {BRIDGE}"));
    }
}

#[test]
fn ctr_run_with_cni_through_the_wrapper() {
    let installed = Installed::new();
    let image_tar = std::env::temp_dir().join("netrt-it-ctr-image.tar");
    {
        let _docker = Docker::start();
        sh(&format!("docker save {IMAGE} -o {}", image_tar.display()));
    }
    let dir = std::env::temp_dir().join("netrt-it-containerd");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config.toml");
    fs::write(&config, Containerd::default_config(&dir)).unwrap();
    let containerd = Containerd::start(&config);
    let ctr = containerd.ctr();
    sh(&format!("{ctr} image import {}", image_tar.display()));
    let _ = fs::remove_file(&image_tar);
    let image = format!("docker.io/library/{IMAGE}:latest");
    let network = CniNetwork::new();
    let wrapper = installed.wrapper().display().to_string();
    let run = |id: &str, annotations: &str| {
        sh_output(&format!("{ctr} run -d --cni --runc-binary {wrapper} {annotations} {image} {id} sleep 600"))
    };

    // A plain container first: it passes through, and the bridge CNI makes
    // (with its gateway address) exists from here on.
    let plain = run("nrt-ctr-plain", "");
    assert!(plain.status.success(), "{}", String::from_utf8_lossy(&plain.stderr));
    assert!(!engines::managed("nrt-ctr-plain"), "a container without settings is not touched");
    containerd.remove("nrt-ctr-plain");
    let before = engines::settled_snapshot();

    let id = "nrt-ctr-limits";
    let started = run(id, "--annotation net.egress=8mbit --annotation net.ingress=12mbit");
    assert!(started.status.success(), "{}", String::from_utf8_lossy(&started.stderr));
    assert!(engines::managed(id), "netrt-hook status lists the task");
    let pid = containerd.pid(id);
    engines::assert_limits_hold(pid, 8.0, 12.0);
    containerd.remove(id);
    assert!(!link_exists(None, &ifb_name(id)), "the ifb went with the task's delete");
    assert!(!record_exists(id), "the record too");
    // CNI's own veth goes with the namespace, which the kernel destroys a
    // moment after the task; ctr runs no CNI DEL.
    engines::assert_back_to(&before);

    let refused = run("nrt-ctr-bad", "--annotation net.egress=10parsecs");
    let stderr = String::from_utf8_lossy(&refused.stderr).replace("\\\"", "\"");
    assert!(!refused.status.success(), "a bad value fails ctr run");
    assert!(
        stderr.contains("net.egress=\"10parsecs\": unknown rate unit"),
        "netrt's message, with its reason, reaches the user: {stderr}"
    );
    containerd.remove("nrt-ctr-bad");
    assert!(!record_exists("nrt-ctr-bad"));
    engines::assert_back_to(&before);

    drop(network);
    drop(containerd);
    let _ = fs::remove_dir_all(&dir);
}
