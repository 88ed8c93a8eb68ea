//! The claim store the configuration chose, host-wide files or etcd,
//! behind one type that is itself a `ClaimStore`, and the one place that opens it.

use super::etcd::{EtcdStore, Liveness, NodeLiveness};
use super::host::HostStore;
use super::store::{Claim, ClaimStore, Held, StoreResult};
use crate::config::pools::{Addressing, Pools, Registry, Span};

/// Opens the store the configuration names. With `budget`, the registry's
/// timeout bounds everything this run asks of it (a container's setup).
pub async fn open(pools: &Pools, budget: bool) -> StoreResult<AnyStore> {
    match &pools.registry {
        Registry::Host => Ok(AnyStore::Host(HostStore::system())),
        Registry::Etcd(etcd) => Ok(AnyStore::Etcd(Box::new(EtcdStore::connect(etcd, budget).await?))),
    }
}

/// The store the configuration chose.
pub enum AnyStore {
    Host(HostStore),
    Etcd(Box<EtcdStore>),
}

macro_rules! delegate {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            AnyStore::Host($store) => $call.await,
            AnyStore::Etcd($store) => $call.await,
        }
    };
}

impl ClaimStore for AnyStore {
    async fn register(
        &mut self,
        pool: &str,
        addressing: &Addressing,
        node: &str,
    ) -> StoreResult<Option<(Addressing, String)>> {
        delegate!(self, s => s.register(pool, addressing, node))
    }
    async fn last(&mut self, pool: &str, v6: bool) -> StoreResult<Option<u128>> {
        delegate!(self, s => s.last(pool, v6))
    }
    async fn first_unclaimed(
        &mut self,
        pool: &str,
        span: Span,
        excluded: &dyn Fn(u128) -> bool,
    ) -> StoreResult<Option<u128>> {
        delegate!(self, s => s.first_unclaimed(pool, span, excluded))
    }
    async fn create(&mut self, pool: &str, claim: &Claim, set_last: bool) -> StoreResult<Option<Held>> {
        delegate!(self, s => s.create(pool, claim, set_last))
    }
    async fn delete(&mut self, held: &Held) -> StoreResult<()> {
        delegate!(self, s => s.delete(held))
    }
    async fn held_by(&mut self, node: &str, container: Option<&str>) -> StoreResult<Vec<Held>> {
        delegate!(self, s => s.held_by(node, container))
    }
    async fn claims(&mut self, pool: &str, v6: bool, span: Option<Span>) -> StoreResult<Vec<Held>> {
        delegate!(self, s => s.claims(pool, v6, span))
    }
    async fn count(&mut self, pool: &str, v6: bool) -> StoreResult<u128> {
        delegate!(self, s => s.count(pool, v6))
    }
    async fn forget_conflicts(&mut self, node: &str, container: &str) -> StoreResult<()> {
        delegate!(self, s => s.forget_conflicts(node, container))
    }
    fn may_have_claimed(&self) -> bool {
        match self {
            AnyStore::Host(s) => s.may_have_claimed(),
            AnyStore::Etcd(s) => s.may_have_claimed(),
        }
    }
}

impl AnyStore {
    /// Refreshes this node's liveness where the registry keeps it (etcd);
    /// None for host-wide claims, which no other node could reclaim.
    pub async fn refresh_liveness(&mut self, node: &str, lease: Option<i64>) -> StoreResult<Option<Liveness>> {
        match self {
            AnyStore::Host(_) => Ok(None),
            AnyStore::Etcd(store) => store.refresh_liveness(node, lease).await.map(Some),
        }
    }

    /// How often this node's liveness needs a refresh: a third of its
    /// `node_ttl`; None where the registry keeps none.
    pub fn liveness_interval(&self) -> Option<std::time::Duration> {
        match self {
            AnyStore::Host(_) => None,
            AnyStore::Etcd(store) => Some(std::time::Duration::from_millis(store.node_ttl_ms() / 3)),
        }
    }

    /// Notes a conflict fencing found, for `pool show` (etcd only).
    pub async fn note_conflict(
        &mut self,
        holder: (&str, &str),
        pool: &str,
        address: std::net::IpAddr,
        text: &str,
    ) -> StoreResult<()> {
        match self {
            AnyStore::Host(_) => Ok(()),
            AnyStore::Etcd(store) => store.note_conflict(holder, pool, address, text).await,
        }
    }

    /// The conflicts fencing noted in a pool: (node, container, text).
    pub async fn conflicts(&mut self, pool: &str) -> StoreResult<Vec<(String, String, String)>> {
        match self {
            AnyStore::Host(_) => Ok(vec![]),
            AnyStore::Etcd(store) => store.conflicts(pool).await,
        }
    }

    /// The nodes the registry knows, with their liveness (etcd only).
    pub async fn nodes(&mut self) -> StoreResult<Vec<NodeLiveness>> {
        match self {
            AnyStore::Host(_) => Ok(vec![]),
            AnyStore::Etcd(store) => store.nodes().await,
        }
    }
}
