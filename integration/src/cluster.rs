//! Several hosts on one machine, for the pool and registry tests: a real
//! etcd cluster on 127.0.0.1, and nodes that are mount namespaces with a
//! `/run/netrt` and `/run/runc` of their own and a configuration file each.

use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::{sh, sh_output, sh_quiet};

/// A local etcd cluster of real members, stopped and removed on drop.
pub struct EtcdCluster {
    pub dir: PathBuf,
    base_port: u16,
    members: Vec<Option<Child>>,
    /// The certificates' folder of a TLS cluster.
    certs: Option<PathBuf>,
}

/// Certificates made with openssl for a TLS cluster: a CA, the members'
/// certificate (for 127.0.0.1) and a client certificate.
pub struct Certs {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl Certs {
    pub fn make(dir: &std::path::Path) -> Certs {
        fs::create_dir_all(dir).unwrap();
        let d = dir.display();
        sh(&format!(
            "cd {d} && openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=netrt-test-ca 2>/dev/null \
             && printf 'subjectAltName=IP:127.0.0.1\\nextendedKeyUsage=serverAuth,clientAuth\\n' > server.ext \
             && openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1 2>/dev/null \
             && openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile server.ext 2>/dev/null \
             && printf 'extendedKeyUsage=clientAuth\\n' > client.ext \
             && openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj /CN=netrt-node 2>/dev/null \
             && openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days 2 -extfile client.ext 2>/dev/null \
             && chmod 600 ca.key server.key client.key"
        ));
        Certs {
            ca: dir.join("ca.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
            client_cert: dir.join("client.pem"),
            client_key: dir.join("client.key"),
        }
    }
}

impl EtcdCluster {
    /// Starts `size` members; client ports `base_port`, +2, …, peer ports +1, +3, ….
    pub fn start(tag: &str, size: usize, base_port: u16, certs: Option<&Certs>) -> EtcdCluster {
        EtcdCluster::start_in(&std::env::temp_dir(), tag, size, base_port, certs)
    }

    /// As `start`, with the members' data under `base` (a tmpfs, say).
    pub fn start_in(
        base: &std::path::Path,
        tag: &str,
        size: usize,
        base_port: u16,
        certs: Option<&Certs>,
    ) -> EtcdCluster {
        let dir = base.join(format!("netrt-it-etcd-{tag}"));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let certs_dir = certs.map(|c| c.ca.parent().unwrap().to_path_buf());
        let mut cluster = EtcdCluster { dir, base_port, members: vec![], certs: certs_dir };
        let initial: Vec<String> =
            (0..size).map(|i| format!("m{i}=http://127.0.0.1:{}", cluster.peer_port(i))).collect();
        let initial = initial.join(",");
        for i in 0..size {
            let data = cluster.dir.join(format!("m{i}"));
            let scheme = if certs.is_some() { "https" } else { "http" };
            let client = format!("{scheme}://127.0.0.1:{}", cluster.client_port(i));
            let mut command = Command::new("etcd");
            command
                .args(["--name", &format!("m{i}"), "--data-dir", &data.display().to_string()])
                .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
                .args(["--listen-peer-urls", &format!("http://127.0.0.1:{}", cluster.peer_port(i))])
                .args(["--initial-advertise-peer-urls", &format!("http://127.0.0.1:{}", cluster.peer_port(i))])
                .args(["--initial-cluster", &initial, "--initial-cluster-state", "new", "--initial-cluster-token", tag])
                .args(["--log-level", "error", "--logger", "zap"]);
            if let Some(certs) = certs {
                command
                    .args([
                        "--cert-file",
                        &certs.server_cert.display().to_string(),
                        "--key-file",
                        &certs.server_key.display().to_string(),
                    ])
                    .args(["--trusted-ca-file", &certs.ca.display().to_string(), "--client-cert-auth"]);
            }
            let log = fs::File::create(cluster.dir.join(format!("m{i}.log"))).unwrap();
            let child = command.stdout(Stdio::null()).stderr(log).spawn().expect("etcd starts (Debian's etcd-server)");
            cluster.members.push(Some(child));
        }
        cluster.wait_healthy(0..size);
        cluster
    }

    fn client_port(&self, i: usize) -> u16 {
        self.base_port + 2 * i as u16
    }

    fn peer_port(&self, i: usize) -> u16 {
        self.base_port + 2 * i as u16 + 1
    }

    pub fn endpoint(&self, i: usize) -> String {
        format!("{}://127.0.0.1:{}", if self.certs.is_some() { "https" } else { "http" }, self.client_port(i))
    }

    pub fn endpoints(&self) -> Vec<String> {
        (0..self.members.len()).map(|i| self.endpoint(i)).collect()
    }

    /// etcdctl against the live members, with the test's client certificate.
    pub fn etcdctl(&self, arguments: &str) -> String {
        let live: Vec<String> =
            (0..self.members.len()).filter(|i| self.members[*i].is_some()).map(|i| self.endpoint(i)).collect();
        sh(&format!(
            "ETCDCTL_API=3 etcdctl --endpoints {}{} --command-timeout 5s {arguments}",
            live.join(","),
            self.tls_flags()
        ))
    }

    /// Every key and value under the prefix, as etcdctl prints them.
    pub fn dump(&self, prefix: &str) -> String {
        self.etcdctl(&format!("get --prefix {prefix}"))
    }

    fn wait_healthy(&self, members: impl Iterator<Item = usize> + Clone) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let healthy = members.clone().all(|i| {
                sh_output(&format!(
                    "ETCDCTL_API=3 etcdctl --endpoints {}{} --command-timeout 1s endpoint health",
                    self.endpoint(i),
                    self.tls_flags()
                ))
                .status
                .success()
            });
            if healthy {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "etcd did not become healthy: {}",
                fs::read_to_string(self.dir.join("m0.log")).unwrap_or_default()
            );
            sleep(Duration::from_millis(100));
        }
    }

    fn tls_flags(&self) -> String {
        match &self.certs {
            Some(dir) => format!(" --cacert {0}/ca.pem --cert {0}/client.pem --key {0}/client.key", dir.display()),
            None => String::new(),
        }
    }

    pub fn stop_member(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a stopped member again on its data directory.
    pub fn restart_member(&mut self, i: usize) {
        assert!(self.members[i].is_none(), "member {i} runs");
        let data = self.dir.join(format!("m{i}"));
        let client = self.endpoint(i);
        let log = fs::OpenOptions::new().append(true).create(true).open(self.dir.join(format!("m{i}.log"))).unwrap();
        let child = Command::new("etcd")
            .args(["--name", &format!("m{i}"), "--data-dir", &data.display().to_string()])
            .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &format!("http://127.0.0.1:{}", self.peer_port(i))])
            .args(["--log-level", "error", "--logger", "zap"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.members[i] = Some(child);
    }

    /// Waits until the live members have a leader again.
    pub fn wait_quorum(&self) {
        let live: Vec<usize> = (0..self.members.len()).filter(|i| self.members[*i].is_some()).collect();
        self.wait_healthy(live.into_iter());
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.stop_member(i);
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// One host of the flat network: a mount namespace with its own
/// `/run/netrt` and `/run/runc`, its own configuration file, and its own
/// bridge. Removed on drop (the bridge, the namespace's mounts).
pub struct Node {
    pub name: String,
    pub dir: PathBuf,
    pub config: PathBuf,
    pub bridge: String,
}

impl Node {
    pub fn new(name: &str, bridge: &str, config: &serde_json::Value) -> Node {
        let dir = std::env::temp_dir().join(format!("netrt-it-node-{name}"));
        sh_quiet(&format!("umount -l {0}/ns 2>/dev/null; umount -l {0} 2>/dev/null; rm -rf {0}", dir.display()));
        fs::create_dir_all(&dir).unwrap();
        let d = dir.display();
        sh(&format!(
            "mount --bind {d} {d} && mount --make-private {d} && touch {d}/ns \
             && unshare --mount={d}/ns --propagation private true \
             && mkdir -p /run/netrt /run/runc \
             && nsenter --mount={d}/ns sh -c 'mount -t tmpfs tmpfs /run/netrt && mount -t tmpfs tmpfs /run/runc'"
        ));
        let config_path = dir.join("netrt.json");
        fs::write(&config_path, serde_json::to_vec_pretty(config).unwrap()).unwrap();
        sh_quiet(&format!("ip link del {bridge}"));
        // The bridge's MAC is set, as netrt asks of a bridge its containers
        // join; one per node (two hosts never share one: a probe from one
        // must reach the other).
        let tag = name.bytes().chain(bridge.bytes()).fold(0u16, |h, b| h.wrapping_mul(31).wrapping_add(b.into()));
        sh(&format!(
            "ip link add {bridge} type bridge && ip link set {bridge} address 02:00:00:{:02x}:{:02x}:01 up",
            tag >> 8,
            tag & 0xff
        ));
        Node { name: name.to_string(), dir, config: config_path, bridge: bridge.to_string() }
    }

    /// The prefix that runs a command in this node's mount namespace.
    pub fn enter(&self) -> String {
        format!("nsenter --mount={}/ns", self.dir.display())
    }

    pub fn hook_env(&self) -> String {
        format!("NETRT_CONFIG={}", self.config.display())
    }

    /// netrt-hook with this node's configuration, in its namespace.
    pub fn hook(&self, arguments: &str) -> std::process::Output {
        sh_output(&format!(
            "{} env NETRT_CONFIG={} {} {arguments}",
            self.enter(),
            self.config.display(),
            crate::hook_binary().display()
        ))
    }

    /// Runs a shell command in the node's mount namespace.
    pub fn sh(&self, command: &str) -> std::process::Output {
        sh_output(&format!("{} sh -c '{command}'", self.enter()))
    }

    /// The host as `snapshot` sees it, with this node's own /run/netrt.
    pub fn snapshot(&self) -> String {
        crate::snapshot_on(&self.enter(), &[])
    }

    pub fn hook_with(&self, binary: &std::path::Path, arguments: &str) -> std::process::Output {
        sh_output(&format!(
            "{} env NETRT_CONFIG={} {} {arguments}",
            self.enter(),
            self.config.display(),
            binary.display()
        ))
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        sh_quiet(&format!("ip link del {}", self.bridge));
        sh_quiet(&format!("umount -l {0}/ns; umount -l {0}; rm -rf {0}", self.dir.display()));
    }
}

/// Joins two nodes' bridges with a veth pair: the LAN between the hosts.
pub struct Wire(String);

impl Wire {
    pub fn join(name: &str, a: &Node, b: &Node) -> Wire {
        sh_quiet(&format!("ip link del {name}a"));
        sh(&format!(
            "ip link add {name}a type veth peer name {name}b && ip link set {name}a master {} up && ip link set {name}b master {} up",
            a.bridge, b.bridge
        ));
        Wire(format!("{name}a"))
    }
}

impl Drop for Wire {
    fn drop(&mut self) {
        sh_quiet(&format!("ip link del {}", self.0));
    }
}
