//! netrt's benchmark: shaping accuracy and hook latency, side by side with
//! Debian's CNI `bandwidth` plugin in the same run, on the same test lab;
//! and the latency of a whole bridge attachment (veth on a bridge, static
//! IPv4 + IPv6, gateways, both limits) against the CNI chain bridge +
//! static + bandwidth doing the same; where teardown's time goes (the
//! kernel's wait for each deletion request); and what netrt adds to a container's
//! start, with runc and with Docker, against the same without netrt.
//! Run it through integration/bench (root; it installs what it needs).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use netrt_integration::engines::{busybox_tar, IMAGE};
use netrt_integration::*;
use serde_json::json;

const CNI_PLUGIN: &str = "/usr/lib/cni/bandwidth";
const RATES_BPS: [u64; 4] = [1_000_000, 10_000_000, 100_000_000, 1_000_000_000];
const SECONDS: u32 = 5;
/// The burst Kubernetes runtimes pass to the CNI plugin: 2^32−1 bits.
const KUBERNETES_BURST_BITS: u64 = u32::MAX as u64;

#[derive(Clone, Copy)]
enum Shaper {
    Netrt,
    CniKubernetesBurst,
    CniOneMsBurst,
}

impl Shaper {
    fn label(self) -> &'static str {
        match self {
            Shaper::Netrt => "netrt",
            Shaper::CniKubernetesBurst => "CNI, k8s burst",
            Shaper::CniOneMsBurst => "CNI, 1 ms burst",
        }
    }
}

fn main() {
    let iterations: usize = std::env::var("NETRT_BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(50);
    let lab = Lab::bridged("bench");
    // An earlier run that stopped half-way may have left the plugin's ifb.
    let _ = cni_command(&lab, "DEL", &cni_config(&lab, 1, 1)).wait_with_output();
    let part = std::env::args().nth(1).unwrap_or_default();
    println!("netrt benchmark: {} and {CNI_PLUGIN} on the same veth, one run\n", hook_binary().display());
    if part.is_empty() || part == "accuracy" {
        accuracy(&lab);
        println!();
    }
    if part.is_empty() || part == "latency" {
        latency(&lab, iterations);
        println!();
    }
    drop(lab);
    if part.is_empty() || part == "attach" {
        attach_latency(iterations);
        println!();
    }
    if part.is_empty() || part == "teardown" {
        teardown_cost(iterations.min(30));
        println!();
    }
    if part.is_empty() || part == "pools" {
        pools_latency(iterations);
        println!();
    }
    if part.is_empty() || part == "dhcp" {
        dhcp_latency(iterations);
        println!();
    }
    if part.is_empty() || part == "uplinks" {
        uplinks(iterations);
        println!();
    }
    if part == "scale" {
        scale(iterations.min(20));
        return;
    }
    if part.is_empty() || part == "start" {
        runc_start_overhead(iterations.min(30));
        println!();
        docker_start_overhead(iterations);
    }
}

const ATTACH_ID: &str = "nrt-bench-att";

/// A process in a fresh network namespace of its own, like a container's
/// init before its network exists.
fn isolated_process() -> Child {
    let child = Command::new("unshare").args(["--net", "sleep", "600"]).spawn().expect("unshare runs");
    let own = fs::read_link("/proc/self/ns/net").unwrap();
    while fs::read_link(format!("/proc/{}/ns/net", child.id())).map_or(true, |ns| ns == own) {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child
}

fn end(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn attach_latency(iterations: usize) {
    let lan = Lan::bridge("bnch");
    let bridge = lan.bridge.clone().unwrap();
    println!("Latency of a bridge attachment over {iterations} runs: veth on {bridge}, 198.51.100.10/24 and");
    println!("2001:db8:ff::10/64, both gateways, egress and ingress 10mbit; a fresh namespace each run.");
    println!("netrt: one netrt-hook process. CNI: bridge (with static IPAM) then bandwidth, as a runtime");
    println!("runs the chain; its DEL in reverse order while the namespace exists. netrt's poststop twice:");
    println!("after the namespace is gone (as runc runs it) and while it exists (as the CNI DEL runs).");
    println!("Teardown and DEL are timed until they return; 'left' counts the runs after which a device");
    println!("of the container was still on the host at that moment (read from sysfs at once).\n");
    let mut gone = Timings::default();
    let mut alive = Timings::default();
    let mut chain = Timings::default();
    let mut macvlan = Timings::default();
    let parent_lan = Lan::parent("bnchm");
    let parent = parent_lan.parent.clone().unwrap();
    let bridged = bridge_annotations(&bridge);
    let on_parent =
        json!({"net.parent": parent, "net.ip": "198.51.100.11/24", "net.egress": "10mbit", "net.ingress": "10mbit"});
    // Round after round, so the machine's drift hits all alike.
    for _ in 0..iterations {
        gone.add(netrt_attach_latency(&bridged, None, 1, Namespace::GoneFirst));
        alive.add(netrt_attach_latency(&bridged, None, 1, Namespace::Alive));
        chain.add(cni_chain_latency(&bridge, 1));
        macvlan.add(netrt_attach_latency(&on_parent, Some(&parent), 1, Namespace::GoneFirst));
    }
    print_rows(
        44,
        iterations,
        &[
            ("netrt-hook setup (createRuntime)", &gone.setup, None),
            ("netrt-hook teardown, namespace gone (runc)", &gone.teardown, Some(gone.left)),
            ("netrt-hook teardown, namespace alive", &alive.teardown, Some(alive.left)),
            ("CNI bridge+static+bandwidth ADD", &chain.setup, None),
            ("CNI bandwidth+bridge DEL", &chain.teardown, Some(chain.left)),
            ("netrt-hook setup, macvlan + both limits", &macvlan.setup, None),
            ("netrt-hook teardown, macvlan (runc)", &macvlan.teardown, Some(macvlan.left)),
        ],
    );
    println!(
        "\nnetrt setup median / CNI chain ADD median: {:.2}",
        percentile(&gone.setup, 50) / percentile(&chain.setup, 50)
    );
    for (label, netrt) in [("namespace gone", &gone), ("namespace alive", &alive)] {
        let ratio = percentile(&netrt.teardown, 50) / percentile(&chain.teardown, 50);
        println!("netrt teardown ({label}) median / CNI chain DEL median: {ratio:.2} (goal: at most 0.50)");
    }
}

/// A table of median and p95 per row, and for teardowns how many of the
/// `iterations` runs left something on the host.
fn print_rows(width: usize, iterations: usize, rows: &[(&str, &Vec<f64>, Option<usize>)]) {
    println!("{:<width$} {:>10} {:>10} {:>8}", "", "median", "p95", "left");
    for (label, timed, left) in rows {
        let left = left.map_or(String::new(), |n| format!("{n}/{iterations}"));
        println!("{label:<width$} {:>8.2}ms {:>8.2}ms {left:>8}", percentile(timed, 50), percentile(timed, 95));
    }
}

/// When netrt's poststop runs: after the container's namespace is gone, as
/// runc runs it, or while it still exists, as a CNI DEL runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Namespace {
    GoneFirst,
    Alive,
}

/// Times of one tool's runs, and how many runs left something on the host.
#[derive(Default)]
struct Timings {
    setup: Vec<f64>,
    teardown: Vec<f64>,
    left: usize,
    /// When each setup's hook process was started.
    started: Vec<Instant>,
}

impl Timings {
    fn add(&mut self, more: Timings) {
        self.started.extend(more.started);
        self.setup.extend(more.setup);
        self.teardown.extend(more.teardown);
        self.left += more.left;
    }
}

/// The network devices of the host's namespace, from sysfs: one readdir,
/// fast enough to look the moment a teardown returns.
fn host_devices() -> std::collections::BTreeSet<String> {
    fs::read_dir("/sys/class/net").unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect()
}

fn bridge_annotations(bridge: &str) -> serde_json::Value {
    json!({"net.bridge": bridge, "net.ip": "198.51.100.10/24,2001:db8:ff::10/64",
           "net.gateway": "198.51.100.1,2001:db8:ff::1", "net.egress": "10mbit", "net.ingress": "10mbit"})
}

/// What a teardown may leave on the host: its devices, and the flags of a
/// macvlan's parent (promiscuous while a macvlan lives on it).
fn host_state(parent: Option<&str>) -> (std::collections::BTreeSet<String>, String) {
    let flags =
        parent.map(|p| fs::read_to_string(format!("/sys/class/net/{p}/flags")).unwrap_or_default()).unwrap_or_default();
    (host_devices(), flags)
}

/// netrt-hook setup and teardown with these annotations, each in a fresh
/// namespace; `parent`: a macvlan's, whose flags must be as before when
/// teardown returns.
fn netrt_attach_latency(
    annotations: &serde_json::Value,
    parent: Option<&str>,
    iterations: usize,
    namespace: Namespace,
) -> Timings {
    let bundle = std::env::temp_dir().join("netrt-bench-attach");
    fs::create_dir_all(&bundle).unwrap();
    let config = json!({"ociVersion": "1.0.2", "annotations": annotations});
    fs::write(bundle.join("config.json"), config.to_string()).unwrap();
    let hook = hook_binary();
    let mut timings = Timings::default();
    for _ in 0..iterations {
        let before = host_state(parent);
        let holder = isolated_process();
        let state = |status: &str| {
            json!({"ociVersion": "1.0.2", "id": ATTACH_ID, "status": status, "pid": holder.id(), "bundle": bundle})
                .to_string()
        };
        let (creating, stopped) = (state("creating"), state("stopped"));
        timings.started.push(Instant::now());
        timings.setup.push(time_process(Command::new(&hook).arg("createRuntime"), &creating));
        if namespace == Namespace::GoneFirst {
            end(holder);
            timings.teardown.push(time_process(Command::new(&hook).arg("poststop"), &stopped));
            timings.left += usize::from(host_state(parent) != before);
        } else {
            timings.teardown.push(time_process(Command::new(&hook).arg("poststop"), &stopped));
            timings.left += usize::from(host_state(parent) != before);
            end(holder);
        }
    }
    let _ = fs::remove_dir_all(&bundle);
    timings
}

fn cni_chain_latency(bridge: &str, iterations: usize) -> Timings {
    let bridge_config = json!({
        "cniVersion": "0.4.0", "name": "nrt-bench", "type": "bridge", "bridge": bridge,
        "isGateway": false, "ipMasq": false,
        "ipam": {"type": "static",
                 "addresses": [{"address": "198.51.100.10/24", "gateway": "198.51.100.1"},
                               {"address": "2001:db8:ff::10/64", "gateway": "2001:db8:ff::1"}],
                 "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]},
    });
    let (mut add, mut del, mut left) = (vec![], vec![], 0);
    for _ in 0..iterations {
        let before = host_devices();
        let holder = isolated_process();
        let netns = format!("/proc/{}/ns/net", holder.id());
        let start = Instant::now();
        let bridge_result = run_cni("bridge", "ADD", &netns, &bridge_config);
        let bandwidth_config = bandwidth_chain_config(&bridge_result);
        run_cni("bandwidth", "ADD", &netns, &bandwidth_config);
        add.push(start.elapsed().as_secs_f64() * 1e3);
        let start = Instant::now();
        run_cni("bandwidth", "DEL", &netns, &bandwidth_config);
        let mut bridge_del = bridge_config.clone();
        bridge_del["prevResult"] = bridge_result;
        run_cni("bridge", "DEL", &netns, &bridge_del);
        del.push(start.elapsed().as_secs_f64() * 1e3);
        left += usize::from(host_devices() != before);
        end(holder);
        // Whatever a DEL left (an ifb), removed untimed.
        sh_quiet("for l in $(ip -o link show type ifb | grep -o 'bwp[0-9a-f]*'); do ip link del $l; done");
    }
    Timings { setup: add, teardown: del, left, started: vec![] }
}

fn bandwidth_chain_config(prev_result: &serde_json::Value) -> serde_json::Value {
    json!({
        "cniVersion": "0.4.0", "name": "nrt-bench", "type": "bandwidth",
        "ingressRate": 10_000_000u64, "ingressBurst": 200_000u64,
        "egressRate": 10_000_000u64, "egressBurst": 200_000u64,
        "prevResult": prev_result,
    })
}

/// Runs one CNI plugin as a runtime does; returns its result.
fn run_cni(plugin: &str, command: &str, netns: &str, config: &serde_json::Value) -> serde_json::Value {
    let child = spawn_cni(plugin, command, netns, ATTACH_ID, &config.to_string());
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "CNI {plugin} {command}: {}", String::from_utf8_lossy(&output.stdout));
    serde_json::from_slice(&output.stdout).unwrap_or(serde_json::Value::Null)
}

fn accuracy(lab: &Lab) {
    let shapers = [Shaper::Netrt, Shaper::CniKubernetesBurst, Shaper::CniOneMsBurst];
    println!("Accuracy: iperf3 goodput measured at the receiver, % of the configured rate,");
    println!("as 'first second / median of seconds 2-{SECONDS}' (IPv4, TCP, {SECONDS} s per run)\n");
    print!("{:<8} {:<9}", "rate", "direction");
    for shaper in shapers {
        print!(" {:>17}", shaper.label());
    }
    println!();
    for rate in RATES_BPS {
        let mut rows = [String::new(), String::new()];
        for shaper in shapers {
            let applied = apply(lab, shaper, rate);
            for (row, receives) in rows.iter_mut().zip([false, true]) {
                let cell = match lab.try_iperf(false, receives, SECONDS) {
                    Ok(seconds) => {
                        let first = 100.0 * seconds[0] / rate as f64;
                        let steady = 100.0 * median(&seconds[1..]) / rate as f64;
                        format!("{first:.0}% / {steady:.1}%")
                    }
                    // A burst smaller than one frame drops every full-sized packet.
                    Err(_) => "no transfer".to_string(),
                };
                *row += &format!(" {cell:>17}");
            }
            remove(lab, shaper, applied);
        }
        let rate_text = netrt_hook::request::units::format_rate(rate);
        println!("{rate_text:<8} {:<9}{}", "egress", rows[0]);
        println!("{rate_text:<8} {:<9}{}", "ingress", rows[1]);
    }
}

/// What has to be stopped to remove a shaper again.
enum Applied {
    Container(Container, Bundle),
    Cni,
}

fn apply(lab: &Lab, shaper: Shaper, rate_bps: u64) -> Applied {
    match shaper {
        Shaper::Netrt => {
            let netns = lab.netns_path();
            let rate = rate_bps.to_string();
            let annotations = [("net.egress", rate.as_str()), ("net.ingress", rate.as_str())];
            let mut spec = BundleSpec::new(Some(&netns), &annotations);
            spec.command = "sleep 600";
            let bundle = Bundle::create("nrt-bench", &spec);
            let container = Container::start("nrt-bench", &bundle).expect("netrt container starts");
            Applied::Container(container, bundle)
        }
        Shaper::CniKubernetesBurst => cni(lab, "ADD", rate_bps, KUBERNETES_BURST_BITS),
        Shaper::CniOneMsBurst => cni(lab, "ADD", rate_bps, rate_bps / 1000),
    }
}

fn remove(lab: &Lab, shaper: Shaper, applied: Applied) {
    match applied {
        Applied::Container(container, _bundle) => container.stop(),
        Applied::Cni => {
            cni(lab, "DEL", 1, 1);
            remove_cni_leftovers(lab);
            let _ = shaper;
        }
    }
}

/// The plugin's DEL removes its ifb only: the tbf and the ingress qdisc it
/// put on the host veth stay until the veth goes.
fn remove_cni_leftovers(lab: &Lab) {
    let host_veth = lab.host_veth.as_deref().unwrap();
    sh_quiet(&format!("tc qdisc del dev {host_veth} root; tc qdisc del dev {host_veth} ingress"));
}

fn cni_config(lab: &Lab, rate_bps: u64, burst_bits: u64) -> String {
    json!({
        "cniVersion": "0.4.0",
        "name": "netrt-bench",
        "type": "bandwidth",
        "ingressRate": rate_bps, "ingressBurst": burst_bits,
        "egressRate": rate_bps, "egressBurst": burst_bits,
        "prevResult": {
            "cniVersion": "0.4.0",
            "interfaces": [{"name": lab.host_veth.as_deref().unwrap()}, {"name": "eth0", "sandbox": lab.netns_path()}],
            "ips": [],
        },
    })
    .to_string()
}

fn cni_command(lab: &Lab, command: &str, config: &str) -> Child {
    spawn_cni("bandwidth", command, &lab.netns_path(), "nrt-bench", config)
}

/// Starts one CNI plugin as a runtime does, with its config on stdin.
fn spawn_cni(plugin: &str, command: &str, netns: &str, container_id: &str, config: &str) -> Child {
    let mut child = Command::new(format!("/usr/lib/cni/{plugin}"))
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", container_id)
        .env("CNI_NETNS", netns)
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", "/usr/lib/cni")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the CNI plugins run (containernetworking-plugins)");
    child.stdin.take().unwrap().write_all(config.as_bytes()).unwrap();
    child
}

fn cni(lab: &Lab, command: &str, rate_bps: u64, burst_bits: u64) -> Applied {
    let output = cni_command(lab, command, &cni_config(lab, rate_bps, burst_bits)).wait_with_output().unwrap();
    assert!(output.status.success(), "CNI {command} failed: {}", String::from_utf8_lossy(&output.stdout));
    Applied::Cni
}

fn latency(lab: &Lab, iterations: usize) {
    println!("Latency of one whole process, stdin to exit, over {iterations} runs (both directions limited to 10mbit)");
    // findmnt names the mounted type (stat -f says "ext2/ext3" for ext4 too).
    let filesystem = sh("mkdir -p /run/netrt && findmnt -n -o FSTYPE --target /run/netrt");
    println!("(/run/netrt, where netrt writes a record per setup, is on {})\n", filesystem.trim());
    println!("'left': runs after which the ifb, or a qdisc on the veth, was still there when teardown returned.\n");
    let (netrt, cni) = limits_latency(lab, iterations);
    print_rows(
        34,
        iterations,
        &[
            ("netrt-hook setup (createRuntime)", &netrt.setup, None),
            ("netrt-hook teardown (poststop)", &netrt.teardown, Some(netrt.left)),
            ("CNI bandwidth ADD", &cni.setup, None),
            ("CNI bandwidth DEL", &cni.teardown, Some(cni.left)),
        ],
    );
    let ratio = percentile(&netrt.teardown, 50) / percentile(&cni.teardown, 50);
    println!("\nnetrt teardown median / CNI bandwidth DEL median: {ratio:.2} (goal: at most 1.00)");
}

/// What a limit leaves on the lab's host veth and in the host's devices:
/// an ifb of netrt's or of the plugin's, a qdisc other than the default.
fn limit_leftovers(lab: &Lab) -> usize {
    let ifbs = host_devices().iter().filter(|name| name.starts_with("nrti") || name.starts_with("bwp")).count();
    let host_veth = lab.host_veth.as_deref().unwrap();
    let qdiscs: serde_json::Value = serde_json::from_str(&sh(&format!("tc -j qdisc show dev {host_veth}"))).unwrap();
    let shaping = qdiscs.as_array().unwrap().iter().filter(|q| q["kind"] != "noqueue").count();
    ifbs + shaping
}

/// Times netrt-hook itself, given the state of a process living in the
/// lab's container namespace, as runc would give it, and the CNI plugin on
/// the same veth, round after round, so the machine's drift (the kernel's
/// RCU grace periods vary from one moment to the next) hits both alike.
fn limits_latency(lab: &Lab, iterations: usize) -> (Timings, Timings) {
    let mut holder = Command::new("ip")
        .args(["netns", "exec", &lab.container_ns, "sleep", "600"])
        .spawn()
        .expect("a process in the container namespace");
    let own = fs::read_link("/proc/self/ns/net").unwrap();
    while fs::read_link(format!("/proc/{}/ns/net", holder.id())).map_or(true, |ns| ns == own) {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let bundle = std::env::temp_dir().join("netrt-bench-bundle");
    fs::create_dir_all(&bundle).unwrap();
    let config = json!({"ociVersion": "1.0.2", "annotations": {"net.egress": "10mbit", "net.ingress": "10mbit"}});
    fs::write(bundle.join("config.json"), config.to_string()).unwrap();
    let state = |status: &str| {
        json!({"ociVersion": "1.0.2", "id": "nrt-bench-lat", "status": status, "pid": holder.id(), "bundle": bundle})
            .to_string()
    };
    let (creating, stopped) = (state("creating"), state("stopped"));
    let hook = hook_binary();
    let cni_config = cni_config(lab, 10_000_000, 10_000_000 / 1000 * 20);
    let mut netrt = Timings::default();
    let mut cni = Timings::default();
    for _ in 0..iterations {
        netrt.setup.push(time_process(Command::new(&hook).arg("createRuntime"), &creating));
        netrt.teardown.push(time_process(Command::new(&hook).arg("poststop"), &stopped));
        netrt.left += usize::from(limit_leftovers(lab) > 0);

        let start = Instant::now();
        let output = cni_command(lab, "ADD", &cni_config).wait_with_output().unwrap();
        cni.setup.push(start.elapsed().as_secs_f64() * 1e3);
        assert!(output.status.success(), "CNI ADD: {}", String::from_utf8_lossy(&output.stdout));
        let start = Instant::now();
        let output = cni_command(lab, "DEL", &cni_config).wait_with_output().unwrap();
        cni.teardown.push(start.elapsed().as_secs_f64() * 1e3);
        assert!(output.status.success(), "CNI DEL: {}", String::from_utf8_lossy(&output.stdout));
        cni.left += usize::from(limit_leftovers(lab) > 0);
        remove_cni_leftovers(lab);
    }
    let _ = holder.kill();
    let _ = holder.wait();
    let _ = fs::remove_dir_all(&bundle);
    (netrt, cni)
}

fn time_process(command: &mut Command, stdin: &str) -> f64 {
    let start = Instant::now();
    let mut child = command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    let elapsed = start.elapsed().as_secs_f64() * 1e3;
    assert!(output.status.success(), "netrt-hook failed: {}", String::from_utf8_lossy(&output.stderr));
    elapsed
}

fn percentile(samples: &[f64], p: usize) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
    sorted[((sorted.len() - 1) * p + 50) / 100]
}

/// One way of running a container for the start benchmark.
struct Variant {
    label: &'static str,
    id: &'static str,
    bundle: Bundle,
    /// runc itself, or the netrt wrapper in front of it.
    runtime: PathBuf,
}

/// A busybox bundle running `true`; without netrt (no hooks at all) when
/// `annotations` is None.
fn start_bundle(id: &str, netns: Option<&str>, annotations: Option<&[(&str, &str)]>) -> Bundle {
    let spec = BundleSpec { command: "true", ..BundleSpec::new(netns, annotations.unwrap_or(&[])) };
    let spec = BundleSpec { new_netns: netns.is_none(), ..spec };
    let bundle = Bundle::create(id, &spec);
    if annotations.is_none() {
        let path = bundle.dir.join("config.json");
        let mut config: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        config.as_object_mut().unwrap().remove("hooks");
        fs::write(&path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    }
    bundle
}

/// Times one runc command. Its stdio goes to a file, not a pipe: the
/// container inherits runc's stdio and would hold a pipe open.
fn runc(runtime: &Path, arguments: &[&str]) -> f64 {
    let log_path = std::env::temp_dir().join("netrt-bench-runc.log");
    let log = fs::File::create(&log_path).unwrap();
    let start = Instant::now();
    let status = Command::new(runtime)
        .args(arguments)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .status()
        .unwrap();
    let elapsed = start.elapsed().as_secs_f64() * 1e3;
    assert!(
        status.success(),
        "{} {arguments:?}: {}",
        runtime.display(),
        fs::read_to_string(&log_path).unwrap_or_default()
    );
    elapsed
}

/// `runc create` (which runs netrt's setup) + `runc start`, and `runc
/// delete` (which runs its teardown), for containers with and without
/// netrt, taken in turns so that a drift of the machine hits all alike.
fn runc_start_overhead(iterations: usize) {
    let lab = Lab::bridged("strt");
    let lan = Lan::bridge("stlan");
    let bridge = lan.bridge.clone().unwrap();
    let netns = lab.netns_path();
    let limits = [("net.egress", "10mbit"), ("net.ingress", "10mbit")];
    let attachment = [
        ("net.bridge", bridge.as_str()),
        ("net.ip", "198.51.100.10/24"),
        ("net.gateway", "198.51.100.1"),
        ("net.egress", "10mbit"),
        ("net.ingress", "10mbit"),
    ];
    let (runc_path, wrapper) = (PathBuf::from("runc"), wrapper_binary());
    let variant = |label, id, netns, annotations, runtime: &PathBuf| Variant {
        label,
        id,
        bundle: start_bundle(id, netns, annotations),
        runtime: runtime.clone(),
    };
    let variants = [
        variant("runc, in a namespace with a veth", "nrt-bs-plain", Some(&netns), None, &runc_path),
        variant("  + netrt: egress, ingress 10mbit", "nrt-bs-shape", Some(&netns), Some(&limits), &runc_path),
        variant("  through the netrt wrapper, no settings", "nrt-bs-wrap", Some(&netns), None, &wrapper),
        variant("runc, own empty namespace", "nrt-bs-none", None, None, &runc_path),
        variant("  + netrt: bridge, IP, gw, limits", "nrt-bs-attach", None, Some(&attachment), &runc_path),
    ];
    println!("Container start with runc over {iterations} runs each, busybox running `true`, taken in turns.");
    println!("start = `runc create` (netrt's setup runs in it) + `runc start`; delete = `runc delete` (teardown).\n");
    println!("{:<42} {:>12} {:>12} {:>14}", "", "start median", "p95", "delete median");
    let mut starts = vec![vec![]; variants.len()];
    let mut deletes = vec![vec![]; variants.len()];
    for round in 0..=iterations {
        for (i, variant) in variants.iter().enumerate() {
            let bundle = variant.bundle.dir.display().to_string();
            let _ = Command::new("runc").args(["delete", "-f", variant.id]).output();
            let runtime = &variant.runtime;
            let start =
                runc(runtime, &["create", "--bundle", &bundle, variant.id]) + runc(runtime, &["start", variant.id]);
            while !sh(&format!("runc state {}", variant.id)).contains("\"stopped\"") {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            let delete = runc(&variant.runtime, &["delete", variant.id]);
            if round > 0 {
                // Round 0 warms the page cache and is not counted.
                starts[i].push(start);
                deletes[i].push(delete);
            }
        }
    }
    for (i, variant) in variants.iter().enumerate() {
        println!(
            "{:<42} {:>10.2}ms {:>10.2}ms {:>12.2}ms",
            variant.label,
            percentile(&starts[i], 50),
            percentile(&starts[i], 95),
            percentile(&deletes[i], 50)
        );
    }
    println!(
        "\nnetrt adds to the median start: {:.2} ms with limits only, {:.2} ms with bridge + IP + limits,",
        percentile(&starts[1], 50) - percentile(&starts[0], 50),
        percentile(&starts[4], 50) - percentile(&starts[3], 50)
    );
    println!(
        "and the wrapper in front of runc, for a container without settings: {:.2} ms to the start, {:.2} ms to the delete",
        percentile(&starts[2], 50) - percentile(&starts[0], 50),
        percentile(&deletes[2], 50) - percentile(&deletes[0], 50)
    );
}

/// `docker run --rm` of a container without netrt settings, through
/// `--runtime=netrt` and `--runtime=runc`, in turns. Uses the dockerd
/// that runs (it must know the netrt runtime), else starts one that knows
/// this build's netrt, and stops it again.
fn docker_start_overhead(iterations: usize) {
    let mut started = None;
    if !sh_output("docker info >/dev/null 2>&1").status.success() {
        let registered = fs::read_to_string("/etc/docker/daemon.json").is_ok_and(|text| text.contains("\"netrt\""));
        let mut dockerd = Command::new("dockerd");
        if !registered {
            dockerd.arg("--add-runtime").arg(format!("netrt={}", wrapper_binary().display()));
        }
        let log = fs::File::create(std::env::temp_dir().join("netrt-bench-dockerd.log")).unwrap();
        started = Some(
            dockerd.stdin(Stdio::null()).stdout(log.try_clone().unwrap()).stderr(log).spawn().expect("dockerd starts"),
        );
        let deadline = Instant::now() + std::time::Duration::from_secs(60);
        while !sh_output("docker info >/dev/null 2>&1").status.success() && Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }
    let runtimes = sh("docker info --format '{{json .Runtimes}}' 2>/dev/null || true");
    if !runtimes.contains("\"netrt\"") {
        println!("Docker part SKIPPED: the running dockerd does not know the netrt runtime (install/install.sh registers it).");
    } else {
        if !sh_output(&format!("docker image inspect {IMAGE} >/dev/null 2>&1")).status.success() {
            let tar = busybox_tar();
            sh(&format!("docker import {} {IMAGE}", tar.display()));
            let _ = fs::remove_file(tar);
        }
        println!("docker run --rm {IMAGE} true over {iterations} runs each, taken in turns.");
        println!("dockerd's runtimes: {}\n", runtimes.trim());
        println!("{:<38} {:>12} {:>12}", "", "median", "p95");
        let variants: [(&str, &[&str]); 3] = [
            ("--runtime=runc", &["--runtime=runc"]),
            ("--runtime=netrt, no settings", &["--runtime=netrt"]),
            (
                "--runtime=netrt, NETRT_EGRESS/INGRESS",
                &["--runtime=netrt", "-e", "NETRT_EGRESS=10mbit", "-e", "NETRT_INGRESS=10mbit"],
            ),
        ];
        // Docker 20.10 passes settings only as variables: read where the
        // admin turned them on (trust.env), as the installer does there.
        let node_config = Path::new("/etc/netrt/netrt.json");
        let original = fs::read(node_config).ok();
        let mut with_env: serde_json::Value =
            original.as_deref().and_then(|b| serde_json::from_slice(b).ok()).unwrap_or_else(|| json!({}));
        with_env["trust"]["env"] = json!(true);
        fs::create_dir_all("/etc/netrt").unwrap();
        fs::write(node_config, with_env.to_string()).unwrap();
        let mut samples = vec![vec![]; variants.len()];
        for round in 0..=iterations {
            for (i, (label, flags)) in variants.iter().enumerate() {
                let start = Instant::now();
                let output =
                    Command::new("docker").args(["run", "--rm"]).args(*flags).args([IMAGE, "true"]).output().unwrap();
                let elapsed = start.elapsed().as_secs_f64() * 1e3;
                assert!(output.status.success(), "docker run {label}: {}", String::from_utf8_lossy(&output.stderr));
                if round > 0 {
                    samples[i].push(elapsed);
                }
            }
        }
        match original {
            Some(bytes) => fs::write(node_config, bytes).unwrap(),
            None => fs::remove_file(node_config).unwrap(),
        }
        for (i, (label, _)) in variants.iter().enumerate() {
            println!("{label:<38} {:>10.2}ms {:>10.2}ms", percentile(&samples[i], 50), percentile(&samples[i], 95));
        }
        println!(
            "\nnetrt adds to the median docker run: {:.2} ms without settings, {:.2} ms with both limits",
            percentile(&samples[1], 50) - percentile(&samples[0], 50),
            percentile(&samples[2], 50) - percentile(&samples[0], 50)
        );
    }
    if let Some(mut dockerd) = started {
        sh_quiet(&format!("kill -TERM {}", dockerd.id()));
        let _ = dockerd.wait();
    }
}

/// Containers kept running for the scale part.
const SCALE_CONTAINERS: usize = 250;
const SCALE_CHECKPOINTS: [usize; 4] = [1, 50, 100, 250];

/// 250 running containers on one bridge, each with an address and both
/// limits, started one after the other with `runc run -d`. At 1, 50, 100
/// and 250 of them: the median setup and teardown of a probe container
/// (one netrt-hook process, as in the attach part), the time
/// `netrt-hook status` takes for all of them, and the peak memory of one
/// hook run.
fn scale(iterations: usize) {
    let lan = Lan::bridge("scale");
    let bridge = lan.bridge.clone().unwrap();
    println!("Scale: {SCALE_CONTAINERS} running containers on {bridge}, each with an IPv6 address and egress/ingress 10mbit;");
    println!("at each count, the median of {iterations} probe setups/teardowns (one netrt-hook process each),");
    println!("the median of 5 `netrt-hook status` runs over all of them, and one setup's peak memory.\n");
    println!(
        "{:>10} {:>14} {:>14} {:>14} {:>14} {:>14}",
        "containers", "setup median", "teardown", "status", "status --json", "peak memory"
    );
    let mut bundles = vec![];
    let mut first_setup = None;
    let mut last_setup = 0.0;
    for count in 1..=SCALE_CONTAINERS {
        let id = format!("nrt-scale-{count:03}");
        let address = format!("2001:db8:ff::{:x}/64", 0x1000 + count);
        let annotations = [
            ("net.bridge", bridge.as_str()),
            ("net.ip", address.as_str()),
            ("net.egress", "10mbit"),
            ("net.ingress", "10mbit"),
        ];
        let bundle = Bundle::create(&id, &BundleSpec { command: "sleep 3600", ..BundleSpec::isolated(&annotations) });
        let status = Command::new("runc")
            .args(["run", "-d", "--bundle", bundle.dir.to_str().unwrap(), &id])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "container {count} of {SCALE_CONTAINERS} does not start");
        bundles.push((id, bundle));
        if SCALE_CHECKPOINTS.contains(&count) {
            let Timings { setup, teardown, .. } =
                netrt_attach_latency(&bridge_annotations(&bridge), None, iterations, Namespace::GoneFirst);
            let status_table = median_of(5, || time_command(Command::new(hook_binary()).arg("status")));
            let status_json = median_of(5, || time_command(Command::new(hook_binary()).args(["status", "--json"])));
            let rows = sh(&format!("{} status | wc -l", hook_binary().display())).trim().parse::<usize>().unwrap_or(0);
            assert!(rows >= 2 * count, "status lists every limit of every container ({rows} rows for {count})");
            let memory_kb = peak_memory_kb(&bridge);
            let setup_median = percentile(&setup, 50);
            first_setup.get_or_insert(setup_median);
            last_setup = setup_median;
            println!(
                "{count:>10} {setup_median:>12.2}ms {:>12.2}ms {status_table:>12.2}ms {status_json:>12.2}ms {:>11.1} MB",
                percentile(&teardown, 50),
                memory_kb as f64 / 1024.0
            );
        }
    }
    let first = first_setup.unwrap();
    println!("\nsetup median at {SCALE_CONTAINERS} / at 1: {:.2} (goal: at most 1.5)", last_setup / first);
    for (id, _) in &bundles {
        let _ = Command::new("runc").args(["delete", "-f", id]).stdout(Stdio::null()).stderr(Stdio::null()).status();
    }
    let left = sh("ls /run/netrt/containers | grep -c nrt-scale; true");
    let claims = sh("find /run/netrt/addresses -lname 'nrt-scale-*' | wc -l");
    println!("after deleting them all: records left {}, address claims left {}", left.trim(), claims.trim());
}

fn median_of(runs: usize, mut measure: impl FnMut() -> f64) -> f64 {
    let samples: Vec<f64> = (0..runs).map(|_| measure()).collect();
    percentile(&samples, 50)
}

fn time_command(command: &mut Command) -> f64 {
    let start = Instant::now();
    let output = command.output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    start.elapsed().as_secs_f64() * 1e3
}

/// Maximum resident set of one netrt-hook setup of the probe, from GNU time.
fn peak_memory_kb(bridge: &str) -> u64 {
    let bundle = std::env::temp_dir().join("netrt-bench-memory");
    fs::create_dir_all(&bundle).unwrap();
    let config = json!({"ociVersion": "1.0.2", "annotations": {
        "net.bridge": bridge, "net.ip": "2001:db8:ff::10/64", "net.egress": "10mbit", "net.ingress": "10mbit"}});
    fs::write(bundle.join("config.json"), config.to_string()).unwrap();
    let holder = isolated_process();
    let pid = holder.id();
    let state = |status: &str| {
        json!({"ociVersion": "1.0.2", "id": "nrt-bench-mem", "status": status, "pid": pid, "bundle": bundle})
            .to_string()
    };
    let report = std::env::temp_dir().join("netrt-bench-memory.time");
    let mut command = Command::new("/usr/bin/time");
    command.arg("-f").arg("%M").arg("-o").arg(&report).arg(hook_binary()).arg("createRuntime");
    time_process(&mut command, &state("creating"));
    end(holder);
    time_process(Command::new(hook_binary()).arg("poststop"), &state("stopped"));
    let _ = fs::remove_dir_all(&bundle);
    fs::read_to_string(&report).unwrap().trim().parse().unwrap()
}

/// A link group of the benchmark's own, never netrt's.
const BENCH_GROUP: u32 = 0x6e72_6263;

/// Where teardown's time goes, measured with iproute2 in the same shapes
/// netrt's requests take: one `ip` process per row, so every row carries the
/// cost of starting `ip` and one request, shown first. Then the kernel's own
/// account: where a deleting process sleeps (`/proc/PID/wchan`).
fn teardown_cost(iterations: usize) {
    let ns = "nrtbtdc";
    sh_quiet(&format!("ip netns del {ns}"));
    sh(&format!("ip netns add {ns}"));
    let batch = std::env::temp_dir().join("netrt-bench-batch");
    fs::write(&batch, "link del nrtbtdv\nlink del nrtbtdi\n").unwrap();
    let veth = format!("ip link add nrtbtdv type veth peer name eth0 netns {ns}");
    let both = format!("{veth} && ip link add nrtbtdi type ifb");
    let grouped =
        format!("{both} && ip link set nrtbtdv group {BENCH_GROUP} && ip link set nrtbtdi group {BENCH_GROUP}");
    let group = BENCH_GROUP.to_string();
    let batch_path = batch.display().to_string();
    let rows: [(&str, String, Vec<&str>); 6] = [
        ("ip, no deletion (start + 1 request)", String::new(), vec!["link", "show", "lo"]),
        ("one ifb", "ip link add nrtbtdi type ifb".into(), vec!["link", "del", "nrtbtdi"]),
        ("veth pair, by its host end", veth.clone(), vec!["link", "del", "nrtbtdv"]),
        ("veth pair, by its end in the namespace", veth.clone(), vec!["-n", ns, "link", "del", "eth0"]),
        ("veth pair + ifb, 2 requests", both.clone(), vec!["-batch", &batch_path]),
        ("veth pair + ifb, 1 request (link group)", grouped.clone(), vec!["link", "del", "group", &group]),
    ];
    println!("Where teardown's time goes: deleting devices as netrt's teardown does, over {iterations} runs, with");
    println!("iproute2 (one process per row; the first row is the cost of the process and one request).\n");
    println!("{:<44} {:>10} {:>10}", "", "median", "p95");
    for (label, prepare, arguments) in &rows {
        let mut samples = vec![];
        for _ in 0..iterations {
            if !prepare.is_empty() {
                sh(prepare);
            }
            samples.push(time_command(Command::new("ip").args(arguments)));
        }
        println!("{label:<44} {:>8.2}ms {:>8.2}ms", percentile(&samples, 50), percentile(&samples, 95));
    }
    let mut waits: std::collections::BTreeMap<String, usize> = Default::default();
    for _ in 0..iterations {
        sh(&grouped);
        let mut child = Command::new("ip").args(["link", "del", "group", &group]).spawn().unwrap();
        let wchan = format!("/proc/{}/wchan", child.id());
        while child.try_wait().unwrap().is_none() {
            let symbol = fs::read_to_string(&wchan).unwrap_or_default();
            *waits.entry(if symbol.is_empty() || symbol == "0" { "(running)".into() } else { symbol }).or_default() +=
                1;
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
    }
    let total: usize = waits.values().sum();
    let mut shares: Vec<_> = waits.into_iter().collect();
    shares.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    let shares: Vec<String> = shares
        .iter()
        .take(4)
        .map(|(symbol, n)| format!("{symbol} {:.0} %", *n as f64 * 100.0 / total as f64))
        .collect();
    println!(
        "\nwhere `ip link del group` spends its time (wchan, {total} samples every 0.2 ms): {}",
        shares.join(", ")
    );
    sh_quiet(&format!("ip netns del {ns}"));
    let _ = fs::remove_file(&batch);
}

/// Setup and teardown of a bridge attachment whose address comes from a
/// pool on a local 3-member etcd cluster, beside the same attachment with a
/// static address outside any pool, in one run, round after round; the
/// pools hold 10 and 10,000 claims (reservations made with `pool reserve`).
/// A second cluster keeps its data on a tmpfs: the same requests without
/// the disk's wait, to show what etcd's durable commit costs on this disk.
fn pools_latency(iterations: usize) {
    use netrt_integration::cluster::EtcdCluster;
    let on_disk = EtcdCluster::start("bench", 3, 24790, None);
    let mut on_tmpfs = EtcdCluster::start_in(Path::new("/dev/shm"), "bench-shm", 3, 24810, None);
    let lan = Lan::bridge("bnpl");
    let bridge = lan.bridge.clone().unwrap();
    let dir = std::env::temp_dir().join("netrt-bench-pools");
    fs::create_dir_all(&dir).unwrap();
    let pool = |subnet: &str, gateway: &str| json!({"bridge": bridge, "subnets": [subnet], "gateways": [gateway]});
    // A pool that probes before use: nothing on the LAN answers, so every
    // setup waits the whole probe time.
    let mut probed = pool("100.64.0.0/16", "100.64.0.1");
    probed["probe"] = json!("100ms");
    let config_for = |cluster: &EtcdCluster, name: &str| {
        let path = dir.join(name);
        fs::write(
            &path,
            json!({
                "node": "bench",
                "registry": {"etcd": {"endpoints": cluster.endpoints(), "prefix": "/netrt-bench/"}},
                "pools": {"p10": pool("198.18.0.0/16", "198.18.0.1"), "p10k": pool("198.19.0.0/16", "198.19.0.1"),
                          "probed": probed.clone()},
            })
            .to_string(),
        )
        .unwrap();
        path
    };
    let (disk_config, tmpfs_config) = (config_for(&on_disk, "disk.json"), config_for(&on_tmpfs, "tmpfs.json"));
    let hook = hook_binary();
    let reserve = |config: &Path, pool: &str, span: &str| {
        let output = Command::new(&hook)
            .env("NETRT_CONFIG", config)
            .args(["pool", "reserve", pool, span, "--note", "bench"])
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    };
    let started = Instant::now();
    reserve(&disk_config, "p10", "198.18.0.2-198.18.0.11");
    reserve(&disk_config, "p10k", "198.19.0.2-198.19.39.17");
    let reserving = started.elapsed();
    reserve(&tmpfs_config, "p10", "198.18.0.2-198.18.0.11");
    println!("Latency of a bridge attachment with both limits over {iterations} runs, the address from a pool");
    println!("on a local 3-member etcd cluster, beside a static address outside any pool; the pools hold");
    println!(
        "10 and 10,000 claims (reserving 10,010 addresses took {:.1} s). The members' data lies on",
        reserving.as_secs_f64()
    );
    println!(
        "{} (this machine's disk); a second cluster keeps it on a tmpfs (/dev/shm), where etcd's",
        std::env::temp_dir().display()
    );
    println!("durable commit does not wait for the disk.\n");
    let limits = [("net.egress", "10mbit"), ("net.ingress", "10mbit")];
    let with = |extra: &[(&str, &str)]| {
        let mut map = serde_json::Map::new();
        for (k, v) in limits.iter().chain(extra) {
            map.insert(k.to_string(), json!(v));
        }
        serde_json::Value::Object(map)
    };
    let fixed = with(&[("net.bridge", &bridge), ("net.ip", "198.51.100.10/24"), ("net.gateway", "198.51.100.1")]);
    let p10 = with(&[("net.pool", "p10")]);
    let p10k = with(&[("net.pool", "p10k")]);
    let probing = with(&[("net.pool", "probed")]);
    let mut rows: Vec<Timings> = (0..5).map(|_| Timings::default()).collect();
    let cases = [
        (&fixed, &disk_config),
        (&p10, &disk_config),
        (&p10k, &disk_config),
        (&p10, &tmpfs_config),
        (&probing, &tmpfs_config),
    ];
    for _ in 0..iterations {
        for (row, (annotations, config)) in rows.iter_mut().zip(cases) {
            std::env::set_var("NETRT_CONFIG", config);
            row.add(netrt_attach_latency(annotations, None, 1, Namespace::GoneFirst));
        }
    }
    std::env::remove_var("NETRT_CONFIG");
    print_rows(
        50,
        iterations,
        &[
            ("setup, static address (no pool)", &rows[0].setup, None),
            ("setup, net.pool, etcd on disk, 10 claimed", &rows[1].setup, None),
            ("setup, net.pool, etcd on disk, 10,000 claimed", &rows[2].setup, None),
            ("setup, net.pool, etcd on tmpfs, 10 claimed", &rows[3].setup, None),
            ("setup, net.pool, etcd on tmpfs, probe 100ms", &rows[4].setup, None),
            ("teardown, static address (no pool)", &rows[0].teardown, Some(rows[0].left)),
            ("teardown, net.pool, etcd on disk, 10 claimed", &rows[1].teardown, Some(rows[1].left)),
            ("teardown, net.pool, etcd on disk, 10,000 claimed", &rows[2].teardown, Some(rows[2].left)),
            ("teardown, net.pool, etcd on tmpfs, 10 claimed", &rows[3].teardown, Some(rows[3].left)),
            ("teardown, net.pool, etcd on tmpfs, probe 100ms", &rows[4].teardown, Some(rows[4].left)),
        ],
    );
    let median = |v: &Vec<f64>| percentile(v, 50);
    println!(
        "\netcd on disk adds {:.2} ms to the setup median, on tmpfs {:.2} ms (goal: at most 2 ms)",
        median(&rows[1].setup) - median(&rows[0].setup),
        median(&rows[3].setup) - median(&rows[0].setup)
    );
    println!(
        "setup median with 10,000 claimed / with 10 claimed: {:.2} (goal: at most 1.3)",
        median(&rows[2].setup) / median(&rows[1].setup)
    );
    println!(
        "probe 100ms adds {:.2} ms to the pool setup median on tmpfs: the probe time plus {:.2} ms \
         (goal: at most 5 ms)",
        median(&rows[4].setup) - median(&rows[3].setup),
        median(&rows[4].setup) - median(&rows[3].setup) - 100.0
    );
    for (label, cluster) in [("disk", &on_disk), ("tmpfs", &on_tmpfs)] {
        let [connect, read, write] = registry_request_costs(cluster, iterations);
        println!(
            "in one process, etcd on {label}: a fresh connection with its first read {connect:.2} ms, \
                  a read on it {read:.2} ms, a claim (write transaction) {write:.2} ms (medians)"
        );
    }
    for cluster in [&on_disk, &on_tmpfs] {
        let left = cluster
            .etcdctl("get --prefix /netrt-bench/nodes/ --keys-only")
            .lines()
            .filter(|l| !l.trim().is_empty())
            .count();
        println!("claims of containers left in etcd after the runs: {left}");
    }
    reclaim_cost(&on_tmpfs, &bridge, &dir);
    // How soon a setup is refused when the registry has no quorum: the
    // functional tests bound this only against hangs.
    fs::write(
        &tmpfs_config,
        fs::read_to_string(&tmpfs_config).unwrap().replace("\"prefix\":", "\"timeout\":\"1s\",\"prefix\":"),
    )
    .unwrap();
    on_tmpfs.stop_member(1);
    on_tmpfs.stop_member(2);
    let config = format!("NETRT_CONFIG={}", tmpfs_config.display());
    let refused: Vec<f64> =
        (0..iterations.min(5)).map(|_| refusal_ms("nrt-bench-noq", &[("net.pool", "p10")], &[&config])).collect();
    println!(
        "two of three members stopped, registry timeout 1s: a pool setup refused after {:.0} ms (median of {})",
        percentile(&refused, 50),
        refused.len()
    );
    let _ = fs::remove_dir_all(&dir);
}

/// The registry settings the benchmark's own store uses: `cluster`,
/// keys under `prefix`, the defaults otherwise.
fn bench_etcd(cluster: &netrt_integration::cluster::EtcdCluster, prefix: &str) -> netrt_hook::config::pools::Etcd {
    netrt_hook::config::pools::Etcd {
        endpoints: cluster.endpoints(),
        prefix: prefix.into(),
        timeout_ms: 2000,
        ca: None,
        cert: None,
        key: None,
        user: None,
        password_file: None,
        node_ttl_s: netrt_hook::config::pools::DEFAULT_NODE_TTL_S,
        reclaim_after_s: None,
    }
}

/// Reclaiming 1,000 claims of a dead node, beside releasing the same
/// claims with `pool release --node`, both by netrt-hook against the same
/// etcd (on a tmpfs). Reclaim probes every address on the pool's bridge
/// first (nothing answers), 256 at a time, each batch for the probe time.
fn reclaim_cost(cluster: &netrt_integration::cluster::EtcdCluster, bridge: &str, dir: &Path) {
    use netrt_hook::pools::etcd::EtcdStore;
    use netrt_hook::pools::store::{Claim, ClaimStore};
    const CLAIMS: u32 = 1000;
    let prefix = "/netrt-bench-reclaim/";
    let config = dir.join("reclaim.json");
    fs::write(
        &config,
        json!({"node": "bench", "registry": {"etcd": {"endpoints": cluster.endpoints(), "prefix": prefix,
                                                       "reclaim_after": "1s"}},
               "pools": {"gone": {"bridge": bridge, "subnets": ["100.65.0.0/16"], "gateways": ["100.65.0.1"],
                                  "probe": "100ms"}}})
        .to_string(),
    )
    .unwrap();
    let etcd = bench_etcd(cluster, prefix);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    // The claims of a node that is gone (it never had a liveness key).
    let claim_all = || {
        runtime.block_on(async {
            let mut store = EtcdStore::connect(&etcd, false).await.unwrap();
            for i in 0..CLAIMS {
                let address = std::net::IpAddr::from([100, 65, 1 + (i / 250) as u8, 1 + (i % 250) as u8]);
                let claim = Claim::for_container(address, "ghost", &format!("c{i}"));
                assert!(store.create("gone", &claim, false).await.unwrap().is_none());
            }
        })
    };
    let hook = |arguments: &[&str]| {
        let start = Instant::now();
        let output = Command::new(hook_binary()).env("NETRT_CONFIG", &config).args(arguments).output().unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        (start.elapsed().as_secs_f64() * 1e3, String::from_utf8_lossy(&output.stdout).into_owned())
    };
    claim_all();
    let (release_ms, released) = hook(&["pool", "release", "--node", "ghost"]);
    assert_eq!(released.lines().count(), CLAIMS as usize, "{released}");
    claim_all();
    hook(&["renew"]); // notes the node dead; reclaim waits reclaim_after from then
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let (reclaim_ms, reclaimed) = hook(&["renew"]);
    let count = reclaimed.lines().filter(|l| l.starts_with("reclaimed ")).count();
    assert_eq!(count, CLAIMS as usize, "{reclaimed}");
    let batches = CLAIMS.div_ceil(netrt_hook::probe::BATCH as u32);
    let probing_ms = 100.0 * f64::from(batches);
    println!(
        "\nreclaiming {CLAIMS} claims of a dead node (renew, probe 100ms, {batches} batches of at most {} \
         probed at once): {reclaim_ms:.0} ms; releasing them with pool release --node: {release_ms:.0} ms; \
         reclaim less its {probing_ms:.0} ms of probing / release: {:.2} (goal: at most 2)",
        netrt_hook::probe::BATCH,
        (reclaim_ms - probing_ms) / release_ms
    );
    cluster.etcdctl(&format!("del --prefix {prefix}"));
}

/// Times `runc run` of a container whose setup netrt refuses, in a
/// namespace of its own, to the moment runc has returned.
fn refusal_ms(id: &str, annotations: &[(&str, &str)], hook_env: &[&str]) -> f64 {
    let bundle = Bundle::create(id, &BundleSpec { command: "true", hook_env, ..BundleSpec::isolated(annotations) });
    let start = Instant::now();
    let output = Command::new("runc")
        .args(["run", "--bundle", &bundle.dir.display().to_string(), id])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let elapsed = start.elapsed().as_secs_f64() * 1e3;
    assert!(!output.status.success(), "{id} was refused");
    let _ = Command::new("runc").args(["delete", "-f", id]).output();
    elapsed
}

/// Where a pool setup's time in etcd goes, measured inside one process
/// with netrt's own store: a fresh connection and its first read, a second
/// read on the same connection, and a claim (one write transaction, its
/// release not counted).
fn registry_request_costs(cluster: &netrt_integration::cluster::EtcdCluster, iterations: usize) -> [f64; 3] {
    use netrt_hook::pools::etcd::EtcdStore;
    use netrt_hook::pools::store::{Claim, ClaimStore};
    let etcd = bench_etcd(cluster, "/netrt-bench-costs/");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (mut connect, mut read, mut write) = (vec![], vec![], vec![]);
    runtime.block_on(async {
        for i in 0..iterations {
            let ms = |since: Instant| since.elapsed().as_secs_f64() * 1e3;
            let start = Instant::now();
            let mut store = EtcdStore::connect(&etcd, false).await.unwrap();
            store.last("costs", false).await.unwrap();
            connect.push(ms(start));
            let start = Instant::now();
            store.last("costs", false).await.unwrap();
            read.push(ms(start));
            let claim = Claim::for_container(std::net::IpAddr::from([198, 18, 200, i as u8]), "bench", "costs");
            let start = Instant::now();
            assert!(store.create("costs", &claim, true).await.unwrap().is_none());
            write.push(ms(start));
            for held in store.held_by("bench", Some("costs")).await.unwrap() {
                store.delete(&held).await.unwrap();
            }
        }
    });
    [percentile(&connect, 50), percentile(&read, 50), percentile(&write, 50)]
}

/// Setup with `net.ip=dhcp` against dnsmasq on a LAN of this machine,
/// beside the same attachment with a static address, round after round;
/// and, from a packet socket on the LAN, when the first DISCOVER of each
/// run came, counted from the start of its hook process.
fn dhcp_latency(iterations: usize) {
    use netrt_integration::dhcp::Dnsmasq;
    let lan = Lan::bridge("bndh");
    let bridge = lan.bridge.clone().unwrap();
    let server = Dnsmasq::start(&lan.peer_ns, "eth0", "2m", &["--no-ping"]);
    let watcher = DiscoverWatch::start(&lan.peer_ns, "eth0");
    println!(
        "Latency of a bridge attachment over {iterations} runs: its IPv4 address from dnsmasq {} on the same",
        dnsmasq_version()
    );
    println!("machine (net.ip=dhcp, the whole DISCOVER/OFFER/REQUEST/ACK, lease installed), beside a static");
    println!("198.51.100.10/24 with its gateway; no limits, a fresh namespace each run. dnsmasq runs with");
    println!("--no-ping: by default it pings an address before offering it and waits 3 s for an answer,");
    println!("which any setup then waits for too. Teardown releases the lease (DHCPRELEASE).\n");
    let fixed = json!({"net.bridge": bridge, "net.ip": "198.51.100.10/24", "net.gateway": "198.51.100.1"});
    let leased = json!({"net.bridge": bridge, "net.ip": "dhcp"});
    let (mut static_rows, mut dhcp_rows) = (Timings::default(), Timings::default());
    for _ in 0..iterations {
        static_rows.add(netrt_attach_latency(&fixed, None, 1, Namespace::GoneFirst));
        dhcp_rows.add(netrt_attach_latency(&leased, None, 1, Namespace::GoneFirst));
    }
    let discovers = watcher.stop();
    let to_discover: Vec<f64> = dhcp_rows
        .started
        .iter()
        .filter_map(|start| {
            discovers.iter().find(|seen| *seen > start).map(|seen| seen.duration_since(*start).as_secs_f64() * 1e3)
        })
        .collect();
    print_rows(
        46,
        iterations,
        &[
            ("setup, static address", &static_rows.setup, None),
            ("setup, net.ip=dhcp", &dhcp_rows.setup, None),
            ("hook start to its first DISCOVER on the LAN", &to_discover, None),
            ("teardown, static address (runc)", &static_rows.teardown, Some(static_rows.left)),
            ("teardown, net.ip=dhcp, with DHCPRELEASE", &dhcp_rows.teardown, Some(dhcp_rows.left)),
        ],
    );
    println!(
        "\nDHCP adds {:.2} ms to the setup median (goal: at most 3 ms); {} of {iterations} runs' DISCOVERs seen",
        percentile(&dhcp_rows.setup, 50) - percentile(&static_rows.setup, 50),
        to_discover.len()
    );
    println!("leases dnsmasq still holds after the runs: {}", server.leases().len());
    let closing: Vec<f64> = (0..iterations).map(|_| packet_socket_close_ms()).collect();
    println!(
        "closing a bound packet socket, as each DHCP setup does at its end: {:.2} ms (median; the kernel",
        percentile(&closing, 50)
    );
    println!("waits one RCU grace period, synchronize_net, before it lets the socket go)");
    // How soon a setup is refused when no server answers: its timeout and
    // what the hook adds (the functional tests bound this only against hangs).
    let silent = Lan::bridge("bndn");
    let silent_bridge = silent.bridge.clone().unwrap();
    let annotations = [("net.bridge", silent_bridge.as_str()), ("net.ip", "dhcp"), ("net.dhcp.timeout", "1s")];
    let refused: Vec<f64> = (0..iterations.min(5)).map(|_| refusal_ms("nrt-bench-dhno", &annotations, &[])).collect();
    println!(
        "no server answering, net.dhcp.timeout=1s: refused after {:.0} ms (median of {})",
        percentile(&refused, 50),
        refused.len()
    );
}

/// Opens the hook's own packet socket, binds it to the loopback
/// interface, and times its close.
fn packet_socket_close_ms() -> f64 {
    let socket = netrt_hook::dhcp::client::PacketSocket::open().expect("a packet socket (needs CAP_NET_RAW)");
    socket.bind(1).expect("bound to lo");
    let start = Instant::now();
    drop(socket);
    start.elapsed().as_secs_f64() * 1e3
}

fn dnsmasq_version() -> String {
    let text = sh("dnsmasq --version");
    text.split_whitespace().nth(2).unwrap_or("?").to_string()
}

/// A thread that notes when DHCPDISCOVERs pass interface `ifname` of
/// namespace `netns`, on a packet socket.
struct DiscoverWatch {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Vec<Instant>>,
}

impl DiscoverWatch {
    fn start(netns: &str, ifname: &str) -> DiscoverWatch {
        let index: i32 =
            sh(&format!("ip netns exec {netns} cat /sys/class/net/{ifname}/ifindex")).trim().parse().unwrap();
        let ns = netrt_hook::kernel::netns::NetNs::open(format!("/run/netns/{netns}")).unwrap();
        let fd = ns
            .run_in(|| unsafe {
                libc::socket(libc::AF_PACKET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, (0x0800u16).to_be() as i32)
            })
            .unwrap();
        assert!(fd >= 0, "packet socket: {}", std::io::Error::last_os_error());
        let mut address: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        address.sll_family = libc::AF_PACKET as u16;
        address.sll_protocol = 0x0800u16.to_be();
        address.sll_ifindex = index;
        let bound = unsafe {
            libc::bind(
                fd,
                &address as *const libc::sockaddr_ll as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        assert_eq!(bound, 0, "bind: {}", std::io::Error::last_os_error());
        let timeout = libc::timeval { tv_sec: 0, tv_usec: 100_000 };
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&timeout as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as u32,
            );
        }
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut seen = vec![];
            let mut buffer = [0u8; 2048];
            while !stopping.load(std::sync::atomic::Ordering::Relaxed) {
                let got = unsafe { libc::recv(fd, buffer.as_mut_ptr().cast(), buffer.len(), 0) };
                if got > 0 && is_discover(&buffer[..got as usize]) {
                    seen.push(Instant::now());
                }
            }
            unsafe { libc::close(fd) };
            seen
        });
        DiscoverWatch { stop, thread }
    }

    fn stop(self) -> Vec<Instant> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// Whether an IPv4 packet is UDP to port 67 carrying DHCP message type 1.
fn is_discover(packet: &[u8]) -> bool {
    let header = ((packet[0] & 0x0f) as usize) * 4;
    if packet.len() < header + 8 + 240 || packet[9] != 17 || packet[header + 2..header + 4] != [0, 67] {
        return false;
    }
    let dhcp = &packet[header + 8..];
    if dhcp[236..240] != [99, 130, 83, 99] {
        return false;
    }
    let mut at = 240;
    while at + 1 < dhcp.len() {
        match dhcp[at] {
            0 => at += 1,
            255 => return false,
            53 => return dhcp.get(at + 2) == Some(&1),
            _ => at += 2 + dhcp[at + 1] as usize,
        }
    }
    false
}

/// A setup of container `id` by the release hook in a fresh namespace,
/// kept until `release`.
struct Held {
    id: String,
    holder: Child,
    bundle: PathBuf,
}

impl Held {
    fn start(id: &str, annotations: &serde_json::Value) -> Held {
        let bundle = std::env::temp_dir().join(format!("netrt-bench-{id}"));
        fs::create_dir_all(&bundle).unwrap();
        fs::write(bundle.join("config.json"), json!({"ociVersion": "1.0.2", "annotations": annotations}).to_string())
            .unwrap();
        let holder = isolated_process();
        let held = Held { id: id.to_string(), holder, bundle };
        time_process(Command::new(hook_binary()).arg("createRuntime"), &held.state("creating"));
        held
    }

    fn state(&self, status: &str) -> String {
        json!({"ociVersion": "1.0.2", "id": self.id, "status": status, "pid": self.holder.id(), "bundle": self.bundle})
            .to_string()
    }

    fn pid(&self) -> u32 {
        self.holder.id()
    }

    fn release(self) {
        time_process(Command::new(hook_binary()).arg("poststop"), &self.state("stopped"));
        end(self.holder);
        let _ = fs::remove_dir_all(&self.bundle);
    }
}

/// Traffic between two containers on the bridge never crosses the uplink's
/// shaper: A to B with both guaranteed on an uplink declared at 100mbit,
/// beside the same pair with no guarantee (no shaper on the uplink at all).
fn bridge_bypass(bridge: &str, declare: &dyn Fn(&str)) {
    declare("100mbit");
    println!("\nBetween two containers on the bridge (iperf3, TCP, 5 s, median per-second goodput at B): with");
    println!("10mbit guarantees each on the uplink declared at 100mbit, and without any guarantee, in one run.");
    println!("Traffic between them stays on the bridge, so the uplink's capacity does not bound it.\n");
    let mut rows = vec![];
    for guaranteed in [true, false] {
        let mut rates = vec![];
        for _ in 0..3 {
            let start = |i: u8| {
                let mut annotations = json!({"net.bridge": bridge, "net.ip": format!("198.51.100.{}/24", 40 + i)});
                if guaranteed {
                    annotations["net.egress.min"] = json!("10mbit");
                    annotations["net.ingress.min"] = json!("10mbit");
                }
                Held::start(&format!("nrt-bench-by{i}"), &annotations)
            };
            let (a, b) = (start(0), start(1));
            let b_ns = name_netns_of(b.pid(), "nrtbenchby");
            let a_ns = name_netns_of(a.pid(), "nrtbenchbya");
            let per_second =
                iperf(&b_ns.0, &a_ns.0, "198.51.100.41", false, false, 5).unwrap_or_else(|e| panic!("{e}"));
            rates.push(median(&per_second[1..]));
            drop((a_ns, b_ns));
            a.release();
            b.release();
        }
        rows.push(rates);
    }
    let show = |rates: &[f64]| rates.iter().map(|r| format!("{:.0}", r / 1e6)).collect::<Vec<_>>().join(" ");
    println!("{:<44} {:>20}  median", "", "Mbit/s, 3 rounds");
    println!(
        "{:<44} {:>20}  {:.0}",
        "A to B, both guaranteed (uplink at 100mbit)",
        show(&rows[0]),
        median(&rows[0]) / 1e6
    );
    println!("{:<44} {:>20}  {:.0}", "A to B, no guarantee (reference)", show(&rows[1]), median(&rows[1]) / 1e6);
    println!("ratio: {:.2}", median(&rows[0]) / median(&rows[1]));
}

/// Guarantees on an uplink: the setup latency a guarantee adds, then the
/// fairness table (each container's guarantee beside what it received)
/// for 2, 4 and 8 containers sending at once, at 100mbit and 1gbit.
fn uplinks(iterations: usize) {
    let lan = Lan::bridge("bnup");
    let bridge = lan.bridge.clone().unwrap();
    let uplink = "nrtbnupl";
    let config = std::env::temp_dir().join("netrt-bench-uplinks.json");
    let declare = |capacity: &str| {
        fs::write(&config, json!({"uplinks": {uplink: {"capacity": capacity}}}).to_string()).unwrap();
    };
    declare("1gbit");
    // The hook processes the benchmark starts read this configuration.
    std::env::set_var("NETRT_CONFIG", &config);

    println!("Latency of a bridge attachment over {iterations} runs with a static address, without and with a");
    println!("guarantee (net.egress.min and net.ingress.min of 10mbit on the uplink, declared at 1gbit): the");
    println!("first guarantee puts the shaper on the uplink (and teardown takes it off); with another");
    println!("container's guarantee already there, setup adds one class per direction.\n");
    let plain = json!({"net.bridge": bridge, "net.ip": "198.51.100.10/24", "net.gateway": "198.51.100.1"});
    let mut guaranteed = plain.clone();
    guaranteed["net.egress.min"] = json!("10mbit");
    guaranteed["net.ingress.min"] = json!("10mbit");
    let (mut without, mut first, mut joining) = (Timings::default(), Timings::default(), Timings::default());
    let other = json!({"net.bridge": bridge, "net.ip": "198.51.100.20/24", "net.egress.min": "10mbit", "net.ingress.min": "10mbit"});
    // Round after round, so that the machine's drift is in all three rows.
    for _ in 0..iterations {
        without.add(netrt_attach_latency(&plain, None, 1, Namespace::GoneFirst));
        first.add(netrt_attach_latency(&guaranteed, None, 1, Namespace::GoneFirst));
        let holder = Held::start("nrt-bench-uph", &other);
        joining.add(netrt_attach_latency(&guaranteed, None, 1, Namespace::GoneFirst));
        holder.release();
    }
    print_rows(
        52,
        iterations,
        &[
            ("setup, no guarantee", &without.setup, None),
            ("setup, first guarantee on the uplink", &first.setup, None),
            ("setup, beside another guarantee", &joining.setup, None),
            ("teardown, no guarantee", &without.teardown, Some(without.left)),
            ("teardown, the last guarantee (shaper removed)", &first.teardown, Some(first.left)),
            ("teardown, beside another guarantee", &joining.teardown, Some(joining.left)),
        ],
    );
    let added = |rows: &Timings| percentile(&rows.setup, 50) - percentile(&without.setup, 50);
    println!("\nadded by a guarantee (median): {:+.2} ms as the first on the uplink, {:+.2} ms beside another (goal: at most 1 ms)", added(&first), added(&joining));

    bridge_bypass(&bridge, &declare);

    println!("\nFairness: n containers on the bridge send to the LAN at once for 6 s (iperf3, TCP, one flow each),");
    println!("each with its own guarantee; rates are the receivers' median per-second goodput after the first");
    println!("second. \"of min\" is goodput ÷ (guarantee × 1448/1514), TCP's payload share of a full Ethernet");
    println!("frame, which is what a class at that rate can carry; \"used\" is the sum on the same terms.");
    println!("Goal: every container at least 95 % of its guarantee, capacity used at least 95 %.\n");
    let shares: [&[u64]; 3] = [&[60, 30], &[40, 25, 15, 10], &[25, 20, 15, 10, 8, 6, 4, 2]];
    println!("Beside it, the reference: the same containers without guarantees behind a plain tbf at the");
    println!("capacity on the uplink (what shaping the uplink alone gives), in the same run.\n");
    println!(
        "{:<9} {:>2}  {:>10} {:>14} {:>8}   {:>14} {:>8}",
        "capacity", "n", "guarantee", "netrt", "of min", "plain tbf", "of min"
    );
    let payload = 1448.0 / 1514.0;
    let run = |percents: &[u64], capacity_mbit: u64, guaranteed: bool| -> Vec<f64> {
        let held: Vec<Held> = percents
            .iter()
            .enumerate()
            .map(|(i, percent)| {
                let mut annotations = json!({"net.bridge": bridge, "net.ip": format!("198.51.100.{}/24", 30 + i)});
                if guaranteed {
                    annotations["net.egress.min"] = json!(format!("{}mbit", capacity_mbit * percent / 100));
                }
                Held::start(&format!("nrt-bench-fair{i}"), &annotations)
            })
            .collect();
        let pids: Vec<u32> = held.iter().map(Held::pid).collect();
        let rates = flows_at_once(&lan.peer_ns, LAN_PEER4, &pids, false, 6);
        held.into_iter().for_each(Held::release);
        rates
    };
    for (capacity, capacity_mbit) in [("100mbit", 100u64), ("1gbit", 1000)] {
        declare(capacity);
        for percents in shares {
            let with = run(percents, capacity_mbit, true);
            sh(&format!(
                "tc qdisc add dev {uplink} root handle 7: tbf rate {capacity} burst {}k latency 25ms",
                capacity_mbit / 4 + 16
            ));
            let plain = run(percents, capacity_mbit, false);
            sh(&format!("tc qdisc del dev {uplink} root"));
            let of_min = |rate: f64, min_mbit: u64| rate / (min_mbit as f64 * 1e6 * payload);
            let (mut worst, mut worst_plain) = (f64::MAX, f64::MAX);
            for (i, percent) in percents.iter().enumerate() {
                let min_mbit = capacity_mbit * percent / 100;
                worst = worst.min(of_min(with[i], min_mbit));
                worst_plain = worst_plain.min(of_min(plain[i], min_mbit));
                println!(
                    "{capacity:<9} {:>2}  {:>6}mbit {:>9.1}Mbit/s {:>7.1}%   {:>9.1}Mbit/s {:>7.1}%",
                    percents.len(),
                    min_mbit,
                    with[i] / 1e6,
                    100.0 * of_min(with[i], min_mbit),
                    plain[i] / 1e6,
                    100.0 * of_min(plain[i], min_mbit)
                );
            }
            let used = |rates: &[f64]| 100.0 * rates.iter().sum::<f64>() / (capacity_mbit as f64 * 1e6 * payload);
            println!(
                "{capacity:<9} {:>2}  worst: netrt {:.1} % of its guarantee, plain tbf {:.1} %; capacity used: {:.1} % and {:.1} %\n",
                percents.len(), 100.0 * worst, 100.0 * worst_plain, used(&with), used(&plain)
            );
        }
    }
    std::env::remove_var("NETRT_CONFIG");
    let _ = fs::remove_file(&config);
}
