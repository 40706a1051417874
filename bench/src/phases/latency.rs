//! Latency on loopback, the spool durable as always: a steady inbound rate through the bridge
//! to an MQTT subscriber (each message tagged with its index; the bench notes when it queued
//! it), the same payloads at the same rate from a raw MQTT client (the broker's own share),
//! and outbound: a send command published over MQTT until the fake records the
//! `webwxsendmsg`, and on until its result arrives on `/send/result`, one command at a time.
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use rumqttc::{AsyncClient, Event, Packet, QoS};
use tokio::sync::mpsc;

use crate::bridge::Sinks;
use crate::brokers;
use crate::env::{Env, Stage};
use crate::machine::{self, RssSampler};
use crate::raw::RawMqtt;
use crate::receivers::{mqtt_options, MqttSubscriber, Tasks};
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
    /// MQTT publish of a send command → its result arrived on `/send/result`.
    pub result: Vec<Duration>,
    /// The same, through a mosquitto with `set_tcp_nodelay true`.
    pub result_nodelay: Vec<Duration>,
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

    let (outbound, result) = outbound(env, &stage, &sub, env.mosquitto.port).await?;
    progress!(
        "  latency: outbound {}/{}, results {}/{}",
        outbound.len(),
        env.settings.sends,
        result.len(),
        env.settings.sends
    );
    bridge.stop().await?;
    drop(sub);
    let result_nodelay = outbound_nodelay(env).await?;
    progress!(
        "  latency: results through a nodelay broker {}/{}",
        result_nodelay.len(),
        env.settings.sends
    );

    let raw = raw_hop(env, tally.take_captured(), n, period).await?;
    Ok(Latency {
        rate,
        inbound_expected: n,
        inbound: tally.latencies(),
        raw,
        outbound_expected: env.settings.sends,
        outbound,
        result,
        result_nodelay,
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

/// Times send commands one at a time: MQTT publish → the fake accepted the webwxsendmsg, and
/// MQTT publish → the command's result arrived on `/send/result`.
async fn outbound(
    env: &Env,
    stage: &Stage,
    sub: &MqttSubscriber,
    port: u16,
) -> Result<(Vec<Duration>, Vec<Duration>)> {
    let to = match stage.book.friends.first() {
        Some(f) if !f.remark_name.is_empty() => f.remark_name.clone(),
        Some(f) => f.nick_name.clone(),
        None => "filehelper".to_owned(),
    };
    let topic = format!("wechat/{}/send", stage.account);
    let mut results = ResultSubscriber::start(port, &stage.account).await?;
    let mut rng = Rng::new(SEED);
    let mut sent_samples = Vec::with_capacity(env.settings.sends);
    let mut result_samples = Vec::with_capacity(env.settings.sends);
    // Command 0 warms the path up (the first command after login is some 40 ms slower than
    // the rest) and is not timed.
    for i in 0..=env.settings.sends {
        let request_id = format!("lat-{i}");
        let command = serde_json::json!({
            "to": to,
            "text": workload::chat_text(&mut rng),
            "request_id": request_id,
        });
        let t = Instant::now();
        sub.client()
            .publish(&topic, QoS::AtLeastOnce, false, command.to_string())
            .await?;
        let sent = stage.fake.wait_sent(i + 1, Duration::from_secs(10)).await;
        if sent.len() <= i {
            break;
        }
        let sent_at = t.elapsed();
        let Some(arrived) = results.wait(&request_id, Duration::from_secs(10)).await else {
            break;
        };
        if i > 0 {
            sent_samples.push(sent_at);
            result_samples.push(arrived.duration_since(t));
        }
        tokio::time::sleep(SEND_GAP).await;
    }
    Ok((sent_samples, result_samples))
}

/// Send command → result again, through a mosquitto of its own with `set_tcp_nodelay true`.
async fn outbound_nodelay(env: &Env) -> Result<Vec<Duration>> {
    let broker = brokers::mosquitto_nodelay().await?;
    let stage = Stage::new(env, env.settings.small_book).await?;
    let tally = Tally::new(0);
    let sub = MqttSubscriber::start(broker.port, &stage.account, tally.clone()).await?;
    let sinks = Sinks {
        mqtt: Some(broker.port),
        ..Sinks::none()
    };
    let bridge = stage.launch(env, &sinks, tally).await?;
    let (_, results) = outbound(env, &stage, &sub, broker.port).await?;
    bridge.stop().await?;
    Ok(results)
}

/// A QoS 1 subscriber on `wechat/<account>/send/result` that notes when each result arrived.
struct ResultSubscriber {
    arrived: mpsc::UnboundedReceiver<(Option<String>, Instant)>,
    _client: AsyncClient,
    _tasks: Tasks,
}

impl ResultSubscriber {
    /// Connects and returns once the subscription is acknowledged.
    async fn start(port: u16, account: &str) -> Result<ResultSubscriber> {
        let (client, mut events) =
            AsyncClient::new(mqtt_options(&format!("bench-results-{account}"), port), 16);
        // A measuring instrument: its own PUBACKs must not hold anything up.
        let mut network = rumqttc::NetworkOptions::new();
        network.set_tcp_nodelay(true);
        events.set_network_options(network);
        client
            .subscribe(format!("wechat/{account}/send/result"), QoS::AtLeastOnce)
            .await?;
        let (tx, arrived) = mpsc::unbounded_channel();
        let (ready, subscribed) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let mut ready = Some(ready);
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        if let Some(r) = ready.take() {
                            let _ = r.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let at = Instant::now();
                        let rid = serde_json::from_slice::<serde_json::Value>(&p.payload)
                            .ok()
                            .and_then(|v| v["request_id"].as_str().map(str::to_owned));
                        let _ = tx.send((rid, at));
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), subscribed)
            .await
            .context("the MQTT result subscriber was not acknowledged within 10 s")??;
        Ok(ResultSubscriber {
            arrived,
            _client: client,
            _tasks: Tasks(vec![task]),
        })
    }

    /// When the result of `request_id` arrived; None if it did not within `limit`. Results of
    /// other commands are skipped.
    async fn wait(&mut self, request_id: &str, limit: Duration) -> Option<Instant> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let (rid, at) = tokio::time::timeout_at(deadline, self.arrived.recv())
                .await
                .ok()??;
            if rid.as_deref() == Some(request_id) {
                return Some(at);
            }
        }
    }
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
