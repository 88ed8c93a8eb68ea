//! Setup and teardown reach syslog. The test listens on /dev/log itself, so
//! it needs a machine without a syslog daemon (as CI's is); with one, the
//! daemon owns the socket and the test says it is skipped.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::Duration;

use netrt_integration::*;

#[test]
fn setup_and_teardown_are_logged_to_syslog() {
    if Path::new("/dev/log").exists() {
        eprintln!("SKIPPED setup_and_teardown_are_logged_to_syslog: /dev/log belongs to this host's syslog daemon");
        return;
    }
    let socket = UnixDatagram::bind("/dev/log").unwrap();
    let _remove = RemoveOnDrop("/dev/log");
    socket.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let lab = Lab::bridged("log");
    let annotations = [("net.egress", "5mbit")];
    let (container, _bundle) = lab.start("nrt-log", &annotations);
    container.stop();
    let mut messages = vec![];
    let mut buffer = [0u8; 4096];
    while let Ok(n) = socket.recv(&mut buffer) {
        messages.push(String::from_utf8_lossy(&buffer[..n]).into_owned());
    }
    let setup = messages.iter().find(|m| m.contains("set up nrt-log")).unwrap_or_else(|| panic!("{messages:?}"));
    assert!(setup.starts_with("<30>") && setup.contains("netrt-hook["), "daemon.info, ident netrt-hook: {setup}");
    assert!(setup.contains("egress: rate 5mbit"), "{setup}");
    assert!(messages.iter().any(|m| m.contains("tore down nrt-log")), "{messages:?}");
}

/// Removes the listening socket even when an assertion fails, so that a
/// failed run leaves no dead /dev/log behind.
struct RemoveOnDrop(&'static str);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.0);
    }
}
