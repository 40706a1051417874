//! The durable store behind "nothing lost" (DESIGN.md "Delivery guarantees"): the event spool
//! with one cursor per sink, the MsgId dedup index, the sync keys, the outbound command queue,
//! the results of recent request_ids, and a few small named values (the send counts). One
//! embedded database file, `state_dir/spool.redb`.
//!
//! A webwxsync answer is committed in one transaction ([`Spool::commit_sync`]): its events, their
//! MsgIds and the new sync keys, so a crash replays at most an uncommitted answer, and the
//! dedup index drops the replay. The sync keys are opaque bytes here; the bridge encodes them.
//!
//! [`RedbSpool`] is the synchronous store (every write transaction durable on its own); async
//! code reaches it only through [`Store`], which runs it on a writer thread of its own, merges
//! pending writes into one group (see the `writer` module for what that means for cursors and
//! crashes) and makes each group durable with one append to `state_dir/spool.journal` instead
//! of a redb commit (the `journal` module: the design, the checkpoints, the recovery).
//!
//! What a crash costs, in short: no write that was answered is lost (the journal record is
//! synced before the answer); a sink may be handed again what it had in flight and at most one
//! more flight it had delivered (its cursor move rides on the next group); the next start
//! replays the journal's records since the last checkpoint (at most 2,000, a few MiB).
use std::time::Duration;

/// What kind of payload a spooled entry is: the event types' own enum.
pub use crate::event::Kind;

mod journal;
mod redb_store;
mod writer;

pub use redb_store::RedbSpool;
pub use writer::Store;

/// A position in the spool; grows by one per event, never reused.
pub type Seq = u64;

/// An entry to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEntry {
    /// Its kind.
    pub kind: Kind,
    /// A stable id: the MsgId for messages, a generated one otherwise. Sinks use
    /// `<account>:<id>` as their idempotency key (`Nats-Msg-Id`, `webhook-id`).
    pub id: String,
    /// The JSON payload exactly as published.
    pub payload: Vec<u8>,
    /// For a result whose command came as a NATS request: the reply subject.
    pub reply_to: Option<String>,
}

/// An entry as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its position.
    pub seq: Seq,
    /// Its kind.
    pub kind: Kind,
    /// Its stable id.
    pub id: String,
    /// The JSON payload.
    pub payload: Vec<u8>,
    /// See [`NewEntry::reply_to`].
    pub reply_to: Option<String>,
    /// When it was appended (unix ms).
    pub appended_ms: u64,
}

/// A command waiting in the outbound queue, as the bridge stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedCommand {
    /// Its position in the queue.
    pub id: u64,
    /// The serialized command record (the bridge owns its format).
    pub record: Vec<u8>,
}

/// A sink's backlog, for metrics and `/readyz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Backlog {
    /// Entries not yet delivered.
    pub depth: u64,
    /// Age of the oldest one (unix ms of its append), if any.
    pub oldest_ms: Option<u64>,
    /// Entries dropped for this sink at `spool.max_events_per_sink` since the process started.
    pub dropped: u64,
}

/// The store failed; the caller retries or stops. Says what the store was doing; the error
/// of redb (or of the file system, or of a decoder) underneath is its `source()`.
#[derive(Debug)]
pub struct SpoolError {
    doing: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl SpoolError {
    /// An error of the store's own, with no cause underneath.
    pub fn new(doing: impl Into<String>) -> SpoolError {
        SpoolError {
            doing: doing.into(),
            source: None,
        }
    }

    /// `doing` failed because of `source`.
    pub fn caused_by(
        doing: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> SpoolError {
        SpoolError {
            doing: doing.into(),
            source: Some(Box::new(source)),
        }
    }
}

impl std::fmt::Display for SpoolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The cause is spelled out too: logs print the top error alone.
        match &self.source {
            Some(cause) => write!(f, "spool: {}: {cause}", self.doing),
            None => write!(f, "spool: {}", self.doing),
        }
    }
}

impl std::error::Error for SpoolError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// What the result of a sync commit was.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Committed {
    /// The seqs of the appended entries, in order.
    pub seqs: Vec<Seq>,
    /// Per sink: how many of its oldest entries were dropped to stay under the bound.
    pub dropped: Vec<(String, u64)>,
}

/// The store. Every method is one transaction; `Durability::Immediate` where it matters.
pub trait Spool: Send + Sync + 'static {
    /// Of `msg_ids`, which have not been spooled yet (same order, true = new).
    fn unseen(&self, msg_ids: &[&str]) -> Result<Vec<bool>, SpoolError>;

    /// One transaction: append `entries`, mark `msg_ids` as seen, and store `keys` when given.
    /// Entries whose MsgId is already seen must have been filtered by the caller; the seen
    /// marks are idempotent. Enforces `max_events_per_sink` by moving lagging cursors. The
    /// sync keys are opaque bytes here: the bridge encodes and decodes them.
    fn commit_sync(
        &self,
        entries: Vec<NewEntry>,
        msg_ids: &[&str],
        keys: Option<&[u8]>,
    ) -> Result<Committed, SpoolError> {
        self.commit_sync_holding(entries, &[], msg_ids, keys)
    }

    /// [`Spool::commit_sync`] with the entries whose index is in `held` appended *held*: no
    /// sink is handed one, or anything spooled after it, until [`Spool::release`].
    fn commit_sync_holding(
        &self,
        entries: Vec<NewEntry>,
        held: &[u32],
        msg_ids: &[&str],
        keys: Option<&[u8]>,
    ) -> Result<Committed, SpoolError>;

    /// One transaction: replaces held entry `seq`'s payload (its kind, id and append time
    /// stay) and lifts its hold. False, changing nothing, when it is not held (released
    /// before) or no longer stored (dropped at the bound).
    fn release(&self, seq: Seq, payload: &[u8]) -> Result<bool, SpoolError>;

    /// The held entries still stored, in spool order.
    fn held(&self) -> Result<Vec<Entry>, SpoolError>;

    /// Appends entries that come of no sync (login, logout, contacts, error).
    fn append(&self, entries: Vec<NewEntry>) -> Result<Committed, SpoolError> {
        self.commit_sync(entries, &[], None)
    }

    /// The stored sync keys, if any, as they were given to [`Spool::commit_sync`].
    fn sync_keys(&self) -> Result<Option<Vec<u8>>, SpoolError>;

    /// Forgets the sync keys (a new session starts from its own).
    fn clear_sync_keys(&self) -> Result<(), SpoolError>;

    /// Makes sure `sink` has a cursor. A sink seen for the first time starts at the current
    /// end of the spool (it gets what is appended from now on); a known one keeps its cursor.
    fn register_sink(&self, sink: &str) -> Result<(), SpoolError>;

    /// Forgets the cursors of sinks not in `keep` (no longer configured), so they pin no
    /// entries; entries every remaining sink has delivered are deleted.
    fn retain_sinks(&self, keep: &[&str]) -> Result<(), SpoolError>;

    /// Up to `limit` entries after `sink`'s cursor, in order.
    fn pending(&self, sink: &str, limit: usize) -> Result<Vec<Entry>, SpoolError> {
        self.pending_after(sink, 0, limit)
    }

    /// Up to `limit` entries after both `sink`'s cursor and `after`, in order (a pipelining
    /// sink reads on past what it has in flight), stopping before the first held entry.
    fn pending_after(&self, sink: &str, after: Seq, limit: usize)
        -> Result<Vec<Entry>, SpoolError>;

    /// `sink` has delivered everything up to and including `seq`. Entries every sink has
    /// delivered are deleted.
    fn ack(&self, sink: &str, seq: Seq) -> Result<(), SpoolError>;

    /// `sink`'s backlog.
    fn backlog(&self, sink: &str) -> Result<Backlog, SpoolError>;

    /// Appends a command to the outbound queue; answers its id.
    fn enqueue_command(&self, record: Vec<u8>) -> Result<u64, SpoolError>;

    /// The oldest queued commands, up to `limit`.
    fn queued_commands(&self, limit: usize) -> Result<Vec<QueuedCommand>, SpoolError>;

    /// How many commands wait.
    fn queue_depth(&self) -> Result<u64, SpoolError>;

    /// One transaction: remove command `id` from the queue, remember `result` under
    /// `request_id` (when given) for [`Spool::recent_result`], and append `result_entry`.
    fn complete_command(
        &self,
        id: u64,
        request_id: Option<&str>,
        result_entry: NewEntry,
    ) -> Result<Seq, SpoolError>;

    /// The result payload stored for `request_id` within `window`, if any.
    fn recent_result(
        &self,
        request_id: &str,
        window: Duration,
    ) -> Result<Option<Vec<u8>>, SpoolError>;

    /// Stores `value` under `name`, replacing what was there: a small value the bridge keeps
    /// whole (the send counts, the contact keys), durable like every other write.
    fn put_value(&self, name: &str, value: &[u8]) -> Result<(), SpoolError>;

    /// The value stored under `name`, if any.
    fn value(&self, name: &str) -> Result<Option<Vec<u8>>, SpoolError>;

    /// Size of the database file in bytes (for the benchmark and metrics).
    fn disk_size(&self) -> Result<u64, SpoolError>;
}
