//! Who may ask for what (`trust` in the configuration file): a Kubernetes
//! pod only for limits and for the networks (pools) the admin opened to its
//! namespace; a local container, whose user is root on the host, for every
//! key unless the admin says otherwise. Checked before anything else.

use serde::Deserialize;

use super::pools::{Pool, Pools};
use crate::error::{Error, KeyError, Result};
use crate::request::origin::Origin;
use crate::request::plan::is_known_key;
use crate::request::settings::{key_of_variable, Setting, Settings, ENV_PREFIX};

/// The `trust` section as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustFile {
    pub pods: Option<String>,
    pub local: Option<String>,
    pub env: Option<bool>,
}

/// What a container of one origin may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Every key (within the policy).
    Raw,
    /// Limits, and an attachment only by naming a network open to it.
    Networks,
    /// Limits only.
    Limits,
}

impl Rule {
    fn name(self) -> &'static str {
        match self {
            Rule::Raw => "raw",
            Rule::Networks => "networks",
            Rule::Limits => "limits",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trust {
    pub pods: Rule,
    pub local: Rule,
    /// Whether a local container's `NETRT_*` variables are read at all:
    /// an image's `ENV` sets them too, so they are off unless the admin
    /// turns them on (Docker before 24 has no other way to pass settings).
    pub env: bool,
    /// The configuration file, for messages.
    pub path: String,
}

impl Default for Trust {
    fn default() -> Trust {
        Trust { pods: Rule::Networks, local: Rule::Raw, env: false, path: super::file::CONFIG_PATH.into() }
    }
}

impl Trust {
    pub fn from_file(path: &str, file: TrustFile) -> Result<Trust> {
        let rule = |field: &str, value: Option<String>, default: Rule, allowed: &[Rule]| match value {
            None => Ok(default),
            Some(text) => allowed.iter().copied().find(|r| r.name() == text).ok_or_else(|| {
                let names: Vec<&str> = allowed.iter().map(|r| r.name()).collect();
                Error::Input(format!("{path}: trust.{field} {text:?}: must be one of {}", names.join(", ")))
            }),
        };
        Ok(Trust {
            pods: rule("pods", file.pods, Rule::Networks, &[Rule::Networks, Rule::Limits, Rule::Raw])?,
            local: rule("local", file.local, Rule::Raw, &[Rule::Raw, Rule::Networks])?,
            env: file.env.unwrap_or(false),
            path: path.to_string(),
        })
    }

    /// The rule for a container of `origin`.
    pub fn rule_for(&self, origin: &Origin) -> Rule {
        match origin {
            Origin::Pod { .. } => self.pods,
            Origin::Local => self.local,
        }
    }

    /// Which rule applies, in words (`netrt-hook check` prints it).
    pub fn describe(&self, origin: &Origin) -> String {
        let (field, rule) = match origin {
            Origin::Pod { .. } => ("pods", self.pods),
            Origin::Local => ("local", self.local),
        };
        let what = match rule {
            Rule::Raw => "every key, within the policy",
            Rule::Networks => "limits, and attachments only through a network (net.pool) open to it",
            Rule::Limits => "limits only",
        };
        let variables = match (origin, self.env) {
            (Origin::Pod { .. }, _) => "its NETRT_* variables never count",
            (Origin::Local, true) => "its NETRT_* variables are read (trust.env true)",
            (Origin::Local, false) => "its NETRT_* variables are refused (trust.env false)",
        };
        format!("trust: {origin} may ask for {what} (trust.{field} \"{}\" in {}); {variables}", rule.name(), self.path)
    }

    /// What pods may ask for under this file, a line each: the rule, then
    /// every network open to a pod (`netrt configure containerd` prints it).
    pub fn pods_summary(&self, pools: &Pools) -> Vec<String> {
        let rule = format!("trust.pods \"{}\" in {}", self.pods.name(), self.path);
        let open: Vec<&Pool> = pools.pools.values().filter(|p| p.open.namespaces.is_some()).collect();
        match self.pods {
            Rule::Raw => vec![format!("pods may ask for every key, as local containers ({rule})")],
            Rule::Limits => vec![format!("pods may ask for limits only ({rule})")],
            Rule::Networks if open.is_empty() => vec![format!(
                "pods may ask for limits only: no network is open to a pod ({rule}; a pool's namespaces opens it)"
            )],
            Rule::Networks => {
                let mut lines =
                    vec![format!("pods may ask for limits, and for these networks with net.pool ({rule}):")];
                for pool in open {
                    let namespaces = pool.open.namespaces.as_deref().unwrap_or_default();
                    let who = if namespaces.iter().any(|n| n == "*") {
                        "every namespace".to_string()
                    } else {
                        format!("namespaces {}", namespaces.join(", "))
                    };
                    let mut may = vec![];
                    if pool.open.static_addresses {
                        may.push("net.ip in its ranges");
                    }
                    if pool.open.dhcp {
                        may.push("net.ip=dhcp");
                    }
                    let may = if may.is_empty() { String::new() } else { format!("; {}", may.join(", ")) };
                    lines.push(format!("  {}: {who}{may}", pool.name));
                }
                lines
            }
        }
    }

    /// Refuses a local container's environment that carries a `NETRT_*`
    /// variable while `trust.env` is off, naming the first one. (A pod's
    /// variables are never read, so never refused either.)
    pub fn check_env<'a>(&self, env: impl IntoIterator<Item = &'a String>) -> Result<(), KeyError> {
        if self.env {
            return Ok(());
        }
        let Some(entry) = env.into_iter().find(|entry| entry.starts_with(ENV_PREFIX)) else { return Ok(()) };
        let (name, value) = entry.split_once('=').unwrap_or((entry.as_str(), ""));
        let instead = match key_of_variable(name).filter(|key| is_known_key(key)) {
            Some(key) => format!("the annotation {key}"),
            None => "a net.* annotation".to_string(),
        };
        Err(KeyError::new(
            name,
            value.trim(),
            format!(
                "netrt reads a container's NETRT_* variables only when trust.env is true in {}, and it is off \
                 (an image's ENV sets variables too); give it as {instead}, or turn variables on with \
                 netrt configure docker --env",
                self.path
            ),
        ))
    }

    /// Refuses a setting that a container of `origin` may not give.
    pub fn check(&self, origin: &Origin, settings: &Settings, pools: &Pools) -> Result<(), KeyError> {
        let rule = self.rule_for(origin);
        if rule == Rule::Raw {
            return Ok(());
        }
        let field = if matches!(origin, Origin::Pod { .. }) { "pods" } else { "local" };
        let setting = |key: &str| settings.get(key);
        let network = setting("net.pool");
        for (key, given) in settings {
            // Limits and guarantees: every container may ask for them.
            if crate::request::plan::BANDWIDTH_KEYS.contains(&key.as_str()) {
                continue;
            }
            if rule == Rule::Limits {
                return Err(refuse(given, format!("{origin} may only ask for limits ({})", self.rule_name(field))));
            }
            // What a network lets its user add; every other key (net.bridge,
            // net.parent, net.vlan, net.gateway, net.routes, net.mac, net.ip
            // without a network) attaches a container by itself.
            let in_network = match key.as_str() {
                "net.pool" | "net.ifname" | "net.mtu" => true,
                "net.ip" | "net.dhcp.timeout" => network.is_some(),
                "net.macvlan.mode" => network
                    .and_then(|n| pools.get(&n.value))
                    .is_some_and(|pool| pool.attachment.macvlan_mode.as_deref() == Some(given.value.as_str())),
                _ => false,
            };
            if !in_network {
                return Err(refuse(
                    given,
                    format!(
                        "{origin} may only use networks the admin defined ({}); ask for one with net.pool, \
                         which an admin defines as a pool in {} open to its namespace",
                        self.rule_name(field),
                        self.path
                    ),
                ));
            }
        }
        let Some(network) = network else { return Ok(()) };
        // An unknown pool is refused when net.pool is resolved.
        let Some(pool) = pools.get(&network.value) else { return Ok(()) };
        if let Origin::Pod { namespace } = origin {
            if !pool.open.admits(namespace.as_deref()) {
                return Err(refuse(network, closed(pool, origin, &pools.path)));
            }
        }
        if let Some(ip) = setting("net.ip") {
            check_addresses(ip, pool, origin, &pools.path)?;
        }
        Ok(())
    }

    fn rule_name(&self, field: &str) -> String {
        let rule = if field == "pods" { self.pods } else { self.local };
        format!("trust.{field} \"{}\" in {}", rule.name(), self.path)
    }
}

fn refuse(setting: &Setting, reason: String) -> KeyError {
    KeyError::new(&setting.source, &setting.value, reason)
}

fn closed(pool: &Pool, origin: &Origin, path: &str) -> String {
    match &pool.open.namespaces {
        None => {
            format!("network {} is open to no pod ({origin}; namespaces of pool {} in {path})", pool.name, pool.name)
        }
        Some(open) => {
            format!("network {} is not open to {origin} (its namespaces in {path}: {})", pool.name, open.join(", "))
        }
    }
}

/// `net.ip` inside a network: static addresses only where the pool says
/// `static` and only inside its ranges, DHCP only where it says `dhcp`.
fn check_addresses(ip: &Setting, pool: &Pool, origin: &Origin, path: &str) -> Result<(), KeyError> {
    for item in ip.value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        if item.eq_ignore_ascii_case("dhcp") {
            if !pool.open.dhcp {
                let reason = format!(
                    "network {} does not let {origin} use DHCP (dhcp of pool {} in {path})",
                    pool.name, pool.name
                );
                return Err(refuse(ip, reason));
            }
            continue;
        }
        if !pool.open.static_addresses {
            let reason = format!(
                "network {} gives its addresses itself; {origin} may not choose one (static of pool {} in {path})",
                pool.name, pool.name
            );
            return Err(refuse(ip, reason));
        }
        // A malformed address is refused when the attachment is built.
        let Ok(cidr) = crate::request::attachment::Cidr::parse(item) else { continue };
        if !pool.in_ranges(cidr.address) {
            let reason =
                format!("{} is outside network {}'s ranges ({})", cidr.address, pool.name, pool.describe_ranges());
            return Err(refuse(ip, reason));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigFile;
    use crate::request::settings::from_words;

    fn config(json: &str) -> (Trust, Pools) {
        let file: ConfigFile = serde_json::from_str(json).unwrap();
        let path = "/etc/netrt/netrt.json";
        let pools = Pools::from_file(path, Some("n1".into()), file.registry, file.pools).unwrap();
        (Trust::from_file(path, file.trust).unwrap(), pools)
    }

    fn refusal(trust: &Trust, pools: &Pools, origin: &Origin, words: &[&str]) -> Option<String> {
        let words: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        trust.check(origin, &from_words(&words).unwrap(), pools).err().map(|e| e.to_string())
    }

    const NETWORKS: &str = r#"{"pools": {
        "lan": {"bridge": "br0", "subnets": ["198.51.100.0/24"], "ranges": ["198.51.100.100-198.51.100.199"],
                "gateways": ["198.51.100.1"], "namespaces": ["team-a", "team-b"], "static": true},
        "shut": {"bridge": "br0", "subnets": ["203.0.113.0/24"]},
        "wide": {"parent": "eth1", "macvlan_mode": "private", "subnets": ["192.0.2.0/24"], "namespaces": ["*"], "dhcp": true}
    }}"#;

    #[test]
    fn variables_are_read_only_when_the_admin_turns_them_on() {
        let env = |entries: &[&str]| entries.iter().map(|e| e.to_string()).collect::<Vec<_>>();
        let (off, _) = config("{}");
        assert!(!off.env, "off by default");
        assert_eq!(off.check_env(&env(&["PATH=/bin", "HOME=/"])), Ok(()));
        let refused = off.check_env(&env(&["PATH=/bin", "NETRT_EGRESS= 10mbit"])).unwrap_err().to_string();
        assert_eq!(
            refused,
            "netrt: NETRT_EGRESS=\"10mbit\": netrt reads a container's NETRT_* variables only when trust.env is true in \
             /etc/netrt/netrt.json, and it is off (an image's ENV sets variables too); give it as the annotation \
             net.egress, or turn variables on with netrt configure docker --env"
        );
        let unknown = off.check_env(&env(&["NETRT_PARNET=eth0"])).unwrap_err().to_string();
        assert!(
            unknown.starts_with("netrt: NETRT_PARNET=\"eth0\": ") && unknown.contains("give it as a net.* annotation")
        );
        let (on, _) = config(r#"{"trust": {"env": true}}"#);
        assert_eq!(on.check_env(&env(&["NETRT_EGRESS=10mbit"])), Ok(()));
        let file: Result<ConfigFile, _> = serde_json::from_str(r#"{"trust": {"env": "yes"}}"#);
        assert!(file.is_err(), "a switch is true or false");
    }

    #[test]
    fn what_pods_may_ask_for_is_summed_up_from_the_file() {
        let (trust, pools) = config(NETWORKS);
        assert_eq!(
            trust.pods_summary(&pools),
            [
                "pods may ask for limits, and for these networks with net.pool (trust.pods \"networks\" in /etc/netrt/netrt.json):",
                "  lan: namespaces team-a, team-b; net.ip in its ranges",
                "  wide: every namespace; net.ip=dhcp",
            ]
        );
        let (trust, pools) = config("{}");
        assert_eq!(trust.pods_summary(&pools), ["pods may ask for limits only: no network is open to a pod (trust.pods \"networks\" in /etc/netrt/netrt.json; a pool's namespaces opens it)"]);
        let (trust, pools) = config(&NETWORKS.replacen('{', r#"{"trust": {"pods": "limits"},"#, 1));
        assert_eq!(
            trust.pods_summary(&pools),
            ["pods may ask for limits only (trust.pods \"limits\" in /etc/netrt/netrt.json)"]
        );
        let (trust, pools) = config(r#"{"trust": {"pods": "raw"}}"#);
        assert!(trust.pods_summary(&pools)[0].starts_with("pods may ask for every key"));
    }

    #[test]
    fn with_no_file_a_pod_gets_limits_and_a_local_container_everything() {
        let (trust, pools) = config("{}");
        let pod = Origin::pod("tenant");
        assert_eq!(refusal(&trust, &pools, &pod, &["net.egress=10mbit", "net.ingress.burst=64k"]), None);
        for raw in [
            &["net.bridge=br0", "net.ip=10.0.0.1/24", "net.mac=00:11:22:33:44:55"][..],
            &["net.parent=eth0", "net.macvlan.mode=passthru"],
            &["net.parent=eth0", "net.vlan=1"],
            &["net.bridge=br0", "net.ip=dhcp"],
        ] {
            let refused = refusal(&trust, &pools, &pod, raw).expect("refused");
            assert!(
                refused.contains(
                    "a pod of namespace tenant may only use networks the admin defined \
                                  (trust.pods \"networks\" in /etc/netrt/netrt.json); ask for one with net.pool"
                ),
                "{raw:?}: {refused}"
            );
        }
        assert_eq!(refusal(&trust, &pools, &Origin::Local, &["net.parent=eth0", "net.macvlan.mode=passthru"]), None);
    }

    #[test]
    fn a_pod_uses_a_network_open_to_its_namespace_and_adds_only_what_it_allows() {
        let (trust, pools) = config(NETWORKS);
        let a = Origin::pod("team-a");
        assert_eq!(refusal(&trust, &pools, &a, &["net.pool=lan", "net.ifname=lan0", "net.mtu=1400"]), None);
        assert_eq!(refusal(&trust, &pools, &a, &["net.pool=lan", "net.ip=198.51.100.150/24"]), None);
        let outside = refusal(&trust, &pools, &a, &["net.pool=lan", "net.ip=198.51.100.5/24"]).unwrap();
        assert!(outside.contains("198.51.100.5 is outside network lan's ranges (198.51.100.100-198.51.100.199)"));
        let c = refusal(&trust, &pools, &Origin::pod("team-c"), &["net.pool=lan"]).unwrap();
        assert!(c.contains("net.pool=\"lan\": network lan is not open to a pod of namespace team-c (its namespaces in /etc/netrt/netrt.json: team-a, team-b)"), "{c}");
        let shut = refusal(&trust, &pools, &a, &["net.pool=shut"]).unwrap();
        assert!(shut.contains("network shut is open to no pod"), "{shut}");
        for (extra, key) in [
            ("net.mac=00:11:22:33:44:55", "net.mac"),
            ("net.gateway=198.51.100.1", "net.gateway"),
            ("net.bridge=br0", "net.bridge"),
        ] {
            let refused = refusal(&trust, &pools, &a, &["net.pool=lan", extra]).unwrap();
            assert!(refused.contains(&format!("{key}=")) && refused.contains("may only use networks"), "{refused}");
        }
        let dhcp = refusal(&trust, &pools, &a, &["net.pool=lan", "net.ip=dhcp"]).unwrap();
        assert!(dhcp.contains("network lan does not let a pod of namespace team-a use DHCP"), "{dhcp}");
        let anyone = Origin::pod("z");
        assert_eq!(refusal(&trust, &pools, &anyone, &["net.pool=wide", "net.ip=dhcp"]), None);
        assert_eq!(refusal(&trust, &pools, &anyone, &["net.pool=wide", "net.macvlan.mode=private"]), None);
        assert!(refusal(&trust, &pools, &anyone, &["net.pool=wide", "net.macvlan.mode=passthru"]).is_some());
        let chosen = refusal(&trust, &pools, &anyone, &["net.pool=wide", "net.ip=192.0.2.7/24"]).unwrap();
        assert!(chosen.contains("network wide gives its addresses itself"), "{chosen}");
        assert!(
            refusal(&trust, &pools, &Origin::Pod { namespace: None }, &["net.pool=lan"]).is_some(),
            "no namespace, no named network"
        );
    }

    #[test]
    fn the_admin_opens_or_closes_more() {
        let (trust, pools) = config(
            r#"{"trust": {"pods": "limits", "local": "networks"}, "pools": {"lan": {"bridge": "br0", "subnets": ["198.51.100.0/24"]}}}"#,
        );
        let pod = refusal(&trust, &pools, &Origin::pod("a"), &["net.pool=lan"]).unwrap();
        assert!(pod.contains("a pod of namespace a may only ask for limits (trust.pods \"limits\""), "{pod}");
        let local = refusal(&trust, &pools, &Origin::Local, &["net.bridge=br0"]).unwrap();
        assert!(local.contains("a local container may only use networks the admin defined (trust.local \"networks\""));
        assert_eq!(refusal(&trust, &pools, &Origin::Local, &["net.pool=lan"]), None, "namespaces aside");
        let (raw, pools) = config(r#"{"trust": {"pods": "raw"}}"#);
        assert_eq!(refusal(&raw, &pools, &Origin::pod("a"), &["net.bridge=br0"]), None);
        let file: ConfigFile = serde_json::from_str(r#"{"trust": {"local": "limits"}}"#).unwrap();
        let bad = Trust::from_file("/etc/netrt/netrt.json", file.trust).unwrap_err().to_string();
        assert!(bad.contains("trust.local \"limits\": must be one of raw, networks"), "{bad}");
    }
}
