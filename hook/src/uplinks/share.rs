//! A container's share of an uplink, admission, and the shaper tree the
//! shares make. Pure: what the kernel should hold, worked out from the
//! records; `shaper` makes the kernel hold it.
//!
//! The tree, in each direction that has a guarantee (egress on the uplink
//! itself, ingress on an ifb the uplink's ingress is redirected to):
//!
//! ```text
//! htb 6e72:  (default 6e72:2)
//! └── 6e72:1    rate = ceil = capacity
//!     ├── 6e72:2   everything else: rate = what no guarantee holds, ceil = capacity
//!     ├── 6e72:10  container A: rate = its guarantee, ceil = its limit or the capacity
//!     └── 6e72:11  container B: ...
//! ```
//!
//! Classes lend what they leave unused to their siblings (htb borrows
//! through the root class), so the tree is work-conserving. Frames are
//! classified by MAC address: on a bridge and on a macvlan parent a
//! container's frames carry its own MAC (source on egress, destination on
//! ingress), whatever the protocol; one classic BPF program maps each MAC
//! to its class. It reads the MAC at a fixed offset from the frame's start,
//! so an 802.1Q tag written into the frame does not shift it, as it would
//! shift u32's offsets (counted from the network header).

use serde::{Deserialize, Serialize};

use crate::error::KeyError;
use crate::kernel::netlink::{HtbClass, SockFilter};
use crate::request::plan::{Direction, Plan};
use crate::request::units;

use crate::config::uplinks::Uplink;

/// The shaper's qdisc handle, `6e72:` ("nr"): how netrt knows its own.
pub const MAJOR: u16 = 0x6e72;
pub const ROOT_MINOR: u16 = 1;
pub const DEFAULT_MINOR: u16 = 2;
pub const FIRST_MINOR: u16 = 0x10;
const LAST_MINOR: u16 = 0xfffe;
/// Traffic without a guarantee keeps at least this share of the capacity,
/// so that the host's own (ARP among it) is never starved.
const DEFAULT_CLASS_MIN_PERCENT: u64 = 1;

/// A guarantee in one direction: the class's rate and ceiling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Floor {
    pub min_bps: u64,
    pub ceil_bps: u64,
}

/// An uplink's capacity and the part of it kept outside every guarantee.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    pub bps: u64,
    pub reserve_bps: u64,
}

impl Capacity {
    pub fn of(uplink: &Uplink) -> Capacity {
        Capacity { bps: uplink.capacity_bps, reserve_bps: uplink.reserve_bps }
    }

    /// What the shares recorded at admission, for an uplink the
    /// configuration no longer declares.
    pub fn recorded(shares: &[&Share]) -> Capacity {
        let bps = shares.iter().map(|s| s.capacity_bps).max().unwrap_or(0);
        let reserve_bps = shares.iter().map(|s| s.reserve_bps).max().unwrap_or(0);
        Capacity { bps, reserve_bps }
    }
}

/// What a container holds on its uplink; in its record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Share {
    pub uplink: String,
    /// The capacity and reserve at admission, for a teardown after the
    /// configuration changed (records before the reserve have none).
    pub capacity_bps: u64,
    #[serde(default)]
    pub reserve_bps: u64,
    pub minor: u16,
    /// The attached interface's MAC: None until it exists.
    pub mac: Option<[u8; 6]>,
    pub egress: Option<Floor>,
    pub ingress: Option<Floor>,
}

impl Share {
    pub fn floor(&self, direction: Direction) -> Option<Floor> {
        match direction {
            Direction::Egress => self.egress,
            Direction::Ingress => self.ingress,
        }
    }
}

/// The guaranteed sum on `uplink` in `direction` over `shares`.
pub fn guaranteed_bps<'a>(shares: impl IntoIterator<Item = &'a Share>, uplink: &str, direction: Direction) -> u64 {
    shares.into_iter().filter(|s| s.uplink == uplink).filter_map(|s| s.floor(direction)).map(|f| f.min_bps).sum()
}

/// Admission: the share `plan` asks for on `uplink`, if the guarantees
/// already `held` there leave room for it in each direction.
pub fn admit(uplink: &Uplink, plan: &Plan, held: &[&Share]) -> Result<Share, KeyError> {
    for wanted in plan.guarantees() {
        let guaranteed = guaranteed_bps(held.iter().copied(), &uplink.name, wanted.direction);
        let admissible = uplink.admissible_bps();
        if guaranteed + wanted.rate_bps > admissible {
            return Err(KeyError::new(
                &wanted.source,
                &wanted.value,
                format!(
                    "{} has {} of {} guaranteed {} already; {} more would exceed it",
                    uplink.describe(),
                    units::format_rate(guaranteed),
                    units::format_rate(admissible),
                    wanted.direction.name(),
                    units::format_rate(wanted.rate_bps),
                ),
            ));
        }
        if wanted.rate_bps > uplink.capacity_bps {
            return Err(KeyError::new(
                &wanted.source,
                &wanted.value,
                format!("above the capacity of {}", uplink.describe()),
            ));
        }
    }
    let used: Vec<u16> = held.iter().filter(|s| s.uplink == uplink.name).map(|s| s.minor).collect();
    let minor = (FIRST_MINOR..=LAST_MINOR).find(|m| !used.contains(m)).ok_or_else(|| {
        let lead = plan.guarantees().next().expect("admission is for a plan with a guarantee");
        KeyError::new(
            &lead.source,
            &lead.value,
            format!("{} has no class left for another guarantee", uplink.describe()),
        )
    })?;
    let floor = |direction: Direction| {
        plan.guarantees().find(|g| g.direction == direction).map(|g| Floor {
            min_bps: g.rate_bps,
            ceil_bps: plan.limit_bps(direction).unwrap_or(uplink.capacity_bps).min(uplink.capacity_bps),
        })
    };
    Ok(Share {
        uplink: uplink.name.clone(),
        capacity_bps: uplink.capacity_bps,
        reserve_bps: uplink.reserve_bps,
        minor,
        mac: None,
        egress: floor(Direction::Egress),
        ingress: floor(Direction::Ingress),
    })
}

/// A container's class in the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leaf {
    pub minor: u16,
    pub mac: [u8; 6],
    pub floor: Floor,
}

/// What one direction of an uplink's shaper holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tree {
    pub capacity_bps: u64,
    pub default_rate_bps: u64,
    pub leaves: Vec<Leaf>,
}

/// The tree `shares` make in `direction`; None if none has a guarantee
/// there (then the direction has no shaper). A share whose interface does
/// not exist yet holds its place in the sums but has no class.
pub fn tree(capacity: Capacity, shares: &[&Share], direction: Direction) -> Option<Tree> {
    let capacity_bps = capacity.bps;
    let floors: Vec<(&Share, Floor)> = shares.iter().filter_map(|s| Some((*s, s.floor(direction)?))).collect();
    if floors.is_empty() {
        return None;
    }
    let guaranteed: u64 = floors.iter().map(|(_, f)| f.min_bps).sum();
    // Everything without a guarantee (the host's own traffic among it)
    // keeps at least the reserve, even where an overcommit let the
    // guarantees add up to more than the rest.
    let default_rate_bps = capacity_bps
        .saturating_sub(guaranteed)
        .max(capacity.reserve_bps)
        .max(capacity_bps * DEFAULT_CLASS_MIN_PERCENT / 100);
    let mut leaves: Vec<Leaf> = floors
        .iter()
        .filter_map(|(share, floor)| Some(Leaf { minor: share.minor, mac: share.mac?, floor: *floor }))
        .collect();
    leaves.sort_by_key(|l| l.minor);
    Some(Tree { capacity_bps, default_rate_bps, leaves })
}

impl Tree {
    /// The htb classes, root first.
    pub fn classes(&self) -> Vec<HtbClass> {
        let class = |minor, parent_minor, rate_bps: u64, ceil_bps: u64| HtbClass {
            minor,
            parent_minor,
            rate_bytes_per_s: rate_bps / 8,
            ceil_bytes_per_s: ceil_bps / 8,
            burst_bytes: burst_bytes(rate_bps),
            cburst_bytes: burst_bytes(ceil_bps),
            quantum_bytes: quantum_bytes(rate_bps),
        };
        let mut classes = vec![
            class(ROOT_MINOR, None, self.capacity_bps, self.capacity_bps),
            class(DEFAULT_MINOR, Some(ROOT_MINOR), self.default_rate_bps, self.capacity_bps),
        ];
        classes.extend(self.leaves.iter().map(|l| class(l.minor, Some(ROOT_MINOR), l.floor.min_bps, l.floor.ceil_bps)));
        classes
    }

    /// The classifier: each leaf's MAC to its class, anything else to the
    /// default (0: no match). Egress matches the source MAC (bytes 6-11 of
    /// the frame), ingress the destination (bytes 0-5).
    pub fn program(&self, direction: Direction) -> Vec<SockFilter> {
        const LD_W_ABS: u16 = 0x20;
        const LD_H_ABS: u16 = 0x28;
        const JEQ_K: u16 = 0x15;
        const RET_K: u16 = 0x06;
        let offset = match direction {
            Direction::Egress => 6,
            Direction::Ingress => 0,
        };
        let mut program = Vec::with_capacity(self.leaves.len() * 5 + 1);
        for leaf in &self.leaves {
            let high = u32::from_be_bytes([leaf.mac[0], leaf.mac[1], leaf.mac[2], leaf.mac[3]]);
            let low = u16::from_be_bytes([leaf.mac[4], leaf.mac[5]]) as u32;
            program.extend([
                SockFilter { code: LD_W_ABS, jt: 0, jf: 0, k: offset },
                SockFilter { code: JEQ_K, jt: 0, jf: 3, k: high },
                SockFilter { code: LD_H_ABS, jt: 0, jf: 0, k: offset + 4 },
                SockFilter { code: JEQ_K, jt: 0, jf: 1, k: low },
                SockFilter { code: RET_K, jt: 0, jf: 0, k: class_id(leaf.minor) },
            ]);
        }
        program.push(SockFilter { code: RET_K, jt: 0, jf: 0, k: 0 });
        program
    }
}

pub fn class_id(minor: u16) -> u32 {
    ((MAJOR as u32) << 16) | minor as u32
}

/// 2 ms at the rate, and at least two of the largest segments a veth or a
/// NIC with segmentation offload hands the qdisc (64 KiB each).
fn burst_bytes(rate_bps: u64) -> u32 {
    (rate_bps / 8 / 500).clamp(2 * 65_536, u32::MAX as u64 / 2) as u32
}

/// Borrowed capacity is shared in proportion to the quanta: 10 ms of the
/// rate, within htb's sensible range.
fn quantum_bytes(rate_bps: u64) -> u32 {
    (rate_bps / 8 / 100).clamp(1_514, 200_000) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::settings::from_words;

    fn uplink(capacity: &str, overcommit_permille: u64) -> Uplink {
        let capacity_bps = units::parse_rate(capacity).unwrap();
        Uplink { name: "eth1".into(), capacity_bps, reserve_bps: capacity_bps / 20, overcommit_permille }
    }

    const CAPACITY: Capacity = Capacity { bps: 100_000_000, reserve_bps: 0 };

    fn plan(words: &[&str]) -> Plan {
        let mut all = vec!["net.bridge=br0".to_string()];
        all.extend(words.iter().map(|w| w.to_string()));
        crate::request::plan::build(&from_words(&all).unwrap()).unwrap()
    }

    fn share(minor: u16, mac_last: u8, egress_min_mbit: u64) -> Share {
        Share {
            uplink: "eth1".into(),
            capacity_bps: 100_000_000,
            reserve_bps: 5_000_000,
            minor,
            mac: Some([2, 0, 0, 0, 0, mac_last]),
            egress: Some(Floor { min_bps: egress_min_mbit * 1_000_000, ceil_bps: 100_000_000 }),
            ingress: None,
        }
    }

    /// Runs the four instructions netrt's programs use over `frame`.
    fn run(program: &[SockFilter], frame: &[u8]) -> u32 {
        let (mut pc, mut a) = (0usize, 0u32);
        loop {
            let i = program[pc];
            match i.code {
                0x20 => a = u32::from_be_bytes(frame[i.k as usize..i.k as usize + 4].try_into().unwrap()),
                0x28 => a = u16::from_be_bytes(frame[i.k as usize..i.k as usize + 2].try_into().unwrap()) as u32,
                0x15 => pc += if a == i.k { i.jt as usize } else { i.jf as usize },
                0x06 => return i.k,
                other => panic!("opcode {other:#x}"),
            }
            pc += 1;
        }
    }

    #[test]
    fn admission_counts_what_is_held_and_names_the_figures() {
        let held = [share(0x10, 1, 60)];
        let held: Vec<&Share> = held.iter().collect();
        let got =
            admit(&uplink("100mbit", 1000), &plan(&["net.egress.min=30mbit", "net.egress=50mbit"]), &held).unwrap();
        assert_eq!(got.minor, 0x11, "the lowest class not taken");
        assert_eq!(got.egress, Some(Floor { min_bps: 30_000_000, ceil_bps: 50_000_000 }), "the limit is the ceiling");
        assert_eq!(got.ingress, None);
        let refused =
            admit(&uplink("100mbit", 1000), &plan(&["net.egress.min=50mbit"]), &held).unwrap_err().to_string();
        assert_eq!(
            refused,
            "netrt: net.egress.min=\"50mbit\": uplink eth1 (capacity 100mbit, reserve 5mbit) has 60mbit of 95mbit \
             guaranteed egress already; 50mbit more would exceed it"
        );
        // The reserve stays outside: up to 95mbit, not a bit more.
        assert!(admit(&uplink("100mbit", 1000), &plan(&["net.egress.min=35mbit"]), &held).is_ok());
        assert!(admit(&uplink("100mbit", 1000), &plan(&["net.egress.min=36mbit"]), &held).is_err());
        assert!(
            admit(&uplink("100mbit", 1500), &plan(&["net.egress.min=50mbit"]), &held).is_ok(),
            "overcommit 1.5 lets it in"
        );
        let other_direction = admit(&uplink("100mbit", 1000), &plan(&["net.ingress.min=95mbit"]), &held).unwrap();
        assert_eq!(other_direction.ingress.unwrap().ceil_bps, 100_000_000, "each direction is counted apart");
        let above = admit(&uplink("100mbit", 3000), &plan(&["net.ingress.min=200mbit"]), &[]).unwrap_err().to_string();
        assert!(above.contains("above the capacity of uplink eth1"), "{above}");
    }

    #[test]
    fn the_tree_gives_the_rest_to_the_default_class_and_skips_shares_in_progress() {
        let mut pending = share(0x12, 3, 10);
        pending.mac = None;
        let shares = [share(0x11, 2, 20), share(0x10, 1, 60), pending];
        let refs: Vec<&Share> = shares.iter().collect();
        let tree = tree(CAPACITY, &refs, Direction::Egress).unwrap();
        assert_eq!(tree.default_rate_bps, 10_000_000, "100 - 60 - 20 - 10 (the pending share counts)");
        assert_eq!(tree.leaves.iter().map(|l| l.minor).collect::<Vec<_>>(), vec![0x10, 0x11]);
        let classes = tree.classes();
        assert_eq!(classes.len(), 4);
        assert_eq!((classes[0].minor, classes[0].parent_minor), (ROOT_MINOR, None));
        assert_eq!(classes[2].rate_bytes_per_s, 7_500_000);
        assert!(classes.iter().skip(1).all(|c| c.parent_minor == Some(ROOT_MINOR)), "siblings borrow through the root");
        assert!(super::tree(CAPACITY, &refs, Direction::Ingress).is_none(), "no guarantee, no shaper");
        let full = [share(0x10, 1, 100)];
        let full: Vec<&Share> = full.iter().collect();
        assert_eq!(
            super::tree(CAPACITY, &full, Direction::Egress).unwrap().default_rate_bps,
            1_000_000,
            "never starved"
        );
        // An overcommit let the guarantees reach the capacity: the default
        // class still keeps the reserve.
        let reserved = Capacity { bps: 100_000_000, reserve_bps: 5_000_000 };
        assert_eq!(super::tree(reserved, &full, Direction::Egress).unwrap().default_rate_bps, 5_000_000);
    }

    #[test]
    fn the_program_sends_each_mac_to_its_class_in_either_direction() {
        let shares = [share(0x10, 1, 60), share(0x11, 2, 20)];
        let refs: Vec<&Share> = shares.iter().collect();
        let tree = tree(CAPACITY, &refs, Direction::Egress).unwrap();
        let frame = |destination: [u8; 6], source: [u8; 6]| {
            let mut f = destination.to_vec();
            f.extend(source);
            f.extend([0x08, 0x00, 0x45, 0]);
            f
        };
        let (a, b, lan) = ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 9]);
        let egress = tree.program(Direction::Egress);
        assert_eq!(run(&egress, &frame(lan, a)), class_id(0x10));
        assert_eq!(run(&egress, &frame(lan, b)), class_id(0x11));
        assert_eq!(run(&egress, &frame(a, lan)), 0, "egress looks at the source only");
        assert_eq!(run(&egress, &frame(lan, [2, 0, 0, 0, 1, 1])), 0, "all six bytes must match");
        let ingress = tree.program(Direction::Ingress);
        assert_eq!(run(&ingress, &frame(b, lan)), class_id(0x11));
        assert_eq!(run(&ingress, &frame(lan, b)), 0);
    }
}
