//! Where the configuration file is: `/etc/netrt/netrt.json`, or the file
//! `NETRT_CONFIG` names.

use std::path::PathBuf;

pub const CONFIG_PATH: &str = "/etc/netrt/netrt.json";
pub const CONFIG_VARIABLE: &str = "NETRT_CONFIG";

pub fn config_path() -> PathBuf {
    std::env::var_os(CONFIG_VARIABLE).map(PathBuf::from).unwrap_or_else(|| PathBuf::from(CONFIG_PATH))
}
