//! `netrt-hook check` as a user runs it: without privileges (as nobody),
//! valid settings print the plan and exit 0, a refusal exits 1 naming key,
//! value and reason, the admin's policy file applies, and nothing on the
//! host changes.

use std::process::Output;

use netrt_integration::*;

/// Runs `netrt-hook check` as nobody, with no capabilities, and `env`: a
/// copy of the hook where nobody may run it (the build's may be in a
/// directory only root can enter).
fn check(env: &str, settings: &str) -> Output {
    let dir = std::env::temp_dir().join("netrt-it-check-bin");
    std::fs::create_dir_all(&dir).unwrap();
    let hook = dir.join("netrt-hook");
    // Copied each time: a copy of an earlier build would be tested instead.
    std::fs::copy(hook_binary(), &hook).unwrap();
    sh(&format!("chmod 755 {} {}", dir.display(), hook.display()));
    let hook = hook.display();
    sh_output(&format!(
        "env {env} setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all {hook} check {settings}"
    ))
}

fn text(output: &Output) -> (i32, String, String) {
    let code = output.status.code().expect("check exits, it is not killed");
    (code, String::from_utf8_lossy(&output.stdout).into_owned(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn check_prints_the_plan_or_the_refusal_without_privileges_and_changes_nothing() {
    let before = snapshot(&[]);
    let none = "NETRT_CONFIG=/nonexistent/netrt.json";

    // NETRT_* variables: refused while trust.env is off (the default),
    // settings like annotations once it is on.
    let (code, out, err) = text(&check(none, "net.egress=10mbit NETRT_INGRESS=5M"));
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("NETRT_INGRESS=\"5M\": netrt reads a container's NETRT_* variables only when trust.env is true"),
        "{err}"
    );
    let dir = std::env::temp_dir().join("netrt-it-check");
    std::fs::create_dir_all(&dir).unwrap();
    sh(&format!("chmod 755 {}", dir.display()));
    let env_on = dir.join("env.json");
    std::fs::write(&env_on, r#"{"trust": {"env": true}}"#).unwrap();
    sh(&format!("chmod 644 {}", env_on.display()));
    let env_on = format!("NETRT_CONFIG={}", env_on.display());
    let (code, out, err) = text(&check(&env_on, "net.egress=10mbit NETRT_INGRESS=5M"));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("egress: rate 10mbit (10000000 bit/s)"), "{out}");
    assert!(out.contains("ingress: rate 5mbit (5000000 bit/s)"), "NETRT_ variables are settings too: {out}");
    assert!(out.contains("its NETRT_* variables are read (trust.env true)"), "{out}");

    let (code, out, err) = text(&check(none, "net.bridge=br0 net.ip=198.51.100.10/24 net.gateway=198.51.100.1"));
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("br0") && out.contains("198.51.100.10/24") && out.contains("198.51.100.1"),
        "the attachment: {out}"
    );

    for (settings, refusal) in [
        ("net.egress=10parsecs", "net.egress=\"10parsecs\": unknown rate unit"),
        ("net.Egress=1mbit", "net.Egress=\"1mbit\": unknown key; did you mean net.egress?"),
        ("net.ip=198.51.100.10/24", "net.ip=\"198.51.100.10/24\": needs net.bridge or net.parent"),
        ("net.egress.min=10mbit", "net.egress.min=\"10mbit\": needs net.bridge or net.parent"),
        ("io.example.other=1", "\"io.example.other\" is not a net.* key or a NETRT_* variable"),
    ] {
        let (code, out, err) = text(&check(none, settings));
        assert_eq!(code, 1, "{settings} is refused: {out}{err}");
        assert!(err.contains(refusal), "{settings}: {err}");
        assert!(out.is_empty(), "a refusal prints no plan: {out}");
    }
    // Which trust rule applies comes first; --pod checks as a pod.
    let (code, out, err) = text(&check(none, "net.egress=10mbit"));
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.starts_with("trust: a local container may ask for every key, within the policy (trust.local \"raw\""),
        "{out}"
    );
    let (code, out, err) = text(&check(none, "--pod tenant net.egress=10mbit"));
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.starts_with("trust: a pod of namespace tenant may ask for limits, and attachments only through a network"),
        "{out}"
    );
    assert!(out.contains("egress: rate 10mbit"), "{out}");
    let (code, out, err) = text(&check(none, "--pod tenant net.bridge=br0 net.ip=198.51.100.1/24"));
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("net.bridge=\"br0\": a pod of namespace tenant may only use networks the admin defined"),
        "{err}"
    );
    let (code, _, err) = text(&check(none, "--pod tenant NETRT_EGRESS=1mbit"));
    assert_eq!(code, 1);
    assert!(err.contains("a pod's NETRT_* variables never count"), "{err}");

    // The admin's bounds apply to check as to setup.
    let policy = dir.join("netrt.json");
    std::fs::write(&policy, r#"{"policy": {"max_rate": "50mbit"}}"#).unwrap();
    sh(&format!("chmod 644 {}", policy.display()));
    let with_policy = format!("NETRT_CONFIG={}", policy.display());
    let (code, out, err) = text(&check(&with_policy, "net.egress=40mbit"));
    assert_eq!(code, 0, "{out}{err}");
    let (code, _, err) = text(&check(&with_policy, "net.egress=60mbit"));
    assert_eq!(code, 1);
    assert!(
        err.contains("net.egress=\"60mbit\"") && err.contains("not allowed by the host's policy (policy.max_rate"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);

    assert_same_host!(snapshot(&[]), before, "check changes nothing");
}
