//! Setup and teardown reach syslog. The test listens on a socket of its
//! own and runs the container's runtime (whose hooks log) in a private
//! mount namespace where that socket is bind-mounted over /dev/log, so it
//! runs the same with or without a syslog daemon on the host, and the
//! daemon, if any, sees nothing of it.

use std::fs;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::Duration;

use netrt_integration::*;

#[test]
fn setup_and_teardown_are_logged_to_syslog() {
    let dir = std::env::temp_dir().join("netrt-it-syslog");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let socket_path = dir.join("log");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    // A mount point must exist: where the host has no /dev/log, an empty
    // file stands in for the moment (removed on drop).
    let _placeholder = (!Path::new("/dev/log").exists()).then(|| {
        fs::write("/dev/log", "").unwrap();
        RemoveOnDrop("/dev/log")
    });
    let enter = dir.join("enter");
    fs::write(&enter, format!("mount --bind {} /dev/log && exec \"$@\"\n", socket_path.display())).unwrap();
    let enter = format!("unshare --mount --propagation private sh {}", enter.display());

    let lab = Lab::bridged("log");
    let annotations = [("net.egress", "5mbit")];
    let netns = lab.netns_path();
    let bundle = Bundle::create("nrt-log", &BundleSpec::new(Some(&netns), &annotations));
    let container = Container::start_on(&enter, "nrt-log", &bundle).unwrap_or_else(|e| panic!("{e}"));
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
    let _ = fs::remove_dir_all(&dir);
}

/// Removes the stand-in /dev/log even when an assertion fails.
struct RemoveOnDrop(&'static str);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = fs::remove_file(self.0);
    }
}
