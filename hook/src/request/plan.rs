//! The validated plan: what a container asked for, as pure data. Every
//! setting is parsed and checked here, before anything on the host changes.

use serde::{Deserialize, Serialize};

use crate::error::KeyError;
use crate::request::attachment::{self, Attachment, Cidr};
use crate::request::settings::{Setting, Settings};
use crate::request::units;

pub const DEFAULT_LATENCY_US: u64 = 25_000;
/// The queue always holds at least this many full frames beyond the burst:
/// with less, a TCP sender at a low rate cannot get three duplicate acks
/// before a loss turns into a retransmission timeout, and loses 15-20 %.
pub const MIN_QUEUED_FRAMES: u64 = 4;
/// Default token-bucket size, in time at the configured rate. Everything the
/// bucket holds passes at once when a flow starts, so it bounds the overshoot
/// of the first second: 20 ms is 2 %.
pub const DEFAULT_BURST_US: u64 = 20_000;

pub const BANDWIDTH_KEYS: [&str; 8] = [
    "net.egress",
    "net.ingress",
    "net.egress.burst",
    "net.ingress.burst",
    "net.egress.latency",
    "net.ingress.latency",
    "net.egress.min",
    "net.ingress.min",
];
pub const ATTACHMENT_KEYS: [&str; 12] = [
    "net.bridge",
    "net.parent",
    "net.vlan",
    "net.macvlan.mode",
    "net.ifname",
    "net.ip",
    "net.gateway",
    "net.routes",
    "net.mac",
    "net.mtu",
    "net.pool",
    "net.dhcp.timeout",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Traffic the container sends.
    Egress,
    /// Traffic the container receives.
    Ingress,
}

impl Direction {
    pub fn key(self) -> &'static str {
        match self {
            Direction::Egress => "net.egress",
            Direction::Ingress => "net.ingress",
        }
    }

    pub fn name(self) -> &'static str {
        &self.key()[4..]
    }
}

/// A token-bucket limit for one direction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shaper {
    pub direction: Direction,
    pub rate_bps: u64,
    /// None: derived from the rate and the frame size by `tbf`.
    pub burst_bytes: Option<u64>,
    pub latency_us: u64,
    /// The rate as the user gave it, for messages about this limit.
    pub rate_source: String,
    pub rate_value: String,
}

/// Token-bucket parameters in the kernel's units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tbf {
    pub rate_bytes_per_s: u64,
    pub burst_bytes: u32,
    pub limit_bytes: u32,
}

/// A floor on the uplink: `net.egress.min` or `net.ingress.min`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Guarantee {
    pub direction: Direction,
    pub rate_bps: u64,
    pub source: String,
    pub value: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub egress: Option<Shaper>,
    pub ingress: Option<Shaper>,
    #[serde(default)]
    pub attachment: Option<Attachment>,
    #[serde(default)]
    pub egress_min: Option<Guarantee>,
    #[serde(default)]
    pub ingress_min: Option<Guarantee>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.egress.is_none() && self.ingress.is_none() && self.attachment.is_none()
    }

    pub fn shapers(&self) -> impl Iterator<Item = &Shaper> {
        self.egress.iter().chain(self.ingress.iter())
    }

    pub fn guarantees(&self) -> impl Iterator<Item = &Guarantee> {
        self.egress_min.iter().chain(self.ingress_min.iter())
    }

    /// The container's own limit in `direction`, if it has one.
    pub fn limit_bps(&self, direction: Direction) -> Option<u64> {
        self.shapers().find(|s| s.direction == direction).map(|s| s.rate_bps)
    }

    /// The setting a failure that concerns the whole plan is reported against.
    pub fn lead_setting(&self) -> Option<(&str, &str)> {
        if let Some(attachment) = &self.attachment {
            let lead = &attachment.given[attachment.lead_key()];
            return Some((lead.source.as_str(), lead.value.as_str()));
        }
        self.shapers().next().map(|s| (s.rate_source.as_str(), s.rate_value.as_str()))
    }
}

/// Where `net.pool` is resolved: the pools of the configuration file.
pub trait PoolResolver {
    /// The settings with `net.pool` resolved into the pool's attachment
    /// settings, and the networks its addresses will come from.
    fn expand(&self, settings: &Settings) -> Result<(Settings, Vec<Cidr>), KeyError>;
}

/// No pools: a `net.pool` is refused.
struct NoPools;

impl PoolResolver for NoPools {
    fn expand(&self, settings: &Settings) -> Result<(Settings, Vec<Cidr>), KeyError> {
        match settings.get("net.pool") {
            Some(pool) => Err(refuse(pool, "pools come from the configuration file, and none was read here")),
            None => Ok((settings.clone(), vec![])),
        }
    }
}

/// Validates every setting; the first refusal, in key order, is returned.
/// `net.pool` needs the pools of the configuration: see `build_with`.
pub fn build(settings: &Settings) -> Result<Plan, KeyError> {
    build_with(settings, &NoPools)
}

/// Validates every setting, `net.pool` resolved against `pools`. The
/// pool's addresses are allocated later, under the host lock.
pub fn build_with(settings: &Settings, pools: &dyn PoolResolver) -> Result<Plan, KeyError> {
    for (key, setting) in settings {
        check_known(key, setting)?;
    }
    let (expanded, pool_networks) = pools.expand(settings)?;
    let plan = Plan {
        egress: shaper(settings, Direction::Egress)?,
        ingress: shaper(settings, Direction::Ingress)?,
        attachment: attachment::build_with(&expanded, &pool_networks)?,
        egress_min: guarantee(settings, Direction::Egress)?,
        ingress_min: guarantee(settings, Direction::Ingress)?,
    };
    for floor in plan.guarantees() {
        let setting = Setting { source: floor.source.clone(), value: floor.value.clone() };
        if plan.attachment.is_none() {
            return Err(refuse(
                &setting,
                "needs net.bridge or net.parent: a guarantee holds on the uplink of the container's LAN attachment",
            ));
        }
        if let Some(limit) = plan.shapers().find(|s| s.direction == floor.direction && s.rate_bps < floor.rate_bps) {
            return Err(refuse(
                &setting,
                format!("above {}={}, the container's own limit", limit.rate_source, limit.rate_value),
            ));
        }
    }
    Ok(plan)
}

fn guarantee(settings: &Settings, direction: Direction) -> Result<Option<Guarantee>, KeyError> {
    let Some(setting) = settings.get(&format!("{}.min", direction.key())) else { return Ok(None) };
    let rate_bps = units::parse_rate(&setting.value).map_err(|reason| refuse(setting, reason))?;
    Ok(Some(Guarantee { direction, rate_bps, source: setting.source.clone(), value: setting.value.clone() }))
}

/// Whether netrt knows `key` (`net.egress`, `net.bridge`, …).
pub fn is_known_key(key: &str) -> bool {
    BANDWIDTH_KEYS.contains(&key) || ATTACHMENT_KEYS.contains(&key)
}

fn check_known(key: &str, setting: &Setting) -> Result<(), KeyError> {
    if is_known_key(key) {
        return Ok(());
    }
    let reason = match closest_key(key) {
        Some(known) => format!("unknown key; did you mean {known}?"),
        None => format!("unknown key; netrt knows {}, {}", BANDWIDTH_KEYS.join(", "), ATTACHMENT_KEYS.join(", ")),
    };
    Err(refuse(setting, reason))
}

fn closest_key(key: &str) -> Option<&'static str> {
    BANDWIDTH_KEYS
        .iter()
        .chain(ATTACHMENT_KEYS.iter())
        .map(|known| (edit_distance(key, known), *known))
        .filter(|(distance, _)| *distance <= 2)
        .min()
        .map(|(_, known)| known)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1).min(row[j] + 1).min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

fn refuse(setting: &Setting, reason: impl Into<String>) -> KeyError {
    KeyError::new(&setting.source, &setting.value, reason)
}

fn shaper(settings: &Settings, direction: Direction) -> Result<Option<Shaper>, KeyError> {
    let key = direction.key();
    let burst = settings.get(&format!("{key}.burst"));
    let latency = settings.get(&format!("{key}.latency"));
    let Some(rate) = settings.get(key) else {
        if let Some(companion) = burst.or(latency) {
            return Err(refuse(companion, format!("needs {key} (the rate it applies to)")));
        }
        return Ok(None);
    };
    let rate_bps = units::parse_rate(&rate.value).map_err(|reason| refuse(rate, reason))?;
    let burst_bytes = burst.map(|b| units::parse_size(&b.value).map_err(|reason| refuse(b, reason))).transpose()?;
    let latency_us = match latency {
        None => DEFAULT_LATENCY_US,
        Some(l) => {
            let us = units::parse_duration_us(&l.value).map_err(|reason| refuse(l, reason))?;
            if !(100..=10_000_000).contains(&us) {
                return Err(refuse(l, "latency must be between 100us and 10s"));
            }
            us
        }
    };
    let shaper = Shaper {
        direction,
        rate_bps,
        burst_bytes,
        latency_us,
        rate_source: rate.source.clone(),
        rate_value: rate.value.clone(),
    };
    // The frame size is known only on the interface (apply checks it again,
    // still before any change); a queue that cannot fit fails here already.
    shaper.tbf(1)?;
    Ok(Some(shaper))
}

impl Shaper {
    /// Token-bucket parameters for an interface whose largest frame (MTU plus
    /// link header) is `frame_bytes`.
    pub fn tbf(&self, frame_bytes: u32) -> Result<Tbf, KeyError> {
        let rate_bytes_per_s = self.rate_bps / 8;
        let burst = match self.burst_bytes {
            Some(burst) if burst < frame_bytes as u64 => {
                return Err(self.refuse_burst(
                    burst,
                    format!(
                    "burst of {burst} bytes is smaller than one frame on the shaped interface ({frame_bytes} bytes); \
                     the kernel would drop every full-sized packet"
                ),
                ));
            }
            Some(burst) => burst,
            None => (rate_bytes_per_s * DEFAULT_BURST_US / 1_000_000).max(frame_bytes as u64),
        };
        let queued = (rate_bytes_per_s as u128 * self.latency_us as u128 / 1_000_000) as u64;
        let limit = queued.max(MIN_QUEUED_FRAMES * frame_bytes as u64) + burst;
        if limit > u32::MAX as u64 {
            return Err(KeyError::new(
                &self.rate_source,
                &self.rate_value,
                format!(
                "the queue for {} of latency at this rate plus the burst exceeds 4 GiB; lower {}.latency or {}.burst",
                units::format_duration_us(self.latency_us), self.direction.key(), self.direction.key()
            ),
            ));
        }
        Ok(Tbf { rate_bytes_per_s, burst_bytes: burst as u32, limit_bytes: limit as u32 })
    }

    fn refuse_burst(&self, burst: u64, reason: String) -> KeyError {
        KeyError::new(&format!("{}.burst", self.direction.key()), &burst.to_string(), reason)
    }

    pub fn describe(&self) -> String {
        let burst = match self.burst_bytes {
            Some(b) => format!("{b} bytes"),
            None => format!("default ({}ms at the rate, at least one frame)", DEFAULT_BURST_US / 1000),
        };
        format!(
            "{}: rate {} ({} bit/s), burst {}, latency {}",
            self.direction.name(),
            units::format_rate(self.rate_bps),
            self.rate_bps,
            burst,
            units::format_duration_us(self.latency_us)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::settings::from_words;

    fn plan(words: &[&str]) -> Result<Plan, KeyError> {
        let words: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        build(&from_words(&words).unwrap())
    }

    fn message(words: &[&str]) -> String {
        plan(words).unwrap_err().to_string()
    }

    #[test]
    fn empty_settings_make_an_empty_plan() {
        assert!(plan(&[]).unwrap().is_empty());
    }

    #[test]
    fn both_directions_with_defaults() {
        let p = plan(&["net.egress=10mbit", "net.ingress=1M"]).unwrap();
        let egress = p.egress.unwrap();
        assert_eq!((egress.rate_bps, egress.burst_bytes, egress.latency_us), (10_000_000, None, 25_000));
        assert_eq!(p.ingress.unwrap().rate_bps, 1_000_000);
    }

    #[test]
    fn companions_are_parsed() {
        let p = plan(&["net.ingress=100mbit", "net.ingress.burst=64k", "net.ingress.latency=5ms"]).unwrap();
        let ingress = p.ingress.unwrap();
        assert_eq!((ingress.burst_bytes, ingress.latency_us), (Some(65_536), 5_000));
        assert!(p.egress.is_none());
    }

    #[test]
    fn refusals_name_key_value_and_reason() {
        assert_eq!(
            message(&["net.egress=10mbps"]),
            "netrt: net.egress=\"10mbps\": mbps is bytes per second in tc(8), eight times more than 10mbit; \
             write 10mbit for bits per second or 80mbit for 10 mbps"
        );
        assert_eq!(message(&["net.ingress=fast"]).split(": ").nth(1), Some("net.ingress=\"fast\""));
        assert!(message(&["net.egress=1mbit", "net.egress.burst=1x"])
            .starts_with("netrt: net.egress.burst=\"1x\": unknown size unit"));
        assert!(message(&["net.egress=1mbit", "net.egress.latency=25"])
            .starts_with("netrt: net.egress.latency=\"25\": a duration needs a unit"));
        assert!(message(&["net.egress=1mbit", "net.egress.latency=20s"]).contains("between 100us and 10s"));
        assert!(message(&["net.egress=1mbit", "net.egress.latency=50us"]).contains("between 100us and 10s"));
        assert!(message(&["net.egress="]).ends_with("net.egress=\"\": empty value"));
    }

    #[test]
    fn env_refusals_name_the_variable() {
        assert_eq!(message(&["NETRT_EGRESS=10 mbit"]).split(": ").nth(1), Some("NETRT_EGRESS=\"10 mbit\""));
    }

    #[test]
    fn companions_need_their_rate() {
        assert_eq!(
            message(&["net.egress.burst=32k"]),
            "netrt: net.egress.burst=\"32k\": needs net.egress (the rate it applies to)"
        );
        assert!(message(&["net.ingress.latency=5ms", "net.egress=1mbit"]).contains("needs net.ingress"));
    }

    #[test]
    fn unknown_keys_are_refused_with_a_suggestion() {
        assert_eq!(message(&["net.egres=1mbit"]), "netrt: net.egres=\"1mbit\": unknown key; did you mean net.egress?");
        assert!(message(&["net.qos=high"]).contains("unknown key; netrt knows net.egress, net.ingress"));
        assert!(message(&["NETRT_INGRES=1mbit"])
            .starts_with("netrt: NETRT_INGRES=\"1mbit\": unknown key; did you mean net.ingress?"));
    }

    #[test]
    fn attachment_keys_are_known() {
        let p = plan(&["net.bridge=br0", "net.ip=198.51.100.10/24", "net.egress=1mbit"]).unwrap();
        assert!(p.attachment.is_some());
        assert_eq!(p.lead_setting(), Some(("net.bridge", "br0")));
        assert_eq!(message(&["net.brige=br0"]), "netrt: net.brige=\"br0\": unknown key; did you mean net.bridge?");
    }

    #[test]
    fn default_burst_is_20ms_of_rate_but_at_least_a_frame() {
        let p = plan(&["net.egress=10mbit"]).unwrap();
        let tbf = p.egress.unwrap().tbf(1514).unwrap();
        assert_eq!(tbf, Tbf { rate_bytes_per_s: 1_250_000, burst_bytes: 25_000, limit_bytes: 31_250 + 25_000 });
        let slow = plan(&["net.egress=100kbit"]).unwrap().egress.unwrap().tbf(1514).unwrap();
        assert_eq!(slow.burst_bytes, 1514);
        assert_eq!(slow.limit_bytes, 1514 + 4 * 1514, "at low rates the queue holds four frames beyond the burst");
        let jumbo = plan(&["net.egress=1mbit"]).unwrap().egress.unwrap().tbf(9014).unwrap();
        assert_eq!(jumbo.burst_bytes, 9014);
    }

    #[test]
    fn explicit_burst_below_a_frame_is_refused() {
        let shaper = plan(&["net.ingress=1mbit", "net.ingress.burst=1000"]).unwrap().ingress.unwrap();
        let e = shaper.tbf(1514).unwrap_err().to_string();
        assert!(
            e.starts_with("netrt: net.ingress.burst=\"1000\": burst of 1000 bytes is smaller than one frame"),
            "{e}"
        );
        assert_eq!(shaper.tbf(1000).unwrap().burst_bytes, 1000);
    }

    #[test]
    fn queue_limit_must_fit_the_kernel() {
        let e = message(&["net.egress=100gbit", "net.egress.latency=1s"]);
        assert!(e.starts_with("netrt: net.egress=\"100gbit\": the queue for 1s of latency"), "{e}");
        assert!(plan(&["net.egress=100gbit"]).is_ok());
    }

    #[test]
    fn describe_reads_like_the_plan() {
        let shaper = plan(&["net.egress=1.5mbit", "net.egress.burst=4k"]).unwrap().egress.unwrap();
        assert_eq!(shaper.describe(), "egress: rate 1.5mbit (1500000 bit/s), burst 4096 bytes, latency 25ms");
    }
}

#[cfg(test)]
mod guarantee_tests {
    use super::*;
    use crate::request::settings::from_words;

    fn plan(words: &[&str]) -> Result<Plan, KeyError> {
        let words: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        build(&from_words(&words).unwrap())
    }

    #[test]
    fn guarantees_are_read_beside_limits() {
        let p = plan(&[
            "net.bridge=br0",
            "net.ip=198.51.100.10/24",
            "net.egress.min=60mbit",
            "net.egress=80mbit",
            "net.ingress.min=1gbit",
        ])
        .unwrap();
        assert_eq!(p.egress_min.as_ref().map(|g| g.rate_bps), Some(60_000_000));
        assert_eq!(p.ingress_min.as_ref().map(|g| g.rate_bps), Some(1_000_000_000));
        assert_eq!(p.limit_bps(Direction::Egress), Some(80_000_000));
        assert_eq!(p.guarantees().count(), 2);
    }

    #[test]
    fn guarantees_without_an_attachment_or_above_the_limit_are_refused() {
        for (words, said) in [
            (&["net.egress.min=10mbit"][..], "net.egress.min=\"10mbit\": needs net.bridge or net.parent"),
            (
                &["net.bridge=br0", "net.ingress.min=60mbit", "net.ingress=50mbit"][..],
                "net.ingress.min=\"60mbit\": above net.ingress=50mbit",
            ),
            (&["net.bridge=br0", "net.egress.min=fast"][..], "net.egress.min=\"fast\""),
            (&["net.bridge=br0", "net.egress.mni=1mbit"][..], "did you mean net.egress.min?"),
        ] {
            let error = plan(words).unwrap_err().to_string();
            assert!(error.contains(said), "{words:?}: {error}");
        }
    }
}
