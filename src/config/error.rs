//! [`ConfigError`]: what can go wrong while loading the configuration, worded for the person
//! who has to fix it. Every variant names where the problem is (the file or the environment
//! variable) and, once the YAML parses, the key path (`mqtt.qos`, `webhooks[0].url`).

use std::path::PathBuf;

/// A configuration that cannot be used; the process should exit 2 after printing it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file named by `--config` or `WXBRIDGE_CONFIG` does not exist.
    #[error("{}: config file not found (named by {named_by})", path.display())]
    NotFound {
        /// The missing file.
        path: PathBuf,
        /// `--config` or `WXBRIDGE_CONFIG`.
        named_by: &'static str,
    },
    /// The file exists but cannot be read.
    #[error("{}: cannot read the config file: {cause}", path.display())]
    Read {
        /// The unreadable file.
        path: PathBuf,
        /// Why it cannot be read.
        cause: std::io::Error,
    },
    /// The file is not valid YAML.
    #[error("{origin}: {message}")]
    Syntax {
        /// The file.
        origin: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A `${VAR}` names an environment variable that is not set.
    #[error(
        "{origin}: {key}: environment variable {var} is not set \
         (write ${{{var}:-}} to allow it to be unset)"
    )]
    MissingVar {
        /// The file.
        origin: String,
        /// The key whose value holds the reference.
        key: String,
        /// The variable.
        var: String,
    },
    /// A `WXBRIDGE__…` variable cannot be applied to the configuration tree.
    #[error("{var}: {message}")]
    Override {
        /// The environment variable.
        var: String,
        /// What is wrong with it.
        message: String,
    },
    /// A key that no section has.
    #[error("{origin}: unknown key \"{key}\" (known keys: {})", known.join(", "))]
    UnknownKey {
        /// The file, or the environment variable that set the key.
        origin: String,
        /// The full key path.
        key: String,
        /// The keys its section does have.
        known: Vec<String>,
    },
    /// A value of the wrong type or out of range.
    #[error("{origin}: {key}: {message}")]
    Invalid {
        /// The file, or the environment variable that set the key.
        origin: String,
        /// The full key path, or `(top level)`.
        key: String,
        /// What is wrong and what was found.
        message: String,
    },
    /// A sink's section names something the sink cannot use: a file that cannot be read or
    /// parsed, a name or subject its server would refuse, a malformed secret. Found by the
    /// sink's `prepare` (see [`crate::sinks`]); the message names the key.
    #[error(transparent)]
    Sink(Box<dyn std::error::Error + Send + Sync>),
}
