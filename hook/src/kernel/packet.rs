//! What the packet sockets of DHCP and of probing share: an address on an
//! interface, binding to it, and waiting for the socket until a deadline.

use std::io;
use std::os::fd::RawFd;
use std::time::Instant;

/// A link-layer address: interface `ifindex`, `protocol` (host order),
/// and the MAC a frame goes to (zero when binding).
pub fn link_address(ifindex: u32, protocol: u16, mac: [u8; 6]) -> libc::sockaddr_ll {
    let mut address: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    address.sll_family = libc::AF_PACKET as u16;
    address.sll_protocol = protocol.to_be();
    address.sll_ifindex = ifindex as i32;
    address.sll_halen = 6;
    address.sll_addr[..6].copy_from_slice(&mac);
    address
}

/// Binds packet socket `fd` to interface `ifindex`, receiving `protocol`.
pub fn bind(fd: RawFd, ifindex: u32, protocol: u16) -> io::Result<()> {
    let address = link_address(ifindex, protocol, [0; 6]);
    let result = unsafe {
        libc::bind(
            fd,
            &address as *const libc::sockaddr_ll as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    if result < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The next frame that came in on packet socket `fd` (its length in
/// `buffer`, and where it came from); frames the host sent are passed
/// over. None: nothing waiting (the socket does not block).
pub fn receive(fd: RawFd, buffer: &mut [u8]) -> io::Result<Option<(usize, libc::sockaddr_ll)>> {
    loop {
        let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut length = std::mem::size_of::<libc::sockaddr_ll>() as u32;
        let got = unsafe {
            libc::recvfrom(
                fd,
                buffer.as_mut_ptr().cast(),
                buffer.len(),
                0,
                &mut from as *mut libc::sockaddr_ll as *mut libc::sockaddr,
                &mut length,
            )
        };
        if got < 0 {
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::WouldBlock => return Ok(None),
                io::ErrorKind::Interrupted => continue,
                _ => return Err(e),
            }
        }
        if from.sll_pkttype != libc::PACKET_OUTGOING {
            return Ok(Some((got as usize, from)));
        }
    }
}

/// Waits until `fd` is ready for `events` (POLLIN, POLLOUT); false once
/// `until` has passed.
pub fn wait(fd: RawFd, events: i16, until: Instant) -> io::Result<bool> {
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        let mut poll = libc::pollfd { fd, events, revents: 0 };
        let millis = left.as_millis().clamp(1, i32::MAX as u128) as i32;
        match unsafe { libc::poll(&mut poll, 1, millis) } {
            n if n > 0 => return Ok(true),
            0 => continue,
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
}
