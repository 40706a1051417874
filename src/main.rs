//! The `wxbridge` binary: parse the command line, load the config (exit 2 on error), run.
#![forbid(unsafe_code)]
use std::collections::HashMap;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;
use wxbridge::cli::{Cli, Command};
use wxbridge::{app, commands, config, http, logging, migrate};

fn main() -> ExitCode {
    // One rustls provider for reqwest and, later, the broker clients (CRATES.md §1.9).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cli = Cli::parse();
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(cli.log_filter()));
    logging::init(filter);

    let env: HashMap<String, String> = std::env::vars().collect();
    let loaded = match config::load(cli.config.as_deref(), &env) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("wxbridge: {e}");
            return ExitCode::from(2);
        }
    };
    let command = cli.command.unwrap_or(Command::Run);
    if let Command::CheckConfig = command {
        return commands::check_config(&loaded.config, loaded.source.as_deref());
    }
    // Every connection to WeChat, the brokers and HTTP clients costs a descriptor: take all
    // the system allows rather than the default soft limit (often 1024).
    let nofile = http::raise_nofile_limit();
    tracing::debug!(open_file_limit = ?nofile, "open-file limit");
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("wxbridge: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let whole = loaded.config;
    // `run` serves every account; the session commands act on the one --account names.
    let config = match command {
        Command::Run => whole.clone(),
        _ => match commands::account_view(&whole, command.account()) {
            Ok(view) => view,
            Err(message) => {
                eprintln!("wxbridge: {message}");
                return ExitCode::from(2);
            }
        },
    };
    // Before any account's state is used: a single-account state dir moves into its
    // account's dir when the config now lists `accounts:`.
    if let Err(e) = migrate::single_account_state(&whole) {
        eprintln!("wxbridge: {e}");
        return ExitCode::from(1);
    }
    let code = runtime.block_on(async move {
        match command {
            Command::Run => app::run(config).await,
            Command::Login { .. } => commands::login(config).await,
            Command::Logout { .. } => commands::logout(config).await,
            Command::Contacts { json, .. } => commands::contacts(config, json).await,
            Command::Send { to, text, .. } => commands::send(config, to, text).await,
            Command::CheckConfig => unreachable!("handled above"),
        }
    });
    // A blocking task still running (a stdout write to a reader that stopped reading) must
    // not keep the process alive.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    code
}
