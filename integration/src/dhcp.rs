//! A real DHCP server for the tests: dnsmasq (Debian's dnsmasq-base) in a
//! LAN's peer namespace, serving that LAN's eth0 with a short lease, its
//! lease file and log in a directory of the test's own.

use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::{sh_output, LAN_PEER4};

/// The addresses dnsmasq hands out on a test LAN (198.51.100.0/24).
pub const DHCP_FIRST: &str = "198.51.100.50";
pub const DHCP_LAST: &str = "198.51.100.99";
/// The DNS server and domain it announces (nothing answers there).
pub const DHCP_DNS: &str = "198.51.100.53";
pub const DHCP_DOMAIN: &str = "lan.example";

pub struct Dnsmasq {
    child: Option<Child>,
    pub dir: PathBuf,
    pub netns: String,
}

impl Dnsmasq {
    /// Serves DHCP in namespace `netns` on its `interface`, leases of
    /// `lease` (dnsmasq's syntax: 2m), router LAN_PEER4; `extra` options
    /// are added to the command line.
    pub fn start(netns: &str, interface: &str, lease: &str, extra: &[&str]) -> Dnsmasq {
        Dnsmasq::serving(netns, interface, (DHCP_FIRST, DHCP_LAST), lease, extra)
    }

    /// As `start`, with another range of addresses.
    pub fn serving(netns: &str, interface: &str, (first, last): (&str, &str), lease: &str, extra: &[&str]) -> Dnsmasq {
        let dir = std::env::temp_dir().join(format!("netrt-it-dnsmasq-{netns}"));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", netns, "dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0"])
            .arg(format!("--interface={interface}"))
            .args(["--bind-interfaces", "--dhcp-authoritative", "--user=root", "--log-dhcp"])
            .arg(format!("--dhcp-range={first},{last},255.255.255.0,{lease}"))
            .arg(format!("--dhcp-option=option:router,{LAN_PEER4}"))
            .arg(format!("--dhcp-option=option:dns-server,{DHCP_DNS}"))
            .arg(format!("--dhcp-option=option:domain-name,{DHCP_DOMAIN}"))
            .arg(format!("--dhcp-leasefile={}", dir.join("leases").display()))
            .arg(format!("--log-facility={}", dir.join("log").display()))
            .args(extra)
            .stdin(Stdio::null())
            // dnsmasq echoes its log to stderr too: a pipe nobody reads
            // fills, and then dnsmasq stops in the middle of an answer.
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dnsmasq starts (Debian package dnsmasq-base)");
        let server = Dnsmasq { child: Some(child), dir, netns: netns.to_string() };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !sh_output(&format!("ip netns exec {netns} ss -ulnp")).stdout.windows(7).any(|w| w == b"dnsmasq") {
            assert!(Instant::now() < deadline, "dnsmasq did not open its DHCP socket within 10 s: {}", server.log());
            sleep(Duration::from_millis(20));
        }
        server
    }

    /// The lease file's lines: `EXPIRY MAC ADDRESS HOSTNAME CLIENT-ID`.
    pub fn leases(&self) -> Vec<String> {
        fs::read_to_string(self.dir.join("leases")).unwrap_or_default().lines().map(String::from).collect()
    }

    /// The lease line of `address`, if the server holds one.
    pub fn lease_of(&self, address: &str) -> Option<String> {
        self.leases().into_iter().find(|l| l.split_whitespace().nth(2) == Some(address))
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    /// Waits up to `within` for `check` on the lease file to hold.
    pub fn wait_for(&self, within: Duration, check: impl Fn(&[String]) -> bool) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if check(&self.leases()) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            sleep(Duration::from_millis(20));
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        self.stop();
        let _ = fs::remove_dir_all(&self.dir);
    }
}
