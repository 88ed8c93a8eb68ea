//! The hook's input: the OCI state on stdin and the bundle's config.json.
//! runc and crun differ in details (crun reports `created` and pid 0 at
//! poststop, and adds a `root` field); both are accepted.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{ContainerState, State};
use serde::Deserialize;

use crate::error::{Error, Result};

/// Largest state or config.json the hook reads; real ones are a few KiB.
const MAX_INPUT_BYTES: u64 = 4 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Setup,
    Teardown,
}

/// What the hook knows about the container it was called for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    pub id: String,
    pub pid: Option<i32>,
    pub status: ContainerState,
    pub bundle: PathBuf,
    pub annotations: BTreeMap<String, String>,
}

/// The parts of config.json netrt reads; every other field is ignored, so a
/// runtime's additions never make the hook fail.
#[derive(Debug, Default, Deserialize)]
pub struct Config {
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub process: Option<Process>,
    #[serde(default)]
    pub linux: Option<Linux>,
    /// The container's hostname: what DHCP tells the server.
    #[serde(default)]
    pub hostname: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Process {
    #[serde(default)]
    pub env: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Linux {
    #[serde(default)]
    pub namespaces: Vec<Namespace>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Namespace {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub path: Option<String>,
}

/// The OCI state as the runtime wrote it.
pub fn read_state_text(input: impl Read) -> Result<String> {
    let mut text = String::new();
    input
        .take(MAX_INPUT_BYTES)
        .read_to_string(&mut text)
        .map_err(|e| Error::Input(format!("cannot read the OCI state on stdin: {e}")))?;
    Ok(text)
}

pub fn read_state(input: impl Read) -> Result<Container> {
    parse_state(&read_state_text(input)?)
}

pub fn parse_state(text: &str) -> Result<Container> {
    if text.trim().is_empty() {
        return Err(Error::Input(
            "no OCI state on stdin; netrt-hook is run by the container runtime (see netrt-hook --help)".into(),
        ));
    }
    let state: State =
        serde_json::from_str(text).map_err(|e| Error::Input(format!("the OCI state on stdin is not valid: {e}")))?;
    if state.id().is_empty() {
        return Err(Error::Input("the OCI state on stdin has no container id".into()));
    }
    Ok(Container {
        id: state.id().clone(),
        // crun reports pid 0 once the process is gone.
        pid: state.pid().filter(|&pid| pid > 0),
        status: *state.status(),
        bundle: state.bundle().clone(),
        annotations: state.annotations().clone().unwrap_or_default().into_iter().collect(),
    })
}

/// The stage from the hook's argument, or from the state's status.
pub fn stage(argument: Option<&str>, container: &Container) -> Result<Stage> {
    match argument {
        Some("createRuntime" | "prestart") => Ok(Stage::Setup),
        Some("poststop") => Ok(Stage::Teardown),
        Some(other) => Err(Error::Input(format!(
            "stage {other:?} is not one netrt-hook works from; use createRuntime, prestart or poststop"
        ))),
        None => match container.status {
            ContainerState::Creating | ContainerState::Created => Ok(Stage::Setup),
            ContainerState::Stopped => Ok(Stage::Teardown),
            other => Err(Error::Input(format!(
                "container status {other:?} gives no stage; name it: netrt-hook createRuntime|prestart|poststop"
            ))),
        },
    }
}

pub fn read_config(bundle: &Path) -> Result<Config> {
    if std::fs::symlink_metadata(bundle).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(Error::Input(format!(
            "the bundle path {} is a symbolic link; netrt reads config.json only from the bundle directory itself",
            bundle.display()
        )));
    }
    let path = bundle.join("config.json");
    let text = read_bounded(&path).map_err(Error::Input)?;
    parse_config(&path.display().to_string(), &text)
}

/// Parses config.json's text; `shown` names the file in errors.
pub fn parse_config(shown: &str, text: &str) -> Result<Config> {
    serde_json::from_str(text).map_err(|e| Error::Input(format!("{shown} is not valid: {e}")))
}

/// Reads a bundle's file: a regular file, not a symbolic link (opened
/// without blocking, so a FIFO planted there cannot hang the runtime), at
/// most 4 MiB, UTF-8.
pub fn read_bounded(path: &Path) -> std::result::Result<String, String> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => {
                format!("{} is a symbolic link; netrt reads only a regular file there", path.display())
            }
            _ => format!("cannot open {}: {e}", path.display()),
        })?;
    let metadata = file.metadata().map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if !metadata.is_file() {
        return Err(format!("{} is not a regular file", path.display()));
    }
    if metadata.len() > MAX_INPUT_BYTES {
        return Err(format!("{} is larger than 4 MiB", path.display()));
    }
    let mut text = String::new();
    file.take(MAX_INPUT_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if text.len() as u64 > MAX_INPUT_BYTES {
        return Err(format!("{} is larger than 4 MiB", path.display()));
    }
    Ok(text)
}

impl Config {
    pub fn env(&self) -> &[String] {
        self.process.as_ref().map(|p| p.env.as_slice()).unwrap_or_default()
    }

    /// The network namespace path config.json names, if any.
    pub fn netns_path(&self) -> Option<&str> {
        let linux = self.linux.as_ref()?;
        linux.namespaces.iter().find(|ns| ns.kind == "network").and_then(|ns| ns.path.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUNC_CREATE: &str = r#"{"ociVersion":"1.0.2-dev","id":"web1","status":"creating","pid":4242,
        "bundle":"/tmp/b","annotations":{"net.egress":"10mbit"}}"#;
    const RUNC_POSTSTOP: &str = r#"{"ociVersion":"1.0.2-dev","id":"web1","status":"stopped","bundle":"/tmp/b"}"#;
    const CRUN_CREATE: &str = r#"{"ociVersion":"1.0.0","id":"web2","status":"created","pid":77,
        "root":"/run/crun/web2","bundle":"/tmp/c","annotations":{}}"#;
    const CRUN_POSTSTOP: &str = r#"{"ociVersion":"1.0.0","id":"web2","status":"stopped","pid":0,
        "root":"/run/crun/web2","bundle":"/tmp/c"}"#;

    #[test]
    fn runc_states() {
        let c = parse_state(RUNC_CREATE).unwrap();
        assert_eq!((c.id.as_str(), c.pid, c.annotations["net.egress"].as_str()), ("web1", Some(4242), "10mbit"));
        assert_eq!(stage(None, &c), Ok(Stage::Setup));
        let c = parse_state(RUNC_POSTSTOP).unwrap();
        assert_eq!((c.pid, stage(None, &c)), (None, Ok(Stage::Teardown)));
    }

    #[test]
    fn crun_states() {
        let c = parse_state(CRUN_CREATE).unwrap();
        assert_eq!((c.pid, stage(None, &c)), (Some(77), Ok(Stage::Setup)));
        let c = parse_state(CRUN_POSTSTOP).unwrap();
        assert_eq!((c.pid, stage(None, &c)), (None, Ok(Stage::Teardown)));
    }

    #[test]
    fn argument_wins_over_status() {
        let c = parse_state(RUNC_CREATE).unwrap();
        assert_eq!(stage(Some("poststop"), &c), Ok(Stage::Teardown));
        assert_eq!(stage(Some("prestart"), &c), Ok(Stage::Setup));
        assert_eq!(stage(Some("createRuntime"), &c), Ok(Stage::Setup));
        assert!(stage(Some("startContainer"), &c).unwrap_err().to_string().contains("stage \"startContainer\" is not"));
    }

    #[test]
    fn running_status_without_argument_is_refused() {
        let c = parse_state(&RUNC_CREATE.replace("creating", "running")).unwrap();
        assert!(stage(None, &c).unwrap_err().to_string().contains("gives no stage"));
    }

    #[test]
    fn bad_states_are_refused() {
        assert!(parse_state("").unwrap_err().to_string().contains("no OCI state"));
        assert!(parse_state("{").unwrap_err().to_string().contains("not valid"));
        assert!(parse_state(r#"{"status":"creating"}"#).unwrap_err().to_string().contains("no container id"));
    }

    #[test]
    fn config_reads_only_what_netrt_needs() {
        let config: Config = serde_json::from_str(
            r#"{"ociVersion":"1.0.2","process":{"env":["PATH=/bin","NETRT_EGRESS=1mbit"],"args":["sh"]},
                "annotations":{"net.ingress":"5mbit"},"unknown":{"a":1},
                "linux":{"namespaces":[{"type":"pid"},{"type":"network","path":"/run/netns/t"}]}}"#,
        )
        .unwrap();
        assert_eq!(config.env()[1], "NETRT_EGRESS=1mbit");
        assert_eq!(config.netns_path(), Some("/run/netns/t"));
        assert_eq!(config.annotations["net.ingress"], "5mbit");
        let bare: Config = serde_json::from_str("{}").unwrap();
        assert!(bare.env().is_empty() && bare.netns_path().is_none());
    }
}
