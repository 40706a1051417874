//! Where events go and commands come from. Every sink has the same shape: a directory with
//! `mod.rs` (docs, error enum) and `sink.rs`; it implements [`Sink`] for delivery from the
//! spool, and may feed commands into the bridge through an [`Intake`]. With no sink
//! configured, the embedded default is [`stdio`].
//!
//! Every sink starts in the same two steps. `prepare(section, account, …)` is pure: it does
//! every check of the sink's config section that the loader does not (names its server would
//! refuse, secrets, the files the section names, read and parsed now), and fails with a
//! [`ConfigError`](crate::config::ConfigError) naming the key. `check-config` runs exactly
//! these, so a config it accepts is one `run` starts with. `Prepared::start` then spawns the
//! sink's own tasks, if it has any (on the `TaskTracker` it is given, so shutdown waits for
//! them), and answers a [`Started`]: the sink for [`run_delivery`] and a [`Link`] watch for the
//! health checks. Only NATS's `start` is async (it subscribes before
//! answering) and can fail, and then only for what the server's client refuses at run time.
//!
//! Delivery: [`run_delivery`] takes a sink's pending entries from the spool in order, hands
//! them to the sink, and advances the sink's cursor only past what the sink confirmed (PUBACK,
//! JetStream ack, completed flush, 2xx). A failing sink waits with backoff and delays only
//! itself; its entries stay in the spool, also across restarts.
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio_util::sync::CancellationToken;

use crate::spool::{Entry, Kind, Seq, Store};

pub mod media;
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
///
/// A sink either delivers batch by batch ([`Sink::deliver`], stop and wait), or pipelines:
/// it overrides [`Sink::submit`] and [`Sink::confirmed`], and `run_delivery` hands it the next
/// batch while earlier ones still await their confirmations (up to [`WINDOW`] entries).
pub trait Sink: Send {
    /// A stable name: it keys the sink's cursor in the spool (`mqtt`, `nats`, `webhook:0`…).
    fn name(&self) -> &str;

    /// Whether this sink publishes entries of this kind at all (others are skipped and count
    /// as delivered).
    fn accepts(&self, kind: Kind) -> bool;

    /// Delivers `batch` in order and returns once every entry is confirmed, or fails saying
    /// how many leading entries were. (Implement it as an `async fn`; the future must be
    /// `Send` so the delivery loop can run on any worker.) Call it with nothing in flight.
    fn deliver(
        &mut self,
        batch: &[Entry],
    ) -> impl std::future::Future<Output = Result<(), DeliveryError>> + Send;

    /// Hands `batch` over behind the entries in flight (handed over, not yet confirmed) and
    /// answers how many of those in flight, oldest first and this batch's included, are
    /// confirmed by the time it returns. On failure, `delivered` counts the entries in flight
    /// confirmed before it, and the sink forgets the rest: they are handed over again.
    ///
    /// The default delivers the batch whole, so nothing stays in flight.
    fn submit(
        &mut self,
        batch: Vec<Entry>,
    ) -> impl std::future::Future<Output = Result<usize, DeliveryError>> + Send {
        async move { self.deliver(&batch).await.map(|()| batch.len()) }
    }

    /// Waits until more of the entries in flight are confirmed and answers how many, oldest
    /// first; fails as [`Sink::submit`] does. Cancel-safe: the delivery loop races it against
    /// new entries. The default, for sinks that keep nothing in flight, never resolves.
    fn confirmed(
        &mut self,
    ) -> impl std::future::Future<Output = Result<usize, DeliveryError>> + Send {
        std::future::pending()
    }
}

/// Whether a sink's standing connection is up, in terms every sink shares: `/readyz`, the
/// status page and `wxbridge_sink_connected` read it without knowing the sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// The sink holds no standing connection (webhooks, stdout): its last delivery tells.
    Connectionless,
    /// Connected (MQTT: a ConnAck and no failure since; NATS: the client says so).
    Up,
    /// Not connected (yet, or any more).
    Down,
}

impl Link {
    /// A watch that never changes from [`Link::Connectionless`].
    pub fn connectionless() -> watch::Receiver<Link> {
        // The receiver keeps the value after the sender is gone.
        watch::channel(Link::Connectionless).1
    }
}

/// A started sink: hand `sink` to [`run_delivery`] and `health` to the HTTP state.
pub struct Started<S> {
    /// The sink.
    pub sink: S,
    /// Its connection as it changes.
    pub health: watch::Receiver<Link>,
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
    /// Answered at once (it was invalid); boxed, as a result is many times a queue id's size.
    Answered(Box<crate::event::SendResult>),
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
pub const BATCH: usize = 256;

/// The most entries a pipelining sink has in flight (handed over, not yet confirmed): two
/// batches. It bounds what a crash or a lost connection can make a sink repeat.
pub const WINDOW: usize = 2 * BATCH;

/// The spool positions of what a sink has in flight.
#[derive(Debug, Default)]
struct Flight {
    /// Seqs of the entries handed over and not yet confirmed, oldest first.
    seqs: std::collections::VecDeque<Seq>,
    /// The last spool seq handed over (entries the sink skips included); None: read on from
    /// the cursor.
    handed: Option<Seq>,
}

impl Flight {
    fn hand(&mut self, wanted: &[Entry], last: Seq) {
        self.seqs.extend(wanted.iter().map(|e| e.seq));
        self.handed = Some(last);
    }

    /// `n` more entries are confirmed: where the cursor may go now.
    fn confirm(&mut self, n: usize) -> Option<Seq> {
        self.seqs.drain(..n.min(self.seqs.len()));
        match self.seqs.front() {
            Some(first) => first.checked_sub(1),
            None => self.handed,
        }
    }

    /// The sink forgot what is in flight: read on from the cursor.
    fn abandon(&mut self) {
        self.seqs.clear();
        self.handed = None;
    }

    fn has_room(&self) -> bool {
        self.seqs.len() + BATCH <= WINDOW
    }
}

/// Moves entries from the spool to `sink` until shutdown: in order, cursor advanced only past
/// confirmed entries, failures retried on `backoff` (a fresh jittered schedule after each
/// success). `wake` is notified whenever entries are appended. A pipelining sink gets the next
/// batch while earlier ones await confirmation, up to [`WINDOW`] entries in flight.
pub async fn run_delivery<S: Sink, B: Iterator<Item = Duration>>(
    mut sink: S,
    spool: Store,
    wake: Arc<Notify>,
    backoff: impl Fn() -> B,
    shutdown: CancellationToken,
) {
    let name = sink.name().to_owned();
    if let Err(e) = spool.register_sink(&name).await {
        tracing::error!(sink = %name, cause = %e, "cannot register the sink in the spool");
        return;
    }
    let mut delays = backoff();
    let mut failing = false;
    let mut flight = Flight::default();
    let mut acked: Option<Seq> = None;
    // Whether the spool may hold entries not handed over yet. A read that came back short
    // found everything there was, so the loop reads again only once an append wakes it (or
    // after a full batch, or a failure): at one message per sync, re-reading after every
    // confirmation cost two trips to the spool's thread per message for nothing.
    let mut look = true;
    // Kept from one read to the next, so an append made while a batch is being submitted
    // or confirmed still wakes the loop.
    let mut notified = Box::pin(wake.notified());
    loop {
        let room = flight.has_room();
        let batch = if room && look {
            // Interest registered before reading: an append between the read and the wait
            // wakes us.
            notified = Box::pin(wake.notified());
            let batch = match spool
                .pending_after(&name, flight.handed.unwrap_or(0), BATCH)
                .await
            {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(sink = %name, cause = %e, "cannot read the spool");
                    Vec::new()
                }
            };
            look = batch.len() >= BATCH;
            batch
        } else {
            Vec::new()
        };
        let outcome = if let Some(last) = batch.last().map(|e| e.seq) {
            let wanted: Vec<Entry> = batch.into_iter().filter(|e| sink.accepts(e.kind)).collect();
            flight.hand(&wanted, last);
            tokio::select! {
                _ = shutdown.cancelled() => return,
                r = sink.submit(wanted) => r,
            }
        } else if flight.seqs.is_empty() {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = &mut notified => {
                    look = true;
                    continue;
                }
            }
        } else if room {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = &mut notified => {
                    look = true;
                    continue;
                }
                r = sink.confirmed() => r,
            }
        } else {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                r = sink.confirmed() => r,
            }
        };
        let (confirmed, failure) = match outcome {
            Ok(n) => (n, None),
            Err(e) => (e.delivered, Some(e.cause)),
        };
        crate::metrics::delivered(&name, confirmed);
        let upto = flight.confirm(confirmed);
        if let Some(seq) = upto.filter(|s| Some(*s) > acked) {
            // Rides on the spool's next durable commit (see `spool::Store::ack`).
            spool.ack(&name, seq);
            acked = Some(seq);
        }
        if flight.seqs.is_empty() && failure.is_none() {
            // Nothing in flight: the next read starts at the cursor (which a full spool may
            // have moved on).
            flight.handed = None;
        }
        match failure {
            None => {
                if confirmed > 0 {
                    if failing {
                        tracing::info!(sink = %name, "delivering again");
                        failing = false;
                    }
                    delays = backoff();
                }
            }
            Some(cause) => {
                crate::metrics::delivery_failed(&name);
                flight.abandon();
                look = true;
                if !failing {
                    tracing::warn!(sink = %name, cause = %cause, "delivery failed; retrying with backoff");
                    failing = true;
                } else {
                    tracing::debug!(sink = %name, cause = %cause, "delivery failed again");
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
    /// The current login's contacts with their keys (DESIGN.md "Contact keys"); empty while
    /// logged out. Publish it (retained/on request) whenever it changes.
    pub roster: tokio::sync::watch::Receiver<Arc<crate::event::Roster>>,
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
    /// The media store (files by sha256), its URL signer and the `media` section.
    pub media: crate::media::Media,
    /// Cancelled at shutdown.
    pub shutdown: CancellationToken,
}

#[cfg(test)]
mod tests;
