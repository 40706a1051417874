//! Latency on loopback, the spool durable as always: a steady inbound rate through the bridge
//! to an MQTT subscriber (each message tagged with its index; the bench notes when it queued
//! it), the same payloads at the same rate from a raw MQTT client (the broker's own share),
//! and outbound: a send command published over MQTT until the fake records the
//! `webwxsendmsg`, one command at a time.
use std::time::{Duration, Instant};

use anyhow::Result;
use rumqttc::QoS;

use crate::env::{Env, Stage};
use crate::machine::{self, RssSampler};
use crate::raw::RawMqtt;
use crate::receivers::MqttSubscriber;
use crate::tally::{Stamps, Tally};
use crate::workload::{self, Rng};

/// Seed of this phase's workload.
const SEED: u64 = 0x1A7E;
/// Pause between two timed send commands.
const SEND_GAP: Duration = Duration::from_millis(20);

/// The phase's measurements.
#[derive(Debug, Clone, Default)]
pub struct Latency {
    /// Messages per second injected.
    pub rate: u32,
    /// Messages injected.
    pub inbound_expected: usize,
    /// Queueing at the fake → arrival at the MQTT subscriber, via the bridge.
    pub inbound: Vec<Duration>,
    /// Raw client publish → arrival at the MQTT subscriber, same payloads and rate.
    pub raw: Vec<Duration>,
    /// Send commands published.
    pub outbound_expected: usize,
    /// MQTT publish of a send command → the fake recorded the webwxsendmsg.
    pub outbound: Vec<Duration>,
    /// The bridge's resident memory when the steady phase began, in KiB.
    pub rss_start_kib: Option<u64>,
    /// The bridge's resident memory when it ended, in KiB.
    pub rss_end_kib: Option<u64>,
    /// The largest sample in between, in KiB.
    pub rss_peak_kib: Option<u64>,
    /// The bridge's CPU time over the steady phase.
    pub cpu: Option<Duration>,
    /// Bytes the bridge wrote to storage over the steady phase (`/proc/<pid>/io`).
    pub write_bytes: Option<u64>,
    /// The spool's syncs to storage over the steady phase.
    pub spool_fsyncs: Option<u64>,
}

impl Latency {
    /// Bytes written to storage per message at the steady rate.
    pub fn bytes_per_message(&self) -> Option<f64> {
        self.write_bytes
            .map(|b| b as f64 / self.inbound_expected.max(1) as f64)
    }

    /// The spool's syncs to storage per message at the steady rate.
    pub fn fsyncs_per_message(&self) -> Option<f64> {
        self.spool_fsyncs
            .map(|n| n as f64 / self.inbound_expected.max(1) as f64)
    }
}

/// Runs the phase.
pub async fn run(env: &Env) -> Result<Latency> {
    let rate = env.settings.rate;
    let n = (u64::from(rate) * env.settings.latency_secs) as usize;
    let period = Duration::from_secs_f64(1.0 / f64::from(rate));
    let stage = Stage::new(env, env.settings.small_book).await?;
    let stamps = Stamps::new(n);
    let tally = Tally::timing(n, stamps.clone(), true);
    let sub = MqttSubscriber::start(env.mosquitto.port, &stage.account, tally.clone()).await?;
    let bridge = stage.launch(env, &env.mqtt(), tally.clone()).await?;
    let pid = bridge.pid();

    let msgs = workload::tagged(&stage.book, n, SEED);
    let before = machine::usage(pid);
    let sampler = RssSampler::start(pid);
    let mut tick = tokio::time::interval(period);
    for (i, m) in msgs.into_iter().enumerate() {
        tick.tick().await;
        stamps.stamp(i);
        stage.fake.queue(m);
    }
    tally.wait(Duration::from_secs(30)).await;
    let after = machine::usage(pid);
    let samples = sampler.finish().await;
    progress!(
        "  latency: inbound {}/{n} at {rate}/s",
        tally.latencies().len()
    );

    let outbound = outbound(env, &stage, &sub).await?;
    progress!(
        "  latency: outbound {}/{}",
        outbound.len(),
        env.settings.sends
    );
    bridge.stop().await?;
    drop(sub);

    let raw = raw_hop(env, tally.take_captured(), n, period).await?;
    Ok(Latency {
        rate,
        inbound_expected: n,
        inbound: tally.latencies(),
        raw,
        outbound_expected: env.settings.sends,
        outbound,
        rss_start_kib: before.map(|u| u.rss_kib),
        rss_end_kib: after.map(|u| u.rss_kib),
        rss_peak_kib: samples.iter().copied().max(),
        cpu: before.zip(after).map(|(b, a)| a.cpu.saturating_sub(b.cpu)),
        write_bytes: before
            .zip(after)
            .and_then(|(b, a)| Some(a.write_bytes?.saturating_sub(b.write_bytes?))),
        spool_fsyncs: before
            .zip(after)
            .and_then(|(b, a)| Some(a.spool_fsyncs?.saturating_sub(b.spool_fsyncs?))),
    })
}

/// Times send commands one at a time: MQTT publish → the fake accepted the webwxsendmsg.
async fn outbound(env: &Env, stage: &Stage, sub: &MqttSubscriber) -> Result<Vec<Duration>> {
    let to = match stage.book.friends.first() {
        Some(f) if !f.remark_name.is_empty() => f.remark_name.clone(),
        Some(f) => f.nick_name.clone(),
        None => "filehelper".to_owned(),
    };
    let topic = format!("wechat/{}/send", stage.account);
    let mut rng = Rng::new(SEED);
    let mut samples = Vec::with_capacity(env.settings.sends);
    // Command 0 warms the path up (the first command after login is some 40 ms slower than
    // the rest) and is not timed.
    for i in 0..=env.settings.sends {
        let command = serde_json::json!({
            "to": to,
            "text": workload::chat_text(&mut rng),
            "request_id": format!("lat-{i}"),
        });
        let t = Instant::now();
        sub.client()
            .publish(&topic, QoS::AtLeastOnce, false, command.to_string())
            .await?;
        let sent = stage.fake.wait_sent(i + 1, Duration::from_secs(10)).await;
        if sent.len() <= i {
            break;
        }
        if i > 0 {
            samples.push(t.elapsed());
        }
        tokio::time::sleep(SEND_GAP).await;
    }
    Ok(samples)
}

/// The broker's own share: the bridge's payloads published by a raw client at the same rate.
async fn raw_hop(
    env: &Env,
    payloads: Vec<Vec<u8>>,
    n: usize,
    period: Duration,
) -> Result<Vec<Duration>> {
    let account = env.next_account();
    let stamps = Stamps::new(n);
    let tally = Tally::timing(payloads.len(), stamps.clone(), false);
    let _sub = MqttSubscriber::start(env.mosquitto.port, &account, tally.clone()).await?;
    let raw = RawMqtt::connect(env.mosquitto.port, &account).await?;
    raw.publish_paced(payloads, period, stamps).await?;
    tally.wait(Duration::from_secs(30)).await;
    Ok(tally.latencies())
}
