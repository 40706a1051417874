//! [`prepare`], [`Prepared::start`] and the [`MqttSink`] it starts: delivery of spooled
//! entries, each confirmed by its PUBACK (see the module docs for the guarantee).
use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, MqttOptions, Publish, QoS};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};
use tokio_util::task::TaskTracker;

use super::homeassistant::Discovery;
use super::link::{self, Batch, Confirmed, Connection, Gate, Item, LinkState, Publisher};
use super::media::Media;
use super::options::{self, MAX_PACKET};
use super::poller::{Lane, Poller};
use super::topics::{self, Router, Topics};
use super::tracker::{Tracker, Unwritten};
use crate::config::{Config, ConfigError, HomeAssistantConfig, MqttConfig};
use crate::sinks::{Control, DeliveryError, Link, Sink, Started};
use crate::spool::{Entry, Kind};

/// What is in flight fails when no entry of it is confirmed for this long (or when there is no
/// connection for this long before a batch starts), so delivery never hangs, also not through
/// a long outage of the broker.
const PROGRESS: Duration = Duration::from_secs(30);

/// Why the entries in flight are published again.
const SESSION_LOST: &str = "the mqtt broker started a new session; unconfirmed publishes were lost";

/// Capacity of rumqttc's request channel. While the broker is away it fills up and the link
/// task waits; nothing is lost, because the spool holds every entry until it is confirmed.
const REQUESTS: usize = 64;

/// A batch handed to the link whose entries are not all confirmed yet.
struct InFlight {
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
pub struct MqttSink {
    topics: Arc<Topics>,
    qos: QoS,
    batches: mpsc::Sender<Batch>,
    confirmed: mpsc::Receiver<Confirmed>,
    link: watch::Receiver<LinkState>,
    next_batch: u64,
    stopped: CancellationToken,
    /// Batches in flight, oldest first.
    flight: VecDeque<InFlight>,
    /// The broker session (its count of fresh sessions) the batches in flight went out on.
    session: u64,
    /// When the batches in flight fail for want of any confirmation.
    deadline: Instant,
    /// The media store and what to publish of it, when anything is.
    media: Option<Media>,
    /// Set by the link task while a file goes out: the deadline waits then.
    media_busy: Arc<AtomicBool>,
}

/// The `mqtt` section checked and turned into client options (the TLS files read now), ready
/// to [`Prepared::start`], for every account in `accounts` (the views of
/// [`crate::config::Config::accounts`]) over one connection. `homeassistant` says what to
/// announce to Home Assistant (and what to retract) for each; each account's `send.max_bytes`
/// bounds its commands: one is kept only up to one byte past it (see the module docs). The
/// last will is the account's status with one account, the process's (`<base>/status`) with
/// several (see the module docs).
pub fn prepare(
    config: &MqttConfig,
    homeassistant: &HomeAssistantConfig,
    accounts: &[Config],
) -> Result<Prepared, ConfigError> {
    let process_status = (accounts.len() > 1).then(|| topics::process_status(&config.base_topic));
    let accounts: Vec<Account> = accounts
        .iter()
        .map(|account| {
            let topics = Arc::new(Topics::new(&config.base_topic, &account.account));
            Account {
                discovery: Arc::new(Discovery::new(
                    homeassistant,
                    &topics,
                    &account.account,
                    process_status.as_deref(),
                )),
                topics,
                name: account.account.clone(),
                max_bytes: account.send.max_bytes,
            }
        })
        .collect();
    let will = match (&process_status, accounts.first()) {
        (Some(process), _) => process.clone(),
        (None, Some(only)) => only.topics.status.clone(),
        // No account: nothing will ever connect (see `start`).
        (None, None) => topics::process_status(&config.base_topic),
    };
    let options = options::build(config, &will)?;
    Ok(Prepared {
        router: Router::new(&config.base_topic, accounts.iter().map(|a| a.name.as_str())),
        qos: options::qos(config.qos),
        options,
        accounts,
        process_status,
        media_bytes: config.media,
    })
}

/// One account of a [`Prepared`] link.
struct Account {
    name: String,
    topics: Arc<Topics>,
    discovery: Arc<Discovery>,
    /// Its `send.max_bytes`.
    max_bytes: usize,
}

/// A checked `mqtt` section: [`prepare`]'s answer.
pub struct Prepared {
    options: MqttOptions,
    accounts: Vec<Account>,
    router: Router,
    /// `<base>/status` with several accounts.
    process_status: Option<String>,
    qos: QoS,
    /// `mqtt.media`.
    media_bytes: bool,
}

impl Prepared {
    /// Starts the link (inside a Tokio runtime): spawns its tasks, tracked on `tracker`, and
    /// answers one sink per account, in the order of `controls`, which are the accounts'
    /// controls in the order [`prepare`] was given the accounts. The connection is made in
    /// the background and retried on the first control's `retry` schedule for as long as it
    /// takes, so a broker that is down at start only delays delivery. Each account's part runs
    /// until its `control.shutdown`, then publishes its `offline`; once every account's has,
    /// the link disconnects ([`MqttSink::stopped`] tells when that is done).
    pub fn start(self, controls: Vec<Control>, tracker: &TaskTracker) -> Vec<Started<MqttSink>> {
        if controls.len() != self.accounts.len() {
            tracing::error!(
                accounts = self.accounts.len(),
                controls = controls.len(),
                "the mqtt link got a control per account it was not prepared for; the extra \
                 ones have no sink"
            );
        }
        let sinks = spawn(self, controls);
        if let Some(first) = sinks.first() {
            tracker.spawn(first.stopped());
        }
        sinks
            .into_iter()
            .map(|sink| {
                let health = link_health(sink.link(), tracker);
                Started { sink, health }
            })
            .collect()
    }
}

/// One account's ends of the channels between its sink, its link task and the poller.
struct Ends {
    lane: Lane,
    sink: MqttSink,
    publisher: Publisher,
    batches: mpsc::Receiver<Batch>,
    homeassistant: mpsc::Receiver<Publish>,
    acked: mpsc::Receiver<Publish>,
    best_effort: mpsc::Receiver<Publish>,
}

/// Spawns the link's tasks and answers the sinks.
fn spawn(prepared: Prepared, controls: Vec<Control>) -> Vec<MqttSink> {
    let Prepared {
        options,
        accounts,
        router,
        process_status,
        qos,
        media_bytes,
    } = prepared;
    let retry = match controls.first() {
        Some(control) => control.retry,
        None => return Vec::new(),
    };
    let (client, mut eventloop) = AsyncClient::new(options, REQUESTS);
    eventloop.set_network_options(options::network());
    let unwritten = Unwritten::default();
    let gate = Arc::new(Gate {
        client: client.clone(),
        unwritten: unwritten.clone(),
        turn: tokio::sync::Mutex::new(()),
    });
    let (state_tx, state_rx) = watch::channel(LinkState::default());
    let stopped = CancellationToken::new();

    let shutdowns: Vec<CancellationToken> = controls.iter().map(|c| c.shutdown.clone()).collect();
    let ends: Vec<Ends> = accounts
        .into_iter()
        .zip(controls)
        .enumerate()
        .map(|(lane, (account, control))| {
            if account.name != control.account {
                tracing::error!(
                    prepared = %account.name,
                    control = %control.account,
                    "the mqtt link got the controls in another order than the accounts"
                );
            }
            account_ends(
                lane,
                account,
                control,
                &gate,
                &state_rx,
                &stopped,
                qos,
                media_bytes,
            )
        })
        .collect();

    let stop_poller = CancellationToken::new();
    let closing = CancellationToken::new();
    let mut lanes = Vec::with_capacity(ends.len());
    let mut sinks = Vec::with_capacity(ends.len());
    let mut publishers = Vec::with_capacity(ends.len());
    for end in ends {
        lanes.push(end.lane);
        sinks.push(end.sink);
        let publisher = end.publisher;
        // Each account's tasks record their metrics under its name.
        let account = publisher.control.account.clone();
        tokio::spawn(crate::metrics::scope(
            &account,
            link::run_commands(
                client.clone(),
                publisher.topics.clone(),
                publisher.discovery.clone(),
                publisher.control.clone(),
                end.acked,
                end.best_effort,
            ),
        ));
        let link_state = state_rx.clone();
        publishers.push(tokio::spawn(crate::metrics::scope(
            &account,
            publisher.run(end.batches, end.homeassistant, link_state),
        )));
    }
    let poller = Poller {
        lanes,
        router,
        tracker: Tracker::new(unwritten),
        state: state_tx,
        warned_large: false,
        retry,
        shutdown: closing.clone(),
        stop: stop_poller.clone(),
    };
    let poller = tokio::spawn(poller.run(eventloop));
    let connection = Connection {
        gate,
        process_status,
        shutdowns,
        closing,
        publishers,
        poller,
        stop_poller,
        done: stopped,
    };
    tokio::spawn(connection.run(state_rx));
    sinks
}

/// The channels of one account, its sink, its lane in the poller and its link task.
#[allow(clippy::too_many_arguments)]
fn account_ends(
    lane: usize,
    account: Account,
    control: Control,
    gate: &Arc<Gate>,
    state: &watch::Receiver<LinkState>,
    stopped: &CancellationToken,
    qos: QoS,
    media_bytes: bool,
) -> Ends {
    let Account {
        name,
        topics,
        discovery,
        max_bytes,
    } = account;
    // With `mqtt.media` each file an event refers to goes to `<base>/<account>/media/<sha256>`
    // before it; with Home Assistant discovery, the last inbound image goes to its entity
    // (`media.rs`). With neither, events are not even looked at.
    let media = Some(Media {
        store: control.media.store.clone(),
        bytes: media_bytes,
        last_image: discovery.enabled(),
    })
    .filter(|m| m.bytes || m.last_image);
    let media_busy = Arc::new(AtomicBool::new(false));
    let (media_acked_tx, media_acked_rx) = watch::channel(0);
    // Two windows: stale confirmations of batches given up on may still be on their way.
    let (confirmed_tx, confirmed_rx) = mpsc::channel(2 * crate::sinks::WINDOW);
    let (acked_tx, acked_rx) = mpsc::channel(link::QUEUE);
    let (best_effort_tx, best_effort_rx) = mpsc::channel(link::QUEUE);
    let (discovery_tx, discovery_rx) = mpsc::channel(link::QUEUE);
    let (batches_tx, batches_rx) = mpsc::channel(1);
    Ends {
        lane: Lane {
            account: name,
            discovery: discovery.clone(),
            confirmed: confirmed_tx,
            media_acked: media_acked_tx,
            acked: acked_tx,
            held: Default::default(),
            best_effort: best_effort_tx,
            homeassistant: discovery_tx,
            max_bytes,
            dropping: 0,
        },
        sink: MqttSink {
            topics: topics.clone(),
            qos,
            batches: batches_tx,
            confirmed: confirmed_rx,
            link: state.clone(),
            next_batch: 0,
            stopped: stopped.clone(),
            flight: VecDeque::new(),
            session: 0,
            deadline: Instant::now(),
            media,
            media_busy: media_busy.clone(),
        },
        publisher: Publisher {
            gate: gate.clone(),
            lane,
            topics,
            discovery,
            control,
            media_acked: media_acked_rx,
            media_ids: Default::default(),
            media_busy,
        },
        batches: batches_rx,
        homeassistant: discovery_rx,
        acked: acked_rx,
        best_effort: best_effort_rx,
    }
}

/// The link's state as the sink-neutral [`Link`], for as long as the link runs.
fn link_health(
    mut state: watch::Receiver<LinkState>,
    tracker: &TaskTracker,
) -> watch::Receiver<Link> {
    let up = |s: &LinkState| if s.connected { Link::Up } else { Link::Down };
    let (tx, rx) = watch::channel(up(&state.borrow_and_update()));
    tracker.spawn(async move {
        // Ends when the link's poller drops its side, or nobody reads health any more.
        while state.changed().await.is_ok() {
            let now = up(&state.borrow_and_update());
            tx.send_if_modified(|link| std::mem::replace(link, now) != now);
            if tx.is_closed() {
                break;
            }
        }
    });
    rx
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
