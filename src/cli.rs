//! The command line (DESIGN.md "Command line").
use std::path::PathBuf;

use clap::{ArgAction, Parser, Subcommand};

/// Bridges WeChat to MQTT, NATS and webhooks.
#[derive(Debug, Parser)]
#[command(name = "wxbridge", version, about, long_about = None)]
pub struct Cli {
    /// Configuration file (default: $WXBRIDGE_CONFIG, else ./bridge.yaml if it exists, else built-in defaults).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// More log output (-v debug, -vv trace). RUST_LOG overrides.
    #[arg(short, long, global = true, action = ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Less log output (-q warnings only, -qq errors only).
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub quiet: u8,
    /// What to do; `run` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands. Those that act on a stored session take `--account` (DESIGN.md "Several
/// accounts"); see [`crate::commands::account_view`].
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the bridge (the default).
    Run,
    /// QR login only: store the session in the state dir, then exit.
    Login {
        /// The account to log in (required when the config lists several).
        #[arg(long, value_name = "NAME")]
        account: Option<String>,
    },
    /// End the stored session and forget it.
    Logout {
        /// The account to log out (required when the config lists several).
        #[arg(long, value_name = "NAME")]
        account: Option<String>,
    },
    /// List the contacts of the stored session.
    Contacts {
        /// One JSON object per contact instead of a table.
        #[arg(long)]
        json: bool,
        /// The account whose contacts to list (required when the config lists several).
        #[arg(long, value_name = "NAME")]
        account: Option<String>,
    },
    /// Send one message through the stored session and exit.
    Send {
        /// Recipient: a remark name, nickname, group name, `filehelper`, or a UserName.
        #[arg(long, value_name = "WHO")]
        to: String,
        /// The account to send from (required when the config lists several).
        #[arg(long, value_name = "NAME")]
        account: Option<String>,
        /// The text to send.
        text: String,
    },
    /// Validate the config and print the effective config with secrets masked.
    CheckConfig,
}

impl Cli {
    /// The default log filter for the -v/-q count.
    pub fn log_filter(&self) -> &'static str {
        match (self.verbose, self.quiet) {
            (0, 0) => "wxbridge=info,warn",
            (1, _) => "wxbridge=debug,info",
            (v, _) if v >= 2 => "trace",
            (_, 1) => "warn",
            _ => "error",
        }
    }
}

impl Command {
    /// The `--account` the command was given, if it takes one.
    pub fn account(&self) -> Option<&str> {
        match self {
            Command::Login { account }
            | Command::Logout { account }
            | Command::Contacts { account, .. }
            | Command::Send { account, .. } => account.as_deref(),
            Command::Run | Command::CheckConfig => None,
        }
    }
}
