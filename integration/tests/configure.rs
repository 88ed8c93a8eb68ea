//! `netrt configure`: registers netrt with Docker, containerd and podman,
//! keeping every other setting; `--remove` gives the file back. With the
//! real binary, and containerd started with the result. Needs root for
//! containerd; the file round trips need nothing.

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Output};

use netrt_integration::engines::Containerd;
use netrt_integration::*;
use serde_json::Value;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("netrt-it-configure-{name}"));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn configure(arguments: &[&str]) -> Output {
    Command::new(wrapper_binary()).arg("configure").args(arguments).output().unwrap()
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

fn wrapper_path() -> String {
    wrapper_binary().canonicalize().unwrap().display().to_string()
}

#[test]
fn docker_daemon_json_round_trips_byte_for_byte() {
    let dir = scratch("docker");
    let config = dir.join("daemon.json");
    let cases = [
        ("other keys", "{\n  \"log-level\": \"warn\",\n  \"data-root\": \"/var/lib/docker\"\n}\n"),
        (
            "unusual order and layout",
            "{\"storage-driver\":\"overlay2\",   \"bip\" : \"172.30.0.1/16\",\n\"debug\":true}",
        ),
        (
            "a runtimes map already",
            "{\"runtimes\": {\"nvidia\": {\"path\": \"nvidia-container-runtime\", \"runtimeArgs\": []}}}\n",
        ),
        ("empty file", ""),
    ];
    for (what, original) in cases {
        fs::write(&config, original).unwrap();
        let added = configure(&["docker", "--config", config.to_str().unwrap()]);
        assert!(added.status.success(), "{what}: {}", text(&added));
        let daemon: Value = serde_json::from_slice(&fs::read(&config).unwrap()).unwrap();
        assert_eq!(daemon["runtimes"]["netrt"]["path"], wrapper_path(), "{what}");
        if let Ok(Value::Object(before)) = serde_json::from_str::<Value>(original) {
            for (key, value) in before.iter().filter(|(key, _)| *key != "runtimes") {
                assert_eq!(&daemon[key], value, "{what}: {key} kept");
            }
            let keys: Vec<&String> = daemon.as_object().unwrap().keys().filter(|k| before.contains_key(*k)).collect();
            assert_eq!(keys, before.keys().collect::<Vec<_>>(), "{what}: order kept");
        }
        let again = configure(&["docker", "--config", config.to_str().unwrap()]);
        assert!(text(&again).contains("unchanged"), "{what}: {}", text(&again));
        let removed = configure(&["docker", "--config", config.to_str().unwrap(), "--remove"]);
        assert!(removed.status.success(), "{what}: {}", text(&removed));
        assert_eq!(fs::read_to_string(&config).unwrap(), original, "{what}: byte for byte");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1, "{what}: no backup left");
    }

    // No file before: none after.
    fs::remove_file(&config).unwrap();
    assert!(configure(&["docker", "--config", config.to_str().unwrap()]).status.success());
    assert!(configure(&["docker", "--config", config.to_str().unwrap(), "--remove"]).status.success());
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 0, "neither the file nor a marker stays");

    // Invalid JSON: refused, untouched, nothing written beside it.
    fs::write(&config, "{\"debug\": true,,}").unwrap();
    let refused = configure(&["docker", "--config", config.to_str().unwrap()]);
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("not valid JSON") && text(&refused).contains("left as it was"),
        "{}",
        text(&refused)
    );
    assert_eq!(fs::read_to_string(&config).unwrap(), "{\"debug\": true,,}");
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);

    // --dry-run writes nothing.
    fs::write(&config, "{}").unwrap();
    let dry = configure(&["docker", "--config", config.to_str().unwrap(), "--dry-run"]);
    assert!(text(&dry).contains("\"netrt\"") && text(&dry).contains("nothing was written"), "{}", text(&dry));
    assert_eq!(fs::read_to_string(&config).unwrap(), "{}");
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn podman_hooks_file_is_written_and_removed() {
    let dir = scratch("podman");
    let file = dir.join("hooks.d/netrt.json");
    let made = configure(&["podman", "--config", file.to_str().unwrap()]);
    assert!(made.status.success(), "{}", text(&made));
    let hooks: Value = serde_json::from_slice(&fs::read(&file).unwrap()).unwrap();
    let hook = wrapper_binary().canonicalize().unwrap().with_file_name("netrt-hook");
    assert_eq!(hooks["hook"]["path"], hook.display().to_string(), "the netrt-hook beside netrt");
    assert_eq!(fs::read_dir(dir.join("hooks.d")).unwrap().count(), 1, "only the hooks file in hooks.d");
    assert!(configure(&["podman", "--config", file.to_str().unwrap(), "--remove"]).status.success());
    assert!(!file.exists(), "removed");
    assert_eq!(fs::read_dir(dir.join("hooks.d")).unwrap().count(), 0, "nothing beside it either");

    // A file someone changed is not netrt's to remove.
    assert!(configure(&["podman", "--config", file.to_str().unwrap()]).status.success());
    let changed = fs::read_to_string(&file).unwrap().replace("poststop", "prestart");
    fs::write(&file, &changed).unwrap();
    let kept = configure(&["podman", "--config", file.to_str().unwrap(), "--remove"]);
    assert!(text(&kept).contains("left as it was"), "{}", text(&kept));
    assert_eq!(fs::read_to_string(&file).unwrap(), changed);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn containerd_runs_with_the_handler_and_remove_restores_debians_default() {
    require(
        sh_output("command -v containerd && command -v ctr").status.success(),
        "containerd is not installed (it comes with docker.io)",
    );
    let dir = scratch("containerd");
    // Debian's default config, pointed at the test's own directories.
    let default = Containerd::default_config(&dir);
    let config = dir.join("config.toml");
    fs::write(&config, &default).unwrap();

    let added = configure(&["containerd", "--config", config.to_str().unwrap()]);
    assert!(added.status.success(), "{}", text(&added));
    let edited = fs::read_to_string(&config).unwrap();
    let kept_lines = default.lines().filter(|line| edited.lines().any(|l| l == *line)).count();
    assert_eq!(kept_lines, default.lines().count(), "every line of the default stays as it was");

    let containerd = Containerd::start(&config);
    let plugins = sh(&format!("{} plugins ls", containerd.ctr()));
    let cri = plugins.lines().find(|l| l.contains("io.containerd.grpc.v1") && l.contains(" cri ")).expect(&plugins);
    assert!(cri.trim_end().ends_with("ok"), "the CRI plugin loaded the config: {cri}");
    let dump = sh(&format!("containerd --config {} config dump", config.display()));
    // The handler as containerd reads it: its table, then its options.
    let handler = dump.split("[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.netrt]").nth(1).expect(&dump);
    let (table, options) =
        handler.split_once("[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.netrt.options]").expect(handler);
    assert!(table.contains("runtime_type = \"io.containerd.runc.v2\""), "{table}");
    assert!(table.contains("pod_annotations = [\"net.*\"]"), "{table}");
    let options = options.split("\n\n").next().unwrap();
    assert!(options.contains(&format!("BinaryName = \"{}\"", wrapper_path())), "{options}");
    drop(containerd);

    let removed = configure(&["containerd", "--config", config.to_str().unwrap(), "--remove"]);
    assert!(removed.status.success(), "{}", text(&removed));
    assert_eq!(fs::read_to_string(&config).unwrap(), default, "byte for byte");
    let left: Vec<String> =
        fs::read_dir(&dir).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    assert!(!left.iter().any(|name| name.contains("netrt")), "no backup left: {left:?}");

    // A file containerd could not read either: refused, untouched.
    fs::write(&config, "version = 2\n[plugins\n").unwrap();
    let refused = configure(&["containerd", "--config", config.to_str().unwrap()]);
    assert!(!refused.status.success() && text(&refused).contains("not valid TOML"), "{}", text(&refused));
    assert_eq!(fs::read_to_string(&config).unwrap(), "version = 2\n[plugins\n");
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn docker_env_turns_variables_on_and_remove_turns_them_off() {
    let dir = scratch("env");
    let daemon = dir.join("daemon.json");
    let netrt_json = dir.join("netrt/netrt.json");
    let with_env = |arguments: &[&str]| -> Output {
        Command::new(wrapper_binary())
            .arg("configure")
            .args(arguments)
            .env("NETRT_CONFIG", &netrt_json)
            .output()
            .unwrap()
    };
    let daemon_arg = daemon.to_str().unwrap();
    let added = with_env(&["docker", "--config", daemon_arg, "--env"]);
    assert!(added.status.success(), "{}", text(&added));
    assert!(text(&added).contains("trust.env true: netrt now reads containers' NETRT_* variables"), "{}", text(&added));
    let config: Value = serde_json::from_slice(&fs::read(&netrt_json).unwrap()).unwrap();
    assert_eq!(config, serde_json::json!({"trust": {"env": true}}));
    // The hook reads what configure wrote.
    let check = Command::new(hook_binary())
        .args(["check", "NETRT_EGRESS=10mbit"])
        .env("NETRT_CONFIG", &netrt_json)
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", text(&check));

    let again = with_env(&["docker", "--config", daemon_arg, "--env"]);
    assert!(text(&again).contains("trust.env is already true; unchanged"), "{}", text(&again));

    // An admin's keys stay; --remove --env takes the switch out, and the
    // file once nothing else is in it.
    fs::write(&netrt_json, r#"{"node": "a", "trust": {"env": true, "pods": "limits"}}"#).unwrap();
    let removed = with_env(&["docker", "--config", daemon_arg, "--remove", "--env"]);
    assert!(removed.status.success(), "{}", text(&removed));
    let config: Value = serde_json::from_slice(&fs::read(&netrt_json).unwrap()).unwrap();
    assert_eq!(config, serde_json::json!({"node": "a", "trust": {"pods": "limits"}}));
    assert!(!daemon.exists(), "daemon.json goes as before: there was none");
    fs::write(&netrt_json, r#"{"trust": {"env": true}}"#).unwrap();
    with_env(&["docker", "--config", daemon_arg, "--env"]);
    let removed = with_env(&["docker", "--config", daemon_arg, "--remove", "--env"]);
    assert!(text(&removed).contains("trust.env taken out"), "{}", text(&removed));
    assert!(!netrt_json.exists(), "nothing else was in it");

    let refused = with_env(&["containerd", "--config", dir.join("config.toml").to_str().unwrap(), "--env"]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(text(&refused).contains("--env is for docker"), "{}", text(&refused));
    assert!(!dir.join("config.toml").exists() && !netrt_json.exists(), "a refusal writes nothing");
    let _ = fs::remove_dir_all(&dir);
}
