//! Starting the link: [`prepare`] checks the `mqtt` section for every account, and
//! [`Prepared::start`] opens the one connection and spawns its tasks (`link.rs`, `poller.rs`),
//! answering one [`MqttSink`] per account.
use std::collections::VecDeque;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use rumqttc::{AsyncClient, MqttOptions, Publish, QoS};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::homeassistant::Discovery;
use super::link::{self, Batch, Connection, Gate, LinkState, Publisher};
use super::media::Media;
use super::options;
use super::poller::{Lane, Poller};
use super::sink::MqttSink;
use super::topics::{self, Router, Topics};
use super::tracker::{Tracker, Unwritten};
use crate::config::{Config, ConfigError, HomeAssistantConfig, MqttConfig};
use crate::sinks::{Control, Link, Started};

/// Capacity of rumqttc's request channel. While the broker is away it fills up and the link
/// task waits; nothing is lost, because the spool holds every entry until it is confirmed.
const REQUESTS: usize = 64;

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
