//! wxbridge-bench: an end-to-end benchmark of the `wxbridge` binary.
//!
//! It runs the project's fake WeChat server in-process, starts a real `mosquitto` and a real
//! `nats-server -js` on free loopback ports and an in-process webhook receiver, and spawns
//! the bridge as a separate process against them, logging in by playing the phone. Then it
//! measures, phase by phase:
//!
//! - [`phases::fake_check`]: that the fake serves faster than anything it is compared with;
//! - [`phases::throughput`]: a burst relayed to each sink, against a raw client of the same
//!   kind and against the bridge with no sink;
//! - [`phases::latency`]: a steady inbound rate to MQTT, and send commands to `webwxsendmsg`
//!   and to their results;
//! - [`phases::distance`]: a burst from a fake that answers as a distant server would, against
//!   the fetch-only ceiling at that distance and on loopback;
//! - [`phases::memory`]: resident memory idle with a small and a large address book and
//!   during a burst, and the spool on disk;
//! - [`phases::startup`]: process start to `online` with a stored session;
//! - [`phases::media`]: an inbound mix with media to MQTT (messages and bytes to the store per
//!   second), and memory while a large video streams into the store;
//!
//! and [`report`] turns the results into Markdown and checks the targets. Nothing here
//! asserts a target: the `quick` test only checks that every message arrived.
//!
//! The parts: [`settings`] (command line), [`env`] (brokers, per-run stages), [`bridge`] (the
//! process under test), [`receivers`] and [`raw`] (both ends of the baselines), [`tally`]
//! (what arrived), [`workload`] (address books and messages), [`machine`] (`/proc`),
//! [`stats`].
#![forbid(unsafe_code)]

/// Prints a progress line on stderr, stamped with the time since the benchmark started.
macro_rules! progress {
    ($($arg:tt)*) => {
        $crate::note(format_args!($($arg)*))
    };
}

pub mod bridge;
pub mod brokers;
pub mod env;
pub mod machine;
pub mod phases;
pub mod raw;
pub mod receivers;
pub mod report;
pub mod settings;
pub mod stats;
pub mod tally;
pub mod workload;

use std::path::Path;
use std::sync::OnceLock;
use std::time::Instant;

use anyhow::Result;

use crate::env::Env;
use crate::machine::Machine;
use crate::report::Report;
use crate::settings::{Phase, Settings};

static START: OnceLock<Instant> = OnceLock::new();

/// Writes one progress line on stderr (see the `progress!` macro).
pub fn note(args: std::fmt::Arguments<'_>) {
    let start = START.get_or_init(Instant::now);
    eprintln!("[{:6.1} s] {args}", start.elapsed().as_secs_f64());
}

/// Runs every phase with `settings` (progress on stderr) and answers the report.
pub async fn run(settings: Settings) -> Result<Report> {
    START.get_or_init(Instant::now);
    let load_before = machine::load_average();
    let env = Env::start(settings.clone()).await?;
    let build = if env.bin.components().any(|c| c.as_os_str() == "release") {
        "release"
    } else if env.bin.components().any(|c| c.as_os_str() == "debug") {
        "debug"
    } else {
        "given"
    };
    // A phase left out by `--only` reports its defaults; the report leaves its section out.
    let mut fake = Default::default();
    if settings.runs(Phase::Fake) {
        progress!("fake server check");
        fake = phases::fake_check::run(&env).await?;
    }
    let mut throughput = Default::default();
    if settings.runs(Phase::Throughput) {
        progress!("inbound throughput");
        throughput = phases::throughput::run(&env).await?;
    }
    let mut latency = Default::default();
    if settings.runs(Phase::Latency) {
        progress!("latency");
        latency = phases::latency::run(&env).await?;
    }
    let mut distance = Default::default();
    if settings.runs(Phase::Distance) {
        progress!("distance");
        distance = phases::distance::run(&env).await?;
    }
    let mut memory = Default::default();
    if settings.runs(Phase::Memory) {
        progress!("memory");
        memory = phases::memory::run(&env).await?;
    }
    let mut startup = Default::default();
    if settings.runs(Phase::Startup) {
        progress!("start-up");
        startup = phases::startup::run(&env).await?;
    }
    let mut media = Default::default();
    if settings.runs(Phase::Media) {
        progress!("media");
        media = phases::media::run(&env).await?;
    }
    Ok(Report {
        load: (load_before, machine::load_average()),
        machine: Machine::detect(),
        settings,
        build: build.to_owned(),
        fake,
        throughput,
        latency,
        distance,
        memory,
        startup,
        media,
    })
}

const BEGIN: &str = "<!-- wxbridge-bench: results begin -->";
const END: &str = "<!-- wxbridge-bench: results end -->";

/// Writes `results` into `path` between the benchmark markers, keeping the rest of the file
/// (notes written by hand); a missing file is created with a short introduction.
pub fn write_results(path: &Path, results: &str) -> std::io::Result<()> {
    let block = format!("{BEGIN}\n{}\n{END}", results.trim_end());
    let text = match std::fs::read_to_string(path) {
        Ok(old) => match (old.find(BEGIN), old.find(END)) {
            (Some(b), Some(e)) if b < e => {
                format!("{}{block}{}", &old[..b], &old[e + END.len()..])
            }
            _ => format!("{}\n\n{block}\n", old.trim_end()),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => format!(
            "# Benchmarks\n\nMeasured by `wxbridge-bench` (see the README's Benchmark \
             section); the results between the markers are replaced on every run.\n\n{block}\n"
        ),
        Err(e) => return Err(e),
    };
    std::fs::write(path, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_replace_only_the_marked_block() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("B.md");
        write_results(&path, "one").unwrap();
        let first = std::fs::read_to_string(&path).unwrap();
        assert!(first.starts_with("# Benchmarks") && first.contains("one"));
        std::fs::write(&path, format!("{first}\n## Notes\nkept\n")).unwrap();
        write_results(&path, "two").unwrap();
        let second = std::fs::read_to_string(&path).unwrap();
        assert!(second.contains("two") && !second.contains("one") && second.contains("kept"));
    }
}
