//! Gathers the `net.*` settings of a container from its annotations and,
//! for Docker engines that cannot set annotations, from `NETRT_*`
//! environment variables. An annotation wins over the variable of its key.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub const KEY_PREFIX: &str = "net.";
pub const ENV_PREFIX: &str = "NETRT_";

/// One setting as the user gave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Setting {
    /// What the user wrote: the annotation key or the variable name.
    pub source: String,
    /// Trimmed value.
    pub value: String,
}

/// Settings by canonical key (`net.egress.burst`).
pub type Settings = BTreeMap<String, Setting>;

/// `NETRT_EGRESS_BURST` → `net.egress.burst`.
pub fn key_of_variable(name: &str) -> Option<String> {
    let rest = name.strip_prefix(ENV_PREFIX)?;
    Some(format!("{KEY_PREFIX}{}", rest.to_ascii_lowercase().replace('_', ".")))
}

/// `net.egress.burst` → `NETRT_EGRESS_BURST`.
pub fn variable_of_key(key: &str) -> String {
    let rest = key.strip_prefix(KEY_PREFIX).unwrap_or(key);
    format!("{ENV_PREFIX}{}", rest.to_ascii_uppercase().replace('.', "_"))
}

/// Collects settings from annotations and `KEY=VALUE` environment entries.
pub fn collect<'a>(
    annotations: impl IntoIterator<Item = (&'a String, &'a String)>,
    env: impl IntoIterator<Item = &'a String>,
) -> Settings {
    let mut settings = Settings::new();
    for entry in env {
        let (name, value) = entry.split_once('=').unwrap_or((entry.as_str(), ""));
        if let Some(key) = key_of_variable(name) {
            settings.insert(key, Setting { source: name.to_string(), value: value.trim().to_string() });
        }
    }
    for (key, value) in annotations {
        if key.starts_with(KEY_PREFIX) {
            settings.insert(key.clone(), Setting { source: key.clone(), value: value.trim().to_string() });
        }
    }
    settings
}

/// The annotations Kubernetes runtimes put on every container of a pod
/// that joins the pod's network namespace instead of having its own
/// (CRI-O, containerd), with the value that marks such a container.
pub const POD_MEMBER_MARKS: [(&str, &str); 2] =
    [("io.kubernetes.cri-o.ContainerType", "container"), ("io.kubernetes.cri.container-type", "container")];

/// Whether the container is an application container of a Kubernetes pod.
/// Pod annotations reach all the pod's containers, which share the pod's
/// network namespace: its network is set up once, for the pod's sandbox.
pub fn joins_pod_network<'a>(annotations: impl IntoIterator<Item = (&'a String, &'a String)>) -> bool {
    annotations
        .into_iter()
        .any(|(key, value)| POD_MEMBER_MARKS.iter().any(|(mark, member)| key == mark && value == member))
}

/// Settings from `KEY=VALUE` words, as `netrt-hook check` takes them; a key
/// may be an annotation key or a `NETRT_*` variable name.
pub fn from_words(words: &[String]) -> Result<Settings, String> {
    let mut annotations = BTreeMap::new();
    let mut env = Vec::new();
    for word in words {
        let Some((key, value)) = word.split_once('=') else {
            return Err(format!("{word:?} is not KEY=VALUE"));
        };
        if key.starts_with(ENV_PREFIX) {
            env.push(word.clone());
        } else if key.starts_with(KEY_PREFIX) {
            annotations.insert(key.to_string(), value.to_string());
        } else {
            return Err(format!("{key:?} is not a net.* key or a NETRT_* variable"));
        }
    }
    Ok(collect(&annotations, &env))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn only_application_containers_of_a_pod_join_its_network() {
        assert!(joins_pod_network(&map(&[("io.kubernetes.cri-o.ContainerType", "container"), ("net.egress", "1M")])));
        assert!(joins_pod_network(&map(&[("io.kubernetes.cri.container-type", "container")])));
        assert!(!joins_pod_network(&map(&[("io.kubernetes.cri-o.ContainerType", "sandbox"), ("net.egress", "1M")])));
        assert!(!joins_pod_network(&map(&[("io.kubernetes.cri.container-type", "sandbox")])));
        assert!(!joins_pod_network(&map(&[("net.egress", "1M")])));
    }

    #[test]
    fn variables_map_to_keys_and_back() {
        assert_eq!(key_of_variable("NETRT_EGRESS").as_deref(), Some("net.egress"));
        assert_eq!(key_of_variable("NETRT_EGRESS_BURST").as_deref(), Some("net.egress.burst"));
        assert_eq!(key_of_variable("NETRT_MACVLAN_MODE").as_deref(), Some("net.macvlan.mode"));
        assert_eq!(key_of_variable("PATH"), None);
        assert_eq!(variable_of_key("net.ingress.latency"), "NETRT_INGRESS_LATENCY");
    }

    #[test]
    fn annotations_win_over_variables_and_values_are_trimmed() {
        let annotations = map(&[("net.egress", " 10mbit "), ("other.key", "x")]);
        let env =
            vec!["NETRT_EGRESS=1mbit".to_string(), "NETRT_INGRESS=\t5mbit\n".to_string(), "PATH=/bin".to_string()];
        let settings = collect(&annotations, &env);
        assert_eq!(settings.len(), 2);
        assert_eq!(settings["net.egress"], Setting { source: "net.egress".into(), value: "10mbit".into() });
        assert_eq!(settings["net.ingress"], Setting { source: "NETRT_INGRESS".into(), value: "5mbit".into() });
    }

    #[test]
    fn unknown_variables_are_kept_so_that_they_can_be_refused() {
        let settings = collect(&BTreeMap::new(), &vec!["NETRT_EGRES=1mbit".to_string(), "NETRT_EGRESS".to_string()]);
        assert_eq!(settings["net.egres"].source, "NETRT_EGRES");
        assert_eq!(settings["net.egress"].value, "");
    }

    #[test]
    fn check_words_take_both_spellings() {
        let words = vec!["net.egress=10mbit".to_string(), "NETRT_INGRESS=1mbit".to_string()];
        let settings = from_words(&words).unwrap();
        assert_eq!(settings["net.ingress"].source, "NETRT_INGRESS");
        assert!(from_words(&["egress=1mbit".to_string()]).unwrap_err().contains("not a net.* key"));
        assert!(from_words(&["net.egress".to_string()]).unwrap_err().contains("not KEY=VALUE"));
    }
}
