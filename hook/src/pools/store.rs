//! Where claims live: one small trait, two implementations (host-wide
//! files, etcd), chosen once by the configuration's `registry`.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::config::pools::{Addressing, Span};

/// Who holds an address: a container of a node, or a reservation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    pub address: IpAddr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// A reservation's note (may be empty): no container may get it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserved: Option<String>,
    /// The MAC that answered for the address on the LAN: something outside
    /// netrt uses it, and no container may get it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wire: Option<String>,
    /// Whose claim it was before it was found in use on the wire, if anyone's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub was: Option<String>,
    /// Seconds since the epoch.
    pub since: u64,
}

impl Claim {
    pub fn for_container(address: IpAddr, node: &str, container: &str) -> Claim {
        Claim {
            address,
            node: Some(node.into()),
            container: Some(container.into()),
            reserved: None,
            wire: None,
            was: None,
            since: now(),
        }
    }

    pub fn reservation(address: IpAddr, note: &str) -> Claim {
        Claim { address, node: None, container: None, reserved: Some(note.into()), wire: None, was: None, since: now() }
    }

    /// The mark of an address found in use on the wire by `mac`; `was`
    /// names whose claim it replaces.
    pub fn on_wire(address: IpAddr, mac: &str, was: Option<String>) -> Claim {
        Claim { address, node: None, container: None, reserved: None, wire: Some(mac.into()), was, since: now() }
    }

    /// Whether both are claims of the same container.
    pub fn same_holder(&self, other: &Claim) -> bool {
        self.reserved.is_none()
            && other.reserved.is_none()
            && self.wire.is_none()
            && other.wire.is_none()
            && self.node == other.node
            && self.container == other.container
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a claim serialises")
    }

    /// Who holds it, as refusals and `pool show` say it.
    pub fn holder(&self) -> String {
        if let Some(mac) = &self.wire {
            return format!("in use on the wire by {mac}");
        }
        match (&self.reserved, &self.container, &self.node) {
            (Some(note), _, _) if note.is_empty() => "reserved".into(),
            (Some(note), _, _) => format!("reserved ({note})"),
            (None, Some(container), Some(node)) => format!("container {container} on node {node}"),
            _ => "an unknown holder".into(),
        }
    }
}

/// A claim as read back, with the exact bytes a compare-and-delete needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub pool: String,
    pub claim: Claim,
    pub raw: String,
}

pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The registry did not answer in time: the message names its endpoints.
    Unreachable(String),
    Failed(String),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Unreachable(m) | StoreError::Failed(m) => f.write_str(m),
        }
    }
}

pub type StoreResult<T> = std::result::Result<T, StoreError>;

/// The one interface both stores keep. Every change is atomic on its own
/// (an etcd transaction, or a file created with link(2)); none is a
/// read-modify-write.
#[allow(async_fn_in_trait)]
pub trait ClaimStore {
    /// Registers the pool's addressing if no node has; else returns the
    /// registered addressing and its node when they differ from ours.
    async fn register(
        &mut self,
        pool: &str,
        addressing: &Addressing,
        node: &str,
    ) -> StoreResult<Option<(Addressing, String)>>;
    /// The address allocation last gave in this pool and family.
    async fn last(&mut self, pool: &str, v6: bool) -> StoreResult<Option<u128>>;
    /// The first address of `span` that no claim holds and `excluded`
    /// does not rule out; reads claims a window at a time, not all.
    async fn first_unclaimed(
        &mut self,
        pool: &str,
        span: Span,
        excluded: &dyn Fn(u128) -> bool,
    ) -> StoreResult<Option<u128>>;
    /// Creates the claim unless the address is claimed; then returns the
    /// holder's claim. With `set_last`, the pool's cursor moves to it too.
    async fn create(&mut self, pool: &str, claim: &Claim, set_last: bool) -> StoreResult<Option<Held>>;
    /// Deletes the claim if it is still exactly `held` (and its index).
    async fn delete(&mut self, held: &Held) -> StoreResult<()>;
    /// The claims of a node's containers (of one container, if given).
    async fn held_by(&mut self, node: &str, container: Option<&str>) -> StoreResult<Vec<Held>>;
    /// The claims of a pool in `span` (all of one family if None), in order.
    async fn claims(&mut self, pool: &str, v6: bool, span: Option<Span>) -> StoreResult<Vec<Held>>;
    /// How many claims a pool holds in one family.
    async fn count(&mut self, pool: &str, v6: bool) -> StoreResult<u128>;
    /// Forgets the conflicts fencing noted for a container (see
    /// `EtcdStore::note_conflict`); host-wide claims have none.
    async fn forget_conflicts(&mut self, _node: &str, _container: &str) -> StoreResult<()> {
        Ok(())
    }
    /// Whether a claim this run asked for may exist: once a creation was
    /// sent (one that got no answer may still have been applied). Before
    /// that, a refused setup has nothing to release.
    fn may_have_claimed(&self) -> bool;
}

/// An address as a key part that sorts like the address: `4/c6336464`.
pub fn address_key(v6: bool, n: u128) -> String {
    if v6 {
        format!("6/{n:032x}")
    } else {
        format!("4/{n:08x}")
    }
}

/// Seconds since the epoch as `2026-11-30T21:05:00Z`.
pub fn format_time(seconds: u64) -> String {
    let days = (seconds / 86_400) as i64;
    let rest = seconds % 86_400;
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rest / 3600, rest / 60 % 60, rest % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_like_addresses() {
        let a = address_key(false, crate::config::pools::number("198.51.100.9".parse().unwrap()));
        let b = address_key(false, crate::config::pools::number("198.51.100.10".parse().unwrap()));
        assert!(a < b);
        assert_eq!(a, "4/c6336409");
        assert_eq!(address_key(true, 1).len(), 34);
    }

    #[test]
    fn times_read_as_utc() {
        assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_time(1_796_072_700), "2026-11-30T21:05:00Z");
    }

    #[test]
    fn holders_read_well() {
        let c = Claim::for_container("198.51.100.5".parse().unwrap(), "host-a", "web1");
        assert_eq!(c.holder(), "container web1 on node host-a");
        assert_eq!(Claim::reservation("198.51.100.5".parse().unwrap(), "router").holder(), "reserved (router)");
        let back: Claim = serde_json::from_str(&c.to_json()).unwrap();
        assert_eq!(back, c);
    }
}
