//! The admin's bounds on what annotations may ask for (`policy` in the
//! configuration file), and the checks of a plan against them. A missing
//! list means no bound.

use serde::Deserialize;

use crate::config::pools::Pools;
use crate::error::{Error, KeyError, Result};
use crate::request::attachment::{Attachment, Cidr, Medium};
use crate::request::plan::Plan;
use crate::request::units;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    pub bridges: Option<Vec<String>>,
    pub parents: Option<Vec<String>>,
    pub vlans: Option<Vec<String>>,
    pub subnets: Option<Vec<String>>,
    pub max_rate: Option<String>,
    pub max_guarantee: Option<String>,
}

/// The policy, parsed and checked.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Where it came from, for messages.
    pub path: String,
    pub bridges: Option<Vec<String>>,
    pub parents: Option<Vec<String>>,
    pub vlans: Option<Vec<(u16, u16)>>,
    pub subnets: Option<Vec<Cidr>>,
    pub max_rate_bps: Option<u64>,
    pub max_guarantee_bps: Option<u64>,
}

impl Policy {
    pub fn from_file(path: String, file: PolicyFile) -> Result<Policy> {
        let bad = |field: &str, value: &str, reason: String| {
            Error::Input(format!("{path}: policy.{field} {value:?}: {reason}"))
        };
        let vlans = file
            .vlans
            .map(|ranges| {
                ranges.iter().map(|r| vlan_range(r).map_err(|e| bad("vlans", r, e))).collect::<Result<Vec<_>>>()
            })
            .transpose()?;
        let subnets = file
            .subnets
            .map(|nets| {
                nets.iter()
                    .map(|n| match Cidr::parse(n) {
                        Ok(cidr) if cidr.is_network() => Ok(cidr),
                        Ok(_) => Err(bad("subnets", n, "has host bits set; a subnet is a network".into())),
                        Err(e) => Err(bad("subnets", n, e)),
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .transpose()?;
        let max_rate_bps =
            file.max_rate.map(|r| units::parse_rate(&r).map_err(|e| bad("max_rate", &r, e))).transpose()?;
        let max_guarantee_bps =
            file.max_guarantee.map(|r| units::parse_rate(&r).map_err(|e| bad("max_guarantee", &r, e))).transpose()?;
        let (bridges, parents) = (file.bridges, file.parents);
        Ok(Policy { path, bridges, parents, vlans, subnets, max_rate_bps, max_guarantee_bps })
    }

    /// Refuses a plan that asks for more than the policy allows.
    pub fn check(&self, plan: &Plan) -> Result<(), KeyError> {
        if let Some(max) = self.max_rate_bps {
            let above =
                || self.rule("max_rate", format!("above the host's maximum rate of {}", units::format_rate(max)));
            if let Some(shaper) = plan.shapers().find(|s| s.rate_bps > max) {
                return Err(KeyError::new(&shaper.rate_source, &shaper.rate_value, above()));
            }
            // A guarantee is a rate too: no container is promised more.
            if let Some(floor) = plan.guarantees().find(|g| g.rate_bps > max) {
                return Err(KeyError::new(&floor.source, &floor.value, above()));
            }
        }
        if let Some(max) = self.max_guarantee_bps {
            if let Some(floor) = plan.guarantees().find(|g| g.rate_bps > max) {
                let reason = format!("above the host's maximum guarantee of {}", units::format_rate(max));
                return Err(KeyError::new(&floor.source, &floor.value, self.rule("max_guarantee", reason)));
            }
        }
        let Some(attachment) = &plan.attachment else { return Ok(()) };
        let (field, name, allowed) = match &attachment.medium {
            Medium::Bridge { bridge } => ("bridges", bridge, &self.bridges),
            Medium::Macvlan { parent, .. } => ("parents", parent, &self.parents),
        };
        if let Some(allowed) = allowed {
            if !allowed.contains(name) {
                return Err(attachment.refuse(attachment.lead_key(), self.rule(field, list_of(allowed))));
            }
        }
        if let (Some(vlan), Some(ranges)) = (attachment.vlan, &self.vlans) {
            if !ranges.iter().any(|(low, high)| (*low..=*high).contains(&vlan)) {
                let shown: Vec<String> =
                    ranges.iter().map(|(l, h)| if l == h { l.to_string() } else { format!("{l}-{h}") }).collect();
                return Err(attachment.refuse("net.vlan", self.rule("vlans", list_of(&shown))));
            }
        }
        if let Some(subnets) = &self.subnets {
            if let Some(outside) = attachment.addresses.iter().find(|a| !subnets.iter().any(|s| s.covers(a))) {
                let shown: Vec<String> = subnets.iter().map(Cidr::to_string).collect();
                return Err(attachment.refuse("net.ip", format!("{outside} {}", self.rule("subnets", list_of(&shown)))));
            }
        }
        Ok(())
    }

    /// As `check`, and a pool's subnets must lie inside `policy.subnets`
    /// too: every address it may give is then allowed. A container on a
    /// network (`net.pool`) keeps within the pool's own bounds as well.
    pub fn check_with(&self, plan: &Plan, pools: &Pools) -> Result<(), KeyError> {
        self.check(plan)?;
        if let Some(pool) = plan.attachment.as_ref().and_then(|a| a.pool.as_ref()).and_then(|name| pools.get(name)) {
            pool.bounds.check(plan, &pool.name, &pools.path)?;
        }
        let (Some(subnets), Some(attachment)) = (&self.subnets, &plan.attachment) else { return Ok(()) };
        let Some(pool) = attachment.pool.as_ref().and_then(|name| pools.get(name)) else { return Ok(()) };
        if let Some(outside) = pool.subnets.iter().find(|p| !subnets.iter().any(|s| s.covers(p))) {
            let shown: Vec<String> = subnets.iter().map(Cidr::to_string).collect();
            return Err(attachment.refuse(
                "net.pool",
                format!("pool {}'s subnet {outside} {}", pool.name, self.rule("subnets", list_of(&shown))),
            ));
        }
        Ok(())
    }

    /// An address a DHCP server offered must lie in `policy.subnets`, as
    /// a static one must.
    pub fn check_leased(&self, attachment: &Attachment, leased: &Cidr) -> Result<(), KeyError> {
        let Some(subnets) = &self.subnets else { return Ok(()) };
        if subnets.iter().any(|s| s.covers(leased)) {
            return Ok(());
        }
        let shown: Vec<String> = subnets.iter().map(Cidr::to_string).collect();
        Err(attachment
            .refuse("net.ip", format!("the DHCP server offered {leased}, {}", self.rule("subnets", list_of(&shown)))))
    }

    fn rule(&self, field: &str, allowed: String) -> String {
        format!("not allowed by the host's policy (policy.{field} in {}: {allowed})", self.path)
    }
}

fn list_of(items: &[String]) -> String {
    if items.is_empty() {
        "nothing is allowed".into()
    } else {
        format!("allowed are {}", items.join(", "))
    }
}

fn vlan_range(text: &str) -> Result<(u16, u16), String> {
    let id = |t: &str| match t.trim().parse::<u16>() {
        Ok(v) if (1..=4094).contains(&v) => Ok(v),
        _ => Err(format!("{t:?} is not a VLAN id from 1 to 4094")),
    };
    let (low, high) = match text.split_once('-') {
        Some((low, high)) => (id(low)?, id(high)?),
        None => (id(text)?, id(text)?),
    };
    if low > high {
        return Err("the range runs backwards".into());
    }
    Ok((low, high))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigFile;
    use crate::request::settings::from_words;

    fn policy(json: &str) -> Result<Policy> {
        let file: ConfigFile = serde_json::from_str(json).map_err(|e| Error::Input(e.to_string()))?;
        Policy::from_file("/etc/netrt/netrt.json".into(), file.policy)
    }

    fn plan(words: &[&str]) -> Plan {
        let words: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        crate::request::plan::build(&from_words(&words).unwrap()).unwrap()
    }

    const SPEC_EXAMPLE: &str = r#"{
        "runtime": "/usr/sbin/runc",
        "policy": {
            "bridges": ["br0"], "parents": ["eth1"], "vlans": ["100-199", "300"],
            "subnets": ["198.51.100.0/24", "2001:db8::/64"], "max_rate": "10gbit"
        }
    }"#;

    #[test]
    fn the_example_allows_what_it_lists() {
        let p = policy(SPEC_EXAMPLE).unwrap();
        assert_eq!(p.vlans, Some(vec![(100, 199), (300, 300)]));
        for words in [
            &["net.bridge=br0", "net.ip=198.51.100.10/24,2001:db8::10/64", "net.egress=10gbit"][..],
            &["net.parent=eth1", "net.vlan=150"],
            &["net.parent=eth1", "net.vlan=300"],
            &["net.egress=1mbit"],
        ] {
            assert_eq!(p.check(&plan(words)), Ok(()), "{words:?}");
        }
    }

    #[test]
    fn requests_outside_are_refused_naming_the_rule() {
        let p = policy(SPEC_EXAMPLE).unwrap();
        let refusal = |words: &[&str]| p.check(&plan(words)).unwrap_err().to_string();
        assert_eq!(
            refusal(&["net.bridge=br1"]),
            "netrt: net.bridge=\"br1\": not allowed by the host's policy (policy.bridges in /etc/netrt/netrt.json: allowed are br0)"
        );
        assert!(refusal(&["net.parent=eth0"])
            .contains("net.parent=\"eth0\": not allowed by the host's policy (policy.parents"));
        assert!(refusal(&["net.parent=eth1", "net.vlan=200"]).contains("net.vlan=\"200\": not allowed by the host's policy (policy.vlans in /etc/netrt/netrt.json: allowed are 100-199, 300)"));
        assert!(refusal(&["net.bridge=br0", "net.ip=203.0.113.5/24"])
            .contains("net.ip=\"203.0.113.5/24\": 203.0.113.5/24 not allowed by the host's policy (policy.subnets"));
        assert!(
            refusal(&["net.bridge=br0", "net.ip=198.51.100.5/16"]).contains("policy.subnets"),
            "a wider prefix leaves the subnet"
        );
        assert!(
            refusal(&["net.bridge=br0", "net.ip=198.51.100.5/24", "net.egress.min=20gbit"])
                .contains("net.egress.min=\"20gbit\": not allowed by the host's policy (policy.max_rate"),
            "max_rate bounds guarantees too"
        );
        assert!(refusal(&["net.ingress=20gbit"]).contains("net.ingress=\"20gbit\": not allowed by the host's policy (policy.max_rate in /etc/netrt/netrt.json: above the host's maximum rate of 10gbit)"));
    }

    #[test]
    fn an_empty_list_allows_nothing_and_a_missing_one_everything() {
        let p = policy(r#"{"policy": {"bridges": []}}"#).unwrap();
        assert!(p.check(&plan(&["net.bridge=br0"])).unwrap_err().to_string().contains("nothing is allowed"));
        assert_eq!(p.check(&plan(&["net.parent=eth9", "net.vlan=7"])), Ok(()));
        assert_eq!(policy("{}").unwrap().check(&plan(&["net.bridge=x", "net.egress=100gbit"])), Ok(()));
    }

    #[test]
    fn a_pool_outside_the_policy_subnets_is_refused() {
        let json = r#"{"policy": {"subnets": ["198.51.100.0/24"]},
            "pools": {"lan": {"bridge": "br0", "subnets": ["198.51.100.0/24"]},
                      "wide": {"bridge": "br0", "subnets": ["203.0.113.0/24"]}}}"#;
        let file: ConfigFile = serde_json::from_str(json).unwrap();
        let pools = Pools::from_file("/etc/netrt/netrt.json", file.node, file.registry, file.pools).unwrap();
        let p = Policy::from_file("/etc/netrt/netrt.json".into(), file.policy).unwrap();
        let plan = |pool: &str| {
            let words = vec![format!("net.pool={pool}")];
            crate::request::plan::build_with(&from_words(&words).unwrap(), &pools).unwrap()
        };
        assert_eq!(p.check_with(&plan("lan"), &pools), Ok(()));
        let refusal = p.check_with(&plan("wide"), &pools).unwrap_err().to_string();
        assert_eq!(
            refusal,
            "netrt: net.pool=\"wide\": pool wide's subnet 203.0.113.0/24 not allowed by the host's policy \
            (policy.subnets in /etc/netrt/netrt.json: allowed are 198.51.100.0/24)"
        );
    }

    #[test]
    fn guarantees_keep_within_max_guarantee_and_a_network_within_its_bounds() {
        let json = r#"{"policy": {"max_guarantee": "200mbit"},
            "pools": {"lan": {"bridge": "br0", "subnets": ["198.51.100.0/24"],
                              "max_rate": "500mbit", "max_guarantee": "100mbit"}}}"#;
        let file: ConfigFile = serde_json::from_str(json).unwrap();
        let pools = Pools::from_file("/etc/netrt/netrt.json", file.node, file.registry, file.pools).unwrap();
        let p = Policy::from_file("/etc/netrt/netrt.json".into(), file.policy).unwrap();
        let check = |words: &[&str]| {
            let words: Vec<String> = words.iter().map(|w| w.to_string()).collect();
            let plan = crate::request::plan::build_with(&from_words(&words).unwrap(), &pools).unwrap();
            p.check_with(&plan, &pools).err().map(|e| e.to_string())
        };
        let host = check(&["net.bridge=br0", "net.ip=192.0.2.5/24", "net.egress.min=300mbit"]).unwrap();
        assert!(host.contains("net.egress.min=\"300mbit\": not allowed by the host's policy (policy.max_guarantee in /etc/netrt/netrt.json: above the host's maximum guarantee of 200mbit)"), "{host}");
        assert_eq!(check(&["net.bridge=br0", "net.ip=192.0.2.5/24", "net.egress.min=150mbit"]), None);
        let network = check(&["net.pool=lan", "net.ingress.min=150mbit"]).unwrap();
        assert!(network.contains("net.ingress.min=\"150mbit\": above network lan's max_guarantee of 100mbit (max_guarantee of pool lan in /etc/netrt/netrt.json)"), "{network}");
        let limit = check(&["net.pool=lan", "net.egress=600mbit"]).unwrap();
        assert!(limit.contains("net.egress=\"600mbit\": above network lan's max_rate of 500mbit"), "{limit}");
        assert_eq!(check(&["net.pool=lan", "net.egress=400mbit", "net.egress.min=50mbit"]), None);
    }

    #[test]
    fn a_malformed_policy_is_an_error() {
        for (json, needle) in [
            (r#"{"policy": {"bridge": ["br0"]}}"#, "unknown field `bridge`"),
            (r#"{"polcy": {}}"#, "unknown field `polcy`"),
            (r#"{"policy": {"vlans": ["5000"]}}"#, "policy.vlans \"5000\""),
            (r#"{"policy": {"vlans": ["20-10"]}}"#, "backwards"),
            (r#"{"policy": {"subnets": ["198.51.100.1/24"]}}"#, "host bits"),
            (r#"{"policy": {"subnets": ["nowhere"]}}"#, "policy.subnets"),
            (r#"{"policy": {"max_rate": "10mbps"}}"#, "policy.max_rate \"10mbps\""),
            (r#"{"policy": {"bridges": "br0"}}"#, "invalid type"),
            ("[", "EOF"),
        ] {
            let message = policy(json).unwrap_err().to_string();
            assert!(message.contains(needle), "{json}: {message}");
        }
    }
}
