//! The bundle's config.json: whether it asks for netrt, and adding
//! netrt-hook to its hooks. Edited as JSON, so every field the wrapper does
//! not know stays exactly as the engine wrote it.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use netrt_hook::request::settings::KEY_PREFIX;
use serde_json::{json, Value};

/// Prefix of the environment variables that carry settings.
pub const ENV_PREFIX: &str = "NETRT_";

/// Whether the container asks for netrt: a `net.*` annotation or a
/// `NETRT_*` variable (Docker engines before 24.0 cannot set annotations).
pub fn wants_netrt(config: &Value) -> bool {
    let annotated = config["annotations"]
        .as_object()
        .is_some_and(|annotations| annotations.keys().any(|key| key.starts_with(KEY_PREFIX)));
    let in_env = config["process"]["env"]
        .as_array()
        .is_some_and(|env| env.iter().filter_map(Value::as_str).any(|entry| entry.starts_with(ENV_PREFIX)));
    annotated || in_env
}

/// How setup should run: `defer` lets it wait for `start` when the
/// container has no network at createRuntime (see `netrt-hook --help`).
pub fn setup_hook(hook_path: &str, defer: bool) -> Value {
    let mut args = vec!["netrt-hook", "createRuntime"];
    if defer {
        args.push("--defer-without-network");
    }
    json!({ "path": hook_path, "args": args })
}

pub fn teardown_hook(hook_path: &str) -> Value {
    json!({ "path": hook_path, "args": ["netrt-hook", "poststop"] })
}

fn is_netrt_hook(hook: &Value) -> bool {
    hook["path"].as_str().and_then(|path| Path::new(path).file_name()).is_some_and(|name| name == "netrt-hook")
}

fn has_netrt_hook(hooks: &Value, stages: &[&str]) -> bool {
    stages.iter().any(|stage| hooks[*stage].as_array().is_some_and(|list| list.iter().any(is_netrt_hook)))
}

/// Appends netrt's setup and teardown hooks unless netrt-hook is already
/// there for that stage (a hook from hooks.d, or an earlier pass). Returns
/// whether anything changed.
pub fn add_hooks(config: &mut Value, setup: Value, teardown: Value) -> Result<bool, String> {
    let root = config.as_object_mut().ok_or("config.json is not a JSON object")?;
    let hooks = root.entry("hooks").or_insert_with(|| json!({}));
    if hooks.is_null() {
        *hooks = json!({});
    }
    if !hooks.is_object() {
        return Err("\"hooks\" in config.json is not an object".into());
    }
    let mut changed = false;
    for (stages, stage, hook) in
        [(&["createRuntime", "prestart"][..], "createRuntime", setup), (&["poststop"][..], "poststop", teardown)]
    {
        if has_netrt_hook(hooks, stages) {
            continue;
        }
        let list = hooks.as_object_mut().expect("checked above").entry(stage).or_insert_with(|| json!([]));
        if list.is_null() {
            *list = json!([]);
        }
        list.as_array_mut().ok_or_else(|| format!("\"hooks.{stage}\" in config.json is not a list"))?.push(hook);
        changed = true;
    }
    Ok(changed)
}

/// Replaces `path` with `content` atomically, keeping its permission bits.
pub fn replace_file(path: &Path, content: &[u8]) -> std::io::Result<()> {
    let mode = fs::metadata(path)?.permissions().mode();
    let temporary = path.with_extension("json.netrt-tmp");
    let written = (|| {
        let mut file = fs::File::create(&temporary)?;
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(content)?;
        file.sync_all()?;
        fs::rename(&temporary, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    written
}

/// Adds the hooks to the bundle's config.json if the container asks for
/// netrt; a bundle that does not is not written at all.
pub fn prepare(bundle: &Path, hook_path: &Path, defer: bool) -> Result<bool, String> {
    let path = bundle.join("config.json");
    let text = netrt_hook::request::oci::read_bounded(&path)?;
    let mut config: Value =
        serde_json::from_str(&text).map_err(|e| format!("{} is not valid JSON: {e}", path.display()))?;
    if !wants_netrt(&config) {
        return Ok(false);
    }
    if !hook_path.is_file() {
        return Err(format!(
            "the container asks for netrt, but {} is missing (netrt-hook is installed next to netrt)",
            hook_path.display()
        ));
    }
    let hook_path = hook_path.to_str().ok_or_else(|| format!("{} is not UTF-8", hook_path.display()))?;
    let changed = add_hooks(&mut config, setup_hook(hook_path, defer), teardown_hook(hook_path))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if changed {
        let content = serde_json::to_vec(&config).expect("a JSON value serialises");
        replace_file(&path, &content).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asks_for_netrt_by_annotation_or_variable() {
        assert!(wants_netrt(&json!({"annotations": {"net.egress": "10mbit"}})));
        assert!(wants_netrt(&json!({"process": {"env": ["PATH=/bin", "NETRT_EGRESS=10mbit"]}})));
        assert!(!wants_netrt(
            &json!({"annotations": {"network": "x", "io.netrt": "y"}, "process": {"env": ["NETRTX=1"]}})
        ));
        assert!(!wants_netrt(&json!({})));
    }

    #[test]
    fn adds_both_hooks_once_and_keeps_the_rest() {
        let original = json!({
            "ociVersion": "1.0.2",
            "zzz-unknown": {"kept": [1, 2.5, null]},
            "hooks": {"prestart": [{"path": "/usr/bin/dockerd", "args": ["libnetwork-setkey"]}]},
            "annotations": {"net.egress": "10mbit"}
        });
        let mut config = original.clone();
        let setup = setup_hook("/usr/local/bin/netrt-hook", true);
        let teardown = teardown_hook("/usr/local/bin/netrt-hook");
        assert!(add_hooks(&mut config, setup.clone(), teardown.clone()).unwrap());
        assert_eq!(config["hooks"]["prestart"], original["hooks"]["prestart"]);
        assert_eq!(config["hooks"]["createRuntime"], json!([setup]));
        assert_eq!(config["hooks"]["poststop"], json!([teardown]));
        assert_eq!(config["hooks"]["createRuntime"][0]["args"][2], "--defer-without-network");
        assert_eq!(config["zzz-unknown"], original["zzz-unknown"]);
        let once = config.clone();
        assert!(!add_hooks(&mut config, setup.clone(), teardown.clone()).unwrap());
        assert_eq!(config, once);
    }

    #[test]
    fn a_hook_from_hooks_d_counts() {
        let mut config = json!({"hooks": {
            "prestart": [{"path": "/opt/netrt/bin/netrt-hook"}],
            "poststop": [{"path": "/opt/netrt/bin/netrt-hook"}]
        }});
        let before = config.clone();
        assert!(!add_hooks(&mut config, setup_hook("/x/netrt-hook", false), teardown_hook("/x/netrt-hook")).unwrap());
        assert_eq!(config, before);
    }

    #[test]
    fn keeps_the_order_of_keys() {
        let text = r#"{"ociVersion":"1.0.2","process":{"env":["NETRT_EGRESS=1mbit"]},"root":{"path":"rootfs"},"annotations":{}}"#;
        let mut config: Value = serde_json::from_str(text).unwrap();
        add_hooks(&mut config, setup_hook("/h/netrt-hook", false), teardown_hook("/h/netrt-hook")).unwrap();
        let written = serde_json::to_string(&config).unwrap();
        assert!(written.starts_with(r#"{"ociVersion":"1.0.2","process":{"env":["NETRT_EGRESS=1mbit"]},"root":{"path":"rootfs"},"annotations":{},"hooks":"#), "{written}");
    }

    #[test]
    fn refuses_hooks_of_the_wrong_shape() {
        assert!(add_hooks(&mut json!({"hooks": []}), json!({}), json!({})).is_err());
        assert!(add_hooks(&mut json!({"hooks": {"poststop": {}}}), json!({}), json!({})).is_err());
        assert!(add_hooks(&mut json!([]), json!({}), json!({})).is_err());
    }
}
