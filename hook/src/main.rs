//! The netrt-hook binary: the OCI hook (createRuntime, prestart, poststop)
//! and the admin's commands, parsed by clap and handed to the library.

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use netrt_hook::commands::status;
use netrt_hook::request::origin::Origin;
use netrt_hook::runner::{self, Timing};

/// OCI hook that gives a container the network its net.* annotations ask for.
///
/// Run by the container runtime with the OCI state on stdin: from
/// createRuntime or prestart it applies the settings inside the container's
/// network namespace before the process starts; from poststop it removes
/// everything it made. Without a stage it goes by the state's status.
const SETTINGS_HELP: &str = "\
Settings, as annotations or as NETRT_* variables of the container (NETRT_EGRESS, ...):
  net.egress=RATE           limit on what the container sends: 10mbit, 1.5gbit, 500k, 10M, 1Gi
  net.ingress=RATE          limit on what the container receives
  net.egress.burst=SIZE     token bucket, e.g. 64k (default: 20 ms at the rate, at least one frame)
  net.ingress.burst=SIZE
  net.egress.latency=TIME   longest wait in the queue, e.g. 5ms (default 25ms)
  net.ingress.latency=TIME
Byte rates (10mbps) are refused: tc reads them as bytes per second.

Attachment (one extra interface in the container; exactly one of net.bridge, net.parent):
  net.bridge=BRIDGE         veth pair, host end on this existing bridge, e.g. br0
  net.parent=IFACE          macvlan child of this host interface, e.g. eth1
  net.vlan=1-4094           with net.parent: on IFACE.VLAN (made if missing);
                            with net.bridge: untagged access port of that VLAN
  net.macvlan.mode=MODE     bridge (default), private, vepa, passthru
  net.ifname=NAME           name in the container (default eth0, else first free ethN)
  net.ip=CIDR,...           198.51.100.10/24,2001:db8::10/64; dhcp for the IPv4
                            address from the LAN's DHCP server (dhcp,2001:db8::10/64)
  net.dhcp.timeout=TIME     with net.ip=dhcp: no lease by then refuses (default 5s, at most 60s)
  net.gateway=IP,...        default route per family, e.g. 198.51.100.1
  net.routes=ROUTE,...      203.0.113.0/24 via 198.51.100.1, 192.0.2.0/24
  net.mac=MAC               02:00:5e:10:00:01 (default: 02:42 + the IPv4 address)
  net.mtu=68-65535          e.g. 9000
  net.pool=NAME             attachment, addresses and gateways from a pool of
                            /etc/netrt/netrt.json; net.ip asks for exact ones

Policy: /etc/netrt/netrt.json (or the file NETRT_CONFIG names) bounds bridges,
parents, VLANs, subnets and the maximum rate.

Records: /run/netrt/containers. A refusal is one line on stderr,
netrt: KEY=\"VALUE\": reason, and exit status 1; the runtime then does not start the container.";

#[derive(Parser)]
#[command(name = "netrt-hook", version, after_help = SETTINGS_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Hook stage: apply the settings (the state is read from stdin)
    #[command(name = "createRuntime")]
    CreateRuntime {
        /// If the container's namespace has only loopback yet, keep the state
        /// and apply at start (`apply-deferred`); the netrt wrapper asks for this
        #[arg(long)]
        defer_without_network: bool,
    },
    /// Hook stage: the same as createRuntime, for runtimes that only run prestart
    Prestart,
    /// Hook stage: remove what setup made for the container
    Poststop,
    /// Validate settings and print the plan; needs no privileges, changes nothing
    Check {
        /// Check as a Kubernetes pod of this namespace (default: a local container)
        #[arg(long, value_name = "NAMESPACE")]
        pod: Option<String>,
        /// Settings as net.KEY=VALUE or NETRT_KEY=VALUE
        #[arg(value_name = "KEY=VALUE", required = true)]
        settings: Vec<String>,
    },
    /// Apply the settings that createRuntime deferred for this container;
    /// run by the netrt wrapper before `start`
    #[command(name = "apply-deferred")]
    ApplyDeferred {
        /// The container id
        id: String,
    },
    /// Remove what netrt made for containers whose network namespace is gone
    Gc,
    /// Renew the DHCP leases past half their time (T1) and move their
    /// addresses' lifetimes on; run every 30 s by netrt-renew.timer. A lease
    /// never renewed ends, and the kernel drops its address then
    Renew {
        /// Renew every lease now
        #[arg(long)]
        all: bool,
    },
    /// Show the containers netrt manages and the live counters of their limits
    Status {
        /// Only this container
        id: Option<String>,
        /// Show the declared uplinks instead: capacity, what is guaranteed
        /// on each in each direction, and each container's guarantee,
        /// ceiling and live rate
        #[arg(long, conflicts_with = "id")]
        uplinks: bool,
        /// Print JSON instead of a table (the same as --format json)
        #[arg(long)]
        json: bool,
        /// table, json, or prometheus (the text format node_exporter's
        /// textfile collector reads)
        #[arg(long, value_enum, default_value = "table")]
        format: StatusFormat,
    },
    /// Address pools: what they hold, reservations, and the
    /// claims of a node that is gone for good
    Pool {
        #[command(subcommand)]
        command: PoolCommand,
    },
    /// Print a completion script for this shell, e.g.
    /// `source <(netrt-hook completions bash)`
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Subcommand)]
enum PoolCommand {
    /// Each pool: attachment, ranges, used and free addresses per family
    List {
        #[arg(long)]
        json: bool,
    },
    /// Each claimed address of a pool: node, container and since when, or
    /// the note of a reservation
    Show {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Reserve addresses no container may get (the hosts' own, routers)
    Reserve {
        name: String,
        /// ADDRESS or FIRST-LAST, e.g. 198.51.100.2-198.51.100.9
        #[arg(value_name = "ADDRESS|FIRST-LAST", required = true)]
        addresses: Vec<String>,
        /// Why, shown by `pool show`
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Give reserved addresses back to allocation
    Unreserve {
        name: String,
        #[arg(value_name = "ADDRESS|FIRST-LAST", required = true)]
        addresses: Vec<String>,
    },
    /// Every node of the cluster's registry: alive (its liveness key, kept
    /// by each of its runs that reach the registry and its renewal timer)
    /// or gone
    Nodes {
        #[arg(long)]
        json: bool,
    },
    /// Release every claim of a node that is gone for good
    Release {
        /// The node's name, as its `node` setting (or host name) gave it
        #[arg(long, required = true)]
        node: String,
    },
}

fn pool(command: PoolCommand) -> netrt_hook::error::Result<()> {
    use netrt_hook::commands::pool as commands;
    let out = match command {
        PoolCommand::List { json } => commands::list(json)?,
        PoolCommand::Show { name, json } => commands::show(&name, json)?,
        PoolCommand::Reserve { name, addresses, note } => commands::reserve(&name, &addresses, &note)?,
        PoolCommand::Unreserve { name, addresses } => commands::unreserve(&name, &addresses)?,
        PoolCommand::Nodes { json } => commands::nodes(json)?,
        PoolCommand::Release { node } => commands::release_node(&node)?,
    };
    print!("{out}");
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        None => runner::run(None, std::io::stdin(), Timing::Now),
        Some(Command::CreateRuntime { defer_without_network }) => {
            let timing = if defer_without_network { Timing::DeferWithoutNetwork } else { Timing::Now };
            runner::run(Some("createRuntime"), std::io::stdin(), timing)
        }
        Some(Command::Prestart) => runner::run(Some("prestart"), std::io::stdin(), Timing::Now),
        Some(Command::Poststop) => runner::run(Some("poststop"), std::io::stdin(), Timing::Now),
        Some(Command::ApplyDeferred { id }) => runner::apply_deferred(&id),
        Some(Command::Check { pod, settings }) => {
            let origin = pod.as_deref().map_or(Origin::Local, Origin::pod);
            netrt_hook::commands::check::check(&settings, &origin).map(|lines| {
                lines.iter().for_each(|line| println!("{line}"));
            })
        }
        Some(Command::Status { id, json, format, uplinks }) => {
            show_status(id.as_deref(), uplinks, if json { StatusFormat::Json } else { format })
        }
        Some(Command::Pool { command }) => pool(command),
        Some(Command::Completions { shell }) => {
            clap_complete::generate(shell, &mut Cli::command(), "netrt-hook", &mut std::io::stdout());
            Ok(())
        }
        Some(Command::Renew { all }) => netrt_hook::commands::renew::renew(all).map(|lines| {
            for line in lines {
                println!("{line}");
            }
        }),
        Some(Command::Gc) => runner::gc::gc().map(|removed| {
            if removed.is_empty() {
                println!("nothing to remove");
            }
            for line in removed {
                println!("{line}");
            }
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum StatusFormat {
    Table,
    Json,
    Prometheus,
}

fn show_status(id: Option<&str>, uplinks: bool, format: StatusFormat) -> netrt_hook::error::Result<()> {
    if uplinks {
        let uplinks = netrt_hook::commands::uplinks::collect()?;
        match format {
            StatusFormat::Json => {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({ "uplinks": uplinks }))
                        .expect("status serialises")
                )
            }
            StatusFormat::Table => print!("{}", netrt_hook::commands::uplinks::render_table(&uplinks)),
            StatusFormat::Prometheus => print!("{}", netrt_hook::commands::uplinks::render_prometheus(&uplinks)),
        }
        return Ok(());
    }
    let entries = status::collect(id)?;
    match format {
        StatusFormat::Json => println!("{}", serde_json::to_string_pretty(&entries).expect("status serialises")),
        StatusFormat::Table => print!("{}", status::render_table(&entries)),
        StatusFormat::Prometheus => {
            print!("{}", status::render_prometheus(&entries));
            // The uplinks too, unless one container was asked for; a file
            // that cannot be read costs the uplinks only, said as a comment.
            if id.is_none() {
                match netrt_hook::commands::uplinks::collect() {
                    Ok(uplinks) => print!("{}", netrt_hook::commands::uplinks::render_prometheus(&uplinks)),
                    Err(e) => println!("# netrt: the uplinks could not be read: {}", e.to_string().replace('\n', " ")),
                }
                // The pools and the registry's nodes: a registry that does
                // not answer costs only them, said the same way.
                match netrt_hook::commands::pool::render_prometheus() {
                    Ok(pools) => print!("{pools}"),
                    Err(e) => println!("# netrt: the pools could not be read: {}", e.to_string().replace('\n', " ")),
                }
            }
        }
    }
    Ok(())
}
