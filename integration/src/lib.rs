//! Harness for the root-only tests: a test "lab" of network namespaces, a
//! bridge and veths made by the test itself (documentation addresses only),
//! busybox bundles run by real runc with netrt-hook as their hook, snapshots
//! of host state, and iperf3 runs measured at the receiver.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Once;
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub mod cluster;
pub mod dhcp;
pub mod engines;
pub mod lan;

/// Runs a shell command; panics with its output if it fails.
pub fn sh(command: &str) -> String {
    let output = sh_output(command);
    assert!(
        output.status.success(),
        "`{command}` failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn sh_output(command: &str) -> Output {
    Command::new("sh").arg("-c").arg(command).output().expect("sh runs")
}

/// Runs a command and ignores its failure (cleanup of what may be gone).
/// Takes out of a command's environment what cargo sets for a test
/// process (`CARGO_PKG_NAME`, `CARGO_MANIFEST_DIR`, …): a cargo run by the
/// command (the installer, the package build) would otherwise see build
/// scripts' watched variables changed and rebuild half the dependencies.
pub fn without_test_env(command: &mut Command) -> &mut Command {
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy().into_owned();
        if (name.starts_with("CARGO_") && name != "CARGO_HOME") || name == "CARGO" || name == "OUT_DIR" {
            command.env_remove(&name);
        }
    }
    command
}

pub fn sh_quiet(command: &str) {
    let _ = Command::new("sh").arg("-c").arg(command).stdout(Stdio::null()).stderr(Stdio::null()).status();
}

pub(crate) fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The release hook, as installed (`NETRT_HOOK` overrides).
pub fn hook_binary() -> PathBuf {
    binary("NETRT_HOOK", "target/release/netrt-hook")
}

/// The release runtime wrapper `netrt` (`NETRT_WRAPPER` overrides).
pub fn wrapper_binary() -> PathBuf {
    binary("NETRT_WRAPPER", "target/release/netrt")
}

/// The hook built with the `fault-injection` feature (`NETRT_FAULT_HOOK`).
pub fn fault_hook_binary() -> PathBuf {
    binary("NETRT_FAULT_HOOK", "target/fault/debug/netrt-hook")
}

fn binary(variable: &str, default: &str) -> PathBuf {
    let path = std::env::var_os(variable).map(PathBuf::from).unwrap_or_else(|| workspace().join(default));
    assert!(path.exists(), "{} is missing: build it first (integration/run does) or set {variable}", path.display());
    path
}

/// A busybox root filesystem, shared by the tests (read-only to them).
pub fn rootfs() -> PathBuf {
    static ONCE: Once = Once::new();
    let dir = std::env::temp_dir().join("netrt-it-rootfs");
    ONCE.call_once(|| {
        if dir.join("bin/sleep").exists() {
            return;
        }
        let scratch = std::env::temp_dir().join(format!("netrt-it-rootfs.{}", std::process::id()));
        let _ = fs::remove_dir_all(&scratch);
        for sub in ["bin", "proc", "sys", "dev", "tmp", "etc"] {
            fs::create_dir_all(scratch.join(sub)).unwrap();
        }
        fs::copy("/bin/busybox", scratch.join("bin/busybox")).expect("busybox-static is installed");
        for applet in ["sh", "sleep", "ip", "cat", "true"] {
            std::os::unix::fs::symlink("busybox", scratch.join("bin").join(applet)).unwrap();
        }
        // Another test process may have made it meanwhile; either is fine.
        if fs::rename(&scratch, &dir).is_err() {
            let _ = fs::remove_dir_all(&scratch);
        }
    });
    dir
}

/// A test network, torn down on drop:
///
/// ```text
///   server netns (192.0.2.1, 2001:db8:N::1) ── bridge ── host veth ── container netns (…2, …::2)
/// ```
///
/// With `direct`, there is no bridge: the container's veth peer sits in the
/// server namespace, so the container's interface has no host-side peer.
pub struct Lab {
    pub tag: String,
    pub server_ns: String,
    pub container_ns: String,
    pub bridge: Option<String>,
    pub host_veth: Option<String>,
    pub server_ip4: String,
    pub server_ip6: String,
    pub container_ip4: String,
    pub container_ip6: String,
    forward_rule: Option<String>,
}

impl Lab {
    pub fn bridged(tag: &str) -> Lab {
        Lab::new(tag, false)
    }

    pub fn direct(tag: &str) -> Lab {
        Lab::new(tag, true)
    }

    fn new(tag: &str, direct: bool) -> Lab {
        assert!(tag.len() <= 6, "tags keep interface names under 15 bytes");
        let net = 1 + tag.bytes().map(u32::from).sum::<u32>() % 200;
        let mut lab = Lab {
            tag: tag.to_string(),
            server_ns: format!("nrt{tag}s"),
            container_ns: format!("nrt{tag}c"),
            bridge: (!direct).then(|| format!("nrt{tag}br")),
            host_veth: (!direct).then(|| format!("nrt{tag}h")),
            server_ip4: "192.0.2.1".into(),
            server_ip6: format!("2001:db8:{net:x}::1"),
            container_ip4: "192.0.2.2".into(),
            container_ip6: format!("2001:db8:{net:x}::2"),
            forward_rule: None,
        };
        lab.remove();
        let (s, c) = (&lab.server_ns, &lab.container_ns);
        sh(&format!("ip netns add {s} && ip netns add {c}"));
        sh(&format!("ip -n {s} link set lo up && ip -n {c} link set lo up"));
        match (&lab.bridge, &lab.host_veth) {
            (Some(br), Some(hv)) => {
                let sv = format!("nrt{tag}sv");
                sh(&format!("ip link add {br} type bridge && ip link set {br} up"));
                sh(&format!("ip link add {sv} type veth peer name eth0 netns {s} && ip link set {sv} master {br} up"));
                sh(&format!("ip link add {hv} type veth peer name eth0 netns {c} && ip link set {hv} master {br} up"));
                lab.forward_rule = allow_forwarding(br);
            }
            _ => {
                sh(&format!("ip -n {s} link add eth0 type veth peer name eth0 netns {c}"));
            }
        }
        for (ns, ip4, ip6) in [(s, &lab.server_ip4, &lab.server_ip6), (c, &lab.container_ip4, &lab.container_ip6)] {
            sh(&format!(
                "ip -n {ns} addr add {ip4}/24 dev eth0 && ip -n {ns} addr add {ip6}/64 dev eth0 nodad && ip -n {ns} link set eth0 up"
            ));
        }
        sh(&format!(
            "ip -n {c} route add default via {} && ip -n {c} -6 route add default via {}",
            lab.server_ip4, lab.server_ip6
        ));
        wait_until_up(Some(s), &["eth0"]);
        wait_until_up(Some(c), &["eth0"]);
        if let (Some(br), Some(hv)) = (&lab.bridge, &lab.host_veth) {
            wait_until_up(None, &[br, hv, &format!("nrt{tag}sv")]);
        }
        lab
    }

    pub fn netns_path(&self) -> String {
        format!("/run/netns/{}", self.container_ns)
    }

    /// Starts a container (`sleep 30`) in this lab's container namespace
    /// with netrt-hook and these annotations. Keep the bundle while it runs.
    pub fn start(&self, id: &str, annotations: &[(&str, &str)]) -> (Container, Bundle) {
        let netns = self.netns_path();
        let bundle = Bundle::create(id, &BundleSpec::new(Some(&netns), annotations));
        let container = Container::start(id, &bundle).unwrap_or_else(|e| panic!("container {id} does not start: {e}"));
        (container, bundle)
    }

    fn remove(&mut self) {
        sh_quiet(&format!("ip netns del {}", self.server_ns));
        sh_quiet(&format!("ip netns del {}", self.container_ns));
        if let Some(br) = &self.bridge {
            sh_quiet(&format!("ip link del nrt{}sv", self.tag));
            sh_quiet(&format!("ip link del {}", self.host_veth.as_ref().unwrap()));
            sh_quiet(&format!("ip link del {br}"));
        }
        if let Some(rule) = self.forward_rule.take() {
            sh_quiet(&format!("iptables -D {rule}"));
        }
    }

    /// Goodput in bit/s per second of a bounded iperf3 run from the
    /// container namespace, measured where the data arrives.
    pub fn iperf(&self, ipv6: bool, container_receives: bool, seconds: u32) -> Vec<f64> {
        self.try_iperf(ipv6, container_receives, seconds).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn try_iperf(&self, ipv6: bool, container_receives: bool, seconds: u32) -> Result<Vec<f64>, String> {
        let server = if ipv6 { &self.server_ip6 } else { &self.server_ip4 };
        iperf(&self.server_ns, &self.container_ns, server, ipv6, container_receives, seconds)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Runs iperf3 between two namespaces and returns the receiver's per-second
/// goodput. The server prints JSON (`-J`) so that the client can fetch the
/// receiver's side with `--get-server-output` when the client sends.
pub fn iperf(
    server_ns: &str,
    client_ns: &str,
    server_ip: &str,
    ipv6: bool,
    reverse: bool,
    seconds: u32,
) -> Result<Vec<f64>, String> {
    let port = 5201 + (std::process::id() % 500) as u16;
    iperf_from(&["ip", "netns", "exec", client_ns], server_ns, server_ip, port, ipv6, reverse, seconds)
}

/// As `iperf`, on `port`, with the client run by `enter` (a command that
/// runs the rest of its arguments in the client's namespace).
fn iperf_from(
    enter: &[&str],
    server_ns: &str,
    server_ip: &str,
    port: u16,
    ipv6: bool,
    reverse: bool,
    seconds: u32,
) -> Result<Vec<f64>, String> {
    // Bounds for a stalled transfer (every packet dropped). Generous: after
    // a huge burst, the sender's socket buffers drain at the shaped rate,
    // and at 1mbit that takes tens of seconds.
    let (server_limit, client_limit) = ((seconds + 60).to_string(), (seconds + 55).to_string());
    let mut server = Command::new("ip")
        .args([
            "netns",
            "exec",
            server_ns,
            "timeout",
            &server_limit,
            "iperf3",
            "-s",
            "-1",
            "-J",
            "-p",
            &port.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("iperf3 server starts");
    sleep(Duration::from_millis(300));
    let family = if ipv6 { "-6" } else { "-4" };
    let mut args = enter[1..].to_vec();
    args.extend(["timeout", &client_limit, "iperf3", family, "-c", server_ip]);
    let port_text = port.to_string();
    let time_text = seconds.to_string();
    args.extend(["-p", &port_text, "-t", &time_text, "-i", "1", "-J", "--connect-timeout", "3000"]);
    args.push(if reverse { "-R" } else { "--get-server-output" });
    let output = Command::new(enter[0]).args(&args).output().expect("iperf3 client runs");
    let _ = server.wait();
    let report: Value = serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("iperf3 gave no JSON ({e}): {}", String::from_utf8_lossy(&output.stderr)))?;
    if let Some(error) = report.get("error") {
        return Err(format!("iperf3 failed: {error}"));
    }
    let receiver = if reverse { &report } else { &report["server_output_json"] };
    // A last, short interval holds what was still queued when the sender
    // stopped; over a few milliseconds it reads as a huge rate.
    let seconds: Vec<f64> = receiver["intervals"]
        .as_array()
        .ok_or("iperf3 reported no intervals")?
        .iter()
        .filter(|i| i["sum"]["seconds"].as_f64().unwrap_or(0.0) >= 0.5)
        .map(|i| i["sum"]["bits_per_second"].as_f64().unwrap_or(0.0))
        .collect();
    if seconds.len() < 2 {
        return Err(format!("iperf3 reported {} full seconds", seconds.len()));
    }
    Ok(seconds)
}

/// One bounded iperf3 flow from each namespace (given by a process in it)
/// at once, each to its own server in `server_ns`; the receivers' median
/// per-second goodput after the first second, bit/s. `toward_clients`:
/// the servers send (iperf3 -R) and the clients' side is measured.
pub fn flows_at_once(
    server_ns: &str,
    server_ip: &str,
    client_pids: &[u32],
    toward_clients: bool,
    seconds: u32,
) -> Vec<f64> {
    let base = 5400 + (std::process::id() % 200) as u16 * 10;
    std::thread::scope(|scope| {
        let runs: Vec<_> = client_pids
            .iter()
            .enumerate()
            .map(|(i, pid)| {
                scope.spawn(move || {
                    let pid = pid.to_string();
                    let enter = ["nsenter", "-t", pid.as_str(), "-n"];
                    let per_second =
                        iperf_from(&enter, server_ns, server_ip, base + i as u16, false, toward_clients, seconds)
                            .unwrap_or_else(|e| panic!("{e}"));
                    median(&per_second[1..])
                })
            })
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    })
}

pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
    sorted[sorted.len() / 2]
}

/// A runc bundle whose network namespace is `netns` (None: the host's).
pub struct Bundle {
    pub dir: PathBuf,
}

pub struct BundleSpec<'a> {
    /// A namespace path to join; None: the host's, unless `new_netns`.
    pub netns: Option<&'a str>,
    /// A fresh network namespace of the container's own (`--network none`).
    pub new_netns: bool,
    pub annotations: &'a [(&'a str, &'a str)],
    pub env: &'a [&'a str],
    pub hook: PathBuf,
    /// Environment of the hook process itself (the fault switch).
    pub hook_env: &'a [&'a str],
    pub poststop: bool,
    /// Also list the hook under prestart (runtimes run both).
    pub prestart: bool,
    pub command: &'a str,
}

impl<'a> BundleSpec<'a> {
    pub fn new(netns: Option<&'a str>, annotations: &'a [(&'a str, &'a str)]) -> Self {
        BundleSpec {
            netns,
            new_netns: false,
            annotations,
            env: &[],
            hook: hook_binary(),
            hook_env: &[],
            poststop: true,
            prestart: false,
            command: "sleep 30",
        }
    }

    /// A container in a network namespace of its own.
    pub fn isolated(annotations: &'a [(&'a str, &'a str)]) -> Self {
        BundleSpec { new_netns: true, ..BundleSpec::new(None, annotations) }
    }
}

impl Bundle {
    pub fn create(id: &str, spec: &BundleSpec) -> Bundle {
        let dir = std::env::temp_dir().join(format!("netrt-it-bundle-{id}"));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let mut namespaces =
            vec![json!({"type": "pid"}), json!({"type": "ipc"}), json!({"type": "uts"}), json!({"type": "mount"})];
        if let Some(netns) = spec.netns {
            namespaces.push(json!({"type": "network", "path": netns}));
        } else if spec.new_netns {
            namespaces.push(json!({"type": "network"}));
        }
        let hook = spec.hook.display().to_string();
        let hook_env: Vec<&str> = spec.hook_env.to_vec();
        let mut hooks = json!({
            "createRuntime": [{"path": hook, "args": ["netrt-hook", "createRuntime"], "env": hook_env}],
        });
        if spec.prestart {
            hooks["prestart"] = json!([{"path": hook, "args": ["netrt-hook", "prestart"], "env": hook_env}]);
        }
        if spec.poststop {
            hooks["poststop"] = json!([{"path": hook, "args": ["netrt-hook", "poststop"], "env": hook_env}]);
        }
        let mut env = vec!["PATH=/bin"];
        env.extend(spec.env);
        let annotations: BTreeMap<&str, &str> = spec.annotations.iter().cloned().collect();
        let config = json!({
            "ociVersion": "1.0.2",
            "process": {"terminal": false, "user": {"uid": 0, "gid": 0}, "args": ["sh", "-c", spec.command],
                        "env": env, "cwd": "/", "noNewPrivileges": true},
            "root": {"path": rootfs().display().to_string(), "readonly": true},
            "hostname": id,
            // /dev on a tmpfs of its own, as `runc spec` has it: runc makes
            // device nodes and the ptmx link there, and containers started
            // in parallel from the one shared rootfs would race for them.
            "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
                       {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755", "size=1m"]},
                       {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}],
            "annotations": annotations,
            "hooks": hooks,
            "linux": {"namespaces": namespaces, "maskedPaths": [], "readonlyPaths": []},
        });
        fs::write(dir.join("config.json"), serde_json::to_vec_pretty(&config).unwrap()).unwrap();
        Bundle { dir }
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A container started with `runc run` in the background.
pub struct Container {
    pub id: String,
    child: Option<Child>,
    /// The command that enters the node the container runs on, if not the host.
    enter: String,
}

/// Starts an isolated container (`BundleSpec::isolated`) whose hook runs
/// with `hook_env`; Err carries runc's output, as netrt wrote it (runc
/// quotes the hook's message, doubling its backslashes).
pub fn start_with_hook_env(
    id: &str,
    annotations: &[(&str, &str)],
    hook_env: &[&str],
) -> Result<(Container, Bundle), String> {
    let spec = BundleSpec { hook_env, ..BundleSpec::isolated(annotations) };
    let bundle = Bundle::create(id, &spec);
    Container::start(id, &bundle).map(|c| (c, bundle)).map_err(|e| e.replace('\\', ""))
}

impl Container {
    /// Starts the container and waits until it runs, or returns runc's
    /// output if it does not start.
    pub fn start(id: &str, bundle: &Bundle) -> Result<Container, String> {
        Container::start_on("", id, bundle)
    }

    /// Starts the container with the runc of a node (`enter` runs a
    /// command in the node's mount namespace; empty: the host).
    pub fn start_on(enter: &str, id: &str, bundle: &Bundle) -> Result<Container, String> {
        sh_quiet(&format!("{enter} runc delete -f {id}"));
        let mut words: Vec<String> = enter.split_whitespace().map(String::from).collect();
        words.extend([
            "runc".to_string(),
            "run".into(),
            "--bundle".into(),
            bundle.dir.display().to_string(),
            id.to_string(),
        ]);
        let child = Command::new(&words[0])
            .args(&words[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("runc starts");
        let mut container = Container { id: id.to_string(), child: Some(child), enter: enter.to_string() };
        // A hang detector, not a speed check (setup times are benchmarked):
        // sixty parallel starts on a small machine may take tens of seconds.
        // Polling backs off so that the waiting, sixty `runc state` a round,
        // does not itself become the load that slows the starts.
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut pause = Duration::from_millis(10);
        while Instant::now() < deadline {
            if let Some(status) = container.child.as_mut().unwrap().try_wait().unwrap() {
                let output = container.child.take().unwrap().wait_with_output().unwrap();
                return Err(format!(
                    "runc exited ({status}): {}{}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                ));
            }
            if sh_output(&format!("{enter} runc state {id}")).stdout.windows(9).any(|w| w == b"\"running\"") {
                return Ok(container);
            }
            sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(250));
        }
        panic!("container {id} did not start within 60 s");
    }

    /// Runs a container to completion; Err carries runc's output.
    pub fn run_to_end(id: &str, bundle: &Bundle) -> Result<String, String> {
        sh_quiet(&format!("runc delete -f {id}"));
        let output = Command::new("runc")
            .args(["run", "--bundle", &bundle.dir.display().to_string(), id])
            .stdin(Stdio::null())
            .output()
            .expect("runc runs");
        let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        if output.status.success() {
            Ok(text)
        } else {
            Err(text)
        }
    }

    /// The container's init process.
    pub fn pid(&self) -> u32 {
        let state: Value = serde_json::from_str(&sh(&format!("{} runc state {}", self.enter, self.id))).unwrap();
        state["pid"].as_u64().expect("a running container has a pid") as u32
    }

    /// Runs a shell command in the container's network namespace.
    pub fn net_sh(&self, command: &str) -> Output {
        sh_output(&format!("nsenter -t {} -n sh -c '{command}'", self.pid()))
    }

    /// Gives the container's namespace a name, for `ip netns exec`; the
    /// name is removed when the guard drops, so the namespace can die.
    pub fn name_netns(&self, name: &str) -> NetnsName {
        name_netns_of(self.pid(), name)
    }

    /// Kills `runc run` itself (not the container) and forgets the
    /// container, as when the runtime dies: no poststop will run.
    pub fn forget_after_killing_runtime(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        std::mem::forget(self);
    }

    /// Kills the process and waits for runc to finish, poststop included:
    /// when this returns, netrt's teardown has returned too, and nothing of
    /// the container may be left on the host.
    pub fn stop(mut self) {
        self.kill_and_delete();
    }

    /// Like `stop`, and runs `right_after` the moment `runc run` has
    /// exited: it exits once the container is deleted, poststop included,
    /// so that is the moment the runtime's delete returns.
    pub fn stop_then<T>(mut self, right_after: impl FnOnce() -> T) -> T {
        self.kill_and_reap();
        let seen = right_after();
        self.kill_and_delete();
        seen
    }

    /// Kills the container and waits for `runc run` to exit.
    fn kill_and_reap(&mut self) {
        if let Some(mut child) = self.child.take() {
            sh_quiet(&format!("{} runc kill {} KILL", self.enter, self.id));
            let _ = child.wait();
        }
    }

    fn kill_and_delete(&mut self) {
        self.kill_and_reap();
        sh_quiet(&format!("{} runc delete -f {}", self.enter, self.id));
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        self.kill_and_delete();
    }
}

/// A process (`sleep 30`) in namespace `ns`, returned once it is there:
/// `ip netns exec` enters the namespace before it becomes `sleep`.
pub fn process_in_netns(ns: &str) -> Child {
    let child = Command::new("ip").args(["netns", "exec", ns, "sleep", "30"]).spawn().expect("ip netns exec runs");
    let deadline = Instant::now() + Duration::from_secs(10);
    while fs::read_to_string(format!("/proc/{}/comm", child.id())).unwrap_or_default().trim() != "sleep" {
        assert!(Instant::now() < deadline, "ip netns exec {ns} sleep did not start");
        sleep(Duration::from_millis(5));
    }
    child
}

/// Waits until these links (of namespace `ns`, else the host's) are up as
/// the kernel reports it: a link made a moment ago reads UNKNOWN or DOWN
/// until the kernel's link watch has run, and a snapshot taken meanwhile
/// would differ from a later one for nobody's doing.
pub fn wait_until_up(ns: Option<&str>, links: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    for link in links {
        loop {
            let shown = link_details(ns, link);
            if shown["operstate"] == "UP" {
                break;
            }
            assert!(Instant::now() < deadline, "{link} is not up: {shown}");
            sleep(Duration::from_millis(20));
        }
    }
}

/// A link as `ip -j link show` describes it (of namespace `ns`, else the
/// host's); Null while there is no such link.
pub fn link_details(ns: Option<&str>, link: &str) -> Value {
    let prefix = ns.map(|ns| format!("ip -n {ns} ")).unwrap_or_else(|| "ip ".into());
    let shown = sh_output(&format!("{prefix}-j link show dev {link}"));
    serde_json::from_slice::<Value>(&shown.stdout).map(|links| links[0].clone()).unwrap_or(Value::Null)
}

pub struct NetnsName(pub String);

impl NetnsName {
    /// A new, empty network namespace of this name with its loopback up
    /// (one left by an earlier run goes first); deleted on drop.
    pub fn fresh(name: &str) -> NetnsName {
        sh_quiet(&format!("ip netns del {name}"));
        sh(&format!("ip netns add {name} && ip -n {name} link set lo up"));
        NetnsName(name.to_string())
    }
}

/// Names the network namespace of process `pid`, for `ip netns exec`.
pub fn name_netns_of(pid: u32, name: &str) -> NetnsName {
    sh_quiet(&format!("ip netns del {name}"));
    sh(&format!("ip netns attach {name} {pid}"));
    NetnsName(name.to_string())
}

impl Drop for NetnsName {
    fn drop(&mut self) {
        sh_quiet(&format!("ip netns del {}", self.0));
    }
}

/// Asserts that two snapshots are the same; on a difference, says only the
/// lines that differ (`+` now, `-` before), and what was checked.
#[macro_export]
macro_rules! assert_same_host {
    ($now:expr, $before:expr) => {
        $crate::assert_same_host(&$now, &$before, String::new())
    };
    ($now:expr, $before:expr, $($what:tt)+) => {
        $crate::assert_same_host(&$now, &$before, format!($($what)+))
    };
}

#[doc(hidden)]
pub fn assert_same_host(now: &str, before: &str, what: String) {
    if now == before {
        return;
    }
    let (now_lines, before_lines): (Vec<&str>, Vec<&str>) = (now.lines().collect(), before.lines().collect());
    let mut differences: Vec<String> =
        now_lines.iter().filter(|l| !before_lines.contains(l)).map(|l| format!("+ {l}")).collect();
    differences.extend(before_lines.iter().filter(|l| !now_lines.contains(l)).map(|l| format!("- {l}")));
    if differences.is_empty() {
        differences.push("(the same lines in another order)".into());
    }
    panic!("the host differs{}{what}:\n{}", if what.is_empty() { "" } else { ": " }, differences.join("\n"));
}

/// A test that cannot run here fails, saying why. It never passes having
/// done nothing: integration/run installs everything the tests need, so a
/// missing piece is a broken machine, not a reason to skip.
pub fn require(present: bool, what: &str) {
    assert!(present, "cannot run here: {what}");
}

/// What netrt could leave behind or change, as text to compare, on the
/// host and in the given namespaces:
/// - every link with its kind, master, MTU, MAC, flags, state,
///   promiscuity, queue length and group (a bridge's carrier and state
///   left out: they follow its ports);
/// - every address but IPv6 link-local ones, every route in every table,
///   and neighbour proxy entries;
/// - every qdisc, and on every link its classes and its filters on the
///   root qdisc, on ingress and on egress (clsact);
/// - on the host only: the mount table below /run/netrt (namespace pins),
///   and every file below /run/netrt and /var/lib/netrt (records, address
///   claims, pins, deferred setups, pending releases, pool claims and their
///   index), with a symbolic link's target. Left out there: the host lock,
///   the node's liveness lease (`liveness`), and a pool's registration and
///   allocation cursors (`addressing.json`, `last-4`, `last-6`), which
///   outlive containers by design.
pub fn snapshot(namespaces: &[&str]) -> String {
    snapshot_on("", namespaces)
}

/// As `snapshot`, with netrt's mounts and files as seen through `enter` (a
/// command that runs the rest in a node's mount namespace; empty: the host).
pub fn snapshot_on(enter: &str, namespaces: &[&str]) -> String {
    let mut out = String::new();
    let mut prefixes = vec![String::new()];
    prefixes.extend(namespaces.iter().map(|ns| format!("ip netns exec {ns} ")));
    for prefix in prefixes {
        out += &format!("== {}\n", if prefix.is_empty() { "host" } else { prefix.trim() });
        out += &links_and_addresses(&prefix);
        out += &sh(&format!("{prefix}sh -c '{TC_AND_NEIGHBOURS}'"));
    }
    out += &sh(&format!("{enter} sh -c '{OWN_MOUNTS_AND_FILES}'"));
    out
}

/// Per namespace: every qdisc; per link, its classes and its filters on
/// the root qdisc, ingress and egress; neighbour proxy entries. Classes are
/// sorted: the kernel lists them in its hash's order, which a class
/// deleted and made again may change.
const TC_AND_NEIGHBOURS: &str = r#"
tc qdisc show
for link in $(ip -o link show | cut -d: -f2 | cut -d@ -f1); do
    for parent in "" ingress egress; do
        tc filter show dev $link $parent 2>/dev/null | sed "s/^/filter $link ${parent:-root}: /"
    done
    tc class show dev $link | sort | sed "s/^/$link: /"
done
ip neigh show proxy | sed "s/^/proxy /"
ip -6 neigh show proxy | sed "s/^/proxy /"
"#;

/// On the host: netrt's mounts and files (see `snapshot`).
const OWN_MOUNTS_AND_FILES: &str = r#"
awk "\$5 ~ /^\/run\/netrt/ {print \"mount\", \$5}" /proc/self/mountinfo | sort
find /run/netrt /var/lib/netrt -mindepth 1 ! -type d ! -path /run/netrt/lock ! -path /run/netrt/liveness \
    ! -name addressing.json ! -name last-4 ! -name last-6 -printf "file %p %y %l\n" 2>/dev/null | sort
true
"#;

fn links_and_addresses(prefix: &str) -> String {
    let mut out = String::new();
    let links: Value = serde_json::from_str(&sh(&format!("{prefix}ip -j -d link show"))).unwrap();
    for link in links.as_array().unwrap() {
        // A bridge's carrier, and so its state, follows its ports, which
        // come and go with containers by design, a second late (the
        // kernel's link watch): for a bridge, only the flags set on it.
        let bridge = link["linkinfo"]["info_kind"] == "bridge";
        let flags: Vec<&Value> = link["flags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|flag| !bridge || (*flag != "LOWER_UP" && *flag != "NO-CARRIER"))
            .collect();
        let state = if bridge { &Value::Null } else { &link["operstate"] };
        out += &format!(
            "link {} kind {} master {} mtu {} address {} flags {} state {} promiscuity {} qlen {} group {}\n",
            link["ifname"],
            link["linkinfo"]["info_kind"],
            link["master"],
            link["mtu"],
            link["address"],
            serde_json::to_string(&flags).unwrap(),
            state,
            link["promiscuity"],
            link["txqlen"],
            link["group"]
        );
    }
    let addresses: Value = serde_json::from_str(&sh(&format!("{prefix}ip -j addr show"))).unwrap();
    for link in addresses.as_array().unwrap() {
        // IPv6 link-local addresses (and their routes below) come and
        // go with the kernel's duplicate address detection: left out.
        for address in link["addr_info"].as_array().into_iter().flatten().filter(|a| !is_link_local(&a["local"])) {
            out += &format!("addr {} {}/{}\n", link["ifname"], address["local"], address["prefixlen"]);
        }
    }
    for family in ["-4", "-6"] {
        let routes: Value = serde_json::from_str(&sh(&format!("{prefix}ip -j {family} route show table all"))).unwrap();
        for route in routes.as_array().unwrap().iter().filter(|r| !is_link_local(&r["dst"])) {
            out += &format!(
                "route {} via {} dev {} table {} metric {}\n",
                route["dst"], route["gateway"], route["dev"], route["table"], route["metric"]
            );
        }
    }
    out
}

fn is_link_local(address: &Value) -> bool {
    address.as_str().is_some_and(|a| a.starts_with("fe80:") || a == "ff00::/8")
}

/// The qdiscs of one device, `tc qdisc show` style.
pub fn qdiscs(netns: Option<&str>, device: &str) -> String {
    match netns {
        Some(ns) => sh(&format!("ip netns exec {ns} tc qdisc show dev {device}")),
        None => sh(&format!("tc qdisc show dev {device}")),
    }
}

pub fn link_exists(netns: Option<&str>, device: &str) -> bool {
    let prefix = netns.map(|ns| format!("ip -n {ns} ")).unwrap_or_else(|| "ip ".into());
    sh_output(&format!("{prefix}link show dev {device}")).status.success()
}

pub use netrt_hook::kernel::names::{host_veth_name, ifb_name};

/// Whether netrt holds a record for `id`, finished or partial.
pub fn record_exists(id: &str) -> bool {
    ["json", "partial"].iter().any(|ext| Path::new(&format!("/run/netrt/containers/{id}.{ext}")).exists())
}

/// A LAN for attachment tests, made by the test: a peer namespace
/// `nrt{tag}p` with 198.51.100.1/24 and 2001:db8:ff::1/64 on its eth0,
/// reached through a bridge `nrt{tag}br` (`Lan::bridge`) or through a veth
/// `nrt{tag}l` that is the macvlan parent (`Lan::parent`).
pub struct Lan {
    pub peer_ns: String,
    pub bridge: Option<String>,
    pub parent: Option<String>,
    links: Vec<String>,
    forward_rule: Option<String>,
}

pub const LAN_PEER4: &str = "198.51.100.1";
pub const LAN_PEER6: &str = "2001:db8:ff::1";

impl Lan {
    pub fn bridge(tag: &str) -> Lan {
        Lan::new(tag, true)
    }

    pub fn parent(tag: &str) -> Lan {
        Lan::new(tag, false)
    }

    fn new(tag: &str, bridged: bool) -> Lan {
        assert!(tag.len() <= 6, "tags keep interface names under 15 bytes");
        let peer_ns = format!("nrt{tag}p");
        let mut lan = Lan { peer_ns: peer_ns.clone(), bridge: None, parent: None, links: vec![], forward_rule: None };
        let (bridge, uplink) = (format!("nrt{tag}br"), format!("nrt{tag}l"));
        lan.links = vec![uplink.clone(), bridge.clone()];
        lan.remove();
        sh(&format!("ip netns add {peer_ns} && ip -n {peer_ns} link set lo up"));
        sh(&format!("ip link add {uplink} type veth peer name eth0 netns {peer_ns}"));
        sh(&format!(
            "ip -n {peer_ns} addr add {LAN_PEER4}/24 dev eth0 && ip -n {peer_ns} addr add {LAN_PEER6}/64 dev eth0 nodad \
             && ip -n {peer_ns} link set eth0 up"
        ));
        if bridged {
            sh(&format!("ip link add {bridge} type bridge && ip link set {bridge} up && ip link set {uplink} master {bridge} up"));
            lan.forward_rule = allow_forwarding(&bridge);
            lan.bridge = Some(bridge);
        } else {
            sh(&format!("ip link set {uplink} up"));
            lan.parent = Some(uplink);
        }
        wait_until_up(Some(&peer_ns), &["eth0"]);
        wait_until_up(None, &lan.links.iter().map(String::as_str).filter(|l| link_exists(None, l)).collect::<Vec<_>>());
        lan
    }

    fn remove(&mut self) {
        sh_quiet(&format!("ip netns del {}", self.peer_ns));
        for link in &self.links {
            sh_quiet(&format!("ip link del {link}"));
        }
        if let Some(rule) = self.forward_rule.take() {
            sh_quiet(&format!("iptables -D {rule}"));
        }
    }
}

/// Once dockerd has run, bridged IPv4 passes iptables FORWARD (policy
/// DROP); lets the bridge's own traffic through. Returns the rule, for
/// `iptables -D` when the test is done; None without iptables.
pub fn allow_forwarding(bridge: &str) -> Option<String> {
    let rule = format!("FORWARD -i {bridge} -o {bridge} -j ACCEPT");
    sh_output(&format!("iptables -I {rule}")).status.success().then_some(rule)
}

impl Drop for Lan {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Starts a container in a namespace of its own with these annotations.
pub fn start_isolated(id: &str, annotations: &[(&str, &str)]) -> (Container, Bundle) {
    let bundle = Bundle::create(id, &BundleSpec::isolated(annotations));
    let container = Container::start(id, &bundle).unwrap_or_else(|e| panic!("container {id} does not start: {e}"));
    (container, bundle)
}
