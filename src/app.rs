//! `run`: the bridge's topology, built from the config, started, and drained at the end.
//!
//! [`prepare`] makes every check of the config that needs more than the loader's rules: each
//! sink's own checks and the files the config names (`check-config` runs exactly this, so a
//! config it accepts is one `run` starts with). [`run`] then builds the parts from it.
//!
//! Each account of [`Config::accounts`] gets a part of its own: its state lock, its spool, its
//! media store, its bridge and its sinks' delivery loops, all on its own tasks and channels,
//! so one account's expired session, slow WeChat host or full spool never holds up another.
//! Shared by every account: one MQTT connection, one NATS connection, the webhooks (each
//! account delivers its own events to them, from its own spool), the HTTP listener, the
//! metrics recorder, the retry schedule and the signal handling. Each account's bridge runs
//! in a task of its own ([`supervise`]): a panic in it is logged, counted and answered by
//! restarting that bridge after the retry schedule's backoff, while the others go on.
//!
//! At SIGINT/SIGTERM the bridges stop first, at a safe point; the sinks get a moment to
//! deliver what is spooled, then stop too, and each spool commits what it holds.
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::bridge::Bridge;
use crate::commands::{failure, refused, take_state};
use crate::config::{Config, ConfigError};
use crate::http::{AccountHttp, HttpState, Recent, SinkHealth};
use crate::lock::StateLock;
use crate::media::Media;
use crate::retry::Retry;
use crate::sinks::{
    mqtt, nats, run_delivery, stdio, webhook, Control, IncomingCommand, Intake, Sink, Started,
};
use crate::spool::{RedbSpool, Store};

/// Every configured sink, checked and ready to start. No sink configured: the stdio default,
/// which has nothing to check.
pub struct Plan {
    /// The account views, in the config's order.
    accounts: Vec<Config>,
    mqtt: Option<mqtt::Prepared>,
    nats: Option<nats::Prepared>,
    /// Each account's webhooks (the same URLs for every account).
    webhooks: Vec<Vec<webhook::Prepared>>,
}

impl Plan {
    fn has_sinks(&self) -> bool {
        self.mqtt.is_some() || self.nats.is_some() || self.webhooks.iter().any(|w| !w.is_empty())
    }
}

/// Prepares every configured sink ([`crate::sinks`] says what that checks), for every
/// account. Pure but for the files it reads; the error names the key.
pub fn prepare(config: &Config) -> Result<Plan, ConfigError> {
    let accounts = config.accounts();
    let mqtt = match &config.mqtt {
        Some(section) => Some(mqtt::prepare(section, &config.homeassistant, &accounts)?),
        None => None,
    };
    let nats = match &config.nats {
        Some(section) => Some(nats::prepare(section, &accounts)?),
        None => None,
    };
    check_media_paths(config)?;
    let mut webhooks = Vec::with_capacity(accounts.len());
    for account in &accounts {
        webhooks.push(
            account
                .webhooks
                .iter()
                .enumerate()
                .map(|(index, hook)| webhook::prepare(index, hook, &account.account))
                .collect::<Result<_, _>>()?,
        );
    }
    Ok(Plan {
        accounts,
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

/// One account's own parts.
struct Part {
    config: Config,
    /// Held until the process ends.
    _lock: StateLock,
    spool: Store,
    media: Media,
    bridge: Arc<Bridge>,
    control: Control,
    /// The bridge's end of the intake; kept across restarts of its tasks.
    commands: Arc<tokio::sync::Mutex<mpsc::Receiver<IncomingCommand>>>,
}

/// The account's lock and spool; the spool's writer thread counts for the account.
fn open_state(config: &Config) -> Result<(StateLock, Store), ExitCode> {
    let lock = take_state(config, "")?;
    let account = Some(Arc::from(config.account.as_str()));
    let spool = crate::metrics::within(account, || {
        RedbSpool::open(
            &config.state_dir.join("spool.redb"),
            config.spool.max_events_per_sink,
        )
        .and_then(|s| Store::spawn(s, crate::sinks::WINDOW as u64))
    });
    match spool {
        Ok(spool) => Ok((lock, spool)),
        Err(e) => Err(failure(format!(
            "account {}: cannot open the spool: {e}",
            config.account
        ))),
    }
}

/// The account's media store, opened off the runtime (it scans the whole store).
async fn open_media(config: &Config) -> Result<Media, ExitCode> {
    let media_config = config.clone();
    let account = Some(Arc::from(config.account.as_str()));
    let opened = tokio::task::spawn_blocking(move || {
        crate::metrics::within(account, || Media::open(&media_config))
    })
    .await
    .unwrap_or_else(|e| Err(format!("cannot open the media store: {e}")));
    opened.map_err(|message| failure(format!("account {}: {message}", config.account)))
}

/// `run`: the bridge until SIGINT/SIGTERM. A config that [`prepare`] refuses exits 2 before
/// anything starts, as `check-config` does.
pub async fn run(config: Config) -> ExitCode {
    let plan = match prepare(&config) {
        Ok(plan) => plan,
        Err(e) => return refused(e),
    };
    let mut states = Vec::with_capacity(plan.accounts.len());
    for account in &plan.accounts {
        match open_state(account) {
            Ok(state) => states.push(state),
            Err(code) => return code,
        }
    }
    // Bound before anything starts, so a taken port fails at once.
    let http = match &config.http {
        Some(http) => match crate::http::bind(http.listen).await {
            Ok(listener) => Some((listener, crate::metrics::install())),
            Err(e) => return failure(e),
        },
        None => None,
    };
    // Two trees: the bridges stop first, at a safe point; the sinks then get a moment to
    // deliver what is spooled before they stop too.
    let shutdown = CancellationToken::new();
    let sinks_shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    // With one account (either config form) its HTTP paths are the plain ones.
    let several = plan.accounts.len() > 1;
    let mut parts = Vec::with_capacity(states.len());
    for (account, (lock, spool)) in plan.accounts.iter().zip(states) {
        // Before the media store counts its first evictions.
        crate::metrics::scope(&account.account, async { crate::metrics::preset_account() }).await;
        // Opened after the metrics recorder is installed, so the store's gauges are recorded.
        let mut media = match open_media(account).await {
            Ok(media) => media,
            Err(code) => return code,
        };
        if several {
            media.serve_under_account(&account.account);
        }
        tracker.spawn(crate::metrics::scope(
            &account.account,
            media
                .store
                .clone()
                .upkeep(media.upkeep_every(), sinks_shutdown.clone()),
        ));
        let (intake, commands) = Intake::new(1024);
        let bridge = Arc::new(Bridge::new(
            account.clone(),
            spool.clone(),
            media.clone(),
            shutdown.clone(),
        ));
        let control = bridge.control(intake, sinks_shutdown.clone());
        parts.push(Part {
            config: account.clone(),
            _lock: lock,
            spool,
            media,
            bridge,
            control,
            commands: Arc::new(tokio::sync::Mutex::new(commands)),
        });
    }
    // Not tracked: after the first signal it waits for a second one, for ever.
    tokio::spawn(crate::signal::stop_on_signal(shutdown.clone()));

    let recents: Vec<Option<Recent>> = parts
        .iter()
        .map(|_| http.as_ref().map(|_| Recent::new()))
        .collect();
    let started = match start_sinks(
        plan,
        &parts,
        &recents,
        stdio::prepare(config.send.max_bytes, shutdown.clone()),
        &tracker,
    )
    .await
    {
        Ok(started) => started,
        Err(message) => return failure(message),
    };
    let (health, names): (Vec<_>, Vec<_>) = started.into_iter().unzip();
    if let (Some((listener, metrics)), Some(http_config)) = (http, &config.http) {
        tracker.spawn(crate::metrics::upkeep(
            metrics.clone(),
            sinks_shutdown.clone(),
        ));
        let accounts = parts
            .iter()
            .zip(health)
            .zip(recents)
            .map(|((part, sinks), recent)| AccountHttp {
                control: part.control.clone(),
                session: part.bridge.session(),
                last_sync: part.bridge.last_sync(),
                sends_today: part.bridge.sends_today(),
                spool: part.spool.clone(),
                sinks,
                recent: recent.unwrap_or_else(Recent::new),
                send_ttl: part.config.send.default_ttl,
                max_bytes: part.config.send.max_bytes,
                media: part.media.clone(),
            })
            .collect();
        let state = HttpState {
            accounts,
            several,
            metrics,
            config: http_config.clone(),
        };
        // Stops with the sinks, so it answers while they drain.
        tracker.spawn(crate::http::serve(listener, state, sinks_shutdown.clone()));
    }

    let retry = Retry::from_config(&config.retry);
    let bridges: Vec<_> = parts
        .iter()
        .map(|part| {
            tokio::spawn(supervise(
                part.config.account.clone(),
                part.bridge.clone(),
                part.commands.clone(),
                part.control.status.clone(),
                retry,
                shutdown.clone(),
            ))
        })
        .collect();
    for bridge in bridges {
        let _ = bridge.await;
    }
    let spools: Vec<_> = parts.iter().map(|p| p.spool.clone()).collect();
    drain(&spools, &names, Duration::from_secs(5)).await;
    sinks_shutdown.cancel();
    tracker.close();
    // Bounded so a stuck link cannot keep the process from exiting.
    let _ = tokio::time::timeout(Duration::from_secs(5), tracker.wait()).await;
    // Commits the cursor moves the writers still hold, so a restart repeats nothing.
    for spool in spools {
        spool.close().await;
    }
    ExitCode::SUCCESS
}

/// Starts every sink of `plan` for every account, or stdout when there is none, and each
/// account's `recent` feed when given; answers each account's sink health and sink names. Each sink's own
/// tasks are tracked on `tracker`, so shutdown waits for MQTT's `offline` and DISCONNECT and
/// for NATS's handlers.
async fn start_sinks(
    plan: Plan,
    parts: &[Part],
    recents: &[Option<Recent>],
    stdout: stdio::Prepared,
    tracker: &TaskTracker,
) -> Result<Vec<(Vec<SinkHealth>, Vec<String>)>, String> {
    let has_sinks = plan.has_sinks();
    let Plan {
        mqtt,
        nats,
        webhooks,
        ..
    } = plan;
    let controls = || parts.iter().map(|p| p.control.clone()).collect::<Vec<_>>();
    let mut deliveries: Vec<Deliveries> = parts
        .iter()
        .map(|part| Deliveries {
            account: part.config.account.clone(),
            spool: part.spool.clone(),
            wake: part.bridge.wake(),
            control: part.control.clone(),
            names: Vec::new(),
            health: Vec::new(),
        })
        .collect();
    if let Some(mqtt) = mqtt {
        // One connection for every account, a sink per account in their order.
        let started = mqtt.start(controls(), tracker);
        for (d, started) in deliveries.iter_mut().zip(started) {
            d.start(started, tracker).await?;
        }
    }
    if let Some(nats) = nats {
        let started = nats
            .start(controls(), tracker)
            .await
            .map_err(|e| e.to_string())?;
        for (d, started) in deliveries.iter_mut().zip(started) {
            d.start(started, tracker).await?;
        }
    }
    for (d, hooks) in deliveries.iter_mut().zip(webhooks) {
        for hook in hooks {
            let started = hook.start(d.control.intake.clone());
            d.start(started, tracker).await?;
        }
    }
    if !has_sinks {
        let started = stdout.start_all(controls(), tracker);
        for (d, started) in deliveries.iter_mut().zip(started) {
            d.start(started, tracker).await?;
        }
    }
    let mut health = Vec::with_capacity(deliveries.len());
    for (mut d, recent) in deliveries.into_iter().zip(recents) {
        if let Some(recent) = recent {
            d.spawn(recent.sink(), tracker).await?;
        }
        // A sink no longer configured would pin its backlog in the spool for ever.
        d.spool
            .retain_sinks(d.names.clone())
            .await
            .map_err(|e| format!("account {}: cannot tidy the spool: {e}", d.account))?;
        health.push((d.health, d.names));
    }
    Ok(health)
}

/// Starts one account's sinks' delivery loops on its spool, gathering their names and
/// health.
struct Deliveries {
    account: String,
    spool: Store,
    wake: Arc<tokio::sync::Notify>,
    control: Control,
    names: Vec<String>,
    health: Vec<SinkHealth>,
}

impl Deliveries {
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

    /// Starts a sink's delivery loop, as the account's work.
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
            .map_err(|e| format!("account {}: cannot register sink {name}: {e}", self.account))?;
        let retry = self.control.retry;
        tracker.spawn(crate::metrics::scope(
            &self.account,
            run_delivery(
                sink,
                self.spool.clone(),
                self.wake.clone(),
                move || retry.schedule(),
                self.control.shutdown.clone(),
            ),
        ));
        self.names.push(name);
        Ok(())
    }
}

/// Runs one account's bridge until shutdown, each run in a task of its own: a panic in its
/// tasks ends that run only, and is logged, counted and answered by running the same bridge
/// again (same intake, watches and spool) after the retry schedule's next delay; a run that
/// lasted longer than `retry.max` starts the schedule over.
async fn supervise(
    account: String,
    bridge: Arc<Bridge>,
    commands: Arc<tokio::sync::Mutex<mpsc::Receiver<IncomingCommand>>>,
    status: tokio::sync::watch::Receiver<crate::event::SessionStatus>,
    retry: Retry,
    shutdown: CancellationToken,
) {
    let mut delays = retry.schedule();
    let mut test_panic = test_panic(&account);
    loop {
        let started = tokio::time::Instant::now();
        let (b, c, status) = (bridge.clone(), commands.clone(), status.clone());
        let panic_once = test_panic.take();
        let task = tokio::spawn(crate::metrics::scope(&account, async move {
            let mut commands = c.lock().await;
            tokio::select! {
                () = b.run(&mut commands) => {}
                () = panic_when_online(panic_once, status) => {}
            }
        }));
        let panic = match task.await {
            Ok(()) => return,
            Err(e) if e.is_panic() => panic_message(e.into_panic()),
            Err(_) => return,
        };
        crate::metrics::scope(&account, async { crate::metrics::account_restarted() }).await;
        if started.elapsed() > retry.max {
            delays = retry.schedule();
        }
        let delay = delays.next().unwrap_or(retry.max);
        tracing::error!(
            account = %account,
            panic = %panic,
            restart_in = ?delay,
            "the account's bridge panicked; restarting it (the other accounts go on)"
        );
        bridge.halted(&format!("restarting after an internal error: {panic}"));
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

/// What a panic said.
fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

/// In debug builds only, `WXBRIDGE_TEST_PANIC=<account>` makes that account's bridge panic
/// once, the first time it is online: the scenario tests' way to exercise [`supervise`]
/// without a hook in release builds.
fn test_panic(account: &str) -> Option<()> {
    if !cfg!(debug_assertions) {
        return None;
    }
    let wanted = std::env::var("WXBRIDGE_TEST_PANIC").ok()?;
    (wanted == account).then_some(())
}

/// Panics once `status` is online when `once` is set; else never resolves.
async fn panic_when_online(
    once: Option<()>,
    mut status: tokio::sync::watch::Receiver<crate::event::SessionStatus>,
) {
    if once.is_none() {
        return std::future::pending().await;
    }
    let online = status
        .wait_for(|s| s.state == crate::event::SessionState::Online)
        .await
        .is_ok();
    if online {
        panic!("WXBRIDGE_TEST_PANIC: a test asked this account's bridge to panic once");
    }
    std::future::pending().await
}

/// Waits (up to `limit`) until every sink of every account has delivered what it can: a held
/// entry (its media still downloading) and what follows it stay spooled for the next start.
async fn drain(spools: &[Store], sinks: &[Vec<String>], limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        let mut pending = 0;
        for (spool, names) in spools.iter().zip(sinks) {
            for s in names {
                pending += spool.pending(s, 1).await.map_or(0, |p| p.len());
            }
        }
        if pending == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tracing::warn!("stopping with events still spooled; they go out after the next start");
}
