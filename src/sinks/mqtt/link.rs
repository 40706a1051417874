//! The tasks of the MQTT link (CRATES.md §1.4 on why they are apart), for every account it
//! serves over its one connection:
//! - the **poller** (`poller.rs`, one per connection) owns rumqttc's event loop and does
//!   nothing but poll it;
//! - a **link task** per account publishes that account's topics: on every ConnAck it
//!   subscribes to its command topics and publishes its retained status, state, QR, contacts and
//!   Home Assistant discovery; it republishes state, QR and contacts on change, discovery when HA's birth
//!   message arrives, empties retained configs of entities no longer configured, and
//!   publishes the delivery batches its sink hands it. The link tasks publish through one
//!   [`Gate`], taking turns (a fair lock, one publish per turn), so a long batch or a large
//!   file of one account delays another's publishes by one publish at a time, never by the
//!   whole batch; and waits of one account's (a file's confirmation) hold no turn;
//! - a **command task** per account hands its `/send` and notify payloads to that account's
//!   bridge and acks each to the broker only once the bridge has it, and turns `/relogin` and
//!   `/logout` into that account's requests;
//! - the **connection task** publishes the process's status with several accounts, and at
//!   shutdown, once every link task said `offline`, disconnects.
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, Publish, QoS};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::homeassistant::Discovery;
use super::topics::Topics;
use super::tracker::{Tag, Unwritten};
use crate::sinks::{Control, Origin};

/// The connection as the poller last saw it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkState {
    /// A ConnAck arrived and the connection has not failed since.
    pub connected: bool,
    /// How many ConnAcks so far (a reconnect makes it grow).
    pub connects: u64,
    /// How many of them started a new session (the broker held none for us): rumqttc drops
    /// its unacked publishes then. A resumed session gets them again from rumqttc itself.
    pub fresh_sessions: u64,
    /// Incoming publishes dropped because their queue was full: QoS 0 commands behind a slow
    /// bridge, Home Assistant publishes (also `wxbridge_mqtt_refused_total{reason="queue_full"}`).
    pub dropped: u64,
    /// Incoming publishes over their bound: commands over `send.max_bytes` (answered
    /// `invalid_command`) and oversized ones on Home Assistant's topics (ignored); also
    /// `wxbridge_mqtt_refused_total{reason="too_large"}`.
    pub too_large: u64,
}

/// Publishes of one delivery batch, handed to the link task.
pub(super) struct Batch {
    /// The batch's number, to tell its confirmations from stale ones.
    pub id: u64,
    /// The configured event QoS.
    pub qos: QoS,
    /// The entries to publish, in order.
    pub publishes: Vec<Item>,
    /// Cancelled once `deliver` returns: the link task then skips what it has not sent yet.
    pub abandoned: CancellationToken,
}

/// One entry of a [`Batch`].
pub(super) struct Item {
    /// Its position in the batch.
    pub index: usize,
    /// Where the event goes.
    pub topic: String,
    /// The event.
    pub payload: Vec<u8>,
    /// The files it refers to, published first (`media.rs`).
    pub files: Vec<super::media::File>,
}

/// Entry `index` of batch `batch` was confirmed by the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Confirmed {
    /// The batch's number.
    pub batch: u64,
    /// The entry's position in the batch.
    pub index: usize,
}

/// How long shutdown waits for `offline` and the DISCONNECT to go out.
const GOODBYE: Duration = Duration::from_secs(3);

/// How many publishes each of the poller's channels holds (commands of each kind, Home
/// Assistant's). The command task takes one command at a time and waits for the bridge, so
/// these are what may pile up behind a slow bridge.
pub(super) const QUEUE: usize = 64;

/// The one way to the client for every publish, so the poller can pair writes and acks
/// (`tracker.rs`): a publish's tag is queued and the publish handed over in one turn. The
/// turns are a fair (first come, first served) lock.
pub(super) struct Gate {
    /// The client handle.
    pub client: AsyncClient,
    /// Tags of handed-over publishes, for the poller's pairing.
    pub unwritten: Unwritten,
    /// Whose turn it is.
    pub turn: tokio::sync::Mutex<()>,
}

impl Gate {
    /// Hands one publish to the client, its tag queued first. While the broker is away the
    /// client's channel fills up and this waits (holding the turn: nobody's publish could go
    /// anyway); `cut` ends the wait. Our topics are valid by construction (the loader
    /// checked the base topic), so the payload goes as it is, without a copy.
    pub async fn publish(
        &self,
        tag: Tag,
        topic: &str,
        qos: QoS,
        retain: bool,
        payload: bytes::Bytes,
        cut: &CancellationToken,
    ) {
        let _turn = self.turn.lock().await;
        self.unwritten
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(tag);
        let handed = tokio::select! {
            r = self.client.publish_bytes(topic, qos, retain, payload) => {
                r.map_err(|e| e.to_string())
            }
            _ = cut.cancelled() => Err("shutting down".to_owned()),
        };
        if let Err(cause) = handed {
            // Nothing reached the channel, and the turn is ours: the tag is the last one.
            self.unwritten
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop_back();
            tracing::debug!(topic, %cause, "mqtt publish not handed over");
        }
    }
}

/// The link task of one account: the only publisher of its topics.
pub(super) struct Publisher {
    /// The way to the client.
    pub gate: Arc<Gate>,
    /// The account's position in the link's list (in its tags).
    pub lane: usize,
    /// Topics.
    pub topics: Arc<Topics>,
    /// Home Assistant discovery: what to announce and what to retract.
    pub discovery: Arc<Discovery>,
    /// Status, QR, shutdown.
    pub control: Control,
    /// The highest media publish id the broker confirmed (from the poller).
    pub media_acked: watch::Receiver<u64>,
    /// The last media publish id handed out.
    pub media_ids: std::sync::atomic::AtomicU64,
    /// Set while a file goes out, so the sink waits for it rather than giving up on the
    /// batches in flight after 30 s without a confirmation.
    pub media_busy: Arc<std::sync::atomic::AtomicBool>,
}

impl Publisher {
    /// Runs until the account's shutdown, then says `offline` on its status.
    pub async fn run(
        self,
        mut batches: mpsc::Receiver<Batch>,
        mut homeassistant: mpsc::Receiver<Publish>,
        mut link: watch::Receiver<LinkState>,
    ) {
        let mut status = self.control.status.clone();
        let mut qr = self.control.qr.clone();
        let mut roster = self.control.roster.clone();
        let (mut status_open, mut qr_open, mut batches_open) = (true, true, true);
        let mut roster_open = true;
        let mut homeassistant_open = true;
        let mut announced = 0;
        let shutdown = self.control.shutdown.clone();
        // A ConnAck before this task first ran is announced all the same.
        link.mark_changed();
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                changed = link.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let state = *link.borrow_and_update();
                    if state.connected && state.connects != announced {
                        announced = state.connects;
                        self.announce(&mut status, &mut qr).await;
                        let r = roster.borrow_and_update().clone();
                        self.publish_roster(&r).await;
                    }
                }
                changed = status.changed(), if status_open => {
                    status_open = changed.is_ok();
                    if status_open && link.borrow().connected {
                        let s = status.borrow_and_update().clone();
                        self.publish_state(&s).await;
                    }
                }
                changed = qr.changed(), if qr_open => {
                    qr_open = changed.is_ok();
                    if qr_open && link.borrow().connected {
                        let q = qr.borrow_and_update().clone();
                        self.publish_qr(q.as_ref()).await;
                    }
                }
                changed = roster.changed(), if roster_open => {
                    roster_open = changed.is_ok();
                    if roster_open && link.borrow().connected {
                        let r = roster.borrow_and_update().clone();
                        self.publish_roster(&r).await;
                    }
                }
                batch = batches.recv(), if batches_open => match batch {
                    Some(batch) => self.publish_batch(batch).await,
                    None => batches_open = false,
                },
                p = homeassistant.recv(), if homeassistant_open => match p {
                    Some(p) if link.borrow().connected => self.homeassistant(p).await,
                    Some(_) => {}
                    None => homeassistant_open = false,
                },
            }
        }
        if link.borrow().connected {
            // Not cut short by shutdown, as every other publish is; bounded here instead.
            let never = CancellationToken::new();
            let offline = self.gate.publish(
                Tag::Control,
                &self.topics.status,
                QoS::AtLeastOnce,
                true,
                bytes::Bytes::from_static(b"offline"),
                &never,
            );
            let _ = tokio::time::timeout(GOODBYE, offline).await;
        }
    }

    /// After every ConnAck: subscriptions (a new session has none) and every retained topic.
    /// HA's topics are subscribed with QoS 0: a missed birth only matters while we are away,
    /// and every ConnAck announces anyway.
    async fn announce(
        &self,
        status: &mut watch::Receiver<crate::event::SessionStatus>,
        qr: &mut watch::Receiver<Option<crate::event::LoginQr>>,
    ) {
        let command =
            |topic: &str| rumqttc::SubscribeFilter::new(topic.to_owned(), QoS::AtLeastOnce);
        let mut filters = vec![
            command(&self.topics.send),
            command(&self.topics.relogin),
            command(&self.topics.logout),
            command(&self.topics.notify_filter),
            // Every config of ours left retained, so the ones no longer configured get emptied.
            rumqttc::SubscribeFilter::new(self.discovery.configs_filter.clone(), QoS::AtMostOnce),
        ];
        if !self.discovery.configs().is_empty() {
            filters.push(rumqttc::SubscribeFilter::new(
                self.discovery.birth.clone(),
                QoS::AtMostOnce,
            ));
        }
        if let Err(e) = self.gate.client.subscribe_many(filters).await {
            tracing::error!(account = %self.control.account, cause = %e, "cannot subscribe to the mqtt command topics");
        }
        self.retained(&self.topics.status, b"online".to_vec()).await;
        let s = status.borrow_and_update().clone();
        self.publish_state(&s).await;
        let q = qr.borrow_and_update().clone();
        self.publish_qr(q.as_ref()).await;
        self.publish_discovery().await;
    }

    /// Every Home Assistant discovery config, retained.
    async fn publish_discovery(&self) {
        for (topic, payload) in self.discovery.configs() {
            self.retained(topic, payload.clone()).await;
        }
    }

    /// HA's birth message (`online`: announce again, HA forgot everything not retained), or a
    /// config of ours the broker holds: one no longer configured is emptied, which makes HA
    /// remove the entity.
    async fn homeassistant(&self, p: Publish) {
        if p.topic == self.discovery.birth {
            if &p.payload[..] == b"online" {
                tracing::info!(account = %self.control.account, "home assistant came online; announcing the entities again");
                self.publish_discovery().await;
            }
        } else if !p.payload.is_empty() && self.discovery.is_stale(&p.topic) {
            tracing::info!(topic = %p.topic, "removing a home assistant entity no longer configured");
            self.retained(&p.topic, Vec::new()).await;
            if let Some(image) = self.discovery.image_topic(&p.topic) {
                // The entity is gone: its retained image is of no use to anyone.
                self.retained(image, Vec::new()).await;
            }
        }
    }

    async fn publish_state(&self, status: &crate::event::SessionStatus) {
        match serde_json::to_vec(status) {
            Ok(json) => self.retained(&self.topics.state, json).await,
            Err(e) => tracing::error!(cause = %e, "cannot serialize the session state"),
        }
    }

    /// The contacts with their keys (DESIGN.md "Contact keys"), a JSON array; `[]` while
    /// logged out.
    async fn publish_roster(&self, roster: &crate::event::Roster) {
        match serde_json::to_vec(roster) {
            Ok(json) => self.retained(&self.topics.contacts, json).await,
            Err(e) => tracing::error!(cause = %e, "cannot serialize the contacts"),
        }
    }

    /// The QR while a scan is awaited; empty retained payloads (which delete) once it is gone.
    /// Home Assistant's copy of the PNG goes first and is never emptied: `/qr` turns its entity
    /// available and unavailable (see `homeassistant.rs`), so HA never shows an empty image or
    /// the previous code.
    async fn publish_qr(&self, qr: Option<&crate::event::LoginQr>) {
        match qr {
            Some(qr) => {
                if self.discovery.enabled() {
                    self.retained(&self.topics.ha_login_qr, qr.png.clone())
                        .await;
                }
                self.retained(&self.topics.qr_png, qr.png.clone()).await;
                self.retained(&self.topics.qr, qr.to_json()).await;
            }
            None => {
                self.retained(&self.topics.qr, Vec::new()).await;
                self.retained(&self.topics.qr_png, Vec::new()).await;
            }
        }
    }

    /// A retained QoS 1 publish of ours (status, state, QR, discovery); nobody waits for its
    /// PUBACK.
    pub(super) async fn retained(&self, topic: &str, payload: impl Into<bytes::Bytes>) {
        self.publish(Tag::Control, topic, QoS::AtLeastOnce, true, payload)
            .await;
    }

    /// Publishes a batch in order, pipelined (an entry with files waits for them, `media.rs`);
    /// stops early once the sink gave up on it.
    async fn publish_batch(&self, batch: Batch) {
        for out in batch.publishes {
            for file in &out.files {
                if batch.abandoned.is_cancelled() {
                    return;
                }
                self.publish_file(file, batch.qos, &batch.abandoned).await;
            }
            if batch.abandoned.is_cancelled() {
                return;
            }
            let tag = Tag::Entry {
                lane: self.lane,
                batch: batch.id,
                index: out.index,
            };
            self.publish(tag, &out.topic, batch.qos, false, out.payload)
                .await;
        }
    }

    /// Hands one publish to the client through the gate; the account's shutdown ends a wait
    /// for room (the pairing no longer matters then).
    pub(super) async fn publish(
        &self,
        tag: Tag,
        topic: &str,
        qos: QoS,
        retain: bool,
        payload: impl Into<bytes::Bytes>,
    ) {
        self.gate
            .publish(
                tag,
                topic,
                qos,
                retain,
                payload.into(),
                &self.control.shutdown,
            )
            .await;
    }
}

/// The connection's own task: with several accounts, `online` on the process's status after
/// every ConnAck; at shutdown (every account's), once every link task has said `offline`,
/// `offline` on the process's status and the DISCONNECT (which makes the broker drop the last
/// will), then the poller's end. `done` is cancelled at the very end.
pub(super) struct Connection {
    /// The way to the client.
    pub gate: Arc<Gate>,
    /// `<base>/status` with several accounts.
    pub process_status: Option<String>,
    /// Every account's shutdown.
    pub shutdowns: Vec<CancellationToken>,
    /// Cancelled once every account is shutting down: the poller stops reconnecting.
    pub closing: CancellationToken,
    /// The link tasks.
    pub publishers: Vec<JoinHandle<()>>,
    /// The poller.
    pub poller: JoinHandle<()>,
    /// Stops the poller at once, when it does not stop by itself.
    pub stop_poller: CancellationToken,
    /// Cancelled once the link has stopped.
    pub done: CancellationToken,
}

impl Connection {
    /// Runs until every account's shutdown and the goodbye.
    pub async fn run(mut self, mut link: watch::Receiver<LinkState>) {
        let every_shutdown = {
            let shutdowns = self.shutdowns.clone();
            async move {
                for s in shutdowns {
                    s.cancelled().await;
                }
            }
        };
        tokio::pin!(every_shutdown);
        let mut announced = 0;
        link.mark_changed();
        loop {
            tokio::select! {
                biased;
                _ = &mut every_shutdown => break,
                changed = link.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let state = *link.borrow_and_update();
                    if let Some(topic) = &self.process_status {
                        if state.connected && state.connects != announced {
                            announced = state.connects;
                            let online = bytes::Bytes::from_static(b"online");
                            self.gate
                                .publish(Tag::Control, topic, QoS::AtLeastOnce, true, online, &self.closing)
                                .await;
                        }
                    }
                }
            }
        }
        self.closing.cancel();
        for publisher in std::mem::take(&mut self.publishers) {
            let _ = publisher.await;
        }
        if link.borrow().connected {
            let _ = tokio::time::timeout(GOODBYE, self.goodbye()).await;
        }
        if tokio::time::timeout(GOODBYE, &mut self.poller)
            .await
            .is_err()
        {
            self.stop_poller.cancel();
            let _ = (&mut self.poller).await;
        }
        self.done.cancel();
    }

    /// `offline` on the process's status (several accounts), then DISCONNECT.
    async fn goodbye(&self) {
        if let Some(topic) = &self.process_status {
            let offline = bytes::Bytes::from_static(b"offline");
            self.gate
                .publish(
                    Tag::Control,
                    topic,
                    QoS::AtLeastOnce,
                    true,
                    offline,
                    &CancellationToken::new(),
                )
                .await;
        }
        let _turn = self.gate.turn.lock().await;
        let _ = self.gate.client.disconnect().await;
    }
}

/// Runs the command task: each `/send` payload goes to the intake and is acked once `submit`
/// says the bridge has it, and so does a notify payload, as `{"to": <target>, "text": <the
/// payload>}`; `/relogin` and `/logout` notify. Retained commands are acked and ignored: we
/// subscribe on every ConnAck, so the broker would repeat them at every reconnect. Publishes on
/// topics that are no command (a notify target since dropped from the config, say) are acked
/// and ignored.
pub(super) async fn run_commands(
    client: AsyncClient,
    topics: Arc<Topics>,
    discovery: Arc<Discovery>,
    control: Control,
    mut acked: mpsc::Receiver<Publish>,
    mut best_effort: mpsc::Receiver<Publish>,
) {
    loop {
        // QoS 1 and 2 first: they are never dropped, and each one taken frees a slot of the
        // broker's inflight window.
        let p = tokio::select! {
            biased;
            _ = control.shutdown.cancelled() => return,
            Some(p) = acked.recv() => p,
            Some(p) = best_effort.recv() => p,
            else => return,
        };
        let take = if p.retain {
            tracing::warn!(topic = %p.topic, "ignoring a retained mqtt command; publish commands without retain");
            true
        } else if p.topic == topics.relogin {
            tracing::info!("re-login requested over mqtt");
            control.relogin.notify_one();
            true
        } else if p.topic == topics.logout {
            tracing::info!("log-out requested over mqtt");
            control.logout.notify_one();
            true
        } else if let Some(command) = command(&p, &topics, &discovery) {
            tokio::select! {
                _ = control.shutdown.cancelled() => return,
                taken = control.intake.submit(command, Origin::Mqtt) => taken,
            }
        } else {
            tracing::warn!(topic = %p.topic, "ignoring an mqtt publish that is no command of ours");
            true
        };
        // Not taken: the bridge is stopping; the broker keeps the command for the next run.
        if take {
            if let Err(e) = client.ack(&p).await {
                tracing::debug!(cause = %e, "mqtt ack not handed over");
            }
        }
    }
}

/// The send command a publish carries: a `/send` payload as it is, a notify payload (the
/// message text, as Home Assistant's notify entity sends it) addressed to its target.
fn command(p: &Publish, topics: &Topics, discovery: &Discovery) -> Option<Vec<u8>> {
    if p.topic == topics.send {
        return Some(p.payload.to_vec());
    }
    let target = discovery.notify_target(topics.notify_slug(&p.topic)?)?;
    let text = String::from_utf8_lossy(&p.payload);
    serde_json::to_vec(&serde_json::json!({"to": target, "text": text})).ok()
}
