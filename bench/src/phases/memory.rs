//! Memory and disk: the bridge's resident memory idle after login with the small and the
//! large address book, and during two bursts relayed to MQTT, NATS JetStream and the webhook
//! at once (the first warms up: code paged in, caches and pools filled to their bounds; the
//! second shows whether memory grows with the messages); the spool's size on disk after them.
use std::time::Duration;

use anyhow::Result;

use super::{burst, Run};
use crate::bridge::BridgeConfig;
use crate::env::{Env, Stage, SETTLE};
use crate::machine::{self, disk_bytes, Usage};
use crate::receivers::{MqttSubscriber, NatsSubscriber};
use crate::settings::BookSize;
use crate::tally::Tally;
use crate::workload;

/// How long the bridge idles after login before its memory is read.
const IDLE: Duration = Duration::from_secs(2);
/// Seed of the burst.
const SEED: u64 = 0xB0057;

/// Idle memory with one address book.
#[derive(Debug, Clone, Copy, Default)]
pub struct Idle {
    /// The book.
    pub book: BookSize,
    /// The bridge's usage after idling.
    pub usage: Usage,
    /// Seconds from process start to online (the QR login and the address book included).
    pub login_secs: f64,
}

/// The phase's measurements.
#[derive(Debug, Clone, Default)]
pub struct Memory {
    /// Idle after login, small book.
    pub small: Idle,
    /// Idle after login, large book.
    pub large: Idle,
    /// The first burst to every sink at once (small book).
    pub burst: Run,
    /// The second burst, right after the first, to the same bridge.
    pub again: Run,
    /// `spool.redb` (events, cursors, dedup index, sync keys) after the burst, in bytes.
    pub spool_bytes: u64,
    /// The whole state dir after the burst, in bytes.
    pub state_bytes: u64,
}

/// Runs the phase.
pub async fn run(env: &Env) -> Result<Memory> {
    let n = env.settings.messages;
    let stage = Stage::new(env, env.settings.small_book).await?;
    let mqtt = Tally::new(2 * n);
    let nats = Tally::new(2 * n);
    let hook = Tally::new(2 * n);
    let _mqtt_sub = MqttSubscriber::start(env.mosquitto.port, &stage.account, mqtt.clone()).await?;
    let _nats_sub = NatsSubscriber::start(env.nats.port, &stage.account, nats.clone()).await?;
    env.hook.set(Some(hook.clone()));
    let bridge = stage.launch(env, &env.all_sinks(), mqtt.clone()).await?;
    let login_secs = (bridge.started.elapsed() - SETTLE).as_secs_f64();
    tokio::time::sleep(IDLE).await;
    let small = Idle {
        book: env.settings.small_book,
        usage: machine::usage(bridge.pid()).unwrap_or_default(),
        login_secs,
    };
    progress!("  memory: idle, small book: {} KiB", small.usage.hwm_kib);

    let tallies = [mqtt, nats, hook];
    let msgs = workload::mix(&stage.book, n, SEED);
    let first = burst(&stage, bridge.pid(), msgs, &tallies).await;
    progress!(
        "  memory: burst to every sink: {}/{n} in {:.2} s",
        first.received,
        first.secs
    );
    let msgs = workload::mix(&stage.book, n, SEED + 1);
    let again = burst(&stage, bridge.pid(), msgs, &tallies).await;
    progress!(
        "  memory: second burst: {}/{n} in {:.2} s",
        again.received,
        again.secs
    );
    bridge.stop().await?;
    env.hook.set(None);
    let state_bytes = disk_bytes(&stage.state_dir());
    let spool_bytes = disk_bytes(&stage.state_dir().join("spool.redb"));
    let _ = env
        .stream_count_and_delete(&BridgeConfig::stream(&stage.account))
        .await;

    let large = idle(env, env.settings.large_book).await?;
    progress!("  memory: idle, large book: {} KiB", large.usage.hwm_kib);
    Ok(Memory {
        small,
        large,
        burst: first,
        again,
        spool_bytes,
        state_bytes,
    })
}

/// Idle memory after login with `book`, every sink configured.
pub async fn idle(env: &Env, book: BookSize) -> Result<Idle> {
    let stage = Stage::new(env, book).await?;
    let online = Tally::new(0);
    let _sub = MqttSubscriber::start(env.mosquitto.port, &stage.account, online.clone()).await?;
    let bridge = stage.launch(env, &env.all_sinks(), online).await?;
    let login_secs = (bridge.started.elapsed() - SETTLE).as_secs_f64();
    tokio::time::sleep(IDLE).await;
    let usage = machine::usage(bridge.pid()).unwrap_or_default();
    bridge.stop().await?;
    let _ = env
        .stream_count_and_delete(&BridgeConfig::stream(&stage.account))
        .await;
    Ok(Idle {
        book,
        usage,
        login_secs,
    })
}
