//! The `wxbridge-bench` binary: parse the command line, run every phase, print the Markdown
//! report on stdout and write it to `BENCHMARKS.md` (or `--output`). Exits 1 when a phase
//! failed or not every message arrived, 0 otherwise; missed targets are reported, not fatal.
#![forbid(unsafe_code)]
use std::process::ExitCode;

use clap::Parser;
use wxbridge_bench::settings::{Cli, Settings};

fn main() -> ExitCode {
    let (settings, output) = Settings::from_cli(Cli::parse());
    let command = settings.command_line();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("wxbridge-bench: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let report = match runtime.block_on(wxbridge_bench::run(settings)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("wxbridge-bench: {e:#}");
            return ExitCode::from(1);
        }
    };
    let markdown = report.markdown(&command);
    println!("{markdown}");
    if let Some(path) = output {
        if let Err(e) = wxbridge_bench::write_results(&path, &markdown) {
            eprintln!("wxbridge-bench: cannot write {}: {e}", path.display());
            return ExitCode::from(1);
        }
        eprintln!("wxbridge-bench: results written to {}", path.display());
    }
    let missing = report.incomplete();
    if missing.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "wxbridge-bench: not every message arrived: {}",
            missing.join("; ")
        );
        ExitCode::from(1)
    }
}
