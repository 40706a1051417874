//! Media: an inbound mix of which about a third carries media, relayed to MQTT, and the
//! bridge's memory while one large video streams into its store.
//!
//! The mix ([`workload::media_mix`]) is queued while the bridge idles in its held synccheck,
//! as the memory bursts are. A media event is published only once its file is in the store,
//! so the run, timed from the first queueing to the last event at an MQTT subscriber (QoS 1),
//! includes every download; an event that arrives without a `sha256` counts as missing.
//!
//! The video follows on the same bridge, warmed up by the mix, so code paged in and pools
//! filled by the mix are not taken for the video's cost. Its peak resident memory is reset
//! first ([`machine::reset_peak`]), so `VmHWM` after it is the peak while it streamed, and
//! RSS is also sampled every 100 ms.
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use serde_json::Value;
use wxbridge_fake::Msg;

use super::{measure, Run};
use crate::env::{Env, Stage};
use crate::machine::{self, disk_bytes, RssSampler};
use crate::receivers::MqttSubscriber;
use crate::tally::Tally;
use crate::workload::{self, MediaKind};

/// Seed of the mix.
const SEED: u64 = 0x00ED_1A55;
/// `media.wait` of the phase's bridge: long, so that a slow machine measures slow downloads
/// rather than events given up on (which would go out as `fetch_failed` and be counted
/// missing).
pub const MEDIA_WAIT: Duration = Duration::from_secs(120);
/// The video's length in seconds, as its message announces it.
const VIDEO_SECS: u64 = 60;

/// One media kind of the mix.
#[derive(Debug, Clone, Copy)]
pub struct KindCount {
    /// The kind.
    pub kind: MediaKind,
    /// Messages of it queued.
    pub sent: usize,
    /// Of them, events that arrived with a `sha256`.
    pub stored: usize,
    /// The sum of those events' `size`s.
    pub bytes: u64,
}

/// The inbound mix.
#[derive(Debug, Clone, Default)]
pub struct Mix {
    /// All its messages, timed to the last event.
    pub run: Run,
    /// Per media kind, in [`MediaKind::ALL`] order.
    pub kinds: Vec<KindCount>,
    /// `media.error` (or `file.error`) of the media events that carried one, with how many.
    pub errors: Vec<(String, usize)>,
    /// The store's directory on disk after the mix, in bytes.
    pub dir_bytes: u64,
}

impl Mix {
    /// Media messages queued.
    pub fn media_sent(&self) -> usize {
        self.kinds.iter().map(|k| k.sent).sum()
    }

    /// Media events that arrived with a `sha256`.
    pub fn stored(&self) -> usize {
        self.kinds.iter().map(|k| k.stored).sum()
    }

    /// The sum of the stored files' sizes.
    pub fn stored_bytes(&self) -> u64 {
        self.kinds.iter().map(|k| k.bytes).sum()
    }

    /// Bytes written to the store per second of the run.
    pub fn store_rate(&self) -> f64 {
        self.stored_bytes() as f64 / self.run.secs.max(1e-9)
    }

    /// The bridge's CPU seconds per 1,000 messages.
    pub fn cpu_per_1k(&self) -> Option<f64> {
        self.run.cpu_per_10k().map(|c| c / 10.0)
    }
}

/// The large video.
#[derive(Debug, Clone, Default)]
pub struct Video {
    /// Its length as served, in bytes (0: not measured).
    pub bytes: u64,
    /// `size` of its event, when it arrived with a `sha256`.
    pub stored_size: Option<u64>,
    /// From queueing the message to its event at the subscriber, in seconds (up to the
    /// give-up time when it never arrived).
    pub secs: f64,
    /// The bridge's resident memory right before, in KiB.
    pub rss_before_kib: Option<u64>,
    /// Its largest sampled resident memory meanwhile, in KiB.
    pub rss_sampled_peak_kib: Option<u64>,
    /// Its peak resident memory meanwhile (`VmHWM` after a reset), in KiB; `None` where the
    /// reset is not allowed.
    pub hwm_kib: Option<u64>,
    /// Its resident memory when the event arrived, in KiB.
    pub rss_after_kib: Option<u64>,
    /// How many samples were taken.
    pub samples: usize,
}

impl Video {
    /// Whether its event arrived with the whole file stored.
    pub fn complete(&self) -> bool {
        self.stored_size == Some(self.bytes)
    }

    /// The peak while it streamed: `VmHWM` when it could be reset, else the sampled peak.
    pub fn peak_kib(&self) -> Option<u64> {
        self.hwm_kib.or(self.rss_sampled_peak_kib)
    }

    /// How far the peak rose above the resident memory before it, in KiB.
    pub fn growth_kib(&self) -> Option<u64> {
        self.peak_kib()
            .zip(self.rss_before_kib)
            .map(|(p, b)| p.saturating_sub(b))
    }
}

/// The phase's measurements.
#[derive(Debug, Clone, Default)]
pub struct Media {
    /// The inbound mix.
    pub mix: Mix,
    /// The large video.
    pub video: Video,
}

/// Runs the phase.
pub async fn run(env: &Env) -> Result<Media> {
    let n = env.settings.media_messages;
    let mut stage = Stage::new(env, env.settings.small_book).await?;
    stage.extra_config = format!("media:\n  wait: {}s\n", MEDIA_WAIT.as_secs());
    let tally = Tally::capturing(n + 1);
    let _sub = MqttSubscriber::start(env.mosquitto.port, &stage.account, tally.clone()).await?;
    let bridge = stage.launch(env, &env.mqtt(), tally.clone()).await?;
    let pid = bridge.pid();

    let mut mix = run_mix(&stage, pid, &tally, n).await;
    mix.dir_bytes = disk_bytes(&stage.state_dir().join("media"));
    progress!(
        "  media: mix of {n} ({} media): {}/{n} in {:.2} s, {}/{} stored, {:.1} MB/s to the store",
        mix.media_sent(),
        mix.run.received,
        mix.run.secs,
        mix.stored(),
        mix.media_sent(),
        mix.store_rate() / 1e6
    );
    let video = run_video(&stage, pid, &tally, env.settings.video_bytes).await;
    progress!(
        "  media: video of {} MB: {} in {:.2} s, RSS {} KiB before, peak {} KiB",
        video.bytes / 1_000_000,
        if video.complete() {
            "stored"
        } else {
            "NOT stored"
        },
        video.secs,
        video.rss_before_kib.unwrap_or(0),
        video.peak_kib().unwrap_or(0)
    );
    bridge.stop().await.with_context(|| stage.log())?;
    Ok(Media { mix, video })
}

/// `media` of a media event, `file` of a file event.
fn described(event: &Value) -> &Value {
    if event["type"] == "file" {
        &event["file"]
    } else {
        &event["media"]
    }
}

/// The captured events by id.
fn by_id(tally: &Tally) -> HashMap<String, Value> {
    tally
        .take_captured()
        .iter()
        .filter_map(|p| serde_json::from_slice::<Value>(p).ok())
        .filter_map(|v| Some((v["id"].as_str()?.to_owned(), v)))
        .collect()
}

async fn run_mix(stage: &Stage, pid: u32, tally: &Arc<Tally>, n: usize) -> Mix {
    let msgs = workload::media_mix(&stage.book, n, SEED);
    let t0 = Instant::now();
    let before = machine::usage(pid);
    let sampler = RssSampler::start(pid);
    let queued: Vec<(String, Option<MediaKind>)> = msgs
        .into_iter()
        .map(|(m, kind)| (stage.fake.queue(m).msg_id, kind))
        .collect();
    let run = measure(
        t0,
        pid,
        before,
        sampler,
        n,
        std::slice::from_ref(tally),
        &[0],
    )
    .await;
    let events = by_id(tally);
    let mut kinds: Vec<KindCount> = MediaKind::ALL
        .iter()
        .map(|&kind| KindCount {
            kind,
            sent: 0,
            stored: 0,
            bytes: 0,
        })
        .collect();
    let mut errors: HashMap<String, usize> = HashMap::new();
    for (id, kind) in &queued {
        let Some(kind) = kind else { continue };
        let Some(k) = kinds.iter_mut().find(|k| k.kind == *kind) else {
            continue;
        };
        k.sent += 1;
        let Some(d) = events.get(id).map(described) else {
            continue;
        };
        if let Some(e) = d["error"].as_str() {
            *errors.entry(format!("{}: {e}", kind.label())).or_default() += 1;
        }
        if d["sha256"].is_string() {
            k.stored += 1;
            k.bytes += d["size"].as_u64().unwrap_or(0);
        }
    }
    let mut errors: Vec<(String, usize)> = errors.into_iter().collect();
    errors.sort();
    Mix {
        run,
        kinds,
        errors,
        dir_bytes: 0,
    }
}

async fn run_video(stage: &Stage, pid: u32, tally: &Arc<Tally>, bytes: u64) -> Video {
    let from = stage
        .book
        .friends
        .first()
        .map_or("filehelper", |f| f.user_name.as_str());
    let base = tally.outcome().received;
    // Settled: the mix's last events are out and its downloads done.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = machine::usage(pid);
    let reset = machine::reset_peak(pid);
    let sampler = RssSampler::start(pid);
    let t0 = Instant::now();
    let id = stage
        .fake
        .queue(Msg::video(from, VIDEO_SECS).media_len(bytes))
        .msg_id;
    let outcome = tally
        .wait_for(base + 1, MEDIA_WAIT + Duration::from_secs(30))
        .await;
    let end = if outcome.received > base {
        outcome.last.unwrap_or_else(Instant::now)
    } else {
        Instant::now()
    };
    let after = machine::usage(pid);
    let samples = sampler.finish().await;
    let event = by_id(tally).remove(&id);
    let stored_size = event
        .as_ref()
        .map(described)
        .filter(|d| d["sha256"].is_string())
        .and_then(|d| d["size"].as_u64());
    Video {
        bytes,
        stored_size,
        secs: end.saturating_duration_since(t0).as_secs_f64(),
        rss_before_kib: before.map(|u| u.rss_kib),
        rss_sampled_peak_kib: samples.iter().copied().max(),
        hwm_kib: after.filter(|_| reset).map(|u| u.hwm_kib),
        rss_after_kib: after.map(|u| u.rss_kib),
        samples: samples.len(),
    }
}
