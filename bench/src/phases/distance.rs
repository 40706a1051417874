//! A distant server: the fake holds every answer back by `--fake-delay-ms` (one network round
//! trip), and a burst is fetched by a bare client (the fetch-only ceiling: synccheck and
//! webwxsync back to back, nothing else) and relayed by the bridge to MQTT. On loopback the
//! bridge's own work shows against the ceiling; far away the round trips dominate, and what
//! the bridge does between one webwxsync answer and its next request adds to every one of
//! them. Both are measured here, back to back, with the same workload.
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

use super::{fake_check, measure, Run};
use crate::env::{Env, Stage};
use crate::machine::{self, RssSampler};
use crate::receivers::MqttSubscriber;
use crate::tally::Tally;
use crate::workload;

/// Seed of the bridge's burst.
const SEED: u64 = 0xFA12;

/// One distance: the ceiling's drains and the bridge's runs.
#[derive(Debug, Clone)]
pub struct AtDelay {
    /// The fake's answer delay.
    pub delay: Duration,
    /// The bare client's drains: messages per second each.
    pub ceiling: Vec<f64>,
    /// The bridge relaying the burst to MQTT (QoS 1).
    pub bridge: Vec<Run>,
}

/// The phase: loopback first, then the delay.
#[derive(Debug, Clone, Default)]
pub struct Distance {
    /// Loopback and `--fake-delay-ms`; empty when the delay is zero.
    pub runs: Vec<AtDelay>,
}

/// Runs the phase (nothing when `--fake-delay-ms 0`).
pub async fn run(env: &Env) -> Result<Distance> {
    let far = env.settings.fake_delay;
    if far.is_zero() {
        return Ok(Distance::default());
    }
    let mut runs = Vec::new();
    for delay in [Duration::ZERO, far] {
        let mut at = AtDelay {
            delay,
            ceiling: Vec::new(),
            bridge: Vec::new(),
        };
        for rep in 0..env.settings.reps {
            let served = fake_check::drain(env, delay, 1).await?;
            at.ceiling.extend(served.rates());
            let run = bridge_run(env, delay).await?;
            progress!(
                "  distance {} ms, rep {}: ceiling {:.0} msg/s, bridge {}/{} at {:.0} msg/s",
                delay.as_millis(),
                rep + 1,
                served.rates().first().copied().unwrap_or(0.0),
                run.received,
                run.expected,
                run.rate()
            );
            at.bridge.push(run);
        }
        runs.push(at);
    }
    Ok(Distance { runs })
}

/// The bridge relaying a burst to MQTT from a fake `delay` away, timed as the throughput
/// runs are: from its first synccheck to the last message at the subscriber.
async fn bridge_run(env: &Env, delay: Duration) -> Result<Run> {
    let stage = Stage::distant(env, env.settings.small_book, true, delay).await?;
    let n = env.settings.messages;
    let tally = Tally::new(n);
    let _sub = MqttSubscriber::start(env.mosquitto.port, &stage.account, tally.clone()).await?;
    // Queued before the login, so that the first synccheck answers at once.
    for m in workload::mix(&stage.book, n, SEED) {
        stage.fake.queue(m);
    }
    let bridge = stage.spawn(env, &env.mqtt(), tally.clone())?;
    stage.log_in().await?;
    stage.first_synccheck().await?;
    let t0 = Instant::now();
    let pid = bridge.pid();
    let (before, sampler) = (machine::usage(pid), RssSampler::start(pid));
    let run = measure(
        t0,
        pid,
        before,
        sampler,
        n,
        std::slice::from_ref(&tally),
        &[0],
    )
    .await;
    bridge.stop().await.with_context(|| stage.log())?;
    Ok(run)
}
