//! One account's lease in the bucket: taking it ([`take`]) on what an [`Observer`] saw,
//! renewing and fencing it ([`Held`]), and this node's own heartbeat ([`Heartbeat`]). The
//! design and its guarantees are in [`crate::cluster`].
use std::time::Duration;

use async_nats::jetstream::kv::{CreateErrorKind, Operation, Store, UpdateErrorKind};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, timeout_at, Instant};
use tokio_util::sync::CancellationToken;

pub use super::observe::{Observer, Sight};

/// The key of an account's lease.
pub fn lease_key(account: &str) -> String {
    format!("lease.{account}")
}

/// The key of a node's heartbeat.
pub fn node_key(node: &str) -> String {
    format!("node.{node}")
}

/// What a lease (or a heartbeat) key holds: who holds it and for how long each revision counts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseValue {
    /// The holder's node name.
    pub node: String,
    /// How long a revision stays valid after it is first seen, in milliseconds.
    pub ttl_ms: u64,
}

impl LeaseValue {
    fn to_bytes(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(self).expect("a lease value serializes"))
    }

    pub(super) fn ttl(&self) -> Duration {
        Duration::from_millis(self.ttl_ms)
    }
}

/// Why the bucket could not be read or written (a refused revision is not an error: it is an
/// answer, [`take`] gives `None` and [`Held`] reports [`Standing::Lost`]).
#[derive(Debug, Error)]
pub enum LeaseError {
    /// Reading a key failed (connection lost, timeout).
    #[error("cannot read {key} from the bucket: {source}")]
    Read {
        /// The key.
        key: String,
        /// What the client said.
        source: async_nats::Error,
    },
    /// Writing a key failed for another reason than its revision.
    #[error("cannot write {key} to the bucket: {source}")]
    Write {
        /// The key.
        key: String,
        /// What the client said.
        source: async_nats::Error,
    },
    /// The bucket could not be opened or created.
    #[error("cannot open the bucket {bucket}: {source}")]
    Bucket {
        /// The bucket's name.
        bucket: String,
        /// What the client said.
        source: async_nats::Error,
    },
}

/// Opens the bucket, creating it if missing: file storage (leases and sessions survive a
/// server restart), one value per key, and no `max_age` (sessions must not expire).
///
/// The bucket's stream is created here rather than by the client's `create_key_value`, which
/// first asks for the account's info and cannot read nats-server 2.9's answer. The stream is
/// the one that call would make; creating it again with the same config is a no-op.
pub async fn open_bucket(
    js: &async_nats::jetstream::Context,
    bucket: &str,
) -> Result<Store, LeaseError> {
    use async_nats::jetstream::stream::{Config, DiscardPolicy, StorageType};
    let err = |source: async_nats::Error| LeaseError::Bucket {
        bucket: bucket.to_owned(),
        source,
    };
    js.create_stream(Config {
        name: format!("KV_{bucket}"),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 1,
        storage: StorageType::File,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: DiscardPolicy::New,
        num_replicas: 1,
        ..Default::default()
    })
    .await
    .map_err(|e| err(e.into()))?;
    js.get_key_value(bucket).await.map_err(|e| err(e.into()))
}

/// Who takes a lease, on which account, for how long.
#[derive(Clone, Debug)]
pub struct LeaseSpec {
    /// The account the lease is for.
    pub account: String,
    /// This node's name (unique in the cluster).
    pub node: String,
    /// How long a renewal counts; renewed every third of it.
    pub ttl: Duration,
    /// How long before observers could judge the lease dead the holder stops: covers clock
    /// rate differences over one `ttl` and the time the account needs to stop its traffic.
    /// Keep it well under two thirds of `ttl` (renewals come every third), or the holder
    /// fences itself between two renewals that succeed.
    pub margin: Duration,
}

/// Takes the lease if `sight` shows it free or dead: `create` for a free one, an update with
/// the dead revision otherwise, so of several takers exactly one wins. `None` when it is alive
/// or another taker won.
pub async fn take(kv: &Store, spec: &LeaseSpec, sight: &Sight) -> Result<Option<Held>, LeaseError> {
    let key = lease_key(&spec.account);
    let value = LeaseValue {
        node: spec.node.clone(),
        ttl_ms: spec.ttl.as_millis() as u64,
    }
    .to_bytes();
    let sent = Instant::now();
    let revision = match sight {
        Sight::Alive { .. } => return Ok(None),
        Sight::Free { .. } => match kv.create(&key, value.clone()).await {
            Ok(revision) => revision,
            Err(e) if e.kind() == CreateErrorKind::AlreadyExists => return Ok(None),
            Err(e) => {
                return Err(LeaseError::Write {
                    key,
                    source: e.into(),
                });
            }
        },
        Sight::Dead { revision, .. } => match kv.update(&key, value.clone(), *revision).await {
            Ok(revision) => revision,
            Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => return Ok(None),
            Err(e) => {
                return Err(LeaseError::Write {
                    key,
                    source: e.into(),
                });
            }
        },
    };
    tracing::info!(account = %spec.account, node = %spec.node, revision, "lease taken");
    Ok(Some(Held::start(
        kv.clone(),
        spec.clone(),
        key,
        value,
        revision,
        sent,
    )))
}

/// Whether the holder may run the account's WeChat traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    /// Renewed in time: run.
    Active,
    /// No renewal succeeded for `ttl − margin` since the last one was sent: stop until one
    /// succeeds (observers may soon judge the lease dead).
    Fenced,
    /// Another node took the lease: stopped for good.
    Lost,
    /// Released at a clean stop.
    Released,
}

impl Standing {
    /// Whether the account may run.
    pub fn may_run(self) -> bool {
        self == Standing::Active
    }
}

/// A lease this node holds, renewed by its own task until released, lost, or dropped (dropping
/// stops renewing without releasing: the lease then dies after its `ttl`).
#[derive(Debug)]
pub struct Held {
    standing: watch::Receiver<Standing>,
    release: CancellationToken,
    abandon: CancellationToken,
    task: Option<JoinHandle<Result<(), LeaseError>>>,
}

impl Held {
    fn start(
        kv: Store,
        spec: LeaseSpec,
        key: String,
        value: Bytes,
        revision: u64,
        sent: Instant,
    ) -> Held {
        let (tx, rx) = watch::channel(Standing::Active);
        let release = CancellationToken::new();
        let abandon = CancellationToken::new();
        let renewer = Renewer {
            kv,
            spec,
            key,
            value,
            revision,
            sent,
            standing: tx,
        };
        let task = tokio::spawn(renewer.run(release.clone(), abandon.clone()));
        Held {
            standing: rx,
            release,
            abandon,
            task: Some(task),
        }
    }

    /// The holder's standing, changing as renewals succeed or fail: run the account only
    /// while it is [`Standing::Active`].
    pub fn standing(&self) -> watch::Receiver<Standing> {
        self.standing.clone()
    }

    /// Stops renewing and deletes the lease with its revision, so another node may take it at
    /// once. A lease already lost is left to its new holder.
    pub async fn release(mut self) -> Result<(), LeaseError> {
        self.release.cancel();
        match self.task.take() {
            Some(task) => task.await.unwrap_or(Ok(())),
            None => Ok(()),
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if self.task.is_some() {
            self.abandon.cancel();
        }
    }
}

/// The renewal task's state.
struct Renewer {
    kv: Store,
    spec: LeaseSpec,
    key: String,
    value: Bytes,
    /// The lease's revision as last written by this node.
    revision: u64,
    /// When the write of `revision` was sent: observers cannot have seen it earlier.
    sent: Instant,
    standing: watch::Sender<Standing>,
}

impl Renewer {
    /// Renews every `ttl/3` (a failed attempt is retried after a twelfth of `ttl`), fences at
    /// `sent + ttl − margin`, stops for good on a refused revision, deletes the lease on
    /// release.
    async fn run(
        mut self,
        release: CancellationToken,
        abandon: CancellationToken,
    ) -> Result<(), LeaseError> {
        let ttl = self.spec.ttl;
        let period = ttl / 3;
        let mut next = self.sent + period;
        // The send time of the earliest renewal since the last success whose answer never
        // came: it may have landed, and if so, observers count from after it.
        let mut unanswered: Option<Instant> = None;
        loop {
            let fence_at = self.sent + ttl.saturating_sub(self.spec.margin);
            let active = *self.standing.borrow() == Standing::Active;
            tokio::select! {
                biased;
                () = abandon.cancelled() => return Ok(()),
                () = release.cancelled() => return self.release().await,
                () = sleep_until(fence_at), if active => {
                    tracing::warn!(account = %self.spec.account, "lease not renewed in time: fenced");
                    self.standing.send_replace(Standing::Fenced);
                }
                () = sleep_until(next) => {
                    let attempt = Instant::now();
                    let deadline = if active { (attempt + period).min(fence_at) } else { attempt + period };
                    let answer = timeout_at(
                        deadline,
                        self.kv.update(&self.key, self.value.clone(), self.revision),
                    )
                    .await;
                    next = Instant::now() + period / 4;
                    match answer {
                        Ok(Ok(revision)) => {
                            // Any earlier unanswered renewal expected the same revision: had
                            // it landed, this one would have been refused.
                            self.revision = revision;
                            self.sent = attempt;
                            unanswered = None;
                            next = attempt + period;
                            if !active {
                                tracing::info!(account = %self.spec.account, "lease renewed again: running");
                            }
                            self.standing.send_replace(Standing::Active);
                        }
                        Ok(Err(e)) if e.kind() == UpdateErrorKind::WrongLastRevision => {
                            match self.own_landed_renewal(unanswered).await {
                                Some((revision, sent)) => {
                                    self.revision = revision;
                                    self.sent = sent;
                                    unanswered = None;
                                    next = Instant::now();
                                }
                                None => {
                                    tracing::warn!(account = %self.spec.account, "lease taken by another node: stopped");
                                    self.standing.send_replace(Standing::Lost);
                                    return Ok(());
                                }
                            }
                        }
                        Ok(Err(e)) => {
                            tracing::warn!(account = %self.spec.account, error = %e, "lease renewal failed");
                            unanswered.get_or_insert(attempt);
                        }
                        Err(_elapsed) => {
                            tracing::warn!(account = %self.spec.account, "lease renewal unanswered");
                            unanswered.get_or_insert(attempt);
                        }
                    }
                }
            }
        }
    }

    /// After a refused renewal: whether the lease's current value is one of this node's own
    /// unanswered renewals that landed after all (then its revision, and the send time to
    /// count from: the earliest unanswered one, which is what observers can have seen first).
    async fn own_landed_renewal(&self, unanswered: Option<Instant>) -> Option<(u64, Instant)> {
        let sent = unanswered?;
        let entry = self.kv.entry(&self.key).await.ok()??;
        let value: LeaseValue = serde_json::from_slice(&entry.value).ok()?;
        (entry.operation == Operation::Put && value.node == self.spec.node)
            .then_some((entry.revision, sent))
    }

    async fn release(self) -> Result<(), LeaseError> {
        // Stop running before the lease can be seen free.
        self.standing.send_replace(Standing::Released);
        match self
            .kv
            .delete_expect_revision(&self.key, Some(self.revision))
            .await
        {
            Ok(()) => {
                tracing::info!(account = %self.spec.account, "lease released");
                Ok(())
            }
            // Taken meanwhile: it is the new holder's now.
            Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => Ok(()),
            Err(e) => Err(LeaseError::Write {
                key: self.key,
                source: e.into(),
            }),
        }
    }
}

/// This node's heartbeat: `node.<name>` rewritten every `ttl/3`, so observers count it live,
/// and deleted at a clean stop.
#[derive(Debug)]
pub struct Heartbeat {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Heartbeat {
    /// Starts beating; a failed write is logged and tried again at the next beat.
    pub fn start(kv: Store, node: &str, ttl: Duration) -> Heartbeat {
        let stop = CancellationToken::new();
        let key = node_key(node);
        let value = LeaseValue {
            node: node.to_owned(),
            ttl_ms: ttl.as_millis() as u64,
        }
        .to_bytes();
        let token = stop.clone();
        let task = tokio::spawn(async move {
            loop {
                if let Err(e) = kv.put(&key, value.clone()).await {
                    tracing::warn!(key, error = %e, "heartbeat not written");
                }
                tokio::select! {
                    () = token.cancelled() => break,
                    () = tokio::time::sleep(ttl / 3) => {}
                }
            }
            let _ = kv.delete(&key).await;
        });
        Heartbeat { stop, task }
    }

    /// Stops beating and deletes the key.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}
