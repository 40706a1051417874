//! `send.limits` (DESIGN.md "Account safety"): sends per recipient per minute and per hour,
//! per local day, quiet hours, and the tightening after a 1205. The sender asks [`Limits::check`]
//! before a command's first message and calls [`Limits::record`] after each message WeChat took.
//!
//! The counts live in `state_dir/limits.json`, rewritten whole (temporary file, fsync, rename)
//! after every send, so a restart or a crash loop does not reset them. The rewrite runs on a
//! thread of its own ([`Persister`]), which writes the newest counts it was handed: the send's
//! result does not wait for two fsyncs, and no runtime worker blocks on the disk. It is a file of its own
//! rather than a spool table because it is a small rolling window (the last day's sends) that
//! is replaced, not appended: the spool's journal is an append-and-replay path built for events,
//! and its record format would have to grow a new operation for this. A crash between WeChat's
//! answer and the rewrite (a few milliseconds later) loses that one count; dropping the
//! [`Limits`] waits for the last rewrite.
//!
//! Local time: the offset comes from the system's time zone (`TZ`, else `/etc/localtime`, read
//! by `chrono`'s `Local`, which is sound in threaded programs). "Today" is the local calendar
//! day; quiet hours are local wall-clock minutes.
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{Local, Offset, TimeZone};
use serde::{Deserialize, Serialize};

use crate::config::{LimitsConfig, QuietHours};

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;
const DAY_MS: i64 = 24 * HOUR_MS;
/// Sends older than this are dropped from the file: longer than any local day.
const KEEP_MS: i64 = 26 * HOUR_MS;
/// How long the limits stay tightened after WeChat answered 1205.
pub(super) const TIGHT_FOR_MS: i64 = HOUR_MS;

/// A limit a command can wait for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Limit {
    PerMinute,
    PerHour,
    PerDay,
    QuietHours,
}

impl Limit {
    /// The config key, as a `limit_exceeded` result names it.
    pub(super) fn key(self) -> &'static str {
        match self {
            Limit::PerMinute => "send.limits.per_recipient.per_minute",
            Limit::PerHour => "send.limits.per_recipient.per_hour",
            Limit::PerDay => "send.limits.per_day",
            Limit::QuietHours => "send.limits.quiet_hours",
        }
    }

    /// The metrics label.
    pub(super) fn label(self) -> &'static str {
        match self {
            Limit::PerMinute => "per_minute",
            Limit::PerHour => "per_hour",
            Limit::PerDay => "per_day",
            Limit::QuietHours => "quiet_hours",
        }
    }

    /// True when it holds every recipient, not just one.
    pub(super) fn is_global(self) -> bool {
        matches!(self, Limit::PerDay | Limit::QuietHours)
    }
}

/// Why a send must wait, and until when (ms on the limits' clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Blocked {
    pub(super) limit: Limit,
    pub(super) until_ms: i64,
}

/// A moment on the limits' clock: unix ms and the local offset from UTC then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Now {
    pub(super) ms: i64,
    pub(super) offset_s: i32,
}

impl Now {
    /// Milliseconds since the last local midnight.
    fn into_day(self) -> i64 {
        (self.ms + i64::from(self.offset_s) * 1000).rem_euclid(DAY_MS)
    }
}

/// Today's count against `per_day`, for the status page and `/metrics`.
#[derive(Clone)]
pub struct SendsToday {
    pub(super) limits: Arc<Mutex<Limits>>,
    pub(super) clock: Clock,
}

impl SendsToday {
    /// Messages sent since local midnight, and `send.limits.per_day` as it is now (halved
    /// for an hour after a 1205).
    pub fn get(&self) -> (u32, u32) {
        let now = self.clock.now();
        self.limits
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .today(now)
    }
}

/// The wall clock. Debug builds let tests set it: `WXBRIDGE_TEST_CLOCK=<RFC 3339 time>` makes
/// the process start at that time, in that offset's zone, and the clock runs on from there.
#[derive(Clone)]
pub(super) struct Clock {
    fixed: Option<(i64, i32, tokio::time::Instant)>,
}

impl Clock {
    pub(super) fn from_env() -> Clock {
        #[cfg(debug_assertions)]
        if let Ok(v) = std::env::var("WXBRIDGE_TEST_CLOCK") {
            let format = time::format_description::well_known::Rfc3339;
            match time::OffsetDateTime::parse(&v, &format) {
                Ok(t) => {
                    let ms = (t.unix_timestamp_nanos() / 1_000_000) as i64;
                    return Clock {
                        fixed: Some((ms, t.offset().whole_seconds(), tokio::time::Instant::now())),
                    };
                }
                Err(e) => {
                    tracing::warn!(cause = %e, "WXBRIDGE_TEST_CLOCK is not RFC 3339; using the system clock")
                }
            }
        }
        Clock { fixed: None }
    }

    pub(super) fn now(&self) -> Now {
        match self.fixed {
            Some((ms, offset_s, at)) => Now {
                ms: ms + at.elapsed().as_millis() as i64,
                offset_s,
            },
            None => {
                let ms =
                    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
                let offset_s = Local
                    .timestamp_millis_opt(ms)
                    .single()
                    .map_or(0, |t| t.offset().fix().local_minus_utc());
                Now { ms, offset_s }
            }
        }
    }
}

/// One message WeChat took.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Sent {
    /// Unix ms.
    at: i64,
    /// The recipient's key (see [`Limits::check`]).
    to: String,
}

/// What the file holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Counts {
    sends: VecDeque<Sent>,
    /// Unix ms until which the limits are halved; 0 when they are not.
    #[serde(default)]
    tight_until_ms: i64,
}

/// The limits and the sends they count.
pub(super) struct Limits {
    per_minute: u32,
    per_hour: u32,
    per_day: u32,
    quiet: Option<QuietHours>,
    persister: Option<Persister>,
    counts: Counts,
}

/// Writes the counts it is handed to `limits.json` on a thread of its own, newest first:
/// snapshots that queued up behind a write are skipped for the last of them.
struct Persister {
    tx: Option<std::sync::mpsc::Sender<Counts>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Persister {
    fn start(path: PathBuf) -> std::io::Result<Persister> {
        let (tx, rx) = std::sync::mpsc::channel::<Counts>();
        let thread = std::thread::Builder::new()
            .name("wxbridge-limits".into())
            .spawn(move || {
                while let Ok(mut counts) = rx.recv() {
                    while let Ok(newer) = rx.try_recv() {
                        counts = newer;
                    }
                    if let Err(e) = write_atomically(&path, &counts) {
                        tracing::error!(cause = %e, path = %path.display(), "cannot store the send counts");
                    }
                }
            })?;
        Ok(Persister {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    fn store(&self, counts: &Counts) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(counts.clone());
        }
    }
}

impl Drop for Persister {
    fn drop(&mut self) {
        // Closing the channel ends the thread once it has written what it was handed.
        self.tx = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Limits {
    /// The limits of `config`, with the counts kept in `state_dir` (none: in memory only).
    pub(super) fn open(config: &LimitsConfig, state_dir: Option<&Path>) -> Limits {
        let path = state_dir.map(|d| d.join("limits.json"));
        let counts = match path.as_deref().map(std::fs::read) {
            None => Counts::default(),
            Some(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => Counts::default(),
            Some(Err(e)) => {
                tracing::warn!(cause = %e, "cannot read the send counts; counting from zero");
                Counts::default()
            }
            Some(Ok(bytes)) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(cause = %e, "unreadable send counts; counting from zero");
                Counts::default()
            }),
        };
        Limits {
            per_minute: config.per_recipient.per_minute,
            per_hour: config.per_recipient.per_hour,
            per_day: config.per_day,
            quiet: config.quiet(),
            persister: path.and_then(|p| {
                Persister::start(p)
                    .map_err(|e| tracing::error!(cause = %e, "cannot start the send counts' writer; counting in memory"))
                    .ok()
            }),
            counts,
        }
    }

    /// A limit, halved (rounding up, at least 1) while tightened.
    fn effective(&self, limit: u32, now: Now) -> u32 {
        if self.tightened(now) {
            limit.div_ceil(2).max(1)
        } else {
            limit
        }
    }

    /// True while the limits are tightened after a 1205.
    pub(super) fn tightened(&self, now: Now) -> bool {
        now.ms < self.counts.tight_until_ms
    }

    /// Whether one more message to `to` (a name stable across logins) may go now.
    pub(super) fn check(&self, to: &str, now: Now) -> Result<(), Blocked> {
        let day = now.into_day();
        if let Some(q) = self.quiet {
            let minute = (day / MINUTE_MS) as u32;
            if q.contains(minute) {
                let left = i64::from((q.end + 1440 - minute) % 1440);
                return Err(Blocked {
                    limit: Limit::QuietHours,
                    until_ms: now.ms - day % MINUTE_MS + left * MINUTE_MS,
                });
            }
        }
        let midnight = now.ms - day;
        let today = self
            .counts
            .sends
            .iter()
            .filter(|s| s.at >= midnight)
            .count();
        if today >= self.effective(self.per_day, now) as usize {
            return Err(Blocked {
                limit: Limit::PerDay,
                until_ms: midnight + DAY_MS,
            });
        }
        for (limit, span, max) in [
            (Limit::PerMinute, MINUTE_MS, self.per_minute),
            (Limit::PerHour, HOUR_MS, self.per_hour),
        ] {
            let max = self.effective(max, now) as usize;
            let within: Vec<i64> = self
                .counts
                .sends
                .iter()
                .filter(|s| s.to == to && s.at > now.ms - span)
                .map(|s| s.at)
                .collect();
            if within.len() >= max {
                // Free again once enough of them have left the window.
                return Err(Blocked {
                    limit,
                    until_ms: within[within.len() - max] + span,
                });
            }
        }
        Ok(())
    }

    /// Counts a message WeChat took for `to`, and stores the counts.
    pub(super) fn record(&mut self, to: &str, now: Now) {
        self.counts.sends.push_back(Sent {
            at: now.ms,
            to: to.to_owned(),
        });
        while self
            .counts
            .sends
            .front()
            .is_some_and(|s| s.at < now.ms - KEEP_MS)
        {
            self.counts.sends.pop_front();
        }
        self.save();
    }

    /// Halves the limits for [`TIGHT_FOR_MS`] from `now`.
    pub(super) fn tighten(&mut self, now: Now) {
        self.counts.tight_until_ms = now.ms + TIGHT_FOR_MS;
        self.save();
    }

    /// Messages sent since local midnight, and the day's limit as it is now.
    pub(super) fn today(&self, now: Now) -> (u32, u32) {
        let midnight = now.ms - now.into_day();
        let n = self
            .counts
            .sends
            .iter()
            .filter(|s| s.at >= midnight)
            .count();
        (n as u32, self.effective(self.per_day, now))
    }

    fn save(&self) {
        if let Some(persister) = &self.persister {
            persister.store(&self.counts);
        }
    }
}

/// Replaces the file whole: a crash leaves the old counts or the new, never half of either.
/// 0600 like the state dir's other files: it names the people the account writes to.
fn write_atomically(path: &Path, counts: &Counts) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(&serde_json::to_vec(counts).map_err(std::io::Error::other)?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    // The rename itself is durable only once the directory is.
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// A random pause in `[min, max]`.
pub(super) fn jitter((min, max): (Duration, Duration)) -> Duration {
    let (a, b) = (min.as_millis() as u64, max.as_millis() as u64);
    Duration::from_millis(fastrand::u64(a..=b.max(a)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> LimitsConfig {
        yaml_serde::from_str(yaml).unwrap()
    }

    /// 2026-12-06 10:00 at UTC+1.
    fn at(minutes_after: i64) -> Now {
        Now {
            ms: 1_796_547_600_000 + minutes_after * MINUTE_MS,
            offset_s: 3600,
        }
    }

    #[test]
    fn a_recipient_over_its_minute_waits_until_the_oldest_send_leaves_the_window() {
        let mut l = Limits::open(
            &config("per_recipient: { per_minute: 2, per_hour: 10 }"),
            None,
        );
        l.record("Alice", at(0));
        l.record(
            "Alice",
            Now {
                ms: at(0).ms + 10_000,
                ..at(0)
            },
        );
        let b = l
            .check(
                "Alice",
                Now {
                    ms: at(0).ms + 20_000,
                    ..at(0)
                },
            )
            .unwrap_err();
        assert_eq!(b.limit, Limit::PerMinute);
        assert_eq!(
            b.until_ms,
            at(1).ms,
            "free when the first send is a minute old"
        );
        assert!(
            l.check("Bob", at(0)).is_ok(),
            "another recipient is not held"
        );
        assert!(l.check("Alice", at(1)).is_ok());
    }

    #[test]
    fn the_hour_and_the_day_count_too() {
        let mut l = Limits::open(
            &config("per_recipient: { per_minute: 10, per_hour: 3 }\nper_day: 5"),
            None,
        );
        for i in 0..3 {
            l.record("Alice", at(i * 5));
        }
        let b = l.check("Alice", at(20)).unwrap_err();
        assert_eq!((b.limit, b.until_ms), (Limit::PerHour, at(60).ms));
        l.record("Bob", at(21));
        l.record("Carol", at(22));
        let b = l.check("Dave", at(23)).unwrap_err();
        assert_eq!(b.limit, Limit::PerDay);
        assert_eq!(
            b.until_ms,
            at(14 * 60).ms,
            "next local midnight (10:00 + 14 h)"
        );
        assert_eq!(l.today(at(23)), (5, 5));
        assert_eq!(l.today(at(14 * 60)), (0, 5), "a new local day");
    }

    #[test]
    fn quiet_hours_hold_every_send_until_they_end() {
        let l = Limits::open(&config("quiet_hours: \"09:30-10:30\""), None);
        let b = l.check("Alice", at(0)).unwrap_err();
        assert_eq!((b.limit, b.until_ms), (Limit::QuietHours, at(30).ms));
        assert!(l.check("Alice", at(30)).is_ok());
    }

    #[test]
    fn after_a_1205_the_limits_are_halved_for_an_hour() {
        let mut l = Limits::open(
            &config("per_recipient: { per_minute: 4, per_hour: 60 }"),
            None,
        );
        l.record("Alice", at(0));
        l.record("Alice", at(0));
        assert!(l.check("Alice", at(0)).is_ok());
        l.tighten(at(0));
        assert_eq!(l.check("Alice", at(0)).unwrap_err().limit, Limit::PerMinute);
        assert!(l.tightened(at(59)) && !l.tightened(at(60)));
    }

    #[test]
    fn the_counts_survive_a_reopen_in_a_private_file() {
        let dir = tempfile::tempdir().unwrap();
        let c = config("per_day: 2");
        let mut l = Limits::open(&c, Some(dir.path()));
        l.record("Alice", at(0));
        l.record("Bob", at(1));
        // Dropping waits for the writer thread's last rewrite.
        drop(l);
        let again = Limits::open(&c, Some(dir.path()));
        assert_eq!(
            again.check("Carol", at(2)).unwrap_err().limit,
            Limit::PerDay
        );
    }
}
