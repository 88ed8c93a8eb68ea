//! Writes the bad-input corpus, `integration/corpus/bad-input.jsonl`: one
//! JSON object per line, each a set of annotations (and environment
//! entries, and a policy) that netrt must refuse, with the key the refusal
//! must name. Hand-written edge cases first, then generated ones: every
//! key with empty, blank, huge, negative, overflowing, wrong-unit,
//! wrong-family, non-ASCII, control-character and injection-shaped values.
//! `@BRIDGE@`, `@PARENT@` and `@NOTBRIDGE@` stand for the test's bridge,
//! its macvlan parent and an interface that is not a bridge.
//!
//!   cargo run -p netrt-integration --bin netrt-corpus > integration/corpus/bad-input.jsonl
//!
//! The corpus test checks that the file is what this program writes.

use serde_json::{json, Map, Value};

const VALID_IP: &str = "198.51.100.50/24";

/// Valid companions a key needs, so that the refusal is about the key.
/// Limits go on a bridge attachment: in the test's empty namespace a valid
/// limit alone would be refused for want of a default route, whatever the
/// value, and the case could not tell a good value from a bad one.
fn companions(key: &str) -> Vec<(&'static str, &'static str)> {
    match key {
        "net.egress" | "net.ingress" => vec![("net.bridge", "@BRIDGE@")],
        "net.egress.burst" | "net.egress.latency" => vec![("net.bridge", "@BRIDGE@"), ("net.egress", "1mbit")],
        "net.ingress.burst" | "net.ingress.latency" => vec![("net.bridge", "@BRIDGE@"), ("net.ingress", "1mbit")],
        "net.vlan" | "net.ifname" | "net.ip" | "net.mac" | "net.mtu" => vec![("net.bridge", "@BRIDGE@")],
        "net.macvlan.mode" => vec![("net.parent", "@PARENT@")],
        "net.gateway" | "net.routes" => vec![("net.bridge", "@BRIDGE@"), ("net.ip", VALID_IP)],
        _ => vec![],
    }
}

const KEYS: [&str; 16] = [
    "net.egress",
    "net.ingress",
    "net.egress.burst",
    "net.ingress.burst",
    "net.egress.latency",
    "net.ingress.latency",
    "net.bridge",
    "net.parent",
    "net.vlan",
    "net.macvlan.mode",
    "net.ifname",
    "net.ip",
    "net.gateway",
    "net.routes",
    "net.mac",
    "net.mtu",
];

/// Values refused for every key (names of bridges and parents by the host
/// check: no such interface).
fn universal_values() -> Vec<(&'static str, String)> {
    vec![
        ("empty", String::new()),
        ("blank", "   ".into()),
        ("huge", "9".repeat(5000)),
        ("overflowing", "99999999999999999999999999".into()),
        ("control character", "1\u{1}0".into()),
        ("NUL", "10\u{0}".into()),
        ("newline", "10\n20".into()),
        ("non-ASCII", "1é0".into()),
        ("right-to-left override", "10\u{202e}".into()),
        ("path traversal", "../../../etc/passwd".into()),
        ("shell injection", "10; rm -rf /".into()),
        ("quote injection", "10\" \"x".into()),
        ("JSON injection", "{\"a\":1}".into()),
    ]
}

/// Values that only some keys refuse; others are valid for that key
/// (`-1`, `$(reboot)` and `%n` are valid Linux interface names: netrt
/// never hands a value to a shell).
fn non_name_values() -> Vec<(&'static str, String)> {
    vec![
        ("negative", "-1".into()),
        ("command substitution", "$(reboot)".into()),
        ("backticks", "`id`".into()),
        ("format string", "%n%n%s".into()),
        ("wrong unit", "10parsecs".into()),
    ]
}

/// One case: name, annotations, environment, the key the refusal names,
/// and the policy in force.
type Case = (String, Vec<(String, String)>, Vec<String>, String, Option<Value>);

/// Hand-written cases.
fn hand_written() -> Vec<Case> {
    let mut cases = vec![];
    let mut add = |name: &str, annotations: &[(&str, &str)], env: &[&str], names: &str, policy: Option<Value>| {
        cases.push((
            name.to_string(),
            annotations.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            env.iter().map(|e| e.to_string()).collect(),
            names.to_string(),
            policy,
        ));
    };
    // Rates.
    for (name, value) in [
        ("bytes per second", "10mbps"),
        ("kibibytes per second", "10kibps"),
        ("milli, Kubernetes style", "10m"),
        ("exponent", "1e6"),
        ("below 8kbit", "7kbit"),
        ("above 100gbit", "101gbit"),
        ("zero", "0"),
        ("zero with unit", "0mbit"),
        ("negative with unit", "-10mbit"),
        ("two dots", "1.5.5mbit"),
        ("hexadecimal", "0x10mbit"),
        ("NaN", "nan"),
        ("infinity", "inf"),
        ("unit only", "mbit"),
        ("Kubernetes lower-case g", "1g"),
        ("full-width digits", "１０mbit"),
        ("overflowing with unit", "18446744073709551616tbit"),
    ] {
        add(
            &format!("net.egress {name}"),
            &[("net.bridge", "@BRIDGE@"), ("net.egress", value)],
            &[],
            "net.egress",
            None,
        );
    }
    // Sizes and durations.
    for (name, value) in
        [("below one frame", "100b"), ("4g and above", "4g"), ("negative", "-64k"), ("bad unit", "64kbps")]
    {
        add(
            &format!("net.ingress.burst {name}"),
            &[("net.bridge", "@BRIDGE@"), ("net.ingress", "10mbit"), ("net.ingress.burst", value)],
            &[],
            "net.ingress.burst",
            None,
        );
    }
    for (name, value) in
        [("no unit", "25"), ("below 100us", "50us"), ("above 10s", "11s"), ("hours", "1h"), ("negative", "-5ms")]
    {
        add(
            &format!("net.egress.latency {name}"),
            &[("net.bridge", "@BRIDGE@"), ("net.egress", "10mbit"), ("net.egress.latency", value)],
            &[],
            "net.egress.latency",
            None,
        );
    }
    add(
        "burst without its rate",
        &[("net.bridge", "@BRIDGE@"), ("net.egress.burst", "64k")],
        &[],
        "net.egress.burst",
        None,
    );
    add(
        "latency without its rate",
        &[("net.bridge", "@BRIDGE@"), ("net.ingress.latency", "5ms")],
        &[],
        "net.ingress.latency",
        None,
    );
    // Unknown keys.
    for key in [
        "net.egres",
        "net.Egress",
        "net.",
        "net.bridge.name",
        "net.ip6",
        "net.égress",
        "net.egress.rate",
        "net.vlan.id",
    ] {
        add(&format!("unknown key {key}"), &[("net.bridge", "@BRIDGE@"), (key, "1")], &[], key, None);
    }
    let bridged = [("net.bridge", "@BRIDGE@")];
    add("unknown variable", &bridged, &["NETRT_EGRES=10mbit"], "NETRT_EGRES", None);
    add("empty variable name", &bridged, &["NETRT_=10mbit"], "NETRT_", None);
    add("bad variable value", &bridged, &["NETRT_EGRESS=10parsecs"], "NETRT_EGRESS", None);
    add("variable for a missing bridge", &[], &["NETRT_BRIDGE=nrtnosuchbr"], "NETRT_BRIDGE", None);
    // Attachments: conflicts and missing companions.
    add("bridge and parent", &[("net.bridge", "@BRIDGE@"), ("net.parent", "@PARENT@")], &[], "net.parent", None);
    for key in
        ["net.ip", "net.gateway", "net.routes", "net.vlan", "net.ifname", "net.mac", "net.mtu", "net.macvlan.mode"]
    {
        let value = match key {
            "net.ip" => VALID_IP,
            "net.gateway" => "198.51.100.1",
            "net.routes" => "203.0.113.0/24 via 198.51.100.1",
            "net.vlan" => "50",
            "net.ifname" => "lan0",
            "net.mac" => "02:00:5e:10:00:01",
            "net.mtu" => "1400",
            _ => "private",
        };
        add(&format!("{key} without an attachment"), &[(key, value)], &[], key, None);
    }
    add(
        "macvlan mode on a bridge",
        &[("net.bridge", "@BRIDGE@"), ("net.macvlan.mode", "vepa")],
        &[],
        "net.macvlan.mode",
        None,
    );
    // Addresses, gateways, routes.
    let on_bridge = |key: &'static str, value: &'static str| [("net.bridge", "@BRIDGE@"), (key, value)];
    for (name, value) in [
        ("no prefix", "198.51.100.10"),
        ("prefix 33", "198.51.100.10/33"),
        ("network address", "198.51.100.0/24"),
        ("broadcast address", "198.51.100.255/24"),
        ("loopback", "127.0.0.2/8"),
        ("unspecified", "0.0.0.0/0"),
        ("multicast", "224.0.0.1/4"),
        ("IPv6 loopback", "::1/128"),
        ("IPv6 prefix 129", "2001:db8::10/129"),
        ("IPv6 multicast", "ff02::1/64"),
        ("twice", "198.51.100.10/24,198.51.100.10/24"),
        ("octet 999", "198.51.100.999/24"),
        ("empty list item", "198.51.100.10/24,,"),
        ("Arabic-Indic digits", "١٩٨.51.100.10/24"),
    ] {
        add(&format!("net.ip {name}"), &on_bridge("net.ip", value), &[], "net.ip", None);
    }
    let with_ip =
        |key: &'static str, value: &'static str| [("net.bridge", "@BRIDGE@"), ("net.ip", VALID_IP), (key, value)];
    for (name, value) in [
        ("own address", "198.51.100.50"),
        ("outside every network", "203.0.113.1"),
        ("wrong family", "2001:db8::1"),
        ("two of one family", "198.51.100.1,198.51.100.2"),
        ("with a prefix", "198.51.100.1/24"),
        ("a name", "router"),
    ] {
        add(&format!("net.gateway {name}"), &with_ip("net.gateway", value), &[], "net.gateway", None);
    }
    for (name, value) in [
        ("next hop outside", "203.0.113.0/24 via 192.0.2.77"),
        ("host bits", "203.0.113.1/24"),
        ("default route", "0.0.0.0/0 via 198.51.100.1"),
        ("via without next hop", "203.0.113.0/24 via"),
        ("own address as next hop", "203.0.113.0/24 via 198.51.100.50"),
        ("wrong family", "2001:db8:1::/64 via 198.51.100.1"),
        ("no destination", "via 198.51.100.1"),
        ("extra words", "203.0.113.0/24 via 198.51.100.1 metric 5"),
        ("semicolon separator", "203.0.113.0/24; 192.0.2.0/24"),
    ] {
        add(&format!("net.routes {name}"), &with_ip("net.routes", value), &[], "net.routes", None);
    }
    // MAC, MTU, names, VLAN, mode.
    for (name, value) in [
        ("multicast", "01:00:5e:00:00:01"),
        ("zero", "00:00:00:00:00:00"),
        ("broadcast", "ff:ff:ff:ff:ff:ff"),
        ("five octets", "02:42:ac:11:00"),
        ("seven octets", "02:42:ac:11:00:02:03"),
        ("not hex", "zz:42:ac:11:00:02"),
        ("full-width digit", "02:42:ac:11:00:０2"),
    ] {
        add(&format!("net.mac {name}"), &on_bridge("net.mac", value), &[], "net.mac", None);
    }
    for (name, value) in [("67", "67"), ("65536", "65536"), ("fraction", "1500.5"), ("word", "jumbo")] {
        add(&format!("net.mtu {name}"), &on_bridge("net.mtu", value), &[], "net.mtu", None);
    }
    add(
        "net.mtu below 1280 with IPv6",
        &[("net.bridge", "@BRIDGE@"), ("net.ip", "2001:db8:ff::50/64"), ("net.mtu", "1000")],
        &[],
        "net.mtu",
        None,
    );
    add("net.mtu above the macvlan parent's", &[("net.parent", "@PARENT@"), ("net.mtu", "9000")], &[], "net.mtu", None);
    for (name, value) in [
        ("16 bytes", "abcdefghijklmnop"),
        ("slash", "eth/0"),
        ("space", "eth 0"),
        ("colon", "eth:0"),
        ("dot", "."),
        ("dot dot", ".."),
        ("non-ASCII", "ëth0"),
    ] {
        add(&format!("net.ifname {name}"), &on_bridge("net.ifname", value), &[], "net.ifname", None);
    }
    for (name, value) in [("0", "0"), ("4095", "4095"), ("fraction", "1.5"), ("word", "fifty")] {
        add(&format!("net.vlan {name}"), &on_bridge("net.vlan", value), &[], "net.vlan", None);
    }
    add("net.vlan on a bridge without VLAN filtering", &on_bridge("net.vlan", "50"), &[], "net.vlan", None);
    for value in ["bridged", "passthrough", "vepa,private"] {
        add(
            &format!("net.macvlan.mode {value}"),
            &[("net.parent", "@PARENT@"), ("net.macvlan.mode", value)],
            &[],
            "net.macvlan.mode",
            None,
        );
    }
    // Host checks.
    add("missing bridge", &[("net.bridge", "nrtnosuchbr")], &[], "net.bridge", None);
    add("not a bridge", &[("net.bridge", "@NOTBRIDGE@")], &[], "net.bridge", None);
    add("missing parent", &[("net.parent", "nrtnosuchpa")], &[], "net.parent", None);
    add("the host's loopback as parent", &[("net.parent", "lo")], &[], "net.parent", None);
    // Policy.
    let policy = |rules: Value| Some(json!({ "policy": rules }));
    add(
        "policy: bridge not allowed",
        &[("net.bridge", "@BRIDGE@")],
        &[],
        "net.bridge",
        policy(json!({"bridges": ["nrtother"]})),
    );
    add("policy: no bridge allowed", &[("net.bridge", "@BRIDGE@")], &[], "net.bridge", policy(json!({"bridges": []})));
    add(
        "policy: parent not allowed",
        &[("net.parent", "@PARENT@")],
        &[],
        "net.parent",
        policy(json!({"parents": ["eth9"]})),
    );
    add(
        "policy: VLAN outside the ranges",
        &[("net.parent", "@PARENT@"), ("net.vlan", "250")],
        &[],
        "net.vlan",
        policy(json!({"vlans": ["100-199", "300"]})),
    );
    add(
        "policy: address outside the subnets",
        &[("net.bridge", "@BRIDGE@"), ("net.ip", "203.0.113.10/24")],
        &[],
        "net.ip",
        policy(json!({"subnets": ["198.51.100.0/24"]})),
    );
    add(
        "policy: prefix wider than the subnet",
        &[("net.bridge", "@BRIDGE@"), ("net.ip", "198.51.100.10/16")],
        &[],
        "net.ip",
        policy(json!({"subnets": ["198.51.100.0/24"]})),
    );
    let limited = policy(json!({"max_rate": "1gbit"}));
    add(
        "policy: rate above max_rate",
        &[("net.bridge", "@BRIDGE@"), ("net.egress", "2gbit")],
        &[],
        "net.egress",
        limited.clone(),
    );
    add(
        "policy: ingress above max_rate",
        &[("net.bridge", "@BRIDGE@"), ("net.ingress", "1001mbit")],
        &[],
        "net.ingress",
        limited,
    );
    cases
}

fn main() {
    let mut lines = vec![];
    let mut push = |name: String,
                    annotations: Vec<(String, String)>,
                    env: Vec<String>,
                    names: String,
                    policy: Option<Value>| {
        let mut case = Map::new();
        case.insert("case".into(), json!(name));
        case.insert("annotations".into(), Value::Object(annotations.into_iter().map(|(k, v)| (k, json!(v))).collect()));
        if !env.is_empty() {
            case.insert("env".into(), json!(env));
        }
        case.insert("names".into(), json!(names));
        if let Some(policy) = policy {
            case.insert("policy".into(), policy);
        }
        lines.push(Value::Object(case).to_string());
    };
    for (name, annotations, env, names, policy) in hand_written() {
        push(name, annotations, env, names, policy);
    }
    for key in KEYS {
        let names_ok = matches!(key, "net.ifname");
        let values = universal_values().into_iter().chain(if names_ok { vec![] } else { non_name_values() });
        for (what, value) in values {
            let mut annotations: Vec<(String, String)> =
                companions(key).into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            annotations.push((key.to_string(), value));
            push(format!("generated: {key} {what}"), annotations, vec![], key.to_string(), None);
        }
    }
    for line in lines {
        println!("{line}");
    }
}
