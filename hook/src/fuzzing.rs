//! The pure entry points the fuzz targets (`fuzz/`) drive, here so that the
//! test suite replays the kept corpus and every crash found with exactly
//! the same code. Each takes arbitrary bytes and must return, never panic,
//! whatever they hold; errors are the expected outcome for most inputs.

use crate::config::policy;
use crate::request::{oci, plan, settings, units};

/// Annotations and `NETRT_*` variables, one `KEY=VALUE` per line (a line
/// starting with `NETRT_` is an environment entry), through parsing and
/// validation to a plan, its token buckets and its description.
pub fn annotations(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut annotations = std::collections::BTreeMap::new();
    let mut env = vec![];
    for line in text.lines() {
        if line.starts_with(settings::ENV_PREFIX) {
            env.push(line.to_string());
        } else if let Some((key, value)) = line.split_once('=') {
            annotations.insert(key.to_string(), value.to_string());
        }
    }
    let collected = settings::collect(&annotations, &env);
    if let Ok(plan) = plan::build(&collected) {
        for shaper in plan.shapers() {
            let _ = shaper.describe();
            for frame in [68, 1514, 9014, 65549] {
                let _ = shaper.tbf(frame);
            }
        }
    }
    let words: Vec<String> = text.lines().map(str::to_string).collect();
    let _ = settings::from_words(&words);
    for line in text.lines() {
        let _ = units::parse_rate(line);
        let _ = units::parse_size(line);
        let _ = units::parse_duration_us(line);
    }
}

/// The OCI state a runtime writes on a hook's stdin.
pub fn state(data: &[u8]) {
    let _ = oci::read_state(data)
        .map(|container| (crate::state::record::check_id(&container.id), oci::stage(None, &container)));
}

/// A bundle's config.json: the annotations and environment netrt reads
/// from it, and the plan they make.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(config) = oci::parse_config("config.json", text) {
        let _ = config.netns_path();
        let collected = settings::collect(&config.annotations, config.env());
        let _ = plan::build(&collected);
    }
}

/// The configuration file /etc/netrt/netrt.json with its policy, checked
/// against a plan that asks for an attachment, addresses and limits.
pub fn policy(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(file) = crate::config::parse_file("netrt.json", text) else { return };
    let Ok(policy) = policy::Policy::from_file("netrt.json".into(), file.policy) else { return };
    let words: Vec<String> = [
        "net.bridge=br0",
        "net.vlan=150",
        "net.ip=198.51.100.10/24,2001:db8::10/64",
        "net.egress=10mbit",
        "net.ingress=2gbit",
    ]
    .map(String::from)
    .to_vec();
    let plan = plan::build(&settings::from_words(&words).expect("fixed words")).expect("a valid plan");
    let _ = policy.check(&plan);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_targets_take_good_and_bad_input() {
        for data in [
            &b""[..],
            b"net.egress=10mbit\nNETRT_INGRESS=1G",
            b"net.ip=198.51.100.10/24\nnet.bridge=br0",
            b"\xff\xfe=\x00",
        ] {
            annotations(data);
            state(data);
            config(data);
            policy(data);
        }
        state(br#"{"ociVersion":"1.0.2","id":"a","status":"creating","pid":1,"bundle":"/b"}"#);
        config(
            br#"{"ociVersion":"1.0.2","annotations":{"net.egress":"1mbit"},"process":{"env":["NETRT_INGRESS=1M"]}}"#,
        );
        policy(
            br#"{"policy":{"bridges":["br0"],"vlans":["100-199"],"subnets":["198.51.100.0/24"],"max_rate":"1gbit"}}"#,
        );
    }
}
