//! `send.limits` (DESIGN.md "Account safety"): how many messages a person would send, on top
//! of `send.rate`'s throttle. The counting and waiting live in `bridge::limits`.
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The `send.limits` section.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Sends to one recipient.
    pub per_recipient: PerRecipient,
    /// Sends to all recipients together in one local calendar day.
    pub per_day: u32,
    /// A random pause in `[min, max]` before each send.
    pub jitter: [humantime_serde::Serde<Duration>; 2],
    /// `"HH:MM-HH:MM"` in local time: sends wait until it ends. `None`: no quiet hours.
    pub quiet_hours: Option<String>,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            per_recipient: PerRecipient::default(),
            per_day: 500,
            jitter: [
                Duration::from_millis(300).into(),
                Duration::from_millis(1500).into(),
            ],
            quiet_hours: None,
        }
    }
}

impl LimitsConfig {
    /// The jitter's bounds.
    pub fn jitter(&self) -> (Duration, Duration) {
        (*self.jitter[0], *self.jitter[1])
    }

    /// The quiet hours as minutes after local midnight (start, end); validation has checked
    /// that they parse.
    pub fn quiet(&self) -> Option<QuietHours> {
        self.quiet_hours
            .as_deref()
            .and_then(|q| QuietHours::parse(q).ok())
    }
}

/// `send.limits.per_recipient`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PerRecipient {
    /// Sends to one recipient within any 60 seconds.
    pub per_minute: u32,
    /// Sends to one recipient within any 60 minutes.
    pub per_hour: u32,
}

impl Default for PerRecipient {
    fn default() -> Self {
        PerRecipient {
            per_minute: 6,
            per_hour: 60,
        }
    }
}

/// Quiet hours: from `start` until `end`, minutes after local midnight; past midnight when
/// `end` is before `start` (`23:00-07:00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    /// First minute of the quiet.
    pub start: u32,
    /// First minute after it.
    pub end: u32,
}

impl QuietHours {
    /// Parses `"HH:MM-HH:MM"`.
    pub fn parse(s: &str) -> Result<QuietHours, String> {
        let bad =
            || format!("must be \"HH:MM-HH:MM\" in local time, e.g. \"23:00-07:00\" (got {s:?})");
        let (a, b) = s.split_once('-').ok_or_else(bad)?;
        let minute = |t: &str| -> Option<u32> {
            let (h, m) = t.trim().split_once(':')?;
            if h.len() != 2 || m.len() != 2 {
                return None;
            }
            let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
            (h < 24 && m < 60).then_some(h * 60 + m)
        };
        let (start, end) = (minute(a).ok_or_else(bad)?, minute(b).ok_or_else(bad)?);
        if start == end {
            return Err(format!(
                "must not start and end at the same minute (got {s:?})"
            ));
        }
        Ok(QuietHours { start, end })
    }

    /// True when `minute` (after local midnight) is quiet.
    pub fn contains(&self, minute: u32) -> bool {
        if self.start < self.end {
            (self.start..self.end).contains(&minute)
        } else {
            minute >= self.start || minute < self.end
        }
    }
}

/// Checks `send.limits`; the error names the key.
pub(super) fn validate(limits: &LimitsConfig) -> Result<(), (String, String)> {
    let key = |k: &str| format!("send.limits.{k}");
    for (name, v) in [
        ("per_recipient.per_minute", limits.per_recipient.per_minute),
        ("per_recipient.per_hour", limits.per_recipient.per_hour),
        ("per_day", limits.per_day),
    ] {
        if v == 0 {
            return Err((key(name), "must be at least 1 (got 0)".into()));
        }
    }
    let (min, max) = limits.jitter();
    if min > max {
        return Err((
            key("jitter"),
            format!("the first (shortest) pause must not be longer than the second (got [{min:?}, {max:?}])"),
        ));
    }
    if max > Duration::from_secs(60) {
        return Err((key("jitter"), format!("must be at most 60s (got {max:?})")));
    }
    if let Some(q) = &limits.quiet_hours {
        QuietHours::parse(q).map_err(|m| (key("quiet_hours"), m))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_hours_may_span_midnight() {
        let q = QuietHours::parse("23:00-07:00").unwrap();
        assert!(q.contains(23 * 60) && q.contains(0) && q.contains(7 * 60 - 1));
        assert!(!q.contains(7 * 60) && !q.contains(22 * 60 + 59));
        let day = QuietHours::parse("12:30-13:00").unwrap();
        assert!(day.contains(12 * 60 + 30) && !day.contains(13 * 60) && !day.contains(0));
        for bad in [
            "23:00",
            "7:00-08:00",
            "24:00-01:00",
            "10:00-10:00",
            "aa:bb-cc:dd",
        ] {
            assert!(QuietHours::parse(bad).is_err(), "{bad}");
        }
    }
}
