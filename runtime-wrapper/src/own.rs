//! The wrapper's own commands, which no runtime has: `netrt configure` and
//! `netrt completions`. Anything else goes to the real runtime untouched.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};

use crate::configure::{self, Engine};

#[derive(Parser)]
#[command(
    name = "netrt",
    version,
    about = "OCI runtime wrapper for netrt; its own commands (every other command goes to the real runtime)"
)]
struct Own {
    #[command(subcommand)]
    command: OwnCommand,
}

#[derive(Subcommand)]
enum OwnCommand {
    /// Register netrt with an engine, keeping every other setting: Docker's
    /// daemon.json (runtime "netrt"), containerd's config.toml (runtime
    /// handler "netrt" for the CRI plugin) or podman's hooks.d file
    Configure {
        #[arg(value_enum)]
        engine: EngineName,
        /// The file to edit [default: /etc/docker/daemon.json,
        /// /etc/containerd/config.toml, /etc/containers/oci/hooks.d/netrt.json]
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Print what would change; write nothing
        #[arg(long)]
        dry_run: bool,
        /// Take out what `netrt configure` added (the original bytes when the
        /// file has not changed since)
        #[arg(long)]
        remove: bool,
        /// docker only: also turn on (with --remove: off) reading containers'
        /// NETRT_* variables (trust.env in /etc/netrt/netrt.json), for Docker
        /// before 24 and Compose 1.x, which cannot pass annotations. An
        /// image's ENV sets variables too: any image may then ask for netrt's
        /// settings
        #[arg(long)]
        env: bool,
    },
    /// Print a completion script for this shell, e.g. `source <(netrt completions bash)`
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum EngineName {
    Docker,
    Containerd,
    Podman,
}

/// Runs an own command if `arguments` (argv without argv[0]) start with
/// one; None: the arguments are for the real runtime.
pub fn run(arguments: &[OsString]) -> Option<ExitCode> {
    let first = arguments.first()?.to_str()?;
    if !["configure", "completions"].contains(&first) {
        return None;
    }
    let own = match Own::try_parse_from(std::iter::once(OsString::from("netrt")).chain(arguments.iter().cloned())) {
        Ok(own) => own,
        Err(e) => {
            let _ = e.print();
            return Some(ExitCode::from(if e.use_stderr() { 2 } else { 0 }));
        }
    };
    Some(match own.command {
        OwnCommand::Completions { shell } => {
            clap_complete::generate(shell, &mut Own::command(), "netrt", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        OwnCommand::Configure { engine, config, dry_run, remove, env } => {
            configure_engine(engine, config, dry_run, remove, env)
        }
    })
}

fn configure_engine(engine: EngineName, config: Option<PathBuf>, dry_run: bool, remove: bool, env: bool) -> ExitCode {
    let engine = match engine {
        EngineName::Docker => Engine::Docker,
        EngineName::Containerd => Engine::Containerd,
        EngineName::Podman => Engine::Podman,
    };
    if env && engine != Engine::Docker {
        eprintln!(
            "netrt configure: --env is for docker (Docker before 24 and Compose 1.x pass settings only as \
             variables); containerd and podman pass annotations"
        );
        return ExitCode::from(2);
    }
    let wrapper = match crate::own_path() {
        Ok(path) => path,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let request = configure::Request {
        engine,
        config: config.unwrap_or_else(|| engine.default_config().into()),
        hook: crate::hook_path(&wrapper).display().to_string(),
        wrapper: wrapper.display().to_string(),
        remove,
        dry_run,
    };
    let netrt_config = netrt_hook::config::file::config_path();
    let applied = configure::apply(&request).and_then(|mut lines| {
        if env {
            lines.extend(configure::apply_env(&netrt_config, !remove, dry_run)?);
        }
        Ok(lines)
    });
    match applied {
        Ok(lines) => {
            lines.iter().for_each(|line| println!("{line}"));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
