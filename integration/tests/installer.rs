//! install/install.sh on this machine: a fresh install (with its demo, a
//! busybox container through netrt and runc), a second install that
//! changes nothing, and an uninstall that leaves what was there before.
//! Prefix, hooks.d directory and daemon.json are the test's own.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use netrt_integration::*;
use serde_json::Value;

const ADMIN_DAEMON_JSON: &str = "{\"log-level\": \"warn\", \"data-root\": \"/var/lib/docker\"}\n";

struct Paths {
    root: PathBuf,
    prefix: PathBuf,
    hooks_dir: PathBuf,
    docker_config: PathBuf,
}

fn install(paths: &Paths, extra: &[&str]) -> String {
    let output =
        without_test_env(&mut Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("../install/install.sh")))
            .arg("--prefix")
            .arg(&paths.prefix)
            .arg("--hooks-dir")
            .arg(&paths.hooks_dir)
            .arg("--docker-config")
            .arg(&paths.docker_config)
            .arg("--systemd-dir")
            .arg(paths.root.join("etc/systemd/system"))
            .env("NETRT_CONFIG", paths.root.join("etc/netrt/netrt.json"))
            .args(extra)
            .output()
            .expect("install.sh runs");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "install.sh {extra:?} failed:\n{text}");
    text
}

/// Every file under the test's directories with its mode and content.
fn fingerprint(root: &Path) -> Vec<(String, u32, Vec<u8>)> {
    let mut out = vec![];
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                stack.push(path.clone());
            }
            let content = if meta.is_file() { fs::read(&path).unwrap() } else { vec![] };
            out.push((path.display().to_string(), meta.permissions().mode(), content));
        }
    }
    out.sort();
    out
}

#[test]
fn install_twice_then_uninstall() {
    let root = std::env::temp_dir().join("netrt-it-install");
    let _ = fs::remove_dir_all(&root);
    fs::create_dir_all(root.join("etc/docker")).unwrap();
    let paths = Paths {
        prefix: root.join("usr/local"),
        hooks_dir: root.join("usr/share/containers/oci/hooks.d"),
        docker_config: root.join("etc/docker/daemon.json"),
        root: root.clone(),
    };
    fs::write(&paths.docker_config, ADMIN_DAEMON_JSON).unwrap();
    let before = fingerprint(&paths.root);

    let output = install(&paths, &[]);
    for file in ["bin/netrt", "bin/netrt-hook", "share/man/man8/netrt.8", "share/man/man8/netrt-hook.8"] {
        assert!(paths.prefix.join(file).exists(), "{file} installed:\n{output}");
    }
    // The timer that renews DHCP leases, and its service on the installed hook.
    let units = paths.root.join("etc/systemd/system");
    let service = fs::read_to_string(units.join("netrt-renew.service")).unwrap();
    assert!(
        service.contains(&format!("ExecStart={} renew\n", paths.prefix.join("bin/netrt-hook").display())),
        "{service}"
    );
    let timer = fs::read_to_string(units.join("netrt-renew.timer")).unwrap();
    assert!(timer.contains("OnUnitActiveSec=30s"), "{timer}");
    if Path::new("/run/systemd/system").exists() {
        assert!(output.contains("enabled netrt-renew.timer"), "{output}");
    } else {
        assert!(output.contains("systemd is not running: enable netrt-renew.timer once it does"), "{output}");
    }
    let hooks: Value = serde_json::from_slice(&fs::read(paths.hooks_dir.join("netrt.json")).unwrap()).unwrap();
    assert_eq!(hooks["version"], "1.0.0");
    assert_eq!(hooks["hook"]["path"], paths.prefix.join("bin/netrt-hook").display().to_string());
    assert_eq!(hooks["stages"], serde_json::json!(["createRuntime", "poststop"]));
    let daemon: Value = serde_json::from_slice(&fs::read(&paths.docker_config).unwrap()).unwrap();
    assert_eq!(daemon["log-level"], "warn");
    assert_eq!(daemon["data-root"], "/var/lib/docker");
    assert_eq!(daemon["runtimes"]["netrt"]["path"], paths.prefix.join("bin/netrt").display().to_string());
    assert_eq!(fs::read_to_string(paths.docker_config.with_extension("json.netrt-backup")).unwrap(), ADMIN_DAEMON_JSON);
    // Docker before 24 passes settings only as variables: the installer
    // turns them on, saying so with the risk and how to turn them off.
    let netrt_json = paths.root.join("etc/netrt/netrt.json");
    let major: u32 =
        sh("dockerd --version").split_whitespace().nth(2).unwrap().split('.').next().unwrap().parse().unwrap();
    if major < 24 {
        let config: Value = serde_json::from_slice(&fs::read(&netrt_json).unwrap()).unwrap();
        assert_eq!(config, serde_json::json!({"trust": {"env": true}}));
        let said = output.lines().find(|l| l.contains("older than 24")).expect(&output);
        assert!(
            said.contains("an image's ENV sets them too") && said.contains("netrt configure docker --remove --env")
        );
    } else {
        assert!(!netrt_json.exists(), "Docker {major} passes annotations: variables stay off");
    }
    let man = sh_output(&format!("MANPATH={} man -w netrt-hook", paths.prefix.join("share/man").display()));
    require(Path::new("/usr/bin/man").exists(), "man is not installed (Debian's man-db; integration/run installs it)");
    assert!(String::from_utf8_lossy(&man.stdout).contains("netrt-hook.8"), "man finds the page");

    // The demo's report: the container's address and the measured rate.
    let address = output.lines().find(|l| l.starts_with("netrt demo: container netrt-demo: eth0")).expect(&output);
    assert!(address.contains(".10/24"), "{address}");
    let measured = output.lines().find(|l| l.contains("measured at the receiver:")).expect(&output);
    let mbit: f64 = measured.split("receiver: ").nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap();
    // Shaped, and to the limit asked (a unit mistaken, bits for bytes, is 8×
    // off): never above it, and not far below. How close it comes is the
    // benchmark's figure; the demo's one 3-second run on a loaded machine
    // has read 74 %.
    assert!((5.0..=10.2).contains(&mbit), "{measured}");
    assert!(output.contains("netrt records left for it: 0"), "{output}");

    let installed = fingerprint(&paths.root);
    let again = install(&paths, &["--no-demo"]);
    assert!(again.contains("nothing changed"), "{again}");
    assert_eq!(fingerprint(&paths.root), installed, "a second install changes nothing");

    let removed = install(&paths, &["--uninstall"]);
    assert_eq!(fs::read_to_string(&paths.docker_config).unwrap(), ADMIN_DAEMON_JSON, "{removed}");
    assert_eq!(fingerprint(&paths.root), before, "uninstall leaves what was there before:\n{removed}");
    fs::remove_dir_all(&root).unwrap();
}
