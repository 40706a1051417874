//! The distant-server comparison in the report: the bridge's burst relay against the
//! fetch-only ceiling, on loopback and with the fake's answer delay, and its target.
use std::fmt::Write as _;

use super::{median, rates, spread, thousands, Check, Report};
use crate::phases::distance::AtDelay;

/// The bridge's median rate ÷ the ceiling's median.
fn ratio(at: &AtDelay) -> Option<f64> {
    median(&rates(&at.bridge))
        .zip(median(&at.ceiling))
        .map(|(b, c)| b / c)
}

fn label(at: &AtDelay) -> String {
    if at.delay.is_zero() {
        "none (loopback)".to_owned()
    } else {
        format!("{} ms", at.delay.as_millis())
    }
}

impl Report {
    /// The target: at the delay, the relay reaches 0.95 of what fetching alone allows.
    pub(super) fn distance_checks(&self) -> Vec<Check> {
        self.distance
            .runs
            .iter()
            .filter(|at| !at.delay.is_zero())
            .map(|at| {
                let r = ratio(at);
                Check {
                    target: format!(
                        "burst relay (MQTT) ≥ 0.95 × the fetch-only ceiling, the fake {} ms away",
                        at.delay.as_millis()
                    ),
                    measured: r.map_or("–".into(), |r| format!("{r:.2} ×")),
                    met: r.map(|r| r >= 0.95),
                }
            })
            .collect()
    }

    pub(super) fn write_distance(&self, md: &mut String) {
        let runs = &self.distance.runs;
        if runs.is_empty() {
            return;
        }
        let s = &self.settings;
        let _ = writeln!(
            md,
            "### A distant server\n\nThe fake holds every answer back by a delay, as a server \
             one round trip of that length away would answer (a long poll: after its hold or \
             its wake-up). {} messages queued before login, as in the throughput runs; the \
             fetch-only ceiling is a bare client draining them through synccheck + webwxsync \
             and nothing else; the bridge relays them to MQTT (QoS 1), timed from its first \
             synccheck to the last message at the subscriber. {} {}; median [min–max].\n",
            thousands(s.messages as f64),
            s.reps,
            if s.reps == 1 {
                "repetition"
            } else {
                "repetitions"
            }
        );
        md.push_str(
            "| answer delay | fetch-only ceiling, msg/s | bridge → MQTT, msg/s | bridge ÷ ceiling |\n\
             |---|---|---|---|\n",
        );
        for at in runs {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} |",
                label(at),
                spread(&at.ceiling, thousands),
                spread(&rates(&at.bridge), thousands),
                ratio(at).map_or("–".into(), |r| format!("**{r:.2}**"))
            );
        }
        md.push('\n');
    }
}
