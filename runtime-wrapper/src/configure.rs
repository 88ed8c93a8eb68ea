//! `netrt configure docker|containerd|podman`: registers netrt in an
//! engine's configuration, keeping every other setting, as
//! `nvidia-ctk runtime configure` does. The edits are pure functions over
//! the file's text; `apply` does the file work around them.
//!
//! A file netrt edits keeps its original beside it (`FILE.netrt-backup`, or
//! an empty `FILE.netrt-absent` when there was none), so that `--remove`
//! gives back the very bytes it found when nobody has changed the file
//! since; otherwise `--remove` takes out only netrt's entry.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use toml_edit::{Array, DocumentMut, Item, Table};

/// The engines netrt can register with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Docker,
    Containerd,
    Podman,
}

impl Engine {
    pub fn default_config(self) -> &'static str {
        match self {
            Engine::Docker => "/etc/docker/daemon.json",
            Engine::Containerd => "/etc/containerd/config.toml",
            Engine::Podman => "/etc/containers/oci/hooks.d/netrt.json",
        }
    }

    /// What the engine must be told once its file changed.
    fn reload_hint(self) -> &'static str {
        match self {
            Engine::Docker => {
                "reload dockerd for the change to take effect: systemctl reload docker, or kill -HUP $(pidof dockerd)"
            }
            Engine::Containerd => "restart containerd for the change to take effect: systemctl restart containerd",
            Engine::Podman => "podman reads hooks.d at every container start: nothing to restart",
        }
    }
}

/// The runtime handler's name in Docker and containerd.
pub const RUNTIME_NAME: &str = "netrt";

/// A refusal: the file and why; the file is left as it was.
pub type Refusal = String;

/// daemon.json with `runtimes.netrt.path` set to `wrapper`; every other key
/// keeps its place. None: it is already so.
pub fn docker_add(text: &str, wrapper: &str) -> Result<Option<String>, Refusal> {
    let mut config = parse_json_object(text)?;
    let entry = serde_json::json!({ "path": wrapper });
    let runtimes = config.entry("runtimes").or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(runtimes) = runtimes else {
        return Err("\"runtimes\" is not a JSON object".into());
    };
    if runtimes.get(RUNTIME_NAME) == Some(&entry) {
        return Ok(None);
    }
    runtimes.insert(RUNTIME_NAME.into(), entry);
    Ok(Some(to_json(&config)))
}

/// daemon.json without `runtimes.netrt` (and without `runtimes` if that
/// leaves it empty). None: there is nothing of netrt's in it.
pub fn docker_remove(text: &str) -> Result<Option<String>, Refusal> {
    let mut config = parse_json_object(text)?;
    let Some(Value::Object(runtimes)) = config.get_mut("runtimes") else { return Ok(None) };
    if runtimes.shift_remove(RUNTIME_NAME).is_none() {
        return Ok(None);
    }
    if runtimes.is_empty() {
        config.shift_remove("runtimes");
    }
    Ok(Some(to_json(&config)))
}

fn parse_json_object(text: &str) -> Result<Map<String, Value>, Refusal> {
    if text.trim().is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err("it is JSON but not an object".into()),
        Err(e) => Err(format!("it is not valid JSON ({e})")),
    }
}

fn to_json(config: &Map<String, Value>) -> String {
    let mut text = serde_json::to_string_pretty(config).expect("a JSON value serialises");
    text.push('\n');
    text
}

/// Where the CRI plugin keeps its runtime handlers, by config version.
fn cri_runtimes_path(version: i64) -> Option<[&'static str; 4]> {
    match version {
        2 => Some(["plugins", "io.containerd.grpc.v1.cri", "containerd", "runtimes"]),
        3 => Some(["plugins", "io.containerd.cri.v1.runtime", "containerd", "runtimes"]),
        _ => None,
    }
}

fn containerd_version(document: &DocumentMut) -> Result<i64, Refusal> {
    match document.get("version") {
        None if document.is_empty() => Ok(2),
        None => Err("it has no `version`: only config versions 2 (containerd 1.x) and 3 (2.x) are known to netrt; \
                     write `version = 2` at its top (containerd 1.x reads version 1 files the same way)"
            .into()),
        Some(item) => item
            .as_integer()
            .filter(|v| cri_runtimes_path(*v).is_some())
            .ok_or_else(|| format!("its version {} is not one netrt knows (2 or 3)", item.to_string().trim())),
    }
}

/// The runtime handler netrt adds: the runc shim with netrt as its binary,
/// and the pod annotations netrt reads passed to it.
fn containerd_handler(wrapper: &str) -> Table {
    let mut options = Table::new();
    options.insert("BinaryName", toml_edit::value(wrapper));
    let mut handler = Table::new();
    handler.insert("runtime_type", toml_edit::value("io.containerd.runc.v2"));
    let mut annotations = Array::new();
    annotations.push("net.*");
    handler.insert("pod_annotations", toml_edit::value(annotations));
    handler.insert("options", Item::Table(options));
    handler
}

/// config.toml with the runtime handler `netrt`; comments and layout of the
/// rest are kept. None: it is already so.
pub fn containerd_add(text: &str, wrapper: &str) -> Result<Option<String>, Refusal> {
    let mut document: DocumentMut = text.parse().map_err(|e| format!("it is not valid TOML ({e})"))?;
    let empty = document.is_empty();
    let version = containerd_version(&document)?;
    if empty {
        document.insert("version", toml_edit::value(version));
    }
    let path = cri_runtimes_path(version).expect("a known version");
    let default_runtime = default_runtime_name(&document, path);
    let mut table = document.as_table_mut();
    for key in path {
        let item = table.entry(key).or_insert_with(|| {
            let mut implicit = Table::new();
            implicit.set_implicit(true);
            Item::Table(implicit)
        });
        table = item.as_table_mut().ok_or_else(|| format!("{} is not a table", path.join(".")))?;
    }
    let wanted = containerd_handler(wrapper);
    let default_missing = !table.contains_key(&default_runtime);
    if let Some(existing) = table.get(RUNTIME_NAME).and_then(Item::as_table) {
        if existing.to_string() == wanted.to_string() && !default_missing {
            return Ok(None);
        }
    }
    // containerd's built-in handlers are replaced, not merged, by a file's
    // `runtimes` table: without its default handler, the CRI plugin
    // refuses to load and no pod on the node runs.
    if default_missing {
        let mut builtin = Table::new();
        builtin.insert("runtime_type", toml_edit::value("io.containerd.runc.v2"));
        table.insert(&default_runtime, Item::Table(builtin));
    }
    table.insert(RUNTIME_NAME, Item::Table(wanted));
    Ok(Some(document.to_string()))
}

/// The handler the CRI plugin runs a pod with when it names none:
/// `default_runtime_name` in the `containerd` table, "runc" when unset.
fn default_runtime_name(document: &DocumentMut, path: [&str; 4]) -> String {
    let mut item = document.as_item();
    for key in &path[..3] {
        match item.get(key) {
            Some(inner) => item = inner,
            None => return "runc".into(),
        }
    }
    item.get("default_runtime_name").and_then(Item::as_str).unwrap_or("runc").to_string()
}

/// config.toml without the runtime handler `netrt`. None: it has none.
pub fn containerd_remove(text: &str) -> Result<Option<String>, Refusal> {
    let mut document: DocumentMut = text.parse().map_err(|e| format!("it is not valid TOML ({e})"))?;
    let Some(path) = document.get("version").and_then(Item::as_integer).and_then(cri_runtimes_path) else {
        return Ok(None);
    };
    let mut table = document.as_table_mut();
    for key in path {
        match table.get_mut(key).and_then(Item::as_table_mut) {
            Some(inner) => table = inner,
            None => return Ok(None),
        }
    }
    if table.remove(RUNTIME_NAME).is_none() {
        return Ok(None);
    }
    Ok(Some(document.to_string()))
}

/// podman's (and CRI-O's) hooks.d file for netrt-hook at `hook`: the one
/// the project ships, byte for byte, so that an installed one is recognised.
pub fn podman_hooks_file(hook: &str) -> String {
    let path = serde_json::to_string(hook).expect("a string serialises");
    include_str!("../../install/hooks.d/netrt.json").replace("\"@HOOK@\"", &path)
}

/// netrt.json with `trust.env` turned on or (`on` false) taken out, every
/// other key kept in its order. None: it is already so. Some(None): the
/// file would hold nothing else, so it goes.
pub fn env_switch(text: Option<&str>, on: bool) -> Result<Option<Option<String>>, Refusal> {
    let mut config = match text {
        Some(text) => parse_json_object(text)?,
        None => Map::new(),
    };
    let trust = config.entry("trust").or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(trust) = trust else {
        return Err("\"trust\" is not a JSON object".into());
    };
    let was = trust.get("env").cloned();
    if on {
        trust.insert("env".into(), Value::Bool(true));
    } else {
        trust.shift_remove("env");
    }
    if trust.is_empty() {
        config.shift_remove("trust");
    }
    let unchanged = if on { was == Some(Value::Bool(true)) } else { was.is_none() };
    if unchanged {
        return Ok(None);
    }
    Ok(Some((!config.is_empty()).then(|| to_json(&config))))
}

/// `netrt configure docker --env` (and `--remove --env`): the switch in
/// netrt's own configuration file `path`; returns the lines to print.
pub fn apply_env(path: &Path, on: bool, dry_run: bool) -> Result<Vec<String>, Refusal> {
    let shown = path.display();
    let current = read_if_present(path)?.map(|bytes| String::from_utf8_lossy(&bytes).into_owned());
    let changed = env_switch(current.as_deref(), on).map_err(|why| refusal(path, why))?;
    let line = match (changed, on) {
        (None, true) => format!("{shown}: trust.env is already true; unchanged"),
        (None, false) => format!("{shown}: trust.env is not set (variables are refused); unchanged"),
        (Some(text), _) => {
            match text {
                Some(text) => {
                    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty() && !dir.exists()) {
                        if !dry_run {
                            fs::create_dir_all(dir)
                                .map_err(|e| format!("netrt configure: cannot create {}: {e}", dir.display()))?;
                        }
                    }
                    write_like(path, text.as_bytes(), dry_run)?
                }
                None => remove_file(path, dry_run)?,
            }
            if on {
                format!(
                    "{shown}: trust.env true: netrt now reads containers' NETRT_* variables. An image's ENV sets \
                     them too, so any image run through netrt may ask for netrt's settings; turn it off with \
                     netrt configure docker --remove --env once your Docker passes annotations (24 or later)"
                )
            } else {
                format!("{shown}: trust.env taken out: containers' NETRT_* variables are refused again")
            }
        }
    };
    Ok(vec![if dry_run { format!("{line} (--dry-run: nothing was written)") } else { line }])
}

/// What `configure` was asked to do.
pub struct Request {
    pub engine: Engine,
    pub config: PathBuf,
    /// The netrt wrapper that engines run (Docker, containerd).
    pub wrapper: String,
    /// netrt-hook (podman's hooks.d file).
    pub hook: String,
    pub remove: bool,
    pub dry_run: bool,
}

/// Carries out `request`; returns the lines to print.
pub fn apply(request: &Request) -> Result<Vec<String>, Refusal> {
    let files = Files::of(&request.config)?;
    if request.remove {
        remove(request, &files)
    } else {
        add(request, &files)
    }
}

/// The file `configure` edits, as it is now, and the original kept beside it.
struct Files {
    current: Option<Vec<u8>>,
    backup: PathBuf,
    absent_marker: PathBuf,
    /// What the file was before the first change: Some(None) when there
    /// was no file; None when `configure` kept nothing.
    original: Option<Option<Vec<u8>>>,
}

impl Files {
    fn of(config: &Path) -> Result<Files, Refusal> {
        let backup = backup_path(config, "netrt-backup");
        let absent_marker = backup_path(config, "netrt-absent");
        let original = if absent_marker.exists() { Some(None) } else { read_if_present(&backup)?.map(Some) };
        Ok(Files { current: read_if_present(config)?, backup, absent_marker, original })
    }

    fn forget_original(&self, dry_run: bool) -> Result<(), Refusal> {
        remove_file(&self.backup, dry_run)?;
        remove_file(&self.absent_marker, dry_run)
    }
}

fn refusal(config: &Path, why: String) -> Refusal {
    format!("netrt configure: {}: {why}; the file is left as it was", config.display())
}

fn add(request: &Request, files: &Files) -> Result<Vec<String>, Refusal> {
    let config = &request.config;
    let shown = config.display();
    let current = &files.current;
    let text = current.as_ref().map(|t| String::from_utf8_lossy(t).into_owned()).unwrap_or_default();
    let Some(new_text) = edit(request, &text, false).map_err(|why| refusal(config, why))? else {
        let mut lines = vec![format!("{shown}: already has {}; unchanged", describe(request.engine))];
        if request.engine == Engine::Containerd {
            lines.extend(what_pods_may_do());
        }
        return Ok(lines);
    };
    if let Some(dir) = config.parent().filter(|dir| !dir.as_os_str().is_empty() && !dir.exists()) {
        if !request.dry_run {
            fs::create_dir_all(dir).map_err(|e| format!("netrt configure: cannot create {}: {e}", dir.display()))?;
        }
    }
    // A hooks.d file is netrt's whole: none before needs no marker.
    let whole_file = request.engine == Engine::Podman && current.is_none();
    if files.original.is_none() && !whole_file {
        match current {
            Some(bytes) => write_like(&files.backup, bytes, request.dry_run)?,
            None => write_like(&files.absent_marker, b"", request.dry_run)?,
        }
    }
    write_like(config, new_text.as_bytes(), request.dry_run)?;
    let mut lines = vec![format!(
        "{shown}: {} {}{}",
        if current.is_some() { "added" } else { "created with" },
        describe(request.engine),
        if current.is_some() && request.engine != Engine::Podman { "; every other setting kept" } else { "" }
    )];
    if request.dry_run {
        lines.push(format!("--- {shown} would read:"));
        lines.push(new_text.trim_end().to_string());
    }
    Ok(finish(request, lines))
}

fn remove(request: &Request, files: &Files) -> Result<Vec<String>, Refusal> {
    let config = &request.config;
    let shown = config.display();
    let Some(bytes) = &files.current else {
        files.forget_original(request.dry_run)?;
        return Ok(vec![format!("{shown} does not exist: nothing of netrt's to remove")]);
    };
    let text = String::from_utf8_lossy(bytes).into_owned();
    let removed = edit(request, &text, true).map_err(|why| refusal(config, why))?;
    if let Some(line) = restore_original(request, files, &text)? {
        files.forget_original(request.dry_run)?;
        return Ok(finish(request, vec![line]));
    }
    files.forget_original(request.dry_run)?;
    if request.engine == Engine::Podman {
        if text != podman_hooks_file(&request.hook) {
            return Ok(vec![format!("{shown}: not the file netrt configure writes (changed since?); left as it was")]);
        }
        remove_file(config, request.dry_run)?;
        return Ok(finish(request, vec![format!("{shown}: removed")]));
    }
    let Some(new_text) = removed else {
        return Ok(vec![format!("{shown}: nothing of netrt's in it; unchanged")]);
    };
    write_like(config, new_text.as_bytes(), request.dry_run)?;
    let what = describe(request.engine);
    Ok(finish(request, vec![format!("{shown}: removed {what}; the rest, changed since netrt configure, kept")]))
}

/// When nobody changed the file since netrt wrote it (it is what adding to
/// the original gives), puts back the bytes it had, or no file if there was
/// none, and says so. None: it changed since, or nothing was kept.
fn restore_original(request: &Request, files: &Files, text: &str) -> Result<Option<String>, Refusal> {
    let Some(original) = &files.original else { return Ok(None) };
    let original_text = original.as_deref().map(String::from_utf8_lossy).unwrap_or_default();
    if edit(request, &original_text, false).ok().flatten().as_deref() != Some(text) {
        return Ok(None);
    }
    let shown = request.config.display();
    Ok(Some(match original {
        Some(bytes) => {
            write_like(&request.config, bytes, request.dry_run)?;
            format!("{shown}: put back as it was before netrt configure (from {})", files.backup.display())
        }
        None => {
            remove_file(&request.config, request.dry_run)?;
            format!("{shown}: removed (there was none before netrt configure)")
        }
    }))
}

/// The edit for one engine: add (or, with `remove`, take out) netrt's entry.
fn edit(request: &Request, text: &str, remove: bool) -> Result<Option<String>, Refusal> {
    match (request.engine, remove) {
        (Engine::Docker, false) => docker_add(text, &request.wrapper),
        (Engine::Docker, true) => docker_remove(text),
        (Engine::Containerd, false) => containerd_add(text, &request.wrapper),
        (Engine::Containerd, true) => containerd_remove(text),
        (Engine::Podman, false) => {
            let wanted = podman_hooks_file(&request.hook);
            Ok((text != wanted).then_some(wanted))
        }
        // The whole file is netrt's: `apply` removes it.
        (Engine::Podman, true) => Ok(None),
    }
}

fn describe(engine: Engine) -> &'static str {
    match engine {
        Engine::Docker => "the runtime \"netrt\" (runtimes.netrt.path)",
        Engine::Containerd => "the runtime handler \"netrt\" (runc shim, BinaryName netrt, pod_annotations net.*)",
        Engine::Podman => "netrt's hooks.d file",
    }
}

fn finish(request: &Request, mut lines: Vec<String>) -> Vec<String> {
    if request.engine == Engine::Containerd && !request.remove {
        lines.extend(what_pods_may_do());
    }
    if request.dry_run {
        lines.push("(--dry-run: nothing was written)".into());
    } else {
        lines.push(request.engine.reload_hint().to_string());
    }
    lines
}

/// What pods will be allowed under netrt's configuration file as it is.
fn what_pods_may_do() -> Vec<String> {
    match netrt_hook::config::load() {
        Ok(config) => config.trust.pods_summary(&config.pools),
        Err(e) => vec![format!("cannot tell what pods may ask for: {e}")],
    }
}

fn backup_path(config: &Path, suffix: &str) -> PathBuf {
    let mut name = config.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{suffix}"));
    config.with_file_name(name)
}

fn read_if_present(path: &Path) -> Result<Option<Vec<u8>>, Refusal> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("netrt configure: cannot read {}: {e}", path.display())),
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename, with the
/// mode the file had (0644 for a new one).
fn write_like(path: &Path, bytes: &[u8], dry_run: bool) -> Result<(), Refusal> {
    if dry_run {
        return Ok(());
    }
    let mode = fs::metadata(path).map(|m| m.permissions().mode() & 0o7777).unwrap_or(0o644);
    let temporary = backup_path(path, "netrt-tmp");
    let written = fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(mode)
        .open(&temporary)
        .and_then(|mut file| file.write_all(bytes))
        .and_then(|_| fs::set_permissions(&temporary, fs::Permissions::from_mode(mode)))
        .and_then(|_| fs::rename(&temporary, path));
    written.map_err(|e| {
        let _ = fs::remove_file(&temporary);
        format!("netrt configure: cannot write {}: {e}", path.display())
    })
}

fn remove_file(path: &Path, dry_run: bool) -> Result<(), Refusal> {
    if dry_run {
        return Ok(());
    }
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(format!("netrt configure: cannot remove {}: {e}", path.display()))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRAPPER: &str = "/usr/local/bin/netrt";

    #[test]
    fn docker_keeps_every_other_key_in_its_order() {
        let original = r#"{"log-level": "warn", "runtimes": {"nvidia": {"path": "nvidia-container-runtime"}}, "bip": "172.30.0.1/16"}"#;
        let added = docker_add(original, WRAPPER).unwrap().unwrap();
        let keys: Vec<&str> = added.lines().filter_map(|l| l.trim().split('"').nth(1)).collect();
        assert_eq!(keys, ["log-level", "runtimes", "nvidia", "path", "netrt", "path", "bip"], "{added}");
        assert_eq!(docker_add(&added, WRAPPER).unwrap(), None, "a second run changes nothing");
        let removed = docker_remove(&added).unwrap().unwrap();
        let back: Value = serde_json::from_str(&removed).unwrap();
        assert_eq!(back, serde_json::from_str::<Value>(original).unwrap());
        assert!(removed.find("log-level") < removed.find("bip"), "order kept: {removed}");
    }

    #[test]
    fn docker_from_nothing_and_back() {
        let added = docker_add("", WRAPPER).unwrap().unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&added).unwrap(),
            serde_json::json!({"runtimes": {"netrt": {"path": WRAPPER}}})
        );
        assert_eq!(docker_remove(&added).unwrap().unwrap().trim(), "{}", "an emptied runtimes map goes too");
        assert_eq!(docker_remove(r#"{"debug": true}"#).unwrap(), None);
        let moved = docker_add(&added, "/opt/netrt/bin/netrt").unwrap().unwrap();
        assert!(moved.contains("/opt/netrt/bin/netrt") && !moved.contains(WRAPPER), "a new path replaces the old");
    }

    #[test]
    fn the_variables_switch_keeps_the_rest_of_netrt_json() {
        let on = env_switch(None, true).unwrap().unwrap().unwrap();
        assert_eq!(serde_json::from_str::<Value>(&on).unwrap(), serde_json::json!({"trust": {"env": true}}));
        assert_eq!(env_switch(Some(&on), true).unwrap(), None, "already on");
        assert_eq!(env_switch(Some(&on), false).unwrap(), Some(None), "nothing else in it: the file goes");
        let admin = r#"{"node": "a", "trust": {"pods": "limits"}, "pools": {}}"#;
        let on = env_switch(Some(admin), true).unwrap().unwrap().unwrap();
        let keys: Vec<&str> = on.lines().filter_map(|l| l.trim().split('"').nth(1)).collect();
        assert_eq!(keys, ["node", "trust", "pods", "env", "pools"], "{on}");
        let off = env_switch(Some(&on), false).unwrap().unwrap().unwrap();
        assert_eq!(serde_json::from_str::<Value>(&off).unwrap(), serde_json::from_str::<Value>(admin).unwrap());
        assert_eq!(env_switch(Some(admin), false).unwrap(), None, "not set: nothing to take out");
        assert!(env_switch(Some(r#"{"trust": "all"}"#), true).unwrap_err().contains("\"trust\" is not a JSON object"));
    }

    #[test]
    fn docker_refuses_what_it_cannot_read() {
        assert!(docker_add("{\"debug\": tru", WRAPPER).unwrap_err().contains("not valid JSON"));
        assert!(docker_add("[1, 2]", WRAPPER).unwrap_err().contains("not an object"));
        assert!(docker_add(r#"{"runtimes": "runc"}"#, WRAPPER)
            .unwrap_err()
            .contains("\"runtimes\" is not a JSON object"));
    }

    const DEBIAN_LIKE: &str = r#"# containerd's config, with a comment of the admin's
version = 2
root = "/var/lib/containerd"

[plugins]

  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "registry.k8s.io/pause:3.6"

    [plugins."io.containerd.grpc.v1.cri".containerd]
      default_runtime_name = "runc"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes]

        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
          runtime_type = "io.containerd.runc.v2"   # the default

          [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
            SystemdCgroup = false
"#;

    #[test]
    fn containerd_adds_a_handler_and_keeps_comments_and_layout() {
        let added = containerd_add(DEBIAN_LIKE, WRAPPER).unwrap().unwrap();
        assert!(added.starts_with(DEBIAN_LIKE), "the original text stays as it was, the handler follows:\n{added}");
        let document: DocumentMut = added.parse().unwrap();
        let handler = &document["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"]["netrt"];
        assert_eq!(handler["runtime_type"].as_str(), Some("io.containerd.runc.v2"));
        assert_eq!(handler["options"]["BinaryName"].as_str(), Some(WRAPPER));
        assert_eq!(handler["pod_annotations"].as_array().unwrap().get(0).and_then(|v| v.as_str()), Some("net.*"));
        assert_eq!(containerd_add(&added, WRAPPER).unwrap(), None, "a second run changes nothing");
        assert_eq!(containerd_remove(&added).unwrap().unwrap(), DEBIAN_LIKE, "taking it out gives back the bytes");
        assert_eq!(containerd_remove(DEBIAN_LIKE).unwrap(), None);
    }

    /// Debian's /etc/containerd/config.toml as the package ships it.
    const DEBIAN_SHIPPED: &str = r#"version = 2

[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = "/etc/cni/net.d"
  [plugins."io.containerd.internal.v1.opt"]
    path = "/var/lib/containerd/opt"
"#;

    #[test]
    fn containerd_keeps_its_default_handler_where_the_file_has_none() {
        let added = containerd_add(DEBIAN_SHIPPED, WRAPPER).unwrap().unwrap();
        let document: DocumentMut = added.parse().unwrap();
        let runtimes = &document["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"];
        assert_eq!(runtimes["runc"]["runtime_type"].as_str(), Some("io.containerd.runc.v2"), "{added}");
        assert_eq!(runtimes["netrt"]["options"]["BinaryName"].as_str(), Some(WRAPPER), "{added}");
        assert_eq!(containerd_add(&added, WRAPPER).unwrap(), None, "a second run changes nothing");

        // Another default handler named in the file is the one written.
        let crun = format!(
            "{DEBIAN_SHIPPED}    [plugins.\"io.containerd.grpc.v1.cri\".containerd]\n      default_runtime_name = \"crun\"\n"
        );
        let added = containerd_add(&crun, WRAPPER).unwrap().unwrap();
        let document: DocumentMut = added.parse().unwrap();
        let runtimes = &document["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"];
        assert!(runtimes.get("crun").is_some() && runtimes.get("runc").is_none(), "{added}");

        // A file that has its default handler gets only netrt's.
        let added = containerd_add(DEBIAN_LIKE, WRAPPER).unwrap().unwrap();
        assert_eq!(added.matches("runtime_type").count(), 2, "{added}");
    }

    #[test]
    fn containerd_versions() {
        let fresh = containerd_add("", WRAPPER).unwrap().unwrap();
        assert!(fresh.starts_with("version = 2"), "{fresh}");
        assert!(fresh.contains("[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.netrt]"), "{fresh}");
        assert!(!fresh.contains("[plugins]\n"), "parents stay implicit: {fresh}");
        let three = containerd_add("version = 3\n", WRAPPER).unwrap().unwrap();
        assert!(three.contains("io.containerd.cri.v1.runtime"), "{three}");
        assert!(containerd_add("root = \"/x\"\n", WRAPPER).unwrap_err().contains("no `version`"));
        assert!(containerd_add("version = 7\n", WRAPPER).unwrap_err().contains("version 7"));
        assert!(containerd_add("version = [", WRAPPER).unwrap_err().contains("not valid TOML"));
    }

    #[test]
    fn the_podman_file_is_the_one_shipped() {
        let ours: Value = serde_json::from_str(&podman_hooks_file("/usr/local/bin/netrt-hook")).unwrap();
        assert_eq!(ours["hook"]["path"], "/usr/local/bin/netrt-hook");
        assert_eq!(ours["when"]["annotations"], serde_json::json!({"^net\\..+$": ".*"}));
        assert_eq!(ours["stages"], serde_json::json!(["createRuntime", "poststop"]));
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("netrt-configure-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn request(engine: Engine, config: &Path, remove: bool) -> Request {
        Request {
            engine,
            config: config.to_path_buf(),
            wrapper: WRAPPER.into(),
            hook: "/usr/local/bin/netrt-hook".into(),
            remove,
            dry_run: false,
        }
    }

    #[test]
    fn remove_gives_back_the_bytes_and_leaves_nothing() {
        let dir = scratch("roundtrip");
        let config = dir.join("daemon.json");
        let original = "{\n    \"debug\":true,   \"bip\": \"172.30.0.1/16\"\n}\n";
        fs::write(&config, original).unwrap();
        fs::set_permissions(&config, fs::Permissions::from_mode(0o600)).unwrap();
        apply(&request(Engine::Docker, &config, false)).unwrap();
        assert!(fs::read_to_string(&config).unwrap().contains(WRAPPER));
        assert_eq!(fs::metadata(&config).unwrap().permissions().mode() & 0o777, 0o600, "the mode is kept");
        let again = apply(&request(Engine::Docker, &config, false)).unwrap();
        assert!(again[0].contains("unchanged"), "{again:?}");
        apply(&request(Engine::Docker, &config, true)).unwrap();
        assert_eq!(fs::read_to_string(&config).unwrap(), original, "byte for byte");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1, "no backup or temporary file stays");

        // Changed since: only netrt's entry goes, the change stays.
        apply(&request(Engine::Docker, &config, false)).unwrap();
        let changed = fs::read_to_string(&config).unwrap().replacen('{', "{\"log-level\": \"warn\",", 1);
        fs::write(&config, &changed).unwrap();
        apply(&request(Engine::Docker, &config, true)).unwrap();
        let now: Value = serde_json::from_str(&fs::read_to_string(&config).unwrap()).unwrap();
        assert_eq!(now, serde_json::json!({"log-level": "warn", "debug": true, "bip": "172.30.0.1/16"}));
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);

        // No file before: none after.
        let absent = dir.join("hooks.d/netrt.json");
        apply(&request(Engine::Podman, &absent, false)).unwrap();
        assert!(absent.exists());
        apply(&request(Engine::Podman, &absent, true)).unwrap();
        assert!(!absent.exists());
        assert_eq!(fs::read_dir(dir.join("hooks.d")).unwrap().count(), 0);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_file_it_cannot_parse_is_untouched() {
        let dir = scratch("invalid");
        let config = dir.join("daemon.json");
        fs::write(&config, "{\"debug\": tru").unwrap();
        let error = apply(&request(Engine::Docker, &config, false)).unwrap_err();
        assert!(error.contains("not valid JSON") && error.contains("left as it was"), "{error}");
        assert_eq!(fs::read_to_string(&config).unwrap(), "{\"debug\": tru");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1, "no backup written");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn dry_run_writes_nothing() {
        let dir = scratch("dry");
        let config = dir.join("config.toml");
        let mut dry = request(Engine::Containerd, &config, false);
        dry.dry_run = true;
        let lines = apply(&dry).unwrap();
        assert!(lines.iter().any(|l| l.contains("BinaryName")), "{lines:?}");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
        fs::remove_dir_all(&dir).unwrap();
    }
}
