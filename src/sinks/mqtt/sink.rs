//! The [`MqttSink`] of one account: delivery of its spooled entries, each confirmed by its
//! PUBACK (see the module docs for the guarantee). `start.rs` makes one per account.
use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rumqttc::QoS;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::link::{Batch, Confirmed, Item, LinkState};
use super::media::Media;
use super::options::MAX_PACKET;
use super::topics::Topics;
use crate::sinks::{DeliveryError, Sink};
use crate::spool::{Entry, Kind};

/// What is in flight fails when no entry of it is confirmed for this long (or when there is no
/// connection for this long before a batch starts), so delivery never hangs, also not through
/// a long outage of the broker.
const PROGRESS: Duration = Duration::from_secs(30);

/// Why the entries in flight are published again.
const SESSION_LOST: &str = "the mqtt broker started a new session; unconfirmed publishes were lost";

/// A batch handed to the link whose entries are not all confirmed yet.
pub(super) struct InFlight {
    id: u64,
    /// Which entries the broker confirmed (or that were never to be published).
    done: Vec<bool>,
    /// How many are not.
    left: usize,
    /// Dropping it tells the link task to skip what it has not sent yet.
    _abandon: DropGuard,
}

/// The MQTT sink: hand it to [`crate::sinks::run_delivery`]. It pipelines: the next batch is
/// published while the PUBACKs of earlier ones are still on their way.
/// (Built by `start.rs`; its fields are the module's.)
pub struct MqttSink {
    /// The account's topics.
    pub(super) topics: Arc<Topics>,
    /// The configured event QoS.
    pub(super) qos: QoS,
    /// Batches to the account's link task.
    pub(super) batches: mpsc::Sender<Batch>,
    /// Confirmations of the account's entries, from the poller.
    pub(super) confirmed: mpsc::Receiver<Confirmed>,
    /// The connection's state.
    pub(super) link: watch::Receiver<LinkState>,
    /// The last batch number handed out.
    pub(super) next_batch: u64,
    /// Cancelled once the link has stopped.
    pub(super) stopped: CancellationToken,
    /// Batches in flight, oldest first.
    pub(super) flight: VecDeque<InFlight>,
    /// The broker session (its count of fresh sessions) the batches in flight went out on.
    pub(super) session: u64,
    /// When the batches in flight fail for want of any confirmation.
    pub(super) deadline: Instant,
    /// The media store and what to publish of it, when anything is.
    pub(super) media: Option<Media>,
    /// Set by the link task while a file goes out: the deadline waits then.
    pub(super) media_busy: Arc<AtomicBool>,
}

impl MqttSink {
    /// The connection state, for health checks.
    pub fn link(&self) -> watch::Receiver<LinkState> {
        self.link.clone()
    }

    /// Resolves once the link has stopped after shutdown (`offline` published and disconnected,
    /// or given up on after a few seconds). Take it before handing the sink to `run_delivery`.
    pub fn stopped(&self) -> impl Future<Output = ()> + Send + 'static {
        self.stopped.clone().cancelled_owned()
    }
}

/// The size of a PUBLISH packet as rumqttc checks it against the limit.
fn packet_size(topic: &str, payload: usize) -> usize {
    // Fixed header (1 + up to 4 length bytes), topic length prefix, packet id.
    1 + 4 + 2 + topic.len() + 2 + payload
}

/// How many leading entries are done, counting on from `from`.
fn leading(done: &[bool], from: usize) -> usize {
    from + done[from..].iter().take_while(|d| **d).count()
}

impl MqttSink {
    /// Files a confirmation under its batch (stale ones, of batches given up on, are dropped).
    fn mark(&mut self, c: Confirmed) {
        if let Some(batch) = self.flight.iter_mut().find(|b| b.id == c.batch) {
            if !std::mem::replace(&mut batch.done[c.index], true) {
                batch.left -= 1;
            }
            self.deadline = Instant::now() + PROGRESS;
        }
    }

    /// Files every confirmation already received.
    fn absorb(&mut self) {
        while let Ok(c) = self.confirmed.try_recv() {
            self.mark(c);
        }
    }

    /// How many entries of the batches wholly confirmed, oldest first, which leave the flight.
    /// Only whole batches count, so the spool's cursor moves, and pays its commit, once per
    /// batch and not once per PUBACK.
    fn take_confirmed(&mut self) -> usize {
        let mut n = 0;
        while let Some(front) = self.flight.front() {
            if front.left > 0 {
                break;
            }
            n += front.done.len();
            self.flight.pop_front();
        }
        n
    }

    /// Gives up on everything in flight, reporting what was confirmed before: the whole
    /// batches and the confirmed start of the first one that is not.
    fn fail(&mut self, cause: &str) -> DeliveryError {
        self.absorb();
        let whole = self.take_confirmed();
        let delivered = whole + self.flight.front().map_or(0, |b| leading(&b.done, 0));
        self.flight.clear();
        DeliveryError {
            delivered,
            cause: cause.to_owned(),
        }
    }
}

impl Sink for MqttSink {
    fn name(&self) -> &str {
        "mqtt"
    }

    fn accepts(&self, _kind: Kind) -> bool {
        true
    }

    async fn deliver(&mut self, batch: &[Entry]) -> Result<(), DeliveryError> {
        let total = batch.len();
        let mut delivered = self.submit(batch.to_vec()).await?;
        while delivered < total {
            delivered += self.confirmed().await.map_err(|e| DeliveryError {
                delivered: delivered + e.delivered,
                cause: e.cause,
            })?;
        }
        Ok(())
    }

    async fn submit(&mut self, batch: Vec<Entry>) -> Result<usize, DeliveryError> {
        if batch.is_empty() {
            self.absorb();
            return Ok(self.take_confirmed());
        }
        let waited = tokio::time::timeout(PROGRESS, self.link.wait_for(|s| s.connected))
            .await
            .map(|r| r.map(|state| *state));
        let state = match waited {
            Ok(Ok(state)) => state,
            Ok(Err(_)) => return Err(self.fail("the mqtt link has stopped")),
            Err(_) => return Err(self.fail("not connected to the mqtt broker")),
        };
        if self.flight.is_empty() {
            // Confirmations of batches that failed earlier are of no use now.
            while self.confirmed.try_recv().is_ok() {}
            self.session = state.fresh_sessions;
            self.deadline = Instant::now() + PROGRESS;
        } else if state.fresh_sessions != self.session {
            return Err(self.fail(SESSION_LOST));
        }
        self.next_batch += 1;
        let id = self.next_batch;

        let mut done = vec![false; batch.len()];
        let mut publishes = Vec::with_capacity(batch.len());
        for (index, entry) in batch.into_iter().enumerate() {
            let files = match (&self.media, entry.kind) {
                (Some(media), Kind::Message) => {
                    media.files(&entry.id, &entry.payload, &self.topics)
                }
                _ => Vec::new(),
            };
            let topic = self.topics.for_kind(entry.kind);
            if packet_size(topic, entry.payload.len()) > MAX_PACKET {
                // It could never be delivered and would block every entry behind it.
                tracing::error!(
                    id = %entry.id,
                    kind = entry.kind.as_str(),
                    bytes = entry.payload.len(),
                    limit = MAX_PACKET,
                    "event too large for mqtt; not published"
                );
                done[index] = true;
                continue;
            }
            publishes.push(Item {
                index,
                topic: topic.to_owned(),
                payload: entry.payload,
                files,
            });
        }
        let abandoned = CancellationToken::new();
        self.flight.push_back(InFlight {
            id,
            left: done.iter().filter(|d| !**d).count(),
            done,
            _abandon: abandoned.clone().drop_guard(),
        });
        let handed = Batch {
            id,
            qos: self.qos,
            publishes,
            abandoned,
        };
        let failure = loop {
            match tokio::time::timeout_at(self.deadline, self.batches.reserve()).await {
                Ok(Ok(permit)) => {
                    permit.send(handed);
                    break None;
                }
                Ok(Err(_)) => break Some("the mqtt link has stopped"),
                Err(_) if self.media_busy.load(Ordering::Relaxed) => {
                    // A large file is going out: that is progress too.
                    self.deadline = Instant::now() + PROGRESS;
                }
                Err(_) => break Some("the mqtt link is busy"),
            }
        };
        if let Some(cause) = failure {
            return Err(self.fail(cause));
        }
        self.absorb();
        Ok(self.take_confirmed())
    }

    async fn confirmed(&mut self) -> Result<usize, DeliveryError> {
        loop {
            self.absorb();
            let n = self.take_confirmed();
            if n > 0 {
                return Ok(n);
            }
            if self.flight.is_empty() {
                return std::future::pending().await;
            }
            tokio::select! {
                confirmed = self.confirmed.recv() => match confirmed {
                    Some(c) => self.mark(c),
                    None => return Err(self.fail("the mqtt link has stopped")),
                },
                changed = self.link.changed() => {
                    if changed.is_err() {
                        return Err(self.fail("the mqtt link has stopped"));
                    }
                    // A lost connection alone fails nothing: rumqttc sends the unacked
                    // publishes again on the resumed session, and publishing them from here
                    // too would only repeat them. A new session lost them: publish again
                    // from the first unconfirmed entry. (The poller reports acks read before
                    // a loss ahead of the loss itself: `fail` counts them.)
                    if self.link.borrow_and_update().fresh_sessions != self.session {
                        return Err(self.fail(SESSION_LOST));
                    }
                }
                _ = tokio::time::sleep_until(self.deadline) => {
                    if self.media_busy.load(Ordering::Relaxed) {
                        // A large file is going out; its event follows once it is confirmed.
                        self.deadline = Instant::now() + PROGRESS;
                        continue;
                    }
                    return Err(self.fail("the mqtt broker confirmed nothing for 30 s"));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_counts_only_the_unbroken_prefix() {
        assert_eq!(leading(&[true, true, false, true], 0), 2);
        assert_eq!(leading(&[true, true, false, true], 2), 2);
        assert_eq!(leading(&[true, true, true], 1), 3);
        assert_eq!(leading(&[false, true], 0), 0);
    }
}
