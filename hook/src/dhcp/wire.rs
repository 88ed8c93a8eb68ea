//! IPv4 and UDP headers around a DHCP message, for the packet socket that
//! setup uses while the interface has no address yet (the kernel's UDP
//! would pick another interface's address as the source). Pure.

use std::net::Ipv4Addr;

pub const CLIENT_PORT: u16 = 68;
pub const SERVER_PORT: u16 = 67;
const IPV4_HEADER: usize = 20;
const UDP_HEADER: usize = 8;

/// An IPv4 packet carrying `payload` in UDP from the client's port to the
/// server's.
pub fn udp_packet(source: Ipv4Addr, destination: Ipv4Addr, payload: &[u8]) -> Vec<u8> {
    let udp_length = (UDP_HEADER + payload.len()) as u16;
    let total = IPV4_HEADER as u16 + udp_length;
    let mut packet = Vec::with_capacity(total as usize);
    packet.extend([0x45, 0x10]); // version 4, 5 words; low delay, as DHCP clients send
    packet.extend(total.to_be_bytes());
    packet.extend([0, 0, 0, 0]); // identification, no fragments
    packet.extend([64, 17, 0, 0]); // TTL, UDP, checksum below
    packet.extend(source.octets());
    packet.extend(destination.octets());
    let header_sum = checksum(&[&packet[..IPV4_HEADER]], 0);
    packet[10..12].copy_from_slice(&header_sum.to_be_bytes());

    let mut udp = Vec::with_capacity(udp_length as usize);
    udp.extend(CLIENT_PORT.to_be_bytes());
    udp.extend(SERVER_PORT.to_be_bytes());
    udp.extend(udp_length.to_be_bytes());
    udp.extend([0, 0]);
    udp.extend(payload);
    let pseudo = [&source.octets()[..], &destination.octets()[..], &[0, 17], &udp_length.to_be_bytes()[..]].concat();
    let sum = match checksum(&[&pseudo, &udp], 0) {
        0 => 0xffff, // zero means "no checksum" in UDP
        sum => sum,
    };
    udp[6..8].copy_from_slice(&sum.to_be_bytes());
    packet.extend(udp);
    packet
}

/// The UDP payload of an IPv4 packet from a server's port to the client's,
/// if that is what `packet` is. Checksums are not checked: a packet from
/// the same host may carry one the card was to fill in, and the DHCP
/// message is checked by its decoder and its transaction id.
pub fn server_payload(packet: &[u8]) -> Option<&[u8]> {
    let header = ((*packet.first()? & 0x0f) as usize) * 4;
    if packet[0] >> 4 != 4 || header < IPV4_HEADER || packet.len() < header + UDP_HEADER {
        return None;
    }
    let total = u16::from_be_bytes([packet[2], packet[3]]) as usize;
    let fragmented = u16::from_be_bytes([packet[6], packet[7]]) & 0x3fff != 0;
    if packet[9] != 17 || fragmented || total > packet.len() || total < header + UDP_HEADER {
        return None;
    }
    let udp = &packet[header..total];
    let ports = (u16::from_be_bytes([udp[0], udp[1]]), u16::from_be_bytes([udp[2], udp[3]]));
    let length = u16::from_be_bytes([udp[4], udp[5]]) as usize;
    if ports != (SERVER_PORT, CLIENT_PORT) || length < UDP_HEADER || length > udp.len() {
        return None;
    }
    Some(&udp[UDP_HEADER..length])
}

/// The Internet checksum (RFC 1071) of the concatenated chunks.
fn checksum(chunks: &[&[u8]], initial: u32) -> u16 {
    let bytes: Vec<u8> = chunks.concat();
    let mut sum = initial;
    for pair in bytes.chunks(2) {
        sum += u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]) as u32;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_sum_to_zero_as_receivers_check() {
        let packet = udp_packet(Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST, b"hello dhcp");
        assert_eq!(packet.len(), 20 + 8 + 10);
        assert_eq!(checksum(&[&packet[..20]], 0), 0, "IPv4 header");
        let pseudo = [&[0u8, 0, 0, 0, 255, 255, 255, 255, 0, 17][..], &18u16.to_be_bytes()[..]].concat();
        assert_eq!(checksum(&[&pseudo, &packet[20..]], 0), 0, "UDP with its pseudo-header");
    }

    #[test]
    fn only_server_to_client_udp_is_read() {
        let mut from_server = udp_packet(Ipv4Addr::new(198, 51, 100, 1), Ipv4Addr::BROADCAST, b"offer");
        // Swap the ports: a server's packet goes from 67 to 68.
        from_server[20..24].copy_from_slice(&[0, 67, 0, 68]);
        assert_eq!(server_payload(&from_server), Some(&b"offer"[..]));
        let own = udp_packet(Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST, b"discover");
        assert_eq!(server_payload(&own), None, "the client's own packet");
        let mut tcp = from_server.clone();
        tcp[9] = 6;
        assert_eq!(server_payload(&tcp), None);
        let mut fragment = from_server.clone();
        fragment[6] = 0x20;
        assert_eq!(server_payload(&fragment), None);
        assert_eq!(server_payload(&from_server[..25]), None, "cut short");
        assert_eq!(server_payload(&[]), None);
    }
}
