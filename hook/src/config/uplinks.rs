//! `uplinks` in the configuration file: the host interfaces an admin
//! declares, with the capacity netrt may promise on each.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::request::units;

/// Overcommit is kept in thousandths, so that the policy stays `Eq`.
pub const PERMILLE: u64 = 1000;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UplinkFile {
    pub capacity: String,
    pub overcommit: Option<f64>,
}

/// A declared uplink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uplink {
    pub name: String,
    pub capacity_bps: u64,
    pub overcommit_permille: u64,
}

impl Uplink {
    /// What the guarantees in one direction may add up to.
    pub fn admissible_bps(&self) -> u64 {
        (self.capacity_bps as u128 * self.overcommit_permille as u128 / PERMILLE as u128) as u64
    }

    pub fn describe(&self) -> String {
        format!("uplink {} (capacity {}{})", self.name, units::format_rate(self.capacity_bps), self.overcommit_text())
    }

    fn overcommit_text(&self) -> String {
        match self.overcommit_permille {
            PERMILLE => String::new(),
            permille => format!(", overcommit {}", permille as f64 / PERMILLE as f64),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Uplinks {
    pub by_name: BTreeMap<String, Uplink>,
}

impl Uplinks {
    pub fn from_file(path: &str, file: BTreeMap<String, UplinkFile>) -> Result<Uplinks> {
        let mut by_name = BTreeMap::new();
        for (name, declared) in file {
            let bad = |field: &str, value: &str, reason: &str| {
                Error::Input(format!("{path}: uplinks.{name}.{field} {value:?}: {reason}"))
            };
            if name.is_empty() || name.len() > 15 || name.contains(['/', ' ']) {
                return Err(Error::Input(format!(
                    "{path}: uplinks {name:?}: not an interface name (1 to 15 bytes, no '/' or space)"
                )));
            }
            let capacity_bps =
                units::parse_rate(&declared.capacity).map_err(|e| bad("capacity", &declared.capacity, &e))?;
            let overcommit = declared.overcommit.unwrap_or(1.0);
            if !(0.1..=10.0).contains(&overcommit) {
                return Err(bad(
                    "overcommit",
                    &overcommit.to_string(),
                    "must be from 0.1 to 10 (1.0: promise no more than the capacity)",
                ));
            }
            let overcommit_permille = (overcommit * PERMILLE as f64).round() as u64;
            by_name.insert(name.clone(), Uplink { name, capacity_bps, overcommit_permille });
        }
        Ok(Uplinks { by_name })
    }

    pub fn get(&self, name: &str) -> Option<&Uplink> {
        self.by_name.get(name)
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Uplinks> {
        Uplinks::from_file("netrt.json", serde_json::from_str(json).unwrap())
    }

    #[test]
    fn capacity_and_overcommit_become_what_may_be_promised() {
        let uplinks =
            parse(r#"{"eth0": {"capacity": "1gbit"}, "eth1": {"capacity": "100mbit", "overcommit": 1.5}}"#).unwrap();
        assert_eq!(uplinks.get("eth0").unwrap().admissible_bps(), 1_000_000_000);
        assert_eq!(uplinks.get("eth1").unwrap().admissible_bps(), 150_000_000);
        assert_eq!(uplinks.get("eth1").unwrap().describe(), "uplink eth1 (capacity 100mbit, overcommit 1.5)");
    }

    #[test]
    fn bad_declarations_name_the_field_and_the_value() {
        for (json, said) in [
            (r#"{"eth0": {"capacity": "fast"}}"#, "uplinks.eth0.capacity \"fast\""),
            (
                r#"{"eth0": {"capacity": "1gbit", "overcommit": 0}}"#,
                "uplinks.eth0.overcommit \"0\": must be from 0.1 to 10",
            ),
            (r#"{"an-interface-name-too-long": {"capacity": "1gbit"}}"#, "not an interface name"),
        ] {
            let error = parse(json).unwrap_err().to_string();
            assert!(error.contains(said), "{json}: {error}");
        }
        let unknown: std::result::Result<BTreeMap<String, UplinkFile>, _> =
            serde_json::from_str(r#"{"eth0": {"capacity": "1gbit", "floor": 1}}"#);
        assert!(unknown.is_err(), "an unknown field is an error, not ignored");
    }
}
