//! Real hosts on one virtual LAN: QEMU guests (integration/guest/lan-host),
//! each with its own kernel and netrt-hook, their NICs' taps on a bridge
//! in a network namespace of the test's, with one etcd member listening
//! there on the LAN. Nothing leaves that namespace. A guest takes shell
//! commands on its console; `quit` on its QEMU monitor is the host dying.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::{sh, sh_quiet};

/// The LAN's namespace, its bridge and etcd.
pub struct Lan {
    pub ns: String,
    pub bridge: String,
    /// The etcd endpoint on the LAN, e.g. `http://192.0.2.1:23950`.
    pub etcd: String,
    etcd_child: Option<Child>,
    dir: std::path::PathBuf,
}

impl Lan {
    /// A namespace `ns` with bridge `lanbr` holding `address/24`, and etcd
    /// listening on `address:port` there.
    pub fn start(ns: &str, address: &str, port: u16) -> Lan {
        sh_quiet(&format!("ip netns del {ns}"));
        sh(&format!("ip netns add {ns} && ip -n {ns} link set lo up"));
        sh(&format!(
            "ip -n {ns} link add lanbr type bridge && ip -n {ns} link set lanbr address 02:00:00:00:1a:01 \
             && ip -n {ns} addr add {address}/24 dev lanbr && ip -n {ns} link set lanbr up"
        ));
        let dir = std::env::temp_dir().join(format!("netrt-it-lan-{ns}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let etcd = format!("http://{address}:{port}");
        let log = std::fs::File::create(dir.join("etcd.log")).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", ns, "etcd", "--name", "lan", "--data-dir"])
            .arg(dir.join("etcd"))
            .args(["--listen-client-urls", &etcd, "--advertise-client-urls", &etcd])
            .args(["--listen-peer-urls", &format!("http://127.0.0.1:{}", port + 1)])
            .args(["--initial-advertise-peer-urls", &format!("http://127.0.0.1:{}", port + 1)])
            .args(["--initial-cluster", &format!("lan=http://127.0.0.1:{}", port + 1)])
            .args(["--log-level", "error", "--logger", "zap"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("etcd starts (Debian's etcd-server)");
        let lan = Lan { ns: ns.to_string(), bridge: "lanbr".into(), etcd, etcd_child: Some(child), dir };
        // The guests' initramfs, built here in the host's namespace (its
        // first build downloads Debian's kernel; the LAN's namespace leads
        // nowhere), once for all of them.
        let prepared = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/guest/lan-host"))
            .arg("prepare")
            .output()
            .expect("integration/guest/lan-host runs");
        assert!(prepared.status.success(), "lan-host prepare: {}", String::from_utf8_lossy(&prepared.stderr));
        let deadline = Instant::now() + Duration::from_secs(30);
        while !lan.etcdctl("endpoint health").contains("is healthy") {
            assert!(Instant::now() < deadline, "etcd on the LAN did not come up");
            std::thread::sleep(Duration::from_millis(200));
        }
        lan
    }

    pub fn etcdctl(&self, arguments: &str) -> String {
        let out = crate::sh_output(&format!(
            "ip netns exec {} env ETCDCTL_API=3 etcdctl --endpoints {} --command-timeout 5s {arguments} 2>&1",
            self.ns, self.etcd
        ));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Every key and value under the prefix.
    pub fn dump(&self, prefix: &str) -> String {
        self.etcdctl(&format!("get --prefix {prefix}"))
    }

    /// Boots a host on the LAN with `address/24` on its bridge br0.
    pub fn boot(&self, name: &str, mac: &str, address: &str) -> Guest {
        let tap = format!("tap{name}");
        let monitor = self.dir.join(format!("{name}.monitor"));
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/guest/lan-host");
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.ns, script, "boot", name, mac, &tap])
            .arg(&monitor)
            .arg(format!("{address}/24"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("integration/guest/lan-host runs");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let mut guest =
            Guest { name: name.to_string(), child: Some(child), stdin, lines, monitor, console: String::new() };
        // Its tap appears once QEMU runs: onto the LAN's bridge.
        let deadline = Instant::now() + Duration::from_secs(60);
        while crate::sh_output(&format!("ip -n {} link show {tap}", self.ns)).status.code() != Some(0) {
            assert!(Instant::now() < deadline, "{name}'s tap did not appear");
            std::thread::sleep(Duration::from_millis(100));
        }
        sh(&format!("ip -n {0} link set {tap} master {1} && ip -n {0} link set {tap} up", self.ns, self.bridge));
        guest.wait_for(&format!("AGENT-READY {name}"), Duration::from_secs(180));
        guest
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        if let Some(mut child) = self.etcd_child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        sh_quiet(&format!("ip netns del {}", self.ns));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One host of the LAN.
pub struct Guest {
    pub name: String,
    child: Option<Child>,
    stdin: ChildStdin,
    lines: Receiver<String>,
    monitor: std::path::PathBuf,
    /// Everything its console printed so far, for failure messages.
    pub console: String,
}

/// What a command printed, and its exit status.
#[derive(Debug)]
pub struct Ran {
    pub status: i32,
    pub output: String,
}

impl Ran {
    /// The output, which must be of a command that succeeded.
    pub fn ok(self) -> String {
        assert_eq!(self.status, 0, "{}", self.output);
        self.output
    }
}

impl Guest {
    fn wait_for(&mut self, marker: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        let mut seen = String::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.console.push_str(&line);
                    self.console.push('\n');
                    if line.trim_end_matches('\r').starts_with(marker) {
                        return line;
                    }
                    seen.push_str(&line);
                    seen.push('\n');
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("{}: no {marker:?} within {limit:?}:\n{}", self.name, self.console)
                }
                Err(RecvTimeoutError::Disconnected) => panic!("{}: its console closed:\n{}", self.name, self.console),
            }
        }
    }

    /// Runs one shell line in the guest (lib.sh's helpers are there).
    pub fn run(&mut self, command: &str) -> Ran {
        assert!(!command.contains('\n'), "one line");
        writeln!(self.stdin, "{command}").expect("the guest's console takes input");
        self.stdin.flush().unwrap();
        let mut output = String::new();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match self.lines.recv_timeout(left) {
                Ok(line) => line.trim_end_matches('\r').to_string(),
                Err(e) => panic!("{}: {command}: {e:?}\n{}", self.name, self.console),
            };
            self.console.push_str(&line);
            self.console.push('\n');
            if let Some(out) = line.strip_prefix("OUT ") {
                output.push_str(out);
                output.push('\n');
            } else if line == "OUT" {
                output.push('\n');
            } else if let Some(status) = line.strip_prefix("DONE ") {
                return Ran { status: status.trim().parse().unwrap_or(-1), output };
            }
        }
    }

    /// The host dies: QEMU quits at once (no poststop, no gc, nothing).
    pub fn kill(&mut self) {
        let mut monitor = std::os::unix::net::UnixStream::connect(&self.monitor).expect("QEMU's monitor");
        let _ = monitor.write_all(b"quit\n");
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Ok(mut monitor) = std::os::unix::net::UnixStream::connect(&self.monitor) {
                let _ = monitor.write_all(b"quit\n");
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
