//! Cluster-wide claims in etcd. The hook is a short-lived client: it
//! connects, makes or releases its claims with transactions (a compare on
//! the claim's key, never a read-modify-write) and exits; no lease, no
//! keep-alive, no daemon.
//!
//! Keys under the configured prefix:
//! `pools/NAME/addressing` and `pools/NAME/registered-by` (the first node's),
//! `pools/NAME/claims/4/c6336464` (one per address, sorted like addresses),
//! `pools/NAME/last/4` (allocation's cursor), and
//! `nodes/NODE/CONTAINER/NAME/4/c6336464` (the same claim, found by holder),
//! `alive/NODE` (the node's liveness, on a lease of `node_ttl`), and
//! `dead/NODE` (since when other nodes have seen its liveness gone), and
//! `conflicts/NODE/CONTAINER/POOL/4/c6336464` (what fencing found another
//! holding; deleted with the container's claims), and
//! `reclaimed/NODE/POOL/4/c6336464` (what other nodes took back from a dead
//! node, or kept as in use on the wire; gone when the node comes back).

use std::collections::BTreeSet;
use std::time::Duration;

use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions, Identity, PutOptions,
    TlsOptions, Txn, TxnOp, TxnOpResponse,
};
use tokio::time::Instant;

use super::store::{address_key, Claim, ClaimStore, Held, StoreError, StoreResult};
use crate::config::pools::{number, Addressing, Etcd, Span};

/// The pause after a round in which no member answered, doubling up to
/// the last: an election takes about a second.
const FIRST_PAUSE: Duration = Duration::from_millis(50);
const LAST_PAUSE: Duration = Duration::from_millis(400);

/// How many addresses one read of claims covers while looking for a free one.
const WINDOW: u128 = 1024;

pub struct EtcdStore {
    client: Client,
    config: Etcd,
    options: ConnectOptions,
    /// The member this run talks to; another on a failed connection.
    member: usize,
    prefix: String,
    timeout: Duration,
    /// When set, no request may end later (a setup's whole budget).
    budget: Option<Instant>,
    endpoints: String,
    registered: BTreeSet<String>,
    /// Allocation's cursors, read along with the registration.
    cursors: std::collections::BTreeMap<(String, bool), Option<u128>>,
    /// Whether a claim's creation was sent (see `may_have_claimed`).
    sent_a_claim: bool,
}

fn failed(e: etcd_client::Error) -> StoreError {
    StoreError::Failed(format!("etcd refused: {e}"))
}

fn tls_options(etcd: &Etcd) -> StoreResult<Option<TlsOptions>> {
    let https = etcd.endpoints.iter().any(|e| e.starts_with("https://"));
    if !https {
        return Ok(None);
    }
    let read = |path: &str| std::fs::read(path).map_err(|e| StoreError::Failed(format!("cannot read {path}: {e}")));
    let mut tls = TlsOptions::new();
    if let Some(ca) = &etcd.ca {
        tls = tls.ca_certificate(Certificate::from_pem(read(ca)?));
    }
    if let (Some(cert), Some(key)) = (&etcd.cert, &etcd.key) {
        tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
    }
    Ok(Some(tls))
}

/// Whether an error means that the member did not answer (refused, reset,
/// gRPC's CANCELLED 1, DEADLINE_EXCEEDED 4, UNAVAILABLE 14): the next
/// member is tried.
fn no_answer(error: &etcd_client::Error) -> bool {
    match error {
        etcd_client::Error::TransportError(_) => true,
        etcd_client::Error::GRpcStatus(status) => {
            matches!(status.code() as i32, 1 | 4 | 14) || status.message() == "transport error"
        }
        _ => false,
    }
}

/// The words of an error and of every error behind it.
fn chain(error: &etcd_client::Error) -> String {
    let mut words = vec![error.to_string()];
    let mut source = std::error::Error::source(error);
    while let Some(e) = source {
        words.push(e.to_string());
        source = e.source();
    }
    words.dedup();
    words.join(": ")
}

/// A member that answered and refused the TLS session (no client
/// certificate, an unknown CA, a name that does not match) is no member
/// that did not answer: it is said as what it is.
fn tls_refusal(error: &etcd_client::Error) -> Option<StoreError> {
    let words = chain(error);
    let lower = words.to_lowercase();
    ["certificate", "alert", "handshake", "tls"]
        .iter()
        .any(|w| lower.contains(w))
        .then(|| StoreError::Failed(format!("etcd refused the TLS session: {words}")))
}

fn unreachable(timeout: Duration, endpoints: &str) -> StoreError {
    StoreError::Unreachable(format!(
        "the address registry did not answer within {} (etcd at {endpoints})",
        crate::request::units::format_duration_us(timeout.as_micros() as u64)
    ))
}

impl EtcdStore {
    /// Connects within the configured timeout; with `budget`, every later
    /// request must also end by then.
    pub async fn connect(etcd: &Etcd, budget: bool) -> StoreResult<EtcdStore> {
        let timeout = Duration::from_millis(etcd.timeout_ms);
        let mut options = ConnectOptions::new().with_connect_timeout(timeout).with_timeout(timeout);
        if let Some(tls) = tls_options(etcd)? {
            options = options.with_tls(tls);
        }
        if let (Some(user), Some(file)) = (&etcd.user, &etcd.password_file) {
            let password =
                std::fs::read_to_string(file).map_err(|e| StoreError::Failed(format!("cannot read {file}: {e}")))?;
            options = options.with_user(user.clone(), password.trim_end_matches(['\n', '\r']).to_string());
        }
        let deadline = Instant::now() + timeout;
        // Members in turn, from one that differs per process, so that
        // hooks spread over the cluster and a dead member costs one try.
        let first = std::process::id() as usize % etcd.endpoints.len();
        let unreachable = || unreachable(timeout, &etcd.endpoints.join(", "));
        // Connecting is lazy, but with a user it authenticates at once: a
        // member that does not answer then costs one try, as in `request`.
        let mut connected = None;
        for member in (0..etcd.endpoints.len()).map(|i| (first + i) % etcd.endpoints.len()) {
            let attempt = Client::connect([&etcd.endpoints[member]], Some(options.clone()));
            match tokio::time::timeout_at(deadline, attempt).await {
                Err(_) => return Err(unreachable()),
                Ok(Ok(client)) => {
                    connected = Some((client, member));
                    break;
                }
                Ok(Err(e)) => match tls_refusal(&e) {
                    Some(refusal) => return Err(refusal),
                    None if no_answer(&e) => continue,
                    None => return Err(failed(e)),
                },
            }
        }
        let (client, member) = connected.ok_or_else(unreachable)?;
        let mut store = EtcdStore {
            client,
            config: etcd.clone(),
            options,
            member,
            prefix: etcd.prefix.clone(),
            timeout,
            budget: Some(deadline),
            endpoints: etcd.endpoints.join(", "),
            registered: BTreeSet::new(),
            cursors: Default::default(),
            sent_a_claim: false,
        };
        if !budget {
            store.budget = None;
        }
        Ok(store)
    }

    /// The registry did not answer; `last` is what the last member said.
    fn unreachable(&self, last: Option<String>) -> StoreError {
        match (unreachable(self.timeout, &self.endpoints), last) {
            (StoreError::Unreachable(text), Some(last)) => {
                StoreError::Unreachable(format!("{text}; the last member tried: {last}"))
            }
            (error, _) => error,
        }
    }

    /// Sends a request to the current member, and on a failed connection
    /// to the next ones, each once, all within the timeout (and budget).
    async fn request<T, F, Fut>(&mut self, make: F) -> StoreResult<T>
    where
        F: Fn(Client) -> Fut,
        Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
    {
        let mut deadline = Instant::now() + self.timeout;
        if let Some(budget) = self.budget {
            deadline = deadline.min(budget);
        }
        let members = self.config.endpoints.len();
        let mut pause = FIRST_PAUSE;
        loop {
            let mut last = None;
            for attempt in 0..members {
                if attempt > 0 {
                    self.member = (self.member + 1) % members;
                    let endpoint = [&self.config.endpoints[self.member]];
                    let connect = Client::connect(endpoint, Some(self.options.clone()));
                    match tokio::time::timeout_at(deadline, connect).await {
                        Ok(Ok(client)) => self.client = client,
                        Ok(Err(e)) => match tls_refusal(&e) {
                            Some(refusal) => return Err(refusal),
                            None => {
                                last = Some(chain(&e));
                                continue;
                            }
                        },
                        Err(_) => return Err(self.unreachable(last)),
                    }
                }
                match tokio::time::timeout_at(deadline, make(self.client.clone())).await {
                    Err(_) => return Err(self.unreachable(last)),
                    Ok(Err(e)) => match tls_refusal(&e) {
                        Some(refusal) => return Err(refusal),
                        None if no_answer(&e) => last = Some(chain(&e)),
                        None => return Err(failed(e)),
                    },
                    Ok(Ok(value)) => return Ok(value),
                }
            }
            // No member answered: all down, or the cluster between two
            // leaders (etcd answers UNAVAILABLE while it elects one). Round
            // again, a little later each time, until the deadline.
            if Instant::now() + pause >= deadline {
                return Err(self.unreachable(last));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(LAST_PAUSE);
        }
    }

    /// Sends one transaction (see `request`).
    async fn txn(&mut self, txn: &Txn) -> StoreResult<etcd_client::TxnResponse> {
        self.request(|mut kv| {
            let txn = txn.clone();
            async move { kv.txn(txn).await }
        })
        .await
    }

    /// Keeps this node's liveness key alive: renews `lease` (the one the
    /// node's last run left) in one round trip, or, when there is none or
    /// it has lapsed, puts the key anew on a lease of `node_ttl`.
    pub async fn refresh_liveness(&mut self, node: &str, lease: Option<i64>) -> StoreResult<Liveness> {
        if let Some(id) = lease {
            let renewed = self
                .request(move |mut client| async move {
                    match client.lease_keep_alive(id).await {
                        Ok(_) => Ok(true),
                        // etcd no longer has the lease: it lapsed.
                        Err(etcd_client::Error::LeaseKeepAliveError(_)) => Ok(false),
                        Err(e) => Err(e),
                    }
                })
                .await?;
            if renewed {
                return Ok(Liveness { lease: id, lapsed: false });
            }
        }
        let ttl = self.config.node_ttl_s;
        let granted = self.request(move |mut client| async move { client.lease_grant(ttl, None).await }).await?;
        let id = granted.id();
        let key = format!("{}alive/{node}", self.prefix);
        let value = serde_json::json!({ "since": super::store::now() }).to_string();
        // Back: no node counts it dead any more.
        let txn = Txn::new().and_then([
            TxnOp::put(key, value, Some(PutOptions::new().with_lease(id))),
            TxnOp::delete(self.dead_key(node), None),
            TxnOp::delete(self.reclaimed_prefix(node), Some(DeleteOptions::new().with_prefix())),
        ]);
        self.txn(&txn).await?;
        Ok(Liveness { lease: id, lapsed: lease.is_some() })
    }

    fn dead_key(&self, node: &str) -> String {
        format!("{}dead/{node}", self.prefix)
    }

    fn alive_key(&self, node: &str) -> String {
        format!("{}alive/{node}", self.prefix)
    }

    /// Notes that `node`'s liveness is gone, unless it is back or noted
    /// already; returns since when it is noted gone (None: it is alive).
    pub async fn note_dead(&mut self, node: &str) -> StoreResult<Option<u64>> {
        let (alive, dead) = (self.alive_key(node), self.dead_key(node));
        let since = super::store::now();
        let txn = Txn::new()
            .when([
                Compare::create_revision(alive.clone(), CompareOp::Equal, 0),
                Compare::create_revision(dead.clone(), CompareOp::Equal, 0),
            ])
            .and_then([TxnOp::put(dead.clone(), serde_json::json!({ "since": since }).to_string(), None)])
            .or_else([TxnOp::get(alive, None), TxnOp::get(dead, None)]);
        let response = self.txn(&txn).await?;
        if response.succeeded() {
            return Ok(Some(since));
        }
        let values = got(&response);
        if values.first().cloned().flatten().is_some() {
            return Ok(None);
        }
        let noted = values.get(1).cloned().flatten().unwrap_or_default();
        Ok(Some(since_of(&noted).unwrap_or(since)))
    }

    /// Releases a dead node's claim, or turns it into a mark of an address
    /// in use on the wire: only if the claim is still exactly `held` and
    /// the node is still without liveness (one transaction, so two nodes
    /// reclaiming at once act on a claim once). False: not done.
    pub async fn reclaim(&mut self, held: &Held, (node, by): (&str, &str), mark: Option<&Claim>) -> StoreResult<bool> {
        let (v6, n) = (held.claim.address.is_ipv6(), number(held.claim.address));
        let key = self.claim_key(&held.pool, v6, n);
        // What pool show tells of the dead node, in the same transaction.
        let record = format!("{}{}/{}", self.reclaimed_prefix(node), held.pool, address_key(v6, n));
        let told = serde_json::json!({
            "pool": held.pool,
            "address": held.claim.address,
            "was": held.claim.holder(),
            "by": by,
            "at": super::store::now(),
            "kept": mark.and_then(|m| m.wire.clone()),
        });
        // etcd takes one change per key in a transaction: the mark replaces
        // the claim in place.
        let mut changes = vec![match mark {
            Some(mark) => TxnOp::put(key.clone(), mark.to_json(), None),
            None => TxnOp::delete(key.clone(), None),
        }];
        changes.extend(self.index_key(&held.pool, &held.claim).map(|i| TxnOp::delete(i, None)));
        changes.push(TxnOp::put(record, told.to_string(), None));
        let txn = Txn::new()
            .when([
                Compare::value(key, CompareOp::Equal, held.raw.clone()),
                Compare::create_revision(self.alive_key(node), CompareOp::Equal, 0),
            ])
            .and_then(changes);
        let response = self.txn(&txn).await?;
        Ok(response.succeeded())
    }

    fn conflicts_prefix(&self, node: &str, container: &str) -> String {
        format!("{}conflicts/{node}/{container}/", self.prefix)
    }

    /// Notes what fencing found: an address of `container` on `node`
    /// that another holds now (`text` says which and who).
    pub async fn note_conflict(
        &mut self,
        (node, container): (&str, &str),
        pool: &str,
        address: std::net::IpAddr,
        text: &str,
    ) -> StoreResult<()> {
        let key = format!(
            "{}{pool}/{}",
            self.conflicts_prefix(node, container),
            address_key(address.is_ipv6(), number(address))
        );
        let value = serde_json::json!({ "pool": pool, "conflict": text }).to_string();
        self.request(|mut kv| {
            let (key, value) = (key.clone(), value.clone());
            async move { kv.put(key, value, None).await }
        })
        .await
        .map(|_| ())
    }

    /// The conflicts noted in `pool`: (node, container, what).
    pub async fn conflicts(&mut self, pool: &str) -> StoreResult<Vec<(String, String, String)>> {
        let prefix = format!("{}conflicts/", self.prefix);
        let mut found = vec![];
        for (key, value) in self.range(prefix.clone(), prefix_end(&prefix), GetOptions::new()).await? {
            let parts: Vec<&str> = key.strip_prefix(&prefix).unwrap_or_default().split('/').collect();
            let value: serde_json::Value = serde_json::from_str(&value).unwrap_or_default();
            if parts.len() >= 4 && value["pool"] == pool {
                let text = value["conflict"].as_str().unwrap_or_default().to_string();
                found.push((parts[0].to_string(), parts[1].to_string(), text));
            }
        }
        Ok(found)
    }

    /// Forgets the conflicts noted for any container of `node` (a dead node
    /// whose claims are all reclaimed, or released by hand).
    pub async fn forget_node_conflicts(&mut self, node: &str) -> StoreResult<()> {
        let prefix = format!("{}conflicts/{node}/", self.prefix);
        self.delete_prefix(prefix).await
    }

    /// Forgets a node gone for good (`pool release --node`): its noted
    /// conflicts, that it was seen dead, and what was reclaimed from it.
    pub async fn forget_node(&mut self, node: &str) -> StoreResult<()> {
        let options = || Some(DeleteOptions::new().with_prefix());
        let txn = Txn::new().and_then([
            TxnOp::delete(format!("{}conflicts/{node}/", self.prefix), options()),
            TxnOp::delete(self.reclaimed_prefix(node), options()),
            TxnOp::delete(self.dead_key(node), None),
        ]);
        self.txn(&txn).await.map(|_| ())
    }

    async fn delete_prefix(&mut self, prefix: String) -> StoreResult<()> {
        self.request(|mut kv| {
            let prefix = prefix.clone();
            async move { kv.delete(prefix, Some(DeleteOptions::new().with_prefix())).await }
        })
        .await
        .map(|_| ())
    }

    fn reclaimed_prefix(&self, node: &str) -> String {
        format!("{}reclaimed/{node}/", self.prefix)
    }

    /// What other nodes reclaimed or kept from dead nodes in `pool`, one
    /// line per address, by node.
    pub async fn reclaimed(&mut self, pool: &str) -> StoreResult<Vec<(String, String)>> {
        let prefix = format!("{}reclaimed/", self.prefix);
        let mut found = vec![];
        for (key, value) in self.range(prefix.clone(), prefix_end(&prefix), GetOptions::new()).await? {
            let node = key.strip_prefix(&prefix).unwrap_or_default().split('/').next().unwrap_or_default();
            let v: serde_json::Value = serde_json::from_str(&value).unwrap_or_default();
            if v["pool"] != pool {
                continue;
            }
            let (address, was, by) = (v["address"].as_str(), v["was"].as_str(), v["by"].as_str());
            let at = super::store::format_time(v["at"].as_u64().unwrap_or(0));
            let what = match v["kept"].as_str() {
                Some(mac) => format!(
                    "kept {} ({}): it answered on the LAN from {mac}",
                    address.unwrap_or("?"),
                    was.unwrap_or("?")
                ),
                None => format!("reclaimed {} ({})", address.unwrap_or("?"), was.unwrap_or("?")),
            };
            found.push((node.to_string(), format!("{what}, by node {} at {at}", by.unwrap_or("?"))));
        }
        Ok(found)
    }

    /// Forgets that `node` was seen dead (it holds nothing any more).
    pub async fn forget_dead(&mut self, node: &str) -> StoreResult<()> {
        let key = self.dead_key(node);
        self.request(|mut kv| {
            let key = key.clone();
            async move { kv.delete(key, None).await }
        })
        .await
        .map(|_| ())
    }

    pub fn node_ttl_ms(&self) -> u64 {
        self.config.node_ttl_s as u64 * 1000
    }

    /// Every node the registry knows (by a liveness key or a claim), with
    /// the time its liveness key was put, if it has one.
    pub async fn nodes(&mut self) -> StoreResult<Vec<NodeLiveness>> {
        let alive_prefix = format!("{}alive/", self.prefix);
        let alive = self.range(alive_prefix.clone(), prefix_end(&alive_prefix), GetOptions::new()).await?;
        let nodes_prefix = format!("{}nodes/", self.prefix);
        let holders =
            self.range(nodes_prefix.clone(), prefix_end(&nodes_prefix), GetOptions::new().with_keys_only()).await?;
        let dead_prefix = format!("{}dead/", self.prefix);
        let dead = self.range(dead_prefix.clone(), prefix_end(&dead_prefix), GetOptions::new()).await?;
        let mut all: std::collections::BTreeMap<String, NodeLiveness> = holders
            .iter()
            .filter_map(|(key, _)| key.strip_prefix(&nodes_prefix)?.split('/').next())
            .map(|n| (n.to_string(), NodeLiveness { node: n.to_string(), alive_since: None, dead_since: None }))
            .collect();
        for (prefix, entries, alive) in [(&alive_prefix, alive, true), (&dead_prefix, dead, false)] {
            for (key, value) in entries {
                let node = key.strip_prefix(prefix.as_str()).unwrap_or(&key).to_string();
                let entry =
                    all.entry(node.clone()).or_insert(NodeLiveness { node, alive_since: None, dead_since: None });
                let since = Some(since_of(&value).unwrap_or(0));
                if alive {
                    entry.alive_since = since;
                } else {
                    entry.dead_since = since;
                }
            }
        }
        Ok(all.into_values().collect())
    }

    fn pool_key(&self, pool: &str, rest: &str) -> String {
        format!("{}pools/{pool}/{rest}", self.prefix)
    }

    fn claim_key(&self, pool: &str, v6: bool, n: u128) -> String {
        self.pool_key(pool, &format!("claims/{}", address_key(v6, n)))
    }

    fn index_key(&self, pool: &str, claim: &Claim) -> Option<String> {
        let (node, container) = (claim.node.as_ref()?, claim.container.as_ref()?);
        let key = address_key(claim.address.is_ipv6(), number(claim.address));
        Some(format!("{}nodes/{node}/{container}/{pool}/{key}", self.prefix))
    }

    fn last_key(&self, pool: &str, v6: bool) -> String {
        self.pool_key(pool, if v6 { "last/6" } else { "last/4" })
    }

    async fn range(&mut self, from: String, to: String, options: GetOptions) -> StoreResult<Vec<(String, String)>> {
        let options = options.with_range(to);
        let response = self
            .request(|mut kv| {
                let (from, options) = (from.clone(), options.clone());
                async move { kv.get(from, Some(options)).await }
            })
            .await?;
        Ok(response
            .kvs()
            .iter()
            .map(|kv| {
                (String::from_utf8_lossy(kv.key()).into_owned(), String::from_utf8_lossy(kv.value()).into_owned())
            })
            .collect())
    }

    /// The keys of a span's claims: from its first address's key to just
    /// after its last's.
    fn span_keys(&self, pool: &str, span: Span) -> (String, String) {
        (self.claim_key(pool, span.v6, span.first), format!("{}\0", self.claim_key(pool, span.v6, span.last)))
    }
}

/// A node's liveness after a refresh: its lease, and whether the lease of
/// its last run had lapsed (its key was gone meanwhile).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Liveness {
    pub lease: i64,
    pub lapsed: bool,
}

/// A node the registry knows, and since when its liveness key is there.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NodeLiveness {
    pub node: String,
    /// None: no liveness key (the node is gone, or never refreshed it).
    pub alive_since: Option<u64>,
    /// Since when another node has seen its liveness gone (reclaim counts
    /// from then).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dead_since: Option<u64>,
}

fn since_of(value: &str) -> Option<u64> {
    serde_json::from_str::<serde_json::Value>(value).ok()?["since"].as_u64()
}

/// The value each read of a transaction's taken branch found, in order.
fn got(response: &etcd_client::TxnResponse) -> Vec<Option<String>> {
    response
        .op_responses()
        .into_iter()
        .map(|r| match r {
            TxnOpResponse::Get(get) => get.kvs().first().map(|kv| String::from_utf8_lossy(kv.value()).into_owned()),
            _ => None,
        })
        .collect()
}

/// The key just after every key that starts with `prefix`.
fn prefix_end(prefix: &str) -> String {
    let mut end = prefix.as_bytes().to_vec();
    *end.last_mut().expect("a prefix is not empty") += 1;
    String::from_utf8(end).expect("the prefix ends in ASCII")
}

fn parse_held(pool: &str, raw: String) -> StoreResult<Held> {
    let claim: Claim = serde_json::from_str(&raw)
        .map_err(|e| StoreError::Failed(format!("a claim in etcd is damaged ({e}): {raw}")))?;
    Ok(Held { pool: pool.to_string(), claim, raw })
}

impl ClaimStore for EtcdStore {
    async fn register(
        &mut self,
        pool: &str,
        addressing: &Addressing,
        node: &str,
    ) -> StoreResult<Option<(Addressing, String)>> {
        if self.registered.contains(pool) {
            return Ok(None);
        }
        let (key, by) = (self.pool_key(pool, "addressing"), self.pool_key(pool, "registered-by"));
        let ours = serde_json::to_string(addressing).expect("serialises");
        // Registered already, the common case: one read-only transaction,
        // which etcd answers without a write to its log, and which brings
        // allocation's cursors along (see `last`).
        let reads = Txn::new().and_then([
            TxnOp::get(key.clone(), None),
            TxnOp::get(self.last_key(pool, false), None),
            TxnOp::get(self.last_key(pool, true), None),
        ]);
        let response = self
            .request(|mut kv| {
                let reads = reads.clone();
                async move { kv.txn(reads).await }
            })
            .await?;
        let values = got(&response);
        for (v6, value) in [(false, &values[1]), (true, &values[2])] {
            let cursor = value.as_ref().and_then(|v| v.parse::<std::net::IpAddr>().ok()).map(number);
            self.cursors.insert((pool.to_string(), v6), cursor);
        }
        if values[0].as_deref() == Some(ours.as_str()) {
            self.registered.insert(pool.to_string());
            return Ok(None);
        }
        let txn = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key.clone(), ours, None), TxnOp::put(by.clone(), node, None)])
            .or_else([TxnOp::get(key, None), TxnOp::get(by, None)]);
        let response = self.txn(&txn).await?;
        if !response.succeeded() {
            let values: Vec<String> = got(&response).into_iter().map(Option::unwrap_or_default).collect();
            let theirs: Addressing = serde_json::from_str(&values[0])
                .map_err(|e| StoreError::Failed(format!("pool {pool}'s registered addressing is damaged: {e}")))?;
            if theirs != *addressing {
                return Ok(Some((theirs, values[1].clone())));
            }
        }
        self.registered.insert(pool.to_string());
        Ok(None)
    }

    async fn last(&mut self, pool: &str, v6: bool) -> StoreResult<Option<u128>> {
        // Read a moment ago with the registration, in this very setup.
        if let Some(cursor) = self.cursors.remove(&(pool.to_string(), v6)) {
            return Ok(cursor);
        }
        let key = self.last_key(pool, v6);
        let response = self
            .request(|mut kv| {
                let key = key.clone();
                async move { kv.get(key, None).await }
            })
            .await?;
        Ok(response
            .kvs()
            .first()
            .and_then(|kv| String::from_utf8_lossy(kv.value()).parse::<std::net::IpAddr>().ok())
            .map(number))
    }

    async fn first_unclaimed(
        &mut self,
        pool: &str,
        span: Span,
        excluded: &dyn Fn(u128) -> bool,
    ) -> StoreResult<Option<u128>> {
        let mut first = span.first;
        loop {
            let last = span.last.min(first.saturating_add(WINDOW - 1));
            let window = Span { v6: span.v6, first, last };
            let (from, to) = self.span_keys(pool, window);
            let claimed: BTreeSet<String> =
                self.range(from, to, GetOptions::new().with_keys_only()).await?.into_iter().map(|(k, _)| k).collect();
            let mut n = first;
            loop {
                if !excluded(n) && !claimed.contains(&self.claim_key(pool, span.v6, n)) {
                    return Ok(Some(n));
                }
                if n == last {
                    break;
                }
                n += 1;
            }
            if last == span.last {
                return Ok(None);
            }
            first = last + 1;
        }
    }

    async fn create(&mut self, pool: &str, claim: &Claim, set_last: bool) -> StoreResult<Option<Held>> {
        self.sent_a_claim = true;
        let v6 = claim.address.is_ipv6();
        let key = self.claim_key(pool, v6, number(claim.address));
        let raw = claim.to_json();
        let mut puts = vec![TxnOp::put(key.clone(), raw.clone(), None)];
        let index = self.index_key(pool, claim);
        if let Some(index) = &index {
            puts.push(TxnOp::put(index.clone(), raw.clone(), None));
        }
        if set_last {
            puts.push(TxnOp::put(self.last_key(pool, v6), claim.address.to_string(), None));
        }
        let txn = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then(puts)
            .or_else([TxnOp::get(key, None)]);
        let response = self.txn(&txn).await?;
        if response.succeeded() {
            return Ok(None);
        }
        let existing = got(&response).into_iter().flatten().next();
        let Some(existing) = existing else {
            // Released between the compare and the read: try again.
            return Box::pin(self.create(pool, claim, set_last)).await;
        };
        let holder = parse_held(pool, existing)?;
        if let (true, Some(index)) = (holder.claim.same_holder(claim), index) {
            let raw = holder.raw.clone();
            self.request(|mut kv| {
                let (index, raw) = (index.clone(), raw.clone());
                async move { kv.put(index, raw, None).await }
            })
            .await?;
            return Ok(None);
        }
        Ok(Some(holder))
    }

    async fn delete(&mut self, held: &Held) -> StoreResult<()> {
        let key = self.claim_key(&held.pool, held.claim.address.is_ipv6(), number(held.claim.address));
        let index: Vec<TxnOp> =
            self.index_key(&held.pool, &held.claim).into_iter().map(|i| TxnOp::delete(i, None)).collect();
        let mut both = vec![TxnOp::delete(key.clone(), None)];
        both.extend(index.iter().cloned());
        // A container's claims go with what fencing noted for it: no extra
        // round trip.
        let mut index = index;
        if let (Some(node), Some(container)) = (&held.claim.node, &held.claim.container) {
            let conflicts =
                TxnOp::delete(self.conflicts_prefix(node, container), Some(DeleteOptions::new().with_prefix()));
            both.push(conflicts.clone());
            index.push(conflicts);
        }
        let txn =
            Txn::new().when([Compare::value(key, CompareOp::Equal, held.raw.clone())]).and_then(both).or_else(index);
        self.txn(&txn).await.map(|_| ())
    }

    async fn held_by(&mut self, node: &str, container: Option<&str>) -> StoreResult<Vec<Held>> {
        let node_prefix = format!("{}nodes/{node}/", self.prefix);
        let prefix = match container {
            Some(c) => format!("{node_prefix}{c}/"),
            None => node_prefix.clone(),
        };
        let response = self
            .request(|mut kv| {
                let prefix = prefix.clone();
                async move { kv.get(prefix, Some(GetOptions::new().with_prefix())).await }
            })
            .await?;
        let mut held = vec![];
        for kv in response.kvs() {
            let key = String::from_utf8_lossy(kv.key()).into_owned();
            let pool =
                key.strip_prefix(&node_prefix).and_then(|rest| rest.split('/').nth(1)).unwrap_or_default().to_string();
            held.push(parse_held(&pool, String::from_utf8_lossy(kv.value()).into_owned())?);
        }
        Ok(held)
    }

    async fn claims(&mut self, pool: &str, v6: bool, span: Option<Span>) -> StoreResult<Vec<Held>> {
        let whole = Span { v6, first: 0, last: if v6 { u128::MAX } else { u32::MAX as u128 } };
        let (from, to) = self.span_keys(pool, span.unwrap_or(whole));
        self.range(from, to, GetOptions::new()).await?.into_iter().map(|(_, raw)| parse_held(pool, raw)).collect()
    }

    async fn count(&mut self, pool: &str, v6: bool) -> StoreResult<u128> {
        let whole = Span { v6, first: 0, last: if v6 { u128::MAX } else { u32::MAX as u128 } };
        let (from, to) = self.span_keys(pool, whole);
        let response = self
            .request(|mut kv| {
                let (from, to) = (from.clone(), to.clone());
                async move { kv.get(from, Some(GetOptions::new().with_range(to).with_count_only())).await }
            })
            .await?;
        Ok(response.count() as u128)
    }

    async fn forget_conflicts(&mut self, node: &str, container: &str) -> StoreResult<()> {
        let prefix = self.conflicts_prefix(node, container);
        self.request(|mut kv| {
            let prefix = prefix.clone();
            async move { kv.delete(prefix, Some(DeleteOptions::new().with_prefix())).await }
        })
        .await
        .map(|_| ())
    }

    fn may_have_claimed(&self) -> bool {
        self.sent_a_claim
    }
}
