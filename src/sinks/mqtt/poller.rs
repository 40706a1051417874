//! The poller: it owns rumqttc's event loop and does nothing but poll it. It never awaits a
//! channel it feeds, and sleeps the `retry.*` schedule between failed connects. What it reads
//! it hands on: the connection state to everyone, each confirmation to the sink of the account
//! whose publish it was, each incoming publish to the [`Lane`] of the account its topic names
//! (commands to that account's command task, Home Assistant's publishes to its link task).
use std::collections::VecDeque;
use std::sync::Arc;

use rumqttc::{Event, EventLoop, Incoming, Outgoing, Publish, QoS};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::homeassistant::Discovery;
use super::link::{Confirmed, LinkState};
use super::topics::Router;
use super::tracker::{Tag, Tracker};

/// A publish on one of Home Assistant's topics larger than this is no birth message and no
/// discovery config of ours (those are a few hundred bytes): it is ignored, and counted.
const HOMEASSISTANT_MAX: usize = 64 * 1024;

/// One account's side of the poller: where its confirmations and incoming publishes go. Each
/// account has its own channels, so one whose bridge is slow to take commands, or whose sink
/// is slow to read confirmations, holds up no other.
pub(super) struct Lane {
    /// The account, for the log.
    pub account: String,
    /// Its Home Assistant discovery, to route HA's publishes.
    pub discovery: Arc<Discovery>,
    /// Confirmed entries, to the account's sink. Bounded by what the sink has in flight
    /// (`WINDOW` entries, and as many of batches it gave up on), so it never fills.
    pub confirmed: mpsc::Sender<Confirmed>,
    /// The highest id of the account's media publishes the broker confirmed, to its link task.
    pub media_acked: watch::Sender<u64>,
    /// Incoming QoS 1 and 2 commands, to the account's command task.
    pub acked: mpsc::Sender<Publish>,
    /// QoS 1 and 2 commands that found `acked` full, oldest first; the broker's inflight
    /// window bounds how many.
    pub held: VecDeque<Publish>,
    /// Incoming QoS 0 commands, to the command task; dropped, counted, when it is full.
    pub best_effort: mpsc::Sender<Publish>,
    /// HA's birth messages and the account's retained discovery configs, to its link task
    /// (QoS 0: no ack owed); dropped, counted, when it is full.
    pub homeassistant: mpsc::Sender<Publish>,
    /// The account's `send.max_bytes`: a command payload is cut to one byte more than this
    /// before it is queued (the bridge then answers it `invalid_command` by its size alone).
    pub max_bytes: usize,
    /// A burst of dropped QoS 0 commands is in progress (logged at its start and end).
    pub dropping: u64,
}

/// What the poller needs besides the event loop.
pub(super) struct Poller {
    /// Every account's lane, in the link's order.
    pub lanes: Vec<Lane>,
    /// Which lane a command topic is for.
    pub router: Router,
    /// The pairing of writes and acks.
    pub tracker: Tracker,
    /// Connection state, to the sinks and the link tasks; also the counts of what was refused.
    pub state: watch::Sender<LinkState>,
    /// An oversized publish was logged already (later ones only at debug level).
    pub warned_large: bool,
    /// The reconnect schedule.
    pub retry: crate::retry::Retry,
    /// Shutdown has begun: stop reconnecting.
    pub shutdown: CancellationToken,
    /// Stop polling now.
    pub stop: CancellationToken,
}

impl Poller {
    /// Polls until the broker closes the connection after our DISCONNECT, or the connection
    /// ends during shutdown, or `stop`.
    pub async fn run(mut self, mut eventloop: EventLoop) {
        let mut delays = self.retry.schedule();
        let mut connected = false;
        let mut failing = false;
        let mut disconnecting = false;
        loop {
            // Every poll answer is a chance to move held commands on: the command tasks ack
            // each one they took, and each ack comes back here as an event.
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
                        // Read on until the broker closes the connection: a socket closed
                        // with the broker's last PUBACKs unread is reset (RST), and the broker
                        // then drops what it had not read yet: the `offline` statuses and the
                        // DISCONNECT itself, so the last will would fire too. The connection
                        // task stops us if the broker never closes.
                        disconnecting = true;
                        continue;
                    }
                    self.handle(event);
                }
                Err(e) => {
                    // Events rumqttc buffered before the error still happened (acks read in
                    // the same burst, publishes written); account for them before `pending`.
                    for event in std::mem::take(&mut eventloop.state.events) {
                        self.handle(event);
                    }
                    if disconnecting {
                        tracing::debug!(cause = %e, "mqtt connection closed after the DISCONNECT");
                        return;
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
            Some(Tag::Entry { lane, batch, index }) => {
                let Some(lane) = self.lanes.get(lane) else {
                    return;
                };
                if lane.confirmed.try_send(Confirmed { batch, index }).is_err() {
                    // Cannot happen (see `confirmed`); were it lost, the sink's 30 s without
                    // progress would publish the batch again.
                    tracing::debug!(batch, index, "mqtt confirmation not handed to the sink");
                }
            }
            Some(Tag::Media { lane, id }) => {
                if let Some(lane) = self.lanes.get(lane) {
                    // A late ack of a media publish given up on is older than the one awaited.
                    lane.media_acked
                        .send_if_modified(|acked| std::mem::replace(acked, (*acked).max(id)) < id);
                }
            }
            Some(Tag::Control) | None => {}
        }
    }

    /// HA's birth goes to every account's link task, a config of an account's to its own;
    /// everything else to the command task of the account its topic names (the first
    /// account's when it names none), which acks what it does not know: an unacked QoS 1
    /// publish would hold a slot of the broker's inflight window for good. Never waits (see
    /// the module docs on backpressure).
    fn route(&mut self, mut p: Publish) {
        let homeassistant: Vec<usize> = (0..self.lanes.len())
            .filter(|&i| self.lanes[i].discovery.concerns(&p.topic))
            .collect();
        if !homeassistant.is_empty() {
            if p.payload.len() > HOMEASSISTANT_MAX {
                self.too_large(&p, None, "ignored");
                return;
            }
            for i in homeassistant {
                if self.lanes[i].homeassistant.try_send(p.clone()).is_err() {
                    self.count(Refused::QueueFull, Some(i));
                    tracing::debug!(
                        account = %self.lanes[i].account,
                        "home assistant publishes arrive faster than they are handled; one dropped"
                    );
                }
            }
            return;
        }
        let i = self.router.account(&p.topic).unwrap_or(0);
        let Some(max_bytes) = self.lanes.get(i).map(|l| l.max_bytes) else {
            return;
        };
        if p.payload.len() > max_bytes {
            self.too_large(
                &p,
                Some(i),
                "cut to send.max_bytes + 1 bytes; the bridge refuses it",
            );
            // A copy of the head only: a slice would keep the whole payload alive.
            p.payload = bytes::Bytes::copy_from_slice(&p.payload[..max_bytes + 1]);
        }
        if p.qos == QoS::AtMostOnce {
            let lane = &mut self.lanes[i];
            match lane.best_effort.try_send(p) {
                Ok(()) if lane.dropping > 0 => {
                    tracing::info!(
                        account = %lane.account,
                        dropped = std::mem::take(&mut lane.dropping),
                        "mqtt commands are taken again; QoS 0 commands were dropped meanwhile"
                    );
                }
                Ok(()) => {}
                Err(_) => {
                    if lane.dropping == 0 {
                        tracing::warn!(
                            account = %lane.account,
                            "mqtt QoS 0 commands arrive faster than the bridge takes them; \
                             dropping them (counted) until it catches up; publish commands \
                             with QoS 1 to have them kept"
                        );
                    }
                    lane.dropping += 1;
                    self.count(Refused::QueueFull, Some(i));
                }
            }
        } else {
            self.lanes[i].held.push_back(p);
            self.release_held();
        }
    }

    /// Moves each account's held QoS 1 and 2 commands into its `acked`, in order, while it
    /// has room.
    fn release_held(&mut self) {
        for lane in &mut self.lanes {
            while let Some(p) = lane.held.pop_front() {
                match lane.acked.try_send(p) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(p)) => {
                        lane.held.push_front(p);
                        break;
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => {
                        lane.held.clear();
                        break;
                    }
                }
            }
        }
    }

    /// A publish over its bound: logged once (then at debug level), counted.
    fn too_large(&mut self, p: &Publish, lane: Option<usize>, what: &str) {
        self.count(Refused::TooLarge, lane);
        if std::mem::replace(&mut self.warned_large, true) {
            tracing::debug!(topic = %p.topic, bytes = p.payload.len(), "oversized mqtt publish {what}");
        } else {
            tracing::warn!(topic = %p.topic, bytes = p.payload.len(), "oversized mqtt publish {what}; later ones are logged at debug level");
        }
    }

    /// Counts a refused publish, in `/metrics` (under the account of `lane`, when it is one
    /// account's) and in the link state (without waking anyone: it is read on demand).
    fn count(&self, why: Refused, lane: Option<usize>) {
        self.state.send_if_modified(|s| {
            match why {
                Refused::QueueFull => s.dropped += 1,
                Refused::TooLarge => s.too_large += 1,
            }
            false
        });
        let account = lane
            .and_then(|i| self.lanes.get(i))
            .map(|l| Arc::from(l.account.as_str()));
        crate::metrics::within(account, || {
            crate::metrics::mqtt_refused(match why {
                Refused::QueueFull => "queue_full",
                Refused::TooLarge => "too_large",
            })
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
