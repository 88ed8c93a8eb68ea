//! netrt, the OCI runtime Docker is told about: on `create` (and `run`) it
//! adds netrt-hook to the bundle's config.json when the container asks for
//! net.* settings; on `start` it applies a setup that had to wait for the
//! container's network; then it `exec`s the real runtime with the same
//! arguments, environment and stdio. Everything else passes through.

pub mod args;
pub mod bundle;
pub mod configure;
pub mod own;
pub mod runlog;
pub mod runtime;

use std::convert::Infallible;
use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use args::Invocation;

pub const HELP: &str = "\
netrt: OCI runtime wrapper that gives containers the network their net.* settings ask for.

Registered in Docker's daemon.json as {\"runtimes\": {\"netrt\": {\"path\": \"/usr/local/bin/netrt\"}}}
and used as `docker run --runtime=netrt --annotation net.egress=10mbit ...` (Docker >= 24)
or `-e NETRT_EGRESS=10mbit` (older Docker).

On create and run, a bundle with a net.* annotation or a NETRT_* variable gets netrt-hook
(next to this program) as createRuntime and poststop hook in its config.json; other bundles
are not touched. On start, settings that had to wait for the container's network (Docker
26.0.0 and 28+ make it after create) are applied before the process runs; a failure stops
the start. Every command and flag goes unchanged to the real runtime: \"runtime\" in
/etc/netrt/netrt.json (or the file NETRT_CONFIG names), else runc, then crun, on PATH.
Errors go to stderr and to the --log file. See netrt(8) and netrt-hook(8).

netrt's own commands:
  netrt configure docker|containerd|podman [--config FILE] [--dry-run] [--remove]
                      register netrt with that engine, keeping every other setting
  netrt completions bash|zsh|fish
                      a completion script for netrt's own commands

The real runtime's help follows.
";

/// The wrapper's canonical path, to find netrt-hook and never exec itself.
pub fn own_path() -> Result<PathBuf, String> {
    std::env::current_exe()
        .and_then(|path| path.canonicalize())
        .map_err(|e| format!("netrt: cannot find its own executable: {e}"))
}

/// netrt-hook, installed next to netrt.
pub fn hook_path(own: &Path) -> PathBuf {
    own.parent().unwrap_or(Path::new("/")).join("netrt-hook")
}

fn prepare_bundle(invocation: &Invocation, own: &Path) -> Result<(), String> {
    let bundle = match &invocation.bundle {
        Some(bundle) => bundle.clone(),
        None => std::env::current_dir().map_err(|e| format!("netrt: cannot read the working directory: {e}"))?,
    };
    let hook = hook_path(own);
    // `run` returns only when the container has exited: no `start` follows.
    let defer = invocation.command.as_deref() == Some("create");
    bundle::prepare(&bundle, &hook, defer).map(|_| ()).map_err(|e| format!("netrt: {e}"))
}

/// Runs `netrt-hook apply-deferred ID` if createRuntime left a setup for start.
fn apply_deferred(own: &Path, id: &str) -> Result<(), String> {
    if netrt_hook::state::record::check_id(id).is_err()
        || !netrt_hook::state::record::Store::system().deferred_path(id).exists()
    {
        return Ok(());
    }
    let hook = hook_path(own);
    let output = Command::new(&hook)
        .args(["apply-deferred", id])
        .output()
        .map_err(|e| format!("netrt: cannot run {}: {e}", hook.display()))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
    Err(if stderr.is_empty() {
        format!("netrt: {} apply-deferred {id} failed ({})", hook.display(), output.status)
    } else {
        stderr
    })
}

/// Does the wrapper's part, then becomes the real runtime. Returns only on
/// an error, which the caller reports.
pub fn run(invocation: &Invocation, arguments: &[OsString]) -> Result<Infallible, String> {
    let own = own_path()?;
    let (config_path, config) = netrt_hook::config::read_file().map_err(|e| e.to_string())?;
    let search_path = std::env::var_os("PATH")
        .unwrap_or_else(|| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    let real = runtime::find(config.runtime.as_deref(), &config_path, &search_path, &own)
        .map_err(|e| format!("netrt: {e}"))?;
    if invocation.help {
        println!("{HELP}");
    }
    match invocation.command.as_deref() {
        Some("create" | "run") => prepare_bundle(invocation, &own)?,
        Some("start") => {
            if let Some(id) = &invocation.container_id {
                apply_deferred(&own, id)?;
            }
        }
        _ => {}
    }
    let error = Command::new(&real).args(arguments).exec();
    Err(format!("netrt: cannot run {}: {error}", real.display()))
}
