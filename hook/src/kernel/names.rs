//! What netrt derives from a container id, and the names of its own host
//! devices: the ifb and host veth names, the host veth's MAC, the MAC of a
//! DHCP attachment, and the ifb that carries an uplink's ingress.

/// netrt's mark on the host devices it makes (its ifbs, the host ends of
/// its veths, its VLAN sub-interfaces): their link group, set in the
/// request that creates them, so no device of netrt's is ever unmarked.
/// A device under one of netrt's names without the mark is someone
/// else's, and netrt never deletes it.
pub const OWN_GROUP: u32 = 0x6e72_746e;

/// The link group ("nrtd") netrt's devices move to just before they are
/// deleted together in one request, so that the kernel waits for one RCU
/// grace period rather than one per device; still netrt's mark. Teardowns
/// run under the host lock, so the group holds one container's devices,
/// or also those of a teardown killed half-way, which are going anyway.
pub const TEARDOWN_GROUP: u32 = 0x6e72_7464;

/// Whether a device's link group is netrt's mark.
pub fn is_marked(group: u32) -> bool {
    group == OWN_GROUP || group == TEARDOWN_GROUP
}

/// Name of the ifb that carries a container's limit, from its id: `nrti`
/// and 11 hex digits of the id's FNV-1a hash (interface names hold 15 bytes).
pub fn ifb_name(container_id: &str) -> String {
    device_name("nrti", container_id)
}

/// Name of the host end of a bridge attachment's veth pair: `nrtv` and the
/// same 11 hex digits.
pub fn host_veth_name(container_id: &str) -> String {
    device_name("nrtv", container_id)
}

/// The kind of link netrt makes under a host device name of its own
/// (`nrti` + 11 hex digits: an ifb; `nrtv` + 11 hex digits: a veth), or
/// None for any other name.
pub fn own_device_kind(name: &str) -> Option<&'static str> {
    let (kind, hash) = match name.get(..4) {
        Some("nrti") => ("ifb", &name[4..]),
        Some("nrtv") => ("veth", &name[4..]),
        _ => return None,
    };
    (hash.len() == 11 && hash.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))).then_some(kind)
}

/// MAC of the host end of a bridge attachment's veth: `fe:ff` and 32 bits
/// of the id's hash. A bridge whose MAC the admin did not set takes the
/// lowest MAC of its ports (and keeps it when that port leaves), so the
/// host end's MAC sorts above any real NIC's, as libvirt's `fe:` taps do:
/// attaching a container never changes the bridge's MAC.
pub fn host_veth_mac(container_id: &str) -> [u8; 6] {
    let [a, b, c, d] = ((fnv1a(container_id) >> 32) as u32).to_be_bytes();
    [0xfe, 0xff, a, b, c, d]
}

fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

fn device_name(prefix: &str, container_id: &str) -> String {
    format!("{prefix}{:011x}", fnv1a(container_id) >> 20)
}

/// The MAC an attachment whose address comes from DHCP gets when `net.mac`
/// is not given: locally administered, unicast, 40 bits of the id's hash.
pub fn dhcp_mac(container_id: &str) -> [u8; 6] {
    let [_, _, _, a, b, c, d, e] = fnv1a(container_id).to_be_bytes();
    [0x02, a, b, c, d, e]
}

/// Name of the ifb that carries an uplink's ingress shaper: `nrtu` and the
/// uplink's interface index.
pub fn uplink_ifb_name(uplink_index: u32) -> String {
    format!("nrtu{uplink_index}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_device_names_are_recognised_and_nothing_else() {
        assert_eq!(own_device_kind(&ifb_name("web1")), Some("ifb"));
        assert_eq!(own_device_kind(&host_veth_name("web1")), Some("veth"));
        for other in [
            "eth0",
            "nrti",
            "nrti0123456789",
            "nrti0123456789ab",
            "nrtiABCDEF01234",
            "nrtx0123456789a",
            "nrtbrbr",
            "veth1234",
        ] {
            assert_eq!(own_device_kind(other), None, "{other}");
        }
    }

    #[test]
    fn ifb_names_fit_and_differ() {
        let a = ifb_name("test-container-1");
        let b = ifb_name("test-container-2");
        assert_eq!(a.len(), 15);
        assert!(a.starts_with("nrti"));
        assert_ne!(a, b);
        assert_eq!(a, ifb_name("test-container-1"));
    }

    #[test]
    fn host_veth_macs_sort_above_real_nics_and_differ() {
        let a = host_veth_mac("test-container-1");
        assert_eq!(a[..2], [0xfe, 0xff], "locally administered, unicast, above any OUI and libvirt's fe:54");
        assert_eq!(a[0] & 0x01, 0, "unicast");
        assert_ne!(a, host_veth_mac("test-container-2"));
        assert_eq!(a, host_veth_mac("test-container-1"));
        assert!(a > [0xfe, 0x54, 0xff, 0xff, 0xff, 0xff], "above libvirt's taps, and so above any real NIC");
    }

    #[test]
    fn dhcp_macs_are_local_unicast_and_differ() {
        let a = dhcp_mac("nrt-1");
        assert_eq!(a[0], 0x02, "locally administered, unicast");
        assert_eq!(a, dhcp_mac("nrt-1"));
        assert_ne!(a, dhcp_mac("nrt-2"));
    }
}
