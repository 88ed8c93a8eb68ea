//! The Kubernetes path without a kubelet: containerd's CRI plugin (Debian's
//! containerd 1.6, started by the test on its own socket, from the
//! configuration file Debian ships) driven over its gRPC socket with the
//! calls the kubelet makes: `RunPodSandbox`, `CreateContainer`,
//! `StartContainer`, `StopPodSandbox`, `RemovePodSandbox`. The runtime
//! handler `netrt` is the one `netrt configure containerd` writes; pods get
//! their first interface from Debian's CNI bridge plugin, as a cluster's
//! network plugin would give it, and netrt's network on top. Needs root.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{
    ContainerConfig, ContainerMetadata, CreateContainerRequest, ImageSpec, ListPodSandboxRequest, PodSandboxConfig,
    PodSandboxMetadata, PodSandboxStatusRequest, RemovePodSandboxRequest, RunPodSandboxRequest, StartContainerRequest,
    StopPodSandboxRequest, VersionRequest,
};
use netrt_integration::engines::{busybox_oci_archive, Containerd, Installed};
use netrt_integration::*;
use serde_json::{json, Value};
use tonic::transport::{Channel, Endpoint};

/// Debian 12's /etc/containerd/config.toml as its containerd package ships
/// it: no `runtimes` table, so containerd's built-in `runc` handler is the
/// only one until a file names others.
const DEBIAN_CONFIG: &str = r#"version = 2

[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = "/etc/cni/net.d"
  [plugins."io.containerd.internal.v1.opt"]
    path = "/var/lib/containerd/opt"
"#;

/// The sandbox image (busybox sleeping), imported: nothing can be pulled.
const SANDBOX_IMAGE: &str = "netrt.test/sandbox:1";
const CNI_NETWORK: &str = "netrt-it-cri";
const CNI_BRIDGE: &str = "nrtk8scni";
/// The CNI bridge's own address, the pods' gateway (the bridge plugin's
/// `isGateway` gives it the subnet's first address).
const CNI_GATEWAY: &str = "203.0.113.129";
const POOL: &str = "lan";

/// A CRI client: the kubelet's side of the socket.
struct Cri {
    runtime: tokio::runtime::Runtime,
    client: RuntimeServiceClient<Channel>,
}

impl Cri {
    /// Connects once the CRI plugin answers (it starts after the socket).
    fn connect(socket: &Path) -> Cri {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let socket = socket.to_path_buf();
        let channel = runtime
            .block_on(Endpoint::from_static("http://[::]:0").connect_with_connector(tower::service_fn(move |_| {
                let socket = socket.clone();
                async move { tokio::net::UnixStream::connect(socket).await.map(TokioIo::new) }
            })))
            .expect("containerd's socket accepts a connection");
        let mut cri = Cri { runtime, client: RuntimeServiceClient::new(channel) };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let answer = cri.runtime.block_on(cri.client.version(VersionRequest::default()));
            match answer {
                Ok(version) => {
                    println!("CRI: {:?}", version.into_inner());
                    return cri;
                }
                Err(status) if Instant::now() > deadline => panic!("the CRI plugin does not serve: {status}"),
                Err(_) => sleep(Duration::from_millis(200)),
            }
        }
    }

    /// A pod sandbox's config as the kubelet sends it.
    fn pod_config(name: &str, namespace: &str, annotations: &[(&str, &str)]) -> PodSandboxConfig {
        PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: name.into(),
                uid: format!("uid-{namespace}-{name}"),
                namespace: namespace.into(),
                attempt: 0,
            }),
            hostname: name.into(),
            annotations: annotations.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<HashMap<_, _>>(),
            ..Default::default()
        }
    }

    /// RunPodSandbox; the error is the CRI status's message.
    fn run_pod(&mut self, config: &PodSandboxConfig, handler: &str) -> Result<String, String> {
        let request = RunPodSandboxRequest { config: Some(config.clone()), runtime_handler: handler.into() };
        self.runtime
            .block_on(self.client.run_pod_sandbox(request))
            .map(|r| r.into_inner().pod_sandbox_id)
            .map_err(|status| status.message().to_string())
    }

    /// The pid of the pod's sandbox process.
    fn pod_pid(&mut self, id: &str) -> u32 {
        let request = PodSandboxStatusRequest { pod_sandbox_id: id.into(), verbose: true };
        let status = self.runtime.block_on(self.client.pod_sandbox_status(request)).unwrap().into_inner();
        let info: Value = serde_json::from_str(&status.info["info"]).unwrap();
        info["pid"].as_u64().expect("the sandbox runs") as u32
    }

    /// CreateContainer and StartContainer: an app container in the pod.
    fn start_container(&mut self, pod: &str, pod_config: &PodSandboxConfig, name: &str) -> String {
        let config = ContainerConfig {
            metadata: Some(ContainerMetadata { name: name.into(), attempt: 0 }),
            image: Some(ImageSpec { image: SANDBOX_IMAGE.into(), ..Default::default() }),
            command: vec!["sleep".into(), "600".into()],
            ..Default::default()
        };
        let request = CreateContainerRequest {
            pod_sandbox_id: pod.into(),
            config: Some(config),
            sandbox_config: Some(pod_config.clone()),
        };
        let id =
            self.runtime.block_on(self.client.create_container(request)).expect("created").into_inner().container_id;
        self.runtime
            .block_on(self.client.start_container(StartContainerRequest { container_id: id.clone() }))
            .expect("started");
        id
    }

    /// StopPodSandbox and RemovePodSandbox, as the kubelet ends a pod.
    fn remove_pod(&mut self, id: &str) {
        self.runtime
            .block_on(self.client.stop_pod_sandbox(StopPodSandboxRequest { pod_sandbox_id: id.into() }))
            .expect("stopped");
        self.runtime
            .block_on(self.client.remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: id.into() }))
            .expect("removed");
    }
}

impl Drop for Cri {
    /// Every pod still there (a failed assertion's) ended as the kubelet
    /// would, so that its namespace and netrt's objects go too.
    fn drop(&mut self) {
        let listed = self.runtime.block_on(self.client.list_pod_sandbox(ListPodSandboxRequest::default()));
        for pod in listed.map(|r| r.into_inner().items).unwrap_or_default() {
            let id = pod.id;
            let _ = self
                .runtime
                .block_on(self.client.stop_pod_sandbox(StopPodSandboxRequest { pod_sandbox_id: id.clone() }));
            let _ =
                self.runtime.block_on(self.client.remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: id }));
        }
    }
}

/// The node's /etc/netrt/netrt.json for the test: moved aside at the start
/// (the hook under containerd reads the system file), put back on drop.
struct NodeConfig {
    original: Option<Vec<u8>>,
}

impl NodeConfig {
    const PATH: &'static str = "/etc/netrt/netrt.json";

    fn none() -> NodeConfig {
        let original = fs::read(Self::PATH).ok();
        let _ = fs::remove_file(Self::PATH);
        NodeConfig { original }
    }

    fn write(&self, config: &Value) {
        fs::create_dir_all("/etc/netrt").unwrap();
        fs::write(Self::PATH, config.to_string()).unwrap();
    }
}

impl Drop for NodeConfig {
    fn drop(&mut self) {
        match &self.original {
            Some(bytes) => fs::write(Self::PATH, bytes).unwrap(),
            None => {
                let _ = fs::remove_file(Self::PATH);
            }
        }
    }
}

/// What the CNI bridge plugin and host-local leave on the host, removed.
struct CniLeftovers;

impl Drop for CniLeftovers {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(format!("/var/lib/cni/networks/{CNI_NETWORK}"));
        sh_quiet(&format!("ip link del {CNI_BRIDGE}"));
    }
}

/// Debian's file with the test's own directories, socket, CNI directory and
/// sandbox image; `restrict_oom_score_adj` as the test machine needs.
fn node_config(dir: &Path) -> String {
    let cri = "  [plugins.\"io.containerd.grpc.v1.cri\"]\n";
    let top = format!(
        "version = 2\nroot = \"{}\"\nstate = \"{}\"\n\n[grpc]\n  address = \"{}\"\n",
        dir.join("root").display(),
        dir.join("state").display(),
        dir.join("containerd.sock").display()
    );
    DEBIAN_CONFIG
        .replacen("version = 2\n", &top, 1)
        .replacen(cri, &format!("{cri}    sandbox_image = \"{SANDBOX_IMAGE}\"\n    restrict_oom_score_adj = true\n"), 1)
        .replace("/etc/cni/net.d", &dir.join("net.d").display().to_string())
}

fn cni_network(dir: &Path) {
    let conflist = json!({
        "cniVersion": "0.4.0", "name": CNI_NETWORK,
        "plugins": [{"type": "bridge", "bridge": CNI_BRIDGE, "isGateway": true, "ipMasq": false,
                     "ipam": {"type": "host-local", "subnet": "203.0.113.128/26", "routes": [{"dst": "0.0.0.0/0"}]}}]
    });
    fs::create_dir_all(dir.join("net.d")).unwrap();
    fs::write(dir.join("net.d/10-netrt-it.conflist"), conflist.to_string()).unwrap();
    // Made here with its gateway address rather than by the plugin on the
    // first pod, so that it is part of the host before any pod.
    sh_quiet(&format!("ip link del {CNI_BRIDGE}"));
    sh(&format!(
        "ip link add {CNI_BRIDGE} address 02:00:cb:00:71:81 type bridge && \
         ip addr add {CNI_GATEWAY}/26 dev {CNI_BRIDGE} && ip link set {CNI_BRIDGE} up"
    ));
}

/// Global IPv4 addresses in a namespace, as `address/prefix interface`.
fn ipv4_addresses(pid: u32) -> Vec<String> {
    let text = sh(&format!("nsenter -t {pid} -n ip -o -4 addr show scope global"));
    text.lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            Some(format!("{} {}", words.get(3)?, words.get(1)?))
        })
        .collect()
}

fn record_exists(id: &str) -> bool {
    Path::new("/run/netrt/containers").join(format!("{id}.json")).exists()
}

fn bundle_config(dir: &Path, id: &str) -> Value {
    let path: PathBuf = dir.join(format!("state/io.containerd.runtime.v2.task/k8s.io/{id}/config.json"));
    serde_json::from_slice(&fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

#[test]
fn pods_through_containerds_cri_plugin() {
    require(
        sh_output("command -v containerd && command -v ctr").status.success(),
        "containerd is not installed (it comes with docker.io)",
    );
    let installed = Installed::new();
    let dir = std::env::temp_dir().join("netrt-it-cri");
    // An earlier run that died keeps its containers' root filesystems mounted.
    sh_quiet(&format!("grep -o ' {}/[^ ]*' /proc/mounts | sort -r | xargs -r -n1 umount -l", dir.display()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config.toml");
    fs::write(&config, node_config(&dir)).unwrap();
    cni_network(&dir);
    let _cni = CniLeftovers;

    let node_file = NodeConfig::none();
    // netrt configure containerd on Debian's file: the handler, and the
    // built-in runc handler written out, so that the CRI plugin still loads.
    let configured =
        sh_output(&format!("{} configure containerd --config {}", installed.wrapper().display(), config.display()));
    assert!(configured.status.success(), "{}", String::from_utf8_lossy(&configured.stderr));
    // It says what pods may ask for under the node's netrt.json: no file yet.
    let said = String::from_utf8_lossy(&configured.stdout);
    assert!(said.contains("pods may ask for limits only: no network is open to a pod"), "{said}");
    let written = fs::read_to_string(&config).unwrap();
    assert!(written.contains("containerd.runtimes.runc]"), "{written}");
    assert!(written.contains("containerd.runtimes.netrt]"), "{written}");

    let containerd = Containerd::start(&config);
    let archive = busybox_oci_archive(SANDBOX_IMAGE, &["sleep", "2147483647"]);
    sh(&format!("ctr --address {} -n k8s.io images import {}", containerd.socket.display(), archive.display()));
    let _ = fs::remove_file(&archive);
    let mut cri = Cri::connect(&containerd.socket);

    // The default handler (runc) runs a pod: the node still works.
    let plain =
        cri.run_pod(&Cri::pod_config("plain", "default", &[]), "").expect("a pod runs under the default handler");
    let plain_pid = cri.pod_pid(&plain);
    assert!(
        ipv4_addresses(plain_pid).iter().any(|a| a.starts_with("203.0.113.")),
        "CNI gave the pod its address: {:?}",
        ipv4_addresses(plain_pid)
    );
    cri.remove_pod(&plain);

    let lan = Lan::bridge("cri");
    let bridge = lan.bridge.clone().unwrap();
    let before = snapshot(&[&lan.peer_ns]);

    // With no netrt.json, the takeover of the LAN peer's address with a
    // chosen MAC, through the netrt handler, is refused in the CRI error.
    let takeover = [("net.bridge", bridge.as_str()), ("net.ip", "198.51.100.1/24"), ("net.mac", "00:11:22:33:44:55")];
    let refused = cri.run_pod(&Cri::pod_config("takeover", "tenant", &takeover), "netrt").expect_err("refused");
    assert!(
        refused.contains(&format!(
            "net.bridge=\\\"{bridge}\\\": a pod of namespace tenant may only use networks the admin defined"
        )) || refused.contains(&format!(
            "net.bridge=\"{bridge}\": a pod of namespace tenant may only use networks the admin defined"
        )),
        "{refused}"
    );
    assert_same_host!(snapshot(&[&lan.peer_ns]), before, "the refused pod left nothing");

    // The admin's network, open to team-a.
    let state = Path::new("/var/lib/netrt/pools").join(POOL);
    let _ = fs::remove_dir_all(&state);
    node_file.write(&json!({"node": "solo", "pools": {POOL: {
        "bridge": bridge, "subnets": ["198.51.100.0/24"], "ranges": ["198.51.100.60-198.51.100.69"],
        "gateways": ["198.51.100.1"], "namespaces": ["team-a"]}}}));

    let a_config = Cri::pod_config("web", "team-a", &[("net.pool", POOL)]);
    let a = cri.run_pod(&a_config, "netrt").expect("team-a may use the network");
    let a_pid = cri.pod_pid(&a);
    let addresses = ipv4_addresses(a_pid);
    assert!(addresses.iter().any(|a| a.starts_with("198.51.100.6")), "an address of the pool: {addresses:?}");
    assert!(addresses.iter().any(|a| a.starts_with("203.0.113.")), "and CNI's: {addresses:?}");
    assert!(record_exists(&a), "netrt set the sandbox up");
    assert!(
        sh_output(&format!("nsenter -t {a_pid} -n busybox ping -c 1 -W 2 {LAN_PEER4}")).status.success(),
        "the pod reaches the LAN"
    );

    // An app container in the pod carries the pod's annotations and
    // netrt's hooks, and joins the pod's network: no second setup.
    let app = cri.start_container(&a, &a_config, "app");
    let app_bundle = bundle_config(&dir, &app);
    assert_eq!(app_bundle["annotations"]["net.pool"], POOL, "containerd passes the pod's annotations on");
    assert_eq!(app_bundle["annotations"]["io.kubernetes.cri.container-type"], "container");
    assert!(app_bundle["hooks"].to_string().contains("netrt-hook"), "the hook ran for the app container too");
    assert!(!record_exists(&app), "and set nothing up");
    assert_eq!(ipv4_addresses(a_pid), addresses, "the pod's network is as it was");
    let running = snapshot(&[&lan.peer_ns]);

    // Refused, each in the CRI error, each leaving the node as it was.
    let refusals = [
        (
            "team-c",
            vec![("net.pool", POOL)],
            format!("network {POOL} is not open to a pod of namespace team-c (its namespaces in /etc/netrt/netrt.json: team-a)"),
        ),
        (
            "team-a",
            vec![("net.bridge", bridge.as_str()), ("net.ip", "198.51.100.61/24")],
            "a pod of namespace team-a may only use networks the admin defined".to_string(),
        ),
    ];
    for (namespace, annotations, expected) in refusals {
        let refused = cri.run_pod(&Cri::pod_config("x", namespace, &annotations), "netrt").expect_err("refused");
        assert!(refused.replace('\\', "").contains(&expected), "{annotations:?}: {refused}");
        assert_same_host!(snapshot(&[&lan.peer_ns]), running, "a refusal leaves nothing: {annotations:?}");
    }

    // Limits alone, for any pod: on the veth CNI made, measured at the
    // receiver (the host's end of the CNI bridge).
    let limited =
        cri.run_pod(&Cri::pod_config("limited", "team-b", &[("net.egress", "23mbit")]), "netrt").expect("limits");
    let pod_ns = name_netns_of(cri.pod_pid(&limited), "nrtcripod");
    let host_ns = name_netns_of(std::process::id(), "nrtcrihost");
    let rates = iperf(&host_ns.0, &pod_ns.0, CNI_GATEWAY, false, false, 4).unwrap_or_else(|e| panic!("{e}"));
    let rate = median(&rates[1..]) / 1e6;
    println!("a pod's net.egress=23mbit: {rate:.1} Mbit/s at the receiver");
    assert!((20.0..=24.0).contains(&rate), "{rate:.1} Mbit/s for 23mbit");
    drop((pod_ns, host_ns));

    cri.remove_pod(&limited);
    cri.remove_pod(&a);
    assert!(!record_exists(&a), "the pod's record is gone");
    assert_same_host!(snapshot(&[&lan.peer_ns]), before, "nothing left once the pods are removed");
    let shown = sh(&format!("{} pool show {POOL} --json", hook_binary().display()));
    assert_eq!(serde_json::from_str::<Value>(&shown).unwrap(), json!([]), "no claim is left in the pool");
    drop(cri);
    drop(containerd);
    drop(node_file);
    let _ = fs::remove_dir_all(&state);
    let _ = fs::remove_dir_all(&dir);
}
