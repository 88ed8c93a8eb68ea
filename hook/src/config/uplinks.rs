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
    pub reserve: Option<String>,
    pub overcommit: Option<f64>,
}

/// What an uplink keeps outside every guarantee when `reserve` is not
/// given, for the host's own traffic: this share of its capacity.
pub const DEFAULT_RESERVE_PERCENT: u64 = 5;

/// A declared uplink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uplink {
    pub name: String,
    pub capacity_bps: u64,
    /// Kept outside every guarantee, for the host's own traffic.
    pub reserve_bps: u64,
    pub overcommit_permille: u64,
}

impl Uplink {
    /// What the guarantees in one direction may add up to: the capacity
    /// less the reserve, times the overcommit.
    pub fn admissible_bps(&self) -> u64 {
        let promisable = self.capacity_bps - self.reserve_bps;
        (promisable as u128 * self.overcommit_permille as u128 / PERMILLE as u128) as u64
    }

    pub fn describe(&self) -> String {
        format!(
            "uplink {} (capacity {}, reserve {}{})",
            self.name,
            units::format_rate(self.capacity_bps),
            units::format_rate(self.reserve_bps),
            self.overcommit_text()
        )
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
            let reserve_bps = match &declared.reserve {
                None => capacity_bps * DEFAULT_RESERVE_PERCENT / 100,
                Some(text) if text.trim() == "0" => 0,
                Some(text) => units::parse_rate(text).map_err(|e| bad("reserve", text, &e))?,
            };
            if reserve_bps >= capacity_bps {
                return Err(bad(
                    "reserve",
                    declared.reserve.as_deref().unwrap_or_default(),
                    &format!("must be less than the capacity ({})", declared.capacity),
                ));
            }
            by_name.insert(name.clone(), Uplink { name, capacity_bps, reserve_bps, overcommit_permille });
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
    fn capacity_reserve_and_overcommit_become_what_may_be_promised() {
        let uplinks = parse(
            r#"{"eth0": {"capacity": "1gbit"}, "eth1": {"capacity": "100mbit", "overcommit": 1.5},
                "eth2": {"capacity": "950mbit", "reserve": "50mbit"}, "eth3": {"capacity": "1gbit", "reserve": "0"}}"#,
        )
        .unwrap();
        assert_eq!(uplinks.get("eth0").unwrap().reserve_bps, 50_000_000, "5 % by default");
        assert_eq!(uplinks.get("eth0").unwrap().admissible_bps(), 950_000_000);
        assert_eq!(uplinks.get("eth1").unwrap().admissible_bps(), 142_500_000, "(100 − 5) × 1.5");
        assert_eq!(
            uplinks.get("eth1").unwrap().describe(),
            "uplink eth1 (capacity 100mbit, reserve 5mbit, overcommit 1.5)"
        );
        assert_eq!(uplinks.get("eth2").unwrap().admissible_bps(), 900_000_000);
        assert_eq!(uplinks.get("eth3").unwrap().admissible_bps(), 1_000_000_000, "an admin may keep none");
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
            (
                r#"{"eth0": {"capacity": "100mbit", "reserve": "100mbit"}}"#,
                "uplinks.eth0.reserve \"100mbit\": must be less than the capacity (100mbit)",
            ),
            (r#"{"eth0": {"capacity": "100mbit", "reserve": "lots"}}"#, "uplinks.eth0.reserve \"lots\""),
        ] {
            let error = parse(json).unwrap_err().to_string();
            assert!(error.contains(said), "{json}: {error}");
        }
        let unknown: std::result::Result<BTreeMap<String, UplinkFile>, _> =
            serde_json::from_str(r#"{"eth0": {"capacity": "1gbit", "floor": 1}}"#);
        assert!(unknown.is_err(), "an unknown field is an error, not ignored");
    }
}
