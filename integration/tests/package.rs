//! The Debian package: built by install/build-deb (cargo-deb), installed
//! with dpkg on this machine, its files where `dpkg -L` says, the man page
//! rendering, the completions loading, no engine registered by the install,
//! and nothing of it left after `dpkg -P`. Needs root.

use std::path::Path;
use std::process::Command;

use netrt_integration::*;

/// What an install could register netrt with, to compare before and after.
fn registrations() -> String {
    [
        "/etc/docker/daemon.json",
        "/etc/containerd/config.toml",
        "/etc/containers/oci/hooks.d/netrt.json",
        "/usr/share/containers/oci/hooks.d/netrt.json",
    ]
    .iter()
    .map(|path| format!("{path}: {:?}\n", std::fs::read(path).ok()))
    .collect()
}

#[test]
fn the_package_installs_registers_nothing_and_purges_clean() {
    require(
        !sh_output("dpkg -s netrt").status.success(),
        "a netrt package is installed on this machine already, and the test installs and purges its own (dpkg -P netrt first)",
    );
    let built = without_test_env(
        Command::new(format!("{}/install/build-deb", workspace_dir())).stdin(std::process::Stdio::null()),
    )
    .output()
    .expect("build-deb runs");
    assert!(built.status.success(), "build-deb: {}", String::from_utf8_lossy(&built.stderr));
    let version = env!("CARGO_PKG_VERSION");
    let deb = format!("{}/target/debian/netrt_{version}_amd64.deb", workspace_dir());
    assert!(Path::new(&deb).exists(), "{deb} built");
    let fields = sh(&format!("dpkg-deb -f {deb} Package Version Architecture Depends"));
    assert!(fields.contains("Version: 0.1.0\n") && fields.contains("Architecture: amd64"), "{fields}");

    let before = registrations();
    sh(&format!("dpkg -i {deb}"));
    let files: Vec<String> =
        sh("dpkg -L netrt").lines().map(str::to_string).filter(|p| Path::new(p).is_file()).collect();
    for expected in [
        "/usr/bin/netrt",
        "/usr/bin/netrt-hook",
        "/usr/share/netrt/hooks.d/netrt.json",
        "/usr/share/bash-completion/completions/netrt-hook",
        "/usr/share/zsh/vendor-completions/_netrt",
        "/usr/share/fish/vendor_completions.d/netrt-hook.fish",
        "/usr/share/doc/netrt/README.md",
        "/usr/lib/systemd/system/netrt-renew.timer",
        "/usr/lib/systemd/system/netrt-renew.service",
    ] {
        assert!(files.iter().any(|f| f == expected), "dpkg -L lists {expected}: {files:?}");
    }
    assert!(files.iter().any(|f| f.starts_with("/usr/share/man/man8/netrt-hook.8")), "{files:?}");
    assert!(sh("/usr/bin/netrt-hook --version").contains(version));
    let page = sh("MANWIDTH=80 man -P cat netrt-hook 2>&1");
    assert!(page.contains("netrt-hook") && page.contains("net.egress"), "man netrt-hook renders: {page}");
    let completion = sh("bash -c 'source /usr/share/bash-completion/completions/netrt-hook && complete -p netrt-hook'");
    assert!(completion.contains("netrt-hook"), "{completion}");
    let hooks: serde_json::Value = serde_json::from_str(&sh("cat /usr/share/netrt/hooks.d/netrt.json")).unwrap();
    assert_eq!(hooks["hook"]["path"], "/usr/bin/netrt-hook");
    assert_eq!(registrations(), before, "installing the package registers netrt with no engine");

    sh("dpkg -P netrt");
    assert!(!sh_output("dpkg -s netrt").status.success(), "purged");
    let left: Vec<&String> = files.iter().filter(|f| Path::new(f).exists()).collect();
    assert!(left.is_empty(), "dpkg -P leaves nothing of it: {left:?}");
    for dir in ["/usr/share/netrt", "/usr/share/doc/netrt"] {
        assert!(!Path::new(dir).exists(), "{dir} is gone too");
    }
    assert_eq!(registrations(), before);
}

fn workspace_dir() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().display().to_string()
}
