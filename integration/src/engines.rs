//! Real container engines for the tests: netrt installed by the project's
//! installer, dockerd started by hand (no systemd here), a busybox image
//! imported from busybox-static (no registry), and podman.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{sh, sh_output, sh_quiet, without_test_env, workspace};

pub const IMAGE: &str = "netrt-busybox";
pub const DOCKER_CONFIG: &str = "/etc/docker/daemon.json";
pub const HOOKS_FILE: &str = "/usr/share/containers/oci/hooks.d/netrt.json";
/// Keys an admin's daemon.json already has; the installer must keep them.
pub const SEED_DAEMON_JSON: &str = "{\n  \"log-level\": \"warn\",\n  \"max-concurrent-downloads\": 2\n}\n";

/// netrt as `install/install.sh` installs it, under `target/it-prefix`,
/// with the real hooks.d directory and the real daemon.json, which starts
/// out as [`SEED_DAEMON_JSON`]. Uninstalled, and the original daemon.json
/// and hooks.d file (of a netrt installed on the machine) put back, on drop.
pub struct Installed {
    pub prefix: PathBuf,
    original_daemon_json: Option<Vec<u8>>,
    /// The hooks.d file of a netrt installed on this machine, put back.
    original_hooks_file: Option<Vec<u8>>,
    uninstalled: bool,
}

impl Installed {
    pub fn new() -> Installed {
        let original_daemon_json = fs::read(DOCKER_CONFIG).ok();
        let original_hooks_file = fs::read(HOOKS_FILE).ok();
        fs::create_dir_all("/etc/docker").unwrap();
        fs::write(DOCKER_CONFIG, SEED_DAEMON_JSON).unwrap();
        let prefix = workspace().join("target/it-prefix");
        let installed = Installed { prefix, original_daemon_json, original_hooks_file, uninstalled: false };
        let output = installed.run(&["--no-demo"]);
        assert!(output.0, "install.sh failed:\n{}", output.1);
        installed
    }

    /// Runs install.sh with these arguments and the test prefix.
    pub fn run(&self, arguments: &[&str]) -> (bool, String) {
        let output = without_test_env(&mut Command::new(workspace().join("install/install.sh")))
            .arg("--prefix")
            .arg(&self.prefix)
            .args(arguments)
            .output()
            .expect("install.sh runs");
        (
            output.status.success(),
            format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)),
        )
    }

    pub fn wrapper(&self) -> PathBuf {
        self.prefix.join("bin/netrt")
    }

    pub fn hook(&self) -> PathBuf {
        self.prefix.join("bin/netrt-hook")
    }

    /// Uninstalls and returns the installer's output.
    pub fn uninstall(&mut self) -> String {
        self.uninstalled = true;
        let (ok, output) = self.run(&["--uninstall"]);
        assert!(ok, "uninstall failed:\n{output}");
        output
    }
}

impl Default for Installed {
    fn default() -> Self {
        Installed::new()
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        if !self.uninstalled {
            let _ = self.run(&["--uninstall"]);
        }
        match &self.original_daemon_json {
            Some(text) => {
                let _ = fs::write(DOCKER_CONFIG, text);
            }
            None => {
                let _ = fs::remove_file(DOCKER_CONFIG);
            }
        }
        if let Some(text) = &self.original_hooks_file {
            let _ = fs::write(HOOKS_FILE, text);
        }
        sh_quiet("kill -HUP $(pidof dockerd)");
    }
}

/// A root filesystem with busybox and every applet, as a tar for import.
pub fn busybox_tar() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("netrt-it-image.{}", std::process::id()));
    let tar = dir.with_extension("tar");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("bin")).unwrap();
    for sub in ["proc", "sys", "dev", "tmp", "etc"] {
        fs::create_dir_all(dir.join(sub)).unwrap();
    }
    fs::copy("/bin/busybox", dir.join("bin/busybox")).expect("busybox-static is installed");
    for applet in sh("/bin/busybox --list").split_whitespace().filter(|a| *a != "busybox") {
        std::os::unix::fs::symlink("busybox", dir.join("bin").join(applet)).unwrap();
    }
    sh(&format!("tar -C {} -cf {} .", dir.display(), tar.display()));
    fs::remove_dir_all(&dir).unwrap();
    tar
}

/// An OCI image archive of busybox whose command is `command`, named
/// `name` for `ctr images import` (no registry is reachable here). The
/// layer is [`busybox_tar`]'s root filesystem, uncompressed.
pub fn busybox_oci_archive(name: &str, command: &[&str]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("netrt-it-oci.{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let add_blob = |bytes: &[u8]| -> (String, usize) {
        let path = dir.join("blob");
        fs::write(&path, bytes).unwrap();
        let digest = sh(&format!("sha256sum {}", path.display())).split_whitespace().next().unwrap().to_string();
        fs::rename(&path, blobs.join(&digest)).unwrap();
        (format!("sha256:{digest}"), bytes.len())
    };
    let rootfs = busybox_tar();
    let (layer, layer_size) = add_blob(&fs::read(&rootfs).unwrap());
    let _ = fs::remove_file(&rootfs);
    let architecture = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let config = serde_json::json!({
        "architecture": architecture, "os": "linux",
        "config": {"Cmd": command, "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [layer]},
    });
    let (config, config_size) = add_blob(config.to_string().as_bytes());
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": layer_size}],
    });
    let (manifest, manifest_size) = add_blob(manifest.to_string().as_bytes());
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest, "size": manifest_size,
            "platform": {"architecture": architecture, "os": "linux"},
            "annotations": {"io.containerd.image.name": name},
        }],
    });
    fs::write(dir.join("index.json"), index.to_string()).unwrap();
    fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion": "1.0.0"}"#).unwrap();
    let archive = dir.with_extension("tar");
    sh(&format!("tar -C {} -cf {} oci-layout index.json blobs", dir.display(), archive.display()));
    fs::remove_dir_all(&dir).unwrap();
    archive
}

/// dockerd, started by the test when none runs, stopped again on drop.
pub struct Docker {
    daemon: Option<Child>,
}

impl Docker {
    pub fn start() -> Docker {
        let mut docker = Docker { daemon: None };
        if !sh_output("docker info >/dev/null 2>&1").status.success() {
            let log = fs::File::create(std::env::temp_dir().join("netrt-it-dockerd.log")).unwrap();
            let child = Command::new("dockerd")
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("dockerd starts");
            docker.daemon = Some(child);
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        // Registered by the installer, picked up at start or after SIGHUP.
        while !sh_output("docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q '\"netrt\"'").status.success()
        {
            assert!(Instant::now() < deadline, "dockerd did not come up with the netrt runtime within 60 s");
            sleep(Duration::from_millis(200));
        }
        if !sh_output(&format!("docker image inspect {IMAGE} >/dev/null 2>&1")).status.success() {
            let tar = busybox_tar();
            sh(&format!("docker import {} {IMAGE}", tar.display()));
            let _ = fs::remove_file(tar);
        }
        docker
    }

    /// `docker inspect` of a container.
    pub fn inspect(id: &str) -> Value {
        let all: Value = serde_json::from_str(&sh(&format!("docker inspect {id}"))).unwrap();
        all[0].clone()
    }

    pub fn pid(id: &str) -> u32 {
        Docker::inspect(id)["State"]["Pid"].as_u64().expect("a running container has a pid") as u32
    }

    pub fn full_id(id: &str) -> String {
        Docker::inspect(id)["Id"].as_str().unwrap().to_string()
    }
}

impl Drop for Docker {
    fn drop(&mut self) {
        if let Some(mut daemon) = self.daemon.take() {
            sh_quiet("docker ps -aq | xargs -r docker rm -f");
            sh_quiet(&format!("kill -TERM {}", daemon.id()));
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline && daemon.try_wait().unwrap().is_none() {
                sleep(Duration::from_millis(100));
            }
            let _ = daemon.kill();
            let _ = daemon.wait();
        }
    }
}

/// podman, as this machine needs it: runc underneath, limits the host allows.
pub const PODMAN: &str = "podman --runtime runc";
pub const PODMAN_RUN: &str = "podman --runtime runc run --ulimit nofile=10000:10000 --ulimit nproc=1000:1000";

pub fn podman_image() {
    if !sh_output(&format!("podman image exists {IMAGE}")).status.success() {
        let tar = busybox_tar();
        sh(&format!("podman import -q {} {IMAGE}", tar.display()));
        let _ = fs::remove_file(tar);
    }
}

pub fn podman_pid(id: &str) -> u32 {
    sh(&format!("podman inspect -f '{{{{.State.Pid}}}}' {id}")).trim().parse().expect("a running container has a pid")
}

/// The default gateway of a container's namespace: the host end of the
/// engine's bridge (docker0, podman's cni-podman0).
pub fn gateway_of(pid: u32) -> String {
    let route = sh(&format!("nsenter -t {pid} -n ip -4 route show default"));
    route.split_whitespace().nth(2).expect("the container has a default route").to_string()
}

/// Gives the host's network namespace a name for `ip netns exec`, so that
/// the lab's iperf3 helpers can put a server on the host end of an
/// engine's bridge.
pub fn name_host_netns(name: &str) -> crate::NetnsName {
    crate::name_netns_of(std::process::id(), name)
}

pub fn file_exists(path: &str) -> bool {
    Path::new(path).exists()
}

/// Measures both directions between a container of an engine (by pid) and
/// the host end of the engine's bridge, at the receiver, and asserts each
/// within 75–102 % of its limit in Mbit/s.
pub fn assert_limits_hold(pid: u32, egress_mbit: f64, ingress_mbit: f64) {
    let container_ns = crate::name_netns_of(pid, "nrtengc");
    let host_ns = name_host_netns("nrtengh");
    let gateway = gateway_of(pid);
    for (receives, limit) in [(false, egress_mbit), (true, ingress_mbit)] {
        let rates = crate::iperf(&host_ns.0, &container_ns.0, &gateway, false, receives, 4).unwrap();
        let rate = crate::median(&rates) / 1e6;
        let direction = if receives { "ingress" } else { "egress" };
        assert!(
            (0.75 * limit..=1.02 * limit).contains(&rate),
            "{direction}: {rate:.2} Mbit/s against a limit of {limit} Mbit/s (per second: {rates:?})"
        );
    }
}

/// The host's snapshot once it holds still (the same twice, 300 ms apart;
/// at most 10 s): an engine removes its veths and namespaces a moment after
/// its command returns, and a bridge whose last port went reads as up
/// until the kernel's link watch has run.
pub fn settled_snapshot() -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = crate::snapshot(&[]);
    loop {
        sleep(Duration::from_millis(300));
        let now = crate::snapshot(&[]);
        if now == last || Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}

/// Waits up to 10 s for the host to look as `before` again (an engine
/// removes its own veth and netns a moment after the command returns).
pub fn assert_back_to(before: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut now = crate::snapshot(&[]);
    while now != before && Instant::now() < deadline {
        sleep(Duration::from_millis(200));
        now = crate::snapshot(&[]);
    }
    crate::assert_same_host!(now, before, "the host differs from before the container");
}

/// Whether netrt's status lists the container.
pub fn managed(id: &str) -> bool {
    let status: Value =
        serde_json::from_str(&sh(&format!("{} status --json", crate::hook_binary().display()))).unwrap();
    status.as_array().unwrap().iter().any(|entry| entry["id"] == id)
}

/// containerd with a config of the test's own (`containerd config default`
/// with root, state and socket under `dir`), so that it never meets
/// dockerd's. Its tasks are killed and removed, and it is stopped, on drop.
pub struct Containerd {
    child: Child,
    pub socket: PathBuf,
    pub namespace: &'static str,
}

impl Containerd {
    /// Debian's default config, pointed at `dir`.
    pub fn default_config(dir: &Path) -> String {
        sh("containerd config default")
            .replace("root = \"/var/lib/containerd\"", &format!("root = \"{}\"", dir.join("root").display()))
            .replace("state = \"/run/containerd\"", &format!("state = \"{}\"", dir.join("state").display()))
            .replace(
                "address = \"/run/containerd/containerd.sock\"",
                &format!("address = \"{}\"", dir.join("containerd.sock").display()),
            )
    }

    pub fn start(config: &Path) -> Containerd {
        let log = fs::File::create(config.with_extension("log")).unwrap();
        let child = Command::new("containerd")
            .args(["--config", config.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("containerd starts (it comes with docker.io)");
        let socket = config.with_file_name("containerd.sock");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !socket.exists() {
            assert!(Instant::now() < deadline, "containerd did not open {}", socket.display());
            sleep(Duration::from_millis(100));
        }
        Containerd { child, socket, namespace: "netrt-it" }
    }

    /// The ctr command line for this containerd and namespace.
    pub fn ctr(&self) -> String {
        format!("ctr --address {} -n {}", self.socket.display(), self.namespace)
    }

    /// The pid of a running task.
    pub fn pid(&self, id: &str) -> u32 {
        let tasks = sh(&format!("{} task ls", self.ctr()));
        let line = tasks
            .lines()
            .find(|l| l.split_whitespace().next() == Some(id))
            .unwrap_or_else(|| panic!("no task {id}: {tasks}"));
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// Kills a task, waits for it to stop, and removes task and container.
    pub fn remove(&self, id: &str) {
        let ctr = self.ctr();
        sh_quiet(&format!("{ctr} task kill -s KILL {id}"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline
            && sh_output(&format!("{ctr} task ls | grep -w {id} | grep -qv STOPPED")).status.success()
        {
            sleep(Duration::from_millis(50));
        }
        sh_quiet(&format!("{ctr} task delete -f {id}"));
        sh_quiet(&format!("{ctr} container rm {id}"));
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let ctr = self.ctr();
        for id in sh(&format!("{ctr} container ls -q")).split_whitespace() {
            self.remove(id);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
