//! Host-wide claims, for pools without a registry: one file per claim
//! under `/var/lib/netrt/pools` (kept across reboots, like reservations
//! must be; claims of containers a reboot ended are stale and gc frees
//! them). Made with link(2), which fails if the claim exists: the same
//! compare-and-set as etcd's, and every caller also holds the host lock.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::store::{address_key, Claim, ClaimStore, Held, StoreError, StoreResult};
use crate::config::pools::{number, Addressing, Span};

pub const HOST_POOL_DIR: &str = "/var/lib/netrt/pools";

pub struct HostStore {
    dir: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct Registration {
    addressing: Addressing,
    node: String,
}

fn failed(path: &Path, e: impl std::fmt::Display) -> StoreError {
    StoreError::Failed(format!("{}: {e}", path.display()))
}

fn file_key(v6: bool, n: u128) -> String {
    address_key(v6, n).replace('/', "-")
}

/// Writes a file whole or not at all: a temporary file, then `place`.
fn write_whole(path: &Path, text: &str, place: impl Fn(&Path, &Path) -> std::io::Result<()>) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    let temporary = path.with_extension(format!("tmp{}", std::process::id()));
    let written = fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&temporary)
        .and_then(|mut f| f.write_all(text.as_bytes()));
    let placed = written.and_then(|_| place(&temporary, path));
    let _ = fs::remove_file(&temporary);
    placed
}

fn read_optional(path: &Path) -> StoreResult<Option<String>> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(failed(path, e)),
    }
}

fn remove(path: &Path) -> StoreResult<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(failed(path, e)),
        _ => Ok(()),
    }
}

impl HostStore {
    pub fn new(dir: impl Into<PathBuf>) -> HostStore {
        HostStore { dir: dir.into() }
    }

    pub fn system() -> HostStore {
        HostStore::new(HOST_POOL_DIR)
    }

    fn claim_path(&self, pool: &str, v6: bool, n: u128) -> PathBuf {
        self.dir.join(pool).join("claims").join(file_key(v6, n))
    }

    fn index_path(&self, pool: &str, claim: &Claim) -> Option<PathBuf> {
        let (node, container) = (claim.node.as_ref()?, claim.container.as_ref()?);
        let key = file_key(claim.address.is_ipv6(), number(claim.address));
        Some(self.dir.join(".holders").join(node).join(container).join(format!("{pool}@{key}")))
    }

    fn read_claims(&self, pool: &str) -> StoreResult<Vec<Held>> {
        let dir = self.dir.join(pool).join("claims");
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(failed(&dir, e)),
        };
        let mut held = vec![];
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().contains(".tmp") {
                continue;
            }
            if let Some(raw) = read_optional(&entry.path())? {
                let claim: Claim = serde_json::from_str(&raw).map_err(|e| failed(&entry.path(), e))?;
                held.push(Held { pool: pool.to_string(), claim, raw });
            }
        }
        held.sort_by_key(|h| (h.claim.address.is_ipv6(), number(h.claim.address)));
        Ok(held)
    }
}

impl ClaimStore for HostStore {
    async fn register(
        &mut self,
        pool: &str,
        addressing: &Addressing,
        node: &str,
    ) -> StoreResult<Option<(Addressing, String)>> {
        let path = self.dir.join(pool).join("addressing.json");
        if let Some(text) = read_optional(&path)? {
            let registered: Registration = serde_json::from_str(&text).map_err(|e| failed(&path, e))?;
            return Ok((registered.addressing != *addressing).then_some((registered.addressing, registered.node)));
        }
        let text = serde_json::to_string(&Registration { addressing: addressing.clone(), node: node.to_string() })
            .expect("serialises");
        write_whole(&path, &text, |from, to| fs::rename(from, to)).map_err(|e| failed(&path, e))?;
        Ok(None)
    }

    async fn last(&mut self, pool: &str, v6: bool) -> StoreResult<Option<u128>> {
        let path = self.dir.join(pool).join(if v6 { "last-6" } else { "last-4" });
        Ok(read_optional(&path)?.and_then(|t| t.trim().parse::<std::net::IpAddr>().ok()).map(number))
    }

    async fn first_unclaimed(
        &mut self,
        pool: &str,
        span: Span,
        excluded: &dyn Fn(u128) -> bool,
    ) -> StoreResult<Option<u128>> {
        let mut n = span.first;
        loop {
            if !excluded(n) && !self.claim_path(pool, span.v6, n).exists() {
                return Ok(Some(n));
            }
            if n == span.last {
                return Ok(None);
            }
            n += 1;
        }
    }

    async fn create(&mut self, pool: &str, claim: &Claim, set_last: bool) -> StoreResult<Option<Held>> {
        let path = self.claim_path(pool, claim.address.is_ipv6(), number(claim.address));
        let raw = claim.to_json();
        // The index first: a claim is never without the entry that finds it.
        let index = self.index_path(pool, claim);
        if let Some(index) = &index {
            write_whole(index, &raw, |from, to| fs::rename(from, to)).map_err(|e| failed(index, e))?;
        }
        match write_whole(&path, &raw, |from, to| fs::hard_link(from, to)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let text = read_optional(&path)?.unwrap_or_default();
                let holder: Claim = serde_json::from_str(&text).map_err(|e| failed(&path, e))?;
                if let Some(index) = &index {
                    if holder.same_holder(claim) {
                        // Ours already (a setup run again): the index keeps its bytes.
                        write_whole(index, &text, |from, to| fs::rename(from, to)).map_err(|e| failed(index, e))?;
                        return Ok(None);
                    }
                    remove(index)?;
                }
                return Ok(Some(Held { pool: pool.to_string(), claim: holder, raw: text }));
            }
            Err(e) => return Err(failed(&path, e)),
        }
        if set_last {
            let last = self.dir.join(pool).join(if claim.address.is_ipv6() { "last-6" } else { "last-4" });
            write_whole(&last, &claim.address.to_string(), |from, to| fs::rename(from, to))
                .map_err(|e| failed(&last, e))?;
        }
        Ok(None)
    }

    async fn delete(&mut self, held: &Held) -> StoreResult<()> {
        let path = self.claim_path(&held.pool, held.claim.address.is_ipv6(), number(held.claim.address));
        if read_optional(&path)?.as_deref() == Some(held.raw.as_str()) {
            remove(&path)?;
        }
        if let Some(index) = self.index_path(&held.pool, &held.claim) {
            remove(&index)?;
            // Empty folders of a container that holds nothing any more.
            if let Some(parent) = index.parent() {
                let _ = fs::remove_dir(parent);
            }
        }
        Ok(())
    }

    async fn held_by(&mut self, node: &str, container: Option<&str>) -> StoreResult<Vec<Held>> {
        let node_dir = self.dir.join(".holders").join(node);
        let containers: Vec<PathBuf> = match container {
            Some(c) => vec![node_dir.join(c)],
            None => match fs::read_dir(&node_dir) {
                Ok(entries) => entries.flatten().map(|e| e.path()).collect(),
                Err(_) => vec![],
            },
        };
        let mut held = vec![];
        for dir in containers {
            let Ok(entries) = fs::read_dir(&dir) else { continue };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let Some((pool, _)) = name.split_once('@') else { continue };
                if name.contains(".tmp") {
                    continue;
                }
                if let Some(raw) = read_optional(&entry.path())? {
                    let claim: Claim = serde_json::from_str(&raw).map_err(|e| failed(&entry.path(), e))?;
                    held.push(Held { pool: pool.to_string(), claim, raw });
                }
            }
        }
        Ok(held)
    }

    async fn claims(&mut self, pool: &str, v6: bool, span: Option<Span>) -> StoreResult<Vec<Held>> {
        Ok(self
            .read_claims(pool)?
            .into_iter()
            .filter(|h| h.claim.address.is_ipv6() == v6 && span.is_none_or(|s| s.contains(h.claim.address)))
            .collect())
    }

    async fn count(&mut self, pool: &str, v6: bool) -> StoreResult<u128> {
        Ok(self.claims(pool, v6, None).await?.len() as u128)
    }

    /// Always: the host's files answer every release at once.
    fn may_have_claimed(&self) -> bool {
        true
    }
}
