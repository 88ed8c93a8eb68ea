//! The one error type the hook reports: every refusal is a single line that
//! names what was asked for and why it cannot be done.

use std::fmt;

/// A refusal tied to one setting: `netrt: KEY="VALUE": reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError {
    /// The name the user wrote: an annotation key or a `NETRT_*` variable.
    pub key: String,
    pub value: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    Key(KeyError),
    /// Bad input that is not a setting: state JSON, bundle, container id.
    Input(String),
    /// The host refused: netlink, files, privileges.
    System(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl KeyError {
    pub fn new(key: &str, value: &str, reason: impl Into<String>) -> Self {
        KeyError { key: key.to_string(), value: value.to_string(), reason: reason.into() }
    }
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Debug formatting quotes the value and escapes control characters,
        // so a hostile value can never split the message over two lines.
        write!(f, "netrt: {}={:?}: {}", one_line(&self.key), self.value, one_line(&self.reason))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Key(e) => e.fmt(f),
            Error::Input(msg) | Error::System(msg) => write!(f, "netrt: {}", one_line(msg)),
        }
    }
}

impl std::error::Error for Error {}

/// Escapes control characters only, so quotes in a message stay readable.
fn one_line(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { c.escape_debug().to_string() } else { c.to_string() }).collect()
}

impl From<KeyError> for Error {
    fn from(e: KeyError) -> Self {
        Error::Key(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_error_is_one_quoted_line() {
        let e = KeyError::new("net.egress", "10 mbit\nx", "bad");
        assert_eq!(e.to_string(), "netrt: net.egress=\"10 mbit\\nx\": bad");
    }

    #[test]
    fn other_errors_are_prefixed() {
        assert_eq!(Error::Input("no \"x\"\n".into()).to_string(), "netrt: no \"x\"\\n");
    }
}
