//! The benchmark's surroundings: the brokers and the webhook receiver shared by every run
//! ([`Env`]), and one run's stage ([`Stage`]): a fresh fake WeChat with its address book, a
//! fresh account name (so topics, subjects, retained states and JetStream message ids never
//! carry over between runs) and a fresh state dir.
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use wxbridge_fake::{FakeWeChat, Options};

use crate::bridge::{self, BridgeConfig, BridgeProcess, Sinks};
use crate::brokers::{self, Broker};
use crate::receivers::WebhookReceiver;
use crate::settings::{BookSize, Settings};
use crate::tally::Tally;
use crate::workload::{self, BookInfo};

/// How long the bridge gets after `online` to settle into its held synccheck.
pub const SETTLE: Duration = Duration::from_millis(500);
/// `send.rate` of every bridge: high, so the throttle never shapes a measurement.
pub const SEND_RATE: u32 = 1_000;
/// Set this environment variable to keep every run's bridge directory.
pub const KEEP: &str = "WXBRIDGE_BENCH_KEEP";
/// The config of every phase but the media phase: no media downloads. Those phases measure
/// the relay of events against raw clients, which download nothing; a media event waits for
/// its file, so with downloads on they would time the fake's media serving and the store
/// instead. The media phase measures those.
pub const NO_DOWNLOADS: &str = "media:\n  download: []\n";
/// Seed of the address books.
const BOOK_SEED: u64 = 0x5EED_B00C;

/// What every run shares.
pub struct Env {
    /// The resolved settings.
    pub settings: Settings,
    /// The wxbridge binary under test.
    pub bin: PathBuf,
    /// mosquitto.
    pub mosquitto: Broker,
    /// nats-server with JetStream.
    pub nats: Broker,
    /// The in-process webhook receiver.
    pub hook: WebhookReceiver,
    runs: AtomicUsize,
}

impl Env {
    /// Finds the bridge binary and starts the brokers and the webhook receiver.
    pub async fn start(settings: Settings) -> Result<Env> {
        let bin = bridge::locate(settings.bridge.as_deref())?;
        Ok(Env {
            bin,
            mosquitto: brokers::mosquitto().await?,
            nats: brokers::nats_server().await?,
            hook: WebhookReceiver::start().await?,
            settings,
            runs: AtomicUsize::new(0),
        })
    }

    /// A fresh account name: `r1`, `r2`, …
    pub fn next_account(&self) -> String {
        format!("r{}", self.runs.fetch_add(1, Ordering::Relaxed) + 1)
    }

    /// Sinks: MQTT only.
    pub fn mqtt(&self) -> Sinks {
        Sinks {
            mqtt: Some(self.mosquitto.port),
            ..Sinks::none()
        }
    }

    /// Sinks: NATS only, core or JetStream.
    pub fn nats(&self, jetstream: bool) -> Sinks {
        Sinks {
            nats: Some((self.nats.port, jetstream)),
            ..Sinks::none()
        }
    }

    /// Sinks: the webhook only.
    pub fn webhook(&self) -> Sinks {
        Sinks {
            webhook: Some(self.hook.url()),
            ..Sinks::none()
        }
    }

    /// Sinks: MQTT, NATS JetStream and the webhook together.
    pub fn all_sinks(&self) -> Sinks {
        Sinks {
            mqtt: Some(self.mosquitto.port),
            nats: Some((self.nats.port, true)),
            webhook: Some(self.hook.url()),
        }
    }

    /// A JetStream context on the benchmark's nats-server.
    pub async fn jetstream(&self) -> Result<async_nats::jetstream::Context> {
        let client = async_nats::connect(format!("nats://127.0.0.1:{}", self.nats.port)).await?;
        Ok(async_nats::jetstream::new(client))
    }

    /// How many messages `stream` holds; then deletes it (its store is not needed again).
    pub async fn stream_count_and_delete(&self, stream: &str) -> Result<u64> {
        let js = self.jetstream().await?;
        let mut s = js
            .get_stream(stream)
            .await
            .map_err(|e| anyhow::anyhow!("stream {stream}: {e}"))?;
        let count = s
            .info()
            .await
            .map_err(|e| anyhow::anyhow!("stream {stream} info: {e}"))?
            .state
            .messages;
        let _ = js.delete_stream(stream).await;
        Ok(count)
    }
}

/// One run's fake WeChat, account and directory.
pub struct Stage {
    /// The fake, started for this run.
    pub fake: FakeWeChat,
    /// Its address book.
    pub book: BookInfo,
    /// This run's account name.
    pub account: String,
    /// The bridge's directory (config, state, log).
    pub dir: tempfile::TempDir,
    /// Top-level YAML sections added to the bridge's config: by default, media downloads off
    /// (see [`NO_DOWNLOADS`]).
    pub extra_config: String,
}

impl Stage {
    /// A fake with `size`'s address book, webwxsync batches of up to 100, short holds and
    /// no request recording (memory stays flat); answers in the servers' layout, gzipped,
    /// unless `--compact-wire`.
    pub async fn new(env: &Env, size: BookSize) -> Result<Stage> {
        Stage::with_recording(env, size, false).await
    }

    /// Like [`Stage::new`]; with `record`, the fake records requests, which
    /// [`Stage::first_synccheck`] needs.
    pub async fn with_recording(env: &Env, size: BookSize, record: bool) -> Result<Stage> {
        Stage::distant(env, size, record, Duration::ZERO).await
    }

    /// Like [`Stage::with_recording`], the fake holding every answer back by `answer_delay`,
    /// as a server that far away would answer.
    pub async fn distant(
        env: &Env,
        size: BookSize,
        record: bool,
        answer_delay: Duration,
    ) -> Result<Stage> {
        let fake = FakeWeChat::start_with(Options {
            poll_hold: Duration::from_millis(300),
            sync_hold: Duration::from_secs(5),
            sync_batch: 100,
            seed_contacts: false,
            record_requests: record,
            compact_json: env.settings.compact_wire,
            gzip: !env.settings.compact_wire,
            answer_delay,
            ..Options::default()
        })
        .await;
        let book = workload::populate(&fake, size, BOOK_SEED);
        let mut dir = tempfile::tempdir()?;
        // For looking into a run afterwards: config, state and log stay.
        dir.disable_cleanup(std::env::var_os(KEEP).is_some());
        Ok(Stage {
            fake,
            book,
            account: env.next_account(),
            dir,
            extra_config: NO_DOWNLOADS.to_owned(),
        })
    }

    /// The state dir the bridge uses.
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Starts the bridge with `sinks`; `tally` learns when it is online.
    pub fn spawn(&self, env: &Env, sinks: &Sinks, tally: Arc<Tally>) -> Result<BridgeProcess> {
        let url = self.fake.url();
        let config = BridgeConfig {
            account: &self.account,
            dir: self.dir.path(),
            login_url: &url,
            sinks,
            send_rate: SEND_RATE,
            http_port: crate::brokers::free_port()?,
            extra: &self.extra_config,
        };
        BridgeProcess::spawn(&env.bin, &config, tally)
    }

    /// Starts the bridge, plays the phone (scan, confirm), waits until `tally` learns it is
    /// online, then lets it settle into its held synccheck.
    pub async fn launch(
        &self,
        env: &Env,
        sinks: &Sinks,
        tally: Arc<Tally>,
    ) -> Result<BridgeProcess> {
        let bridge = self.spawn(env, sinks, tally.clone())?;
        self.log_in().await?;
        if !tally.wait_online(Duration::from_secs(90)).await {
            bail!("the bridge did not come online; {}", self.log());
        }
        progress!("  bridge pid {} online", bridge.pid());
        tokio::time::sleep(SETTLE).await;
        Ok(bridge)
    }

    /// Plays the phone: waits for the bridge to poll a QR code, scans and confirms it.
    pub async fn log_in(&self) -> Result<()> {
        tokio::time::timeout(Duration::from_secs(25), self.fake.wait_for_login_poll())
            .await
            .with_context(|| format!("the bridge polled no QR code; {}", self.log()))?;
        self.fake.scan();
        self.fake.confirm();
        Ok(())
    }

    /// Waits until the bridge's first synccheck reaches the fake (a stage made
    /// [`Stage::with_recording`]).
    pub async fn first_synccheck(&self) -> Result<()> {
        let limit = Duration::from_secs(90);
        if self
            .fake
            .wait_requests("synccheck", 1, limit)
            .await
            .is_empty()
        {
            bail!("the bridge sent no synccheck; {}", self.log());
        }
        Ok(())
    }

    /// The end of the bridge's log, for error messages (the directory goes with the stage).
    pub fn log(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("bridge.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(20)..].join("\n");
        format!("the bridge's log ends with:\n{tail}")
    }
}
