//! What the fault tests observe at each sink: a [`Feed`] of the message events one sink
//! received, tallied as [`Arrivals`] (gaps, order, duplicates), from an MQTT subscriber with a
//! persistent session, a durable JetStream consumer, or a webhook receiver ([`Hook`]) whose
//! answer the test switches between 200, 500 and hanging past the timeout.
use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use axum::extract::State;
use axum::http::StatusCode;
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::schema::assert_valid;
use crate::support::WAIT;
use crate::watch::Watcher;

/// The longest a scenario waits for a whole burst to arrive after its last fault.
const COMPLETE: Duration = Duration::from_secs(60);

/// What one sink received: the ids in order of first arrival, each id's first payload, how
/// many repeats came and of which ids.
#[derive(Default)]
pub(super) struct Arrivals {
    order: Vec<String>,
    first: HashMap<String, Bytes>,
    duplicates: usize,
    /// Repeats per id.
    repeated: HashMap<String, usize>,
}

impl Arrivals {
    fn add(&mut self, sink: &str, payload: Bytes) {
        let event: Value = serde_json::from_slice(&payload)
            .unwrap_or_else(|e| panic!("{sink}: an event that is not JSON ({e})"));
        let id = event["id"]
            .as_str()
            .expect("a message event has an id")
            .to_owned();
        match self.first.get(&id) {
            Some(seen) => {
                assert_eq!(
                    seen, &payload,
                    "{sink}: the repeat of {id} is not the identical event"
                );
                self.duplicates += 1;
                *self.repeated.entry(id).or_default() += 1;
            }
            None => {
                assert_valid(&event);
                self.first.insert(id.clone(), payload);
                self.order.push(id);
            }
        }
    }

    pub(super) fn distinct(&self) -> usize {
        self.order.len()
    }

    fn has_all(&self, injected: &[String]) -> bool {
        injected.iter().all(|id| self.first.contains_key(id))
    }

    /// No gaps and spool order: the first arrivals are exactly the injected ids, in order.
    fn check(&self, sink: &str, injected: &[String]) {
        let missing: Vec<&String> = injected
            .iter()
            .filter(|id| !self.first.contains_key(*id))
            .collect();
        assert!(
            missing.is_empty(),
            "{sink}: {} of {} messages never arrived: {:?}",
            missing.len(),
            injected.len(),
            &missing[..missing.len().min(5)]
        );
        if let Some(at) = (0..self.order.len()).find(|&i| injected.get(i) != Some(&self.order[i])) {
            panic!(
                "{sink}: out of spool order at arrival {at}: got {}, expected {:?}",
                self.order[at],
                injected.get(at)
            );
        }
        assert_eq!(
            self.order.len(),
            injected.len(),
            "{sink}: nothing else arrived"
        );
    }
}

/// Event payloads one sink received, in arrival order, and their tally.
pub(super) struct Feed {
    pub(super) sink: &'static str,
    rx: mpsc::UnboundedReceiver<Bytes>,
    pub(super) arrivals: Arrivals,
}

impl Feed {
    fn new(sink: &'static str, rx: mpsc::UnboundedReceiver<Bytes>) -> Feed {
        Feed {
            sink,
            rx,
            arrivals: Arrivals::default(),
        }
    }

    /// Takes arrivals until `done` holds; panics after `limit`.
    async fn until(&mut self, what: &str, limit: Duration, done: impl Fn(&Arrivals) -> bool) {
        let deadline = Instant::now() + limit;
        while !done(&self.arrivals) {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(p)) => self.arrivals.add(self.sink, p),
                Ok(None) => panic!("{}: the feed ended", self.sink),
                Err(_) => panic!(
                    "{}: timed out waiting for {what}; {} distinct messages arrived",
                    self.sink,
                    self.arrivals.distinct()
                ),
            }
        }
    }

    /// Takes what has arrived so far, without waiting.
    pub(super) fn take_ready(&mut self) {
        while let Ok(p) = self.rx.try_recv() {
            self.arrivals.add(self.sink, p);
        }
    }

    /// Waits until at least `n` distinct messages arrived.
    pub(super) async fn at_least(&mut self, n: usize) {
        self.until(&format!("{n} messages"), WAIT, |a| a.distinct() >= n)
            .await;
    }

    /// Waits for every injected message and a quiet moment for late repeats, checks gaps and
    /// order, prints the duplicates and answers how many ids were repeated.
    pub(super) async fn complete(&mut self, injected: &[String]) -> usize {
        let deadline = Instant::now() + COMPLETE;
        while !self.arrivals.has_all(injected) {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(p)) => self.arrivals.add(self.sink, p),
                // `check` names what is missing.
                Ok(None) | Err(_) => break,
            }
        }
        while let Ok(Some(p)) =
            tokio::time::timeout(Duration::from_millis(500), self.rx.recv()).await
        {
            self.arrivals.add(self.sink, p);
        }
        self.arrivals.check(self.sink, injected);
        eprintln!(
            "{}: {} messages in order, {} duplicates (of {} ids, at most {} repeats of one)",
            self.sink,
            injected.len(),
            self.arrivals.duplicates,
            self.arrivals.repeated.len(),
            self.arrivals.repeated.values().max().unwrap_or(&0)
        );
        self.arrivals.repeated.len()
    }
}

/// Hands what `w` receives to a feed (it is subscribed to the message topic only).
pub(super) fn mqtt_feed(mut w: Watcher, sink: &'static str) -> Feed {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while !tx.is_closed() {
            // Bounded here, so the watcher's own 20 s limit never panics the task.
            if let Ok(m) = tokio::time::timeout(Duration::from_secs(1), w.next()).await {
                let _ = tx.send(m.payload);
            }
        }
    });
    Feed::new(sink, rx)
}

/// A durable JetStream consumer on the message subject, acking what it reads and reading on
/// across server restarts.
pub(super) async fn jetstream_feed(nc: async_nats::Client) -> Feed {
    let js = jetstream::new(nc);
    // The bridge creates the stream when it connects.
    let stream = tokio::time::timeout(WAIT, async {
        loop {
            match js.get_stream("WECHAT").await {
                Ok(s) => return s,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    })
    .await
    .expect("the bridge created the stream");
    let consumer: jetstream::consumer::PullConsumer = stream
        .create_consumer(jetstream::consumer::pull::Config {
            durable_name: Some("faults".to_owned()),
            filter_subject: "wechat.test.message".to_owned(),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while !tx.is_closed() {
            let mut messages = match consumer.messages().await {
                Ok(m) => m,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            while let Some(m) = messages.next().await {
                // Errors (missed heartbeats while the server is down) are transient: the
                // stream keeps pulling once the connection is back.
                if let Ok(m) = m {
                    let _ = m.ack().await;
                    let _ = tx.send(m.payload.clone());
                }
            }
        }
    });
    Feed::new("jetstream", rx)
}

/// How the webhook receiver answers.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum Answer {
    Ok = 0,
    Error = 1,
    /// Longer than the webhook's `timeout`, then 504 (nobody is listening by then).
    Hang = 2,
}

/// How long a hanging receiver takes; the webhook's timeout in these tests is 1 s.
const HANG: Duration = Duration::from_secs(3);

/// A webhook receiver whose answer the test switches; the bodies it answered 200 to go to its
/// feed, in order.
#[derive(Clone)]
pub(super) struct Hook {
    answer: Arc<AtomicU8>,
    tx: mpsc::UnboundedSender<Bytes>,
    pub(super) errors: Arc<AtomicUsize>,
    pub(super) hangs: Arc<AtomicUsize>,
}

impl Hook {
    /// Starts the receiver: its URL and the feed of what it accepted.
    pub(super) async fn start() -> (Hook, String, Feed) {
        let (tx, rx) = mpsc::unbounded_channel();
        let hook = Hook {
            answer: Arc::new(AtomicU8::new(Answer::Ok as u8)),
            tx,
            errors: Arc::default(),
            hangs: Arc::default(),
        };
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(hook.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (hook, url, Feed::new("webhook", rx))
    }

    pub(super) fn set(&self, answer: Answer) {
        self.answer.store(answer as u8, Ordering::SeqCst);
    }

    pub(super) fn config(url: &str) -> String {
        format!("webhooks:\n  - url: {url}\n    events: [message]\n    timeout: 1s\n")
    }
}

async fn receive(State(hook): State<Hook>, body: Bytes) -> StatusCode {
    match hook.answer.load(Ordering::SeqCst) {
        a if a == Answer::Ok as u8 => {
            let _ = hook.tx.send(body);
            StatusCode::OK
        }
        a if a == Answer::Error as u8 => {
            hook.errors.fetch_add(1, Ordering::SeqCst);
            StatusCode::INTERNAL_SERVER_ERROR
        }
        _ => {
            hook.hangs.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(HANG).await;
            StatusCode::GATEWAY_TIMEOUT
        }
    }
}
