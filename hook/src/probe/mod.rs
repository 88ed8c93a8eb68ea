//! Asking the LAN whether anything holds an address, before netrt gives it
//! (from inside the container's namespace, on the attached interface) or
//! takes it back from a dead node (from the host, on the pool's bridge or
//! parent). Many addresses are probed at once: every probe goes out, a
//! second round halfway through the probe time (a lost frame is not taken
//! for silence), and every answer until the time is up is kept.
//!
//! The socket is a packet socket; opening it needs CAP_NET_RAW, so setup
//! opens it before it drops its capabilities. Nothing is changed on the
//! interface: no address, no multicast membership, no promiscuity.

pub mod frames;

use std::collections::BTreeMap;
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

pub use frames::{format_mac, Mac};

use crate::kernel::packet;

const ETH_P_ALL: u16 = 0x0003;
/// How many probes go out before the socket is read again: answers to a
/// large batch would overflow its receive buffer.
pub const BATCH: usize = 256;

pub struct Prober {
    fd: OwnedFd,
}

/// What a probe heard: each address that answered, and the MAC that did.
pub type Heard = BTreeMap<IpAddr, Mac>;

impl Prober {
    /// A packet socket in the calling thread's network namespace; it
    /// receives nothing until `probe` binds it to an interface.
    pub fn open() -> io::Result<Prober> {
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Prober { fd: unsafe { OwnedFd::from_raw_fd(fd) } })
    }

    /// Probes `targets` from interface `ifindex` (whose MAC is `mac`) for
    /// `time`, at most `BATCH` at once; returns those that answered.
    pub fn probe(&self, ifindex: u32, mac: Mac, targets: &[IpAddr], time: Duration) -> io::Result<Heard> {
        packet::bind(self.fd.as_raw_fd(), ifindex, ETH_P_ALL)?;
        let mut heard = Heard::new();
        for batch in targets.chunks(BATCH) {
            self.probe_batch(mac, batch, time, &mut heard)?;
        }
        Ok(heard)
    }

    fn probe_batch(&self, mac: Mac, targets: &[IpAddr], time: Duration, heard: &mut Heard) -> io::Result<()> {
        let start = Instant::now();
        let (halfway, end) = (start + time / 2, start + time);
        self.send_all(mac, targets, heard)?;
        let mut second_round_sent = false;
        loop {
            if targets.iter().all(|t| heard.contains_key(t)) {
                return Ok(());
            }
            let now = Instant::now();
            if now >= end {
                return Ok(());
            }
            if !second_round_sent && now >= halfway {
                self.send_all(mac, targets, heard)?;
                second_round_sent = true;
            }
            let until = if second_round_sent { end } else { halfway };
            if !packet::wait(self.fd.as_raw_fd(), libc::POLLIN, until)? {
                continue;
            }
            self.read_answers(mac, targets, heard)?;
        }
    }

    /// A probe for each target not heard yet.
    fn send_all(&self, mac: Mac, targets: &[IpAddr], heard: &Heard) -> io::Result<()> {
        for target in targets.iter().filter(|t| !heard.contains_key(t)) {
            let frame = frames::probe(mac, *target);
            loop {
                let sent = unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
                if sent >= 0 {
                    break;
                }
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::Interrupted => continue,
                    // The device's queue is full: wait for room briefly.
                    io::ErrorKind::WouldBlock => {
                        packet::wait(self.fd.as_raw_fd(), libc::POLLOUT, Instant::now() + Duration::from_millis(10))?;
                    }
                    _ => return Err(e),
                }
            }
        }
        Ok(())
    }

    fn read_answers(&self, mac: Mac, targets: &[IpAddr], heard: &mut Heard) -> io::Result<()> {
        let mut buffer = [0u8; 1600];
        while let Some((read, _)) = packet::receive(self.fd.as_raw_fd(), &mut buffer)? {
            if let Some((address, holder)) = frames::answer(&buffer[..read], mac) {
                if targets.contains(&address) {
                    heard.entry(address).or_insert(holder);
                }
            }
        }
        Ok(())
    }
}
