//! The runtime wrapper `netrt` with runc underneath, driven as containerd
//! drives it: `create`, then `start`. Covers the bundle edit (annotations
//! path: what Docker 24+ writes) and the late-network timing of Docker
//! 26.0.0 and 28+, where the container's interface appears only after
//! `create` returns.

use std::fs;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use netrt_integration::*;
use serde_json::{json, Value};

const ROOT: &str = "/run/netrt-it-runc";

/// Runs the wrapper. Its stderr goes to a file, not a pipe: the container
/// inherits the runtime's stdio and would hold a pipe open while it runs.
fn netrt(arguments: &[&str]) -> Output {
    let errors = std::env::temp_dir().join(format!("netrt-it-wrapper-stderr.{}", std::process::id()));
    let mut output = Command::new(wrapper_binary())
        .args(["--root", ROOT])
        .args(arguments)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(&errors).unwrap())
        .output()
        .expect("netrt runs");
    output.stderr = fs::read(&errors).unwrap();
    let _ = fs::remove_file(&errors);
    output
}

fn must(output: Output, what: &str) {
    assert!(output.status.success(), "{what} failed: {}", String::from_utf8_lossy(&output.stderr));
}

fn status(id: &str) -> String {
    let state = sh_output(&format!("runc --root {ROOT} state {id}"));
    let state: Value = serde_json::from_slice(&state.stdout).unwrap_or(json!({}));
    state["status"].as_str().unwrap_or("absent").to_string()
}

fn delete(id: &str) {
    sh_quiet(&format!("runc --root {ROOT} delete --force {id}"));
}

/// A bundle without hooks, as an engine hands it to the runtime.
fn bundle_without_hooks(id: &str, spec: &BundleSpec) -> Bundle {
    let bundle = Bundle::create(id, spec);
    let path = bundle.dir.join("config.json");
    let mut config: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    config.as_object_mut().unwrap().remove("hooks");
    fs::write(&path, serde_json::to_vec(&config).unwrap()).unwrap();
    bundle
}

#[test]
fn wrapper_adds_hooks_only_to_bundles_that_ask() {
    let lab = Lab::bridged("wr");
    let netns = lab.netns_path();
    let id = "netrt-it-wrap-annotated";
    delete(id);
    let annotations = [("net.egress", "10mbit"), ("io.example.other", "kept")];
    let bundle = bundle_without_hooks(id, &BundleSpec::new(Some(&netns), &annotations));
    let before: Value = serde_json::from_slice(&fs::read(bundle.dir.join("config.json")).unwrap()).unwrap();
    let bundle_dir = bundle.dir.display().to_string();
    must(netrt(&["create", "--bundle", &bundle_dir, id]), "netrt create");

    let after: Value = serde_json::from_slice(&fs::read(bundle.dir.join("config.json")).unwrap()).unwrap();
    let hook = hook_binary().canonicalize().unwrap().display().to_string();
    assert_eq!(
        after["hooks"],
        json!({
            "createRuntime": [{"path": hook, "args": ["netrt-hook", "createRuntime", "--defer-without-network"]}],
            "poststop": [{"path": hook, "args": ["netrt-hook", "poststop"]}]
        })
    );
    let mut without_hooks = after.clone();
    without_hooks.as_object_mut().unwrap().remove("hooks");
    assert_eq!(without_hooks, before, "every other field is kept");
    // The namespace had its network at create: set up then (Docker <= 27).
    assert!(record_exists(id), "set up during create");
    assert!(qdiscs(None, lab.host_veth.as_deref().unwrap()).contains("ingress"), "egress redirect on the host veth");
    must(netrt(&["start", id]), "netrt start");
    assert_eq!(status(id), "running");
    delete(id);
    assert!(!record_exists(id), "poststop ran through the wrapper's hook");

    // No net.* settings: the file is not even rewritten, and it runs.
    let id = "netrt-it-wrap-plain";
    delete(id);
    let plain_annotations = [("io.example.other", "kept")];
    let bundle = bundle_without_hooks(id, &BundleSpec::new(Some(&netns), &plain_annotations));
    let bytes = fs::read(bundle.dir.join("config.json")).unwrap();
    let bundle_dir = bundle.dir.display().to_string();
    let before = snapshot(&[&lab.container_ns]);
    must(netrt(&["create", "--bundle", &bundle_dir, id]), "netrt create");
    must(netrt(&["start", id]), "netrt start");
    assert_eq!(status(id), "running");
    assert_eq!(fs::read(bundle.dir.join("config.json")).unwrap(), bytes, "config.json byte for byte unchanged");
    assert!(!record_exists(id));
    assert_same_host!(snapshot(&[&lab.container_ns]), before);
    delete(id);
}

/// What Docker 28 does between create and start: a veth into the
/// container's namespace, its host end on a bridge, address and default
/// route inside. The server namespace on the bridge measures.
struct LateNetwork {
    server_ns: String,
    container_ns: NetnsName,
    links: Vec<String>,
}

impl LateNetwork {
    fn attach(pid: u32) -> LateNetwork {
        let (bridge, server_veth, host_veth, server_ns) = ("nrtw28br", "nrtw28sv", "nrtw28h", "nrtw28s");
        let late = LateNetwork {
            server_ns: server_ns.into(),
            container_ns: name_netns_of(pid, "nrtw28c"),
            links: vec![server_veth.into(), host_veth.into(), bridge.into()],
        };
        late.remove();
        let c = &late.container_ns.0;
        sh(&format!("ip netns add {server_ns} && ip -n {server_ns} link set lo up"));
        sh(&format!("ip link add {bridge} type bridge && ip link set {bridge} up"));
        sh(&format!("ip link add {server_veth} type veth peer name eth0 netns {server_ns} && ip link set {server_veth} master {bridge} up"));
        sh(&format!(
            "ip link add {host_veth} type veth peer name eth0 netns {c} && ip link set {host_veth} master {bridge} up"
        ));
        sh(&format!("ip -n {server_ns} addr add 192.0.2.1/24 dev eth0 && ip -n {server_ns} link set eth0 up"));
        sh(&format!("ip -n {c} addr add 192.0.2.2/24 dev eth0 && ip -n {c} link set eth0 up && ip -n {c} route add default via 192.0.2.1"));
        sh_quiet(&format!("iptables -I FORWARD -i {bridge} -o {bridge} -j ACCEPT"));
        late
    }

    fn remove(&self) {
        sh_quiet(&format!("ip netns del {}", self.server_ns));
        for link in &self.links {
            sh_quiet(&format!("ip link del {link}"));
        }
        sh_quiet("iptables -D FORWARD -i nrtw28br -o nrtw28br -j ACCEPT");
    }
}

impl Drop for LateNetwork {
    fn drop(&mut self) {
        self.remove();
    }
}

fn pid_of(id: &str) -> u32 {
    let state: Value = serde_json::from_str(&sh(&format!("runc --root {ROOT} state {id}"))).unwrap();
    state["pid"].as_u64().unwrap() as u32
}

#[test]
fn a_network_made_after_create_is_shaped_before_the_process_runs() {
    let id = "netrt-it-wrap-late";
    delete(id);
    let before = snapshot(&[]);
    let annotations = [("net.egress", "8mbit"), ("net.ingress", "12mbit")];
    // The process's first act lists netrt's records: setup must be done.
    let spec = BundleSpec { command: "ls /netrt > /out/seen; sleep 300", ..BundleSpec::isolated(&annotations) };
    let bundle = bundle_without_hooks(id, &spec);
    let out = bundle.dir.join("out");
    fs::create_dir_all(&out).unwrap();
    fs::create_dir_all("/run/netrt/containers").unwrap();
    let path = bundle.dir.join("config.json");
    let mut config: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    let mounts = config["mounts"].as_array_mut().unwrap();
    mounts.push(
        json!({"destination": "/netrt", "type": "bind", "source": "/run/netrt/containers", "options": ["rbind", "ro"]}),
    );
    mounts.push(
        json!({"destination": "/out", "type": "bind", "source": out.display().to_string(), "options": ["rbind", "rw"]}),
    );
    fs::write(&path, serde_json::to_vec(&config).unwrap()).unwrap();

    let bundle_dir = bundle.dir.display().to_string();
    must(netrt(&["create", "--bundle", &bundle_dir, id]), "netrt create");
    assert!(Path::new(&format!("/run/netrt/deferred/{id}.json")).exists(), "only loopback at create: setup waits");
    assert!(!record_exists(id));

    let late = LateNetwork::attach(pid_of(id));
    must(netrt(&["start", id]), "netrt start");
    assert_eq!(status(id), "running");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !out.join("seen").exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let seen = fs::read_to_string(out.join("seen")).expect("the container's process ran");
    assert!(
        seen.lines().any(|l| l == format!("{id}.json")),
        "the record was complete before the process ran: {seen:?}"
    );
    assert!(!Path::new(&format!("/run/netrt/deferred/{id}.json")).exists());
    let host_qdiscs = qdiscs(None, "nrtw28h");
    assert!(host_qdiscs.contains("tbf") && host_qdiscs.contains("ingress"), "{host_qdiscs}");
    for (receives, limit) in [(false, 8.0), (true, 12.0)] {
        let rate =
            median(&iperf(&late.server_ns, &late.container_ns.0, "192.0.2.1", false, receives, 3).unwrap()) / 1e6;
        assert!((0.75 * limit..=1.02 * limit).contains(&rate), "{rate:.2} Mbit/s against {limit}");
    }
    delete(id);
    assert!(!record_exists(id));
    drop(late);
    assert_same_host!(snapshot(&[]), before);
}

#[test]
fn a_failed_late_setup_stops_the_start_with_the_error_in_the_log() {
    let id = "netrt-it-wrap-nonet";
    delete(id);
    let before = snapshot(&[]);
    let annotations = [("net.egress", "8mbit")];
    let spec = BundleSpec { command: "touch /out/ran; sleep 300", ..BundleSpec::isolated(&annotations) };
    let bundle = bundle_without_hooks(id, &spec);
    let out = bundle.dir.join("out");
    fs::create_dir_all(&out).unwrap();
    let path = bundle.dir.join("config.json");
    let mut config: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    config["mounts"].as_array_mut().unwrap().push(
        json!({"destination": "/out", "type": "bind", "source": out.display().to_string(), "options": ["rbind", "rw"]}),
    );
    fs::write(&path, serde_json::to_vec(&config).unwrap()).unwrap();
    let log = bundle.dir.join("log.json");
    let log_arg = log.display().to_string();
    let bundle_dir = bundle.dir.display().to_string();
    must(netrt(&["--log", &log_arg, "--log-format", "json", "create", "--bundle", &bundle_dir, id]), "netrt create");

    // Nobody adds a network: at start there is still only loopback.
    let output = netrt(&["--log", &log_arg, "--log-format", "json", "start", id]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "start must fail");
    let expected = "netrt: net.egress=\"8mbit\": the container has no default route";
    assert!(stderr.contains(expected), "{stderr}");
    let last: Value = serde_json::from_str(fs::read_to_string(&log).unwrap().lines().last().unwrap()).unwrap();
    assert_eq!(last["level"], "error");
    assert!(last["msg"].as_str().unwrap().contains(expected), "{last}");
    assert!(last["time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(status(id), "created", "the process was not started");
    assert!(!out.join("ran").exists());
    delete(id);
    assert!(!Path::new(&format!("/run/netrt/deferred/{id}.json")).exists());
    assert_same_host!(snapshot(&[]), before);
}

#[test]
fn a_deferred_setup_is_not_applied_to_a_later_process_with_the_same_pid() {
    let id = "netrt-it-wrap-recycled";
    delete(id);
    let before = snapshot(&[]);
    let annotations = [("net.egress", "8mbit")];
    let spec = BundleSpec { command: "sleep 300", ..BundleSpec::isolated(&annotations) };
    let bundle = bundle_without_hooks(id, &spec);
    let bundle_dir = bundle.dir.display().to_string();
    must(netrt(&["create", "--bundle", &bundle_dir, id]), "netrt create");
    // The deferred setup names its process by pid and start time.
    let path = format!("/run/netrt/deferred/{id}.json");
    let mut deferred: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    let stat = fs::read_to_string(format!("/proc/{}/stat", pid_of(id))).unwrap();
    let start_time: u64 = stat.rsplit(')').next().unwrap().split_whitespace().nth(19).unwrap().parse().unwrap();
    assert_eq!(deferred["start_time"], start_time, "{deferred}");
    // As if that process had gone and a later one had its pid.
    deferred["start_time"] = json!(start_time + 1);
    fs::write(&path, deferred.to_string()).unwrap();
    let output = netrt(&["start", id]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "start must fail");
    assert!(stderr.contains(&format!("the deferred setup of {id} is for process")), "{stderr}");
    assert_eq!(status(id), "created", "the process was not started");
    assert!(!record_exists(id), "nothing was set up");
    delete(id);
    assert!(!Path::new(&path).exists());
    assert_same_host!(snapshot(&[]), before);
}
