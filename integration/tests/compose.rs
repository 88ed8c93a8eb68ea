//! Docker Compose (Debian's docker-compose 1.29) with a service on
//! `runtime: netrt` and its limits as NETRT_* variables (this Docker, 20.10,
//! takes no annotations): the limits hold at the receiver, and `down`
//! leaves nothing. The example file in docs/compose.md is this one. Needs
//! root.

use std::fs;

use netrt_integration::engines::{self, Docker, Installed, IMAGE};
use netrt_integration::*;

const PROJECT: &str = "netrtit";

#[test]
fn compose_up_holds_the_limits_and_down_leaves_nothing() {
    require(
        !sh_output("command -v docker-compose").stdout.is_empty(),
        "docker-compose is not installed (integration/run installs it)",
    );
    let _installed = Installed::new();
    let _docker = Docker::start();
    let dir = std::env::temp_dir().join("netrt-it-compose");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let file = dir.join("docker-compose.yml");
    fs::write(
        &file,
        format!(
            "version: \"2.4\"\n\
             services:\n\
             \x20 shaped:\n\
             \x20   image: {IMAGE}\n\
             \x20   runtime: netrt\n\
             \x20   command: sleep 600\n\
             \x20   environment:\n\
             \x20     NETRT_EGRESS: 8mbit\n\
             \x20     NETRT_INGRESS: 12mbit\n"
        ),
    )
    .unwrap();
    let compose = format!("docker-compose -p {PROJECT} -f {}", file.display());
    sh_quiet(&format!("{compose} down"));
    let before = engines::settled_snapshot();

    sh(&format!("{compose} up -d 2>&1"));
    let name = format!("{PROJECT}_shaped_1");
    let id = Docker::full_id(&name);
    assert!(engines::managed(&id), "netrt-hook status lists the service's container");
    engines::assert_limits_hold(Docker::pid(&name), 8.0, 12.0);

    sh(&format!("{compose} down 2>&1"));
    assert!(!record_exists(&id), "down removed netrt's record");
    assert!(!link_exists(None, &ifb_name(&id)), "and its ifb");
    engines::assert_back_to(&before);
    let _ = fs::remove_dir_all(&dir);
}
