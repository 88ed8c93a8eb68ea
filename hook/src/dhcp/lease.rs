//! A DHCP lease as the record keeps it, who asks for it, and the messages
//! of the exchange (RFC 2131). Pure: no socket, no clock of its own.

use std::net::Ipv4Addr;

use dhcproto::v4::{DhcpOption, Flags, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};
use serde::{Deserialize, Serialize};

use crate::request::attachment::Cidr;

/// A lease time of all ones: the address is the client's for good (and the
/// kernel's "forever" lifetime is the same number).
pub const INFINITE: u32 = u32::MAX;

/// Who asks. The same container always asks as the same client: its
/// identifier is the container id, its MAC is derived from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub mac: [u8; 6],
    /// Option 61: type 0 (not a hardware address), then the container id.
    pub client_id: Vec<u8>,
    /// Option 12: the container's hostname from config.json.
    pub hostname: Option<String>,
}

impl Client {
    pub fn new(container_id: &str, mac: [u8; 6], hostname: Option<&str>) -> Client {
        // An option holds at most 255 bytes; ids hold at most 200.
        let mut client_id = vec![0u8];
        client_id.extend(container_id.bytes().take(254));
        let hostname = hostname.map(str::trim).filter(|h| !h.is_empty()).map(|h| h.chars().take(255).collect());
        Client { mac, client_id, hostname }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub address: Cidr,
    /// The server identifier (option 54): where renewals and the release go.
    pub server: Ipv4Addr,
    /// Unix time, in seconds, of the ACK that began or last renewed it.
    pub bound_at: u64,
    /// The lease time; `INFINITE` for good.
    pub seconds: u32,
    /// T1: renew (from the server) this long after `bound_at`.
    pub renew_after: u32,
    /// T2: rebind (from any server) this long after `bound_at`.
    pub rebind_after: u32,
    pub router: Option<Ipv4Addr>,
    #[serde(default)]
    pub dns: Vec<Ipv4Addr>,
    #[serde(default)]
    pub domain: Option<String>,
    #[serde(default)]
    pub mtu: Option<u16>,
    /// Set when the server refused a renewal (NAK), with its message: the
    /// address is gone from the container.
    #[serde(default)]
    pub refused: Option<String>,
    /// The client it was given to: its MAC and hostname, for renewals.
    #[serde(default)]
    pub mac: [u8; 6],
    #[serde(default)]
    pub hostname: Option<String>,
}

/// Where a lease stands at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Before T1: nothing to do.
    Bound,
    /// Past T1: ask the server that gave it.
    Renewing,
    /// Past T2: ask any server.
    Rebinding,
    /// Past the lease's end: the kernel has dropped the address.
    Expired,
}

impl Lease {
    /// The client this lease was given to, as container `id`.
    pub fn client(&self, id: &str) -> Client {
        Client::new(id, self.mac, self.hostname.as_deref())
    }

    pub fn ipv4(&self) -> Ipv4Addr {
        v4(self.address)
    }

    pub fn is_infinite(&self) -> bool {
        self.seconds == INFINITE
    }

    pub fn expires_at(&self) -> Option<u64> {
        (!self.is_infinite()).then(|| self.bound_at + self.seconds as u64)
    }

    pub fn phase(&self, now: u64) -> Phase {
        if self.is_infinite() {
            return Phase::Bound;
        }
        let since = now.saturating_sub(self.bound_at);
        if since >= self.seconds as u64 {
            Phase::Expired
        } else if since >= self.rebind_after as u64 {
            Phase::Rebinding
        } else if since >= self.renew_after as u64 {
            Phase::Renewing
        } else {
            Phase::Bound
        }
    }

    /// The address's valid lifetime to give the kernel at `now`.
    pub fn remaining(&self, now: u64) -> u32 {
        match self.expires_at() {
            None => INFINITE,
            Some(end) => end.saturating_sub(now).min(INFINITE as u64 - 1) as u32,
        }
    }
}

/// What a server's message means to a client waiting for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Offer { address: Ipv4Addr, server: Ipv4Addr },
    Ack(Lease),
    Nak { server: Option<Ipv4Addr>, message: String },
}

/// The options netrt asks for (option 55).
const WANTED: [OptionCode; 8] = [
    OptionCode::SubnetMask,
    OptionCode::Router,
    OptionCode::DomainNameServer,
    OptionCode::DomainName,
    OptionCode::InterfaceMtu,
    OptionCode::AddressLeaseTime,
    OptionCode::Renewal,
    OptionCode::Rebinding,
];

fn message(client: &Client, xid: u32, kind: MessageType, ciaddr: Ipv4Addr) -> Message {
    let unspecified = Ipv4Addr::UNSPECIFIED;
    let mut message = Message::new_with_id(xid, ciaddr, unspecified, unspecified, unspecified, &client.mac);
    message.set_opcode(Opcode::BootRequest).set_flags(Flags::default());
    let options = message.opts_mut();
    options.insert(DhcpOption::MessageType(kind));
    options.insert(DhcpOption::ClientIdentifier(client.client_id.clone()));
    if kind != MessageType::Release {
        options.insert(DhcpOption::ParameterRequestList(WANTED.to_vec()));
        // The largest message netrt takes, so servers do not truncate.
        options.insert(DhcpOption::MaxMessageSize(1500));
        if let Some(hostname) = &client.hostname {
            options.insert(DhcpOption::Hostname(hostname.clone()));
        }
    }
    message
}

pub fn discover(client: &Client, xid: u32) -> Message {
    message(client, xid, MessageType::Discover, Ipv4Addr::UNSPECIFIED)
}

/// The REQUEST that takes up `server`'s offer of `address` (SELECTING).
pub fn request_offered(client: &Client, xid: u32, address: Ipv4Addr, server: Ipv4Addr) -> Message {
    let mut message = message(client, xid, MessageType::Request, Ipv4Addr::UNSPECIFIED);
    message.opts_mut().insert(DhcpOption::RequestedIpAddress(address));
    message.opts_mut().insert(DhcpOption::ServerIdentifier(server));
    message
}

/// The REQUEST that extends a lease (RENEWING and REBINDING): the address
/// in `ciaddr`, no server identifier, no requested address.
pub fn request_extension(client: &Client, xid: u32, lease: &Lease) -> Message {
    message(client, xid, MessageType::Request, v4(lease.address))
}

pub fn release(client: &Client, xid: u32, lease: &Lease) -> Message {
    let mut message = message(client, xid, MessageType::Release, v4(lease.address));
    message.opts_mut().insert(DhcpOption::ServerIdentifier(lease.server));
    message
}

fn v4(cidr: Cidr) -> Ipv4Addr {
    match cidr.address {
        std::net::IpAddr::V4(a) => a,
        std::net::IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
    }
}

pub fn encode(message: &Message) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(320);
    message.encode(&mut Encoder::new(&mut bytes)).expect("a client's message encodes");
    // BOOTP relays and some servers drop messages under 300 bytes.
    if bytes.len() < 300 {
        bytes.resize(300, 0);
    }
    bytes
}

/// Reads a server's message: None if it is not an answer to `client`'s
/// exchange `xid` (another client's, or not DHCP at all); an error if it is
/// one that cannot be used, with the reason. `now`: Unix seconds.
pub fn reply(bytes: &[u8], client: &Client, xid: u32, now: u64) -> Option<Result<Reply, String>> {
    let message = Message::decode(&mut Decoder::new(bytes)).ok()?;
    if message.opcode() != Opcode::BootReply
        || message.xid() != xid
        || message.chaddr().get(..6) != Some(&client.mac[..])
    {
        return None;
    }
    let options = message.opts();
    if let Some(DhcpOption::ClientIdentifier(id)) = options.get(OptionCode::ClientIdentifier) {
        if *id != client.client_id {
            return None;
        }
    }
    let server = match options.get(OptionCode::ServerIdentifier) {
        Some(DhcpOption::ServerIdentifier(server)) => Some(*server),
        _ => None,
    };
    let reply = match options.msg_type()? {
        MessageType::Offer => {
            let Some(server) = server else {
                return Some(Err("an offer without a server identifier (option 54)".into()));
            };
            Reply::Offer { address: message.yiaddr(), server }
        }
        MessageType::Nak => {
            let message = match options.get(OptionCode::Message) {
                Some(DhcpOption::Message(text)) => text.clone(),
                _ => "no reason given".into(),
            };
            Reply::Nak { server, message }
        }
        MessageType::Ack => match lease_of(&message, server, now) {
            Ok(lease) => Reply::Ack(Lease { mac: client.mac, hostname: client.hostname.clone(), ..lease }),
            Err(e) => return Some(Err(e)),
        },
        _ => return None,
    };
    Some(Ok(reply))
}

fn lease_of(message: &Message, server: Option<Ipv4Addr>, now: u64) -> Result<Lease, String> {
    let options = message.opts();
    let address = message.yiaddr();
    if address.is_unspecified() || address.is_broadcast() || address.is_multicast() || address.is_loopback() {
        return Err(format!("the server's ACK gives {address}, which cannot be an interface's address"));
    }
    let server = server.ok_or("an ACK without a server identifier (option 54)")?;
    let Some(DhcpOption::SubnetMask(mask)) = options.get(OptionCode::SubnetMask) else {
        return Err(format!("the server's ACK for {address} has no subnet mask (option 1)"));
    };
    let mask = u32::from(*mask);
    if mask.leading_ones() + mask.trailing_zeros() != 32 {
        return Err(format!("the server's subnet mask {} is not contiguous", Ipv4Addr::from(mask)));
    }
    let Some(DhcpOption::AddressLeaseTime(seconds)) = options.get(OptionCode::AddressLeaseTime) else {
        return Err(format!("the server's ACK for {address} has no lease time (option 51)"));
    };
    let seconds = (*seconds).max(1);
    let timer = |code, default: u32| match options.get(code) {
        Some(DhcpOption::Renewal(t)) | Some(DhcpOption::Rebinding(t)) => (*t).min(seconds),
        _ => default,
    };
    // RFC 2131 §4.4.5: T1 = half the lease, T2 = seven eighths.
    let (renew_default, rebind_default) =
        if seconds == INFINITE { (INFINITE, INFINITE) } else { (seconds / 2, (seconds as u64 * 7 / 8) as u32) };
    let rebind_after = timer(OptionCode::Rebinding, rebind_default);
    let renew_after = timer(OptionCode::Renewal, renew_default).min(rebind_after);
    let router = match options.get(OptionCode::Router) {
        Some(DhcpOption::Router(routers)) => routers.first().copied().filter(|r| !r.is_unspecified()),
        _ => None,
    };
    let dns = match options.get(OptionCode::DomainNameServer) {
        Some(DhcpOption::DomainNameServer(servers)) => servers.clone(),
        _ => vec![],
    };
    let domain = match options.get(OptionCode::DomainName) {
        Some(DhcpOption::DomainName(domain)) => {
            Some(domain.trim_end_matches('\0').to_string()).filter(|d| !d.is_empty())
        }
        _ => None,
    };
    let mtu = match options.get(OptionCode::InterfaceMtu) {
        Some(DhcpOption::InterfaceMtu(mtu)) => Some(*mtu),
        _ => None,
    };
    Ok(Lease {
        address: Cidr { address: address.into(), prefix: mask.leading_ones() as u8 },
        server,
        bound_at: now,
        seconds,
        renew_after,
        rebind_after,
        router,
        dns,
        domain,
        mtu,
        refused: None,
        mac: [0; 6],
        hostname: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> Client {
        Client::new("c1", crate::kernel::names::dhcp_mac("c1"), Some("web"))
    }

    /// A server's answer to `client`'s exchange `xid`.
    fn answer(kind: MessageType, xid: u32, options: Vec<DhcpOption>) -> Vec<u8> {
        let c = client();
        let mut m = Message::new_with_id(
            xid,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::new(198, 51, 100, 50),
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            &c.mac,
        );
        m.set_opcode(Opcode::BootReply);
        m.opts_mut().insert(DhcpOption::MessageType(kind));
        for option in options {
            m.opts_mut().insert(option);
        }
        encode(&m)
    }

    fn full_ack(xid: u32) -> Vec<u8> {
        answer(
            MessageType::Ack,
            xid,
            vec![
                DhcpOption::ServerIdentifier(Ipv4Addr::new(198, 51, 100, 1)),
                DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)),
                DhcpOption::AddressLeaseTime(120),
                DhcpOption::Router(vec![Ipv4Addr::new(198, 51, 100, 1)]),
                DhcpOption::DomainNameServer(vec![Ipv4Addr::new(198, 51, 100, 53), Ipv4Addr::new(198, 51, 100, 54)]),
                DhcpOption::DomainName("lan.example".into()),
                DhcpOption::InterfaceMtu(1400),
            ],
        )
    }

    #[test]
    fn the_same_container_is_the_same_client() {
        let a = Client::new("nrt-1", crate::kernel::names::dhcp_mac("nrt-1"), Some("web"));
        assert_eq!(a, Client::new("nrt-1", crate::kernel::names::dhcp_mac("nrt-1"), Some("web")));
        assert_ne!(a.mac, crate::kernel::names::dhcp_mac("nrt-2"));
        assert_eq!(a.mac[0] & 0x03, 0x02, "locally administered and unicast");
        assert_eq!(a.client_id, b"\0nrt-1");
        assert_eq!(Client::new("x", [2, 0, 0, 0, 0, 1], Some("  ")).hostname, None);
    }

    #[test]
    fn a_discover_carries_the_client_and_asks_for_what_netrt_applies() {
        let bytes = encode(&discover(&client(), 7));
        assert!(bytes.len() >= 300);
        let m = Message::decode(&mut Decoder::new(&bytes)).unwrap();
        assert_eq!((m.xid(), m.opcode(), m.chaddr()), (7, Opcode::BootRequest, &client().mac[..]));
        assert_eq!(m.opts().msg_type(), Some(MessageType::Discover));
        assert_eq!(m.opts().get(OptionCode::Hostname), Some(&DhcpOption::Hostname("web".into())));
        assert_eq!(m.opts().get(OptionCode::ClientIdentifier), Some(&DhcpOption::ClientIdentifier(b"\0c1".to_vec())));
        let Some(DhcpOption::ParameterRequestList(wanted)) = m.opts().get(OptionCode::ParameterRequestList) else {
            panic!()
        };
        assert!(wanted.contains(&OptionCode::Router) && wanted.contains(&OptionCode::InterfaceMtu));
        assert!(!m.flags().broadcast(), "netrt reads unicast answers on its packet socket");
    }

    #[test]
    fn requests_and_releases_say_what_rfc_2131_asks() {
        let selecting = request_offered(&client(), 8, Ipv4Addr::new(198, 51, 100, 50), Ipv4Addr::new(198, 51, 100, 1));
        assert_eq!(selecting.ciaddr(), Ipv4Addr::UNSPECIFIED);
        assert!(selecting.opts().get(OptionCode::RequestedIpAddress).is_some());
        assert!(selecting.opts().get(OptionCode::ServerIdentifier).is_some());
        let Some(Ok(Reply::Ack(lease))) = reply(&full_ack(8), &client(), 8, 1000) else { panic!() };
        let renewing = request_extension(&client(), 9, &lease);
        assert_eq!(renewing.ciaddr(), Ipv4Addr::new(198, 51, 100, 50));
        assert!(renewing.opts().get(OptionCode::RequestedIpAddress).is_none());
        assert!(renewing.opts().get(OptionCode::ServerIdentifier).is_none());
        let gone = release(&client(), 10, &lease);
        assert_eq!(gone.opts().msg_type(), Some(MessageType::Release));
        assert_eq!(gone.opts().get(OptionCode::ServerIdentifier), Some(&DhcpOption::ServerIdentifier(lease.server)));
    }

    #[test]
    fn an_ack_becomes_a_lease() {
        let Some(Ok(Reply::Ack(lease))) = reply(&full_ack(5), &client(), 5, 1000) else { panic!() };
        assert_eq!(lease.address.to_string(), "198.51.100.50/24");
        assert_eq!((lease.seconds, lease.renew_after, lease.rebind_after), (120, 60, 105));
        assert_eq!(lease.router, Some(Ipv4Addr::new(198, 51, 100, 1)));
        assert_eq!(lease.dns.len(), 2);
        assert_eq!((lease.domain.as_deref(), lease.mtu), (Some("lan.example"), Some(1400)));
        assert_eq!(lease.phase(1000), Phase::Bound);
        assert_eq!(lease.phase(1060), Phase::Renewing);
        assert_eq!(lease.phase(1105), Phase::Rebinding);
        assert_eq!(lease.phase(1120), Phase::Expired);
        assert_eq!(lease.remaining(1030), 90);
        assert_eq!(lease.remaining(5000), 0);
    }

    #[test]
    fn answers_to_others_are_not_answers() {
        assert_eq!(reply(&full_ack(5), &client(), 6, 0), None, "another exchange");
        let other = Client::new("c2", crate::kernel::names::dhcp_mac("c2"), None);
        assert_eq!(reply(&full_ack(5), &other, 5, 0), None, "another client's MAC");
        assert_eq!(reply(b"not dhcp", &client(), 5, 0), None);
        let own_request = encode(&discover(&client(), 5));
        assert_eq!(reply(&own_request, &client(), 5, 0), None, "a request is not an answer");
    }

    #[test]
    fn unusable_answers_say_why() {
        let no_mask = answer(
            MessageType::Ack,
            1,
            vec![DhcpOption::ServerIdentifier(Ipv4Addr::new(198, 51, 100, 1)), DhcpOption::AddressLeaseTime(60)],
        );
        assert!(matches!(reply(&no_mask, &client(), 1, 0), Some(Err(e)) if e.contains("no subnet mask")));
        let nak = answer(MessageType::Nak, 2, vec![DhcpOption::Message("wrong network".into())]);
        assert_eq!(
            reply(&nak, &client(), 2, 0),
            Some(Ok(Reply::Nak { server: None, message: "wrong network".into() }))
        );
        let infinite = answer(
            MessageType::Ack,
            3,
            vec![
                DhcpOption::ServerIdentifier(Ipv4Addr::new(198, 51, 100, 1)),
                DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 0, 0)),
                DhcpOption::AddressLeaseTime(INFINITE),
            ],
        );
        let Some(Ok(Reply::Ack(lease))) = reply(&infinite, &client(), 3, 0) else { panic!() };
        assert_eq!((lease.phase(u32::MAX as u64 * 2), lease.remaining(10)), (Phase::Bound, INFINITE));
    }
}
