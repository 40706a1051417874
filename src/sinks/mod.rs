//! Where events go and commands come from. Every sink has the same shape: a directory with
//! `mod.rs` (docs, error enum), `config.rs` or the config section it reads, and `sink.rs`; it
//! implements [`Sink`] for delivery from the spool, and may feed commands into the bridge
//! through an [`Intake`]. With no sink configured, the embedded default is [`stdio`].
//!
//! Delivery: [`run_delivery`] takes a sink's pending entries from the spool in order, hands
//! them to the sink, and advances the sink's cursor only past what the sink confirmed (PUBACK,
//! JetStream ack, completed flush, 2xx). A failing sink waits with backoff and delays only
//! itself; its entries stay in the spool, also across restarts.
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::sync::{mpsc, oneshot, Notify};
use tokio_util::sync::CancellationToken;

use crate::spool::{Entry, Kind, Spool};

pub mod mqtt;
pub mod nats;
pub mod stdio;
pub mod webhook;

/// A delivery failed after `delivered` leading entries of the batch went through.
#[derive(Debug, Error)]
#[error("{cause}")]
pub struct DeliveryError {
    /// How many leading entries of the batch were confirmed before the failure.
    pub delivered: usize,
    /// What went wrong, for the log.
    pub cause: String,
}

/// A destination for spooled entries.
pub trait Sink: Send {
    /// A stable name: it keys the sink's cursor in the spool (`mqtt`, `nats`, `webhook:0`…).
    fn name(&self) -> &str;

    /// Whether this sink publishes entries of this kind at all (others are skipped and count
    /// as delivered).
    fn accepts(&self, kind: Kind) -> bool;

    /// Delivers `batch` in order and returns once every entry is confirmed, or fails saying
    /// how many leading entries were. (Implement it as an `async fn`; the future must be
    /// `Send` so the delivery loop can run on any worker.)
    fn deliver(
        &mut self,
        batch: &[Entry],
    ) -> impl std::future::Future<Output = Result<(), DeliveryError>> + Send;
}

/// Where a command came from; decides where its result goes besides the result topics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A line on stdin.
    Stdin,
    /// A publish on the MQTT send topic.
    Mqtt,
    /// A NATS message on the send subject; `reply` when it was a request.
    Nats {
        /// The reply subject of a request.
        reply: Option<String>,
    },
    /// A webhook's `{"reply":…}` answer to an event.
    Webhook,
    /// `POST /send`.
    Http,
}

/// A command as a source received it, before validation.
#[derive(Debug)]
pub struct IncomingCommand {
    /// The raw payload.
    pub payload: Vec<u8>,
    /// Its source.
    pub origin: Origin,
    /// Fires once the command is validated and written to the durable outbound queue, or
    /// answered with an error result (either way the source may acknowledge it to its broker).
    pub accepted: Option<oneshot::Sender<Accepted>>,
}

/// What became of a submitted command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// Queued under this id; its result comes later (see [`Control::results`]).
    Queued(u64),
    /// Answered at once (it was invalid).
    Answered(crate::event::SendResult),
}

/// The bridge's door for commands: sources hand payloads in here.
#[derive(Debug, Clone)]
pub struct Intake {
    tx: mpsc::Sender<IncomingCommand>,
}

impl Intake {
    /// An intake and the receiver the bridge reads.
    pub fn new(capacity: usize) -> (Intake, mpsc::Receiver<IncomingCommand>) {
        let (tx, rx) = mpsc::channel(capacity);
        (Intake { tx }, rx)
    }

    /// Hands a payload in and waits until it is durably queued or answered. False when the
    /// bridge is shutting down (the source should not acknowledge it then).
    pub async fn submit(&self, payload: Vec<u8>, origin: Origin) -> bool {
        self.submit_for(payload, origin).await.is_some()
    }

    /// Like [`Intake::submit`], saying what became of the command; None at shutdown.
    pub async fn submit_for(&self, payload: Vec<u8>, origin: Origin) -> Option<Accepted> {
        let (done, accepted) = oneshot::channel();
        let cmd = IncomingCommand {
            payload,
            origin,
            accepted: Some(done),
        };
        self.tx.send(cmd).await.ok()?;
        accepted.await.ok()
    }
}

/// How many entries a sink is handed at once.
const BATCH: usize = 256;

/// Moves entries from the spool to `sink` until shutdown: in order, cursor advanced only past
/// confirmed entries, failures retried on `backoff` (a fresh jittered schedule after each
/// success). `wake` is notified whenever entries are appended.
pub async fn run_delivery<S: Sink, B: Iterator<Item = Duration>>(
    mut sink: S,
    spool: Arc<dyn Spool>,
    wake: Arc<Notify>,
    backoff: impl Fn() -> B,
    shutdown: CancellationToken,
) {
    let name = sink.name().to_owned();
    if let Err(e) = spool.register_sink(&name) {
        tracing::error!(sink = %name, cause = %e, "cannot register the sink in the spool");
        return;
    }
    let mut delays = backoff();
    let mut failing = false;
    loop {
        // Register interest before reading, so an append between the read and the wait wakes us.
        let notified = wake.notified();
        let batch = match spool.pending(&name, BATCH) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(sink = %name, cause = %e, "cannot read the spool");
                Vec::new()
            }
        };
        if batch.is_empty() {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = notified => continue,
            }
        }
        let wanted: Vec<Entry> = batch
            .iter()
            .filter(|e| sink.accepts(e.kind))
            .cloned()
            .collect();
        let last = batch.last().map(|e| e.seq).unwrap_or_default();
        let outcome = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = sink.deliver(&wanted) => r,
        };
        match outcome {
            Ok(()) => {
                crate::metrics::delivered(&name, wanted.len());
                if failing {
                    tracing::info!(sink = %name, "delivering again");
                    failing = false;
                }
                if let Err(e) = spool.ack(&name, last) {
                    tracing::error!(sink = %name, cause = %e, "cannot advance the cursor");
                }
                delays = backoff();
            }
            Err(e) => {
                crate::metrics::delivered(&name, e.delivered);
                crate::metrics::delivery_failed(&name);
                // Everything before the first undelivered wanted entry is done.
                let upto = match wanted.get(e.delivered) {
                    Some(first_failed) => first_failed.seq.checked_sub(1),
                    None => Some(last),
                };
                if let Some(seq) = upto {
                    let _ = spool.ack(&name, seq);
                }
                if !failing {
                    tracing::warn!(sink = %name, cause = %e.cause, "delivery failed; retrying with backoff");
                    failing = true;
                } else {
                    tracing::debug!(sink = %name, cause = %e.cause, "delivery failed again");
                }
                let d = delays.next().unwrap_or(Duration::from_secs(60));
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(d) => {}
                }
            }
        }
    }
}

/// What every bus link shares with the bridge besides the spool: the session state and login
/// QR to publish, the relogin request, the command intake, the reconnect schedule, shutdown.
#[derive(Clone)]
pub struct Control {
    /// The configured account name (topics, subjects, idempotency keys).
    pub account: String,
    /// The session state; publish it (retained/on change) whenever it changes.
    pub status: tokio::sync::watch::Receiver<crate::event::SessionStatus>,
    /// The login QR while a scan is awaited; `None` once logged in (clear the retained QR).
    pub qr: tokio::sync::watch::Receiver<Option<crate::event::LoginQr>>,
    /// Notify to request a new login (relogin topic/subject).
    pub relogin: Arc<Notify>,
    /// Notify to log out: the session is ended at WeChat and forgotten, and a new login
    /// follows (Home Assistant's logout button).
    pub logout: Arc<Notify>,
    /// Where send commands go.
    pub intake: Intake,
    /// Every result of a queued command, with the id [`Accepted::Queued`] gave it (for
    /// sources that answer synchronously, such as `POST /send`).
    pub results: tokio::sync::broadcast::Sender<(u64, crate::event::SendResult)>,
    /// `retry.*`: a fresh jittered reconnect schedule per call.
    pub retry: crate::retry::Retry,
    /// Cancelled at shutdown.
    pub shutdown: CancellationToken,
}
