//! Wires WeChat to the spool and the sinks: the session [`supervisor`], which follows the
//! [`login_policy`], the synccheck/webwxsync loop ([`inbound`]), the command intake and
//! sender ([`outbound`]), and the contact [`keys`] bound after each login. It meets the sinks
//! only through the spool, the [`Control`] watches and the [`Intake`].
//!
//! Delivery: each webwxsync answer's new events, their MsgIds and the new sync keys are
//! committed in one spool transaction; sinks then deliver from the spool at least once, in
//! order. Every send command gets exactly one result, itself spooled.
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::{broadcast, mpsc, watch, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::event::{Event, LoginQr, Roster, SessionState, SessionStatus};
use crate::media::Media;
use crate::retry::Retry;
use crate::sinks::{Control, IncomingCommand, Intake};
use crate::spool::{Kind, NewEntry, Store};
use crate::wechat::client::{Timeouts, WxClient};
use crate::wechat::session::{Session, SessionFile};

mod allow;
mod inbound;
mod intake;
mod keys;
mod limits;
mod login_policy;
mod media;
mod media_source;
mod outbound;
mod receipts;
mod scheduler;
mod sent;
mod supervisor;

pub use allow::refusal;
pub use limits::SendsToday;
pub use supervisor::show_login_progress;

/// The parts of a running bridge that its tasks share.
pub struct Bridge {
    config: Config,
    /// The media store, the URL signer and the `media` section.
    media: Media,
    client: WxClient,
    session_file: SessionFile,
    spool: Store,
    wake: Arc<Notify>,
    status: watch::Sender<SessionStatus>,
    qr: watch::Sender<Option<LoginQr>>,
    session: watch::Sender<Option<Session>>,
    /// When a sync (synccheck, and webwxsync when it said so) last succeeded.
    last_sync: watch::Sender<Option<Instant>>,
    sent: sent::SentLog,
    /// `send.limits` and the sends they count.
    limits: Arc<std::sync::Mutex<limits::Limits>>,
    limits_clock: limits::Clock,
    /// The contact keys (see `keys`).
    keys: std::sync::Mutex<keys::KeyState>,
    /// The current login's contacts with their keys; empty while logged out.
    roster: watch::Sender<Arc<Roster>>,
    /// The queued commands that have had their `queued` receipt.
    receipts_noted: receipts::Noted,
    allow_warned: allow::Warned,
    relogin: Arc<Notify>,
    logout: Arc<Notify>,
    queue_changed: Notify,
    results: broadcast::Sender<(u64, crate::event::SendResult)>,
    /// Held entries for the downloader (see `media`), and its end of the channel until `run`.
    downloads: mpsc::UnboundedSender<media::Job>,
    download_jobs: tokio::sync::Mutex<mpsc::UnboundedReceiver<media::Job>>,
    shutdown: CancellationToken,
}

impl Bridge {
    /// A bridge on `spool` that stops at safe points when `shutdown` is cancelled.
    pub fn new(config: Config, spool: Store, media: Media, shutdown: CancellationToken) -> Bridge {
        let client = WxClient::new(
            config.wechat.login_url.clone(),
            config.wechat.desktop_mode,
            Timeouts::default(),
        );
        let session_file = SessionFile::in_dir(&config.state_dir);
        let (downloads, download_jobs) = mpsc::unbounded_channel();
        let limits = limits::Limits::new(&config.send.limits, Some(spool.clone()));
        allow::warn_about_ids(&config.send.allow);
        Bridge {
            config,
            media,
            client,
            session_file,
            spool,
            wake: Arc::new(Notify::new()),
            status: watch::Sender::new(SessionStatus {
                state: SessionState::Starting,
                since: OffsetDateTime::now_utc(),
                reason: String::new(),
            }),
            qr: watch::Sender::new(None),
            session: watch::Sender::new(None),
            last_sync: watch::Sender::new(None),
            sent: sent::SentLog::default(),
            limits: Arc::new(std::sync::Mutex::new(limits)),
            limits_clock: limits::Clock::from_env(),
            keys: std::sync::Mutex::default(),
            roster: watch::Sender::new(Arc::default()),
            receipts_noted: receipts::Noted::default(),
            allow_warned: allow::Warned::default(),
            relogin: Arc::new(Notify::new()),
            logout: Arc::new(Notify::new()),
            queue_changed: Notify::new(),
            results: broadcast::Sender::new(64),
            downloads,
            download_jobs: tokio::sync::Mutex::new(download_jobs),
            shutdown,
        }
    }

    /// Notified whenever entries are appended to the spool (for [`crate::sinks::run_delivery`]).
    pub fn wake(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// The current session while logged in, `None` otherwise (for `GET /contacts`).
    pub fn session(&self) -> watch::Receiver<Option<Session>> {
        self.session.subscribe()
    }

    /// The current login's contacts with their keys (DESIGN.md "Contact keys"); empty while
    /// logged out.
    pub fn roster(&self) -> watch::Receiver<Arc<Roster>> {
        self.roster.subscribe()
    }

    /// When a sync with WeChat last succeeded, `None` before the first (for `/metrics`).
    pub fn last_sync(&self) -> watch::Receiver<Option<Instant>> {
        self.last_sync.subscribe()
    }

    /// Today's sends against `send.limits.per_day` (for the status page and `/metrics`).
    pub fn sends_today(&self) -> SendsToday {
        SendsToday {
            limits: self.limits.clone(),
            clock: self.limits_clock.clone(),
        }
    }

    /// What the bus links need: the watches, the relogin request, the intake, `retry.*`.
    /// `shutdown` is the links' own token: they outlive the bridge long enough to drain.
    pub fn control(&self, intake: Intake, shutdown: CancellationToken) -> Control {
        Control {
            account: self.config.account.clone(),
            status: self.status.subscribe(),
            qr: self.qr.subscribe(),
            roster: self.roster.subscribe(),
            relogin: self.relogin.clone(),
            logout: self.logout.clone(),
            intake,
            results: self.results.clone(),
            retry: Retry::from_config(&self.config.retry),
            media: self.media.clone(),
            shutdown,
        }
    }

    /// The media store, the URL signer and the `media` section.
    pub fn media(&self) -> &Media {
        &self.media
    }

    /// Runs until shutdown: the session supervisor, the intake and the sender side by side.
    /// `commands` is borrowed, not taken, so that after a panic in these tasks the same
    /// bridge runs again on the same intake (`app` restarts an account that way).
    pub async fn run(&self, commands: &mut mpsc::Receiver<IncomingCommand>) {
        tokio::join!(
            self.supervise_session(),
            self.intake_loop(commands),
            self.send_loop(),
            self.download_loop(),
            self.echo_watch(),
        );
        self.set_state(SessionState::Offline, "stopped");
    }

    /// Shows the session as `offline` for `reason` while the bridge's tasks are not running
    /// (between a panic in them and their restart).
    pub fn halted(&self, reason: &str) {
        self.set_state(SessionState::Offline, reason);
    }

    /// Appends entries to the spool and wakes the sinks. A failure here is logged: the spool
    /// is the bridge's disk, and there is nowhere else to put the entries.
    async fn append(&self, entries: Vec<NewEntry>) {
        match self.spool.append(entries).await {
            Ok(c) => {
                log_drops(&c.dropped);
                self.wake.notify_waiters();
            }
            Err(e) => tracing::error!(cause = %e, "cannot append to the spool"),
        }
    }

    /// Spools a non-message event (login, logout, contacts, error).
    async fn publish(&self, event: Event) {
        let kind = match event.kind() {
            Some(kind @ (Kind::Login | Kind::Logout | Kind::Contacts | Kind::Error)) => kind,
            _ => {
                tracing::error!(kind = event.name(), "not a spooled event kind");
                return;
            }
        };
        match serde_json::to_vec(&event) {
            Ok(payload) => {
                self.append(vec![NewEntry {
                    kind,
                    id: new_id(),
                    payload,
                    reply_to: None,
                }])
                .await
            }
            Err(e) => tracing::error!(cause = %e, "cannot serialize an event"),
        }
    }

    /// Moves to `state`; logs only real transitions. The QR is withdrawn once it can no longer
    /// be used, before the new state shows: whoever sees `online` finds no QR left.
    fn set_state(&self, state: SessionState, reason: impl Into<String>) {
        let reason = reason.into();
        if !matches!(state, SessionState::LoginRequired) {
            self.qr.send_if_modified(|qr| qr.take().is_some());
        }
        let changed = self.status.send_if_modified(|current| {
            if current.state == state && current.reason == reason {
                return false;
            }
            *current = SessionStatus {
                state,
                since: OffsetDateTime::now_utc(),
                reason: reason.clone(),
            };
            true
        });
        if changed {
            tracing::info!(state = %state, reason = %reason, "session state");
        }
    }

    /// Sleeps unless shutdown comes first; false on shutdown.
    async fn nap(&self, d: Duration) -> bool {
        tokio::select! {
            _ = self.shutdown.cancelled() => false,
            _ = tokio::time::sleep(d) => true,
        }
    }

    fn retry(&self) -> Retry {
        Retry::from_config(&self.config.retry)
    }
}

/// Logs what the spool dropped at `spool.max_events_per_sink` (never silently).
fn log_drops(dropped: &[(String, u64)]) {
    for (sink, n) in dropped {
        tracing::warn!(sink = %sink, dropped = n, "spool full for this sink: dropped its oldest events");
    }
}

/// A unique id for entries that have no MsgId: the time in ms and a random suffix.
fn new_id() -> String {
    format!("{}{:04}", now_ms(), fastrand::u16(0..10000))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
