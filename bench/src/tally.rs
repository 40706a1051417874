//! What a receiver saw in one run: distinct message ids with the time of the last new one,
//! whether the bridge said it is online, and (for the latency phase) how long each tagged
//! message took from injection to arrival.
use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// Marks a message body for the latency phase: `lat#<index>#`.
pub const LATENCY_TAG: &str = "lat#";

/// When each tagged message was injected, by index.
#[derive(Debug, Default)]
pub struct Stamps(Mutex<Vec<Option<Instant>>>);

impl Stamps {
    /// Room for `n` stamps.
    pub fn new(n: usize) -> Arc<Stamps> {
        Arc::new(Stamps(Mutex::new(vec![None; n])))
    }

    /// Notes that message `i` is injected now.
    pub fn stamp(&self, i: usize) {
        if let Some(slot) = lock(&self.0).get_mut(i) {
            *slot = Some(Instant::now());
        }
    }

    fn get(&self, i: usize) -> Option<Instant> {
        lock(&self.0).get(i).copied().flatten()
    }
}

#[derive(Debug, Default)]
struct Seen {
    ids: HashSet<String>,
    captured: Vec<Vec<u8>>,
    latencies: Vec<Duration>,
    first: Option<Instant>,
    last: Option<Instant>,
}

/// Counts the message events of one run. Receivers call [`Tally::record`] with each payload;
/// the run waits on [`Tally::wait`].
#[derive(Debug)]
pub struct Tally {
    expected: usize,
    capture: bool,
    stamps: Option<Arc<Stamps>>,
    seen: Mutex<Seen>,
    count: watch::Sender<usize>,
    online: watch::Sender<bool>,
}

/// What a run's receiver got.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Distinct message ids received.
    pub received: usize,
    /// When the first of them arrived.
    pub first: Option<Instant>,
    /// When the last new one arrived.
    pub last: Option<Instant>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Tally {
    /// A tally waiting for `expected` distinct messages.
    pub fn new(expected: usize) -> Arc<Tally> {
        Tally::build(expected, false, None)
    }

    /// Like [`Tally::new`], keeping every new payload (to replay them with a raw client).
    pub fn capturing(expected: usize) -> Arc<Tally> {
        Tally::build(expected, true, None)
    }

    /// Like [`Tally::new`], timing each message tagged with [`LATENCY_TAG`] against `stamps`
    /// (and keeping the payloads when `capture` is set).
    pub fn timing(expected: usize, stamps: Arc<Stamps>, capture: bool) -> Arc<Tally> {
        Tally::build(expected, capture, Some(stamps))
    }

    fn build(expected: usize, capture: bool, stamps: Option<Arc<Stamps>>) -> Arc<Tally> {
        Arc::new(Tally {
            expected,
            capture,
            stamps,
            seen: Mutex::new(Seen::default()),
            count: watch::channel(0).0,
            online: watch::channel(false).0,
        })
    }

    /// How many distinct messages this tally waits for.
    pub fn expected(&self) -> usize {
        self.expected
    }

    /// Records one message event payload (the event JSON as published).
    pub fn record(&self, payload: &[u8]) {
        let now = Instant::now();
        let Some(id) = message_id(payload) else {
            return;
        };
        let mut seen = lock(&self.seen);
        if !seen.ids.insert(id.to_owned()) {
            return;
        }
        seen.first.get_or_insert(now);
        seen.last = Some(now);
        if self.capture {
            seen.captured.push(payload.to_vec());
        }
        if let Some(stamps) = &self.stamps {
            if let Some(sent) = latency_index(payload).and_then(|i| stamps.get(i)) {
                seen.latencies.push(now.saturating_duration_since(sent));
            }
        }
        let n = seen.ids.len();
        drop(seen);
        self.count.send_replace(n);
    }

    /// Notes that the bridge reported `online` (or, for a webhook, sent its login event).
    pub fn mark_online(&self) {
        self.online.send_replace(true);
    }

    /// Waits until the bridge is online.
    pub async fn wait_online(&self, limit: Duration) -> bool {
        let mut rx = self.online.subscribe();
        tokio::time::timeout(limit, rx.wait_for(|on| *on))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Waits until every expected message arrived or `limit` passed.
    pub async fn wait(&self, limit: Duration) -> Outcome {
        self.wait_for(self.expected, limit).await
    }

    /// Waits until `count` distinct messages arrived or `limit` passed.
    pub async fn wait_for(&self, count: usize, limit: Duration) -> Outcome {
        let mut rx = self.count.subscribe();
        let _ = tokio::time::timeout(limit, rx.wait_for(|n| *n >= count)).await;
        self.outcome()
    }

    /// What arrived so far.
    pub fn outcome(&self) -> Outcome {
        let seen = lock(&self.seen);
        Outcome {
            received: seen.ids.len(),
            first: seen.first,
            last: seen.last,
        }
    }

    /// The captured payloads, in arrival order.
    pub fn take_captured(&self) -> Vec<Vec<u8>> {
        std::mem::take(&mut lock(&self.seen).captured)
    }

    /// The measured latencies, in arrival order.
    pub fn latencies(&self) -> Vec<Duration> {
        lock(&self.seen).latencies.clone()
    }
}

/// The top-level `id` of a message event. Events serialize `kind` first and `id` second, so
/// the first `"id":"` is the event's own (chat and sender ids come later).
pub fn message_id(payload: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(payload).ok()?;
    let start = text.find("\"id\":\"")? + 6;
    let len = text[start..].find('"')?;
    Some(&text[start..start + len])
}

/// The index of a message tagged with [`LATENCY_TAG`].
pub fn latency_index(payload: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(payload).ok()?;
    let start = text.find(LATENCY_TAG)? + LATENCY_TAG.len();
    let len = text[start..].find('#')?;
    text[start..start + len].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_distinct_ids_and_times_tagged_messages() {
        let stamps = Stamps::new(2);
        stamps.stamp(1);
        let t = Tally::timing(2, stamps, false);
        let a = br#"{"kind":"message","id":"7","chat":{"id":"@x"},"text":"lat#1# hi"}"#;
        let b = br#"{"kind":"message","id":"8","text":"no tag"}"#;
        t.record(a);
        t.record(a);
        t.record(b);
        t.record(b"not json");
        assert_eq!(t.outcome().received, 2);
        assert_eq!(t.latencies().len(), 1);
        assert_eq!(message_id(a), Some("7"));
    }
}
