//! A hand-built [`Control`] for the in-process link tests (MQTT, NATS, Home Assistant), and
//! the bridge's side of it: the watches to set, the commands the link hands in, the requests;
//! and delivery with retries, as the spool's delivery loop does it.
use std::sync::Arc;
use std::time::Duration;

use time::macros::datetime;
use tokio::sync::{mpsc, watch, Notify};
use tokio_util::sync::CancellationToken;
use wxbridge::event::{LoginQr, SessionState, SessionStatus};
use wxbridge::retry::Retry;
use wxbridge::sinks::{Control, IncomingCommand, Intake, Sink};
use wxbridge::spool::{Entry, Kind};

/// The bridge's side of a hand-built [`Control`]; dropping it stops the link.
pub struct Side {
    pub status: watch::Sender<SessionStatus>,
    pub qr: watch::Sender<Option<LoginQr>>,
    pub commands: mpsc::Receiver<IncomingCommand>,
    pub relogin: Arc<Notify>,
    pub logout: Arc<Notify>,
    pub shutdown: CancellationToken,
    /// The state dir holding the control's media store (`media/`) and signing key; held so
    /// it lives as long as the link.
    #[allow(dead_code)]
    pub state_dir: tempfile::TempDir,
}

impl Drop for Side {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Side {
    /// The next command the link handed in.
    pub async fn command(&mut self) -> IncomingCommand {
        tokio::time::timeout(Duration::from_secs(10), self.commands.recv())
            .await
            .expect("a command in time")
            .expect("intake open")
    }
}

/// The account view of a config for account `name` (what `nats::prepare` and
/// `mqtt::prepare` take for each account).
pub fn account(name: &str) -> wxbridge::config::Config {
    wxbridge::config::Config {
        account: name.to_owned(),
        ..wxbridge::config::Config::default()
    }
}

/// A session status at a fixed time.
pub fn status(state: SessionState, reason: &str) -> SessionStatus {
    SessionStatus {
        state,
        since: datetime!(2026-11-28 16:20:01 UTC),
        reason: reason.to_owned(),
    }
}

/// A control for account `home` starting in `state`, reconnecting from 50 ms up to `retry_max`.
pub fn control(state: SessionState, retry_max: Duration) -> (Control, Side) {
    let (status_tx, status_rx) = watch::channel(status(state, ""));
    let (qr_tx, qr_rx) = watch::channel(None);
    let (intake, commands) = Intake::new(16);
    let (relogin, logout) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let shutdown = CancellationToken::new();
    let state_dir = tempfile::tempdir().unwrap();
    let config = wxbridge::config::Config {
        state_dir: state_dir.path().to_owned(),
        media: wxbridge::config::MediaConfig {
            dir: None,
            ..Default::default()
        },
        ..Default::default()
    };
    let media = wxbridge::media::Media::open(&config).expect("a media store in a temp dir");
    let control = Control {
        account: "home".to_owned(),
        status: status_rx,
        qr: qr_rx,
        roster: tokio::sync::watch::channel(std::sync::Arc::default()).1,
        relogin: relogin.clone(),
        logout: logout.clone(),
        intake,
        results: tokio::sync::broadcast::Sender::new(8),
        retry: Retry {
            initial: Duration::from_millis(50),
            max: retry_max,
        },
        media,
        shutdown: shutdown.clone(),
    };
    let side = Side {
        status: status_tx,
        qr: qr_tx,
        commands,
        relogin,
        logout,
        shutdown,
        state_dir,
    };
    (control, side)
}

/// A spool entry of `kind` whose payload is `{"kind", "id"}`.
pub fn entry(seq: u64, kind: Kind, id: &str) -> Entry {
    Entry {
        seq,
        kind,
        id: id.to_owned(),
        payload: serde_json::to_vec(&serde_json::json!({"kind": kind.as_str(), "id": id})).unwrap(),
        reply_to: None,
        appended_ms: 0,
    }
}

/// Delivers `batch` as `run_delivery` would: what failed is tried again after a pause,
/// all of it `within` the given time.
pub async fn deliver_all(sink: &mut impl Sink, batch: &[Entry], within: Duration) {
    let mut next = 0;
    tokio::time::timeout(within, async {
        while next < batch.len() {
            match sink.deliver(&batch[next..]).await {
                Ok(()) => next = batch.len(),
                Err(e) => {
                    next += e.delivered;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    })
    .await
    .expect("delivered in time");
}
