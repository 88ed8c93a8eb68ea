//! What the wrapper reads from the runtime's command line, without changing
//! it: the global `--log`, `--log-format` and `--root`, the command, and for
//! `create`/`run` the bundle and for `start` the container id. runc and crun
//! take flags as `--name value`, `--name=value` and (runc) `-name value`.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// Global flags of runc and crun that take a value.
const GLOBAL_VALUE_FLAGS: [&str; 7] = ["log", "log-format", "log-level", "root", "criu", "rootless", "cgroup-manager"];

/// Flags of create, run and start that take a value.
const COMMAND_VALUE_FLAGS: [&str; 7] = ["bundle", "b", "console-socket", "pid-file", "preserve-fds", "config", "f"];

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub command: Option<String>,
    pub log: Option<PathBuf>,
    pub log_format: Option<String>,
    pub root: Option<String>,
    /// The bundle of create/run: `--bundle`/`-b`, else the working directory.
    pub bundle: Option<PathBuf>,
    /// The first argument after the command's flags.
    pub container_id: Option<String>,
    pub help: bool,
}

/// A flag split into name (without dashes) and inline value.
fn flag(argument: &OsStr) -> Option<(String, Option<OsString>)> {
    let bytes = argument.as_bytes();
    if bytes.len() < 2 || bytes[0] != b'-' || bytes == b"--" {
        return None;
    }
    let text = bytes.strip_prefix(b"--").unwrap_or(&bytes[1..]);
    match text.iter().position(|&b| b == b'=') {
        Some(at) => Some((
            String::from_utf8_lossy(&text[..at]).into_owned(),
            Some(OsStr::from_bytes(&text[at + 1..]).to_os_string()),
        )),
        None => Some((String::from_utf8_lossy(text).into_owned(), None)),
    }
}

/// Reads `arguments` (argv without argv[0]).
pub fn parse(arguments: &[OsString]) -> Invocation {
    let mut invocation = Invocation::default();
    let mut rest = arguments.iter();
    while let Some(argument) = rest.next() {
        let Some((name, inline)) = flag(argument) else {
            invocation.command = Some(argument.to_string_lossy().into_owned());
            break;
        };
        let mut value = || inline.clone().or_else(|| rest.next().cloned());
        match name.as_str() {
            "log" => invocation.log = value().map(PathBuf::from),
            "log-format" => invocation.log_format = value().map(|v| v.to_string_lossy().into_owned()),
            "root" => invocation.root = value().map(|v| v.to_string_lossy().into_owned()),
            "help" | "h" => invocation.help = true,
            other if GLOBAL_VALUE_FLAGS.contains(&other) => {
                value();
            }
            _ => {}
        }
    }
    if invocation.command.as_deref() == Some("help") {
        invocation.help = true;
    }
    while let Some(argument) = rest.next() {
        if argument == "--" {
            invocation.container_id = rest.next().map(|v| v.to_string_lossy().into_owned());
            break;
        }
        let Some((name, inline)) = flag(argument) else {
            invocation.container_id = Some(argument.to_string_lossy().into_owned());
            break;
        };
        if COMMAND_VALUE_FLAGS.contains(&name.as_str()) {
            let value = inline.or_else(|| rest.next().cloned());
            if name == "bundle" || name == "b" {
                invocation.bundle = value.map(PathBuf::from);
            }
        }
    }
    invocation
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_words(words: &str) -> Invocation {
        let arguments: Vec<OsString> = words.split_whitespace().map(OsString::from).collect();
        parse(&arguments)
    }

    #[test]
    fn reads_what_containerd_passes_to_create() {
        let invocation = parse_words(
            "--root /var/run/docker/runtime-runc/moby --log /run/containerd/t/log.json --log-format json \
             --systemd-cgroup create --bundle /run/containerd/t/b --pid-file /run/containerd/t/init.pid abc123",
        );
        assert_eq!(invocation.command.as_deref(), Some("create"));
        assert_eq!(invocation.root.as_deref(), Some("/var/run/docker/runtime-runc/moby"));
        assert_eq!(invocation.log, Some(PathBuf::from("/run/containerd/t/log.json")));
        assert_eq!(invocation.log_format.as_deref(), Some("json"));
        assert_eq!(invocation.bundle, Some(PathBuf::from("/run/containerd/t/b")));
        assert_eq!(invocation.container_id.as_deref(), Some("abc123"));
    }

    #[test]
    fn accepts_every_spelling_of_a_flag() {
        for words in
            ["create -b /b x", "create --bundle=/b x", "create -bundle /b x", "create --pid-file p --bundle /b x"]
        {
            let invocation = parse_words(words);
            assert_eq!(invocation.bundle, Some(PathBuf::from("/b")), "{words}");
            assert_eq!(invocation.container_id.as_deref(), Some("x"), "{words}");
        }
        let invocation = parse_words("--log=/l --root=/r start x");
        assert_eq!(invocation.log, Some(PathBuf::from("/l")));
        assert_eq!(invocation.root.as_deref(), Some("/r"));
        assert_eq!(invocation.container_id.as_deref(), Some("x"));
    }

    #[test]
    fn a_value_is_not_taken_for_the_command() {
        let invocation = parse_words("--log-format json --criu /usr/sbin/criu state x");
        assert_eq!(invocation.command.as_deref(), Some("state"));
        assert_eq!(invocation.container_id.as_deref(), Some("x"));
        let invocation = parse_words("create --console-socket /s --no-pivot y");
        assert_eq!(invocation.container_id.as_deref(), Some("y"));
        assert_eq!(invocation.bundle, None);
    }

    #[test]
    fn no_command() {
        assert_eq!(parse_words("--version").command, None);
        assert!(parse_words("--help").help);
        assert!(parse_words("help").help);
        assert!(!parse_words("features").help);
    }
}
