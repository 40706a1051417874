//! The NATS link (DESIGN.md "Topics and subjects"): events out, send commands and requests in.
//!
//! With `<p>` = `nats.subject_prefix` and `<a>` = `account`:
//!
//! | subject | direction | payload |
//! |---|---|---|
//! | `<p>.<a>.message` | out | message events |
//! | `<p>.<a>.event` | out | login, logout, contacts, error events |
//! | `<p>.<a>.send.result` | out | every send result |
//! | `<p>.<a>.state` | out, on change | the session state `{"state","since","reason"}` |
//! | `<p>.<a>.qr` | out, on change | `{"url","png_base64","expires_at"}`, empty once logged in |
//! | `<p>.<a>.send` | in, request-reply | a send command; the reply is its result |
//! | `<p>.<a>.relogin` | in | any payload requests a new login |
//! | `<p>.<a>.logout` | in | any payload ends the session at WeChat, forgets it and logs in afresh |
//! | `<p>.<a>.state.get` | request | answers the current session state (same JSON as `.state`) |
//! | `<p>.<a>.qr.get` | request | answers the current QR JSON, or an empty payload when none |
//!
//! `.send`, `.relogin` and `.logout` are subscribed in the queue group `wxbridge`, so a
//! second instance started by mistake does not act on a command twice.
//!
//! **Several accounts.** One client serves every account (`prepare` takes the account views,
//! `start` one [`Control`] per account and answers one sink per account): each account has
//! its own subjects under `<p>.<a>`, its handlers routed to its own control, and its own sink
//! delivering from its own spool. A slow account never holds up another's subjects: each
//! subscription has its own task.
//!
//! **Delivery guarantee.** Each spooled entry is published in spool order and counts as
//! delivered only when the server has it:
//! - core NATS (`jetstream: false`): the batch is published, then flushed; it counts only after
//!   the flush completed on the same connection it was written to. A failed flush or a
//!   reconnect in between fails the whole batch (`delivered: 0`), so it is sent again:
//!   duplicates are possible, gaps are not. Past the socket this is best effort (core NATS keeps
//!   nothing for subscribers that are away).
//! - JetStream (`jetstream: true`): messages and events are published to the stream with
//!   `Nats-Msg-Id` = `<account>:<id>`, pipelined over the batch; the acks are awaited in order
//!   and the leading acked entries count. A redelivery inside the stream's duplicate window
//!   (two minutes by default) is dropped by the server.
//! - Results always go by core publish (to `.send.result` and to the request's reply subject)
//!   and count after the flush, in both modes: they are not part of the stream.
//!
//! No step of a batch waits more than [`STALL`] without progress. While the link is down
//! every delivery fails at once and the spool keeps the entries. An entry the client refuses
//! for good (larger than the server's `max_payload`) is logged as an error and skipped, since
//! retrying it would stop the sink for ever.
//!
//! Send commands are handed to the bridge one at a time, in arrival order: the next is taken
//! once the bridge accepted the previous one (see [`crate::sinks::IncomingCommand::accepted`]).
//!
//! **The stream.** With JetStream on, the stream `nats.stream` is looked up once connected
//! (and again after every reconnect) and created if missing, with exactly the subjects
//! `<p>.<a>.message` and `<p>.<a>.event` of every account, file storage and the server's
//! default limits, so it never captures `.send` requests (a stream on `.send` would answer
//! requesters with its own acks). An existing stream is never changed: when its subjects
//! differ it is logged as an error naming the expected and the found subjects, and delivery
//! goes on with whatever stream the server routes the subjects to (an account added to the
//! config later needs its two subjects added to the stream by hand, or the stream deleted to
//! have it recreated). The configuration sent is minimal so that nats-server 2.9 accepts it.
//!
//! **Media.** With JetStream on and media downloaded, the files a message event refers to go
//! into the object store `nats.media_bucket` (created if missing; object name = sha256)
//! before the event is published; without JetStream nothing extra happens (`media.rs`).
//!
//! **Reconnects.** The client connects in the background (`start` never fails because the
//! server is down) and reconnects for ever, restoring its subscriptions by itself. The first
//! attempt is immediate; attempt `n` then waits a random time between `d` and `2d`, capped at
//! `retry.max`, with `d` = `retry.initial` doubled `n - 1` times; the count starts over after
//! each successful connect. Connection changes are logged once each (lost, reconnected), not
//! per attempt.
mod connect;
mod handlers;
mod media;
mod sink;
mod stream;
mod subjects;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio_util::task::TaskTracker;

use crate::config::{Config, ConfigError, NatsConfig};
use crate::sinks::{Control, Started};

pub use sink::NatsSink;
pub use subjects::Subjects;

/// The longest any step of a delivery (a publish, a flush, an ack, the stream check) may take
/// before the batch fails.
pub const STALL: Duration = Duration::from_secs(30);

/// The queue group of the command subscriptions.
pub const QUEUE_GROUP: &str = "wxbridge";

/// A `nats` section that cannot be used; each message names the key and what to do.
#[derive(Debug, Error)]
pub enum NatsError {
    /// `nats.url` is not a NATS server address.
    #[error(
        "nats.url `{url}` is not a usable NATS address ({reason}); write it as nats://host:port, \
         or tls://host:port for TLS"
    )]
    Url {
        /// The URL without credentials.
        url: String,
        /// Why it was refused.
        reason: String,
    },
    /// The prefix and account do not make valid subjects.
    #[error(
        "nats.subject_prefix `{prefix}` with account `{account}` does not make valid NATS \
         subjects; use dot-separated tokens without spaces, `*` or `>`, and no empty token"
    )]
    Subject {
        /// `nats.subject_prefix`.
        prefix: String,
        /// The account name.
        account: String,
    },
    /// `nats.stream` is not a valid stream name.
    #[error(
        "nats.stream `{name}` is not a valid JetStream stream name; use letters, digits, `-` \
         and `_` (no dots, spaces, `*` or `>`)"
    )]
    StreamName {
        /// `nats.stream`.
        name: String,
    },
    /// `nats.credentials_file` cannot be read or parsed.
    #[error(
        "cannot use nats.credentials_file `{path}`: {source}; point it at a NATS .creds file \
         (user JWT and NKey seed) that this user can read"
    )]
    Credentials {
        /// The configured path.
        path: PathBuf,
        /// The read or parse error.
        #[source]
        source: std::io::Error,
    },
    /// `nats.ca_file` cannot be read or holds no certificate.
    #[error(
        "cannot use nats.ca_file `{path}`: {reason}; point it at a PEM file with at least one \
         CA certificate that this user can read"
    )]
    CaFile {
        /// The configured path.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The client could not be set up (not a connection failure: those are retried).
    #[error("cannot set up the NATS client: {0}")]
    Client(String),
}

impl From<NatsError> for ConfigError {
    fn from(e: NatsError) -> Self {
        ConfigError::Sink(Box::new(e))
    }
}

/// The `nats` section checked for what the loader does not check: the subjects the prefix and
/// each account make, the stream name (with JetStream on), the server address, and the
/// credentials and CA files, read and parsed now. `accounts` are the account views of
/// [`Config::accounts`]; one client serves them all. Ready to [`Prepared::start`].
pub fn prepare(config: &NatsConfig, accounts: &[Config]) -> Result<Prepared, ConfigError> {
    let subjects = accounts
        .iter()
        .map(|a| Subjects::new(&config.subject_prefix, &a.account))
        .collect::<Result<Vec<_>, _>>()?;
    if config.jetstream && !stream::is_valid_name(&config.stream) {
        return Err(NatsError::StreamName {
            name: config.stream.clone(),
        }
        .into());
    }
    let (options, addr) = connect::options(config)?;
    Ok(Prepared {
        options,
        addr,
        link: Arc::new(connect::LinkState::new(&config.url)),
        subjects,
        stream: config.jetstream.then(|| config.stream.clone()),
        media_bucket: config.media_bucket.clone(),
    })
}

/// A checked `nats` section: [`prepare`]'s answer.
pub struct Prepared {
    options: async_nats::ConnectOptions,
    addr: async_nats::ServerAddr,
    link: Arc<connect::LinkState>,
    /// Each account's subjects, in the order of the accounts given to [`prepare`].
    subjects: Vec<Subjects>,
    /// `nats.stream` when JetStream is on.
    stream: Option<String>,
    /// `nats.media_bucket` (the loader checked the name).
    media_bucket: String,
}

impl Prepared {
    /// Starts the link: connects in the background, subscribes each account's command and
    /// request subjects (routed to its [`Control`]; `controls` in the order of the accounts
    /// given to [`prepare`]) and starts publishing state and QR changes; the handler tasks,
    /// tracked on `tracker`, run until the controls' `shutdown` is cancelled. Answers one sink
    /// per account, in that order, all on the one connection. Fails only when the client
    /// refuses to be set up, never because the server is unreachable.
    pub async fn start(
        self,
        controls: Vec<Control>,
        tracker: &TaskTracker,
    ) -> Result<Vec<Started<NatsSink>>, NatsError> {
        let Prepared {
            options,
            addr,
            link,
            subjects,
            stream,
            media_bucket,
        } = self;
        if controls.len() != subjects.len() {
            return Err(NatsError::Client(format!(
                "{} accounts were prepared but {} started",
                subjects.len(),
                controls.len()
            )));
        }
        let Some(first) = controls.first() else {
            return Ok(Vec::new());
        };
        let (retry, shutdown) = (first.retry, first.shutdown.clone());
        let client = connect::connect(options, addr, retry, link.clone()).await?;
        let tasks = TaskTracker::new();
        for (subjects, control) in subjects.iter().zip(&controls) {
            handlers::spawn(&client, subjects, control, &tasks).await?;
        }
        // One stream for every account: its subjects are each account's message and event
        // subjects.
        let jetstream = stream.map(|name| {
            let target = stream::Target::new(client.clone(), &name, &subjects);
            tasks.spawn(stream::keep(target.clone(), link.clone(), shutdown));
            target
        });
        tasks.close();
        let waited = tasks.clone();
        tracker.spawn(async move { waited.wait().await });
        let sinks = subjects
            .into_iter()
            .zip(controls)
            .map(|(subjects, control)| {
                // With JetStream, each file an event refers to goes into the object store
                // first.
                let objects = jetstream.as_ref().map(|target| media::Objects {
                    store: control.media.store.clone(),
                    bucket: media_bucket.clone(),
                    context: target.context.clone(),
                    handle: None,
                });
                let sink = NatsSink {
                    client: client.clone(),
                    jetstream: jetstream.clone(),
                    subjects,
                    account: control.account,
                    link: link.clone(),
                    tasks: tasks.clone(),
                    objects,
                };
                Started {
                    sink,
                    health: link.health.subscribe(),
                }
            })
            .collect();
        Ok(sinks)
    }
}
