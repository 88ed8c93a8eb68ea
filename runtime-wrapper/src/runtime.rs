//! Which runtime the wrapper hands over to: `runtime` in the netrt
//! configuration, else `runc`, then `crun`, on PATH. Never the wrapper
//! itself, however it is reached (a `runc` symlink to netrt would loop).

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub const DEFAULT_RUNTIMES: [&str; 2] = ["runc", "crun"];

fn is_executable(path: &Path) -> bool {
    path.metadata().is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// Every executable `name` on `search_path`, in order.
fn on_path(name: &str, search_path: &OsStr) -> Vec<PathBuf> {
    std::env::split_paths(search_path).map(|dir| dir.join(name)).filter(|path| is_executable(path)).collect()
}

fn is_self(candidate: &Path, own: &Path) -> bool {
    candidate.canonicalize().is_ok_and(|real| real == own)
}

/// Finds the real runtime. `own` is the wrapper's canonical path;
/// `configured` the configuration's `runtime`, from `config_path`.
pub fn find(configured: Option<&str>, config_path: &str, search_path: &OsStr, own: &Path) -> Result<PathBuf, String> {
    if let Some(runtime) = configured {
        let candidates =
            if runtime.contains('/') { vec![PathBuf::from(runtime)] } else { on_path(runtime, search_path) };
        let Some(first) = candidates.iter().find(|c| is_executable(c)) else {
            return Err(format!("the runtime {runtime:?} named in {config_path} is not an executable file"));
        };
        if is_self(first, own) {
            return Err(format!(
                "the runtime {runtime:?} named in {config_path} is netrt itself; name the real runtime, e.g. /usr/sbin/runc"
            ));
        }
        return Ok(first.clone());
    }
    DEFAULT_RUNTIMES
        .iter()
        .flat_map(|name| on_path(name, search_path))
        .find(|candidate| !is_self(candidate, own))
        .ok_or_else(|| {
            format!("no OCI runtime found: neither runc nor crun is on PATH; install runc, or name one as \"runtime\" in {config_path}")
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    fn executable(path: &Path) {
        fs::write(path, "#!/bin/sh\n").unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("netrt-runtime-test-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("a")).unwrap();
        fs::create_dir_all(dir.join("b")).unwrap();
        dir
    }

    #[test]
    fn skips_a_runc_that_is_netrt_itself() {
        let dir = scratch("loop");
        let own = dir.join("a/netrt");
        executable(&own);
        symlink(&own, dir.join("a/runc")).unwrap();
        executable(&dir.join("b/runc"));
        let path = std::env::join_paths([dir.join("a"), dir.join("b")]).unwrap();
        let own = own.canonicalize().unwrap();
        assert_eq!(find(None, "cfg", &path, &own).unwrap(), dir.join("b/runc"));
        fs::remove_file(dir.join("b/runc")).unwrap();
        let error = find(None, "cfg", &path, &own).unwrap_err();
        assert!(error.contains("no OCI runtime found"), "{error}");
        executable(&dir.join("b/crun"));
        assert_eq!(find(None, "cfg", &path, &own).unwrap(), dir.join("b/crun"));
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_configured_runtime_wins_and_is_checked() {
        let dir = scratch("configured");
        let own = dir.join("a/netrt");
        executable(&own);
        executable(&dir.join("b/runc"));
        executable(&dir.join("b/other"));
        let path = std::env::join_paths([dir.join("b")]).unwrap();
        let own = own.canonicalize().unwrap();
        assert_eq!(find(Some("other"), "cfg", &path, &own).unwrap(), dir.join("b/other"));
        let absolute = dir.join("b/other").display().to_string();
        assert_eq!(find(Some(&absolute), "cfg", &path, &own).unwrap(), dir.join("b/other"));
        let error = find(Some("/nonexistent/runc"), "/etc/netrt/netrt.json", &path, &own).unwrap_err();
        assert!(error.contains("/etc/netrt/netrt.json") && error.contains("not an executable"), "{error}");
        let error = find(Some(&own.display().to_string()), "cfg", &path, &own).unwrap_err();
        assert!(error.contains("netrt itself"), "{error}");
        fs::remove_dir_all(dir).unwrap();
    }
}
