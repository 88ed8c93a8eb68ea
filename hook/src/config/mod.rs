//! The admin's configuration file, read once by one loader ([`load`]):
//! who may ask for what ([`trust`]), the bounds on what annotations may
//! ask for ([`policy`]), the address
//! pools and their registry ([`pools`]), and the declared uplinks
//! ([`uplinks`]); where the file is, in [`file`]. No file at all is an
//! empty configuration; a file that cannot be read or understood is an
//! error, never ignored: a typo must not open what the admin closed.

pub mod file;
pub mod policy;
pub mod pools;
pub mod trust;
pub mod uplinks;

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::error::{Error, Result};
use file::config_path;
use policy::{Policy, PolicyFile};
use pools::{PoolFile, Pools, RegistryFile};
use trust::{Trust, TrustFile};
use uplinks::{UplinkFile, Uplinks};

/// The configuration file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// The real OCI runtime, for the `netrt` wrapper.
    pub runtime: Option<String>,
    #[serde(default)]
    pub trust: TrustFile,
    #[serde(default)]
    pub policy: PolicyFile,
    /// This host's name in the registry; default: the host name.
    pub node: Option<String>,
    pub registry: Option<RegistryFile>,
    #[serde(default)]
    pub pools: BTreeMap<String, PoolFile>,
    /// Declared uplinks and their capacity.
    #[serde(default)]
    pub uplinks: BTreeMap<String, UplinkFile>,
}

/// The configuration, parsed and checked.
#[derive(Debug, Default, Clone)]
pub struct Config {
    /// Who may ask for what.
    pub trust: Trust,
    pub policy: Policy,
    pub pools: Pools,
    /// The uplinks guarantees may be made on.
    pub uplinks: Uplinks,
}

/// Reads and checks the configuration file.
pub fn load() -> Result<Config> {
    let (path, file) = read_file()?;
    let pools = Pools::from_file(&path, file.node, file.registry, file.pools)?;
    let uplinks = Uplinks::from_file(&path, file.uplinks)?;
    let trust = Trust::from_file(&path, file.trust)?;
    Ok(Config { trust, policy: Policy::from_file(path, file.policy)?, pools, uplinks })
}

/// Reads the configuration file as written, and where it was; none at all
/// is an empty one.
pub fn read_file() -> Result<(String, ConfigFile)> {
    let path = config_path();
    let shown = path.display().to_string();
    match std::fs::read_to_string(&path) {
        Ok(text) => parse_file(&shown, &text).map(|config| (shown.clone(), config)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((shown, ConfigFile::default())),
        Err(e) => Err(Error::Input(format!("cannot read {shown}: {e}"))),
    }
}

/// Parses the configuration file's text; `shown` names it in errors.
pub fn parse_file(shown: &str, text: &str) -> Result<ConfigFile> {
    serde_json::from_str(text).map_err(|e| Error::Input(format!("{shown} is not a valid netrt configuration: {e}")))
}
