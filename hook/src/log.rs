//! Setup and teardown go to syslog (ident `netrt-hook`) when the host has a
//! syslog socket; a missing or broken syslog never fails the hook.

use std::path::Path;

use syslog::{Facility, Formatter3164};

fn send(error: bool, message: &str) {
    if !Path::new("/dev/log").exists() {
        return;
    }
    let formatter = Formatter3164 {
        facility: Facility::LOG_DAEMON,
        hostname: None,
        process: "netrt-hook".into(),
        pid: std::process::id(),
    };
    if let Ok(mut logger) = syslog::unix(formatter) {
        let _ = if error { logger.err(message) } else { logger.info(message) };
    }
}

pub fn info(message: &str) {
    send(false, message);
}

pub fn error(message: &str) {
    send(true, message);
}
