//! The step trait, and what the steps of one setup share: the plan, the
//! configuration, the sockets, the journal, and what earlier steps found.

use async_trait::async_trait;

use crate::config::pools::Pools;
use crate::config::Config;
use crate::error::{Error, KeyError, Result};
use crate::fault;
use crate::kernel::netlink::Link;
use crate::kernel::netns::NetNs;
use crate::kernel::sockets::Sockets;
use crate::request::plan::Plan;
use crate::state::journal::Journal;
use crate::state::record::Created;

/// When a step's apply runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Claims in the address registry: they settle the plan's addresses,
    /// which the host steps check.
    Addresses,
    /// Changes on the host and in the container's namespace.
    Host,
}

#[async_trait(?Send)]
pub trait Step {
    /// Its name in logs.
    fn name(&self) -> &'static str;

    fn stage(&self) -> Stage {
        Stage::Host
    }

    /// Whether apply runs without the host lock: it waits on the network
    /// (a DHCP server), and must not hold up the other containers.
    fn unlocked(&self) -> bool {
        false
    }

    /// What the step must get while the hook still has all its
    /// capabilities, before the runner drops them.
    fn open(&mut self, _namespace: &NetNs) -> std::result::Result<(), String> {
        Ok(())
    }

    /// Reads the host and refuses what cannot be done; changes nothing.
    async fn check(&mut self, setup: &mut Setup<'_>) -> Result<()>;

    /// The objects apply will make, as far as they are known now.
    fn planned(&self, _setup: &Setup<'_>) -> Vec<Created> {
        vec![]
    }

    /// Makes the change, telling the journal every object it made.
    async fn apply(&mut self, setup: &mut Setup<'_>) -> Result<()>;
}

/// What decides which steps a setup has.
pub struct Asked<'a> {
    pub plan: &'a Plan,
    pub pools: &'a Pools,
    pub who: &'a Who,
}

/// Whom a DHCP server is told it serves.
pub struct Who {
    pub id: String,
    pub hostname: Option<String>,
}

/// What the steps of one setup share: the plan, the configuration, the
/// sockets, the journal, and what earlier steps found or made.
pub struct Setup<'a> {
    pub id: String,
    pub plan: Plan,
    pub config: &'a Config,
    pub sockets: Sockets,
    /// The container's network namespace.
    pub namespace: &'a NetNs,
    /// The hook's own.
    pub host_namespace: &'a NetNs,
    pub journal: Journal<'a>,
    pub found: Found,
    /// Sub-steps done, for the test-only fault switch.
    pub(super) steps: u32,
}

/// What the steps found while checking, or made, for the steps after them.
#[derive(Default)]
pub struct Found {
    /// The largest frame the shaped interface will carry.
    pub frame_bytes: Option<u32>,
    /// The attached interface's MTU.
    pub mtu: Option<u32>,
    /// Where the attachment's traffic leaves the host.
    pub way_out: Option<WayOut>,
    /// The interface to shape, and where its limits go.
    pub placement: Option<Placement>,
    /// The IPv4 router a DHCP server named.
    pub leased_router: Option<std::net::Ipv4Addr>,
    /// The address registry the pool claims went to, open for a rollback.
    pub registry: Option<crate::pools::any_store::AnyStore>,
    /// The addresses of the host's own namespace and their interfaces,
    /// read once (see `Setup::read_host_addresses`).
    pub host_addresses: Option<Vec<(std::net::IpAddr, u32)>>,
    /// The addresses pool allocation gave (not asked for by the container).
    pub allocated: Vec<std::net::IpAddr>,
}

/// The host interface an attachment's traffic leaves by, where its
/// uplink may be.
#[derive(Debug, Clone)]
pub enum WayOut {
    /// Through a bridge: its ports.
    Bridge(Link),
    /// Through a macvlan's lower interface (and its parent, for a VLAN).
    Lower(Link),
    /// Through a VLAN sub-interface not made yet: its parent.
    Parent(Link),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// The interface's veth peer is on the host: shape there.
    HostSide { interface: Link, host_veth: Link },
    /// No host-side peer: shape inside the container's namespace.
    InNamespace { interface: Link },
}

impl Placement {
    pub fn interface(&self) -> &Link {
        match self {
            Placement::HostSide { interface, .. } | Placement::InNamespace { interface } => interface,
        }
    }

    pub fn host_veth(&self) -> Option<&Link> {
        match self {
            Placement::HostSide { host_veth, .. } => Some(host_veth),
            Placement::InNamespace { .. } => None,
        }
    }

    /// The largest frame the shaper will see.
    pub fn frame_bytes(&self) -> u32 {
        let interface = self.interface().frame_bytes();
        self.host_veth().map_or(interface, |veth| veth.frame_bytes().max(interface))
    }

    pub fn describe(&self) -> String {
        match self {
            Placement::HostSide { interface, host_veth } => {
                format!("{} via host veth {}", interface.name, host_veth.name)
            }
            Placement::InNamespace { interface } => format!("{} inside the container's namespace", interface.name),
        }
    }
}

impl<'a> Setup<'a> {
    pub fn new(
        config: &'a Config,
        plan: Plan,
        sockets: Sockets,
        namespaces: (&'a NetNs, &'a NetNs),
        journal: Journal<'a>,
    ) -> Setup<'a> {
        let (namespace, host_namespace) = namespaces;
        let id = journal.record.id.clone();
        let found = Found::default();
        Setup { id, plan, config, sockets, namespace, host_namespace, journal, found, steps: 0 }
    }

    /// `step_done` for a sub-step of the plan's leading setting.
    pub fn lead_step_done(&mut self) -> Result<()> {
        let (key, value) = self.lead();
        self.step_done(&key, &value)
    }

    /// Counts a finished sub-step; with the test-only fault switch, fails
    /// after the one it names.
    pub fn step_done(&mut self, key: &str, value: &str) -> Result<()> {
        self.steps += 1;
        fault::after_step(self.steps).map_err(|detail| Error::from(KeyError::new(key, value, detail)))
    }

    /// The plan's leading setting and its value, which a refusal names
    /// when no single key is at fault.
    pub fn lead(&self) -> (String, String) {
        let (key, value) = self.plan.lead_setting().expect("a plan has a lead setting");
        (key.to_string(), value.to_string())
    }

    /// Reads the addresses of the host's own namespace, once a setup:
    /// netrt never gives a container one of them.
    pub async fn read_host_addresses(&mut self) -> Result<()> {
        if self.found.host_addresses.is_none() {
            let read = self.sockets.host.all_addresses().await.map_err(|e| self.refuse(e.to_string()))?;
            self.found.host_addresses = Some(read);
        }
        Ok(())
    }

    /// Refuses a static address of the attachment that the host has,
    /// naming the host's interface that has it.
    pub async fn refuse_host_addresses(&mut self) -> Result<()> {
        self.read_host_addresses().await?;
        let attachment = self.attachment();
        let Some((address, index)) = self
            .found
            .host_addresses
            .iter()
            .flatten()
            .find(|(a, _)| attachment.addresses.iter().any(|c| c.address == *a))
            .copied()
        else {
            return Ok(());
        };
        let link = self.sockets.host.link_by_index(index).await.ok().flatten();
        let interface = link.map_or_else(|| format!("interface {index}"), |l| l.name);
        let reason =
            format!("{address} is an address of the host itself (on {interface}); netrt never gives it to a container");
        Err(self.attachment().refuse("net.ip", reason).into())
    }

    /// A refusal naming the plan's leading setting.
    pub fn refuse(&self, reason: impl Into<String>) -> Error {
        let (key, value) = self.lead();
        KeyError::new(&key, &value, reason).into()
    }

    /// The attachment's refusal for `key`.
    pub fn refuse_attachment(&self, key: &str, reason: impl Into<String>) -> Error {
        self.plan.attachment.as_ref().expect("an attachment step has an attachment").refuse(key, reason).into()
    }

    pub fn attachment(&self) -> &crate::request::attachment::Attachment {
        self.plan.attachment.as_ref().expect("an attachment step has an attachment")
    }
}
