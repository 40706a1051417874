//! The three tasks of the MQTT link (CRATES.md §1.4 on why they are three):
//! - the **poller** owns rumqttc's event loop and does nothing but poll it: it never awaits a
//!   channel it drains itself, and sleeps the `retry.*` schedule between failed connects;
//! - the **link task** is the only publisher: on every ConnAck it subscribes and publishes the
//!   retained status, state, QR, contacts and Home Assistant discovery; it republishes state,
//!   QR and contacts on change, discovery when HA's birth message arrives, empties retained configs of entities no
//!   longer configured, and publishes the delivery batches the sink hands it;
//! - the **command task** hands `/send` and notify payloads to the bridge and acks each to the
//!   broker only once the bridge has it, and turns `/relogin` and `/logout` into requests.
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, Incoming, Outgoing, Publish, QoS};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::homeassistant::Discovery;
use super::topics::Topics;
use super::tracker::{Tag, Tracker, Unwritten};
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

/// A publish on one of Home Assistant's topics larger than this is no birth message and no
/// discovery config of ours (those are a few hundred bytes): it is ignored, and counted.
const HOMEASSISTANT_MAX: usize = 64 * 1024;

/// What the poller needs besides the event loop.
pub(super) struct Poller {
    /// Home Assistant discovery, to route its incoming publishes.
    pub discovery: Arc<Discovery>,
    /// The pairing of writes and acks.
    pub tracker: Tracker,
    /// Confirmed entries, to the sink. Bounded by what the sink has in flight (`WINDOW`
    /// entries, and as many of batches it gave up on), so it never fills.
    pub confirmed: mpsc::Sender<Confirmed>,
    /// Connection state, to the sink and the link task; also the counts of what was refused.
    pub state: watch::Sender<LinkState>,
    /// Incoming QoS 1 and 2 commands, to the command task.
    pub acked: mpsc::Sender<Publish>,
    /// QoS 1 and 2 commands that found `acked` full, oldest first; the broker's inflight
    /// window bounds how many.
    pub held: VecDeque<Publish>,
    /// Incoming QoS 0 commands, to the command task; dropped, counted, when it is full.
    pub best_effort: mpsc::Sender<Publish>,
    /// HA's birth messages and the retained discovery configs, to the link task (QoS 0: no
    /// ack owed); dropped, counted, when it is full.
    pub homeassistant: mpsc::Sender<Publish>,
    /// `send.max_bytes`: a command payload is cut to one byte more than this before it is
    /// queued (the bridge then answers it `invalid_command` by its size alone).
    pub max_bytes: usize,
    /// A burst of dropped QoS 0 commands is in progress (logged at its start and end).
    pub dropping: u64,
    /// An oversized publish was logged already (later ones only at debug level).
    pub warned_large: bool,
    /// The reconnect schedule.
    pub retry: crate::retry::Retry,
    /// Shutdown has begun: stop reconnecting.
    pub shutdown: CancellationToken,
    /// Stop polling now.
    pub stop: CancellationToken,
    /// The highest id of a media publish the broker confirmed, to the link task.
    pub media_acked: watch::Sender<u64>,
}

impl Poller {
    /// Polls until the DISCONNECT is written, or the connection ends during shutdown, or `stop`.
    pub async fn run(mut self, mut eventloop: EventLoop) {
        let mut delays = self.retry.schedule();
        let mut connected = false;
        let mut failing = false;
        loop {
            // Every poll answer is a chance to move held commands on: the command task acks
            // each one it took, and each ack comes back here as an event.
            self.release_held();
            let polled = tokio::select! {
                _ = self.stop.cancelled() => return,
                polled = eventloop.poll() => polled,
            };
            match polled {
                Ok(Event::Incoming(Incoming::ConnAck(ack))) => {
                    connected = true;
                    failing = false;
                    delays = self.retry.schedule();
                    tracing::info!(session_present = ack.session_present, "mqtt connected");
                    for tag in self.tracker.connected(ack.session_present) {
                        tracing::debug!(?tag, "publish lost with the broker session");
                    }
                    self.state.send_modify(|s| {
                        s.connected = true;
                        s.connects += 1;
                        s.fresh_sessions += u64::from(!ack.session_present);
                    });
                }
                Ok(event) => {
                    if matches!(event, Event::Outgoing(Outgoing::Disconnect)) {
                        return;
                    }
                    self.handle(event);
                }
                Err(e) => {
                    // Events rumqttc buffered before the error still happened (acks read in
                    // the same burst, publishes written); account for them before `pending`.
                    for event in std::mem::take(&mut eventloop.state.events) {
                        self.handle(event);
                    }
                    self.tracker.disconnected(&eventloop.pending);
                    if connected {
                        connected = false;
                        tracing::warn!(cause = %e, "mqtt connection lost; reconnecting");
                        self.state.send_modify(|s| s.connected = false);
                    } else if !failing {
                        tracing::warn!(cause = %e, "cannot connect to the mqtt broker; retrying");
                    } else {
                        tracing::debug!(cause = %e, "mqtt connect failed again");
                    }
                    failing = true;
                    if self.shutdown.is_cancelled()
                        || matches!(e, rumqttc::ConnectionError::RequestsDone)
                    {
                        return;
                    }
                    let delay = delays.next().unwrap_or(self.retry.max);
                    tokio::select! {
                        _ = self.stop.cancelled() => return,
                        _ = self.shutdown.cancelled() => return,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }

    fn handle(&mut self, event: Event) {
        let done = match event {
            Event::Outgoing(Outgoing::Publish(pkid)) => self.tracker.written(pkid),
            Event::Outgoing(Outgoing::AwaitAck(pkid)) => {
                self.tracker.collided(pkid);
                None
            }
            Event::Incoming(Incoming::PubAck(ack)) => self.tracker.acked(ack.pkid),
            Event::Incoming(Incoming::PubComp(comp)) => self.tracker.acked(comp.pkid),
            Event::Incoming(Incoming::Publish(p)) => {
                self.route(p);
                None
            }
            _ => None,
        };
        match done {
            Some(Tag::Entry { batch, index }) => {
                if self.confirmed.try_send(Confirmed { batch, index }).is_err() {
                    // Cannot happen (see `confirmed`); were it lost, the sink's 30 s without
                    // progress would publish the batch again.
                    tracing::debug!(batch, index, "mqtt confirmation not handed to the sink");
                }
            }
            Some(Tag::Media { id }) => {
                // A late ack of a media publish given up on is older than the one awaited.
                self.media_acked
                    .send_if_modified(|acked| std::mem::replace(acked, (*acked).max(id)) < id);
            }
            Some(Tag::Control) | None => {}
        }
    }

    /// HA's birth and our configs go to the link task; everything else to the command task,
    /// which acks what it does not know: an unacked QoS 1 publish would hold a slot of the
    /// broker's inflight window for good. Never waits (see the module docs on backpressure).
    fn route(&mut self, mut p: Publish) {
        if self.discovery.concerns(&p.topic) {
            if p.payload.len() > HOMEASSISTANT_MAX {
                self.too_large(&p, "ignored");
                return;
            }
            if self.homeassistant.try_send(p).is_err() {
                self.count(Refused::QueueFull);
                tracing::debug!(
                    "home assistant publishes arrive faster than they are handled; one dropped"
                );
            }
            return;
        }
        if p.payload.len() > self.max_bytes {
            self.too_large(&p, "cut to send.max_bytes + 1 bytes; the bridge refuses it");
            // A copy of the head only: a slice would keep the whole payload alive.
            p.payload = bytes::Bytes::copy_from_slice(&p.payload[..self.max_bytes + 1]);
        }
        if p.qos == QoS::AtMostOnce {
            match self.best_effort.try_send(p) {
                Ok(()) if self.dropping > 0 => {
                    tracing::info!(
                        dropped = std::mem::take(&mut self.dropping),
                        "mqtt commands are taken again; QoS 0 commands were dropped meanwhile"
                    );
                }
                Ok(()) => {}
                Err(_) => {
                    if self.dropping == 0 {
                        tracing::warn!(
                            "mqtt QoS 0 commands arrive faster than the bridge takes them; \
                             dropping them (counted) until it catches up; publish commands \
                             with QoS 1 to have them kept"
                        );
                    }
                    self.dropping += 1;
                    self.count(Refused::QueueFull);
                }
            }
        } else {
            self.held.push_back(p);
            self.release_held();
        }
    }

    /// Moves held QoS 1 and 2 commands into `acked`, in order, while it has room.
    fn release_held(&mut self) {
        while let Some(p) = self.held.pop_front() {
            match self.acked.try_send(p) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(p)) => {
                    self.held.push_front(p);
                    return;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    self.held.clear();
                    return;
                }
            }
        }
    }

    /// A publish over its bound: logged once (then at debug level), counted.
    fn too_large(&mut self, p: &Publish, what: &str) {
        self.count(Refused::TooLarge);
        if std::mem::replace(&mut self.warned_large, true) {
            tracing::debug!(topic = %p.topic, bytes = p.payload.len(), "oversized mqtt publish {what}");
        } else {
            tracing::warn!(topic = %p.topic, bytes = p.payload.len(), "oversized mqtt publish {what}; later ones are logged at debug level");
        }
    }

    /// Counts a refused publish, in `/metrics` and in the link state (without waking anyone:
    /// it is read on demand).
    fn count(&self, why: Refused) {
        self.state.send_if_modified(|s| {
            match why {
                Refused::QueueFull => s.dropped += 1,
                Refused::TooLarge => s.too_large += 1,
            }
            false
        });
        crate::metrics::mqtt_refused(match why {
            Refused::QueueFull => "queue_full",
            Refused::TooLarge => "too_large",
        });
    }
}

/// Why the poller refused an incoming publish.
#[derive(Clone, Copy)]
enum Refused {
    /// Its queue was full (a QoS 0 command, or Home Assistant's).
    QueueFull,
    /// It was over its bound.
    TooLarge,
}

/// The only publisher.
pub(super) struct Publisher {
    /// The client handle.
    pub client: AsyncClient,
    /// Topics.
    pub topics: Arc<Topics>,
    /// Home Assistant discovery: what to announce and what to retract.
    pub discovery: Arc<Discovery>,
    /// Tags of handed-over publishes, for the poller's pairing.
    pub unwritten: Unwritten,
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
    /// Runs until shutdown, then says `offline`, disconnects, and stops the poller.
    pub async fn run(
        self,
        mut batches: mpsc::Receiver<Batch>,
        mut homeassistant: mpsc::Receiver<Publish>,
        mut link: watch::Receiver<LinkState>,
        poller: JoinHandle<()>,
        stop_poller: CancellationToken,
    ) {
        let mut status = self.control.status.clone();
        let mut qr = self.control.qr.clone();
        let mut roster = self.control.roster.clone();
        let (mut status_open, mut qr_open, mut batches_open) = (true, true, true);
        let mut roster_open = true;
        let mut homeassistant_open = true;
        let mut announced = 0;
        let shutdown = self.control.shutdown.clone();
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
            let _ = tokio::time::timeout(GOODBYE, self.goodbye()).await;
        }
        let mut poller = poller;
        if tokio::time::timeout(GOODBYE, &mut poller).await.is_err() {
            stop_poller.cancel();
            let _ = poller.await;
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
        if let Err(e) = self.client.subscribe_many(filters).await {
            tracing::error!(cause = %e, "cannot subscribe to the mqtt command topics");
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
                tracing::info!("home assistant came online; announcing the entities again");
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
                batch: batch.id,
                index: out.index,
            };
            self.publish(tag, &out.topic, batch.qos, false, out.payload)
                .await;
        }
    }

    /// Hands one publish to the client, its tag queued first so the poller can pair it. While
    /// the broker is away the client's channel fills up and this waits; shutdown ends the wait
    /// (the pairing no longer matters then). Our topics are valid by construction (the loader
    /// checked the base topic), so the payload goes as it is, without a copy.
    pub(super) async fn publish(
        &self,
        tag: Tag,
        topic: &str,
        qos: QoS,
        retain: bool,
        payload: impl Into<bytes::Bytes>,
    ) {
        self.unwritten
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(tag);
        let handed = tokio::select! {
            r = self.client.publish_bytes(topic, qos, retain, payload.into()) => {
                r.map_err(|e| e.to_string())
            }
            _ = self.control.shutdown.cancelled() => Err("shutting down".to_owned()),
        };
        if let Err(cause) = handed {
            // Nothing reached the channel, and only this task pushes: the tag is the last one.
            self.unwritten
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop_back();
            tracing::debug!(topic, %cause, "mqtt publish not handed over");
        }
    }

    /// `offline`, retained, then DISCONNECT (which makes the broker drop the last will). Not
    /// cut short by shutdown, as [`Publisher::publish`] is; the caller bounds it.
    async fn goodbye(&self) {
        self.unwritten
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(Tag::Control);
        let status = self.topics.status.clone();
        let _ = self
            .client
            .publish(status, QoS::AtLeastOnce, true, "offline")
            .await;
        let _ = self.client.disconnect().await;
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
