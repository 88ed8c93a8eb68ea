//! The man pages render clean and keep up with the code: every key the
//! hook accepts, every command, appear in netrt-hook(8).

use std::path::Path;
use std::process::Command;

use netrt_hook::request::plan::{ATTACHMENT_KEYS, BANDWIDTH_KEYS};
use netrt_integration::*;

fn man_page(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../man").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The page as text, with groff's escapes for hyphens undone.
fn man_text(name: &str) -> String {
    man_page(name).replace("\\-", "-").replace("\\&", "")
}

#[test]
fn man_pages_render_without_warnings() {
    for name in ["netrt-hook.8", "netrt.8"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../man").join(name);
        let output = Command::new("groff").args(["-man", "-ww", "-z"]).arg(&path).output().expect("groff runs");
        assert!(
            output.status.success() && output.stderr.is_empty(),
            "{name}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn every_key_and_command_is_in_the_man_page() {
    let page = man_text("netrt-hook.8");
    for key in BANDWIDTH_KEYS.iter().chain(ATTACHMENT_KEYS.iter()) {
        assert!(page.contains(key), "netrt-hook.8 lacks {key}");
    }
    let help = sh(&format!("{} --help", hook_binary().display()));
    let commands: Vec<&str> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    assert!(commands.len() >= 7, "commands from --help: {commands:?}");
    for command in commands {
        assert!(page.contains(command), "netrt-hook.8 lacks the command {command}");
    }
    let wrapper = man_text("netrt.8");
    for word in [
        "create",
        "start",
        "--defer-without-network",
        "apply-deferred",
        "daemon.json",
        "--log",
        "configure",
        "completions",
        "--dry-run",
        "--remove",
    ] {
        assert!(wrapper.contains(word), "netrt.8 lacks {word}");
    }
}

#[test]
fn completions_load_in_bash() {
    for (binary, name) in [(hook_binary(), "netrt-hook"), (wrapper_binary(), "netrt")] {
        let command = format!("source <({} completions bash) && complete -p {name}", binary.display());
        let output = Command::new("bash").args(["-c", &command]).output().unwrap();
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && text.contains(&format!(" {name}")),
            "{name}: {text}{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let words = sh(&format!("bash -c 'source <({} completions bash); COMP_WORDS=(netrt configure \"\"); COMP_CWORD=2; _netrt netrt \"\" configure; echo ${{COMPREPLY[*]}}'", wrapper_binary().display()));
    for engine in ["docker", "containerd", "podman"] {
        assert!(words.contains(engine), "netrt configure <TAB> offers {engine}: {words}");
    }
}

#[test]
fn completions_load_in_zsh() {
    require(sh_output("command -v zsh").status.success(), "zsh is not installed (integration/run installs it)");
    for (binary, name) in [(hook_binary(), "netrt-hook"), (wrapper_binary(), "netrt")] {
        let script = format!(
            "autoload -U compinit && compinit -u -D && source <({} completions zsh) && print -r -- \"$_comps[{name}] $+functions[_{name}]\"",
            binary.display()
        );
        let output = Command::new("zsh").args(["-f", "-c", &script]).output().unwrap();
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && text.trim() == format!("_{name} 1"),
            "zsh registers _{name} for {name}: {text}{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn completions_load_in_fish() {
    require(sh_output("command -v fish").status.success(), "fish is not installed (integration/run installs it)");
    let complete = |binary: &Path, line: &str| {
        let script = format!("{} completions fish | source; complete -C '{line}'", binary.display());
        let output = Command::new("fish").args(["--no-config", "-c", &script]).output().unwrap();
        assert!(output.status.success(), "fish: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    // clap's fish script completes options and commands, not positional values.
    let options = complete(&wrapper_binary(), "netrt configure --");
    for option in ["--config", "--dry-run", "--remove"] {
        assert!(options.lines().any(|l| l.starts_with(option)), "netrt configure --<TAB> offers {option}: {options}");
    }
    let commands = complete(&hook_binary(), "netrt-hook ");
    for command in ["check", "gc", "status", "pool", "renew"] {
        assert!(commands.lines().any(|l| l.starts_with(command)), "netrt-hook <TAB> offers {command}: {commands}");
    }
}
