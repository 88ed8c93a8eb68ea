//! The bad-input corpus (integration/corpus/bad-input.jsonl, written by
//! the netrt-corpus program) through real runc: for every case the
//! container does not start, the error names the key, and the host
//! (links, addresses, routes, qdiscs and filters on every link, the
//! test's LAN namespaces, /run/netrt) is exactly as before.

use std::fs;
use std::process::Command;

use netrt_integration::*;
use serde_json::Value;

fn corpus_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/bad-input.jsonl")
}

#[test]
fn the_corpus_file_is_what_its_generator_writes() {
    let output = Command::new(env!("CARGO_BIN_EXE_netrt-corpus")).output().unwrap();
    assert!(output.status.success());
    let committed = fs::read(corpus_path()).unwrap();
    assert!(
        committed == output.stdout,
        "regenerate it: cargo run -p netrt-integration --bin netrt-corpus > integration/corpus/bad-input.jsonl"
    );
    let cases = committed.split(|&b| b == b'\n').filter(|l| !l.is_empty()).count();
    assert!(cases >= 200, "the corpus has {cases} cases");
}

#[test]
fn every_bad_input_is_refused_naming_its_key_and_changes_nothing() {
    let lan = Lan::bridge("cbad");
    let parent_lan = Lan::parent("cbadp");
    let bridge = lan.bridge.clone().unwrap();
    let parent = parent_lan.parent.clone().unwrap();
    let namespaces = [lan.peer_ns.as_str(), parent_lan.peer_ns.as_str()];
    let before = snapshot(&namespaces);
    let policy_file = std::env::temp_dir().join("netrt-it-corpus-policy.json");
    let place =
        |text: &str| text.replace("@BRIDGE@", &bridge).replace("@PARENT@", &parent).replace("@NOTBRIDGE@", &parent);

    // The control: the companions the cases use start a container here, so
    // a case is refused for its own value, not for the set-up around it.
    let cidr = "198.51.100.50/24";
    let control =
        [("net.bridge", bridge.as_str()), ("net.ip", cidr), ("net.egress", "1mbit"), ("net.ingress", "1mbit")];
    let bundle = Bundle::create("nrt-corpus", &BundleSpec { command: "true", ..BundleSpec::isolated(&control) });
    Container::run_to_end("nrt-corpus", &bundle).expect("valid companions start a container");
    let parent_control = [("net.parent", parent.as_str())];
    let bundle = Bundle::create("nrt-corpus", &BundleSpec { command: "true", ..BundleSpec::isolated(&parent_control) });
    Container::run_to_end("nrt-corpus", &bundle).expect("a macvlan on the parent starts");
    assert_same_host!(snapshot(&namespaces), before);

    let text = fs::read_to_string(corpus_path()).unwrap();
    let mut failures = vec![];
    let mut count = 0;
    for line in text.lines().filter(|l| !l.is_empty()) {
        count += 1;
        let case: Value = serde_json::from_str(line).unwrap();
        let name = case["case"].as_str().unwrap();
        let names = case["names"].as_str().unwrap();
        let annotations: Vec<(String, String)> = case["annotations"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), place(v.as_str().unwrap())))
            .collect();
        let annotations: Vec<(&str, &str)> = annotations.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let env: Vec<String> =
            case["env"].as_array().map_or(vec![], |a| a.iter().map(|e| place(e.as_str().unwrap())).collect());
        let env: Vec<&str> = env.iter().map(String::as_str).collect();
        let policy_env = format!("NETRT_CONFIG={}", policy_file.display());
        let hook_env = [policy_env.as_str()];
        let mut spec = BundleSpec::isolated(&annotations);
        spec.env = &env;
        spec.command = "true";
        // A case with variables runs where the admin turned them on
        // (trust.env), so that it is refused for its own value.
        let mut policy = case.get("policy").cloned();
        if !env.is_empty() {
            let file = policy.get_or_insert_with(|| serde_json::json!({}));
            file["trust"]["env"] = serde_json::json!(true);
        }
        if let Some(policy) = policy {
            fs::write(&policy_file, policy.to_string()).unwrap();
            spec.hook_env = &hook_env;
        }
        let bundle = Bundle::create("nrt-corpus", &spec);
        match Container::run_to_end("nrt-corpus", &bundle) {
            Ok(_) => failures.push(format!("{name}: the container started")),
            Err(error) if !error.contains(&format!("netrt: {names}=")) => {
                failures.push(format!("{name}: the error does not name {names}: {error}"))
            }
            Err(error) if !gives_a_reason(&error, names) => {
                failures.push(format!("{name}: the error gives no reason: {error}"))
            }
            Err(_) => {}
        }
        if snapshot(&namespaces) != before {
            failures.push(format!("{name}: the host changed"));
            break;
        }
    }
    let _ = fs::remove_file(&policy_file);
    println!("{count} bad inputs run through runc");
    assert!(failures.is_empty(), "{} of {count} cases failed:\n{}", failures.len(), failures.join("\n"));
}

/// Whether the refusal reads `netrt: KEY="VALUE": REASON`, a reason with
/// words in it (runc quotes the hook's message: its backslashes go first).
fn gives_a_reason(error: &str, key: &str) -> bool {
    let error = error.replace('\\', "");
    let Some(start) = error.find(&format!("netrt: {key}=\"")) else { return false };
    let rest = &error[start..];
    let Some(end) = rest.find("\": ") else { return false };
    let reason = &rest[end + 3..];
    reason.split_whitespace().filter(|word| word.chars().filter(|c| c.is_alphabetic()).count() >= 3).count() >= 2
}
