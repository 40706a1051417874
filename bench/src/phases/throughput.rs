//! Inbound throughput: the same burst of messages relayed by the bridge to each sink alone,
//! against a raw client publishing the bridge's own payloads straight to the same broker or
//! receiver, and against the bridge with no sink (stdout: protocol + spool only). Bridge and
//! raw runs alternate, and their order flips every repetition.
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, Result};

use super::{measure, wait_limit, Run};
use crate::bridge::{BridgeConfig, Sinks};
use crate::env::{Env, Stage};
use crate::machine::{self, RssSampler};
use crate::raw::{RawJetStream, RawMqtt, RawNats, RawWebhook};
use crate::receivers::{MqttSubscriber, NatsSubscriber};
use crate::tally::Tally;
use crate::workload;

/// Seed of the throughput workload.
const MIX_SEED: u64 = 0x00C0_FFEE;

/// Where the events go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// MQTT at QoS 1, each publish confirmed by its PUBACK.
    Mqtt,
    /// Core NATS, confirmed by a flush.
    Nats,
    /// NATS JetStream, each publish confirmed by the stream's ack.
    JetStream,
    /// A webhook, one POST at a time.
    Webhook,
}

impl Target {
    /// Every sink, in report order.
    pub const ALL: [Target; 4] = [
        Target::Mqtt,
        Target::Nats,
        Target::JetStream,
        Target::Webhook,
    ];

    /// Its name in the report.
    pub fn label(self) -> &'static str {
        match self {
            Target::Mqtt => "MQTT, QoS 1",
            Target::Nats => "NATS (core)",
            Target::JetStream => "NATS JetStream (acked)",
            Target::Webhook => "Webhook (one POST at a time)",
        }
    }

    fn sinks(self, env: &Env) -> Sinks {
        match self {
            Target::Mqtt => env.mqtt(),
            Target::Nats => env.nats(false),
            Target::JetStream => env.nats(true),
            Target::Webhook => env.webhook(),
        }
    }
}

/// One sink's runs.
#[derive(Debug, Clone)]
pub struct SinkRuns {
    /// The sink.
    pub target: Target,
    /// The bridge relaying to it.
    pub bridge: Vec<Run>,
    /// The raw client publishing to it.
    pub raw: Vec<Run>,
}

/// The whole phase.
#[derive(Debug, Clone, Default)]
pub struct Throughput {
    /// Per sink, in [`Target::ALL`] order.
    pub sinks: Vec<SinkRuns>,
    /// The bridge with no sink configured (events to stdout).
    pub no_sink: Vec<Run>,
}

/// A run's receiver; it stops when dropped (the webhook receiver is reset by the run).
#[derive(Default)]
struct Listener {
    _mqtt: Option<MqttSubscriber>,
    _nats: Option<NatsSubscriber>,
}

async fn listen(env: &Env, target: Target, account: &str, tally: Arc<Tally>) -> Result<Listener> {
    let mut l = Listener::default();
    match target {
        Target::Mqtt => {
            l._mqtt = Some(MqttSubscriber::start(env.mosquitto.port, account, tally).await?);
        }
        Target::Nats | Target::JetStream => {
            l._nats = Some(NatsSubscriber::start(env.nats.port, account, tally).await?);
        }
        Target::Webhook => env.hook.set(Some(tally)),
    }
    Ok(l)
}

/// Runs the phase.
pub async fn run(env: &Env) -> Result<Throughput> {
    let reps = env.settings.reps;
    let mut sinks: Vec<SinkRuns> = Target::ALL
        .iter()
        .map(|&target| SinkRuns {
            target,
            bridge: Vec::new(),
            raw: Vec::new(),
        })
        .collect();
    let mut no_sink = Vec::new();
    let mut payloads = Vec::new();
    for rep in 0..reps {
        let (run, captured) = bridge_run(env, None, rep == 0).await?;
        progress(rep, "no sink", &run);
        if rep == 0 {
            payloads = captured;
            anyhow::ensure!(
                !payloads.is_empty(),
                "the bridge printed no message events to replay"
            );
        }
        no_sink.push(run);
        for s in &mut sinks {
            let raw_first = rep % 2 == 1;
            for raw in [raw_first, !raw_first] {
                if raw {
                    let run = raw_run(env, s.target, &payloads).await?;
                    progress(rep, &format!("raw {}", s.target.label()), &run);
                    s.raw.push(run);
                } else {
                    let (run, _) = bridge_run(env, Some(s.target), false).await?;
                    progress(rep, &format!("bridge {}", s.target.label()), &run);
                    s.bridge.push(run);
                }
            }
        }
    }
    Ok(Throughput { sinks, no_sink })
}

fn progress(rep: usize, what: &str, run: &Run) {
    progress!(
        "  throughput rep {}: {what}: {}/{} in {:.2} s ({:.0} msg/s)",
        rep + 1,
        run.received,
        run.expected,
        run.secs,
        run.rate()
    );
}

/// The bridge relaying a burst to `target` (`None`: stdout). With `capture`, answers the
/// payloads it printed.
async fn bridge_run(
    env: &Env,
    target: Option<Target>,
    capture: bool,
) -> Result<(Run, Vec<Vec<u8>>)> {
    let stage = Stage::with_recording(env, env.settings.small_book, true).await?;
    let n = env.settings.messages;
    let msgs = workload::mix(&stage.book, n, MIX_SEED);
    let tally = if capture {
        Tally::capturing(n)
    } else {
        Tally::new(n)
    };
    let (sinks, _listener) = match target {
        Some(t) => (
            t.sinks(env),
            Some(listen(env, t, &stage.account, tally.clone()).await?),
        ),
        None => (Sinks::none(), None),
    };
    // Queued before the bridge logs in, so the fake's queueing is not timed: its first
    // synccheck then answers at once, and the clock starts when that synccheck arrives.
    for m in msgs {
        stage.fake.queue(m);
    }
    let bridge = stage.spawn(env, &sinks, tally.clone())?;
    stage.log_in().await?;
    stage.first_synccheck().await?;
    let t0 = Instant::now();
    let pid = bridge.pid();
    progress!("  bridge pid {pid} relaying");
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
    env.hook.set(None);
    if target == Some(Target::JetStream) {
        let stored = env
            .stream_count_and_delete(&BridgeConfig::stream(&stage.account))
            .await?;
        anyhow::ensure!(
            stored as usize >= n,
            "the JetStream stream holds {stored} of {n} messages"
        );
    }
    Ok((run, tally.take_captured()))
}

/// A raw client publishing `payloads` to `target`.
async fn raw_run(env: &Env, target: Target, payloads: &[Vec<u8>]) -> Result<Run> {
    let account = env.next_account();
    let n = payloads.len();
    let tally = Tally::new(n);
    let _listener = listen(env, target, &account, tally.clone()).await?;
    let stream = BridgeConfig::stream(&account);
    let t0;
    match target {
        Target::Mqtt => {
            let raw = RawMqtt::connect(env.mosquitto.port, &account).await?;
            t0 = Instant::now();
            raw.publish_all(payloads).await?;
        }
        Target::Nats => {
            let raw = RawNats::connect(env.nats.port, &account).await?;
            t0 = Instant::now();
            raw.publish_all(payloads).await?;
        }
        Target::JetStream => {
            let raw = RawJetStream::connect(env.nats.port, &account, &stream).await?;
            t0 = Instant::now();
            raw.publish_all(payloads).await?;
        }
        Target::Webhook => {
            let raw = RawWebhook::new(&env.hook.url())?;
            t0 = Instant::now();
            raw.publish_all(payloads).await?;
        }
    }
    let outcome = tally.wait(wait_limit(n)).await;
    env.hook.set(None);
    if target == Target::JetStream {
        env.stream_count_and_delete(&stream).await?;
    }
    let end = match (outcome.received >= n, outcome.last) {
        (true, Some(last)) => last,
        _ => Instant::now(),
    };
    Ok(Run {
        expected: n,
        received: outcome.received,
        secs: end.duration_since(t0).as_secs_f64(),
        ..Run::default()
    })
}
