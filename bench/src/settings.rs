//! What a benchmark run measures and how much of it: the command line, the counts as
//! defaults, and the small `--quick` variant the test suite runs so the benchmark cannot rot.
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// `wxbridge-bench`: starts the fake WeChat server, mosquitto, nats-server (JetStream on) and a
/// webhook receiver on free loopback ports, runs the `wxbridge` binary against them as a
/// separate process, and prints a Markdown report.
#[derive(Debug, Clone, Parser)]
#[command(name = "wxbridge-bench", version, about, long_about = None)]
pub struct Cli {
    /// The wxbridge binary to measure. Default: `wxbridge` beside this executable (build it
    /// first with `cargo build --release --bin wxbridge`).
    #[arg(long, value_name = "PATH")]
    pub bridge: Option<PathBuf>,
    /// Messages per throughput run and in each memory burst.
    #[arg(long, default_value_t = 10_000)]
    pub messages: usize,
    /// Repetitions of every throughput run; bridge and raw runs alternate.
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// Steady inbound rate of the latency phase, in messages per second.
    #[arg(long, default_value_t = 200)]
    pub rate: u32,
    /// Length of the steady inbound phase, in seconds.
    #[arg(long, default_value_t = 20)]
    pub latency_secs: u64,
    /// Send commands timed in the outbound latency phase (one at a time).
    #[arg(long, default_value_t = 200)]
    pub sends: usize,
    /// Restarts timed in the start-up phase.
    #[arg(long, default_value_t = 5)]
    pub startup_reps: usize,
    /// The distant-server comparison: the fake holds every answer back this many
    /// milliseconds, as a server one such round trip away (0 skips the comparison).
    #[arg(long, default_value_t = 30)]
    pub fake_delay_ms: u64,
    /// Contacts in the large address book (the large account: 5,000 friends and 500
    /// groups of 500 members).
    #[arg(long, default_value_t = 5_000)]
    pub large_contacts: usize,
    /// Groups in the large address book.
    #[arg(long, default_value_t = 500)]
    pub large_groups: usize,
    /// Members of each group of the large address book (the account included).
    #[arg(long, default_value_t = 500)]
    pub large_group_size: usize,
    /// Messages in the media phase's inbound mix (about a third of them media).
    #[arg(long, default_value_t = 1_000)]
    pub media_messages: usize,
    /// Size of the media phase's video, in MB (10⁶ bytes), streamed while memory is sampled.
    #[arg(long, default_value_t = 50)]
    pub video_mb: u64,
    /// Where to write the report (the part between the file's benchmark markers is replaced);
    /// `-` writes nothing. Default: `BENCHMARKS.md`, or nothing with `--quick`.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// A smoke run: a few hundred messages, one repetition, short phases, a smaller large
    /// book. Overrides the counts above; a debug build of wxbridge is fine.
    #[arg(long)]
    pub quick: bool,
    /// The fake answers compact, uncompressed JSON instead of the real servers' layout
    /// (one member per line, gzipped): measures the bridge apart from the wire's cost.
    #[arg(long)]
    pub compact_wire: bool,
    /// Runs only the named phases (repeatable: `--only latency --only startup`), for a quick
    /// look at one of them; the report then holds only their sections and, unless `--output`
    /// names a file, is not written anywhere.
    #[arg(long, value_enum, value_name = "PHASE")]
    pub only: Vec<Phase>,
}

/// One phase of the benchmark, as `--only` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Phase {
    /// The fake's own serving rate.
    Fake,
    /// Inbound bursts to each sink, and the raw clients.
    Throughput,
    /// The steady inbound rate to MQTT (with its CPU per 10,000 messages) and send commands.
    Latency,
    /// Burst relay against the fetch-only ceiling, on loopback and from a distant fake.
    Distance,
    /// Idle and burst memory.
    Memory,
    /// Restarts with a stored session.
    Startup,
    /// An inbound mix with media to MQTT, and memory while a large video streams.
    Media,
}

/// An address book for the fake: `contacts` friends and `groups` saved groups of
/// `group_size` members each (the account included).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BookSize {
    /// Friends (people in the address book).
    pub contacts: usize,
    /// Saved groups.
    pub groups: usize,
    /// Members per group, the account included.
    pub group_size: usize,
}

impl BookSize {
    /// The small book: 200 contacts and 10 groups (of 30 members).
    pub const SMALL: BookSize = BookSize {
        contacts: 200,
        groups: 10,
        group_size: 30,
    };
}

/// The resolved settings of one benchmark run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The wxbridge binary; `None`: look beside the current executable.
    pub bridge: Option<PathBuf>,
    /// Messages per throughput run and in each memory burst.
    pub messages: usize,
    /// Repetitions of every throughput run.
    pub reps: usize,
    /// Steady inbound rate (messages/s) of the latency phase.
    pub rate: u32,
    /// Length of the steady inbound phase in seconds.
    pub latency_secs: u64,
    /// Send commands timed one at a time.
    pub sends: usize,
    /// Restarts timed in the start-up phase.
    pub startup_reps: usize,
    /// The fake's answer delay in the distant-server comparison; zero skips it.
    pub fake_delay: Duration,
    /// The address book of every phase but the large-book memory measurement.
    pub small_book: BookSize,
    /// The large address book.
    pub large_book: BookSize,
    /// Messages in the media phase's inbound mix.
    pub media_messages: usize,
    /// Bytes of the media phase's video.
    pub video_bytes: u64,
    /// Whether this is the `--quick` smoke run.
    pub quick: bool,
    /// Whether the fake answers compact, uncompressed JSON (`--compact-wire`).
    pub compact_wire: bool,
    /// The phases to run; empty: all of them.
    pub only: Vec<Phase>,
}

impl Settings {
    /// The settings the command line asks for, plus where the report goes.
    pub fn from_cli(cli: Cli) -> (Settings, Option<PathBuf>) {
        // A partial report must not replace the whole one in BENCHMARKS.md by default.
        let partial = cli.quick || !cli.only.is_empty();
        let output = match (&cli.output, partial) {
            (Some(p), _) if p.as_os_str() == "-" => None,
            (Some(p), _) => Some(p.clone()),
            (None, true) => None,
            (None, false) => Some(PathBuf::from("BENCHMARKS.md")),
        };
        if cli.quick {
            let settings = Settings {
                compact_wire: cli.compact_wire,
                only: cli.only,
                ..Settings::quick(cli.bridge)
            };
            return (settings, output);
        }
        let settings = Settings {
            bridge: cli.bridge,
            messages: cli.messages.max(1),
            reps: cli.reps.max(1),
            rate: cli.rate.max(1),
            latency_secs: cli.latency_secs.max(1),
            sends: cli.sends.max(1),
            startup_reps: cli.startup_reps.max(1),
            fake_delay: Duration::from_millis(cli.fake_delay_ms),
            small_book: BookSize::SMALL,
            large_book: BookSize {
                contacts: cli.large_contacts,
                groups: cli.large_groups,
                group_size: cli.large_group_size.max(2),
            },
            media_messages: cli.media_messages.max(1),
            video_bytes: cli.video_mb.max(1) * 1_000_000,
            quick: false,
            compact_wire: cli.compact_wire,
            only: cli.only,
        };
        (settings, output)
    }

    /// The smoke run: every phase, small counts.
    pub fn quick(bridge: Option<PathBuf>) -> Settings {
        Settings {
            bridge,
            messages: 300,
            reps: 1,
            rate: 100,
            latency_secs: 2,
            sends: 10,
            startup_reps: 1,
            fake_delay: Duration::from_millis(30),
            small_book: BookSize::SMALL,
            large_book: BookSize {
                contacts: 500,
                groups: 20,
                group_size: 50,
            },
            media_messages: 60,
            video_bytes: 5_000_000,
            quick: true,
            compact_wire: false,
            only: Vec::new(),
        }
    }

    /// Whether `phase` runs (every phase does unless `--only` names some).
    pub fn runs(&self, phase: Phase) -> bool {
        self.only.is_empty() || self.only.contains(&phase)
    }

    /// Whether every phase runs, so the report is complete.
    pub fn complete(&self) -> bool {
        self.only.is_empty()
    }

    /// The command line that reproduces these settings, for the report.
    pub fn command_line(&self) -> String {
        let mut cmd = String::from("cargo run --release -p wxbridge-bench");
        let wire = if self.compact_wire {
            " --compact-wire"
        } else {
            ""
        };
        let only: String = self
            .only
            .iter()
            .filter_map(|p| p.to_possible_value())
            .map(|v| format!(" --only {}", v.get_name()))
            .collect();
        if self.quick {
            cmd.push_str(" -- --quick");
            cmd.push_str(wire);
            cmd.push_str(&only);
            return cmd;
        }
        let mut flags = format!("{wire}{only}");
        let defaults = Settings::from_cli(Cli::parse_from(["wxbridge-bench"])).0;
        let mut flag = |name: &str, value: String, default: String| {
            if value != default {
                flags.push_str(&format!(" --{name} {value}"));
            }
        };
        flag(
            "messages",
            self.messages.to_string(),
            defaults.messages.to_string(),
        );
        flag("reps", self.reps.to_string(), defaults.reps.to_string());
        flag("rate", self.rate.to_string(), defaults.rate.to_string());
        flag(
            "latency-secs",
            self.latency_secs.to_string(),
            defaults.latency_secs.to_string(),
        );
        flag("sends", self.sends.to_string(), defaults.sends.to_string());
        flag(
            "startup-reps",
            self.startup_reps.to_string(),
            defaults.startup_reps.to_string(),
        );
        flag(
            "fake-delay-ms",
            self.fake_delay.as_millis().to_string(),
            defaults.fake_delay.as_millis().to_string(),
        );
        flag(
            "large-contacts",
            self.large_book.contacts.to_string(),
            defaults.large_book.contacts.to_string(),
        );
        flag(
            "large-groups",
            self.large_book.groups.to_string(),
            defaults.large_book.groups.to_string(),
        );
        flag(
            "large-group-size",
            self.large_book.group_size.to_string(),
            defaults.large_book.group_size.to_string(),
        );
        flag(
            "media-messages",
            self.media_messages.to_string(),
            defaults.media_messages.to_string(),
        );
        flag(
            "video-mb",
            (self.video_bytes / 1_000_000).to_string(),
            (defaults.video_bytes / 1_000_000).to_string(),
        );
        if !flags.is_empty() {
            cmd.push_str(" --");
            cmd.push_str(&flags);
        }
        cmd
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_names_only_changed_counts() {
        let parse = |args: &[&str]| Settings::from_cli(Cli::parse_from(args)).0.command_line();
        assert_eq!(
            parse(&["wxbridge-bench"]),
            "cargo run --release -p wxbridge-bench"
        );
        assert_eq!(
            parse(&["wxbridge-bench", "--messages", "500", "--reps", "3"]),
            "cargo run --release -p wxbridge-bench -- --messages 500"
        );
        assert_eq!(
            parse(&["wxbridge-bench", "--quick", "--messages", "5"]),
            "cargo run --release -p wxbridge-bench -- --quick"
        );
        assert_eq!(
            parse(&["wxbridge-bench", "--compact-wire", "--messages", "500"]),
            "cargo run --release -p wxbridge-bench -- --compact-wire --messages 500"
        );
        assert_eq!(
            parse(&["wxbridge-bench", "--fake-delay-ms", "80"]),
            "cargo run --release -p wxbridge-bench -- --fake-delay-ms 80"
        );
        assert_eq!(
            parse(&[
                "wxbridge-bench",
                "--media-messages",
                "200",
                "--video-mb",
                "20"
            ]),
            "cargo run --release -p wxbridge-bench -- --media-messages 200 --video-mb 20"
        );
        assert_eq!(
            parse(&["wxbridge-bench", "--quick", "--compact-wire"]),
            "cargo run --release -p wxbridge-bench -- --quick --compact-wire"
        );
    }

    #[test]
    fn quick_writes_no_file_unless_asked() {
        let out = |args: &[&str]| Settings::from_cli(Cli::parse_from(args)).1;
        assert_eq!(out(&["b"]), Some(PathBuf::from("BENCHMARKS.md")));
        assert_eq!(out(&["b", "--quick"]), None);
        assert_eq!(out(&["b", "--output", "-"]), None);
        assert_eq!(out(&["b", "--only", "latency"]), None);
        assert_eq!(
            out(&["b", "--only", "latency", "--output", "x.md"]),
            Some(PathBuf::from("x.md"))
        );
    }

    #[test]
    fn only_runs_the_named_phases_and_says_so() {
        let settings = |args: &[&str]| Settings::from_cli(Cli::parse_from(args)).0;
        let all = settings(&["b"]);
        assert!(all.complete() && all.runs(Phase::Memory));
        let some = settings(&["b", "--only", "latency", "--only", "startup"]);
        assert!(!some.complete());
        assert!(some.runs(Phase::Latency) && some.runs(Phase::Startup));
        assert!(!some.runs(Phase::Throughput) && !some.runs(Phase::Fake));
        assert_eq!(
            some.command_line(),
            "cargo run --release -p wxbridge-bench -- --only latency --only startup"
        );
    }
}
