//! `netrt-hook status --format prometheus`: the text format node_exporter's
//! textfile collector reads, checked with `promtool check metrics` (Debian's
//! prometheus package) and with a parser of the format's rules, against a
//! container whose shaper has counted real traffic. Needs root.

use std::collections::HashSet;
use std::io::Write;
use std::process::{Command, Stdio};

use netrt_integration::*;

/// The exposition format's rules, as far as netrt's output uses them:
/// every family has HELP and TYPE before its samples, names and label
/// names are valid, label values are quoted, values are numbers, counters
/// end in `_total`, and no family appears twice.
fn check_exposition(text: &str) -> Result<(), String> {
    let valid_name = |name: &str| {
        !name.is_empty()
            && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    let (mut helped, mut typed, mut seen) = (HashSet::new(), std::collections::HashMap::new(), HashSet::new());
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap();
            if !helped.insert(name.to_string()) || seen.contains(name) {
                return Err(format!("HELP of {name} twice, or after its samples: {line}"));
            }
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').ok_or(format!("bad TYPE: {line}"))?;
            if !["counter", "gauge"].contains(&kind) || (kind == "counter") != name.ends_with("_total") {
                return Err(format!("type {kind} does not fit {name}"));
            }
            typed.insert(name.to_string(), kind.to_string());
        } else {
            let (series, value) = line.rsplit_once(' ').ok_or(format!("no value: {line}"))?;
            value.parse::<f64>().map_err(|_| format!("not a number: {line}"))?;
            let name = series.split('{').next().unwrap();
            if !valid_name(name) || !helped.contains(name) || !typed.contains_key(name) {
                return Err(format!("sample without a valid, described family: {line}"));
            }
            seen.insert(name.to_string());
            if let Some(labels) = series.strip_prefix(name).filter(|l| !l.is_empty()) {
                let inner =
                    labels.strip_prefix('{').and_then(|l| l.strip_suffix('}')).ok_or(format!("bad labels: {line}"))?;
                for pair in inner.split("\",") {
                    let (label, quoted) = pair.split_once('=').ok_or(format!("bad label: {line}"))?;
                    if !valid_name(label) || !quoted.starts_with('"') {
                        return Err(format!("bad label {label}: {line}"));
                    }
                }
            }
        }
    }
    Ok(())
}

/// `promtool check metrics` passes `text` with nothing to say.
fn promtool_check(text: &str) {
    let promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    require(promtool.is_ok(), "promtool is not installed (Debian's prometheus package; integration/run installs it)");
    let mut promtool = promtool.unwrap();
    promtool.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let output = promtool.wait_with_output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success() && said.trim().is_empty(), "promtool check metrics: {said}\n{text}");
}

#[test]
fn the_prometheus_output_counts_real_traffic_and_is_valid() {
    let lab = Lab::bridged("prom");
    let id = "nrt-prom";
    let annotations = [("net.egress", "8mbit"), ("net.ingress", "12mbit")];
    let (container, _bundle) = lab.start(id, &annotations);
    lab.iperf(false, false, 2);
    let hook = hook_binary().display().to_string();
    let text = sh(&format!("{hook} status --format prometheus"));
    check_exposition(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let series = |name: &str, direction: &str| -> f64 {
        let prefix = format!("{name}{{container=\"{id}\",direction=\"{direction}\",");
        let line = text.lines().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| panic!("no {prefix} in\n{text}"));
        line.rsplit_once(' ').unwrap().1.parse().unwrap()
    };
    assert_eq!(series("netrt_limit_bytes_per_second", "egress"), 1e6, "8mbit");
    assert_eq!(series("netrt_shaper_rate_bytes_per_second", "ingress"), 1.5e6, "12mbit");
    assert_eq!(series("netrt_shaper_present", "egress"), 1.0);
    assert!(
        series("netrt_sent_bytes_total", "egress") > 500_000.0,
        "the egress shaper counted iperf3's bytes:\n{text}"
    );

    promtool_check(&text);
    container.stop();
    let after = sh(&format!("{hook} status --format prometheus"));
    assert!(!after.contains(id), "a stopped container is gone from the metrics:\n{after}");
}

#[test]
fn the_parser_check_catches_what_promtool_would() {
    assert!(check_exposition("# HELP a x\n# TYPE a gauge\na 1\n").is_ok());
    assert!(check_exposition("a 1\n").is_err(), "no HELP/TYPE");
    assert!(check_exposition("# HELP a x\n# TYPE a counter\na 1\n").is_err(), "a counter without _total");
    assert!(check_exposition("# HELP a x\n# TYPE a gauge\na{b=c} 1\n").is_err(), "unquoted label value");
    assert!(check_exposition("# HELP a x\n# TYPE a gauge\na one\n").is_err(), "not a number");
}

/// With a declared uplink and a guarantee on it, the output has the
/// uplink's capacity, reserve, what may be and what is guaranteed, and the
/// container's guarantee, and still passes promtool.
#[test]
fn the_prometheus_output_has_the_uplinks_and_their_guarantees() {
    let lan = Lan::bridge("prmu");
    let bridge = lan.bridge.clone().unwrap();
    let uplink = "nrtprmul";
    let config = std::env::temp_dir().join("netrt-it-metrics-uplinks.json");
    std::fs::write(
        &config,
        format!(r#"{{"uplinks": {{"{uplink}": {{"capacity": "100mbit", "reserve": "10mbit"}}}}}}"#),
    )
    .unwrap();
    let env = format!("NETRT_CONFIG={}", config.display());
    let hook_env = [env.as_str()];
    let annotations = [("net.bridge", bridge.as_str()), ("net.ip", "198.51.100.21/24"), ("net.egress.min", "20mbit")];
    let bundle =
        Bundle::create("nrt-prom-up", &BundleSpec { hook_env: &hook_env, ..BundleSpec::isolated(&annotations) });
    let container = Container::start("nrt-prom-up", &bundle).expect("starts with a guarantee");
    let text = sh(&format!("{env} {} status --format prometheus", hook_binary().display()));
    check_exposition(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    for line in [
        format!("netrt_uplink_capacity_bytes_per_second{{uplink=\"{uplink}\",direction=\"egress\"}} 12500000"),
        format!("netrt_uplink_reserve_bytes_per_second{{uplink=\"{uplink}\",direction=\"egress\"}} 1250000"),
        format!("netrt_uplink_admissible_bytes_per_second{{uplink=\"{uplink}\",direction=\"egress\"}} 11250000"),
        format!("netrt_uplink_guaranteed_bytes_per_second{{uplink=\"{uplink}\",direction=\"egress\"}} 2500000"),
        format!("netrt_uplink_guaranteed_bytes_per_second{{uplink=\"{uplink}\",direction=\"ingress\"}} 0"),
        format!("netrt_guarantee_bytes_per_second{{uplink=\"{uplink}\",direction=\"egress\",container=\"nrt-prom-up\"}} 2500000"),
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing in:\n{text}");
    }
    promtool_check(&text);
    container.stop();
    let _ = std::fs::remove_file(&config);
}
