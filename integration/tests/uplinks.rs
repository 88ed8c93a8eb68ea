//! Guarantees on a declared uplink, with real runc and real
//! traffic: a bridge whose uplink is a veth to a LAN namespace (the
//! receiver), declared at 100mbit.
//!
//! How rates are counted: iperf3 reports TCP goodput at the receiver. The
//! shaper counts Ethernet frames (14 bytes of header, no preamble or FCS);
//! a full frame of 1514 bytes carries 1448 bytes of TCP payload (20 IP, 32
//! TCP with timestamps), so a class at rate R gives at most R × 1448/1514
//! (95.6 %) of goodput. "At least 95 % of a guarantee" is checked against
//! that ceiling: goodput ≥ 0.95 × R × 1448/1514.

use std::path::PathBuf;
use std::thread::sleep;
use std::time::Duration;

use netrt_integration::*;
use serde_json::Value;

const PAYLOAD_RATIO: f64 = 1448.0 / 1514.0;
const MBIT: f64 = 1_000_000.0;

struct Setup {
    lan: Lan,
    uplink: String,
    config: PathBuf,
}

impl Setup {
    fn new(tag: &str, uplinks: &str) -> Setup {
        let lan = Lan::bridge(tag);
        let uplink = format!("nrt{tag}l");
        let config = std::env::temp_dir().join(format!("netrt-it-uplinks-{tag}.json"));
        let setup = Setup { lan, uplink, config };
        setup.declare(uplinks);
        setup
    }

    /// Writes the configuration; `capacity` may carry an overcommit.
    fn declare(&self, uplink: &str) {
        std::fs::write(&self.config, format!(r#"{{"uplinks": {{"{}": {uplink}}}}}"#, self.uplink)).unwrap();
    }

    fn env(&self) -> String {
        format!("NETRT_CONFIG={}", self.config.display())
    }

    fn start(&self, id: &str, host: u8, extra: &[(&str, &str)]) -> Result<(Container, Bundle), String> {
        let bridge = self.lan.bridge.clone().unwrap();
        let ip = format!("198.51.100.{host}/24");
        let mut annotations = vec![("net.bridge", bridge.as_str()), ("net.ip", ip.as_str())];
        annotations.extend_from_slice(extra);
        let env = self.env();
        let hook_env = [env.as_str()];
        let bundle = Bundle::create(id, &BundleSpec { hook_env: &hook_env, ..BundleSpec::isolated(&annotations) });
        Container::start(id, &bundle).map(|c| (c, bundle)).map_err(|e| e.replace('\\', ""))
    }

    fn hook(&self, arguments: &str) -> std::process::Output {
        sh_output(&format!("env {} {} {arguments}", self.env(), hook_binary().display()))
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.config);
    }
}

/// One flow from each container at once (see `flows_at_once`).
fn contend(
    server_ns: &str,
    server_ip: &str,
    clients: &[&Container],
    toward_containers: bool,
    seconds: u32,
) -> Vec<f64> {
    let pids: Vec<u32> = clients.iter().map(|c| c.pid()).collect();
    flows_at_once(server_ns, server_ip, &pids, toward_containers, seconds)
}

/// Goodput as a share of what a class at `rate_mbit` can carry.
fn of_guarantee(goodput: f64, rate_mbit: f64) -> f64 {
    goodput / (rate_mbit * MBIT * PAYLOAD_RATIO)
}

fn qdiscs_of(device: &str) -> String {
    sh(&format!("tc qdisc show dev {device}"))
}

#[test]
fn guarantees_hold_under_contention_in_both_directions_and_idle_capacity_is_lent() {
    let setup = Setup::new("ug", r#"{"capacity": "100mbit"}"#);
    let before = snapshot(&[&setup.lan.peer_ns]);
    let uplink_qdiscs = qdiscs_of(&setup.uplink);
    let (a, _ba) = setup.start("nrt-up-a", 11, &[("net.egress.min", "60mbit"), ("net.ingress.min", "60mbit")]).unwrap();
    let (b, _bb) = setup.start("nrt-up-b", 12, &[("net.egress.min", "20mbit"), ("net.ingress.min", "20mbit")]).unwrap();
    let (c, _bc) = setup.start("nrt-up-c", 13, &[]).unwrap();
    let tree = sh(&format!("tc class show dev {}", setup.uplink));
    assert!(tree.contains("class htb 6e72:10") && tree.contains("class htb 6e72:11"), "{tree}");

    for toward_containers in [false, true] {
        let direction = if toward_containers { "ingress" } else { "egress" };
        let rates = contend(&setup.lan.peer_ns, LAN_PEER4, &[&a, &b, &c], toward_containers, 5);
        println!(
            "{direction}: A {:.1} Mbit/s ({:.1} % of 60mbit), B {:.1} ({:.1} % of 20mbit), C {:.1}, sum {:.1}",
            rates[0] / MBIT,
            100.0 * of_guarantee(rates[0], 60.0),
            rates[1] / MBIT,
            100.0 * of_guarantee(rates[1], 20.0),
            rates[2] / MBIT,
            rates.iter().sum::<f64>() / MBIT
        );
        assert!(of_guarantee(rates[0], 60.0) >= 0.95, "{direction}: A got {:.1} Mbit/s", rates[0] / MBIT);
        assert!(of_guarantee(rates[1], 20.0) >= 0.95, "{direction}: B got {:.1} Mbit/s", rates[1] / MBIT);
        assert!(
            rates.iter().sum::<f64>() <= 100.0 * MBIT * 1.02,
            "{direction}: the sum stays within the capacity: {rates:?}"
        );
        let alone = contend(&setup.lan.peer_ns, LAN_PEER4, &[&c], toward_containers, 4)[0];
        println!("{direction}: C alone {:.1} Mbit/s", alone / MBIT);
        assert!(
            of_guarantee(alone, 100.0) >= 0.90,
            "{direction}: C alone borrows the idle capacity: {:.1} Mbit/s",
            alone / MBIT
        );
    }

    // Traffic between containers on the bridge never crosses the uplink:
    // its shaper counts none of the bytes A sends B.
    let a_ns = a.name_netns("nrtupa");
    let b_ns = b.name_netns("nrtupb");
    let uplink_sent = || -> u64 {
        let stats: Value =
            serde_json::from_str(&sh(&format!("tc -s -j qdisc show dev {} root", setup.uplink))).unwrap();
        stats[0]["bytes"].as_u64().expect("the uplink's root qdisc counts bytes")
    };
    let sent_before = uplink_sent();
    let between = iperf(&a_ns.0, &b_ns.0, "198.51.100.11", false, false, 3).unwrap();
    let crossed = uplink_sent() - sent_before;
    let moved = between.iter().sum::<f64>() / 8.0;
    println!(
        "A to B on the bridge: {:.0} Mbit/s; the uplink's shaper counted {crossed} bytes meanwhile",
        median(&between) / MBIT
    );
    assert!((crossed as f64) < moved / 100.0, "A sent B {moved:.0} bytes, and the uplink's shaper counted {crossed}");
    drop((a_ns, b_ns));

    // Status while A sends alone: its live rate is what the receiver gets
    // (the estimator needs a few seconds, so status is read throughout).
    let (received, seen) = std::thread::scope(|scope| {
        let sending = scope.spawn(|| contend(&setup.lan.peer_ns, LAN_PEER4, &[&a], false, 5));
        let mut seen: Vec<Value> = vec![];
        while !sending.is_finished() {
            seen.push(serde_json::from_slice(&setup.hook("status --uplinks --json").stdout).unwrap());
            sleep(Duration::from_millis(250));
        }
        (sending.join().unwrap()[0], seen)
    });
    let rate_of =
        |status: &Value| status["uplinks"][0]["egress"]["containers"][0]["rate_bps"].as_u64().unwrap_or(0) as f64;
    let status =
        seen.iter().max_by(|x, y| rate_of(x).total_cmp(&rate_of(y))).expect("status was read while A sent").clone();
    let egress = &status["uplinks"][0]["egress"];
    assert_eq!(status["uplinks"][0]["name"], setup.uplink.as_str(), "{status}");
    assert_eq!(egress["capacity_bps"], 100_000_000u64, "{status}");
    assert_eq!(egress["guaranteed_bps"], 80_000_000u64, "{status}");
    assert_eq!(egress["containers"].as_array().unwrap().len(), 2, "{status}");
    // The estimator counts frames, the receiver goodput (see the top).
    let shown = rate_of(&status) * PAYLOAD_RATIO;
    assert!(
        (0.7..=1.3).contains(&(shown / received)),
        "status shows {shown:.0} bit/s of goodput, the receiver got {received:.0}: {status}"
    );
    let one: Value = serde_json::from_slice(&setup.hook("status nrt-up-a --json").stdout).unwrap();
    assert_eq!(one[0]["uplink"]["egress"]["min_bps"], 60_000_000u64, "{one}");
    assert_eq!(one[0]["uplink"]["uplink"], setup.uplink.as_str(), "{one}");

    a.stop();
    b.stop();
    c.stop();
    assert_eq!(qdiscs_of(&setup.uplink), uplink_qdiscs, "the uplink's qdiscs are as before");
    assert_same_host!(snapshot(&[&setup.lan.peer_ns]), before);
}

/// The reserve stays outside every guarantee: admission stops at capacity
/// less reserve, and under contention the traffic without a guarantee (the
/// default class, where the host's own goes) keeps at least the reserve.
#[test]
fn the_reserve_holds_for_traffic_without_a_guarantee() {
    let setup = Setup::new("ur", r#"{"capacity": "100mbit", "reserve": "20mbit"}"#);
    let before = snapshot(&[&setup.lan.peer_ns]);
    let whole = setup.start("nrt-upres-x", 31, &[("net.egress.min", "100mbit")]).err().expect("refused");
    assert!(
        whole.contains(&format!(
            "net.egress.min=\"100mbit\": uplink {} (capacity 100mbit, reserve 20mbit) has 0bit of 80mbit guaranteed egress already",
            setup.uplink
        )),
        "{whole}"
    );
    assert_same_host!(snapshot(&[&setup.lan.peer_ns]), before, "the refused container left nothing");
    let (a, _ba) = setup.start("nrt-upres-a", 32, &[("net.egress.min", "80mbit")]).expect("up to capacity − reserve");
    let (c, _bc) = setup.start("nrt-upres-c", 33, &[]).unwrap();
    let status: Value = serde_json::from_slice(&setup.hook("status --uplinks --json").stdout).unwrap();
    assert_eq!(status["uplinks"][0]["egress"]["reserve_bps"], 20_000_000, "{status}");
    assert_eq!(status["uplinks"][0]["egress"]["admissible_bps"], 80_000_000, "{status}");
    let rates = contend(&setup.lan.peer_ns, LAN_PEER4, &[&a, &c], false, 5);
    println!("A (80mbit guaranteed) {:.1} Mbit/s, C (no guarantee) {:.1} Mbit/s", rates[0] / MBIT, rates[1] / MBIT);
    assert!(of_guarantee(rates[0], 80.0) >= 0.95, "A got {:.1} Mbit/s", rates[0] / MBIT);
    assert!(of_guarantee(rates[1], 20.0) >= 0.95, "the default class kept its reserve: {:.1} Mbit/s", rates[1] / MBIT);
    a.stop();
    c.stop();
    assert_same_host!(snapshot(&[&setup.lan.peer_ns]), before);
}

#[test]
fn admission_refuses_what_exceeds_the_capacity_unless_overcommitted() {
    let setup = Setup::new("ua", r#"{"capacity": "100mbit"}"#);
    let before = snapshot(&[&setup.lan.peer_ns]);
    let (a, _ba) = setup.start("nrt-upadm-a", 21, &[("net.egress.min", "80mbit")]).unwrap();
    let running = snapshot(&[&setup.lan.peer_ns]);
    let refused = setup.start("nrt-upadm-b", 22, &[("net.egress.min", "30mbit")]).err().expect("refused");
    assert!(
        refused.contains(&format!(
            "net.egress.min=\"30mbit\": uplink {} (capacity 100mbit, reserve 5mbit) has 80mbit of 95mbit guaranteed egress already; 30mbit more would exceed it",
            setup.uplink
        )),
        "{refused}"
    );
    assert_same_host!(snapshot(&[&setup.lan.peer_ns]), running, "the refused container left nothing");
    assert!(!std::path::Path::new("/run/netrt/containers/nrt-upadm-b.json").exists());
    // The other direction is counted apart.
    let (c, _bc) = setup.start("nrt-upadm-c", 23, &[("net.ingress.min", "90mbit")]).unwrap();
    setup.declare(r#"{"capacity": "100mbit", "overcommit": 1.5}"#);
    let (b, _bb) = setup.start("nrt-upadm-b", 22, &[("net.egress.min", "30mbit")]).expect("overcommit 1.5 lets it in");
    let classes = sh(&format!("tc class show dev {}", setup.uplink));
    assert_eq!(classes.matches("class htb 6e72:").count(), 4, "root, default, A and B: {classes}");
    // A guarantee with no declared uplink on its path.
    setup.declare(r#"{"capacity": "100mbit"}"#);
    std::fs::write(&setup.config, r#"{"uplinks": {"eth9": {"capacity": "1gbit"}}}"#).unwrap();
    let undeclared = setup.start("nrt-upadm-d", 24, &[("net.egress.min", "1mbit")]).err().expect("refused");
    assert!(
        undeclared.contains("net.egress.min=\"1mbit\": no declared uplink on the attachment's way out"),
        "{undeclared}"
    );
    assert!(undeclared.contains("eth9"), "{undeclared}");
    a.stop();
    b.stop();
    c.stop();
    assert_same_host!(snapshot(&[&setup.lan.peer_ns]), before);
}

#[test]
fn a_foreign_root_qdisc_is_refused_and_left_alone() {
    let setup = Setup::new("uf", r#"{"capacity": "100mbit"}"#);
    sh(&format!("tc qdisc add dev {} root handle 5: tbf rate 500mbit burst 64k latency 20ms", setup.uplink));
    let before = snapshot(&[&setup.lan.peer_ns]);
    let refused = setup.start("nrt-upforeign", 31, &[("net.egress.min", "10mbit")]).err().expect("refused");
    assert!(
        refused.contains(&format!(
            "the root qdisc of {} is tbf 5:, set by someone else; netrt does not replace it",
            setup.uplink
        )),
        "{refused}"
    );
    assert_same_host!(snapshot(&[&setup.lan.peer_ns]), before, "the tbf is untouched, nothing is left");
    sh(&format!("tc qdisc del dev {} root", setup.uplink));
}

#[test]
fn a_guarantee_with_a_limit_keeps_both() {
    let setup = Setup::new("ul", r#"{"capacity": "100mbit"}"#);
    let (a, _ba) = setup.start("nrt-uplim-a", 41, &[("net.egress.min", "30mbit"), ("net.egress", "40mbit")]).unwrap();
    let (c, _bc) = setup.start("nrt-uplim-c", 43, &[]).unwrap();
    let alone = contend(&setup.lan.peer_ns, LAN_PEER4, &[&a], false, 4)[0];
    println!("A alone: {:.1} Mbit/s (limit 40mbit)", alone / MBIT);
    assert!(alone <= 40.0 * MBIT * 1.02, "the limit is a ceiling: {:.1}", alone / MBIT);
    assert!(alone >= 40.0 * MBIT * PAYLOAD_RATIO * 0.9, "A borrows up to its limit: {:.1}", alone / MBIT);
    let rates = contend(&setup.lan.peer_ns, LAN_PEER4, &[&a, &c], false, 5);
    println!("A {:.1} Mbit/s beside C {:.1}", rates[0] / MBIT, rates[1] / MBIT);
    assert!(of_guarantee(rates[0], 30.0) >= 0.95, "A keeps its floor: {:.1}", rates[0] / MBIT);
    assert!(rates[0] <= 40.0 * MBIT * 1.02, "and its ceiling: {:.1}", rates[0] / MBIT);
    a.stop();
    c.stop();
}

/// SIGKILL at every point of a setup with guarantees in both directions,
/// and at every change teardown makes to the uplink's shaper: poststop and
/// gc leave the host (the uplink's qdiscs included) as it was.
#[test]
fn a_hook_killed_anywhere_leaves_no_shaper_after_poststop_and_gc() {
    let setup = Setup::new("uk", r#"{"capacity": "100mbit"}"#);
    let bridge = setup.lan.bridge.clone().unwrap();
    let annotations = [
        ("net.bridge", bridge.as_str()),
        ("net.ip", "198.51.100.51/24"),
        ("net.egress.min", "10mbit"),
        ("net.ingress.min", "20mbit"),
        ("net.egress", "50mbit"),
    ];
    let id = "nrt-up-kill";
    let config = setup.env();
    let before = snapshot(&[&setup.lan.peer_ns]);
    let cleans_up = |bundle: &Bundle, point: &str| {
        let state =
            serde_json::json!({"ociVersion": "1.0.2", "id": id, "status": "stopped", "bundle": bundle.dir}).to_string();
        let poststop = sh_output(&format!("echo '{state}' | env {config} {} poststop", hook_binary().display()));
        assert!(
            poststop.status.success(),
            "poststop after a kill at {point}: {}",
            String::from_utf8_lossy(&poststop.stderr)
        );
        let gc = setup.hook("gc");
        assert!(gc.status.success(), "gc after a kill at {point}: {}", String::from_utf8_lossy(&gc.stderr));
        assert_same_host!(
            snapshot(&[&setup.lan.peer_ns]),
            before,
            "after a kill at {point}, poststop and gc leave nothing"
        );
    };
    // Setup's kills run without a poststop in the bundle (runc runs it
    // after a failed start too), so that what the kill left can be seen.
    let run = |kill: &str, poststop: bool| {
        let hook_env = [kill, config.as_str()];
        let mut spec = BundleSpec { hook_env: &hook_env, poststop, ..BundleSpec::isolated(&annotations) };
        spec.hook = fault_hook_binary();
        spec.command = "true";
        let bundle = Bundle::create(id, &spec);
        (Container::run_to_end(id, &bundle), bundle)
    };
    let mut setup_points = 0;
    for step in 0.. {
        let point = format!("setup:{step}");
        match run(&format!("NETRT_FAULT_KILL={point}"), false) {
            (Err(error), bundle) => {
                assert!(error.contains("signal: killed"), "the hook was killed at {point}: {error}");
                assert!(record_exists(id), "the hook killed at {point} left its record for the clean-up");
                cleans_up(&bundle, &point);
            }
            (Ok(_), bundle) => {
                cleans_up(&bundle, "no point (a clean run)");
                setup_points = step;
                break;
            }
        }
    }
    let mut teardown_points = 0;
    for change in 1.. {
        let point = format!("teardown-uplink:{change}");
        let (outcome, bundle) = run(&format!("NETRT_FAULT_KILL={point}"), true);
        outcome.unwrap_or_else(|e| panic!("setup before a kill at {point}: {e}"));
        if !std::path::Path::new(&format!("/run/netrt/containers/{id}.json")).exists() {
            cleans_up(&bundle, "no point (teardown finished)");
            break;
        }
        cleans_up(&bundle, &point);
        teardown_points = change;
    }
    println!("setup killed at {setup_points} points, teardown's shaper changes at {teardown_points}: all cleaned up");
    assert!(setup_points >= 12, "the shaper's steps are kill points too ({setup_points})");
    assert_eq!(teardown_points, 3, "the root htb, the ingress qdisc, the ifb");
}

/// A container whose poststop never ran: gc takes its class away, and
/// with it the shaper, once its namespace is gone.
#[test]
fn gc_removes_the_guarantee_of_a_container_whose_poststop_never_ran() {
    let setup = Setup::new("ug2", r#"{"capacity": "1gbit"}"#);
    let bridge = setup.lan.bridge.clone().unwrap();
    let before = snapshot(&[&setup.lan.peer_ns]);
    let annotations = [("net.bridge", bridge.as_str()), ("net.ip", "198.51.100.61/24"), ("net.egress.min", "300mbit")];
    let env = setup.env();
    let hook_env = [env.as_str()];
    let bundle = Bundle::create(
        "nrt-up-gc",
        &BundleSpec { hook_env: &hook_env, poststop: false, ..BundleSpec::isolated(&annotations) },
    );
    let container = Container::start("nrt-up-gc", &bundle).unwrap();
    let table = String::from_utf8_lossy(&setup.hook("status --uplinks").stdout).into_owned();
    assert!(table.contains("nrt-up-gc") && table.contains("300mbit/950mbit"), "{table}");
    container.stop();
    assert!(qdiscs_of(&setup.uplink).contains("htb 6e72:"), "without poststop the shaper stays until gc");
    let gc = String::from_utf8_lossy(&setup.hook("gc").stdout).into_owned();
    assert!(
        gc.contains("removed nrt-up-gc") && gc.contains(&format!("its guarantee on uplink {}", setup.uplink)),
        "{gc}"
    );
    assert_same_host!(snapshot(&[&setup.lan.peer_ns]), before);
}

/// On a macvlan the uplink is the parent: its frames leave with the
/// macvlan's MAC, and the guarantee holds there too.
#[test]
fn a_guarantee_holds_on_the_parent_of_a_macvlan() {
    let lan = Lan::parent("um");
    let parent = lan.parent.clone().unwrap();
    let config = std::env::temp_dir().join("netrt-it-uplinks-um.json");
    std::fs::write(&config, format!(r#"{{"uplinks": {{"{parent}": {{"capacity": "100mbit"}}}}}}"#)).unwrap();
    let env = format!("NETRT_CONFIG={}", config.display());
    let hook_env = [env.as_str()];
    let before = snapshot(&[&lan.peer_ns]);
    let start = |id: &str, ip: &str, extra: &[(&str, &str)]| {
        let mut annotations = vec![("net.parent", parent.as_str()), ("net.ip", ip)];
        annotations.extend_from_slice(extra);
        let bundle = Bundle::create(id, &BundleSpec { hook_env: &hook_env, ..BundleSpec::isolated(&annotations) });
        (Container::start(id, &bundle).unwrap(), bundle)
    };
    let (a, _ba) = start("nrt-upm-a", "198.51.100.71/24", &[("net.egress.min", "70mbit")]);
    let (c, _bc) = start("nrt-upm-c", "198.51.100.73/24", &[]);
    let rates = contend(&lan.peer_ns, LAN_PEER4, &[&a, &c], false, 5);
    println!(
        "macvlan: A {:.1} Mbit/s ({:.1} % of 70mbit), C {:.1}",
        rates[0] / MBIT,
        100.0 * of_guarantee(rates[0], 70.0),
        rates[1] / MBIT
    );
    assert!(of_guarantee(rates[0], 70.0) >= 0.95, "A got {:.1} Mbit/s", rates[0] / MBIT);
    a.stop();
    c.stop();
    std::fs::remove_file(&config).unwrap();
    assert_same_host!(snapshot(&[&lan.peer_ns]), before);
}

/// A setup that fails after any step is rolled back: the shaper is again
/// exactly what the other container's guarantee needs.
#[test]
fn a_setup_failing_at_any_step_leaves_the_shaper_as_the_others_need_it() {
    let setup = Setup::new("ur", r#"{"capacity": "100mbit"}"#);
    let (holder, _bh) =
        setup.start("nrt-up-rb-h", 81, &[("net.egress.min", "10mbit"), ("net.ingress.min", "10mbit")]).unwrap();
    let before = snapshot(&[&setup.lan.peer_ns]);
    // Sorted: the kernel lists classes in its hash's order, which a class
    // deleted and made again may change.
    let classes = |device: &str| {
        let mut lines: Vec<String> = sh(&format!("tc class show dev {device}")).lines().map(String::from).collect();
        lines.sort();
        lines
    };
    let tree_before = classes(&setup.uplink);
    let bridge = setup.lan.bridge.clone().unwrap();
    let annotations = [
        ("net.bridge", bridge.as_str()),
        ("net.ip", "198.51.100.82/24"),
        ("net.egress.min", "20mbit"),
        ("net.ingress.min", "30mbit"),
    ];
    let config = setup.env();
    let mut failed = 0;
    for step in 1.. {
        let fault = format!("NETRT_FAULT_AFTER_STEP={step}");
        let hook_env = [fault.as_str(), config.as_str()];
        let mut spec = BundleSpec { hook_env: &hook_env, ..BundleSpec::isolated(&annotations) };
        spec.hook = fault_hook_binary();
        spec.command = "true";
        let bundle = Bundle::create("nrt-up-rb", &spec);
        match Container::run_to_end("nrt-up-rb", &bundle) {
            Err(error) => {
                assert!(error.contains(&format!("injected fault after step {step}")), "step {step}: {error}");
                assert_same_host!(snapshot(&[&setup.lan.peer_ns]), before, "after a failure at step {step}");
                assert_eq!(classes(&setup.uplink), tree_before, "the holder's tree after a failure at step {step}");
                failed = step;
            }
            Ok(_) => break,
        }
    }
    println!("setup failed and was rolled back after each of {failed} steps");
    assert!(failed >= 8, "the shaper's changes are steps ({failed})");
    holder.stop();
}
