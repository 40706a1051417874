//! `send.limits` (DESIGN.md "Account safety"): sends per recipient per minute and per hour,
//! per local day, quiet hours, and the tightening after a 1205. The sender asks [`Limits::check`]
//! before a command's first message and calls [`Limits::record`] after each message WeChat took.
//!
//! The counts (the sends of the last 26 hours and when a tightening ends) live in the spool,
//! as the value `limits` (JSON, replaced whole), so a restart or a crash loop does not reset
//! them. The sender [`load`]s them before it takes its first command. Each
//! [`Limits::record`] and [`Limits::tighten`] hands the new counts to the spool's writer
//! with [`Store::hold_value`], without waiting: the writer holds them for its next group
//! commit, which in the sender's case is the one of the command's result (asked for right
//! after the send), or an earlier one. So the counts cost no fsync of their own, and a result
//! is never durable before the count of the send it reports. (A plain put wakes the writer
//! for the counts alone, and it syncs them before the result is asked for: measured, about
//! 2.4–2.9 instead of 2 fsyncs per send.) Counts with no result after them (a media message
//! whose text is yet to go, a 1205) are committed on their own within a second. A crash can
//! lose only the count of a send whose result was not durable yet either: its command is
//! still queued and is taken again after the restart. A `limits.json` in the state dir,
//! where the counts were kept before, is moved into the spool at the first start and deleted.
//!
//! Local time: the offset comes from the system's time zone (`TZ`, else `/etc/localtime`, read
//! by `chrono`'s `Local`, which is sound in threaded programs). "Today" is the local calendar
//! day, whose midnights are looked up in the zone (on a DST change day they have different
//! offsets); quiet hours are local wall-clock minutes.
use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{Local, Offset, TimeZone};
use serde::{Deserialize, Serialize};

use crate::config::{LimitsConfig, QuietHours};
use crate::spool::Store;

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;
const DAY_MS: i64 = 24 * HOUR_MS;
/// Sends older than this are dropped from the counts: longer than any local day.
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

/// A moment on the limits' clock: unix ms, the local offset from UTC then, and the bounds of
/// that local day. The bounds are looked up in the time zone rather than derived from the
/// offset of now: on the day of a DST change, midnight had the other offset and the day is
/// 23 or 25 hours long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Now {
    pub(super) ms: i64,
    pub(super) offset_s: i32,
    /// Unix ms of this local day's midnight, and of the next one.
    pub(super) day: (i64, i64),
}

impl Now {
    /// The moment `ms` in a time zone given as its offset (seconds east of UTC) at each instant.
    pub(super) fn in_zone(ms: i64, offset_at: impl Fn(i64) -> i32) -> Now {
        let offset_s = offset_at(ms);
        let wall = ms + i64::from(offset_s) * 1000;
        let wall_midnight = wall - wall.rem_euclid(DAY_MS);
        Now {
            ms,
            offset_s,
            day: (
                instant_of(wall_midnight, &offset_at),
                instant_of(wall_midnight + DAY_MS, &offset_at),
            ),
        }
    }

    /// Milliseconds since local midnight on the wall clock (for quiet hours, which are
    /// wall-clock minutes).
    fn wall_of_day(self) -> i64 {
        (self.ms + i64::from(self.offset_s) * 1000).rem_euclid(DAY_MS)
    }
}

/// The instant whose local wall clock reads `wall` (ms as if UTC). The offset is looked up
/// twice, since it may change between the first guess and the answer. A wall time skipped by
/// a change (a gap) never happened: the earlier of the two candidates is taken, so a day whose
/// midnight falls in a gap starts a little early rather than late.
fn instant_of(wall: i64, offset_at: &impl Fn(i64) -> i32) -> i64 {
    let first = wall - i64::from(offset_at(wall)) * 1000;
    let second = wall - i64::from(offset_at(first)) * 1000;
    if offset_at(second) == offset_at(first) {
        second
    } else {
        first.min(second)
    }
}

/// The system time zone's offset at unix ms `ms`.
fn local_offset(ms: i64) -> i32 {
    Local
        .timestamp_millis_opt(ms)
        .single()
        .map_or(0, |t| t.offset().fix().local_minus_utc())
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
            // The test clock's zone is the fixed offset it was given.
            Some((ms, offset_s, at)) => {
                Now::in_zone(ms + at.elapsed().as_millis() as i64, |_| offset_s)
            }
            None => {
                let ms =
                    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
                Now::in_zone(ms, local_offset)
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

/// The counts, as the spool value holds them (JSON, as `limits.json` held them before).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct Counts {
    sends: VecDeque<Sent>,
    /// Unix ms until which the limits are halved; 0 when they are not.
    #[serde(default)]
    tight_until_ms: i64,
}

/// The name of the spool value that holds the counts.
const VALUE: &str = "limits";
/// Where the previous version kept the counts, in the state dir; moved into the spool once.
const OLD_FILE: &str = "limits.json";

/// The limits and the sends they count.
pub(super) struct Limits {
    per_minute: u32,
    per_hour: u32,
    per_day: u32,
    quiet: Option<QuietHours>,
    /// Where the counts are kept (none: in memory only).
    store: Option<Store>,
    counts: Counts,
}

impl Limits {
    /// The limits of `config`, counting from zero until given what [`load`] read (see
    /// [`Limits::loaded`]), the counts kept in `store` (none: in memory only).
    pub(super) fn new(config: &LimitsConfig, store: Option<Store>) -> Limits {
        Limits {
            per_minute: config.per_recipient.per_minute,
            per_hour: config.per_recipient.per_hour,
            per_day: config.per_day,
            quiet: config.quiet(),
            store,
            counts: Counts::default(),
        }
    }

    /// Takes the counts [`load`] read.
    pub(super) fn loaded(&mut self, counts: Counts) {
        self.counts = counts;
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

    /// Whether one more message to `to` (its contact key, or its name when it has none: see
    /// `outbound::counted_as`) may go now.
    pub(super) fn check(&self, to: &str, now: Now) -> Result<(), Blocked> {
        let day = now.wall_of_day();
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
        let (midnight, next_midnight) = now.day;
        let today = self
            .counts
            .sends
            .iter()
            .filter(|s| s.at >= midnight)
            .count();
        if today >= self.effective(self.per_day, now) as usize {
            return Err(Blocked {
                limit: Limit::PerDay,
                until_ms: next_midnight,
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

    /// Halves the limits for [`TIGHT_FOR_MS`] from `now`, and stores that.
    pub(super) fn tighten(&mut self, now: Now) {
        self.counts.tight_until_ms = now.ms + TIGHT_FOR_MS;
        self.save();
    }

    /// Messages sent since local midnight, and the day's limit as it is now.
    pub(super) fn today(&self, now: Now) -> (u32, u32) {
        let midnight = now.day.0;
        let n = self
            .counts
            .sends
            .iter()
            .filter(|s| s.at >= midnight)
            .count();
        (n as u32, self.effective(self.per_day, now))
    }

    /// Hands the counts to the spool's writer, which holds them for its next group commit
    /// (see the module docs).
    fn save(&self) {
        let Some(store) = &self.store else {
            return;
        };
        match serde_json::to_vec(&self.counts) {
            Ok(value) => store.hold_value(VALUE, value),
            Err(e) => tracing::error!(cause = %e, "cannot encode the send counts"),
        }
    }
}

/// The counts stored in `store`. A `limits.json` left in `state_dir` by the previous version
/// is moved into the spool first (when the spool has no counts yet) and then deleted; one
/// that cannot be read is left where it is. Counts that cannot be read count from zero, with a
/// warning.
pub(super) async fn load(store: &Store, state_dir: &Path) -> Counts {
    let mut stored = match store.value(VALUE).await {
        Ok(v) => v,
        Err(e) => {
            // Nor is an old file moved in: it could replace counts the spool has.
            tracing::warn!(cause = %e, "cannot read the send counts; counting from zero");
            return Counts::default();
        }
    };
    let old = state_dir.join(OLD_FILE);
    match std::fs::read(&old) {
        Ok(bytes) => {
            if stored.is_none() {
                match serde_json::from_slice::<Counts>(&bytes) {
                    Ok(_) => match store.put_value(VALUE, bytes.clone()).await {
                        Ok(()) => {
                            tracing::info!(file = %old.display(), "moved the send counts into the spool");
                            stored = Some(bytes);
                        }
                        Err(e) => {
                            // Kept for the next start; counted from this run.
                            tracing::warn!(cause = %e, "cannot move the send counts into the spool");
                            return decode(&bytes);
                        }
                    },
                    Err(e) => {
                        tracing::warn!(cause = %e, file = %old.display(), "unreadable send counts left in place; counting from zero");
                        return Counts::default();
                    }
                }
            }
            // Stored in the spool now (or already, by a start that stopped before this).
            if let Err(e) = std::fs::remove_file(&old) {
                tracing::warn!(cause = %e, file = %old.display(), "cannot delete the old send counts file");
            }
            let _ = std::fs::remove_file(old.with_extension("json.tmp"));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(cause = %e, file = %old.display(), "cannot read the old send counts file")
        }
    }
    decode_stored(stored)
}

fn decode_stored(stored: Option<Vec<u8>>) -> Counts {
    stored.as_deref().map(decode).unwrap_or_default()
}

fn decode(bytes: &[u8]) -> Counts {
    serde_json::from_slice(bytes).unwrap_or_else(|e| {
        tracing::warn!(cause = %e, "unreadable send counts; counting from zero");
        Counts::default()
    })
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
        Now::in_zone(1_796_547_600_000 + minutes_after * MINUTE_MS, |_| 3600)
    }

    /// Europe/Berlin in 2026: UTC+1, and UTC+2 from 2026-03-29 01:00 UTC (02:00 local jumps
    /// to 03:00) to 2026-10-25 01:00 UTC (03:00 local falls back to 02:00). A closure rather
    /// than the system zone, so the test does not depend on the machine's `TZ`.
    fn berlin(ms: i64) -> i32 {
        const SPRING: i64 = 1_774_746_000_000; // 2026-03-29T01:00:00Z
        const AUTUMN: i64 = 1_792_890_000_000; // 2026-10-25T01:00:00Z
        if (SPRING..AUTUMN).contains(&ms) {
            7200
        } else {
            3600
        }
    }

    #[test]
    fn on_a_dst_change_day_midnight_keeps_the_offset_it_had() {
        // 2026-03-29 10:00 CEST = 08:00 UTC; that day began at 00:00 CET = 03-28 23:00 UTC
        // and is 23 hours long.
        let spring = Now::in_zone(1_774_771_200_000, berlin);
        assert_eq!(
            spring.day,
            (1_774_738_800_000, 1_774_738_800_000 + 23 * HOUR_MS)
        );
        // 2026-10-25 10:00 CET = 09:00 UTC; the day began at 00:00 CEST = 10-24 22:00 UTC
        // and is 25 hours long.
        let autumn = Now::in_zone(1_792_918_800_000, berlin);
        assert_eq!(
            autumn.day,
            (1_792_879_200_000, 1_792_879_200_000 + 25 * HOUR_MS)
        );

        // A send at 00:30 local on the spring day counts for that day, and the day's limit
        // holds until the next local midnight.
        let mut l = Limits::new(&config("per_day: 1"), None);
        l.record("Alice", Now::in_zone(1_774_740_600_000, berlin)); // 03-28 23:30 UTC
        let b = l.check("Bob", spring).unwrap_err();
        assert_eq!((b.limit, b.until_ms), (Limit::PerDay, spring.day.1));
        assert_eq!(l.today(spring), (1, 1));
    }

    #[test]
    fn counts_stored_by_name_hold_no_key_but_still_count_for_the_day() {
        let mut l = Limits::new(
            &config("per_recipient: { per_minute: 1, per_hour: 10 }\nper_day: 2"),
            None,
        );
        // As a version that counted by name stored them.
        let stored = format!(r#"{{"sends":[{{"at":{},"to":"Alice"}}]}}"#, at(0).ms);
        l.loaded(serde_json::from_str(&stored).unwrap());
        assert!(
            l.check("c_k3n7q2xw5abd", at(0)).is_ok(),
            "a count by name never holds a key"
        );
        l.record("c_k3n7q2xw5abd", at(0));
        assert_eq!(
            l.check("c_q4mz7b2kd6wa", at(0)).unwrap_err().limit,
            Limit::PerDay
        );
    }

    #[test]
    fn a_recipient_over_its_minute_waits_until_the_oldest_send_leaves_the_window() {
        let mut l = Limits::new(
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
        let mut l = Limits::new(
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
        let l = Limits::new(&config("quiet_hours: \"09:30-10:30\""), None);
        let b = l.check("Alice", at(0)).unwrap_err();
        assert_eq!((b.limit, b.until_ms), (Limit::QuietHours, at(30).ms));
        assert!(l.check("Alice", at(30)).is_ok());
    }

    #[test]
    fn after_a_1205_the_limits_are_halved_for_an_hour() {
        let mut l = Limits::new(
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

    fn spawn(dir: &Path) -> Store {
        let spool = crate::spool::RedbSpool::open(&dir.join("spool.redb"), 1000).unwrap();
        Store::spawn(spool, 100).unwrap()
    }

    #[tokio::test]
    async fn the_counts_are_kept_in_the_spool_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let c = config("per_day: 2");
        let store = spawn(dir.path());
        let mut l = Limits::new(&c, Some(store.clone()));
        l.loaded(load(&store, dir.path()).await);
        l.record("Alice", at(0));
        l.record("Bob", at(1));
        // Closing commits what was queued before it.
        store.close().await;

        let store = spawn(dir.path());
        let mut again = Limits::new(&c, Some(store.clone()));
        again.loaded(load(&store, dir.path()).await);
        assert_eq!(
            again.check("Carol", at(2)).unwrap_err().limit,
            Limit::PerDay
        );
        assert!(!dir.path().join(OLD_FILE).exists(), "no file of their own");
    }

    #[tokio::test]
    async fn a_count_costs_no_fsync_of_its_own_and_rides_with_the_next_write() {
        let dir = tempfile::tempdir().unwrap();
        let store = spawn(dir.path());
        let id = store.enqueue_command(b"cmd".to_vec()).await.unwrap();
        let mut l = Limits::new(&config("per_day: 1"), Some(store.clone()));
        let (commits, fsyncs) = (store.commits(), store.fsyncs());
        l.record("Alice", at(0));
        // Time for the writer to commit the count on its own, if it would (it must not: a
        // held value waits a second for a write to ride with).
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert_eq!(store.commits(), commits, "no commit for the count alone");
        // What the sender asks for right after a send: the command's result.
        let result = crate::spool::NewEntry {
            kind: crate::spool::Kind::Result,
            id: "r".into(),
            payload: b"{}".to_vec(),
            reply_to: None,
        };
        store.complete_command(id, None, result).await.unwrap();
        assert_eq!(
            (store.commits(), store.fsyncs()),
            (commits + 1, fsyncs + 1),
            "the count and the result in one group"
        );
        assert_eq!(load(&store, dir.path()).await.sends.len(), 1);
    }

    #[tokio::test]
    async fn a_limits_file_of_the_previous_version_moves_into_the_spool_once() {
        let dir = tempfile::tempdir().unwrap();
        let c = config("per_day: 2");
        let old = Counts {
            sends: [at(0), at(1)]
                .into_iter()
                .map(|now| Sent {
                    at: now.ms,
                    to: "Alice".into(),
                })
                .collect(),
            tight_until_ms: at(30).ms,
        };
        std::fs::write(dir.path().join(OLD_FILE), serde_json::to_vec(&old).unwrap()).unwrap();

        let store = spawn(dir.path());
        let mut l = Limits::new(&c, Some(store.clone()));
        l.loaded(load(&store, dir.path()).await);
        assert_eq!(l.check("Bob", at(2)).unwrap_err().limit, Limit::PerDay);
        assert!(l.tightened(at(2)));
        assert!(!dir.path().join(OLD_FILE).exists(), "the file is deleted");
        store.close().await;

        // Stored in the spool: the next start has them without the file.
        let store = spawn(dir.path());
        let counts = load(&store, dir.path()).await;
        assert_eq!(counts.sends.len(), 2);
        assert_eq!(counts.tight_until_ms, at(30).ms);
    }

    #[tokio::test]
    async fn an_unreadable_limits_file_is_left_in_place() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(OLD_FILE), b"{not json").unwrap();
        let store = spawn(dir.path());
        assert!(load(&store, dir.path()).await.sends.is_empty());
        assert!(dir.path().join(OLD_FILE).exists());
    }
}
