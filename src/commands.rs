//! What each subcommand does. Every function answers the process exit code: 0 ok, 1 runtime
//! failure (DESIGN.md "Command line"); config errors (2) are handled before these run.
use std::process::ExitCode;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::bridge::{show_login_progress, Bridge};
use crate::config::Config;
use crate::http::{HttpState, Probe, Recent, SinkHealth};
use crate::lock::{LockError, StateLock};
use crate::sinks::stdio::{self, StdoutSink};
use crate::sinks::{mqtt, nats, run_delivery, webhook, Control, Intake, Sink};
use crate::spool::{RedbSpool, Store};
use crate::wechat::client::{Timeouts, WxClient};
use crate::wechat::contacts::clean_name;
use crate::wechat::login::{self, LoginError};
use crate::wechat::session::{ensure_private_dir, Session, SessionFile};

/// How many QR codes `login` shows before it gives up (DESIGN.md).
const LOGIN_QR_LIMIT: u32 = 5;

fn failure(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("wxbridge: {message}");
    ExitCode::from(1)
}

fn client(config: &Config) -> WxClient {
    WxClient::new(
        config.wechat.login_url.clone(),
        config.wechat.desktop_mode,
        Timeouts::default(),
    )
}

/// The state dir, created private, and its lock. `running_hint` explains what to do instead
/// when a running bridge holds the lock.
fn take_state(config: &Config, running_hint: &str) -> Result<StateLock, ExitCode> {
    if let Err(e) = ensure_private_dir(&config.state_dir) {
        return Err(failure(format!(
            "cannot use the state directory {}: {e}",
            config.state_dir.display()
        )));
    }
    StateLock::acquire(&config.state_dir).map_err(|e| match e {
        LockError::Held { .. } if !running_hint.is_empty() => {
            failure(format!("{e}.\n{running_hint}"))
        }
        e => failure(e),
    })
}

const WHILE_RUNNING: &str = "A running bridge owns the session: stop it first, or send through it \
    (publish to the send topic, or POST /send when the HTTP API is on).";

/// `run`: the bridge until SIGINT/SIGTERM.
pub async fn run(config: Config) -> ExitCode {
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
    // Two trees: the bridge stops first, at a safe point; the sinks then get a moment to
    // deliver what is spooled before they stop too.
    let shutdown = CancellationToken::new();
    let sinks_shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    // Not tracked: after the first signal it waits for a second one, for ever.
    tokio::spawn(crate::signal::stop_on_signal(shutdown.clone()));

    let (intake, intake_rx) = Intake::new(1024);
    let bridge = Bridge::new(config.clone(), spool.clone(), shutdown.clone());
    let control = bridge.control(intake.clone(), sinks_shutdown.clone());
    let (names, health) = match start_sinks(
        &config,
        &control,
        &spool,
        bridge.wake(),
        &tracker,
        &shutdown,
        http.as_ref().map(|(_, _, recent)| recent),
    )
    .await
    {
        Ok(started) => started,
        Err(message) => return failure(message),
    };
    if let (Some((listener, metrics, recent)), Some(http_config)) = (http, &config.http) {
        tracker.spawn(crate::metrics::upkeep(
            metrics.clone(),
            sinks_shutdown.clone(),
        ));
        let state = HttpState {
            control: control.clone(),
            session: bridge.session(),
            last_sync: bridge.last_sync(),
            spool: spool.clone(),
            sinks: health,
            recent,
            metrics,
            config: http_config.clone(),
            send_ttl: config.send.default_ttl,
            max_bytes: config.send.max_bytes,
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

/// Starts every configured sink's delivery task, or the stdio default when none is
/// configured, and the status page's `recent` feed when given. Answers every sink's name and
/// the health of each but `recent`.
async fn start_sinks(
    config: &Config,
    control: &Control,
    spool: &Store,
    wake: Arc<tokio::sync::Notify>,
    tracker: &TaskTracker,
    root: &CancellationToken,
    recent: Option<&Recent>,
) -> Result<(Vec<String>, Vec<SinkHealth>), String> {
    let mut sinks = Deliveries {
        spool: spool.clone(),
        wake,
        control,
        tracker,
        names: Vec::new(),
        health: Vec::new(),
    };
    // The links' own tasks are tracked too, so shutdown waits for MQTT's `offline` and
    // DISCONNECT and for NATS's handlers.
    if let Some(mqtt_config) = &config.mqtt {
        let sink = mqtt::start(
            mqtt_config,
            &config.homeassistant,
            control.clone(),
            config.send.max_bytes,
        )
        .map_err(|e| e.to_string())?;
        tracker.spawn(sink.stopped());
        let link = Probe::Mqtt(sink.link());
        sinks.start(sink, link).await?;
    }
    if let Some(nats_config) = &config.nats {
        let sink = nats::start(nats_config, control.clone())
            .await
            .map_err(|e| e.to_string())?;
        let tasks = sink.tasks();
        tracker.spawn(async move { tasks.wait().await });
        let link = Probe::Nats(sink.client());
        sinks.start(sink, link).await?;
    }
    for (i, hook) in config.webhooks.iter().enumerate() {
        sinks
            .start(
                webhook::new(i, hook, &config.account, control.intake.clone())
                    .map_err(|e| e.to_string())?,
                Probe::LastDelivery,
            )
            .await?;
    }
    if sinks.names.is_empty() {
        let out = stdio::shared(tokio::io::stdout());
        tracker.spawn(stdio::write_states(
            control.status.clone(),
            control.account.clone(),
            out.clone(),
            control.shutdown.clone(),
        ));
        tracker.spawn(stdio::read_commands(
            config.send.max_bytes,
            control.intake.clone(),
            root.clone(),
        ));
        sinks
            .start(StdoutSink::new(out, root.clone()), Probe::LastDelivery)
            .await?;
    }
    if let Some(recent) = recent {
        sinks.spawn(recent.sink()).await?;
    }
    // A sink no longer configured would pin its backlog in the spool for ever.
    spool
        .retain_sinks(sinks.names.clone())
        .await
        .map_err(|e| format!("cannot tidy the spool: {e}"))?;
    Ok((sinks.names, sinks.health))
}

/// Starts sinks' delivery loops on one spool.
struct Deliveries<'a> {
    spool: Store,
    wake: Arc<tokio::sync::Notify>,
    control: &'a Control,
    tracker: &'a TaskTracker,
    names: Vec<String>,
    health: Vec<SinkHealth>,
}

impl Deliveries<'_> {
    /// Starts a configured sink; `link` tells whether it is connected (`/readyz`, the page).
    async fn start<S: Sink + Send + 'static>(
        &mut self,
        sink: S,
        link: Probe,
    ) -> Result<(), String> {
        let (sink, health) = crate::http::observe(sink, link);
        self.spawn(sink).await?;
        self.health.push(health);
        Ok(())
    }

    /// Starts a sink's delivery loop.
    async fn spawn<S: Sink + Send + 'static>(&mut self, sink: S) -> Result<(), String> {
        let name = sink.name().to_owned();
        // Registered before anything is spooled: a new sink starts at the spool's end.
        self.spool
            .register_sink(&name)
            .await
            .map_err(|e| format!("cannot register sink {name}: {e}"))?;
        let retry = self.control.retry;
        self.tracker.spawn(run_delivery(
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

/// Waits (up to `limit`) until every sink has delivered what is spooled.
async fn drain(spool: &Store, sinks: &[String], limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        let mut pending = 0;
        for s in sinks {
            pending += spool.backlog(s).await.map(|b| b.depth).unwrap_or(0);
        }
        if pending == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tracing::warn!("stopping with events still spooled; they go out after the next start");
}

/// `login`: a QR login, stored for `run`.
pub async fn login(config: Config) -> ExitCode {
    let _lock = match take_state(&config, WHILE_RUNNING) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let client = client(&config);
    let qr_png = config.wechat.qr_png.clone();
    match login::qr(&client, LOGIN_QR_LIMIT, &move |p| {
        show_login_progress(&p, &qr_png);
    })
    .await
    {
        Ok(session) => {
            let file = SessionFile::in_dir(&config.state_dir);
            if let Err(e) = file.save(&session.to_stored()) {
                return failure(format!("logged in, but cannot store the session: {e}"));
            }
            let _ = std::fs::remove_file(&config.wechat.qr_png);
            eprintln!(
                "Logged in as {}. The session is stored in {}; `wxbridge run` will use it.",
                clean_name(&session.user().nick_name),
                file.path().display()
            );
            ExitCode::SUCCESS
        }
        Err(LoginError::QrExpired(n)) => failure(format!(
            "gave up after {n} QR codes expired without a scan. Run `wxbridge login` again when you have your phone at hand."
        )),
        Err(e) => failure(e),
    }
}

/// Resumes the stored session for a one-shot command.
async fn stored_session(config: &Config) -> Result<Session, ExitCode> {
    let file = SessionFile::in_dir(&config.state_dir);
    let stored = match file.load() {
        Ok(Some(s)) => s,
        Ok(None) => {
            return Err(failure(
                "no stored session: log in first with `wxbridge login`",
            ))
        }
        Err(e) => {
            return Err(failure(format!(
                "cannot read {}: {e}",
                file.path().display()
            )))
        }
    };
    match login::resume(&client(config), &stored, None).await {
        Ok(s) => {
            if let Err(e) = file.save(&s.to_stored()) {
                tracing::warn!(cause = %e, "cannot update the stored session");
            }
            Ok(s)
        }
        Err(e) if e.is_session_expired() => Err(failure(format!(
            "the stored session has expired ({e}); log in again with `wxbridge login`"
        ))),
        Err(e) => Err(failure(format!("cannot resume the stored session: {e}"))),
    }
}

/// The state lock and the stored session resumed, for a one-shot command.
async fn locked_session(config: &Config) -> Result<(StateLock, Session), ExitCode> {
    let lock = take_state(config, WHILE_RUNNING)?;
    Ok((lock, stored_session(config).await?))
}

/// `logout`: webwxlogout, then forget the session.
pub async fn logout(config: Config) -> ExitCode {
    let _lock = match take_state(&config, WHILE_RUNNING) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let file = SessionFile::in_dir(&config.state_dir);
    let stored = match file.load() {
        Ok(Some(s)) => s,
        Ok(None) => {
            eprintln!("No stored session; nothing to log out.");
            return ExitCode::SUCCESS;
        }
        Err(e) => return failure(format!("cannot read {}: {e}", file.path().display())),
    };
    let client = client(&config);
    let _ = client.restore_cookies(&stored.cookies);
    if let Err(e) = client.logout(&stored.credentials).await {
        tracing::warn!(cause = %e, "WeChat did not confirm the logout; forgetting the session anyway");
    }
    if let Err(e) = file.remove() {
        return failure(format!("cannot remove {}: {e}", file.path().display()));
    }
    eprintln!("Logged out; the stored session is gone.");
    ExitCode::SUCCESS
}

/// `contacts [--json]`.
pub async fn contacts(config: Config, json: bool) -> ExitCode {
    let (_lock, session) = match locked_session(&config).await {
        Ok(held) => held,
        Err(code) => return code,
    };
    for c in session.book().listing() {
        if json {
            println!("{c}");
        } else {
            let kind = if c["group"] == true {
                "group"
            } else {
                "contact"
            };
            let remark = c["remark"]
                .as_str()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default();
            println!(
                "{kind:<8} {}{remark}  {}",
                c["name"].as_str().unwrap_or_default(),
                c["id"].as_str().unwrap_or_default()
            );
        }
    }
    ExitCode::SUCCESS
}

/// `send --to WHO TEXT`.
pub async fn send(config: Config, to: String, text: String) -> ExitCode {
    let (_lock, session) = match locked_session(&config).await {
        Ok(held) => held,
        Err(code) => return code,
    };
    let recipient = {
        let book = session.book();
        let found = book
            .resolve_id(&to)
            .cloned()
            .map(Ok)
            .unwrap_or_else(|| book.resolve(&to).cloned());
        match found {
            Ok(c) => c,
            Err(e) => return failure(e),
        }
    };
    match session.send_text(&recipient.user_name, &text).await {
        Ok(msg_id) => {
            println!("{msg_id}");
            eprintln!("Sent to {}.", clean_name(&recipient.nick_name));
            ExitCode::SUCCESS
        }
        Err(e) => failure(e),
    }
}

/// `check-config`: the effective config with secrets masked.
pub fn check_config(config: &Config, source: Option<&std::path::Path>) -> ExitCode {
    match source {
        Some(p) => eprintln!("# configuration from {} is valid", p.display()),
        None => {
            eprintln!("# no config file: built-in defaults (and WXBRIDGE__ overrides) are valid")
        }
    }
    print!("{}", config.effective_yaml());
    ExitCode::SUCCESS
}
