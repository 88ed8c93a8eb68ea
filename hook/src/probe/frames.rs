//! The frames that ask a LAN whether anything holds an address, and what
//! in a received frame answers them. Pure.
//!
//! IPv4: an ARP probe (RFC 5227): a broadcast request from the sender's
//! MAC with sender address 0.0.0.0, so that no host's cache learns the
//! address from it. It is answered by any ARP frame whose sender address is
//! the probed one (a reply, or the holder's own request), or by another
//! host's probe for the same address (two hosts about to take it at once).
//!
//! IPv6: duplicate address detection (RFC 4862): a neighbour solicitation
//! from the unspecified address to the target's solicited-node group. It
//! is answered by a neighbour advertisement for the target, or by another
//! host's solicitation from the unspecified address for it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub type Mac = [u8; 6];

pub const ETH_P_ARP: u16 = 0x0806;
pub const ETH_P_IPV6: u16 = 0x86dd;
const ETHERNET_HEADER: usize = 14;
const ICMPV6: u8 = 58;
const NEIGHBOUR_SOLICITATION: u8 = 135;
const NEIGHBOUR_ADVERTISEMENT: u8 = 136;
/// The neighbour discovery option carrying a target's link-layer address.
const TARGET_LINK_ADDRESS: u8 = 2;

/// The frame that probes `target` from an interface whose MAC is `mac`.
pub fn probe(mac: Mac, target: IpAddr) -> Vec<u8> {
    match target {
        IpAddr::V4(target) => arp_probe(mac, target),
        IpAddr::V6(target) => dad_solicitation(mac, target),
    }
}

fn ethernet(to: Mac, from: Mac, ethertype: u16) -> Vec<u8> {
    let mut frame = Vec::with_capacity(86);
    frame.extend(to);
    frame.extend(from);
    frame.extend(ethertype.to_be_bytes());
    frame
}

fn arp_probe(mac: Mac, target: Ipv4Addr) -> Vec<u8> {
    let mut frame = ethernet([0xff; 6], mac, ETH_P_ARP);
    frame.extend([0, 1, 0x08, 0x00, 6, 4, 0, 1]); // Ethernet, IPv4, lengths, request
    frame.extend(mac);
    frame.extend([0; 4]); // sender address 0.0.0.0
    frame.extend([0; 6]);
    frame.extend(target.octets());
    frame
}

/// The solicited-node group of an address: ff02::1:ffXX:XXXX.
fn solicited_node(target: Ipv6Addr) -> Ipv6Addr {
    let o = target.octets();
    Ipv6Addr::from([0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, o[13], o[14], o[15]])
}

fn dad_solicitation(mac: Mac, target: Ipv6Addr) -> Vec<u8> {
    let group = solicited_node(target);
    let g = group.octets();
    let mut frame = ethernet([0x33, 0x33, g[12], g[13], g[14], g[15]], mac, ETH_P_IPV6);
    let mut icmp = vec![NEIGHBOUR_SOLICITATION, 0, 0, 0, 0, 0, 0, 0];
    icmp.extend(target.octets());
    let sum = icmpv6_checksum(Ipv6Addr::UNSPECIFIED, group, &icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    frame.extend([0x60, 0, 0, 0]); // version 6, no class or flow
    frame.extend((icmp.len() as u16).to_be_bytes());
    frame.extend([ICMPV6, 255]); // hop limit 255, as neighbour discovery must
    frame.extend(Ipv6Addr::UNSPECIFIED.octets());
    frame.extend(g);
    frame.extend(icmp);
    frame
}

fn icmpv6_checksum(source: Ipv6Addr, destination: Ipv6Addr, message: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut add = |bytes: &[u8]| {
        for pair in bytes.chunks(2) {
            sum += u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]));
        }
    };
    add(&source.octets());
    add(&destination.octets());
    add(&(message.len() as u32).to_be_bytes());
    add(&[0, 0, 0, ICMPV6]);
    add(message);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The address a received Ethernet frame says something holds, and that
/// something's MAC: None for a frame that answers no probe. `own` is the
/// prober's MAC (its own probes do not count).
pub fn answer(frame: &[u8], own: Mac) -> Option<(IpAddr, Mac)> {
    if frame.len() < ETHERNET_HEADER {
        return None;
    }
    let source: Mac = frame[6..12].try_into().ok()?;
    let payload = &frame[ETHERNET_HEADER..];
    match u16::from_be_bytes([frame[12], frame[13]]) {
        ETH_P_ARP => arp_answer(payload, own),
        ETH_P_IPV6 => ndp_answer(payload, source, own),
        _ => None,
    }
}

fn arp_answer(arp: &[u8], own: Mac) -> Option<(IpAddr, Mac)> {
    if arp.len() < 28 || arp[..6] != [0, 1, 0x08, 0x00, 6, 4] {
        return None;
    }
    let sender_mac: Mac = arp[8..14].try_into().ok()?;
    let sender = Ipv4Addr::new(arp[14], arp[15], arp[16], arp[17]);
    let target = Ipv4Addr::new(arp[24], arp[25], arp[26], arp[27]);
    if sender_mac == own {
        return None;
    }
    if !sender.is_unspecified() {
        return Some((IpAddr::V4(sender), sender_mac));
    }
    // Another host's probe: it is about to take the address too.
    let request = arp[6..8] == [0, 1];
    request.then_some((IpAddr::V4(target), sender_mac))
}

fn ndp_answer(ip: &[u8], source: Mac, own: Mac) -> Option<(IpAddr, Mac)> {
    if ip.len() < 40 + 24 || ip[0] >> 4 != 6 || ip[6] != ICMPV6 || ip[7] != 255 || source == own {
        return None;
    }
    let from = Ipv6Addr::from(<[u8; 16]>::try_from(&ip[8..24]).ok()?);
    let length = u16::from_be_bytes([ip[4], ip[5]]) as usize;
    let icmp = ip.get(40..40 + length)?;
    if icmp.len() < 24 || icmp[1] != 0 {
        return None;
    }
    let target = Ipv6Addr::from(<[u8; 16]>::try_from(&icmp[8..24]).ok()?);
    match icmp[0] {
        NEIGHBOUR_ADVERTISEMENT => {
            // The holder's MAC as it advertises it, else the frame's sender.
            let mut options = &icmp[24..];
            let mut mac = source;
            while options.len() >= 8 && options[1] > 0 {
                let size = options[1] as usize * 8;
                if options[0] == TARGET_LINK_ADDRESS && size >= 8 {
                    mac = options[2..8].try_into().ok()?;
                }
                options = options.get(size..)?;
            }
            Some((IpAddr::V6(target), mac))
        }
        NEIGHBOUR_SOLICITATION if from.is_unspecified() => Some((IpAddr::V6(target), source)),
        _ => None,
    }
}

pub fn format_mac(mac: &Mac) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: Mac = [0x02, 0, 0, 0, 0, 1];
    const THEIRS: Mac = [0x52, 0x54, 0, 0x12, 0x34, 0x56];

    fn v4(a: &str) -> IpAddr {
        a.parse().unwrap()
    }

    /// An ARP frame as another host sends it.
    fn arp(op: u16, sender: Ipv4Addr, target: Ipv4Addr, from: Mac) -> Vec<u8> {
        let mut frame = ethernet([0xff; 6], from, ETH_P_ARP);
        frame.extend([0, 1, 0x08, 0x00, 6, 4]);
        frame.extend(op.to_be_bytes());
        frame.extend(from);
        frame.extend(sender.octets());
        frame.extend(OURS);
        frame.extend(target.octets());
        frame
    }

    #[test]
    fn an_arp_probe_says_nothing_of_itself() {
        let frame = probe(OURS, v4("198.51.100.7"));
        assert_eq!(frame.len(), 42);
        assert_eq!(&frame[..6], &[0xff; 6], "broadcast");
        assert_eq!(&frame[28..32], &[0; 4], "sender address 0.0.0.0");
        assert_eq!(&frame[38..42], &[198, 51, 100, 7]);
        assert_eq!(answer(&frame, OURS), None, "its own probe answers nothing");
    }

    #[test]
    fn a_reply_a_request_or_a_rivals_probe_answers() {
        let (address, zero) = ("198.51.100.7".parse().unwrap(), Ipv4Addr::UNSPECIFIED);
        let other = "198.51.100.1".parse().unwrap();
        assert_eq!(answer(&arp(2, address, zero, THEIRS), OURS), Some((v4("198.51.100.7"), THEIRS)));
        assert_eq!(answer(&arp(1, address, other, THEIRS), OURS), Some((v4("198.51.100.7"), THEIRS)));
        assert_eq!(answer(&arp(1, zero, address, THEIRS), OURS), Some((v4("198.51.100.7"), THEIRS)));
        assert_eq!(answer(&arp(2, zero, address, THEIRS), OURS), None, "a reply without a sender says nothing");
        assert_eq!(answer(&arp(1, address, other, OURS), OURS), None, "our own frame");
        assert_eq!(answer(&arp(1, address, other, THEIRS)[..30], OURS), None, "cut short");
    }

    /// A neighbour advertisement for `target`, with its MAC as an option.
    fn advertisement(target: Ipv6Addr, mac: Mac, from: Mac) -> Vec<u8> {
        let mut icmp = vec![NEIGHBOUR_ADVERTISEMENT, 0, 0, 0, 0x20, 0, 0, 0];
        icmp.extend(target.octets());
        icmp.extend([TARGET_LINK_ADDRESS, 1]);
        icmp.extend(mac);
        let mut frame = ethernet([0x33, 0x33, 0, 0, 0, 1], from, ETH_P_IPV6);
        frame.extend([0x60, 0, 0, 0]);
        frame.extend((icmp.len() as u16).to_be_bytes());
        frame.extend([ICMPV6, 255]);
        frame.extend(target.octets());
        frame.extend("ff02::1".parse::<Ipv6Addr>().unwrap().octets());
        frame.extend(icmp);
        frame
    }

    #[test]
    fn a_dad_solicitation_goes_to_the_solicited_node_group_with_a_valid_checksum() {
        let target: Ipv6Addr = "2001:db8::12:3456".parse().unwrap();
        let frame = probe(OURS, IpAddr::V6(target));
        assert_eq!(&frame[..6], &[0x33, 0x33, 0xff, 0x12, 0x34, 0x56]);
        assert_eq!(&frame[22..38], &[0; 16], "from the unspecified address");
        assert_eq!(Ipv6Addr::from(<[u8; 16]>::try_from(&frame[38..54]).unwrap()), solicited_node(target));
        let icmp = &frame[54..];
        let mut zeroed = icmp.to_vec();
        zeroed[2..4].copy_from_slice(&[0, 0]);
        let sum = icmpv6_checksum(Ipv6Addr::UNSPECIFIED, solicited_node(target), &zeroed);
        assert_eq!(u16::from_be_bytes([icmp[2], icmp[3]]), sum);
        // A rival's DAD is an answer, ours is not.
        assert_eq!(answer(&frame, OURS), None);
        let mut rival = frame.clone();
        rival[6..12].copy_from_slice(&THEIRS);
        assert_eq!(answer(&rival, OURS), Some((IpAddr::V6(target), THEIRS)));
    }

    #[test]
    fn an_advertisement_names_the_mac_it_advertises() {
        let target: Ipv6Addr = "2001:db8::7".parse().unwrap();
        let router: Mac = [0x52, 0x54, 0, 0xaa, 0xbb, 0xcc];
        assert_eq!(answer(&advertisement(target, router, THEIRS), OURS), Some((IpAddr::V6(target), router)));
        let mut low_hops = advertisement(target, router, THEIRS);
        low_hops[ETHERNET_HEADER + 7] = 64;
        assert_eq!(answer(&low_hops, OURS), None, "neighbour discovery from off the link is ignored");
    }

    #[test]
    fn macs_read_as_iproute2_prints_them() {
        assert_eq!(format_mac(&THEIRS), "52:54:00:12:34:56");
    }
}
