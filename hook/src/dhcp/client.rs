//! The exchanges on the wire. Setup acquires over a packet socket bound to
//! the attached interface (it has no address yet, and the kernel's UDP
//! would send from another interface's); renewals and releases go over a
//! UDP socket on the leased address. Retransmission follows RFC 2131
//! §4.1's exponential back-off, scaled to a hook's budget: the first
//! retransmission comes after 100 ms (a brand-new bridge port may miss the
//! first DISCOVER), each delay doubles up to 4 s, randomised by ±1/8, and
//! all of it stays within the timeout.

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::lease::{self, Client, Lease, Reply};
use super::wire;
use crate::kernel::packet;

pub const FIRST_RETRANSMIT: Duration = Duration::from_millis(100);
pub const MAX_RETRANSMIT: Duration = Duration::from_secs(4);
const ETH_P_IP: u16 = 0x0800;
const BROADCAST_MAC: [u8; 6] = [0xff; 6];

/// Why no lease was had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Nobody offered an address in time.
    NoOffer,
    /// A server offered `address` but did not acknowledge the request.
    NoAck { server: Ipv4Addr, address: Ipv4Addr },
    /// A server refused (DHCPNAK), with its message.
    Refused { server: Option<Ipv4Addr>, message: String },
    /// An answer that cannot be used, or a socket that failed.
    Broken(String),
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Failure {
        Failure::Broken(format!("DHCP socket: {e}"))
    }
}

pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A transaction id or a jitter: unpredictable enough, without a crate.
pub fn random_u32() -> u32 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(
        Instant::now().elapsed().as_nanos() ^ SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos()),
    );
    hasher.finish() as u32
}

/// Where DHCP messages go out and answers come in.
pub trait Channel {
    fn send(&self, message: &[u8]) -> io::Result<()>;
    /// The next datagram, or None once `until` has passed.
    fn receive(&self, until: Instant) -> io::Result<Option<Vec<u8>>>;
}

/// An AF_PACKET socket (cooked: the kernel adds the Ethernet header).
pub struct PacketSocket {
    fd: OwnedFd,
}

impl PacketSocket {
    /// Opens one in the calling thread's network namespace; it needs
    /// CAP_NET_RAW, so setup opens it inside the container's namespace
    /// before it drops its privileges, and binds it once the interface
    /// exists. It receives nothing until then.
    pub fn open() -> io::Result<PacketSocket> {
        let fd =
            unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(PacketSocket { fd: unsafe { OwnedFd::from_raw_fd(fd) } })
    }

    pub fn bind(&self, ifindex: u32) -> io::Result<()> {
        packet::bind(self.fd.as_raw_fd(), ifindex, ETH_P_IP)
    }
}

/// IPv4/UDP over a packet socket on one interface: from `source` (0.0.0.0
/// while there is no address) to `destination`, in a frame to `to_mac`.
/// Remembers the MAC the last answer came from.
pub struct PacketChannel<'a> {
    socket: &'a PacketSocket,
    ifindex: u32,
    pub source: Ipv4Addr,
    pub destination: Ipv4Addr,
    pub to_mac: [u8; 6],
    pub answered_from: Cell<Option<[u8; 6]>>,
}

impl<'a> PacketChannel<'a> {
    pub fn broadcast(socket: &'a PacketSocket, ifindex: u32) -> PacketChannel<'a> {
        PacketChannel {
            socket,
            ifindex,
            source: Ipv4Addr::UNSPECIFIED,
            destination: Ipv4Addr::BROADCAST,
            to_mac: BROADCAST_MAC,
            answered_from: Cell::new(None),
        }
    }
}

impl Channel for PacketChannel<'_> {
    fn send(&self, message: &[u8]) -> io::Result<()> {
        let packet = wire::udp_packet(self.source, self.destination, message);
        let address = packet::link_address(self.ifindex, ETH_P_IP, self.to_mac);
        let sent = unsafe {
            libc::sendto(
                self.socket.fd.as_raw_fd(),
                packet.as_ptr().cast(),
                packet.len(),
                0,
                &address as *const libc::sockaddr_ll as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn receive(&self, until: Instant) -> io::Result<Option<Vec<u8>>> {
        let fd = self.socket.fd.as_raw_fd();
        let mut buffer = vec![0u8; 2048];
        loop {
            let Some((got, from)) = packet::receive(fd, &mut buffer)? else {
                if !packet::wait(fd, libc::POLLIN, until)? {
                    return Ok(None);
                }
                continue;
            };
            let Some(payload) = wire::server_payload(&buffer[..got]) else { continue };
            let mut mac = [0u8; 6];
            mac.copy_from_slice(&from.sll_addr[..6]);
            self.answered_from.set(Some(mac));
            return Ok(Some(payload.to_vec()));
        }
    }
}

/// UDP on port 68 of the attached interface, whose one IPv4 address is the
/// lease's: it sends from that address, and it hears both unicast answers
/// and broadcast ones (a DHCPNAK is always broadcast), which a socket
/// bound to the address itself would not.
pub struct UdpChannel {
    socket: UdpSocket,
    to: SocketAddrV4,
}

impl UdpChannel {
    /// Opens one in the calling thread's network namespace; binding port 68
    /// needs CAP_NET_BIND_SERVICE. The kernel sends from the lease's
    /// address, the interface's only IPv4 one.
    pub fn open(ifname: &str, to: Ipv4Addr) -> io::Result<UdpChannel> {
        use nix::sys::socket::{self, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn};
        let fd = socket::socket(AddressFamily::Inet, SockType::Datagram, SockFlag::SOCK_CLOEXEC, None)?;
        socket::setsockopt(&fd, sockopt::ReuseAddr, &true)?;
        socket::setsockopt(&fd, sockopt::Broadcast, &true)?;
        socket::setsockopt(&fd, sockopt::BindToDevice, &std::ffi::OsString::from(ifname))?;
        socket::bind(fd.as_raw_fd(), &SockaddrIn::from(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, wire::CLIENT_PORT)))?;
        Ok(UdpChannel { socket: UdpSocket::from(fd), to: SocketAddrV4::new(to, wire::SERVER_PORT) })
    }
}

impl Channel for UdpChannel {
    fn send(&self, message: &[u8]) -> io::Result<()> {
        self.socket.send_to(message, self.to).map(|_| ())
    }

    fn receive(&self, until: Instant) -> io::Result<Option<Vec<u8>>> {
        let mut buffer = vec![0u8; 2048];
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.socket.set_read_timeout(Some(left))?;
            match self.socket.recv_from(&mut buffer) {
                Ok((got, from)) if from.port() == wire::SERVER_PORT => return Ok(Some(buffer[..got].to_vec())),
                Ok(_) => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
                    ) =>
                {
                    continue
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Sends `message` and waits for an answer that `accept` takes, sending
/// again on the back-off schedule, until `until`.
pub fn exchange<T>(
    channel: &dyn Channel,
    message: &[u8],
    until: Instant,
    mut accept: impl FnMut(&[u8]) -> Option<T>,
) -> io::Result<Option<T>> {
    let mut delay = FIRST_RETRANSMIT;
    loop {
        channel.send(message)?;
        let eighth = delay.as_micros() as u64 / 8;
        let jitter = (random_u32() as u64 % (2 * eighth + 1)) as i64 - eighth as i64;
        let wait = Duration::from_micros((delay.as_micros() as i64 + jitter) as u64);
        let next = (Instant::now() + wait).min(until);
        while let Some(bytes) = channel.receive(next)? {
            if let Some(answer) = accept(&bytes) {
                return Ok(Some(answer));
            }
        }
        if Instant::now() >= until {
            return Ok(None);
        }
        delay = (delay * 2).min(MAX_RETRANSMIT);
    }
}

/// DISCOVER, OFFER, REQUEST, ACK on `channel` (a packet channel on the
/// attached interface), all within `timeout`. A DHCPNAK to the REQUEST
/// starts the exchange again (RFC 2131 §3.1, step 5): a server that offered
/// one address to two clients at once (dnsmasq does, under parallel
/// starts) refuses the second REQUEST and offers that client another
/// address. The first restart is at once, later ones back off as
/// retransmissions do; when the time is up, the last refusal is the error.
pub fn acquire(channel: &dyn Channel, client: &Client, timeout: Duration) -> Result<Lease, Failure> {
    let until = Instant::now() + timeout;
    let mut pause = Duration::ZERO;
    let mut refused = None;
    loop {
        match select_and_request(channel, client, until) {
            Err(nak @ Failure::Refused { .. }) => refused = Some(nak),
            // Time ran out after a refusal: the refusal says more.
            Err(Failure::NoOffer) if refused.is_some() => break,
            other => return other,
        }
        if Instant::now() + pause >= until {
            break;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).clamp(FIRST_RETRANSMIT, MAX_RETRANSMIT);
    }
    Err(refused.unwrap_or(Failure::NoOffer))
}

/// One DISCOVER, OFFER, REQUEST, ACK, under a fresh transaction id.
fn select_and_request(channel: &dyn Channel, client: &Client, until: Instant) -> Result<Lease, Failure> {
    let xid = random_u32();
    let discover = lease::encode(&lease::discover(client, xid));
    let offer = exchange(channel, &discover, until, |bytes| match lease::reply(bytes, client, xid, unix_now()) {
        Some(Ok(Reply::Offer { address, server })) => Some((address, server)),
        _ => None,
    })?;
    let (address, server) = offer.ok_or(Failure::NoOffer)?;
    let request = lease::encode(&lease::request_offered(client, xid, address, server));
    let answer = exchange(channel, &request, until, |bytes| match lease::reply(bytes, client, xid, unix_now())? {
        Ok(Reply::Ack(lease)) if lease.server == server => Some(Ok(lease)),
        Ok(Reply::Nak { server: from, message }) if from.is_none_or(|from| from == server) => {
            Some(Err(Failure::Refused { server: Some(server), message }))
        }
        Ok(_) => None,
        Err(reason) => Some(Err(Failure::Broken(reason))),
    })?;
    answer.ok_or(Failure::NoAck { server, address })?
}

/// A REQUEST for more time on `lease` (RENEWING to its server, or
/// REBINDING to all): the new lease, or None if nobody answered by `until`.
pub fn extend(channel: &dyn Channel, client: &Client, lease: &Lease, until: Instant) -> Result<Option<Lease>, Failure> {
    let xid = random_u32();
    let request = lease::encode(&lease::request_extension(client, xid, lease));
    let answer = exchange(channel, &request, until, |bytes| match lease::reply(bytes, client, xid, unix_now())? {
        Ok(Reply::Ack(new)) if new.address.address == lease.address.address => Some(Ok(new)),
        Ok(Reply::Nak { server, message }) => Some(Err(Failure::Refused { server, message })),
        Ok(_) => None,
        Err(reason) => Some(Err(Failure::Broken(reason))),
    })?;
    answer.transpose()
}

/// DHCPRELEASE, sent once: it has no answer (RFC 2131 §4.4.6).
pub fn release(channel: &dyn Channel, client: &Client, lease: &Lease) -> io::Result<()> {
    channel.send(&lease::encode(&lease::release(client, random_u32(), lease)))
}

/// Setup's DHCP client: the packet socket it opened in the container's
/// namespace while it could, and who it asks as.
pub struct Acquirer {
    pub socket: PacketSocket,
    pub container_id: String,
    pub hostname: Option<String>,
}

/// A lease setup holds, with what releasing it over the packet socket
/// needs should setup fail later.
#[derive(Debug, Clone)]
pub struct Held {
    pub lease: Lease,
    pub ifindex: u32,
    pub server_mac: Option<[u8; 6]>,
}

impl Acquirer {
    /// The whole exchange on interface `ifindex`, whose MAC is `mac`.
    pub fn acquire(&self, ifindex: u32, mac: [u8; 6], timeout: Duration) -> Result<Held, Failure> {
        self.socket.bind(ifindex)?;
        let client = Client::new(&self.container_id, mac, self.hostname.as_deref());
        let channel = PacketChannel::broadcast(&self.socket, ifindex);
        let lease = acquire(&channel, &client, timeout)?;
        Ok(Held { lease, ifindex, server_mac: channel.answered_from.get() })
    }

    /// Gives a lease setup cannot use back, best effort: from its address,
    /// to its server, in a frame to the MAC its answers came from.
    pub fn release(&self, held: &Held) -> io::Result<()> {
        let mut channel = PacketChannel::broadcast(&self.socket, held.ifindex);
        channel.source = held.lease.ipv4();
        channel.destination = held.lease.server;
        channel.to_mac = held.server_mac.unwrap_or(BROADCAST_MAC);
        release(&channel, &held.lease.client(&self.container_id), &held.lease)
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::VecDeque;

    use dhcproto::v4::{DhcpOption, Message, MessageType, Opcode, OptionCode};
    use dhcproto::{Decodable, Decoder};

    use super::*;

    const SERVER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);

    /// A server that offers the addresses of `offers` in turn, and refuses
    /// each REQUEST for an address in `taken` ("address in use").
    struct Server {
        offers: RefCell<VecDeque<Ipv4Addr>>,
        taken: Vec<Ipv4Addr>,
        answers: RefCell<VecDeque<Vec<u8>>>,
        discovers: Cell<u32>,
    }

    impl Server {
        fn new(offers: &[Ipv4Addr], taken: &[Ipv4Addr]) -> Server {
            Server {
                offers: RefCell::new(offers.iter().copied().collect()),
                taken: taken.to_vec(),
                answers: RefCell::default(),
                discovers: Cell::new(0),
            }
        }

        fn answer(request: &Message, kind: MessageType, address: Ipv4Addr) -> Vec<u8> {
            let unspecified = Ipv4Addr::UNSPECIFIED;
            let mut m = Message::new_with_id(
                request.xid(),
                unspecified,
                address,
                unspecified,
                unspecified,
                &request.chaddr()[..6],
            );
            m.set_opcode(Opcode::BootReply);
            m.opts_mut().insert(DhcpOption::MessageType(kind));
            m.opts_mut().insert(DhcpOption::ServerIdentifier(SERVER));
            match kind {
                MessageType::Nak => {
                    m.opts_mut().insert(DhcpOption::Message("address in use".into()));
                }
                _ => {
                    m.opts_mut().insert(DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)));
                    m.opts_mut().insert(DhcpOption::AddressLeaseTime(120));
                }
            }
            lease::encode(&m)
        }
    }

    impl Channel for Server {
        fn send(&self, bytes: &[u8]) -> io::Result<()> {
            let request = Message::decode(&mut Decoder::new(bytes)).expect("the client's message decodes");
            let answer = match request.opts().msg_type() {
                Some(MessageType::Discover) => {
                    self.discovers.set(self.discovers.get() + 1);
                    let offered = *self.offers.borrow().front().expect("an address left to offer");
                    Server::answer(&request, MessageType::Offer, offered)
                }
                Some(MessageType::Request) => {
                    let Some(DhcpOption::RequestedIpAddress(wanted)) =
                        request.opts().get(OptionCode::RequestedIpAddress)
                    else {
                        panic!("a REQUEST in SELECTING names the offered address")
                    };
                    self.offers.borrow_mut().pop_front();
                    let kind = if self.taken.contains(wanted) { MessageType::Nak } else { MessageType::Ack };
                    Server::answer(&request, kind, *wanted)
                }
                other => panic!("unexpected {other:?}"),
            };
            self.answers.borrow_mut().push_back(answer);
            Ok(())
        }

        fn receive(&self, _until: Instant) -> io::Result<Option<Vec<u8>>> {
            Ok(self.answers.borrow_mut().pop_front())
        }
    }

    fn client() -> Client {
        Client::new("c1", crate::kernel::names::dhcp_mac("c1"), None)
    }

    #[test]
    fn a_nak_to_the_request_starts_again_and_takes_the_next_offer() {
        let (first, second) = (Ipv4Addr::new(198, 51, 100, 50), Ipv4Addr::new(198, 51, 100, 51));
        let server = Server::new(&[first, second], &[first]);
        let lease = acquire(&server, &client(), Duration::from_secs(1)).expect("a lease");
        assert_eq!(lease.ipv4(), second);
        assert_eq!(server.discovers.get(), 2);
    }

    #[test]
    fn refusals_until_the_time_is_up_end_in_the_last_refusal() {
        let taken: Vec<Ipv4Addr> = (50..=255).map(|last| Ipv4Addr::new(198, 51, 100, last)).collect();
        let server = Server::new(&taken, &taken);
        let started = Instant::now();
        let failure = acquire(&server, &client(), Duration::from_millis(350)).expect_err("every request refused");
        assert_eq!(failure, Failure::Refused { server: Some(SERVER), message: "address in use".into() });
        assert!(started.elapsed() < Duration::from_millis(450), "took {:?}", started.elapsed());
        // At once, then after 100 and 200 ms: the pauses keep a refusing
        // server from being asked in a tight loop.
        assert!((2..=4).contains(&server.discovers.get()), "{} DISCOVERs", server.discovers.get());
    }
}
