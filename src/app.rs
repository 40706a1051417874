//! `run`: the bridge's topology, built from the config, started, and drained at the end.
//!
//! [`prepare`] makes every check of the config that needs more than the loader's rules: each
//! sink's own checks and the files the config names (`check-config` runs exactly this, so a
//! config it accepts is one `run` starts with). [`run`] then builds the parts from it: the
//! state lock, the spool, the HTTP listener, the bridge, and each sink started and handed to
//! its delivery loop. At SIGINT/SIGTERM the bridge stops first, at a safe point; the sinks get
//! a moment to deliver what is spooled, then stop too, and the spool commits what it holds.
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::bridge::Bridge;
use crate::commands::{failure, refused, take_state};
use crate::config::{Config, ConfigError};
use crate::http::{HttpState, Recent, SinkHealth};
use crate::sinks::{mqtt, nats, run_delivery, stdio, webhook, Control, Intake, Sink, Started};
use crate::spool::{RedbSpool, Store};

/// Every configured sink, checked and ready to start. No sink configured: the stdio default,
/// which has nothing to check.
pub struct Plan {
    mqtt: Option<mqtt::Prepared>,
    nats: Option<nats::Prepared>,
    webhooks: Vec<webhook::Prepared>,
}

/// Prepares every configured sink ([`crate::sinks`] says what that checks). Pure but for the
/// files it reads; the error names the key.
pub fn prepare(config: &Config) -> Result<Plan, ConfigError> {
    let account = &config.account;
    let mqtt = match &config.mqtt {
        Some(section) => Some(mqtt::prepare(
            section,
            &config.homeassistant,
            account,
            config.send.max_bytes,
        )?),
        None => None,
    };
    let nats = match &config.nats {
        Some(section) => Some(nats::prepare(section, account)?),
        None => None,
    };
    check_media_paths(config)?;
    let webhooks = config
        .webhooks
        .iter()
        .enumerate()
        .map(|(index, hook)| webhook::prepare(index, hook, account))
        .collect::<Result<_, _>>()?;
    Ok(Plan {
        mqtt,
        nats,
        webhooks,
    })
}

/// For every account: `media.dir`, when it exists, must be a directory (it is made at start
/// when it does not); every `media.paths` entry must be a directory that exists: outbound
/// `{"path": …}` sources are only read from inside one. With `accounts`, a problem in an
/// account's own value names its entry (`accounts[1].media.paths[0]`).
fn check_media_paths(config: &Config) -> Result<(), ConfigError> {
    for (index, view) in config.accounts().iter().enumerate() {
        let media = &view.media;
        let key = |shared: bool, key: &str| {
            if config.several_accounts() && !shared {
                format!("accounts[{index}].{key}")
            } else {
                key.to_owned()
            }
        };
        let dir = media.dir_in(&view.state_dir);
        if std::fs::metadata(&dir).is_ok_and(|meta| !meta.is_dir()) {
            let key = key(media.dir == config.media.dir, "media.dir");
            return Err(ConfigError::Sink(
                format!("{key}: {} is not a directory", dir.display()).into(),
            ));
        }
        for (entry, path) in media.paths.iter().enumerate() {
            let problem = match std::fs::metadata(path) {
                Ok(meta) if meta.is_dir() => continue,
                Ok(_) => "is not a directory".to_owned(),
                Err(e) => format!("cannot be read: {e}"),
            };
            let key = key(
                media.paths == config.media.paths,
                &format!("media.paths[{entry}]"),
            );
            return Err(ConfigError::Sink(
                format!("{key}: {} {problem}", path.display()).into(),
            ));
        }
    }
    Ok(())
}

/// `run`: the bridge until SIGINT/SIGTERM. A config that [`prepare`] refuses exits 2 before
/// anything starts, as `check-config` does.
pub async fn run(config: Config) -> ExitCode {
    // Every account's sections checked, as check-config does; then one account's view: its
    // own state dir, name and sections.
    if let Err(e) = prepare(&config) {
        return refused(e);
    }
    let mut views = config.accounts();
    if views.len() > 1 {
        eprintln!(
            "wxbridge: accounts: `run` serves one account per process in this build; \
             list one account, or run one process per account"
        );
        return ExitCode::from(2);
    }
    let config = views.remove(0);
    let plan = match prepare(&config) {
        Ok(plan) => plan,
        Err(e) => return refused(e),
    };
    let _lock = match take_state(&config, "") {
        Ok(l) => l,
        Err(code) => return code,
    };
    let spool = match RedbSpool::open(
        &config.state_dir.join("spool.redb"),
        config.spool.max_events_per_sink,
    )
    .and_then(|s| Store::spawn(s, crate::sinks::WINDOW as u64))
    {
        Ok(s) => s,
        Err(e) => return failure(format!("cannot open the spool: {e}")),
    };
    // Bound before anything starts, so a taken port fails at once.
    let http = match &config.http {
        Some(http) => match crate::http::bind(http.listen).await {
            Ok(listener) => Some((listener, crate::metrics::install(), Recent::new())),
            Err(e) => return failure(e),
        },
        None => None,
    };
    // Opened after the metrics recorder is installed, so the store's gauges are recorded;
    // off the runtime, since it scans the whole store.
    let media_config = config.clone();
    let opened = tokio::task::spawn_blocking(move || crate::media::Media::open(&media_config))
        .await
        .unwrap_or_else(|e| Err(format!("cannot open the media store: {e}")));
    let media = match opened {
        Ok(media) => media,
        Err(message) => return failure(message),
    };
    // Two trees: the bridge stops first, at a safe point; the sinks then get a moment to
    // deliver what is spooled before they stop too.
    let shutdown = CancellationToken::new();
    let sinks_shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    // Not tracked: after the first signal it waits for a second one, for ever.
    tokio::spawn(crate::signal::stop_on_signal(shutdown.clone()));

    let (intake, intake_rx) = Intake::new(1024);
    tracker.spawn(
        media
            .store
            .clone()
            .upkeep(media.upkeep_every(), sinks_shutdown.clone()),
    );
    let bridge = Bridge::new(
        config.clone(),
        spool.clone(),
        media.clone(),
        shutdown.clone(),
    );
    let control = bridge.control(intake.clone(), sinks_shutdown.clone());
    let mut sinks = Deliveries {
        spool: spool.clone(),
        wake: bridge.wake(),
        control: &control,
        names: Vec::new(),
        health: Vec::new(),
    };
    let stdout = stdio::prepare(config.send.max_bytes, shutdown.clone());
    let recent = http.as_ref().map(|(_, _, recent)| recent);
    if let Err(message) = sinks.start_all(plan, stdout, recent, &tracker).await {
        return failure(message);
    }
    let Deliveries { names, health, .. } = sinks;
    if let (Some((listener, metrics, recent)), Some(http_config)) = (http, &config.http) {
        tracker.spawn(crate::metrics::upkeep(
            metrics.clone(),
            sinks_shutdown.clone(),
        ));
        let state = HttpState {
            control: control.clone(),
            session: bridge.session(),
            last_sync: bridge.last_sync(),
            sends_today: bridge.sends_today(),
            spool: spool.clone(),
            sinks: health,
            recent,
            metrics,
            config: http_config.clone(),
            send_ttl: config.send.default_ttl,
            max_bytes: config.send.max_bytes,
            media: media.clone(),
        };
        // Stops with the sinks, so it answers while they drain.
        tracker.spawn(crate::http::serve(listener, state, sinks_shutdown.clone()));
    }

    bridge.run(intake_rx).await;
    drain(&spool, &names, Duration::from_secs(5)).await;
    sinks_shutdown.cancel();
    tracker.close();
    // Bounded so a stuck link cannot keep the process from exiting.
    let _ = tokio::time::timeout(Duration::from_secs(5), tracker.wait()).await;
    // Commits the cursor moves the writer still holds, so a restart repeats nothing.
    spool.close().await;
    ExitCode::SUCCESS
}

/// Starts sinks' delivery loops on one spool, gathering their names and health.
struct Deliveries<'a> {
    spool: Store,
    wake: Arc<tokio::sync::Notify>,
    control: &'a Control,
    names: Vec<String>,
    health: Vec<SinkHealth>,
}

impl Deliveries<'_> {
    /// Starts every sink of `plan`, or `stdout` when it has none, and the status page's
    /// `recent` feed when given. Each sink's own tasks are tracked on `tracker`, so shutdown
    /// waits for MQTT's `offline` and DISCONNECT and for NATS's handlers.
    async fn start_all(
        &mut self,
        plan: Plan,
        stdout: stdio::Prepared,
        recent: Option<&Recent>,
        tracker: &TaskTracker,
    ) -> Result<(), String> {
        let control = || self.control.clone();
        if let Some(mqtt) = plan.mqtt {
            let started = mqtt.start(control(), tracker);
            self.start(started, tracker).await?;
        }
        if let Some(nats) = plan.nats {
            let started = nats
                .start(control(), tracker)
                .await
                .map_err(|e| e.to_string())?;
            self.start(started, tracker).await?;
        }
        for hook in plan.webhooks {
            let started = hook.start(self.control.intake.clone());
            self.start(started, tracker).await?;
        }
        if self.names.is_empty() {
            let started = stdout.start(control(), tracker);
            self.start(started, tracker).await?;
        }
        if let Some(recent) = recent {
            self.spawn(recent.sink(), tracker).await?;
        }
        // A sink no longer configured would pin its backlog in the spool for ever.
        self.spool
            .retain_sinks(self.names.clone())
            .await
            .map_err(|e| format!("cannot tidy the spool: {e}"))
    }

    /// Starts a configured sink's delivery loop; its health goes to `/readyz` and the page.
    async fn start<S: Sink + Send + 'static>(
        &mut self,
        started: Started<S>,
        tracker: &TaskTracker,
    ) -> Result<(), String> {
        let (sink, health) = crate::http::observe(started.sink, started.health);
        self.spawn(sink, tracker).await?;
        self.health.push(health);
        Ok(())
    }

    /// Starts a sink's delivery loop.
    async fn spawn<S: Sink + Send + 'static>(
        &mut self,
        sink: S,
        tracker: &TaskTracker,
    ) -> Result<(), String> {
        let name = sink.name().to_owned();
        // Registered before anything is spooled: a new sink starts at the spool's end.
        self.spool
            .register_sink(&name)
            .await
            .map_err(|e| format!("cannot register sink {name}: {e}"))?;
        let retry = self.control.retry;
        tracker.spawn(run_delivery(
            sink,
            self.spool.clone(),
            self.wake.clone(),
            move || retry.schedule(),
            self.control.shutdown.clone(),
        ));
        self.names.push(name);
        Ok(())
    }
}

/// Waits (up to `limit`) until every sink has delivered what it can: a held entry (its media
/// still downloading) and what follows it stay spooled for the next start.
async fn drain(spool: &Store, sinks: &[String], limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        let mut pending = 0;
        for s in sinks {
            pending += spool.pending(s, 1).await.map_or(0, |p| p.len());
        }
        if pending == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tracing::warn!("stopping with events still spooled; they go out after the next start");
}
