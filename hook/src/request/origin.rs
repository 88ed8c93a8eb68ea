//! Where a container comes from: a Kubernetes pod, as its runtime marks the
//! pod's sandbox, or a local container. Only the runtime's own annotations
//! count; no `net.*` key or variable says where a container is from.

use std::collections::BTreeMap;
use std::fmt;

/// Each runtime's own marks: the key that says a container is a pod's
/// sandbox, and the key that names the pod's Kubernetes namespace.
const RUNTIME_MARKS: [(&str, &str); 2] = [
    // containerd's CRI plugin
    ("io.kubernetes.cri.container-type", "io.kubernetes.cri.sandbox-namespace"),
    // CRI-O
    ("io.kubernetes.cri-o.ContainerType", "io.kubernetes.cri-o.Namespace"),
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A pod's sandbox; the namespace is None where its runtime names none.
    Pod { namespace: Option<String> },
    /// Started by someone root-equivalent on the host: Docker, podman,
    /// `ctr`, runc.
    Local,
}

impl Origin {
    /// A pod of namespace `namespace` (`netrt-hook check --pod`).
    pub fn pod(namespace: &str) -> Origin {
        Origin::Pod { namespace: Some(namespace.to_string()) }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Pod { namespace: Some(namespace) } => write!(f, "a pod of namespace {namespace}"),
            Origin::Pod { namespace: None } => write!(f, "a pod whose runtime names no namespace"),
            Origin::Local => write!(f, "a local container"),
        }
    }
}

/// Where the container with these annotations (the bundle's and the
/// state's) comes from.
pub fn origin(annotations: &BTreeMap<String, String>) -> Origin {
    for (type_key, namespace_key) in RUNTIME_MARKS {
        if annotations.get(type_key).is_some_and(|kind| kind == "sandbox") {
            return Origin::Pod { namespace: annotations.get(namespace_key).cloned() };
        }
    }
    Origin::Local
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(pairs: &[(&str, &str)]) -> Origin {
        origin(&pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    #[test]
    fn a_pod_is_what_its_runtime_marks_as_a_sandbox() {
        let containerd =
            of(&[("io.kubernetes.cri.container-type", "sandbox"), ("io.kubernetes.cri.sandbox-namespace", "team-a")]);
        assert_eq!(containerd, Origin::pod("team-a"));
        let crio = of(&[("io.kubernetes.cri-o.ContainerType", "sandbox"), ("io.kubernetes.cri-o.Namespace", "team-b")]);
        assert_eq!(crio, Origin::pod("team-b"));
        assert_eq!(of(&[("io.kubernetes.cri.container-type", "sandbox")]), Origin::Pod { namespace: None });
        assert_eq!(of(&[("net.egress", "1mbit"), ("io.kubernetes.cri.sandbox-namespace", "x")]), Origin::Local);
        assert_eq!(of(&[]), Origin::Local);
    }
}
