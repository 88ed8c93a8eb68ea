//! The uplink shaper's tc messages: an htb qdisc and its classes, and one
//! classic-BPF classifier that maps a MAC address to a class. rtnetlink
//! types neither htb nor classic BPF; they are encoded here, once.

use futures_util::TryStreamExt;
use rtnetlink::packet_core::{DefaultNla, Nla, NlasIterator, NLM_F_CREATE, NLM_F_REPLACE};
use rtnetlink::packet_route::link::{LinkAttribute, LinkMessage};
use rtnetlink::packet_route::tc::{TcAttribute, TcHandle, TcMessage, TcOption, TcStats2};
use rtnetlink::packet_route::RouteNetlinkMessage;

use super::{
    deleted, net_error, nla_value, tc_message, Link, NetResult, Netlink, ETH_P_ALL, PSCHED_TICK_NS, TCA_OPTIONS,
    TC_LINKLAYER_ETHERNET,
};

const TCA_HTB_PARMS: u16 = 1;
const TCA_HTB_INIT: u16 = 2;
const TCA_HTB_RATE64: u16 = 7;
const TCA_HTB_CEIL64: u16 = 8;
const HTB_VERSION: u32 = 3;
const TCA_BPF_OPS_LEN: u16 = 4;
const TCA_BPF_OPS: u16 = 5;
const TCA_STATS_RATE_EST: u16 = 2;
const TCA_STATS_RATE_EST64: u16 = 5;
/// The classifier's priority and handle: there is only one.
const FILTER_PRIORITY: u16 = 1;
const FILTER_HANDLE: u32 = 1;

/// One htb class: a rate it always gets, a ceiling it may borrow up to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HtbClass {
    pub minor: u16,
    /// None: a child of the qdisc itself (the root class).
    pub parent_minor: Option<u16>,
    pub rate_bytes_per_s: u64,
    pub ceil_bytes_per_s: u64,
    pub burst_bytes: u32,
    pub cburst_bytes: u32,
    /// What the class may send in one round when it borrows: borrowed
    /// capacity is shared in proportion to it.
    pub quantum_bytes: u32,
}

/// A class as the kernel reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClassInfo {
    pub minor: u16,
    pub kind: String,
    pub bytes: u64,
    /// The kernel's rate estimate, bytes per second, when it keeps one.
    pub rate_bytes_per_s: Option<u64>,
    /// An htb class's rate and ceiling, bytes per second.
    pub htb_rates: Option<(u64, u64)>,
}

/// One classic BPF instruction (`struct sock_filter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SockFilter {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

impl Netlink {
    /// Puts an htb with handle `major:` at the root of `link`, in place of
    /// the kernel's default qdisc; unclassified traffic goes to class
    /// `major:default_minor`. The kernel refuses if a qdisc someone set is
    /// there (EEXIST).
    pub async fn add_root_htb(&self, link: &Link, major: u16, default_minor: u16) -> NetResult<()> {
        let options = vec![TcOption::Other(DefaultNla::new(TCA_HTB_INIT, htb_glob(default_minor).to_vec()))];
        let what = format!("adding netrt's htb root qdisc to {}", link.name);
        self.add_root_qdisc(link, TcHandle { major, minor: 0 }, ("htb", options), what).await
    }

    /// Deletes the root qdisc of `link` only if it is an htb with handle
    /// `major:` (the kernel checks both); the kernel's default comes back.
    pub async fn delete_own_root_htb(&self, link: &Link, major: u16) -> NetResult<bool> {
        self.delete_qdisc_if(link, TcHandle::ROOT, TcHandle { major, minor: 0 }, "htb").await
    }

    /// Creates the class, or changes it if it exists. It keeps a rate
    /// estimator (every 250 ms, averaged over about a second) for `status`.
    pub async fn put_htb_class(&self, link: &Link, major: u16, class: &HtbClass) -> NetResult<()> {
        let place =
            (TcHandle { major, minor: class.parent_minor.unwrap_or(0) }, TcHandle { major, minor: class.minor });
        let mut message = tc_message(link, place, "htb", Some(htb_class_options(class)));
        // struct tc_estimator: interval -2 (250 ms), ewma_log 2.
        message.attributes.push(TcAttribute::Rate(vec![(-2i8) as u8, 2]));
        self.ack(RouteNetlinkMessage::NewTrafficClass(message), NLM_F_CREATE)
            .await
            .map_err(|e| net_error(format!("setting class {major:x}:{:x} on {}", class.minor, link.name), e))
    }

    pub async fn delete_class(&self, link: &Link, major: u16, minor: u16) -> NetResult<bool> {
        let mut message = TcMessage::with_index(link.index as i32);
        message.header.handle = TcHandle { major, minor };
        let result = self.ack(RouteNetlinkMessage::DelTrafficClass(message), 0).await;
        deleted(result, format!("deleting class {major:x}:{minor:x} of {}", link.name), &[libc::ENOENT])
    }

    /// The classes of qdisc `major:` on `link`, with their counters.
    pub async fn classes(&self, link: &Link, major: u16) -> NetResult<Vec<ClassInfo>> {
        let messages: Vec<TcMessage> = self
            .handle
            .traffic_class(link.index as i32)
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(|e| net_error(format!("listing the classes of {}", link.name), e))?;
        Ok(messages.iter().filter(|m| m.header.handle.major == major).map(class_info).collect())
    }

    /// Puts (or replaces, in one step) the classifier of qdisc `major:`:
    /// a classic BPF program that returns the class id of a frame, or 0
    /// for the default class. It sees every EtherType.
    pub async fn put_bpf_classifier(&self, link: &Link, major: u16, program: &[SockFilter]) -> NetResult<()> {
        let place = (TcHandle { major, minor: 0 }, FILTER_HANDLE.into());
        let mut message = tc_message(link, place, "bpf", Some(classic_bpf_options(program)));
        message.header.info = ((FILTER_PRIORITY as u32) << 16) | ETH_P_ALL.to_be() as u32;
        self.ack(RouteNetlinkMessage::NewTrafficFilter(message), NLM_F_CREATE | NLM_F_REPLACE)
            .await
            .map_err(|e| net_error(format!("putting netrt's classifier on {}", link.name), e))
    }

    /// Sets how many packets the device's default queue (and an htb leaf's
    /// default pfifo) holds: an ifb starts with 32.
    pub async fn set_txqueuelen(&self, link: &Link, packets: u32) -> NetResult<()> {
        let mut message = LinkMessage::default();
        message.header.index = link.index;
        message.attributes.push(LinkAttribute::TxQueueLen(packets));
        self.handle
            .link()
            .set(message)
            .execute()
            .await
            .map_err(|e| net_error(format!("setting the queue length of {}", link.name), e))
    }
}

/// `struct tc_htb_glob`: version, rate2quantum, defcls, debug, direct_pkts.
fn htb_glob(default_minor: u16) -> [u8; 20] {
    let mut bytes = [0u8; 20];
    bytes[0..4].copy_from_slice(&HTB_VERSION.to_ne_bytes());
    bytes[4..8].copy_from_slice(&10u32.to_ne_bytes());
    bytes[8..12].copy_from_slice(&(default_minor as u32).to_ne_bytes());
    bytes
}

fn htb_class_options(class: &HtbClass) -> Vec<TcOption> {
    let mut options = vec![TcOption::Other(DefaultNla::new(TCA_HTB_PARMS, htb_opt(class).to_vec()))];
    if class.rate_bytes_per_s > u32::MAX as u64 {
        options.push(TcOption::Other(DefaultNla::new(TCA_HTB_RATE64, class.rate_bytes_per_s.to_ne_bytes().to_vec())));
    }
    if class.ceil_bytes_per_s > u32::MAX as u64 {
        options.push(TcOption::Other(DefaultNla::new(TCA_HTB_CEIL64, class.ceil_bytes_per_s.to_ne_bytes().to_vec())));
    }
    options
}

/// `struct tc_htb_opt`: rate and ceil `tc_ratespec`s (link layer Ethernet,
/// so the kernel computes transmit times itself and needs no rate table),
/// buffer and cbuffer (bursts as transmit time, in scheduler ticks),
/// quantum, level, prio.
fn htb_opt(class: &HtbClass) -> [u8; 44] {
    let mut bytes = [0u8; 44];
    let ticks = |burst: u32, rate: u64| -> u32 {
        let ns = burst as u128 * 1_000_000_000 / rate.max(1) as u128;
        (ns / PSCHED_TICK_NS).min(u32::MAX as u128) as u32
    };
    bytes[1] = TC_LINKLAYER_ETHERNET;
    bytes[8..12].copy_from_slice(&(class.rate_bytes_per_s.min(u32::MAX as u64) as u32).to_ne_bytes());
    bytes[13] = TC_LINKLAYER_ETHERNET;
    bytes[20..24].copy_from_slice(&(class.ceil_bytes_per_s.min(u32::MAX as u64) as u32).to_ne_bytes());
    bytes[24..28].copy_from_slice(&ticks(class.burst_bytes, class.rate_bytes_per_s).to_ne_bytes());
    bytes[28..32].copy_from_slice(&ticks(class.cburst_bytes, class.ceil_bytes_per_s).to_ne_bytes());
    bytes[32..36].copy_from_slice(&class.quantum_bytes.to_ne_bytes());
    bytes
}

/// TCA_OPTIONS of a classic BPF classifier: the program's length and
/// instructions. No TCA_BPF_CLASSID: the program returns class ids itself
/// (0: no match, so the default class); a fixed one would bind the filter.
fn classic_bpf_options(program: &[SockFilter]) -> Vec<TcOption> {
    let mut ops = Vec::with_capacity(program.len() * 8);
    for instruction in program {
        ops.extend_from_slice(&instruction.code.to_ne_bytes());
        ops.push(instruction.jt);
        ops.push(instruction.jf);
        ops.extend_from_slice(&instruction.k.to_ne_bytes());
    }
    vec![
        TcOption::Other(DefaultNla::new(TCA_BPF_OPS_LEN, (program.len() as u16).to_ne_bytes().to_vec())),
        TcOption::Other(DefaultNla::new(TCA_BPF_OPS, ops)),
    ]
}

fn class_info(message: &TcMessage) -> ClassInfo {
    let mut info = ClassInfo { minor: message.header.handle.minor, ..ClassInfo::default() };
    for attribute in &message.attributes {
        match attribute {
            TcAttribute::Kind(kind) => info.kind = kind.clone(),
            TcAttribute::Options(options) => {
                info.htb_rates = options.iter().find_map(|o| match o {
                    TcOption::Other(nla) if nla.kind() == TCA_OPTIONS => parse_htb_rates(&nla_value(nla)),
                    _ => None,
                })
            }
            TcAttribute::Stats2(stats) => {
                for stat in stats {
                    match stat {
                        TcStats2::Basic(basic) => info.bytes = basic.bytes,
                        TcStats2::Other(nla) => {
                            info.rate_bytes_per_s = info.rate_bytes_per_s.or_else(|| rate_estimate(nla))
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    info
}

/// `struct gnet_stats_rate_est` (bytes/s as u32, then packets/s) or its
/// 64-bit form.
fn rate_estimate(nla: &DefaultNla) -> Option<u64> {
    let value = nla_value(nla);
    match nla.kind() {
        TCA_STATS_RATE_EST64 if value.len() >= 8 => Some(u64::from_ne_bytes(value[..8].try_into().ok()?)),
        TCA_STATS_RATE_EST if value.len() >= 4 => Some(u32::from_ne_bytes(value[..4].try_into().ok()?) as u64),
        _ => None,
    }
}

/// Reads back the rate and ceiling `htb_class_options` wrote.
fn parse_htb_rates(options: &[u8]) -> Option<(u64, u64)> {
    let mut rates = None;
    let (mut rate64, mut ceil64) = (None, None);
    for nla in NlasIterator::new(options).flatten() {
        let value = nla.value();
        match nla.kind() {
            TCA_HTB_PARMS if value.len() >= 44 => {
                let rate = u32::from_ne_bytes(value[8..12].try_into().ok()?) as u64;
                let ceil = u32::from_ne_bytes(value[20..24].try_into().ok()?) as u64;
                rates = Some((rate, ceil));
            }
            TCA_HTB_RATE64 if value.len() >= 8 => rate64 = Some(u64::from_ne_bytes(value[..8].try_into().ok()?)),
            TCA_HTB_CEIL64 if value.len() >= 8 => ceil64 = Some(u64::from_ne_bytes(value[..8].try_into().ok()?)),
            _ => {}
        }
    }
    let (rate, ceil) = rates?;
    Some((rate64.unwrap_or(rate), ceil64.unwrap_or(ceil)))
}

#[cfg(test)]
mod tests {
    use rtnetlink::packet_core::Emitable;

    use super::*;

    fn emitted(options: &[TcOption]) -> Vec<u8> {
        let mut bytes = vec![];
        for option in options {
            let mut buffer = vec![0u8; option.buffer_len()];
            option.emit(&mut buffer);
            bytes.extend(buffer);
        }
        bytes
    }

    #[test]
    fn an_htb_class_says_rate_ceiling_and_bursts_in_the_kernels_units() {
        let class = HtbClass {
            minor: 0x10,
            parent_minor: Some(1),
            rate_bytes_per_s: 7_500_000,
            ceil_bytes_per_s: 12_500_000,
            burst_bytes: 15_000,
            cburst_bytes: 25_000,
            quantum_bytes: 75_000,
        };
        let opt = htb_opt(&class);
        assert_eq!((opt[1], opt[13]), (TC_LINKLAYER_ETHERNET, TC_LINKLAYER_ETHERNET), "no rate table needed");
        assert_eq!(u32::from_ne_bytes(opt[8..12].try_into().unwrap()), 7_500_000);
        assert_eq!(u32::from_ne_bytes(opt[20..24].try_into().unwrap()), 12_500_000);
        // 15,000 bytes at 7.5 MB/s: 2 ms, 31,250 ticks of 64 ns.
        assert_eq!(u32::from_ne_bytes(opt[24..28].try_into().unwrap()), 31_250);
        assert_eq!(u32::from_ne_bytes(opt[32..36].try_into().unwrap()), 75_000);
        assert_eq!(parse_htb_rates(&emitted(&htb_class_options(&class))), Some((7_500_000, 12_500_000)));
    }

    #[test]
    fn rates_above_32_bits_go_in_the_64_bit_attributes() {
        let class = HtbClass {
            minor: 2,
            parent_minor: Some(1),
            rate_bytes_per_s: 5_000_000_000,
            ceil_bytes_per_s: 6_250_000_000,
            burst_bytes: 1 << 20,
            cburst_bytes: 1 << 20,
            quantum_bytes: 200_000,
        };
        let options = htb_class_options(&class);
        assert_eq!(options.len(), 3);
        assert_eq!(parse_htb_rates(&emitted(&options)), Some((5_000_000_000, 6_250_000_000)));
    }

    #[test]
    fn a_classic_program_is_sent_as_sock_filter_structs() {
        let program = [SockFilter { code: 0x20, jt: 0, jf: 3, k: 6 }, SockFilter { code: 0x06, jt: 0, jf: 0, k: 0 }];
        let options = classic_bpf_options(&program);
        let bytes = emitted(&options);
        let nlas: Vec<_> = NlasIterator::new(&bytes[..]).flatten().map(|n| (n.kind(), n.value().to_vec())).collect();
        assert_eq!(nlas[0], (TCA_BPF_OPS_LEN, 2u16.to_ne_bytes().to_vec()));
        let mut first = 0x20u16.to_ne_bytes().to_vec();
        first.extend([0, 3]);
        first.extend(6u32.to_ne_bytes());
        assert_eq!(&nlas[1].1[..8], &first[..]);
        assert_eq!(nlas[1].1.len(), 16);
        assert_eq!(nlas.len(), 2, "no fixed class id");
    }
}
