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
//! in a task of its own ([`account::supervise`]): a panic in it is logged, counted and answered by
//! restarting that bridge after the retry schedule's backoff, while the others go on.
//!
//! At SIGINT/SIGTERM the bridges stop first, at a safe point; the sinks get a moment to
//! deliver what is spooled, then stop too, and each spool commits what it holds.
mod account;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::bridge::Bridge;
use crate::commands::{failure, refused};
use crate::config::{Config, ConfigError};
use crate::http::{AccountHttp, HttpState, Recent, SinkHealth};
use crate::retry::Retry;
use crate::sinks::{mqtt, nats, run_delivery, stdio, webhook, Control, Intake, Sink, Started};
use crate::spool::Store;
use account::{account_span, open_media, open_state, panic_message, supervise, Part};

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
        let span = account_span(several, &account.account);
        tracker.spawn(
            crate::metrics::scope(
                &account.account,
                media
                    .store
                    .clone()
                    .upkeep(media.upkeep_every(), sinks_shutdown.clone()),
            )
            .instrument(span.clone()),
        );
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
            span,
        });
    }
    // Not tracked: after the first signal it waits for a second one, for ever.
    tokio::spawn(crate::signal::stop_on_signal(shutdown.clone()));

    let recents: Vec<Option<Recent>> = parts
        .iter()
        .map(|_| http.as_ref().map(|_| Recent::new()))
        .collect();
    // One stdin for every account: lines are kept up to the largest `send.max_bytes`, and each
    // account's intake then holds its command to its own.
    let stdin_max = parts
        .iter()
        .map(|p| p.config.send.max_bytes)
        .max()
        .unwrap_or(config.send.max_bytes);
    let started = match start_sinks(
        plan,
        &parts,
        &recents,
        stdio::prepare(stdin_max, shutdown.clone()),
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
            tokio::spawn(
                supervise(
                    part.config.account.clone(),
                    part.bridge.clone(),
                    part.commands.clone(),
                    part.control.status.clone(),
                    retry,
                    shutdown.clone(),
                )
                .instrument(part.span.clone()),
            )
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
            span: part.span.clone(),
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
    span: tracing::Span,
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
        let delivery = tokio::spawn(
            crate::metrics::scope(
                &self.account,
                run_delivery(
                    sink,
                    self.spool.clone(),
                    self.wake.clone(),
                    move || retry.schedule(),
                    self.control.shutdown.clone(),
                ),
            )
            .instrument(self.span.clone()),
        );
        // A panic ends this sink's loop for this account only; it is said loudly, since the
        // sink's events then wait in the spool until the next start.
        let (account, sink) = (self.account.clone(), name.clone());
        tracker.spawn(async move {
            if let Err(e) = delivery.await {
                if e.is_panic() {
                    tracing::error!(
                        account = %account,
                        sink = %sink,
                        panic = %panic_message(e.into_panic()),
                        "a delivery loop panicked: this sink delivers nothing more for this \
                         account until the next start; its events stay spooled (the other \
                         sinks and accounts go on)"
                    );
                }
            }
        });
        self.names.push(name);
        Ok(())
    }
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
