//! Judging leases and heartbeats alive or dead without trusting other nodes' clocks: by the
//! local time at which this node first saw each key's current revision ([`Observer`]).
use std::collections::HashMap;
use std::time::Duration;

use async_nats::jetstream::kv::{self, Operation, Store};
use futures_util::StreamExt;
use tokio::time::Instant;

use super::lease::{LeaseError, LeaseValue};

/// What an observer makes of a key at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sight {
    /// Nobody holds it: never written (`revision` None) or released.
    Free {
        /// The release's revision, if any.
        revision: Option<u64>,
    },
    /// Held, and its revision changed less than its `ttl` ago by this node's clock.
    Alive {
        /// The holder.
        node: String,
        /// The revision seen.
        revision: u64,
    },
    /// Held, but its revision has not changed for its `ttl` by this node's clock.
    Dead {
        /// The last holder.
        node: String,
        /// The revision to take it over with.
        revision: u64,
    },
}

#[derive(Debug)]
struct Seen {
    revision: u64,
    /// The local time this revision was first seen.
    since: Instant,
    /// None when the key was deleted or purged.
    value: Option<LeaseValue>,
}

/// Judges keys alive or dead without trusting other nodes' clocks: it notes the local
/// monotonic time it first saw each key's current revision, and calls a holder dead once that
/// revision is older than the holder's `ttl` by this clock.
#[derive(Debug)]
pub struct Observer {
    seen: HashMap<String, Seen>,
    /// The `ttl` assumed for a value that cannot be read (written by something else).
    fallback_ttl: Duration,
}

impl Observer {
    /// An observer that has seen nothing yet; `fallback_ttl` counts for values it cannot parse.
    pub fn new(fallback_ttl: Duration) -> Observer {
        Observer {
            seen: HashMap::new(),
            fallback_ttl,
        }
    }

    /// Notes what the bucket answered for `key` at `now`: its revision and value, or nothing.
    pub fn note(&mut self, key: &str, entry: Option<&kv::Entry>, now: Instant) {
        let Some(entry) = entry else {
            self.seen.remove(key);
            return;
        };
        if self.seen.get(key).map(|s| s.revision) == Some(entry.revision) {
            return;
        }
        let value = match entry.operation {
            Operation::Put => Some(
                serde_json::from_slice::<LeaseValue>(&entry.value).unwrap_or_else(|_| LeaseValue {
                    node: String::new(),
                    ttl_ms: self.fallback_ttl.as_millis() as u64,
                }),
            ),
            Operation::Delete | Operation::Purge => None,
        };
        self.seen.insert(
            key.to_owned(),
            Seen {
                revision: entry.revision,
                since: now,
                value,
            },
        );
    }

    /// What `key` looks like at `now`, from what was noted so far.
    pub fn sight(&self, key: &str, now: Instant) -> Sight {
        match self.seen.get(key) {
            None => Sight::Free { revision: None },
            Some(Seen {
                revision,
                value: None,
                ..
            }) => Sight::Free {
                revision: Some(*revision),
            },
            Some(Seen {
                revision,
                since,
                value: Some(value),
            }) => {
                let node = value.node.clone();
                let revision = *revision;
                if now.duration_since(*since) >= value.ttl() {
                    Sight::Dead { node, revision }
                } else {
                    Sight::Alive { node, revision }
                }
            }
        }
    }

    /// Reads `key` from the bucket, notes it, and says what it looks like now.
    pub async fn look(&mut self, kv: &Store, key: &str) -> Result<Sight, LeaseError> {
        let entry = kv.entry(key).await.map_err(|e| LeaseError::Read {
            key: key.to_owned(),
            source: e.into(),
        })?;
        let now = Instant::now();
        self.note(key, entry.as_ref(), now);
        Ok(self.sight(key, now))
    }

    /// Counts the nodes whose heartbeat (`node.<name>`) is alive, reading every one.
    pub async fn live_nodes(&mut self, kv: &Store) -> Result<usize, LeaseError> {
        let read_err = |e: async_nats::Error| LeaseError::Read {
            key: "node.*".to_owned(),
            source: e,
        };
        let mut keys = kv.keys().await.map_err(|e| read_err(e.into()))?;
        let mut nodes = Vec::new();
        while let Some(key) = keys.next().await {
            let key = key.map_err(|e| read_err(e.into()))?;
            if key.starts_with("node.") {
                nodes.push(key);
            }
        }
        let mut live = 0;
        for key in nodes {
            if matches!(self.look(kv, &key).await?, Sight::Alive { .. }) {
                live += 1;
            }
        }
        Ok(live)
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn entry(revision: u64, operation: Operation, value: &str) -> kv::Entry {
        kv::Entry {
            bucket: "b".into(),
            key: "lease.a".into(),
            value: Bytes::from(value.to_owned()),
            revision,
            delta: 0,
            created: time::OffsetDateTime::UNIX_EPOCH,
            operation,
            seen_current: true,
        }
    }

    const VALUE: &str = r#"{"node":"n1","ttl_ms":600}"#;

    #[tokio::test(start_paused = true)]
    async fn a_revision_unchanged_for_its_ttl_by_the_observers_clock_is_dead() {
        let mut o = Observer::new(Duration::from_secs(9));
        let t0 = Instant::now();
        o.note("lease.a", Some(&entry(4, Operation::Put, VALUE)), t0);
        let alive = Sight::Alive {
            node: "n1".into(),
            revision: 4,
        };
        assert_eq!(o.sight("lease.a", t0 + Duration::from_millis(599)), alive);
        // Seeing the same revision again does not restart the count.
        o.note(
            "lease.a",
            Some(&entry(4, Operation::Put, VALUE)),
            t0 + Duration::from_millis(300),
        );
        assert_eq!(
            o.sight("lease.a", t0 + Duration::from_millis(600)),
            Sight::Dead {
                node: "n1".into(),
                revision: 4
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_revision_restarts_the_count_and_a_release_frees_it() {
        let mut o = Observer::new(Duration::from_secs(9));
        let t0 = Instant::now();
        o.note("lease.a", Some(&entry(4, Operation::Put, VALUE)), t0);
        let t1 = t0 + Duration::from_millis(500);
        o.note("lease.a", Some(&entry(5, Operation::Put, VALUE)), t1);
        assert!(matches!(
            o.sight("lease.a", t1 + Duration::from_millis(599)),
            Sight::Alive { revision: 5, .. }
        ));
        o.note("lease.a", Some(&entry(6, Operation::Delete, "")), t1);
        assert_eq!(o.sight("lease.a", t1), Sight::Free { revision: Some(6) });
        assert_eq!(o.sight("lease.b", t1), Sight::Free { revision: None });
    }

    #[tokio::test(start_paused = true)]
    async fn an_unreadable_value_counts_as_held_for_the_fallback_ttl() {
        let mut o = Observer::new(Duration::from_secs(2));
        let t0 = Instant::now();
        o.note("lease.a", Some(&entry(1, Operation::Put, "garbage")), t0);
        assert!(matches!(
            o.sight("lease.a", t0 + Duration::from_millis(1999)),
            Sight::Alive { .. }
        ));
        assert!(matches!(
            o.sight("lease.a", t0 + Duration::from_secs(2)),
            Sight::Dead { .. }
        ));
    }
}
